/* unload.c - the sampled frames of libraries that are unloaded (dlclose).
 *
 * A profile is assembled at write time from the mappings then in /proc/self/maps and symbols then
 * loaded, so a block allocated from a library that was dlclose'd since showed as `<unknown>`, or
 * was named after the library mapped at the same address since. glibc has no unload callback, so
 * libpalloc interposes dlclose (the real one is dlsym(RTLD_NEXT, "dlclose")):
 *
 *  1. before the real dlclose: palloc_unload_gen is bumped, and the loaded objects are listed
 *     (dl_iterate_phdr: name, executable span, mapping, build ID), as the unload will take them;
 *  2. the real dlclose; if the loader's unload count (dlpi_subs) moved, the objects no longer
 *     listed are the ones it unloaded (the handle's library and the dependencies it held);
 *  3. under the writer lock: every frame of a bucket made before step 1 (gen < the new
 *     generation) that lies in an unloaded object is symbolized now, from the object's file
 *     (still on disk), and recorded with the object's mapping; the bucket's gone[] array gets the
 *     frame's record id. Profiles give such a frame a Location of its own, in a Mapping of the
 *     unloaded file (path, address range, offset, build ID), with the names read in step 3.
 *     The symbol cache is dropped: its entries for those addresses are stale.
 *
 * A bucket with gone[] set takes no new samples (bucket.c): a stack with the same addresses seen
 * after the unload is another library's code and starts a bucket of its own, made with the new
 * generation, which an older unload never touches. Frees still find the old bucket through the
 * registry, so its live counts stay exact.
 *
 * Memory: records and their strings come from palloc's own memory (meta.c), the lists of step 1
 * from a scratch arena; nothing from the profiled heap. Growth is bounded by the sampled frames
 * of unloaded libraries (a record per distinct address per unload) and one mapping per unloaded
 * object that had such frames (the same file reloaded at the same place reuses its mapping).
 *
 * Limits: libraries unloaded without dlclose (glibc's own __libc_dlclose: NSS and iconv modules)
 * are not seen; a library's file replaced on disk before its dlclose is read as it is then; a
 * library run by another thread while it is being dlclose'd (a program bug) may have frames made
 * around the unload named after the next library; symbolizing at dlclose makes that dlclose read
 * the library's symbol and line tables once (only if it had sampled frames).
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include "elfread.h"

_Atomic uint32_t palloc_unload_gen;

typedef struct {
  uintptr_t lo, hi;               /* the span of its executable segments */
  uintptr_t bias;                 /* dlpi_addr */
  uintptr_t start, limit, offset; /* its first executable segment, as in /proc/self/maps */
  const char *name;               /* a copy */
  char build_id[82];
  bool present;                   /* still loaded after the dlclose */
} obj_t;

typedef struct {
  palloc_scratch_t *s;
  obj_t *o;
  size_t n, cap;
  unsigned long long subs;
  bool failed, marking;
} objs_t;

/* ---- the records (palloc's memory; read and written under the writer lock) --------------- */
static palloc_mapping_t *maps;
static size_t nmaps, maps_cap;
static palloc_gone_frame_t *frames; /* frames[id - 1] */
static size_t nframes, frames_cap;

const palloc_mapping_t *palloc_unload_mappings(size_t *n) {
  *n = nmaps;
  return maps;
}

const palloc_gone_frame_t *palloc_unload_frame(uint32_t id) {
  return id >= 1 && id <= nframes ? &frames[id - 1] : NULL;
}

/* Room for one more element in a growing array of palloc's memory (the old array stays: meta
 * memory is never freed, so arrays double). */
static bool grow(void **arr, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) return true;
  size_t c = *cap ? 2 * *cap : 64;
  void *a = palloc_meta_alloc(c * elem);
  if (a == NULL) return false;
  if (*arr) memcpy(a, *arr, n * elem);
  *arr = a;
  *cap = c;
  return true;
}

static const char *keep(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *c = palloc_meta_alloc(n);
  if (c) memcpy(c, s, n);
  return c;
}

/* The mapping record of an unloaded object, made on first use; -1 if out of memory. */
static long mapping_of(const obj_t *o) {
  for (size_t i = 0; i < nmaps; i++)
    if (maps[i].start == o->start && maps[i].limit == o->limit && maps[i].offset == o->offset &&
        strcmp(maps[i].path, o->name) == 0 && strcmp(maps[i].build_id, o->build_id) == 0)
      return (long)i;
  if (!grow((void **)&maps, &maps_cap, nmaps, sizeof *maps)) return -1;
  palloc_mapping_t *m = &maps[nmaps];
  memset(m, 0, sizeof *m);
  m->start = o->start;
  m->limit = o->limit;
  m->offset = o->offset;
  m->path = keep(o->name);
  if (m->path == NULL) return -1;
  memcpy(m->build_id, o->build_id, sizeof m->build_id);
  return (long)nmaps++;
}

