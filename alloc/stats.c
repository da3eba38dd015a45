/* stats.c - palloc_read_stats: a snapshot of the profiler's own state.
 * Live sampled blocks and bytes are summed over the buckets (frees read before allocs, so the
 * differences are never negative); the other figures are counters kept where they happen. */
#include <string.h>
#include "internal.h"

uint64_t palloc_symcache_bytes(void);

void palloc_read_stats(palloc_stats_t *out) {
  palloc_init();
  memset(out, 0, sizeof *out);
  out->sample_rate = (uint64_t)atomic_load(&palloc_g.rate);
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) {
    uint64_t v[4];
    palloc_bucket_read(b, v);
    out->sampled_allocs += v[0];
    out->sampled_frees += v[2];
    out->live_sampled_blocks += v[0] - v[2];
    out->live_sampled_bytes += v[1] - v[3];
    out->buckets++;
  }
  out->internal_bytes = palloc_meta_bytes() + palloc_symcache_bytes() + palloc_registry_bytes();
  out->samples_dropped = atomic_load(&palloc_g.samples_dropped);
  out->profiles_written = atomic_load(&palloc_profiles_written);
  out->profile_errors = atomic_load(&palloc_profile_errors);
  out->last_write_ns = atomic_load(&palloc_last_write_ns);
  out->last_write_bytes = atomic_load(&palloc_last_write_bytes);
  out->threads = atomic_load(&palloc_g.threads);
}
