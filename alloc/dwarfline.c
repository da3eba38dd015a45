/* dwarfline.c - file and line for addresses, from .debug_line (DWARF 2 to 5).
 *
 * One pass over every line program of the section, each unit read whole into one scratch buffer
 * and run through the line-number state machine. Each row covers [its address, the next row's
 * address) in its sequence, and the last row at an address wins, as in libdw's dwarf_getsrc_die;
 * rows are used whatever their is_stmt, as libdw does. Only the (unit, file index) of the row is
 * kept during the pass: the file names of the winning rows are resolved at the end, one unit
 * header per distinct (unit, file).
 *
 * File names are made absolute as libdw does: the directory of the entry, joined to directory 0
 * (the compilation directory in DWARF 5) if relative. Before DWARF 5, directory 0 is the CU's
 * comp_dir, which lives in .debug_info: such names stay relative.
 *
 * All decoding goes through cur_t, a cursor that never reads past its end: a read past it
 * yields 0 and marks the cursor bad, and every loop over the data stops on a bad cursor.
 */
#include <limits.h>
#include <string.h>
#include "elfread.h"

/* The DWARF constants used here (DWARF 5 standard, section 7.22 and 7.5.6). */
enum {
  DW_LNS_copy = 1, DW_LNS_advance_pc, DW_LNS_advance_line, DW_LNS_set_file, DW_LNS_set_column,
  DW_LNS_negate_stmt, DW_LNS_set_basic_block, DW_LNS_const_add_pc, DW_LNS_fixed_advance_pc,
  DW_LNS_set_prologue_end, DW_LNS_set_epilogue_begin, DW_LNS_set_isa,
  DW_LNE_end_sequence = 1, DW_LNE_set_address = 2,
  DW_LNCT_path = 1, DW_LNCT_directory_index = 2,
  DW_FORM_data2 = 0x05, DW_FORM_data4 = 0x06, DW_FORM_data8 = 0x07, DW_FORM_string = 0x08,
  DW_FORM_block = 0x09, DW_FORM_data1 = 0x0b, DW_FORM_strp = 0x0e, DW_FORM_udata = 0x0f,
  DW_FORM_data16 = 0x1e, DW_FORM_line_strp = 0x1f,
};

typedef struct {
  const uint8_t *p, *end;
  bool bad;
} cur_t;

static uint64_t u8(cur_t *c) {
  if (c->p >= c->end) { c->bad = true; return 0; }
  return *c->p++;
}
static uint64_t fixed(cur_t *c, int n) {
  if (c->end - c->p < n) { c->bad = true; c->p = c->end; return 0; }
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)c->p[i] << (8 * i);
  c->p += n;
  return v;
}
/* LEB128 of any length (bits past 64 are dropped); the shift stops growing at 64, so that no
 * length of continuation bytes can overflow it. */
static uint64_t uleb(cur_t *c) {
  uint64_t v = 0;
  for (int sh = 0;;) {
    uint64_t b = u8(c);
    if (sh < 64) v |= (b & 0x7f) << sh, sh += 7;
    if (!(b & 0x80) || c->bad) return v;
  }
}
static int64_t sleb(cur_t *c) {
  uint64_t v = 0, b;
  int sh = 0;
  do {
    b = u8(c);
    if (sh < 64) v |= (b & 0x7f) << sh, sh += 7;
  } while ((b & 0x80) && !c->bad);
  if (sh < 64 && (b & 0x40)) v |= ~(uint64_t)0 << sh;
  return (int64_t)v;
}
static const char *cstr(cur_t *c) {
  const char *s = (const char *)c->p;
  const uint8_t *z = memchr(c->p, 0, (size_t)(c->end - c->p));
  if (z == NULL) { c->bad = true; c->p = c->end; return ""; }
  c->p = z + 1;
  return s;
}

/* A row's line as an int; one that does not fit (a corrupt program) is no line (0). */
static int line_int(uint64_t line) { return line <= INT_MAX ? (int)line : 0; }

