/* cfi.c - the default unwinder: a walk by the loaded objects' .eh_frame rules, through one
 * frame-rule cache that every thread shares.
 *
 * Why palloc has its own walk. libunwind's unw_backtrace keeps a trace cache per thread: 256 KiB,
 * filled in at the thread's first sample and kept until the thread exits (libunwind 1.6,
 * src/x86_64/Gtrace.c: HASH_MIN_BITS 14, not configurable). A server with 512 threads that each
 * sampled once held 128 MiB of it, and a small program a quarter of its peak RSS. Loading
 * libunwind costs another 160 KiB (it brings liblzma). And per frame it costs about 108
 * instructions over the walk's 71, of which the walk itself is about 35 (tests/bench,
 * --scale-bench --scale-parts depth).
 *
 * What the walk does. Per frame it needs three numbers, all from the frame's DWARF call-frame
 * rule at its return address - 1: where the CFA is (rsp or rbp plus an offset), that the return
 * address is at CFA - 8, and where the caller's rbp was saved (or that rbp is unchanged). That
 * is what compilers emit for nearly every x86-64 function. Such a rule is an entry of 16 bytes
 * in a hash table shared by all threads, read without a lock; a miss decodes the FDE in memory
 * (_dl_find_object gives the object's .eh_frame_hdr, whose table is binary-searched), which
 * happens once per return address per process.
 *
 * What it leaves to libunwind (the walk answers -1 and stack.c takes the whole stack with the
 * general unwinder, as before): a frame whose rule is anything else (a signal frame, a CFA by
 * expression as in a stack-realigning function, rbp kept in another register); a return
 * address without an FDE (JIT code); a stack that leaves the thread's bounds (a signal handler
 * on an alternate stack, a coroutine's own stack); no _dl_find_object (glibc before 2.35). Such
 * rules are cached too (as "unknown"), so an unusual frame costs its decoding once.
 *
 * Reads: every stack read is of 8 bytes inside [lo, hi), the thread's stack (as in the
 * frame-pointer walk), and each frame's CFA lies above the one before. A wrong rule (an object
 * unloaded and another loaded at its address, if unload.c's forgetting missed it) can give a
 * wrong frame but never a read outside the stack. The .eh_frame reads stay inside the FDE and
 * CIE lengths, in an object that _dl_find_object just found loaded.
 *
 * Signals, fork, reentrancy: no lock, no allocation (the tables are mmap'd), nothing that a
 * fork can leave half done except a slot claimed for writing, which readers skip.
 */
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

#if defined(__x86_64__) && defined(__linux__)

/* glibc 2.35+; weak, so that libpalloc loads on an older one (the walk then always says -1). */
extern int _dl_find_object(void *pc, struct dl_find_object *result) __attribute__((weak));

/* ---- rules -------------------------------------------------------------------------------- */

/* A rule packed in 64 bits: kind | cfa_off << 8 | rbp_off << 40. RULE_RSP and RULE_RBP say
 * which register the CFA is based on (the walk picks the base by the kind's low bit); rbp_off
 * is 0 (rbp unchanged) or a multiple of 8 at least 8: where rbp was saved, below the CFA. */
enum { RULE_RSP = 0, RULE_RBP = 1, RULE_END = 2, RULE_UNKNOWN = 3 };
#define RULE_KIND(r) ((unsigned)((r) & 0x3))
#define RULE_CFA_OFF(r) ((uintptr_t)(((r) >> 8) & 0xffffffffu))
#define RULE_RBP_OFF(r) ((uintptr_t)((r) >> 40)) /* 0: rbp unchanged */

static inline uint64_t rule_make(unsigned kind, uint32_t cfa_off, uint32_t rbp_off) {
  /* the walk's bounds rest on these: offsets of whole slots, the CFA above the frame's rsp */
  palloc_assert(kind <= RULE_UNKNOWN);
  palloc_assert(kind > RULE_RBP || (cfa_off >= 8 && (cfa_off & 7) == 0 && rbp_off <= 0xffffff &&
                                    (rbp_off & 7) == 0 && (rbp_off == 0 || rbp_off >= 8)));
  return kind | (uint64_t)cfa_off << 8 | (uint64_t)rbp_off << 40;
}

/* ---- reading .eh_frame -------------------------------------------------------------------- */

