/* profinternal.h - the pieces a profile write is assembled from (profile.c): the executable
 * mappings of the process (maps.c) and symbols for addresses (symbolize.c). All memory comes
 * from the write's scratch arena; everything here runs under the writer lock. */
#ifndef PALLOC_PROFINTERNAL_H
#define PALLOC_PROFINTERNAL_H
#include "internal.h"
#pragma GCC visibility push(hidden)

typedef struct palloc_mapping_s {
  uintptr_t start, limit, offset;
  const char *path;
  char build_id[41 * 2];   /* lowercase hex, "" if none */
  bool has_functions, has_filenames, has_lines;
} palloc_mapping_t;

/* Reads /proc/self/maps (executable mappings only), sorted by address, with GNU build IDs. */
palloc_mapping_t *palloc_maps_read(palloc_scratch_t *s, size_t *n);
/* The GNU build ID of a loaded object, in lowercase hex ("" if none), into out[82]. */
struct dl_phdr_info;
void palloc_object_build_id(struct dl_phdr_info *info, char *out);
/* Index of the mapping that contains addr, or -1. */
long palloc_maps_find(const palloc_mapping_t *m, size_t n, uintptr_t addr);

typedef struct palloc_sym_s {
  const char *func;  /* NULL if unknown */
  const char *file;  /* NULL if unknown */
  int line;          /* 0 if unknown */
} palloc_sym_t;

/* Symbolizes n addresses (already adjusted to point into the call instruction) from the files'
 * ELF symbol tables and DWARF line tables,
 * through a bounded cache. Strings stay valid until the scratch arena is destroyed. */
void palloc_symbolize(const uintptr_t *addrs, size_t n, palloc_sym_t *out, palloc_scratch_t *s);
uint64_t palloc_symcache_bytes(void);
/* Forgets every cached symbol: an unloaded library's addresses may now hold another's code. */
void palloc_symcache_drop(void);
/* Symbolizes the n addresses (sorted, .addr set) of the object loaded from path with load bias
 * bias, from its file, without the cache. Strings live in s. */
struct palloc_symq_s;
void palloc_symbolize_file(const char *path, uintptr_t bias, struct palloc_symq_s *w, size_t n,
                           palloc_scratch_t *s);

/* ---- unload.c: frames of unloaded libraries ------------------------------------------------ */
/* A frame of a sampled stack whose library was unloaded, named when it was unloaded. */
typedef struct palloc_gone_frame_s {
  uintptr_t addr;   /* return address - 1, as the profile's locations */
  uint32_t map;     /* index in palloc_unload_mappings */
  palloc_sym_t sym; /* strings in palloc's own memory, never freed */
} palloc_gone_frame_t;
/* The mappings of unloaded libraries that had sampled frames (under the writer lock). */
const palloc_mapping_t *palloc_unload_mappings(size_t *n);
/* Frame id (a bucket's gone[k], > 0) -> its record (under the writer lock). */
const palloc_gone_frame_t *palloc_unload_frame(uint32_t id);
/* ---- other profiles from the buckets: peak.c, lifetime.c ------------------------------------ */
/* A profile other than the heap profile is a kind: its sample types, and a collect step that
 * gives one row per sample (a bucket, its values, up to 4 numeric labels besides `bytes`);
 * profile.c does the rest (frames, mappings, symbols, the header) as for the heap profile. */
#define PALLOC_KIND_MAX_VALUES 8
#define PALLOC_KIND_MAX_LABELS 4
#define PALLOC_KIND_MAX_COMMENTS 4
typedef struct palloc_profile_row_s {
  const palloc_bucket_t *b;
  int64_t v[PALLOC_KIND_MAX_VALUES];
  int nlabels;
  struct { const char *key, *unit; int64_t num; } label[PALLOC_KIND_MAX_LABELS];
} palloc_profile_row_t;
typedef struct palloc_profile_kind_s {
  int nvalues;
  const char *const (*types)[2];   /* nvalues {type, unit} */
  const char *default_type;        /* default_sample_type, or NULL (pprof shows the last) */
  /* Rows into *rows (scratch memory), comments into comment[0..*ncomments); returns the number
   * of rows, or -1 if memory ran out. Runs under the writer lock and guard. */
  long (*collect)(palloc_scratch_t *s, int64_t rate, palloc_profile_row_t **rows,
                  char comment[][256], int *ncomments);
} palloc_profile_kind_t;
extern const palloc_profile_kind_t palloc_peak_kind, palloc_lifetime_kind;

#pragma GCC visibility pop
#endif