/* Every row of a sequence covers [row, next row); assign it to the wanted addresses there. */
static void cover(palloc_elf_t *e, uint64_t lo, uint64_t hi, uint64_t unit, uint64_t file,
                  int line) {
  for (size_t i = palloc_symq_lower(e->w, e->n, lo); i < e->n && e->w[i].rel < hi; i++) {
    if (e->matches_left == 0) return; /* the pass ends: run_program and its caller check it */
    e->matches_left--;
    e->w[i].file_off = unit;
    e->w[i].file_idx = file;
    e->w[i].line = line;
    e->w[i].has_row = true;
  }
}

/* A v5 entry's path-like attribute or number, by form; strings from .debug_line_str/.debug_str
 * are read only when wanted (want_str). */
static bool form_value(cur_t *c, uint64_t form, bool dwarf64, palloc_elf_t *e, bool want_str,
                       const char **str, uint64_t *num) {
  const Elf64_Shdr *sec = NULL;
  uint64_t off = 0;
  switch (form) {
    case DW_FORM_string: *str = cstr(c); return true;
    case DW_FORM_line_strp: sec = e->line_str; off = fixed(c, dwarf64 ? 8 : 4); break;
    case DW_FORM_strp: sec = want_str ? palloc_elf_debug_str(e) : e->str; off = fixed(c, dwarf64 ? 8 : 4); break;
    case DW_FORM_udata: *num = uleb(c); return true;
    case DW_FORM_data1: *num = fixed(c, 1); return true;
    case DW_FORM_data2: *num = fixed(c, 2); return true;
    case DW_FORM_data4: *num = fixed(c, 4); return true;
    case DW_FORM_data8: *num = fixed(c, 8); return true;
    case DW_FORM_data16: fixed(c, 8); fixed(c, 8); return true;
    case DW_FORM_block: {
      uint64_t n = uleb(c);
      if ((uint64_t)(c->end - c->p) < n) return false;
      c->p += n;
      return true;
    }
    default: return false; /* strx and others: not resolvable here */
  }
  if (want_str && sec != NULL && off < sec->sh_size) *str = palloc_elf_str(e, sec, off);
  return true;
}

/* Parses a unit's directory or file table (v5). With want_at = index, only the entry at that
 * index is decoded (its path and directory); returns false if the table is malformed. */
static bool v5_table(cur_t *c, bool dwarf64, palloc_elf_t *e, uint64_t want_at,
                     const char **path, uint64_t *dir) {
  uint64_t nfmt = u8(c), fmt[16][2];
  if (nfmt > 16) return false;
  for (uint64_t i = 0; i < nfmt; i++) fmt[i][0] = uleb(c), fmt[i][1] = uleb(c);
  uint64_t count = uleb(c);
  /* Every form below consumes at least one byte, so with a format each entry moves the cursor
   * and the loop ends with the data whatever the count; without one, entries are empty. */
  if (nfmt == 0) return !c->bad;
  for (uint64_t k = 0; k < count && !c->bad; k++) {
    for (uint64_t i = 0; i < nfmt; i++) {
      const char *s = NULL;
      uint64_t v = 0;
      bool want = k == want_at && fmt[i][0] == DW_LNCT_path;
      if (!form_value(c, fmt[i][1], dwarf64, e, want, &s, &v)) return false;
      if (k == want_at && fmt[i][0] == DW_LNCT_path) *path = s;
      if (k == want_at && fmt[i][0] == DW_LNCT_directory_index) *dir = v;
    }
  }
  return !c->bad;
}

/* One unit of .debug_line, read whole into a scratch buffer, its header decoded. */
typedef struct {
  uint64_t off;          /* the unit's offset in the section */
  unsigned version;
  bool dwarf64;
  unsigned min_inst, line_range, opcode_base;
  int line_base;
  const uint8_t *oplen;  /* standard_opcode_lengths[opcode_base - 1] */
  cur_t tables;          /* the directory and file tables (v5: directory table first) */
  cur_t prog;            /* the line number program, up to the end of the unit */
} unit_t;

static char *join(const char *a, const char *b, palloc_scratch_t *s) {
  if (a == NULL || *a == 0 || b[0] == '/') return (char *)b;
  size_t na = strlen(a), nb = strlen(b);
  char *r = palloc_scratch_alloc(s, na + nb + 2);
  if (r == NULL) return (char *)b;
  memcpy(r, a, na);
  r[na] = '/';
  memcpy(r + na + 1, b, nb + 1);
  return r;
}

