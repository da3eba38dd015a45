/* config.c - palloc's warnings, and the PALLOC_* settings the allocator's paths read.
 *
 * The variables are read, checked and reported by options.c (one table for all of them); this
 * copies the allocator's into palloc_g at initialization, inside the first malloc.
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include "internal.h"

void palloc_warn(const char *fmt, ...) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "palloc: ");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  n += m < 0 ? 0 : (m > (int)(sizeof buf) - n - 2 ? (int)sizeof buf - n - 2 : m);
  buf[n++] = '\n';
  ssize_t w = write(2, buf, (size_t)n);
  (void)w;
}

/* The values themselves are options.c's: this copies what the hot paths read into palloc_g. */
void palloc_config_load(void) {
  palloc_options_load();
  atomic_store(&palloc_g.rate, palloc_option_int(PALLOC_OPT_SAMPLE_RATE));
  palloc_g.seeded = palloc_option_is_set(PALLOC_OPT_SEED);
  palloc_g.seed = (uint64_t)palloc_option_int(PALLOC_OPT_SEED);
  palloc_g.depth = (int)palloc_option_int(PALLOC_OPT_STACK_DEPTH);
  palloc_g.unwind = (uint8_t)palloc_option_int(PALLOC_OPT_UNWIND);
  palloc_g.tcache = palloc_option_int(PALLOC_OPT_TCACHE) != 0;
  palloc_g.symbolize = palloc_option_int(PALLOC_OPT_SYMBOLIZE) != 0;
  palloc_g.peak_growth = palloc_option_int(PALLOC_OPT_PEAK_GROWTH);
  palloc_g.lifetimes = palloc_option_int(PALLOC_OPT_LIFETIMES) != 0;
  palloc_g.temp_ns = (uint64_t)palloc_option_int(PALLOC_OPT_TEMP_THRESHOLD);
  /* options.c's bounds: the stack buffers hold PALLOC_MAX_DEPTH frames; a rate is >= 0 */
  palloc_assert(palloc_g.depth >= 1 && palloc_g.depth <= PALLOC_MAX_DEPTH);
  palloc_assert(atomic_load(&palloc_g.rate) >= 0);
}
