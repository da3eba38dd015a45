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
 * The scratch arena is replaced by one on malloc (scratch_malloc.c), so that ASan checks every
 * buffer the reader uses and LSan finds what it would leak. Seeds: real files
 * (tests/alloc/meson.build, fuzz_elf.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "elfread.h"

#include "scratch_malloc.h" /* the scratch arena on malloc */

static int cmp_rel(const void *a, const void *b) {
  const palloc_symq_t *x = a, *y = b;
  return x->rel < y->rel ? -1 : x->rel > y->rel;
}

static int memfd = -1;

/* No buffer of the reader may be larger than its input (a few hundred KiB here): anything
 * bigger is a length taken from the file unchecked. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  scratch_max = (size_t)64 << 20;
  scratch_abort_over_max = 1;
  return 0;
}

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
