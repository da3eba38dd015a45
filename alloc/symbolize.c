/* symbolize.c - function, file and line for the addresses of a profile, from the loaded files'
 * own ELF symbol tables and DWARF line tables.
 *
 * Only the addresses that appear in the profile are looked up, at write time, and the exit
 * profile is written while the program's heap is still live: every page touched here adds to the
 * process's peak RSS. That is why this is a small reader of its own and not libdw: loading libdw
 * (with libelf and libbz2) and running its DWARF code made ~700 KB of their text resident (the
 * kernel maps library text 64 KB around each fault), and its mmap'd view of each file added the
 * pages it read. Here the files are read with pread through small scratch buffers (page-cache
 * pages read with pread are not the process's RSS), and the code is a few pages of libpalloc.
 *
 * Per write, the missing addresses are sorted and grouped by loaded object (dl_iterate_phdr).
 * For each object with addresses, its file (/proc/self/exe for the program) is read:
 *  - function: the symbol of .symtab (else .dynsym) that contains the address; among several,
 *    the nearest start, then the stronger binding (weak > global > local), then the smaller
 *    size, as libdw's dwfl_module_addrname chooses. One pass over the table, chunk by chunk;
 *  - file:line: one pass over every line program of .debug_line (DWARF 2 to 5); each row covers
 *    [its address, the next row's address) in its sequence, and the last row at an address wins,
 *    as in libdw's dwarf_getsrc_die. File names are made absolute as libdw does: the directory
 *    of the entry, joined to directory 0 (the compilation directory in DWARF 5) if relative.
 * Compressed debug sections and separate debug files (/usr/lib/debug, debuglink, debuginfod) are
 * not read: such frames get function names without lines (`palloc symbolize` or pprof can add
 * them offline). A file that cannot be read gives no names for its frames; pprof then
 * symbolizes them (the mapping's has_functions stays false).
 *
 * The cache maps address -> (function, file, line) across writes (continuous profiling writes
 * the same addresses again and again). Its memory is bounded: entries and their strings live in
 * one scratch arena that is dropped and rebuilt when it passes SYMCACHE_MAX_BYTES or its table
 * reaches SYMCACHE_MAX_SLOTS. The table starts small and doubles at 3/4 full, so a small profile
 * touches a few pages, not a 2 MiB table. Only the writer (under the writer lock) touches it.
 */
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <unistd.h>
#include "profinternal.h"

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

#define SYMCACHE_MIN_SLOTS 256            /* powers of two; at most 3/4 used */
#define SYMCACHE_MAX_SLOTS 65536
#define SYMCACHE_MAX_BYTES ((uint64_t)32 << 20)
#define CHUNK (16 * 1024)                 /* symbol table read buffer */

typedef struct {
  uintptr_t addr; /* 0 = empty */
  palloc_sym_t sym;
} entry_t;

static palloc_scratch_t *cache_arena;
static entry_t *cache;
static size_t cache_used, cache_slots;

static bool cache_reset(void) {
  palloc_scratch_destroy(cache_arena);
  cache_arena = palloc_scratch_new();
  /* Fresh scratch memory is fresh mmap memory: already zero. */
  cache_slots = SYMCACHE_MIN_SLOTS;
  cache = cache_arena ? palloc_scratch_alloc(cache_arena, cache_slots * sizeof *cache) : NULL;
  cache_used = 0;
  return cache != NULL;
}

uint64_t palloc_symcache_bytes(void) { return cache_arena ? palloc_scratch_peak(cache_arena) : 0; }

static entry_t *slot_in(entry_t *t, size_t slots, uintptr_t addr) {
  size_t i = (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 40) & (slots - 1);
  while (t[i].addr != 0 && t[i].addr != addr) i = (i + 1) & (slots - 1);
  return &t[i];
}
static entry_t *slot(uintptr_t addr) { return slot_in(cache, cache_slots, addr); }

/* Room for n more entries: doubles the table (the old one stays in the arena until the next
 * reset) or, past the bounds, starts the cache over. */
