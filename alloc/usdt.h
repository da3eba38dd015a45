/* usdt.h - the OpenTelemetry eBPF profiler's memory-profiling probes, on sampled allocations.
 *
 * The contract (opentelemetry-ebpf-profiler, design-docs/00003-memory-profiling, "USDT
 * contract"): provider otel_memory,
 *   otel_memory:alloc(ptr, size, weight)  on a sampled allocation: the pointer the program gets,
 *                                         the bytes it asked for, and the bytes the sample
 *                                         stands for (the profiler takes it as alloc_space);
 *   otel_memory:free(ptr)                 on the free of a sampled allocation.
 * The document's weight is nsamples x the sampling interval, for jemalloc's and tcmalloc's
 * samplers; palloc's is Go's (at most one sample per allocation, taken with probability
 * 1 - exp(-size/rate)), whose unbiased weight is size / (1 - exp(-size/rate)): Go's
 * scaleHeapSample, the value palloc's own profiles give the allocation. For small sizes both
 * are the rate; for a large allocation, its size.
 *
 * The probes are <sys/sdt.h>'s (Debian's systemtap-sdt-dev): a nop in the code and a note in
 * .note.stapsdt, which eBPF agents read to attach. No semaphore: an agent that does not
 * maintain one would then never see a probe fire, and the arguments cost nothing next to the
 * stack capture every sampled allocation makes anyway. Built without the header, the probes
 * compile to nothing.
 */
#ifndef PALLOC_USDT_H
#define PALLOC_USDT_H
#if defined(PALLOC_HAVE_SDT)
#include <sys/sdt.h>
/* weight: n / p(n) (proto/poisson.h's palloc_sample_weight), which the caller has for the peak
 * estimate too */
static inline void palloc_usdt_alloc(const void *p, size_t n, int64_t weight) {
  uint64_t ptr = (uint64_t)(uintptr_t)p, size = (uint64_t)n, w = (uint64_t)weight;
  DTRACE_PROBE3(otel_memory, alloc, ptr, size, w);
}
static inline void palloc_usdt_free(const void *p) {
  uint64_t ptr = (uint64_t)(uintptr_t)p;
  DTRACE_PROBE1(otel_memory, free, ptr);
}
#else
static inline void palloc_usdt_alloc(const void *p, size_t n, int64_t weight) {
  (void)p, (void)n, (void)weight;
}
static inline void palloc_usdt_free(const void *p) { (void)p; }
#endif
#endif
