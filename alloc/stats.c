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
    palloc_bucket_counts_t c;
    palloc_bucket_read(b, &c);
    out->sampled_allocs += c.allocs;
    out->sampled_frees += c.frees;
    out->live_sampled_blocks += c.allocs - c.frees;
    out->live_sampled_bytes += c.alloc_bytes - c.free_bytes;
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