/* The full name of file `idx` of the unit whose tables start at h. */
static const char *file_name(palloc_elf_t *e, const unit_t *h, uint64_t idx) {
  cur_t c = h->tables;
  if (h->version >= 5) {
    const char *d0 = NULL, *name = NULL, *dir = NULL;
    uint64_t di = 0, unused;
    cur_t dirs = c;
    if (!v5_table(&c, h->dwarf64, e, UINT64_MAX, &d0, &unused)) return NULL;
    if (!v5_table(&c, h->dwarf64, e, idx, &name, &di) || name == NULL) return NULL;
    if (name[0] == '/') return name;
    if (!v5_table(&dirs, h->dwarf64, e, 0, &d0, &unused)) d0 = NULL;
    dirs = h->tables;
    if (di != 0 && !v5_table(&dirs, h->dwarf64, e, di, &dir, &unused)) dir = NULL;
    if (di == 0) dir = d0;
    if (dir != NULL && dir[0] != '/') dir = join(d0, dir, e->s);
    return join(dir, name, e->s);
  }
  /* DWARF 2-4: directories (strings) then files (name, dir, mtime, length), 1-based. */
  const char *dir_of[1] = {NULL};
  uint64_t ndirs = 0;
  cur_t dirs = c;
  while (!c.bad && *cstr(&c) != 0) ndirs++;
  for (uint64_t k = 1; !c.bad; k++) {
    const char *name = cstr(&c);
    if (*name == 0) break;
    uint64_t di = uleb(&c);
    uleb(&c), uleb(&c);
    if (k != idx) continue;
    if (name[0] == '/' || di == 0 || di > ndirs) return name; /* dir 0: the CU's comp_dir */
    for (uint64_t j = 1; j <= di; j++) dir_of[0] = cstr(&dirs);
    return join(dir_of[0], name, e->s);
  }
  return NULL;
}

/* A resolved file name: (unit offset, file index) -> name. */
typedef struct {
  uint64_t off, idx;
  const char *name;
  bool used;
} fname_t;

/* The unit reader's buffer, reused from unit to unit. */
typedef struct {
  uint8_t *buf;
  size_t cap;
} unitbuf_t;

enum { UNIT_OK, UNIT_SKIP, UNIT_END };
#define UNIT_MAX ((uint64_t)256 << 20)

/* Reads the unit at off (whole, or only its header) and decodes its header. UNIT_SKIP: the unit
 * is not one this reader understands, but its length is sound and the next unit is at *next;
 * UNIT_END: no unit can be read here (end of the section, a length past it, a read error), so
 * none after it either. */
