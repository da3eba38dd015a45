/* palloc.h - the public API of libpalloc, a sampling heap profiler built on mimalloc.
 *
 * Linking -lpalloc (or LD_PRELOAD=libpalloc.so) replaces malloc, free, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc and malloc_usable_size.
 * No code change is needed: configure with the PALLOC_* environment variables, listed in
 * README.md's table (generated from libpalloc's own table; `palloc options` prints it too).
 * This header adds what a program can ask for explicitly. Every function is thread-safe.
 */
#ifndef PALLOC_H
#define PALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libpalloc, whose other symbols (mimalloc's among them) are hidden. */
#if defined(__GNUC__) && !defined(PALLOC_API)
#define PALLOC_API __attribute__((visibility("default")))
#elif !defined(PALLOC_API)
#define PALLOC_API
#endif

#define PALLOC_VERSION "0.1.0"
#define PALLOC_DEFAULT_SAMPLE_RATE 524288

/* ---- allocation (same semantics as the libc functions they are named after) ----------- */
PALLOC_API void *palloc_malloc(size_t size);
PALLOC_API void palloc_free(void *p);
PALLOC_API void *palloc_calloc(size_t count, size_t size);
PALLOC_API void *palloc_realloc(void *p, size_t size);
PALLOC_API void *palloc_reallocarray(void *p, size_t count, size_t size);
PALLOC_API int palloc_posix_memalign(void **out, size_t alignment, size_t size);
PALLOC_API void *palloc_aligned_alloc(size_t alignment, size_t size);
PALLOC_API void *palloc_memalign(size_t alignment, size_t size);
PALLOC_API void *palloc_valloc(size_t size);
PALLOC_API void *palloc_pvalloc(size_t size);
PALLOC_API size_t palloc_malloc_usable_size(const void *p);

/* Each thread keeps its recently freed small blocks (up to 2 KiB, at most 16 KiB or 64 blocks
 * per size class) for its next allocations, as jemalloc's and tcmalloc's thread caches do; a
 * thread's cache is emptied when it exits. This returns the calling thread's cached blocks to
 * mimalloc now (say, before a thread goes idle for long). */
PALLOC_API void palloc_thread_cache_flush(void);

/* ---- sampling ------------------------------------------------------------------------- */

/* Sets the mean sampling interval in bytes (1 = every allocation, 0 = off). Every thread
 * draws a new interval at its next allocation. */
PALLOC_API void palloc_set_sample_rate(size_t bytes);
PALLOC_API size_t palloc_get_sample_rate(void);

/* ---- heap profiles (gzip-compressed pprof profile.proto) -------------------------------- */

/* Writes the heap profile as of now. path: "%p" is replaced by the pid; the file is written
 * under a temporary name and renamed. Returns 0, or -1 (and a "palloc:" line on stderr). */
PALLOC_API int palloc_profile_write(const char *path);
PALLOC_API int palloc_profile_write_fd(int fd);

/* The peak-heap profile: what was live at the high-water mark of the estimated live heap (a new
 * peak is recorded when the estimate passes the last one by PALLOC_PEAK_GROWTH, 1.1). A pprof
 * heap profile (inuse_objects, inuse_space) whose comments say when the peak happened and its
 * estimated size with a 95% interval. */
PALLOC_API int palloc_peak_profile_write(const char *path);
PALLOC_API int palloc_peak_profile_write_fd(int fd);

/* The lifetime profile: per stack, the sampled blocks freed (freed_objects, freed_space), the sum
 * of their lifetimes (lifetime, ns), those freed within PALLOC_TEMP_THRESHOLD (temp_objects,
 * temp_space: the default type), and those still live (live_objects, live_space, live_age);
 * labels lifetime_mean, lifetime_stddev, lifetime_min, lifetime_max (ns). README.md details. */
PALLOC_API int palloc_lifetime_profile_write(const char *path);
PALLOC_API int palloc_lifetime_profile_write_fd(int fd);

/* ---- custom allocators ---------------------------------------------------------------- */

/* An allocator of the program's own (a pool, an arena, a GC heap) can put its objects in the
 * heap profile: call palloc_sample_alloc(size) when it hands out an object. If the sampler picks
 * it, its stack is recorded and a token returned, to pass to palloc_sample_free when the object
 * dies; otherwise NULL (nothing to do on free). The token is opaque: only its pointer is used. */
typedef struct palloc_sample_s palloc_sample_t;
PALLOC_API palloc_sample_t *palloc_sample_alloc(size_t size);
PALLOC_API void palloc_sample_free(palloc_sample_t *token, size_t size);

/* ---- statistics ----------------------------------------------------------------------- */
typedef struct palloc_stats_s {
  uint64_t sample_rate;          /* current mean sampling interval, bytes (0 = off) */
  uint64_t sampled_allocs;       /* allocations sampled since start */
  uint64_t sampled_frees;        /* sampled allocations freed since start */
  uint64_t live_sampled_blocks;  /* sampled allocations not yet freed */
  uint64_t live_sampled_bytes;   /* their requested bytes */
  uint64_t buckets;              /* distinct (stack, size) buckets */
  uint64_t internal_bytes;       /* memory palloc maps for itself (buckets, tables) */
  uint64_t samples_dropped;      /* sampled allocations that could not be recorded */
  uint64_t profiles_written;     /* heap profiles written successfully */
  uint64_t profile_errors;       /* profile writes that failed */
  uint64_t last_write_ns;        /* duration of the last profile write */
  uint64_t last_write_bytes;     /* size of the last profile written (compressed) */
  uint64_t threads;              /* threads that have allocated and not exited */
} palloc_stats_t;

PALLOC_API void palloc_read_stats(palloc_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