/* A cursor over [p, end): every read checks the bound and sets bad instead of going past it. */
typedef struct { const uint8_t *p, *end; bool bad; } rd_t;

static uint64_t rd_bytes(rd_t *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) { r->bad = true; return 0; }
  uint64_t v = 0;
  memcpy(&v, r->p, n); /* little-endian */
  r->p += n;
  return v;
}
static uint64_t rd_uleb(rd_t *r) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (r->bad || r->p >= r->end) break;
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}
static int64_t rd_sleb(rd_t *r) {
  int64_t v = 0;
  unsigned shift = 0;
  while (shift < 64) {
    if (r->bad || r->p >= r->end) break;
    uint8_t b = *r->p++;
    v |= (int64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) {
      if (shift < 64 && (b & 0x40)) v |= -((int64_t)1 << shift);
      return v;
    }
  }
  r->bad = true;
  return 0;
}

/* A pointer in DWARF's EH encoding; absolute and pc-relative only (what ld and gcc emit for
 * .eh_frame and .eh_frame_hdr), data-relative to base when base is given. Anything else (an
 * indirect, aligned, text- or function-relative value) sets bad. */
static uintptr_t rd_encoded(rd_t *r, uint8_t enc, uintptr_t datarel) {
  if (enc == 0xff) { r->bad = true; return 0; } /* DW_EH_PE_omit */
  uintptr_t at = (uintptr_t)r->p;
  uint64_t v;
  switch (enc & 0x0f) {
  case 0x00: v = rd_bytes(r, 8); break;                            /* absptr */
  case 0x01: v = rd_uleb(r); break;                                /* uleb128 */
  case 0x02: v = rd_bytes(r, 2); break;                            /* udata2 */
  case 0x03: v = rd_bytes(r, 4); break;                            /* udata4 */
  case 0x04: v = rd_bytes(r, 8); break;                            /* udata8 */
  case 0x09: v = (uint64_t)rd_sleb(r); break;                      /* sleb128 */
  case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_bytes(r, 2); break; /* sdata2 */
  case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_bytes(r, 4); break; /* sdata4 */
  case 0x0c: v = rd_bytes(r, 8); break;                            /* sdata8 */
  default: r->bad = true; return 0;
  }
  switch (enc & 0x70) {
  case 0x00: break;
  case 0x10: v += at; break;                     /* pcrel */
  case 0x30:                                     /* datarel */
    if (datarel == 0) { r->bad = true; return 0; }
    v += datarel;
    break;
  default: r->bad = true; return 0;
  }
  if (enc & 0x80) r->bad = true; /* indirect */
  return (uintptr_t)v;
}

/* The size of an encoded value's field when only its width matters (pc_range). */
static uint64_t rd_encoded_value(rd_t *r, uint8_t enc) {
  return rd_encoded(r, (uint8_t)(enc & 0x0f), 0);
}

/* What the call-frame program says for the three registers the walk follows. */
enum { REG_SAME = 0, REG_OFFSET, REG_UNDEFINED, REG_OTHER };
typedef struct {
  uint64_t cfa_reg;
  int64_t cfa_off;
  bool cfa_expr;
  uint8_t rbp_how, ra_how;
  int64_t rbp_off, ra_off;
} cfa_state_t;

enum { DW_RBP = 6, DW_RSP = 7, STATE_STACK = 8 };

/* Runs the call-frame instructions in r from loc up to (not past) pc. init is the CIE's state
 * (DW_CFA_restore's target; NULL while running the CIE itself). False: an instruction this
 * walk does not follow, or bad bytes. */
