/* symbolize.c - function, file and line for the addresses of a profile, from the loaded files'
 * own ELF symbol tables and DWARF line tables: the cache, and the grouping of addresses by
 * loaded object. The reader itself is elfsym.c (ELF headers, symbols) and dwarfline.c
 * (.debug_line); its invariants are in elfread.h.
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
 * For each object with addresses, its file (/proc/self/exe for the program) is read once for
 * function names (.symtab, else .dynsym) and once for file:line (.debug_line).
 * A stripped binary's separate debug file (build id under /usr/lib/debug or PALLOC_DEBUG_DIRS,
 * or .gnu_debuglink: debugfile.c) gives the names of its static functions and its lines; zlib-
 * compressed debug sections are inflated into scratch memory (elfsym.c). debuginfod is not
 * asked (no network from inside the profiled program). A file that cannot be read gives no names for its frames; pprof then
 * symbolizes them (the mapping's has_functions stays false).
 *
 * The cache maps address -> (function, file, line) across writes (continuous profiling writes
 * the same addresses again and again). Its memory is bounded: entries and their strings live in
 * one scratch arena that is dropped and rebuilt when it passes SYMCACHE_MAX_BYTES or its table
 * reaches SYMCACHE_MAX_SLOTS. The table starts small and doubles at 3/4 full, so a small profile
 * touches a few pages, not a 2 MiB table. Only the writer (under the writer lock) touches it.
 */
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <unistd.h>
#include "elfread.h"

#define SYMCACHE_MIN_SLOTS 256            /* powers of two; at most 3/4 used */
#define SYMCACHE_MAX_SLOTS 65536
#define SYMCACHE_MAX_BYTES ((uint64_t)32 << 20)

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

/* The next palloc_symbolize starts with an empty cache (cache_make_room resets it). */
void palloc_symcache_drop(void) {
  palloc_scratch_destroy(cache_arena);
  cache_arena = NULL;
  cache = NULL;
  cache_slots = cache_used = 0;
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
  /* cache_slots always counts the slots of the table cache points to: a request larger than
   * the largest table leaves the fresh empty one in place */
  size_t want = cache_slots;
  while (n * 4 > want * 3 && want < SYMCACHE_MAX_SLOTS) want *= 2;
  if (n * 4 > want * 3) return false;
  if (want == cache_slots) return true;
  entry_t *t = palloc_scratch_alloc(cache_arena, want * sizeof *t);
  if (t == NULL) return false; /* the empty table stays */
  memset(t, 0, want * sizeof *t);
  cache = t;
  cache_slots = want;
  return true;
}

static const char *keep(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *c = palloc_scratch_alloc(cache_arena, n);
  if (c) memcpy(c, s, n);
  return c;
}

/* A function name without its symbol version: "__libc_start_main@@GLIBC_2.34" (as the .symtab
 * of a debug file names it) is __libc_start_main, whatever version was bound; the suffix is
 * '@' or "@@" and a version name ([A-Za-z_][A-Za-z0-9_.]*) up to the end. */
