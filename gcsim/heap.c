/* heap.c - size classes, pages, spans and the allocation slow paths.
 *
 * Size classes: multiples of 16 up to 256 bytes, then four classes per power of two up to
 * 32 KiB (at most 20% internal waste). A class's span is the smallest run of 1..16 pages that
 * holds at least 4 objects with at most 1/8 of it left over, and at most GC_MAX_OBJS objects.
 *
 * Pages come from free runs (one list per run length, the last list for longer runs; a longer
 * run is split) or from the bump pointer, which commits the reservation in 4 MiB steps with
 * mprotect. Free runs are not coalesced and not returned to the OS: HeapSys is the high-water
 * mark of the committed heap, as with Go before its scavenger runs. Freed pages are marked
 * needzero so the next scanned objects in them are cleared on allocation.
 *
 * Span structs live in their own mmap'd slabs, never inside the heap, so a conservative word
 * that happens to point at metadata is not mistaken for an object.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include "gcinternal.h"

uint32_t palloc_gc_class_size[GC_NCLASSES];
uint8_t palloc_gc_class_pages[GC_NCLASSES];
uint8_t palloc_gc_class_of[GC_MAX_SMALL / 16 + 1]; /* (size+15)/16 -> class */
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

static void classes_build(void) {
  int c = 1;
  for (uint32_t s = 16; s <= 256; s += 16) palloc_gc_class_size[c++] = s;
  for (uint32_t p = 256; p < GC_MAX_SMALL; p *= 2)
    for (uint32_t k = 1; k <= 4; k++) palloc_gc_class_size[c++] = p + p / 4 * k;
  for (c = 1; c < GC_NCLASSES; c++) {
    uint32_t s = palloc_gc_class_size[c];
    uint32_t np = 1;
    for (; np < 16; np++) {
      size_t span = np * GC_PAGE, n = span / s;
      if (n >= 4 && (span - n * s) * 8 <= span && n <= GC_MAX_OBJS) break;
    }
    while (np * GC_PAGE / s > GC_MAX_OBJS) np--;
    palloc_assert(np >= 1 && np * GC_PAGE / s >= 1 && np * GC_PAGE / s <= GC_MAX_OBJS);
    palloc_gc_class_pages[c] = (uint8_t)np;
  }
  c = 1;
  for (size_t i = 0; i <= GC_MAX_SMALL / 16; i++) {
    while (palloc_gc_class_size[c] < i * 16) c++;
    palloc_gc_class_of[i] = (uint8_t)c;
    palloc_assert(c < GC_NCLASSES && palloc_gc_class_size[c] >= i * 16);
  }
}

void palloc_gc_classes_init(void) { pthread_once(&classes_once, classes_build); }

