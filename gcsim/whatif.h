/* whatif.h - the entry points alloc/trace.c calls (weakly) for PALLOC_TRACE's what-if mode. */
#ifndef PALLOC_GCSIM_WHATIF_H
#define PALLOC_GCSIM_WHATIF_H
#include <stdbool.h>
#include <stdint.h>

/* Called once at palloc's initialization, possibly inside the process's first malloc, after
 * alloc/options.c has read the environment: no allocation, no stdio. True when PALLOC_TRACE is 1
 * or legacy. */
bool palloc_whatif_wanted(void);
/* A batch (about 64 KiB) of usable bytes allocated and freed by one thread; any thread, with
 * palloc's reentrancy guard held. */
void palloc_whatif_publish(int64_t allocated, int64_t freed);

#endif