static bool cfa_run(rd_t *r, cfa_state_t *s, const cfa_state_t *init, uintptr_t loc, uintptr_t pc,
                    uint64_t code_align, int64_t data_align, uint64_t ra_reg) {
  cfa_state_t stack[STATE_STACK];
  int depth = 0;
  while (!r->bad && r->p < r->end) {
    uint8_t op = (uint8_t)rd_bytes(r, 1);
    uint64_t reg = 0, delta = 0;
    int64_t off = 0;
    uint8_t how = 0;
    bool set_reg = false;
    switch (op >> 6) {
    case 1: delta = op & 0x3f; goto advance;                             /* advance_loc */
    case 2: reg = op & 0x3f; off = (int64_t)rd_uleb(r) * data_align;      /* offset */
            how = REG_OFFSET; set_reg = true; break;
    case 3: reg = op & 0x3f; goto restore;                                /* restore */
    default: break;
    }
    if (!set_reg) switch (op) {
    case 0x00: continue;                                                  /* nop */
    case 0x01: return false; /* set_loc: its operand's encoding is the FDE's; gcc never emits it */
    case 0x02: delta = rd_bytes(r, 1); goto advance;
    case 0x03: delta = rd_bytes(r, 2); goto advance;
    case 0x04: delta = rd_bytes(r, 4); goto advance;
    case 0x05: reg = rd_uleb(r); off = (int64_t)rd_uleb(r) * data_align;  /* offset_extended */
               how = REG_OFFSET; set_reg = true; break;
    case 0x06: reg = rd_uleb(r); goto restore;                            /* restore_extended */
    case 0x07: reg = rd_uleb(r); how = REG_UNDEFINED; set_reg = true; break;
    case 0x08: reg = rd_uleb(r); how = REG_SAME; set_reg = true; break;
    case 0x09: reg = rd_uleb(r); (void)rd_uleb(r); how = REG_OTHER; set_reg = true; break;
    case 0x0a:                                                            /* remember_state */
      if (depth == STATE_STACK) return false;
      stack[depth++] = *s;
      continue;
    case 0x0b:                                                            /* restore_state */
      /* The CFA's rule comes back with the registers' (as libgcc and libunwind do; gcc's
       * epilogues in the middle of a function rely on it). */
      if (depth == 0) return false;
      *s = stack[--depth];
      continue;
    case 0x0c: s->cfa_reg = rd_uleb(r); s->cfa_off = (int64_t)rd_uleb(r);  /* def_cfa */
               s->cfa_expr = false; continue;
    case 0x0d: s->cfa_reg = rd_uleb(r); s->cfa_expr = false; continue;     /* def_cfa_register */
    case 0x0e: s->cfa_off = (int64_t)rd_uleb(r); continue;                 /* def_cfa_offset */
    case 0x0f: {                                                           /* def_cfa_expression */
      uint64_t n = rd_uleb(r);
      if (n > (uint64_t)(r->end - r->p)) return false;
      r->p += n;
      s->cfa_expr = true;
      continue;
    }
    case 0x10: case 0x16: {                                 /* expression, val_expression */
      reg = rd_uleb(r);
      uint64_t n = rd_uleb(r);
      if (r->bad || n > (uint64_t)(r->end - r->p)) return false;
      r->p += n;
      how = REG_OTHER; set_reg = true;
      break;
    }
    case 0x11: reg = rd_uleb(r); off = rd_sleb(r) * data_align;            /* offset_extended_sf */
               how = REG_OFFSET; set_reg = true; break;
    case 0x12: s->cfa_reg = rd_uleb(r); s->cfa_off = rd_sleb(r) * data_align; /* def_cfa_sf */
               s->cfa_expr = false; continue;
    case 0x13: s->cfa_off = rd_sleb(r) * data_align; continue;             /* def_cfa_offset_sf */
    case 0x14: reg = rd_uleb(r); (void)rd_uleb(r); how = REG_OTHER; set_reg = true; break;
    case 0x15: reg = rd_uleb(r); (void)rd_sleb(r); how = REG_OTHER; set_reg = true; break;
    case 0x2e: (void)rd_uleb(r); continue;                                 /* GNU_args_size */
    case 0x2f: reg = rd_uleb(r); off = -(int64_t)rd_uleb(r) * data_align; /* GNU_neg_offset_ext */
               how = REG_OFFSET; set_reg = true; break;
    default: return false; /* vendor or unknown: its operands cannot be skipped */
    }
    /* A register's rule changes (set_reg). */
    if (reg == DW_RBP) { s->rbp_how = how; s->rbp_off = off; }
    else if (reg == ra_reg) { s->ra_how = how; s->ra_off = off; }
    continue;
  restore:
    if (init == NULL) return false;
    if (reg == DW_RBP) { s->rbp_how = init->rbp_how; s->rbp_off = init->rbp_off; }
    else if (reg == ra_reg) { s->ra_how = init->ra_how; s->ra_off = init->ra_off; }
    continue;
  advance:
    if (code_align == 0 || delta > (UINTPTR_MAX - loc) / code_align) return false;
    loc += delta * code_align;
    if (loc > pc) return !r->bad;
  }
  return !r->bad;
}