static int read_unit(palloc_elf_t *e, unitbuf_t *ub, uint64_t off, bool whole, unit_t *u,
                     uint64_t *next) {
  const Elf64_Shdr *dl = e->line;
  if (off >= dl->sh_size || dl->sh_size - off < 4) return UNIT_END;
  uint8_t lenb[12];
  size_t lenn = dl->sh_size - off < 12 ? (size_t)(dl->sh_size - off) : 12;
  if (!palloc_elf_read(e, lenb, lenn, dl->sh_offset + off)) return UNIT_END;
  uint64_t len = 0;
  size_t skip = 4;
  bool dwarf64 = false;
  memcpy(&len, lenb, 4);
  len &= 0xffffffffu;
  if (len == 0xffffffffu && lenn == 12) {
    memcpy(&len, lenb + 4, 8);
    skip = 12;
    dwarf64 = true;
  } else if (len >= 0xfffffff0u) {
    return UNIT_END;
  }
  /* the section lies inside the file (palloc_elf_open), so len is bounded by the file's size */
  if (len > dl->sh_size - off - skip) return UNIT_END;
  *next = off + skip + len;
  /* A unit is read whole into scratch memory, i.e. into the host's RSS: one larger than any
   * compiler writes (a few MB for the largest C++ units) is skipped rather than read. */
  if (len > UNIT_MAX) return UNIT_SKIP;
  if (!whole) { /* the header's length, from its first fields: up to 12 bytes */
    uint8_t pre[12];
    size_t np = len < sizeof pre ? (size_t)len : sizeof pre;
    if (!palloc_elf_read(e, pre, np, dl->sh_offset + off + skip)) return UNIT_END;
    cur_t c = {pre, pre + np, false};
    unsigned version = (unsigned)fixed(&c, 2);
    if (version >= 5) fixed(&c, 2);
    uint64_t hlen = fixed(&c, dwarf64 ? 8 : 4);
    size_t at = (size_t)(c.p - pre);
    if (c.bad || hlen > len - at) return UNIT_SKIP;
    len = at + hlen; /* the program is not read */
  }
  if (ub->buf == NULL || len > ub->cap) { /* also for len 0: no cursor over a NULL buffer */
    palloc_scratch_free(e->s, ub->buf);
    ub->cap = len < 65536 ? 65536 : (size_t)len;
    ub->buf = palloc_scratch_alloc(e->s, ub->cap);
    if (ub->buf == NULL) {
      ub->cap = 0;
      return UNIT_END;
    }
  }
  if (!palloc_elf_read(e, ub->buf, (size_t)len, dl->sh_offset + off + skip)) return UNIT_END;
  cur_t c = {ub->buf, ub->buf + len, false};
  memset(u, 0, sizeof *u);
  u->off = off;
  u->dwarf64 = dwarf64;
  u->version = (unsigned)fixed(&c, 2);
  if (u->version < 2 || u->version > 5) return UNIT_SKIP;
  if (u->version >= 5) fixed(&c, 2); /* address_size, segment_selector_size */
  uint64_t hlen = fixed(&c, dwarf64 ? 8 : 4);
  if (c.bad || hlen > (uint64_t)(c.end - c.p)) return UNIT_SKIP;
  const uint8_t *hend = c.p + hlen;
  u->prog = (cur_t){hend, c.end, false};
  c.end = hend; /* the fields below and the tables lie inside the header */
  u->min_inst = (unsigned)u8(&c);
  if (u->version >= 4) u8(&c); /* maximum_operations_per_instruction: VLIW only */
  u8(&c); /* default_is_stmt: rows are used whatever their is_stmt, as libdw does */
  u->line_base = (int8_t)u8(&c);
  u->line_range = (unsigned)u8(&c);
  u->opcode_base = (unsigned)u8(&c);
  if (c.bad || u->line_range == 0 || u->opcode_base == 0) return UNIT_SKIP;
  if ((size_t)(c.end - c.p) < u->opcode_base - 1) return UNIT_SKIP;
  u->oplen = c.p;
  c.p += u->opcode_base - 1;
  u->tables = c;
  return UNIT_OK;
}

/* Runs the unit's line number program: a row is emitted by special opcodes, DW_LNS_copy and
 * DW_LNE_end_sequence. Every iteration consumes at least its opcode byte. */
static void run_program(palloc_elf_t *e, const unit_t *u) {
  cur_t p = u->prog;
  unsigned opcode_base = u->opcode_base, line_range = u->line_range, min_inst = u->min_inst;
  uint64_t addr = 0, file = 1, prev_addr = 0, prev_file = 0;
  uint64_t line = 1, prev_line = 0; /* wraps like the unsigned it is (no signed overflow) */
  bool have_prev = false;
#define ROW()                                                                                 \
  do {                                                                                        \
    if (have_prev && addr > prev_addr)                                                        \
      cover(e, prev_addr, addr, u->off, prev_file, line_int(prev_line));                      \
    prev_addr = addr, prev_file = file, prev_line = line, have_prev = true;                   \
  } while (0)
  while (p.p < p.end && !p.bad && e->matches_left > 0) {
    unsigned op = (unsigned)u8(&p);
    if (op >= opcode_base) {
      unsigned adj = op - opcode_base;
      addr += (uint64_t)(adj / line_range) * min_inst;
      line += (uint64_t)(int64_t)(u->line_base + (int)(adj % line_range));
      ROW();
      continue;
    }
    switch (op) {
      case 0: { /* extended */
        uint64_t n = uleb(&p);
        if (n == 0 || n > (uint64_t)(p.end - p.p)) { p.bad = true; break; }
        const uint8_t *next = p.p + n;
        unsigned eop = (unsigned)u8(&p);
        if (eop == DW_LNE_end_sequence) {
          ROW();
          have_prev = false;
          addr = 0, file = 1, line = 1;
        } else if (eop == DW_LNE_set_address) {
          addr = fixed(&p, (int)(n - 1 > 8 ? 8 : n - 1));
        }
        p.p = next;
        break;
      }
      case DW_LNS_copy: ROW(); break;
      case DW_LNS_advance_pc: addr += uleb(&p) * min_inst; break;
      case DW_LNS_advance_line: line += (uint64_t)sleb(&p); break;
      case DW_LNS_set_file: file = uleb(&p); break;
      case DW_LNS_set_column: uleb(&p); break;
      case DW_LNS_negate_stmt: case DW_LNS_set_basic_block: break;
      case DW_LNS_const_add_pc: addr += (uint64_t)((255 - opcode_base) / line_range) * min_inst; break;
      case DW_LNS_fixed_advance_pc: addr += fixed(&p, 2); break;
      case DW_LNS_set_prologue_end: case DW_LNS_set_epilogue_begin: break;
      case DW_LNS_set_isa: uleb(&p); break;
      default: /* an opcode this reader does not know (13 <= op < opcode_base): skip operands */
        for (unsigned k = 0; k < u->oplen[op - 1] && !p.bad; k++) uleb(&p);
    }
  }
#undef ROW
}

