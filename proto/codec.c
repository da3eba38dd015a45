/* codec.c - reading profile.proto files (gzip via zlib, protobuf via protobuf-c).
 *
 * The whole file is read, inflated if it starts with the gzip magic (pprof accepts both),
 * unpacked by protobuf-c, then validated (validate.c), so that a truncated gzip, a foreign file
 * or a profile with dangling ids is a one-line error, never a crash later. Writing is write.c's.
 * All memory comes from the caller's ProtobufCAllocator, including zlib's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "palloc_proto.h"
#include "zalloc.h"

static ProtobufCAllocator *or_system(ProtobufCAllocator *a) {
  return a ? a : &palloc_proto_system_allocator;
}


/* Inflates a gzip stream into a buffer that grows as needed, up to PALLOC_PROTO_MAX_BYTES. */
static uint8_t *gunzip(const uint8_t *in, size_t len, ProtobufCAllocator *a, size_t *out_len,
                       char *err) {
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = palloc_z_alloc;
  z.zfree = palloc_z_free;
  z.opaque = a;
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "cannot start gzip decoder");
    return NULL;
  }
  size_t cap = len * 4 + 4096, n = 0;
  uint8_t *out = a->alloc(a->allocator_data, cap);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  int rc = Z_OK;
  while (out != NULL) {
    if (n == cap) {
      if (cap >= PALLOC_PROTO_MAX_BYTES) {
        snprintf(err, PALLOC_PROTO_ERRLEN, "decompressed profile larger than %zu bytes", cap);
        break;
      }
      uint8_t *bigger = a->alloc(a->allocator_data, cap * 2);
      if (bigger != NULL) memcpy(bigger, out, n);
      a->free(a->allocator_data, out);
      out = bigger;
      cap *= 2;
      if (out == NULL) break;
    }
    z.next_out = out + n;
    z.avail_out = (uInt)(cap - n);
    rc = inflate(&z, Z_NO_FLUSH);
    n = cap - z.avail_out;
    if (rc == Z_STREAM_END) {
      /* A gzip file may hold several members, one after another (as Go's reader accepts):
       * go on with the next member if one follows. */
      if (z.avail_in >= 2 && z.next_in[0] == 0x1f && z.next_in[1] == 0x8b &&
          inflateReset(&z) == Z_OK)
        continue;
      inflateEnd(&z);
      *out_len = n;
      return out;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) break;
    if (rc == Z_BUF_ERROR && z.avail_in == 0 && z.avail_out != 0) break; /* input ended early */
  }
  if (out == NULL)
    snprintf(err, PALLOC_PROTO_ERRLEN, "out of memory while decompressing");
  else if (err[0] == 0)
    snprintf(err, PALLOC_PROTO_ERRLEN, "%s",
             rc == Z_DATA_ERROR ? "corrupt gzip data" : "truncated gzip stream");
  if (out) a->free(a->allocator_data, out);
  inflateEnd(&z);
  return NULL;
}

palloc_pb_profile_t *palloc_proto_decode(const uint8_t *data, size_t len, ProtobufCAllocator *a,
                                         char err[PALLOC_PROTO_ERRLEN]) {
  a = or_system(a);
  err[0] = 0;
  if (len == 0) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "empty file");
    return NULL;
  }
  uint8_t *raw = NULL;
  size_t raw_len = len;
  if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    raw = gunzip(data, len, a, &raw_len, err);
    if (raw == NULL) return NULL;
  }
  palloc_pb_profile_t *p =
      perftools__profiles__profile__unpack(a, raw_len, raw ? raw : data);
  if (raw) a->free(a->allocator_data, raw);
  if (p == NULL) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "not a pprof profile (protobuf decoding failed)");
    return NULL;
  }
  if (palloc_proto_validate(p, err) != 0) {
    perftools__profiles__profile__free_unpacked(p, a);
    return NULL;
  }
  return p;
}

palloc_pb_profile_t *palloc_proto_read_file(const char *path, ProtobufCAllocator *a,
                                            char err[PALLOC_PROTO_ERRLEN]) {
  a = or_system(a);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "%s", strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "not a regular file");
    close(fd);
    return NULL;
  }
  if ((uint64_t)st.st_size > PALLOC_PROTO_MAX_BYTES) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "file too large (%lld bytes)", (long long)st.st_size);
    close(fd);
    return NULL;
  }
  size_t len = (size_t)st.st_size, got = 0;
  uint8_t *buf = a->alloc(a->allocator_data, len ? len : 1);
  if (buf == NULL) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "out of memory");
    close(fd);
    return NULL;
  }
  while (got < len) {
    ssize_t r = read(fd, buf + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  palloc_pb_profile_t *p = NULL;
  if (got != len)
    snprintf(err, PALLOC_PROTO_ERRLEN, "read error");
  else
    p = palloc_proto_decode(buf, len, a, err);
  a->free(a->allocator_data, buf);
  return p;
}

void palloc_proto_free(palloc_pb_profile_t *p, ProtobufCAllocator *a) {
  if (p) perftools__profiles__profile__free_unpacked(p, or_system(a));
}
