/* scratch_malloc.h - the malloc-backed scratch arena of the reader's tests (scratch_malloc.c). */
#ifndef PALLOC_TESTS_SCRATCH_MALLOC_H
#define PALLOC_TESTS_SCRATCH_MALLOC_H
#include <stddef.h>
extern size_t scratch_max;         /* largest request served */
extern int scratch_abort_over_max; /* 1: a larger request aborts (a fuzzer finding) */
#endif