/* The rule for the frame whose code address is pc, from the FDE that covers it; RULE_UNKNOWN
 * when there is none or it says something the walk does not follow. */
static uint64_t rule_decode(uintptr_t pc) {
  struct dl_find_object fo;
  if (_dl_find_object == NULL || _dl_find_object((void *)pc, &fo) != 0 || fo.dlfo_eh_frame == NULL)
    return rule_make(RULE_UNKNOWN, 0, 0);
  /* .eh_frame_hdr: version 1, three encodings, eh_frame_ptr, fde_count, then the sorted table
   * of (initial location, FDE address) pairs, each datarel sdata4 (what ld writes). Its size
   * is not given (PT_GNU_EH_FRAME's p_memsz is not in dl_find_object), so the reads are bounded
   * by the object's mapping. */
  const uint8_t *hdr = fo.dlfo_eh_frame;
  uintptr_t map_end = (uintptr_t)fo.dlfo_map_end;
  if ((uintptr_t)hdr >= map_end || map_end - (uintptr_t)hdr < 4) return rule_make(RULE_UNKNOWN, 0, 0);
  rd_t r = { hdr, (const uint8_t *)map_end, false };
  uint8_t version = (uint8_t)rd_bytes(&r, 1), ptr_enc = (uint8_t)rd_bytes(&r, 1);
  uint8_t count_enc = (uint8_t)rd_bytes(&r, 1), table_enc = (uint8_t)rd_bytes(&r, 1);
  if (version != 1 || table_enc != 0x3b) return rule_make(RULE_UNKNOWN, 0, 0);
  (void)rd_encoded(&r, ptr_enc, (uintptr_t)hdr);
  uint64_t count = rd_encoded(&r, count_enc, (uintptr_t)hdr);
  if (r.bad || count == 0 || count > (uint64_t)(r.end - r.p) / 8) return rule_make(RULE_UNKNOWN, 0, 0);
  const int32_t *table = (const int32_t *)(const void *)r.p;
  /* The last entry whose initial location is <= pc. */
  uint64_t lo = 0, hi = count;
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    if ((uintptr_t)hdr + (intptr_t)table[2 * mid] <= pc) lo = mid; else hi = mid;
  }
  if ((uintptr_t)hdr + (intptr_t)table[2 * lo] > pc) return rule_make(RULE_UNKNOWN, 0, 0);
  const uint8_t *fde = hdr + (intptr_t)table[2 * lo + 1];
  uintptr_t map_start = (uintptr_t)fo.dlfo_map_start;
  if ((uintptr_t)fde < map_start || (uintptr_t)fde >= map_end) return rule_make(RULE_UNKNOWN, 0, 0);

  /* The FDE: length, CIE pointer, pc_begin, pc_range, augmentation data, instructions. */
  rd_t f = { fde, (const uint8_t *)map_end, false };
  uint64_t flen = rd_bytes(&f, 4);
  if (flen == 0xffffffffu) flen = rd_bytes(&f, 8);
  if (f.bad || flen == 0 || flen > (uint64_t)(f.end - f.p)) return rule_make(RULE_UNKNOWN, 0, 0);
  f.end = f.p + flen;
  const uint8_t *cie_field = f.p;
  uint32_t cie_off = (uint32_t)rd_bytes(&f, 4);
  if (f.bad || cie_off == 0 || cie_off > (uintptr_t)cie_field - map_start)
    return rule_make(RULE_UNKNOWN, 0, 0);

  /* The CIE: length, id 0, version, augmentation string, alignment factors, return address
   * register, augmentation data (z: its length; R: the FDE pointer encoding; P: personality;
   * L: LSDA encoding; S: a signal frame, left to libunwind), initial instructions. */
  const uint8_t *cie = cie_field - cie_off;
  rd_t c = { cie, (const uint8_t *)map_end, false };
  uint64_t clen = rd_bytes(&c, 4);
  if (clen == 0xffffffffu) clen = rd_bytes(&c, 8);
  if (c.bad || clen == 0 || clen > (uint64_t)(c.end - c.p)) return rule_make(RULE_UNKNOWN, 0, 0);
  c.end = c.p + clen;
  if (rd_bytes(&c, 4) != 0) return rule_make(RULE_UNKNOWN, 0, 0);
  uint8_t cver = (uint8_t)rd_bytes(&c, 1);
  if (cver != 1 && cver != 3) return rule_make(RULE_UNKNOWN, 0, 0);
  char aug[8];
  size_t an = 0;
  for (;;) {
    uint8_t ch = (uint8_t)rd_bytes(&c, 1);
    if (c.bad || an == sizeof aug) return rule_make(RULE_UNKNOWN, 0, 0);
    aug[an++] = (char)ch;
    if (ch == 0) break;
  }
  uint64_t code_align = rd_uleb(&c);
  int64_t data_align = rd_sleb(&c);
  uint64_t ra_reg = cver == 1 ? rd_bytes(&c, 1) : rd_uleb(&c);
  uint8_t fde_enc = 0x00;
  if (aug[0] == 'z') {
    uint64_t alen = rd_uleb(&c);
    if (c.bad || alen > (uint64_t)(c.end - c.p)) return rule_make(RULE_UNKNOWN, 0, 0);
    rd_t a = { c.p, c.p + alen, false };
    c.p += alen;
    for (size_t i = 1; aug[i] != 0; i++) {
      switch (aug[i]) {
      case 'R': fde_enc = (uint8_t)rd_bytes(&a, 1); break;
      case 'L': (void)rd_bytes(&a, 1); break;
      case 'P': {
        uint8_t penc = (uint8_t)rd_bytes(&a, 1);
        (void)rd_encoded(&a, (uint8_t)(penc & 0x7f), 0); /* skipped: only its width matters */
        break;
      }
      case 'B': case 'G': break;
      default: return rule_make(RULE_UNKNOWN, 0, 0); /* 'S' (signal frame) and the unknown */
      }
    }
    if (a.bad) return rule_make(RULE_UNKNOWN, 0, 0);
  } else if (aug[0] != 0) {
    return rule_make(RULE_UNKNOWN, 0, 0);
  }
  if (c.bad) return rule_make(RULE_UNKNOWN, 0, 0);

  uintptr_t pc_begin = rd_encoded(&f, fde_enc, 0);
  uint64_t pc_range = rd_encoded_value(&f, fde_enc);
  if (f.bad || pc < pc_begin || pc - pc_begin >= pc_range) return rule_make(RULE_UNKNOWN, 0, 0);
  if (aug[0] == 'z') {
    uint64_t alen = rd_uleb(&f);
    if (f.bad || alen > (uint64_t)(f.end - f.p)) return rule_make(RULE_UNKNOWN, 0, 0);
    f.p += alen;
  }

  cfa_state_t init = { .cfa_reg = DW_RSP, .cfa_off = 0, .rbp_how = REG_SAME, .ra_how = REG_SAME };
  if (!cfa_run(&c, &init, NULL, 0, UINTPTR_MAX, code_align, data_align, ra_reg))
    return rule_make(RULE_UNKNOWN, 0, 0);
  cfa_state_t s = init;
  if (!cfa_run(&f, &s, &init, pc_begin, pc, code_align, data_align, ra_reg))
    return rule_make(RULE_UNKNOWN, 0, 0);

  if (s.ra_how == REG_UNDEFINED) return rule_make(RULE_END, 0, 0); /* the outermost frame */
  if (s.cfa_expr || (s.cfa_reg != DW_RSP && s.cfa_reg != DW_RBP) || s.cfa_off < 8 ||
      s.cfa_off > INT32_MAX || (s.cfa_off & 7) != 0 || s.ra_how != REG_OFFSET || s.ra_off != -8)
    return rule_make(RULE_UNKNOWN, 0, 0);
  uint32_t rbp_off = 0;
  if (s.rbp_how == REG_OFFSET) {
    if (s.rbp_off > -8 || s.rbp_off < -(int64_t)0xffffff || (s.rbp_off & 7) != 0)
      return rule_make(RULE_UNKNOWN, 0, 0);
    rbp_off = (uint32_t)-s.rbp_off;
  } else if (s.rbp_how == REG_OTHER) {
    return rule_make(RULE_UNKNOWN, 0, 0);
  }
  return rule_make(s.cfa_reg == DW_RSP ? RULE_RSP : RULE_RBP, (uint32_t)s.cfa_off, rbp_off);
}