static const char *keep_unversioned(const char *s) {
  if (s == NULL) return NULL;
  const char *at = strchr(s, '@');
  if (at == NULL || at == s) return keep(s);
  const char *v = at + 1 + (at[1] == '@');
  bool version = (*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') || *v == '_';
  for (const char *c = v; version && *c; c++)
    version = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '.';
  if (!version) return keep(s);
  size_t n = (size_t)(at - s);
  char *c = palloc_scratch_alloc(cache_arena, n + 1);
  if (c) memcpy(c, s, n), c[n] = 0;
  return c;
}

/* ---- per object ----------------------------------------------------------------------------- */

/* The loaded objects with code, listed inside dl_iterate_phdr and read after it: the callback
 * runs under the loader's lock, which every other thread's dl_iterate_phdr (libunwind's and
 * libgcc's unwinders: a sampled malloc, a C++ throw), dlopen and dlclose wait for; reading
 * symbol and line tables there would stop them for the whole symbolization. */
typedef struct {
  uintptr_t lo, hi, bias;
  const char *path;
} obj_t;
typedef struct {
  obj_t *o;
  size_t n, cap;
  palloc_scratch_t *s;
} objs_ctx_t;

void palloc_symbolize_fd(int fd, palloc_symq_t *w, size_t n, palloc_scratch_t *s) {
  palloc_elf_t e;
  if (!palloc_elf_open(&e, fd, s)) return;
  palloc_elf_want(&e, w, n);
  if (e.symtab || e.dynsym) palloc_elf_symbols(&e);
  if (e.line) palloc_dwarf_lines(&e);
}

/* From the separate debug file d of a stripped binary: its .symtab names (every function,
 * static ones too) replace those found in the binary's .dynsym, where it has one for the
 * address; its line table gives files and lines if the binary had none. */
static void from_debug_file(palloc_elf_t *d, palloc_symq_t *w, size_t n, bool syms, bool lines,
                            palloc_scratch_t *s) {
  palloc_elf_want(d, w, n);
  if (syms && d->symtab) {
    const char **old = palloc_scratch_alloc(s, n * sizeof *old);
    if (old != NULL) {
      for (size_t i = 0; i < n; i++) old[i] = w[i].func, w[i].func = NULL, w[i].best = NULL;
      palloc_elf_symbols(d);
      for (size_t i = 0; i < n; i++)
        if (w[i].func == NULL) w[i].func = old[i];
    }
  }
  if (lines && d->line) palloc_dwarf_lines(d);
}

void palloc_symbolize_file(const char *path, uintptr_t bias, palloc_symq_t *w, size_t n,
                           palloc_scratch_t *s) {
  /* O_NONBLOCK: if a FIFO has taken the file's place, open must not wait for a writer
   * (palloc_elf_open then refuses anything but a regular file). */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return;
  for (size_t i = 0; i < n; i++) w[i].rel = w[i].addr - bias;
  palloc_elf_t e;
  if (palloc_elf_open(&e, fd, s)) {
    palloc_elf_want(&e, w, n);
    if (e.symtab || e.dynsym) palloc_elf_symbols(&e);
    if (e.line) palloc_dwarf_lines(&e);
    /* a stripped binary (no .symtab or no line table): its separate debug file, if there is one */
    if (e.symtab == NULL || e.line == NULL) {
      int dfd = palloc_debug_open(&e, path);
      palloc_elf_t d;
      if (dfd >= 0 && palloc_elf_open(&d, dfd, s))
        from_debug_file(&d, w, n, e.symtab == NULL, e.line == NULL, s);
      if (dfd >= 0) close(dfd);
    }
  }
  close(fd);
}

static int each_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  objs_ctx_t *c = arg;
  /* The object's executable segments; the sorted addresses inside them are its share. */
  uintptr_t lo, hi;
  palloc_exec_span(info, &lo, &hi);
  if (lo >= hi) return 0;
  const char *path = info->dlpi_name;
  if (path == NULL || path[0] == 0) path = "/proc/self/exe"; /* the program itself */
  if (path[0] != '/') return 0;                             /* the vdso: no file */
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    obj_t *o = palloc_scratch_alloc(c->s, cap * sizeof *o);
    if (o == NULL) return 1; /* out of memory: the objects listed so far */
    if (c->n) memcpy(o, c->o, c->n * sizeof *o);
    c->o = o;
    c->cap = cap;
  }
  size_t k = strlen(path) + 1;
  char *p = palloc_scratch_alloc(c->s, k);
  if (p == NULL) return 1;
  memcpy(p, path, k);
  c->o[c->n++] = (obj_t){lo, hi, info->dlpi_addr, p};
  return 0;
}

static void sift_down(palloc_symq_t *w, size_t r, size_t end) {
  for (;;) {
    size_t ch = 2 * r + 1;
    if (ch >= end) return;
    if (ch + 1 < end && w[ch + 1].addr > w[ch].addr) ch++;
    if (w[r].addr >= w[ch].addr) return;
    palloc_symq_t t = w[r]; w[r] = w[ch]; w[ch] = t;
    r = ch;
  }
}

/* Heapsort by address: glibc's qsort may malloc (its merge sort), and this runs inside the
 * profiled program's heap. n log n, in place. */
static void sort_wants(palloc_symq_t *w, size_t n) {
  for (size_t k = n / 2; k-- > 0;) sift_down(w, k, n);
  for (size_t end = n; end-- > 1;) {
    palloc_symq_t t = w[0]; w[0] = w[end]; w[end] = t;
    sift_down(w, 0, end);
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
    palloc_symq_t *w = palloc_scratch_alloc(s, nmiss * sizeof *w);
    if (w == NULL) {
      memset(out, 0, n * sizeof *out);
      return;
    }
    memset(w, 0, nmiss * sizeof *w);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (slot(addrs[i])->addr == 0) w[k++].addr = addrs[i];
    sort_wants(w, nmiss);
    objs_ctx_t c = {NULL, 0, 0, s};
    dl_iterate_phdr(each_object, &c);
    for (size_t o = 0; o < c.n; o++) {
      size_t i = 0;
      while (i < nmiss && w[i].addr < c.o[o].lo) i++;
      size_t j = i;
      while (j < nmiss && w[j].addr < c.o[o].hi) j++;
      if (j > i) palloc_symbolize_file(c.o[o].path, c.o[o].bias, &w[i], j - i, s);
    }
    for (size_t i = 0; i < nmiss; i++) {
      entry_t *e = slot(w[i].addr);
      e->addr = w[i].addr;
      e->sym.func = keep_unversioned(w[i].func);
      e->sym.file = keep(w[i].file);
      e->sym.line = w[i].file && w[i].line > 0 ? w[i].line : 0;
      cache_used++;
    }
  }
  for (size_t i = 0; i < n; i++) out[i] = slot(addrs[i])->sym;
}