/* ---- the loaded objects ----------------------------------------------------------------- */
static int list_object(struct dl_phdr_info *info, size_t size, void *arg) {
  objs_t *c = arg;
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
    c->subs = info->dlpi_subs;
  uintptr_t lo, hi;
  const ElfW(Phdr) *first = palloc_exec_span(info, &lo, &hi);
  if (lo >= hi) return 0;
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  if (c->marking) { /* after the dlclose: which of the listed objects are still there */
    for (size_t i = 0; i < c->n; i++)
      if (c->o[i].lo == lo && c->o[i].hi == hi && strcmp(c->o[i].name, name) == 0)
        c->o[i].present = true;
    return 0;
  }
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 128;
    obj_t *o = palloc_scratch_alloc(c->s, cap * sizeof *o);
    if (o == NULL) {
      c->failed = true;
      return 1;
    }
    if (c->o) memcpy(o, c->o, c->n * sizeof *o);
    c->o = o;
    c->cap = cap;
  }
  size_t len = strlen(name) + 1;
  char *copy = palloc_scratch_alloc(c->s, len);
  if (copy == NULL) {
    c->failed = true;
    return 1;
  }
  memcpy(copy, name, len);
  obj_t *o = &c->o[c->n++];
  memset(o, 0, sizeof *o);
  o->lo = lo;
  o->hi = hi;
  o->bias = info->dlpi_addr;
  const uintptr_t page = 4096;
  uintptr_t a = info->dlpi_addr + first->p_vaddr;
  o->start = a & ~(page - 1);
  o->limit = (a + first->p_memsz + page - 1) & ~(page - 1);
  o->offset = first->p_offset & ~(uint64_t)(page - 1);
  o->name = copy;
  palloc_object_build_id(info, o->build_id);
  return 0;
}

/* ---- naming the frames of one unloaded object ------------------------------------------- */
static int by_addr(const palloc_symq_t *a, const palloc_symq_t *b) {
  return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/* Shell sort, in place: glibc's qsort may malloc (its merge sort). */
static void sort_addrs(palloc_symq_t *w, size_t n) {
  for (size_t gap = n / 2; gap > 0; gap = gap == 2 ? 1 : gap * 5 / 11)
    for (size_t i = gap; i < n; i++)
      for (size_t j = i; j >= gap && by_addr(&w[j - gap], &w[j]) > 0; j -= gap) {
        palloc_symq_t t = w[j];
        w[j] = w[j - gap];
        w[j - gap] = t;
      }
}

static bool in_obj(const obj_t *o, uintptr_t a) { return a >= o->lo && a < o->hi; }

/* Names the frames of buckets made before generation gen that lie in o, which was unloaded. */
static void retire_object(const obj_t *o, uint32_t gen, palloc_scratch_t *s) {
  size_t want = 0;
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) {
    if (b->gen >= gen) continue;
    const uint32_t *gone = atomic_load_explicit(&b->gone, memory_order_acquire);
    for (uint32_t k = 0; k < b->nstk; k++)
      if ((gone == NULL || gone[k] == 0) && in_obj(o, b->stk[k] - 1)) want++;
  }
  if (want == 0) return;
  long mi = mapping_of(o);
  palloc_symq_t *w = palloc_scratch_alloc(s, want * sizeof *w);
  if (mi < 0 || w == NULL) return;
  memset(w, 0, want * sizeof *w);
  size_t n = 0;
  for (palloc_bucket_t *b = palloc_bucket_list(); b && n < want; b = b->allnext) {
    if (b->gen >= gen) continue;
    const uint32_t *gone = atomic_load_explicit(&b->gone, memory_order_acquire);
    for (uint32_t k = 0; k < b->nstk && n < want; k++)
      if ((gone == NULL || gone[k] == 0) && in_obj(o, b->stk[k] - 1)) w[n++].addr = b->stk[k] - 1;
  }
  sort_addrs(w, n);
  size_t u = 0; /* distinct addresses */
  for (size_t i = 0; i < n; i++)
    if (u == 0 || w[u - 1].addr != w[i].addr) w[u++] = w[i];
  const char *path = o->name[0] ? o->name : "/proc/self/exe";
  if (palloc_g.symbolize && path[0] == '/') palloc_symbolize_file(path, o->bias, w, u, s);

  /* One record per distinct address: ids first .. first + u - 1, in w's order. */
  size_t first = nframes + 1;
  for (size_t i = 0; i < u; i++) {
    if (!grow((void **)&frames, &frames_cap, nframes, sizeof *frames)) return;
    palloc_gone_frame_t *f = &frames[nframes++];
    f->addr = w[i].addr;
    f->map = (uint32_t)mi;
    f->sym.func = keep(w[i].func);
    f->sym.file = w[i].func ? keep(w[i].file) : NULL;
    f->sym.line = f->sym.file && w[i].line > 0 ? w[i].line : 0;
    if (f->sym.func) maps[mi].has_functions = true;
    if (f->sym.file) maps[mi].has_filenames = true;
    if (f->sym.line) maps[mi].has_lines = true;
  }
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) {
    if (b->gen >= gen) continue;
    uint32_t *gone = (uint32_t *)atomic_load_explicit(&b->gone, memory_order_acquire);
    bool fresh = false;
    for (uint32_t k = 0; k < b->nstk; k++) {
      uintptr_t a = b->stk[k] - 1;
      if ((gone != NULL && gone[k] != 0) || !in_obj(o, a)) continue;
      if (gone == NULL) {
        gone = palloc_meta_alloc(b->nstk * sizeof *gone); /* zeroed */
        if (gone == NULL) return;
        fresh = true;
      }
      size_t lo = 0, hi = u; /* a is among w[0..u) */
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w[mid].addr < a) lo = mid + 1; else hi = mid;
      }
      if (lo < u && w[lo].addr == a) gone[k] = (uint32_t)(first + lo);
    }
    /* Published once filled: from here the bucket takes no new samples. */
    if (fresh) atomic_store_explicit(&b->gone, gone, memory_order_release);
  }
}