static bool cache_make_room(size_t n) {
  if (cache != NULL && palloc_scratch_peak(cache_arena) <= SYMCACHE_MAX_BYTES) {
    size_t want = cache_slots;
    while ((cache_used + n) * 4 > want * 3 && want < SYMCACHE_MAX_SLOTS) want *= 2;
    if ((cache_used + n) * 4 <= want * 3) {
      if (want == cache_slots) return true;
      entry_t *t = palloc_scratch_alloc(cache_arena, want * sizeof *t);
      if (t != NULL) {
        memset(t, 0, want * sizeof *t); /* the arena may reuse a freed block */
        for (size_t i = 0; i < cache_slots; i++)
          if (cache[i].addr != 0) *slot_in(t, want, cache[i].addr) = cache[i];
        cache = t;
        cache_slots = want;
        return true;
      }
    }
  }
  if (!cache_reset()) return false;
  while (n * 4 > cache_slots * 3 && cache_slots < SYMCACHE_MAX_SLOTS) cache_slots *= 2;
  if (n * 4 > cache_slots * 3) return false;
  cache = palloc_scratch_alloc(cache_arena, cache_slots * sizeof *cache);
  return cache != NULL;
}

static const char *keep(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *c = palloc_scratch_alloc(cache_arena, n);
  if (c) memcpy(c, s, n);
  return c;
}

/* ---- one write's lookups ------------------------------------------------------------------ */

/* An address being symbolized: rel is the address in the file's terms (minus the load bias). */
typedef struct {
  uintptr_t addr, rel;
  const Elf64_Sym *best; /* the chosen symbol (a copy in sym), if any */
  Elf64_Sym sym;
  uint64_t file_off;     /* the row's file: .debug_line unit offset and file index */
  uint64_t file_idx;
  int line;
  bool has_row;          /* a line-table row covers the address */
  const char *func, *file;
} want_t;

typedef struct {
  int fd;
  palloc_scratch_t *s;
  Elf64_Shdr *sh;
  size_t shnum;
  want_t *w;   /* sorted by rel */
  size_t n;
} file_t;

static bool read_at(int fd, void *buf, size_t n, uint64_t off) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return true;
}

/* The NUL-terminated string at off (read in pieces; NULL if unreadable). */
static char *read_str(int fd, uint64_t off, uint64_t limit, palloc_scratch_t *s) {
  size_t cap = 256;
  for (;;) {
    if (off >= limit) return NULL;
    size_t n = (uint64_t)cap < limit - off ? cap : (size_t)(limit - off);
    char *b = palloc_scratch_alloc(s, n + 1);
    if (b == NULL) return NULL;
    ssize_t r = pread(fd, b, n, (off_t)off);
    if (r <= 0) return NULL;
    b[r] = 0;
    if (strlen(b) < (size_t)r || (size_t)r == limit - off) return b;
    palloc_scratch_free(s, b);
    if (cap >= (1u << 20)) return NULL;
    cap *= 4;
  }
}

/* First index i with w[i].rel >= rel. */
static size_t lower(const want_t *w, size_t n, uint64_t rel) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (w[mid].rel < rel) lo = mid + 1; else hi = mid;
  }
  return lo;
}

static int bind_rank(unsigned char info) {
  switch (ELF64_ST_BIND(info)) {
    case STB_WEAK: return 2;
    case STB_GLOBAL: return 1;
    default: return 0;
  }
}

/* One pass over a symbol table: each wanted address keeps the best symbol that contains it. */
static void scan_symbols(file_t *f, const Elf64_Shdr *tab) {
  if (tab->sh_entsize != sizeof(Elf64_Sym) || tab->sh_link >= f->shnum) return;
  const Elf64_Shdr *str = &f->sh[tab->sh_link];
  Elf64_Sym *buf = palloc_scratch_alloc(f->s, CHUNK);
  if (buf == NULL) return;
  size_t per = CHUNK / sizeof(Elf64_Sym), total = tab->sh_size / sizeof(Elf64_Sym);
  for (size_t at = 0; at < total; at += per) {
    size_t k = total - at < per ? total - at : per;
    if (!read_at(f->fd, buf, k * sizeof *buf, tab->sh_offset + at * sizeof *buf)) break;
    for (size_t j = 0; j < k; j++) {
      const Elf64_Sym *y = &buf[j];
      int type = ELF64_ST_TYPE(y->st_info);
      if (y->st_size == 0 || y->st_shndx == SHN_UNDEF ||
          (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE))
        continue;
      for (size_t i = lower(f->w, f->n, y->st_value);
           i < f->n && f->w[i].rel < y->st_value + y->st_size; i++) {
        want_t *w = &f->w[i];
        const Elf64_Sym *b = w->best;
        if (b == NULL || y->st_value > b->st_value ||
            (y->st_value == b->st_value &&
             (bind_rank(y->st_info) > bind_rank(b->st_info) ||
              (bind_rank(y->st_info) == bind_rank(b->st_info) && y->st_size < b->st_size)))) {
          w->sym = *y;
          w->best = &w->sym;
        }
      }
    }
  }
  palloc_scratch_free(f->s, buf);
  for (size_t i = 0; i < f->n; i++)
    if (f->w[i].best && f->w[i].func == NULL)
      f->w[i].func = read_str(f->fd, str->sh_offset + f->w[i].sym.st_name,
                              str->sh_offset + str->sh_size, f->s);
}

