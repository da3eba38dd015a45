/* scale.c - scaleHeapSample, the unsampling rule of Go's runtime/pprof (protomem.go).
 *
 * An object of average size s is sampled with probability 1 - exp(-s/rate) under Poisson
 * sampling over bytes, so each sampled object stands for 1/(1 - exp(-s/rate)) objects. The
 * scale is computed from the bucket's average size and applied to count and bytes alike, then
 * truncated toward zero, exactly as Go does, so our numbers match a Go heap profile's.
 */
#include "palloc_proto.h"
#include "explog.h" /* palloc_exp: no libm (explog.c says why) */

void palloc_proto_scale_heap(int64_t count, int64_t size, int64_t rate,
                             int64_t *out_count, int64_t *out_size) {
  if (count == 0 || size == 0) {
    *out_count = 0;
    *out_size = 0;
    return;
  }
  if (rate <= 1) {
    *out_count = count;
    *out_size = size;
    return;
  }
  double avg = (double)size / (double)count;
  double scale = 1.0 / (1.0 - palloc_exp(-avg / (double)rate));
  *out_count = (int64_t)((double)count * scale);
  *out_size = (int64_t)((double)size * scale);
}