/* ---- the shared rule cache ---------------------------------------------------------------- */

/* Open addressing, keys inserted once and never moved. A slot's key is 0 (empty), CLAIMED
 * (a writer is filling it: readers look on), FORGOTTEN (palloc_cfi_forget) or a pc; the rule is written before the key is
 * published (release), so a reader that sees the pc (acquire) sees its rule. A full table is
 * replaced by one four times larger (the old one stays mapped: a walk may be reading it).
 * Lookups and inserts probe at most PROBES slots. */
enum { PROBES = 16, TABLE_MIN_BITS = 9, TABLE_MAX_BITS = 20 };
#define CLAIMED ((uintptr_t)1)
#define FORGOTTEN ((uintptr_t)2) /* the key of a rule for code that was unloaded: never matches */

typedef struct { _Atomic uintptr_t key; _Atomic uint64_t rule; } rule_slot_t;
typedef struct {
  unsigned bits;
  _Atomic uint32_t used;
  rule_slot_t slot[];
} rule_table_t;

static rule_table_t *_Atomic rule_table;
static _Atomic uint64_t rules_decoded, walks_left_to_libunwind;

static rule_table_t *table_new(unsigned bits) {
  size_t size = sizeof(rule_table_t) + ((size_t)1 << bits) * sizeof(rule_slot_t);
  rule_table_t *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (t == MAP_FAILED) return NULL;
  t->bits = bits;
  return t;
}

