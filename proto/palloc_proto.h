/* palloc_proto.h - the pprof profile.proto codec shared by libpalloc, the tools and the tests.
 *
 * The message types are the ones protoc-c generates from proto/profile.proto
 * (Perftools__Profiles__*). This header adds what every user of the format needs on top:
 *  - reading a profile file (gzip or raw) into a validated message: every id a sample or
 *    location refers to exists, every string index is in range, string_table[0] is "";
 *    a reader can then index without further checks;
 *  - writing a profile gzip-compressed to an fd, or to a path through a temporary name and
 *    rename(2), so that a concurrent reader never sees half a file;
 *  - a string-table builder (interning) and scaleHeapSample, the unsampling rule of Go's
 *    runtime/pprof (its exp, and the sampler's log, are explog.h's).
 *
 * Two halves: writing (encode.c, write.c, strtab.c, scale.c, explog.c: palloc_proto_lib, linked
 * whole into libpalloc) needs neither protobuf-c nor zlib at link time; reading (codec.c,
 * validate.c and the generated profile.pb-c.c: palloc_proto_dep, for the tools and tests) needs
 * both.
 *
 * Memory: every function that allocates takes a ProtobufCAllocator (NULL = malloc/free). libpalloc
 * passes its own scratch allocator so that writing a profile never touches the profiled heap.
 * Errors are returned as -1 (or NULL) with a one-line reason in the caller's buffer; nothing here
 * prints or aborts.
 */
#ifndef PALLOC_PROTO_H
#define PALLOC_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <protobuf-c/protobuf-c.h>
#include "profile.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef Perftools__Profiles__Profile palloc_pb_profile_t;

#define PALLOC_PROTO_ERRLEN 256

/* Largest decompressed profile accepted by the reader (guards against gzip bombs). */
#define PALLOC_PROTO_MAX_BYTES ((size_t)1 << 31)

/* ---- reading ---------------------------------------------------------------------------- */

/* Decodes a profile from memory (gzip-compressed or raw protobuf) and validates it.
 * Returns NULL and fills err on failure. Free the result with palloc_proto_free. */
palloc_pb_profile_t *palloc_proto_decode(const uint8_t *data, size_t len, ProtobufCAllocator *a,
                                         char err[PALLOC_PROTO_ERRLEN]);

/* Reads and decodes a file; err names the problem (the caller adds the path). */
palloc_pb_profile_t *palloc_proto_read_file(const char *path, ProtobufCAllocator *a,
                                            char err[PALLOC_PROTO_ERRLEN]);

void palloc_proto_free(palloc_pb_profile_t *p, ProtobufCAllocator *a);

/* Checks cross references of a decoded profile; 0 if sound, else -1 with err. */
int palloc_proto_validate(const palloc_pb_profile_t *p, char err[PALLOC_PROTO_ERRLEN]);

/* ---- writing ---------------------------------------------------------------------------- */

/* The protobuf encoding of p (encode.c): its size, and the encoding itself into out, which must
 * hold palloc_proto_encoded_size(p) bytes; returns the bytes written. The same bytes as
 * protobuf-c's pack, without protobuf-c: libpalloc links the writing half of this module only. */
size_t palloc_proto_encoded_size(const palloc_pb_profile_t *p);
size_t palloc_proto_encode(const palloc_pb_profile_t *p, uint8_t *out);

/* ---- streaming ---------------------------------------------------------------------------- */
/* Where a profile's bytes go: write(ctx, buf, n) takes all n bytes and returns 0, or returns -1
 * with errno set. An fd, a socket, or anything a caller wraps. */
typedef struct palloc_proto_sink_s {
  int (*write)(void *ctx, const void *buf, size_t n);
  void *ctx;
} palloc_proto_sink_t;

/* The samples of a profile given one at a time, so that a writer need not hold them all: get
 * (ctx, i) returns sample i of n; each pass over the samples calls it for i = 0, 1, ..., n - 1
 * in order (a writer makes two: one to size, one to write), and what it returns stays valid
 * until its next call. The profile's own sample array is then ignored. */
typedef struct palloc_proto_samples_s {
  size_t n;
  const Perftools__Profiles__Sample *(*get)(void *ctx, size_t i);
  void *ctx;
} palloc_proto_samples_t;

/* The encoding of p, with its samples from samples (or p's own if NULL), written to sink through
 * buf (buflen bytes, handed to sink each time it fills): the bytes palloc_proto_encode gives.
 * Returns the bytes encoded, or -1 if a write to the sink failed. */
long palloc_proto_encode_stream(const palloc_pb_profile_t *p, const palloc_proto_samples_t *samples,
                                uint8_t *buf, size_t buflen, const palloc_proto_sink_t *sink);
size_t palloc_proto_encoded_size_stream(const palloc_pb_profile_t *p,
                                        const palloc_proto_samples_t *samples);