/* Charges a read or a walk of the unit's tables to the header budget; false once it is spent. */
static bool charge_header(palloc_elf_t *e, const unit_t *u) {
  uint64_t n = (uint64_t)(u->tables.end - u->tables.p) + 64;
  if (n > e->header_bytes_left) {
    e->header_bytes_left = 0;
    return false;
  }
  e->header_bytes_left -= n;
  return true;
}

static const char *dup(palloc_scratch_t *s, const char *str) {
  size_t n = strlen(str) + 1;
  char *c = palloc_scratch_alloc(s, n);
  if (c) memcpy(c, str, n);
  return c;
}

void palloc_dwarf_lines(palloc_elf_t *e) {
  unitbuf_t ub = {NULL, 0};
  unit_t u;
  e->matches_left = PALLOC_ELF_MATCHES(e->n);
  /* Each unit's length is checked against the section before the next offset is taken from it,
   * and next > off always (a unit is at least its 4-byte length): the walk ends. */
  for (uint64_t off = 0, next = 0;; off = next) {
    int r = read_unit(e, &ub, off, true, &u, &next);
    if (r == UNIT_END || e->matches_left == 0) break;
    if (r == UNIT_OK) run_program(e, &u);
  }
  /* File names, once per distinct (unit, file) (a hash table in the scratch arena; without
   * memory for it, once per address), from the unit's header: read again, only the header, and
   * kept while the next addresses need the same unit (they are sorted, units cover ranges). A
   * name may point into the unit buffer, which the next read overwrites: each is copied. */
  uint64_t loaded = UINT64_MAX;
  int loaded_r = UNIT_END;
  size_t slots = 16;
  while (slots < 2 * e->n) slots *= 2;
  fname_t *tab = palloc_scratch_alloc(e->s, slots * sizeof *tab);
  if (tab != NULL) memset(tab, 0, slots * sizeof *tab);
  for (size_t i = 0; i < e->n; i++) {
    palloc_symq_t *w = &e->w[i];
    if (!w->has_row) continue;
    fname_t *t = NULL;
    if (tab != NULL) {
      size_t h = (size_t)(((w->file_off * 0x9e3779b97f4a7c15ull) ^ w->file_idx) *
                          0xbf58476d1ce4e5b9ull >> 32) & (slots - 1);
      while (tab[h].used && (tab[h].off != w->file_off || tab[h].idx != w->file_idx))
        h = (h + 1) & (slots - 1);
      t = &tab[h];
      if (t->used) {
        w->file = t->name;
        continue;
      }
    }
    const char *name = NULL;
    uint64_t next;
    /* checked again: the unit was sound in the first pass, but the file may have changed */
    if (w->file_off != loaded) {
      loaded = w->file_off;
      loaded_r = read_unit(e, &ub, loaded, false, &u, &next);
      if (loaded_r == UNIT_OK && !charge_header(e, &u)) loaded_r = UNIT_END;
    }
    if (loaded_r == UNIT_OK && charge_header(e, &u)) {
      name = file_name(e, &u, w->file_idx);
      if (name != NULL) name = dup(e->s, name);
    }
    if (t != NULL) *t = (fname_t){w->file_off, w->file_idx, name, true};
    w->file = name;
  }
}