static inline size_t slot_of(uintptr_t pc, unsigned bits) {
  return (size_t)((pc * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits));
}

static inline __attribute__((always_inline)) bool table_find(rule_table_t *t, uintptr_t pc,
                                                          uint64_t *rule) {
  size_t mask = ((size_t)1 << t->bits) - 1;
  size_t i = slot_of(pc, t->bits);
  for (int k = 0; k < PROBES; k++, i = (i + 1) & mask) {
    uintptr_t key = atomic_load_explicit(&t->slot[i].key, memory_order_acquire);
    if (key == pc) {
      *rule = atomic_load_explicit(&t->slot[i].rule, memory_order_relaxed);
      return true;
    }
    if (key == 0) return false;
  }
  return false;
}

/* False: no free slot within PROBES (the caller grows the table). */
static bool table_put(rule_table_t *t, uintptr_t pc, uint64_t rule) {
  palloc_assert(pc > FORGOTTEN); /* return addresses - 1 are >= 4095 */
  size_t mask = ((size_t)1 << t->bits) - 1;
  size_t i = slot_of(pc, t->bits);
  for (int k = 0; k < PROBES; k++, i = (i + 1) & mask) {
    uintptr_t key = atomic_load_explicit(&t->slot[i].key, memory_order_acquire);
    if (key == pc) return true;
    if (key != 0 && key != FORGOTTEN) continue;
    /* An empty slot, or a forgotten one (reused: plugins loaded and unloaded in a loop take no
     * more room). Two threads putting the same pc may both succeed: a harmless duplicate. */
    uintptr_t seen = key;
    if (!atomic_compare_exchange_strong_explicit(&t->slot[i].key, &seen, CLAIMED,
                                                 memory_order_acquire, memory_order_relaxed)) {
      if (seen == pc) return true;
      continue;
    }
    atomic_store_explicit(&t->slot[i].rule, rule, memory_order_relaxed);
    atomic_store_explicit(&t->slot[i].key, pc, memory_order_release);
    if (key == 0) atomic_fetch_add_explicit(&t->used, 1, memory_order_relaxed);
    return true;
  }
  return false;
}

/* Makes the table four times larger when it is 3/4 full or pc found no slot; the entries are
 * carried over. Two threads may grow at once: one table wins, the other is unmapped unseen. */
static void table_grow(rule_table_t *t) {
  if (t->bits + 2 > TABLE_MAX_BITS) return; /* full: misses are decoded each time */
  rule_table_t *n = table_new(t->bits + 2);
  if (n == NULL) return;
  for (size_t i = 0; i < ((size_t)1 << t->bits); i++) {
    uintptr_t key = atomic_load_explicit(&t->slot[i].key, memory_order_acquire);
    if (key > FORGOTTEN)
      table_put(n, key, atomic_load_explicit(&t->slot[i].rule, memory_order_relaxed));
  }
  rule_table_t *expected = t;
  if (!atomic_compare_exchange_strong_explicit(&rule_table, &expected, n, memory_order_acq_rel,
                                               memory_order_acquire))
    munmap(n, sizeof(rule_table_t) + ((size_t)1 << n->bits) * sizeof(rule_slot_t));
}

