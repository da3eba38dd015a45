/* scratch_malloc.c - the scratch arena (alloc/meta.c's palloc_scratch_*) on malloc, for the
 * tests and the fuzzer of the ELF/DWARF reader.
 *
 * One malloc block per allocation, so that ASan checks every buffer the reader uses (palloc's own
 * arena is mmap'd chunks ASan cannot see) and LSan finds what the reader would leak from it.
 * Blocks are zeroed, as fresh mmap memory is. A request above scratch_max is a length taken from
 * the file unchecked: it aborts if scratch_abort_over_max (the fuzzer: a finding), else it fails
 * as the real arena would on a huge mapping (the tests). */
#include <stdlib.h>
#include "elfread.h"
#include "scratch_malloc.h"

size_t scratch_max = (size_t)1 << 32;
int scratch_abort_over_max;

typedef struct blk_s { struct blk_s *prev, *next; size_t size; } blk_t;
struct palloc_scratch_s { blk_t head; uint64_t bytes; };

palloc_scratch_t *palloc_scratch_new(void) {
  palloc_scratch_t *s = calloc(1, sizeof *s);
  if (s) s->head.prev = s->head.next = &s->head;
  return s;
}
void *palloc_scratch_alloc(void *scratch, size_t size) {
  palloc_scratch_t *s = scratch;
  if (size > scratch_max) {
    if (scratch_abort_over_max) abort();
    return NULL;
  }
  blk_t *b = calloc(1, sizeof *b + size);
  if (b == NULL) return NULL;
  b->size = size;
  b->next = s->head.next, b->prev = &s->head;
  s->head.next->prev = b, s->head.next = b;
  s->bytes += size;
  return b + 1;
}
void palloc_scratch_free(void *scratch, void *p) {
  (void)scratch;
  if (p == NULL) return;
  blk_t *b = (blk_t *)p - 1;
  b->prev->next = b->next, b->next->prev = b->prev;
  free(b);
}
uint64_t palloc_scratch_peak(const palloc_scratch_t *s) { return s->bytes; }
void palloc_scratch_destroy(palloc_scratch_t *s) {
  if (s == NULL) return;
  for (blk_t *b = s->head.next; b != &s->head;) {
    blk_t *n = b->next;
    free(b);
    b = n;
  }
  free(s);
}