/* p (its samples from samples, or its own if NULL) encoded and gzip-compressed to sink as it is
 * encoded: the memory used is zlib's state and two 64 KiB buffers, whatever the profile's size.
 * Returns the compressed bytes written, or -1 with err (errno preserved). */
long palloc_proto_write_sink(const palloc_pb_profile_t *p, const palloc_proto_samples_t *samples,
                             const palloc_proto_sink_t *sink, ProtobufCAllocator *a,
                             char err[PALLOC_PROTO_ERRLEN]);
/* The same to fd, and to path as palloc_proto_write_path does. */
long palloc_proto_write_fd_samples(const palloc_pb_profile_t *p,
                                   const palloc_proto_samples_t *samples, int fd,
                                   ProtobufCAllocator *a, char err[PALLOC_PROTO_ERRLEN]);
long palloc_proto_write_path_samples(const palloc_pb_profile_t *p,
                                     const palloc_proto_samples_t *samples, const char *path,
                                     ProtobufCAllocator *a, char err[PALLOC_PROTO_ERRLEN]);

/* Serializes and gzip-compresses p to fd (zlib is loaded by the first call; if it cannot be,
 * the call fails with the reason). Returns the compressed bytes written, or -1 with err
 * (errno preserved). */
long palloc_proto_write_fd(const palloc_pb_profile_t *p, int fd, ProtobufCAllocator *a,
                           char err[PALLOC_PROTO_ERRLEN]);

/* Writes to path as palloc_proto_out_open says: a regular file through "<path>.tmp.<pid>" and
 * rename, so a reader never sees half a file; a FIFO or a character device directly.
 * Returns the compressed bytes written, or -1 with err (no temporary file is left). */
long palloc_proto_write_path(const palloc_pb_profile_t *p, const char *path,
                             ProtobufCAllocator *a, char err[PALLOC_PROTO_ERRLEN]);

/* ---- output paths ------------------------------------------------------------------------ */

/* Every file palloc writes is opened here (outpath.c): a regular file or a new one is written
 * through "<name>.tmp.<pid>" and rename(2), a symlink is followed to its target, a FIFO or a
 * character device is written directly (a FIFO without reader fails at once), anything else is
 * refused. Errors: -1 with the reason in err (the caller adds the path). */
enum { PALLOC_OUT_REPLACE, PALLOC_OUT_APPEND };
typedef struct palloc_out_s {
  int fd;             /* write here */
  char name[4096];    /* the file replaced (path with its symlinks resolved), or "" */
  char tmp[4096];     /* the temporary renamed to name at close, or "" (written directly) */
} palloc_out_t;

int palloc_proto_out_open(palloc_out_t *o, const char *path, int how,
                          char err[PALLOC_PROTO_ERRLEN]);
/* Closes o; if ok, renames the temporary into place, else removes it. 0, or -1 with err. */
int palloc_proto_out_close(palloc_out_t *o, bool ok, char err[PALLOC_PROTO_ERRLEN]);
/* write(2) until done or failed (0 / -1 with errno), without raising SIGPIPE. */
int palloc_proto_out_write(int fd, const void *buf, size_t n);
/* Copies path to out with "%p" replaced by the pid and "%%" by "%" (any other '%' is kept);
 * false if it does not fit. The one expander: libpalloc's paths (async-signal-safe, no
 * allocation) and `palloc run`, which names its child's pid. */
bool palloc_proto_expand_path(const char *path, char *out, size_t cap);
bool palloc_proto_expand_pid(const char *path, long pid, char *out, size_t cap);

/* ---- string table ----------------------------------------------------------------------- */

/* An interning string table: equal strings get equal indexes; index 0 is "". Strings are
 * copied into memory from the allocator. */
typedef struct palloc_strtab_s {
  ProtobufCAllocator *a;
  char **strs;        /* the table, strs[0] = "" */
  size_t n, cap;
  uint32_t *slots;    /* open-addressing hash: index+1, 0 = empty */
  size_t nslots;
  bool failed;        /* an allocation failed; the table is unusable */
} palloc_strtab_t;

void palloc_strtab_init(palloc_strtab_t *t, ProtobufCAllocator *a);
/* Returns the index of s (added if new), or 0 if memory ran out (t->failed is then set). */
int64_t palloc_strtab_intern(palloc_strtab_t *t, const char *s);
void palloc_strtab_destroy(palloc_strtab_t *t);

/* ---- unsampling ------------------------------------------------------------------------- */

/* scaleHeapSample (Go runtime/pprof): scales a bucket's raw count and bytes sampled at `rate`
 * to estimates of the true values. rate <= 1 means an exact profile (no scaling). */
void palloc_proto_scale_heap(int64_t count, int64_t size, int64_t rate,
                             int64_t *out_count, int64_t *out_size);

/* The malloc/free-backed allocator (for tools and tests). */
extern ProtobufCAllocator palloc_proto_system_allocator;

#ifdef __cplusplus
}
#endif
#endif