/* ---- dlclose -------------------------------------------------------------------------------- */
typedef int (*dlclose_fn)(void *);
static _Atomic(dlclose_fn) real_dlclose;

int palloc_dlclose(void *handle) {
  palloc_thread_t *t = &palloc_thread;
  dlclose_fn real = atomic_load_explicit(&real_dlclose, memory_order_acquire);
  if (real == NULL) {
    palloc_guard_enter(t); /* dlsym may allocate */
    real = (dlclose_fn)(uintptr_t)dlsym(RTLD_NEXT, "dlclose");
    palloc_guard_exit(t);
    if (real == NULL) {
      palloc_warn("dlclose: the C library's dlclose was not found; the library stays loaded");
      return -1;
    }
    atomic_store_explicit(&real_dlclose, real, memory_order_release);
  }
  /* Nothing sampled yet (or palloc off): nothing to keep. */
  if (palloc_bucket_list() == NULL) return real(handle);

  palloc_guard_enter(t);
  objs_t c = {.s = palloc_scratch_new()};
  if (c.s != NULL) dl_iterate_phdr(list_object, &c);
  uint32_t gen = atomic_fetch_add(&palloc_unload_gen, 1) + 1;
  unsigned long long subs = c.subs;
  palloc_guard_exit(t);

  /* The library's destructors run here, with the program's own sampling. */
  int r = real(handle);

  palloc_guard_enter(t);
  if (c.s == NULL || c.failed) palloc_cfi_forget(0, UINTPTR_MAX); /* not known what went */
  if (c.s != NULL && !c.failed) {
    c.marking = true;
    dl_iterate_phdr(list_object, &c);
    if (c.subs != subs) {
      for (size_t i = 0; i < c.n; i++) /* the unwinder's rules for the unloaded code (cfi.c) */
        if (!c.o[i].present) palloc_cfi_forget(c.o[i].lo, c.o[i].hi);
      palloc_writer_lock();
      bool any = false;
      for (size_t i = 0; i < c.n; i++)
        if (!c.o[i].present) {
          retire_object(&c.o[i], gen, c.s);
          any = true;
        }
      if (any) palloc_symcache_drop();
      palloc_writer_unlock();
    }
  }
  palloc_scratch_destroy(c.s);
  palloc_guard_exit(t);
  return r;
}

#ifdef PALLOC_OVERRIDE
__attribute__((visibility("default"))) int dlclose(void *handle) { return palloc_dlclose(handle); }
#endif