/* ---- DWARF line programs ------------------------------------------------------------------ */

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
static uint64_t uleb(cur_t *c) {
  uint64_t v = 0;
  for (int sh = 0;; sh += 7) {
    uint64_t b = u8(c);
    if (sh < 64) v |= (b & 0x7f) << sh;
    if (!(b & 0x80) || c->bad) return v;
  }
}
static int64_t sleb(cur_t *c) {
  uint64_t v = 0, b;
  int sh = 0;
  do {
    b = u8(c);
    if (sh < 64) v |= (b & 0x7f) << sh;
    sh += 7;
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

/* Every row of a sequence covers [row, next row); assign it to the wanted addresses there. */
static void cover(file_t *f, uint64_t lo, uint64_t hi, uint64_t unit, uint64_t file, int line) {
  for (size_t i = lower(f->w, f->n, lo); i < f->n && f->w[i].rel < hi; i++) {
    f->w[i].file_off = unit;
    f->w[i].file_idx = file;
    f->w[i].line = line;
    f->w[i].has_row = true;
  }
}

typedef struct {
  const Elf64_Shdr *line_str, *str;
} strsecs_t;

/* A v5 entry's path-like attribute or number, by form; strings from .debug_line_str/.debug_str
 * are read only when wanted (s != NULL). */
static bool form_value(cur_t *c, uint64_t form, bool dwarf64, file_t *f, const strsecs_t *ss,
                       bool want_str, const char **str, uint64_t *num) {
  const Elf64_Shdr *sec = NULL;
  uint64_t off = 0;
  switch (form) {
    case DW_FORM_string: *str = cstr(c); return true;
    case DW_FORM_line_strp: sec = ss->line_str; off = fixed(c, dwarf64 ? 8 : 4); break;
    case DW_FORM_strp: sec = ss->str; off = fixed(c, dwarf64 ? 8 : 4); break;
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
  if (want_str && sec != NULL && off < sec->sh_size)
    *str = read_str(f->fd, sec->sh_offset + off, sec->sh_offset + sec->sh_size, f->s);
  return true;
}

/* Parses a unit's directory or file table (v5). With want_at = index, only the entry at that
 * index is decoded (its path and directory); returns false if the table is malformed. */
static bool v5_table(cur_t *c, bool dwarf64, file_t *f, const strsecs_t *ss, uint64_t want_at,
                     const char **path, uint64_t *dir) {
  uint64_t nfmt = u8(c), fmt[16][2];
  if (nfmt > 16) return false;
  for (uint64_t i = 0; i < nfmt; i++) fmt[i][0] = uleb(c), fmt[i][1] = uleb(c);
  uint64_t count = uleb(c);
  for (uint64_t e = 0; e < count && !c->bad; e++) {
    for (uint64_t i = 0; i < nfmt; i++) {
      const char *s = NULL;
      uint64_t v = 0;
      bool want = e == want_at && fmt[i][0] == DW_LNCT_path;
      if (!form_value(c, fmt[i][1], dwarf64, f, ss, want, &s, &v)) return false;
      if (e == want_at && fmt[i][0] == DW_LNCT_path) *path = s;
      if (e == want_at && fmt[i][0] == DW_LNCT_directory_index) *dir = v;
    }
  }
  return !c->bad;
}

typedef struct {
  cur_t hdr;           /* the directory and file tables (v5: directory table first) */
  unsigned version;
  bool dwarf64;
} unit_hdr_t;

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
static const char *file_name(file_t *f, const strsecs_t *ss, const unit_hdr_t *h, uint64_t idx) {
  cur_t c = h->hdr;
  if (h->version >= 5) {
    const char *d0 = NULL, *name = NULL, *dir = NULL;
    uint64_t di = 0, unused;
    cur_t dirs = c;
    if (!v5_table(&c, h->dwarf64, f, ss, UINT64_MAX, &d0, &unused)) return NULL;
    if (!v5_table(&c, h->dwarf64, f, ss, idx, &name, &di) || name == NULL) return NULL;
    if (name[0] == '/') return name;
    if (!v5_table(&dirs, h->dwarf64, f, ss, 0, &d0, &unused)) d0 = NULL;
    dirs = h->hdr;
    if (di != 0 && !v5_table(&dirs, h->dwarf64, f, ss, di, &dir, &unused)) dir = NULL;
    if (di == 0) dir = d0;
    if (dir != NULL && dir[0] != '/') dir = join(d0, dir, f->s);
    return join(dir, name, f->s);
  }
  /* DWARF 2-4: directories (strings) then files (name, dir, mtime, length), 1-based. */
  const char *dir_of[1] = {NULL};
  uint64_t ndirs = 0;
  cur_t dirs = c;
  while (!c.bad && *cstr(&c) != 0) ndirs++;
  for (uint64_t e = 1; !c.bad; e++) {
    const char *name = cstr(&c);
    if (*name == 0) break;
    uint64_t di = uleb(&c);
    uleb(&c), uleb(&c);
    if (e != idx) continue;
    if (name[0] == '/' || di == 0 || di > ndirs) return name; /* dir 0: the CU's comp_dir */
    for (uint64_t k = 1; k <= di; k++) dir_of[0] = cstr(&dirs);
    return join(dir_of[0], name, f->s);
  }
  return NULL;
}

/* One pass over .debug_line; the file names of the winning rows are resolved at the end. */
static void scan_lines(file_t *f, const Elf64_Shdr *dl, const strsecs_t *ss) {
  uint64_t off = 0;
  uint8_t *buf = NULL;
  size_t cap = 0;
  while (off + 4 <= dl->sh_size) {
    uint8_t lenb[12];
    size_t lenn = dl->sh_size - off < 12 ? (size_t)(dl->sh_size - off) : 12;
    if (!read_at(f->fd, lenb, lenn, dl->sh_offset + off)) break;
    uint64_t len;
    size_t skip = 4;
    bool dwarf64 = false;
    memcpy(&len, lenb, 4);
    len &= 0xffffffffu;
    if (len == 0xffffffffu && lenn == 12) {
      memcpy(&len, lenb + 4, 8);
      skip = 12;
      dwarf64 = true;
    } else if (len >= 0xfffffff0u) {
      break;
    }
    if (len > dl->sh_size - off - skip) break;
    uint64_t unit = off;
    off += skip + len;
    if (len > cap) {
      palloc_scratch_free(f->s, buf);
      cap = len < 65536 ? 65536 : len;
      buf = palloc_scratch_alloc(f->s, cap);
      if (buf == NULL) return;
    }
    if (!read_at(f->fd, buf, len, dl->sh_offset + unit + skip)) break;
    cur_t c = {buf, buf + len, false};
    unsigned version = (unsigned)fixed(&c, 2);
    if (version < 2 || version > 5) continue;
    if (version >= 5) fixed(&c, 2); /* address_size, segment_selector_size */
    uint64_t hlen = fixed(&c, dwarf64 ? 8 : 4);
    if (hlen > (uint64_t)(c.end - c.p)) continue;
    const uint8_t *prog = c.p + hlen;
    unsigned min_inst = (unsigned)u8(&c);
    if (version >= 4) u8(&c); /* maximum_operations_per_instruction: VLIW only */
    u8(&c); /* default_is_stmt: rows are used whatever their is_stmt, as libdw does */
    int line_base = (int8_t)u8(&c);
    unsigned line_range = (unsigned)u8(&c), opcode_base = (unsigned)u8(&c);
    if (c.bad || line_range == 0 || opcode_base == 0) continue;
    const uint8_t *oplen = c.p;
    if ((size_t)(c.end - c.p) < opcode_base - 1) continue;
    c.p += opcode_base - 1;
    cur_t p = {prog, c.end, false};
    /* the state machine; a row is emitted by special opcodes, DW_LNS_copy and end_sequence */
    uint64_t addr = 0, file = 1, prev_addr = 0, prev_file = 0;
    int64_t line = 1, prev_line = 0;
    bool have_prev = false;
#define ROW()                                                                                 \
  do {                                                                                        \
    if (have_prev && addr > prev_addr)                                                        \
      cover(f, prev_addr, addr, unit, prev_file, (int)prev_line);                             \
    prev_addr = addr, prev_file = file, prev_line = line, have_prev = true;                   \
  } while (0)
    while (p.p < p.end && !p.bad) {
      unsigned op = (unsigned)u8(&p);
      if (op >= opcode_base) {
        unsigned adj = op - opcode_base;
        addr += (uint64_t)(adj / line_range) * min_inst;
        line += line_base + (int)(adj % line_range);
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
        case DW_LNS_advance_line: line += sleb(&p); break;
        case DW_LNS_set_file: file = uleb(&p); break;
        case DW_LNS_set_column: uleb(&p); break;
        case DW_LNS_negate_stmt: case DW_LNS_set_basic_block: break;
        case DW_LNS_const_add_pc: addr += (uint64_t)((255 - opcode_base) / line_range) * min_inst; break;
        case DW_LNS_fixed_advance_pc: addr += fixed(&p, 2); break;
        case DW_LNS_set_prologue_end: case DW_LNS_set_epilogue_begin: break;
        case DW_LNS_set_isa: uleb(&p); break;
        default: /* an opcode this reader does not know: skip its operands */
          for (unsigned k = 0; k < oplen[op - 1]; k++) uleb(&p);
      }
    }
#undef ROW
  }
  /* File names, one unit header read per distinct (unit, file). */
  for (size_t i = 0; i < f->n; i++) {
    want_t *w = &f->w[i];
    if (!w->has_row) continue;
    const char *name = NULL;
    for (size_t k = 0; k < i; k++)
      if (f->w[k].file != NULL && f->w[k].has_row && f->w[k].file_off == w->file_off &&
          f->w[k].file_idx == w->file_idx) {
        name = f->w[k].file;
        break;
      }
    if (name == NULL) {
      uint64_t o = w->file_off;
      uint8_t lenb[12];
      if (!read_at(f->fd, lenb, 12 <= dl->sh_size - o ? 12 : (size_t)(dl->sh_size - o),
                   dl->sh_offset + o))
        continue;
      uint64_t len = 0;
      size_t skip = 4;
      bool d64 = false;
      memcpy(&len, lenb, 4);
      len &= 0xffffffffu;
      if (len == 0xffffffffu) memcpy(&len, lenb + 4, 8), skip = 12, d64 = true;
      if (len > cap) {
        palloc_scratch_free(f->s, buf);
        cap = len;
        buf = palloc_scratch_alloc(f->s, cap);
        if (buf == NULL) return;
      }
      if (!read_at(f->fd, buf, len, dl->sh_offset + o + skip)) continue;
      cur_t c = {buf, buf + len, false};
      unit_hdr_t h = {.version = (unsigned)fixed(&c, 2), .dwarf64 = d64};
      if (h.version >= 5) fixed(&c, 2);
      uint64_t hlen = fixed(&c, d64 ? 8 : 4);
      const uint8_t *hend = c.p + hlen;
      if (hlen > (uint64_t)(c.end - c.p)) continue;
      u8(&c);
      if (h.version >= 4) u8(&c);
      u8(&c), u8(&c), u8(&c);
      unsigned opcode_base = (unsigned)u8(&c);
      if (opcode_base == 0 || (size_t)(hend - c.p) < opcode_base - 1) continue;
      c.p += opcode_base - 1;
      c.end = hend;
      h.hdr = c;
      name = file_name(f, ss, &h, w->file_idx);
    }
    w->file = name;
  }
}

/* ---- per object ----------------------------------------------------------------------------- */

typedef struct {
  want_t *w;
  size_t n;
  palloc_scratch_t *s;
} objs_ctx_t;

static void symbolize_file(const char *path, uintptr_t bias, want_t *w, size_t n,
                           palloc_scratch_t *s) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  Elf64_Ehdr eh;
  file_t f = {fd, s, NULL, 0, w, n};
  if (!read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum)
    goto out;
  f.shnum = eh.e_shnum;
  f.sh = palloc_scratch_alloc(s, f.shnum * sizeof *f.sh);
  if (f.sh == NULL || !read_at(fd, f.sh, f.shnum * sizeof *f.sh, eh.e_shoff)) goto out;
  for (size_t i = 0; i < n; i++) w[i].rel = w[i].addr - bias;
  const Elf64_Shdr *names = &f.sh[eh.e_shstrndx];
  char *shstr = palloc_scratch_alloc(s, names->sh_size + 1);
  if (shstr == NULL || !read_at(fd, shstr, names->sh_size, names->sh_offset)) goto out;
  shstr[names->sh_size] = 0;
  const Elf64_Shdr *symtab = NULL, *dynsym = NULL, *line = NULL;
  strsecs_t ss = {NULL, NULL};
  for (size_t i = 0; i < f.shnum; i++) {
    const Elf64_Shdr *h = &f.sh[i];
    if (h->sh_name >= names->sh_size || h->sh_type == SHT_NOBITS) continue;
    const char *nm = shstr + h->sh_name;
    bool compressed = (h->sh_flags & SHF_COMPRESSED) != 0;
    if (h->sh_type == SHT_SYMTAB) symtab = h;
    else if (h->sh_type == SHT_DYNSYM) dynsym = h;
    else if (compressed) continue;
    else if (strcmp(nm, ".debug_line") == 0) line = h;
    else if (strcmp(nm, ".debug_line_str") == 0) ss.line_str = h;
    else if (strcmp(nm, ".debug_str") == 0) ss.str = h;
  }
  if (symtab || dynsym) scan_symbols(&f, symtab ? symtab : dynsym);
  if (line) scan_lines(&f, line, &ss);
out:
  close(fd);
}

static int each_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  objs_ctx_t *c = arg;
  /* The object's executable segments; the sorted addresses inside them are its share. */
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
    if (a < lo) lo = a;
    if (b > hi) hi = b;
  }
  if (lo >= hi) return 0;
  size_t i = 0;
  while (i < c->n && c->w[i].addr < lo) i++;
  size_t j = i;
  while (j < c->n && c->w[j].addr < hi) j++;
  if (j == i) return 0;
  const char *path = info->dlpi_name;
  if (path == NULL || path[0] == 0) path = "/proc/self/exe"; /* the program itself */
  if (path[0] != '/') return 0;                             /* the vdso: no file */
  symbolize_file(path, info->dlpi_addr, &c->w[i], j - i, c->s);
  return 0;
}

