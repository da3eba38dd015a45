/* meta.c - palloc's own memory, kept apart from the profiled heap.
 *
 * Buckets and the bucket hash table live as long as the process (Go never frees buckets
 * either), so they come from a bump allocator over 1 MiB mmap chunks; the lock is taken only
 * when a new bucket is made, which is rare after warm-up. Fresh mmap memory is zero, so large
 * tables cost resident memory only for the pages actually touched.
 *
 * A profile write needs temporary memory (protobuf messages, strings, zlib state): a scratch
 * arena of mmap chunks, bump-allocated by one writer and unmapped as a whole at the end. Neither
 * path calls malloc, so neither perturbs the heap it is measuring.
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

#define META_CHUNK ((size_t)1 << 20)

static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static char *meta_cur, *meta_end;
static _Atomic uint64_t meta_mapped;

static void *map(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *palloc_meta_alloc(size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (size >= META_CHUNK / 4) {
    size_t n = (size + 4095) & ~(size_t)4095;
    void *p = map(n);
    if (p) atomic_fetch_add(&meta_mapped, n);
    return p;
  }
  pthread_mutex_lock(&meta_lock);
  if (meta_cur == NULL || (size_t)(meta_end - meta_cur) < size) {
    char *c = map(META_CHUNK);
    if (c == NULL) {
      pthread_mutex_unlock(&meta_lock);
      return NULL;
    }
    atomic_fetch_add(&meta_mapped, META_CHUNK);
    meta_cur = c;
    meta_end = c + META_CHUNK;
  }
  void *p = meta_cur;
  meta_cur += size;
  /* the bump stays within its chunk, and blocks stay 16-aligned */
  palloc_assert(meta_cur <= meta_end && ((uintptr_t)p & 15) == 0);
  pthread_mutex_unlock(&meta_lock);
  return p;
}

uint64_t palloc_meta_bytes(void) { return atomic_load(&meta_mapped); }
void palloc_meta_lock(void) { pthread_mutex_lock(&meta_lock); }
void palloc_meta_unlock(void) { pthread_mutex_unlock(&meta_lock); }

/* ---- scratch arena ------------------------------------------------------------------------ */
typedef struct chunk_s { struct chunk_s *prev; size_t size; } chunk_t;
struct palloc_scratch_s {
  chunk_t *chunks;
  char *cur, *end;
  uint64_t mapped;
};

palloc_scratch_t *palloc_scratch_new(void) {
  chunk_t *c = map(META_CHUNK);
  if (c == NULL) return NULL;
  c->prev = NULL;
  c->size = META_CHUNK;
  palloc_scratch_t *s = (palloc_scratch_t *)(c + 1);
  s->chunks = c;
  s->cur = (char *)(s + 1);
  s->end = (char *)c + META_CHUNK;
  s->mapped = META_CHUNK;
  return s;
}

/* Each block remembers its size in front so that a realloc-style grow by the caller (alloc new,
 * copy, free old) can give the old block back when it was the last one. */
void *palloc_scratch_alloc(void *scratch, size_t size) {
  palloc_scratch_t *s = scratch;
  size_t need = ((size + 15) & ~(size_t)15) + 16;
  if ((size_t)(s->end - s->cur) < need) {
    size_t n = need + sizeof(chunk_t) + 16 > META_CHUNK ? ((need + sizeof(chunk_t) + 16 + 4095) & ~(size_t)4095)
                                                         : META_CHUNK;
    chunk_t *c = map(n);
    if (c == NULL) return NULL;
    c->prev = s->chunks;
    c->size = n;
    s->chunks = c;
    s->mapped += n;
    s->cur = (char *)(c + 1);
    s->end = (char *)c + n;
  }
  char *p = s->cur;
  *(size_t *)p = need;
  s->cur += need;
  palloc_assert(s->cur <= s->end && ((uintptr_t)p & 15) == 0);
  return p + 16;
}

void palloc_scratch_free(void *scratch, void *p) {
  palloc_scratch_t *s = scratch;
  if (p == NULL) return;
  char *blk = (char *)p - 16;
  palloc_assert(*(size_t *)blk >= 16 && (*(size_t *)blk & 15) == 0); /* a scratch block's size */
  if (blk + *(size_t *)blk == s->cur) s->cur = blk; /* the last block: give it back */
}

uint64_t palloc_scratch_peak(const palloc_scratch_t *s) { return s->mapped; }

void palloc_scratch_destroy(palloc_scratch_t *s) {
  if (s == NULL) return;
  chunk_t *c = s->chunks;
  while (c) {
    chunk_t *prev = c->prev;
    munmap(c, c->size);
    c = prev;
  }
}