/* A rule not in the table: decoded, and put there for the next walk. */
__attribute__((noinline)) static uint64_t rule_miss(uintptr_t pc) {
  rule_table_t *t = atomic_load_explicit(&rule_table, memory_order_acquire);
  uint64_t rule;
  if (t != NULL && table_find(t, pc, &rule)) return rule;
  rule = rule_decode(pc);
  atomic_fetch_add_explicit(&rules_decoded, 1, memory_order_relaxed);
  if (t == NULL) {
    rule_table_t *n = table_new(TABLE_MIN_BITS), *expected = NULL;
    if (n == NULL) return rule;
    if (!atomic_compare_exchange_strong_explicit(&rule_table, &expected, n, memory_order_acq_rel,
                                                 memory_order_acquire))
      munmap(n, sizeof(rule_table_t) + ((size_t)1 << n->bits) * sizeof(rule_slot_t));
    t = atomic_load_explicit(&rule_table, memory_order_acquire);
  }
  uint32_t cap = (uint32_t)1 << t->bits;
  if (!table_put(t, pc, rule) || atomic_load_explicit(&t->used, memory_order_relaxed) > cap / 4 * 3)
    table_grow(t);
  return rule;
}

/* The rules of code in [lo, hi), which was unloaded: their keys become FORGOTTEN (readers and
 * inserts pass over them; the next growth drops them), so that code loaded there later is
 * decoded afresh. In place, so that a program that loads and unloads plugins in a loop does not
 * leave a table behind each time. A walk that read such a key just before sees the old rule: it
 * was walking through code being unloaded, which is the program's bug. */
void palloc_cfi_forget(uintptr_t lo, uintptr_t hi) {
  rule_table_t *t = atomic_load_explicit(&rule_table, memory_order_acquire), *seen;
  do { /* again if a growth copied the table meanwhile */
    seen = t;
    if (t == NULL) return;
    for (size_t i = 0; i < ((size_t)1 << t->bits); i++) {
      uintptr_t key = atomic_load_explicit(&t->slot[i].key, memory_order_relaxed);
      if (key > FORGOTTEN && key >= lo && key < hi)
        atomic_store_explicit(&t->slot[i].key, FORGOTTEN, memory_order_release);
    }
    t = atomic_load_explicit(&rule_table, memory_order_acquire);
  } while (t != seen);
}

void palloc_cfi_counts(uint64_t *decoded, uint64_t *to_libunwind, uint64_t *slots) {
  *decoded = atomic_load_explicit(&rules_decoded, memory_order_relaxed);
  *to_libunwind = atomic_load_explicit(&walks_left_to_libunwind, memory_order_relaxed);
  rule_table_t *t = atomic_load_explicit(&rule_table, memory_order_acquire);
  *slots = t ? (uint64_t)1 << t->bits : 0;
}

/* ---- the walk ----------------------------------------------------------------------------- */

/* From the frame at fp (a frame of palloc's own, built with a frame pointer: [fp] is its
 * caller's rbp, [fp + 8] its return address) outwards: the return addresses into buf, at most
 * max, or -1 when a frame needs libunwind (the top of this file). The first frames whose
 * return addresses are in [skip_lo, skip_hi) (palloc's own: stack.c) are walked, not stored.
 * Reads are of 8 bytes inside [lo, hi); each CFA is above the one before. */