static void *map(size_t n, int prot) {
  void *p = mmap(NULL, n, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

bool palloc_gc_heap_init(palloc_gc_t *a, size_t reserve) {
  palloc_gc_classes_init();
  reserve = (reserve + ((size_t)4 << 20) - 1) & ~(((size_t)4 << 20) - 1);
  void *base = map(reserve, PROT_NONE);
  if (base == NULL) return false;
  a->pagemap_bytes = (reserve >> GC_PAGE_SHIFT) * sizeof(gc_span_t *);
  a->pagemap = map(a->pagemap_bytes, PROT_READ | PROT_WRITE);
  if (a->pagemap == NULL) {
    munmap(base, reserve);
    return false;
  }
  /* The first page is never handed out. The kernel often places a reservation right after
   * another mapping, and "one past the end" of that mapping is a common value in memory the
   * collector scans (a thread's TLS block holds its stack's end): at base, that word would be
   * a conservative pointer to the first object. Seen: a 600-object graph kept alive. */
  a->base = (uintptr_t)base;
  a->bump = a->committed = a->base + GC_PAGE;
  a->reserved = reserve;
  a->limit_addr = a->base + reserve;
  return true;
}

void palloc_gc_heap_fini(palloc_gc_t *a) {
  munmap((void *)a->base, a->reserved);
  munmap(a->pagemap, a->pagemap_bytes);
  /* slabs are chained through their first word */
  char *slab = a->meta_end ? a->meta_end - ((size_t)64 << 10) : NULL;
  while (slab != NULL) {
    char *prev = *(char **)slab;
    munmap(slab, (size_t)64 << 10);
    slab = prev;
  }
}

static gc_span_t *span_struct(palloc_gc_t *a) {
  gc_span_t *s = a->spare;
  if (s != NULL) {
    a->spare = s->next;
    return s;
  }
  if (a->meta_next == NULL || a->meta_next + sizeof(gc_span_t) > a->meta_end) {
    size_t slab = (size_t)64 << 10;
    char *m = map(slab, PROT_READ | PROT_WRITE);
    if (m == NULL) return NULL;
    *(char **)m = a->meta_end ? a->meta_end - slab : NULL;
    a->meta_next = m + 64;
    a->meta_end = m + slab;
    a->meta_bytes += slab;
  }
  s = (gc_span_t *)a->meta_next;
  a->meta_next += sizeof(gc_span_t);
  return s;
}

static void set_pages(palloc_gc_t *a, uintptr_t start, size_t npages, gc_span_t *s) {
  gc_span_t **pm = a->pagemap + ((start - a->base) >> GC_PAGE_SHIFT);
  for (size_t i = 0; i < npages; i++) pm[i] = s;
}

/* Returns a run of npages: (start, needzero). */
static bool pages_get(palloc_gc_t *a, size_t npages, uintptr_t *start, bool *needzero) {
  for (size_t k = npages < GC_FREE_LISTS ? npages : GC_FREE_LISTS; k <= GC_FREE_LISTS; k++) {
    for (gc_span_t **pp = &a->freeruns[k]; *pp != NULL; pp = &(*pp)->next) {
      gc_span_t *r = *pp;
      if (r->npages < npages) continue;
      *start = r->start;
      *needzero = true;
      *pp = r->next;
      if (r->npages > npages) { /* split: the rest goes back to its list */
        r->start += npages * GC_PAGE;
        r->npages -= (uint32_t)npages;
        size_t l = r->npages < GC_FREE_LISTS ? r->npages : GC_FREE_LISTS;
        r->next = a->freeruns[l];
        a->freeruns[l] = r;
      } else {
        r->next = a->spare;
        a->spare = r;
      }
      return true;
    }
  }
  size_t bytes = npages * GC_PAGE;
  if (bytes > a->limit_addr - a->bump) return false;
  if (a->bump + bytes > a->committed) {
    size_t step = (size_t)4 << 20;
    size_t need = (a->bump + bytes - a->committed + step - 1) & ~(step - 1);
    if (need > a->limit_addr - a->committed) need = a->limit_addr - a->committed;
    if (mprotect((void *)a->committed, need, PROT_READ | PROT_WRITE) != 0) return false;
    a->committed += need;
  }
  *start = a->bump;
  *needzero = false;
  a->bump += bytes;
  palloc_assert(a->base < a->bump && a->bump <= a->committed && a->committed <= a->limit_addr);
  return true;
}

gc_span_t *palloc_gc_span_alloc(palloc_gc_t *a, int cls, size_t npages, bool noscan) {
  gc_span_t *s = span_struct(a);
  if (s == NULL) return NULL;
  uintptr_t start;
  bool needzero;
  if (!pages_get(a, npages, &start, &needzero)) {
    s->next = a->spare;
    a->spare = s;
    return NULL;
  }
  memset(s, 0, sizeof *s);
  s->start = start;
  s->npages = (uint32_t)npages;
  s->cls = (uint16_t)cls;
  s->noscan = noscan;
  s->needzero = needzero;
  if (cls == 0) {
    s->size = npages * GC_PAGE;
    s->nobjs = 1;
  } else {
    s->size = palloc_gc_class_size[cls];
    s->nobjs = (uint32_t)(npages * GC_PAGE / s->size);
    s->divmul = (uint32_t)(UINT32_MAX / (uint32_t)s->size + 1);
  }
  /* slots past nobjs: permanently "allocated" and "marked" */
  for (uint32_t w = s->nobjs / 64; w < GC_BITWORDS; w++) {
    uint32_t first = w * 64;
    uint64_t tail = s->nobjs <= first ? ~(uint64_t)0 : ~(uint64_t)0 << (s->nobjs - first);
    if (s->nobjs >= first + 64) tail = 0;
    s->alloc[w] = s->mark[w] = tail;
  }
  palloc_assert(s->nobjs >= 1 && s->nobjs <= GC_MAX_OBJS);
  palloc_assert(start >= a->base + GC_PAGE && start + npages * GC_PAGE <= a->bump);
  s->next = a->inuse;
  s->prev = NULL;
  if (a->inuse) a->inuse->prev = s;
  a->inuse = s;
  set_pages(a, start, npages, s);
  return s;
}

void palloc_gc_span_free(palloc_gc_t *a, gc_span_t *s) {
  palloc_assert(a->pagemap[(s->start - a->base) >> GC_PAGE_SHIFT] == s && s->sampled == NULL);
  if (s->prev) s->prev->next = s->next;
  else a->inuse = s->next;
  if (s->next) s->next->prev = s->prev;
  set_pages(a, s->start, s->npages, NULL);
  size_t l = s->npages < GC_FREE_LISTS ? s->npages : GC_FREE_LISTS;
  s->next = a->freeruns[l];
  a->freeruns[l] = s;
}

void *palloc_gc_refill(palloc_gc_t *a, int cls, bool noscan) {
  gc_cache_t *c = &a->cache[cls][noscan];
  for (;;) {
    gc_span_t *s = a->partial[cls][noscan];
    if (s != NULL) {
      a->partial[cls][noscan] = s->pnext;
    } else {
      s = palloc_gc_span_alloc(a, cls, palloc_gc_class_pages[cls], noscan);
      if (s == NULL) return NULL;
    }
    c->span = s;
    c->wi = 0;
    c->nwords = (s->nobjs + 63) / 64;
    c->bits = ~s->alloc[0];
    void *p = palloc_gc_cache_take(c);
    if (p != NULL) return p;
  }
}

void *palloc_gc_large(palloc_gc_t *a, size_t size, bool noscan) {
  size_t np = (size + GC_PAGE - 1) >> GC_PAGE_SHIFT;
  if (size > ((size_t)1 << 40)) return NULL;
  gc_span_t *s = palloc_gc_span_alloc(a, 0, np, noscan);
  if (s == NULL) return NULL;
  s->alloc[0] |= 1;
  return (void *)s->start;
}

void palloc_gc_uncache(palloc_gc_t *a) {
  memset(a->cache, 0, sizeof a->cache);
}
