/* fuzz_elf.c - libFuzzer target for libpalloc's in-process ELF/DWARF reader (alloc/elfsym.c,
 * alloc/dwarfline.c), built with clang by meson -Dfuzz=true.
 *
 * Input: any bytes, as a loaded object's file would hold them. They are written to a memfd
 * (the reader reads files with pread, so this is the path it takes in a host) and symbolized
 * with palloc_symbolize_fd: 48 addresses spread over the file's executable sections (found by
 * the reader itself, on the input) so that seeds from real files reach their symbol and line
 * tables, plus 8 addresses taken from the input's last 64 bytes so that the fuzzer can aim them.
 * Results must be sane (strings terminated: strlen under ASan; lines >= 0).
 *
 * The scratch arena is replaced by one on malloc, one block per allocation, so that ASan checks
 * every buffer the reader uses (palloc's own arena is mmap'd chunks ASan cannot see) and LSan
 * finds what the reader would leak from it. Seeds: real files (tests/alloc/meson.build).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "elfread.h"

/* ---- the scratch arena, on malloc ----------------------------------------------------------- */
typedef struct blk_s { struct blk_s *prev, *next; size_t size; } blk_t;
struct palloc_scratch_s { blk_t head; uint64_t bytes; };

palloc_scratch_t *palloc_scratch_new(void) {
  palloc_scratch_t *s = calloc(1, sizeof *s);
  if (s) s->head.prev = s->head.next = &s->head;
  return s;
}
void *palloc_scratch_alloc(void *scratch, size_t size) {
  palloc_scratch_t *s = scratch;
  /* no buffer of the reader may be larger than its input (a few hundred KiB here): anything
   * bigger is a length taken from the file unchecked */
  if (size > ((size_t)64 << 20)) abort();
  blk_t *b = calloc(1, sizeof *b + size); /* zeroed, as fresh mmap memory is */
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

static int cmp_rel(const void *a, const void *b) {
  const palloc_symq_t *x = a, *y = b;
  return x->rel < y->rel ? -1 : x->rel > y->rel;
}

static int memfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (memfd < 0 && (memfd = memfd_create("fuzz_elf", MFD_CLOEXEC)) < 0) abort();
  if (ftruncate(memfd, 0) != 0) abort();
  for (size_t at = 0; at < size;) {
    ssize_t r = pwrite(memfd, data + at, size - at, (off_t)at);
    if (r <= 0) abort();
    at += (size_t)r;
  }
  palloc_scratch_t *s = palloc_scratch_new();
  if (s == NULL) abort();
  /* the queries: the executable sections' span, as the reader sees the input */
  uint64_t lo = UINT64_MAX, hi = 0;
  palloc_elf_t e;
  if (palloc_elf_open(&e, memfd, s)) {
    for (size_t i = 0; i < e.shnum; i++)
      if ((e.sh[i].sh_flags & SHF_EXECINSTR) && e.sh[i].sh_size > 0 &&
          e.sh[i].sh_addr + e.sh[i].sh_size > e.sh[i].sh_addr) {
        if (e.sh[i].sh_addr < lo) lo = e.sh[i].sh_addr;
        if (e.sh[i].sh_addr + e.sh[i].sh_size > hi) hi = e.sh[i].sh_addr + e.sh[i].sh_size;
      }
  }
  if (lo >= hi) lo = 0, hi = 0x10000;
  palloc_symq_t w[56];
  memset(w, 0, sizeof w);
  size_t n = 0;
  for (; n < 48; n++) w[n].rel = lo + (uint64_t)((unsigned __int128)(hi - lo) * n / 48);
  for (size_t k = 0; k < 8 && size >= 64; k++, n++) memcpy(&w[n].rel, data + size - 64 + 8 * k, 8);
  for (size_t i = 0; i < n; i++) w[i].addr = w[i].rel;
  qsort(w, n, sizeof w[0], cmp_rel);
  palloc_scratch_destroy(s);

  s = palloc_scratch_new();
  if (s == NULL) abort();
  palloc_symbolize_fd(memfd, w, n, s);
  for (size_t i = 0; i < n; i++) {
    if (w[i].func && strlen(w[i].func) > ((size_t)4 << 20)) abort();
    if (w[i].file && strlen(w[i].file) > ((size_t)64 << 20)) abort();
    if (w[i].line < 0) abort();
    if (w[i].addr != w[i].rel) abort(); /* the reader must not touch the queries */
  }
  palloc_scratch_destroy(s);
  return 0;
}