PALLOC_TEXT int palloc_cfi_walk_from(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t skip_lo,
                                     uintptr_t skip_hi, uintptr_t *buf, int max) {
  if (hi < lo || hi - lo < 16 || fp < lo || fp > hi - 16 || (fp & 7) != 0) goto general;
  uintptr_t rsp = fp + 16, rbp = ((const uintptr_t *)fp)[0], ip = ((const uintptr_t *)fp)[1];
  /* The table, its hash shift and mask, loaded once and again only after a miss. */
  rule_table_t *t = atomic_load_explicit(&rule_table, memory_order_acquire);
  unsigned shift = t ? 64 - t->bits : 0;
  size_t mask = t ? ((size_t)1 << t->bits) - 1 : 0;
  bool skipping = true;
  for (int n = 0; n < max;) {
    palloc_assert(rsp >= lo && rsp <= hi && (rsp & 7) == 0);
    if (ip < 4096) return n;
    if (!skipping || ip - skip_lo >= skip_hi - skip_lo) {
      skipping = false;
      buf[n++] = ip;
    }
    /* table_find's probe, written out with the table's shift and mask kept in registers: as a
     * call of table_find (inlined, the shift and mask passed in) the walk measured 2-5
     * instructions a frame more (callgrind, scale.c depth 128). */
    uintptr_t pc = ip - 1;
    uint64_t rule;
    size_t i = t ? (size_t)((pc * UINT64_C(0x9E3779B97F4A7C15)) >> shift) : 0;
    uintptr_t key = t ? atomic_load_explicit(&t->slot[i].key, memory_order_acquire) : 0;
    if (palloc_likely(key == pc)) {
      rule = atomic_load_explicit(&t->slot[i].rule, memory_order_relaxed);
    } else {
      /* A collision (probe on) or a miss. */
      int k = 1;
      while (key != 0 && key != pc && k < PROBES) {
        i = (i + 1) & mask;
        key = atomic_load_explicit(&t->slot[i].key, memory_order_acquire);
        k++;
      }
      if (key == pc && t != NULL) {
        rule = atomic_load_explicit(&t->slot[i].rule, memory_order_relaxed);
      } else {
        rule = rule_miss(pc);
        t = atomic_load_explicit(&rule_table, memory_order_acquire);
        shift = t ? 64 - t->bits : 0;
        mask = t ? ((size_t)1 << t->bits) - 1 : 0;
      }
    }
    unsigned kind = RULE_KIND(rule);
    if (palloc_unlikely(kind > RULE_RBP)) {
      if (kind == RULE_END) return n;
      goto general;
    }
    /* The CFA lies above this frame's rsp and at most at hi, so the return address's 8 bytes
     * below it are inside [rsp, hi); a multiple of 8, as every offset in a rule is. */
    uintptr_t cfa;
    if (__builtin_add_overflow(kind == RULE_RBP ? rbp : rsp, RULE_CFA_OFF(rule), &cfa) ||
        cfa <= rsp || cfa > hi || (cfa & 7) != 0)
      goto general;
    ip = ((const uintptr_t *)cfa)[-1];
    uintptr_t rbp_off = RULE_RBP_OFF(rule); /* 0, or in [8, cfa - rsp]: inside [rsp, cfa) */
    if (rbp_off != 0) {
      if (rbp_off > cfa - rsp) goto general;
      rbp = *(const uintptr_t *)(cfa - rbp_off);
    }
    rsp = cfa;
  }
  return max;
general:
  atomic_fetch_add_explicit(&walks_left_to_libunwind, 1, memory_order_relaxed);
  return -1;
}

bool palloc_cfi_available(void) { return _dl_find_object != NULL; }

unsigned palloc_cfi_rule(uintptr_t pc, uint32_t *cfa_off, uint32_t *rbp_off) {
  uint64_t rule = rule_decode(pc);
  *cfa_off = (uint32_t)RULE_CFA_OFF(rule);
  *rbp_off = (uint32_t)RULE_RBP_OFF(rule);
  return RULE_KIND(rule);
}

#else /* not x86-64 Linux: libunwind takes every stack */

PALLOC_TEXT int palloc_cfi_walk_from(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t skip_lo,
                                     uintptr_t skip_hi, uintptr_t *buf, int max) {
  (void)fp, (void)lo, (void)hi, (void)skip_lo, (void)skip_hi, (void)buf, (void)max;
  return -1;
}
void palloc_cfi_forget(uintptr_t lo, uintptr_t hi) { (void)lo, (void)hi; }
void palloc_cfi_counts(uint64_t *decoded, uint64_t *to_libunwind, uint64_t *slots) {
  *decoded = *to_libunwind = *slots = 0;
}
bool palloc_cfi_available(void) { return false; }
unsigned palloc_cfi_rule(uintptr_t pc, uint32_t *cfa_off, uint32_t *rbp_off) {
  (void)pc;
  *cfa_off = *rbp_off = 0;
  return 3;
}

#endif