static void sort_wants(want_t *w, size_t n) { /* heapsort by address: no malloc, n log n */
  for (size_t k = n / 2; k-- > 0;) {
    for (size_t r = k;;) {
      size_t ch = 2 * r + 1;
      if (ch >= n) break;
      if (ch + 1 < n && w[ch + 1].addr > w[ch].addr) ch++;
      if (w[r].addr >= w[ch].addr) break;
      want_t t = w[r]; w[r] = w[ch]; w[ch] = t;
      r = ch;
    }
  }
  for (size_t end = n; end-- > 1;) {
    want_t t = w[0]; w[0] = w[end]; w[end] = t;
    for (size_t r = 0;;) {
      size_t ch = 2 * r + 1;
      if (ch >= end) break;
      if (ch + 1 < end && w[ch + 1].addr > w[ch].addr) ch++;
      if (w[r].addr >= w[ch].addr) break;
      want_t u = w[r]; w[r] = w[ch]; w[ch] = u;
      r = ch;
    }
  }
}

void palloc_symbolize(const uintptr_t *addrs, size_t n, palloc_sym_t *out, palloc_scratch_t *s) {
  if (!cache_make_room(n)) {
    memset(out, 0, n * sizeof *out);
    return;
  }
  size_t nmiss = 0;
  for (size_t i = 0; i < n; i++)
    if (slot(addrs[i])->addr == 0) nmiss++;
  if (nmiss > 0) {
    want_t *w = palloc_scratch_alloc(s, nmiss * sizeof *w);
    if (w == NULL) {
      memset(out, 0, n * sizeof *out);
      return;
    }
    memset(w, 0, nmiss * sizeof *w);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (slot(addrs[i])->addr == 0) w[k++].addr = addrs[i];
    sort_wants(w, nmiss);
    objs_ctx_t c = {w, nmiss, s};
    dl_iterate_phdr(each_object, &c);
    for (size_t i = 0; i < nmiss; i++) {
      entry_t *e = slot(w[i].addr);
      e->addr = w[i].addr;
      e->sym.func = keep(w[i].func);
      e->sym.file = keep(w[i].file);
      e->sym.line = w[i].file && w[i].line > 0 ? w[i].line : 0;
      cache_used++;
    }
  }
  for (size_t i = 0; i < n; i++) out[i] = slot(addrs[i])->sym;
}
