/* codec.c - reading and writing profile.proto files (gzip via zlib, protobuf via protobuf-c).
 *
 * Reading: the whole file is read, inflated if it starts with the gzip magic (pprof accepts
 * both), unpacked by protobuf-c, then validated (validate.c), so that a truncated gzip, a
 * foreign file or a profile with dangling ids is a one-line error, never a crash later.
 * Writing: the message is packed into one buffer and deflated in chunks straight to the fd.
 * A path is opened by outpath.c: a regular file is written as "<path>.tmp.<pid>" and renamed, so
 * a reader never sees half a profile; a FIFO or a device is written directly.
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

static void *sys_alloc(void *d, size_t n) { (void)d; return malloc(n); }
static void sys_free(void *d, void *p) { (void)d; free(p); }
ProtobufCAllocator palloc_proto_system_allocator = { sys_alloc, sys_free, NULL };

static ProtobufCAllocator *or_system(ProtobufCAllocator *a) {
  return a ? a : &palloc_proto_system_allocator;
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  ProtobufCAllocator *a = opaque;
  return a->alloc(a->allocator_data, (size_t)items * size);
}
static void z_free(voidpf opaque, voidpf p) {
  ProtobufCAllocator *a = opaque;
  a->free(a->allocator_data, p);
}

/* Inflates a gzip stream into a buffer that grows as needed, up to PALLOC_PROTO_MAX_BYTES. */
static uint8_t *gunzip(const uint8_t *in, size_t len, ProtobufCAllocator *a, size_t *out_len,
                       char *err) {
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = z_alloc;
  z.zfree = z_free;
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

long palloc_proto_write_fd(const palloc_pb_profile_t *p, int fd, ProtobufCAllocator *a,
                           char err[PALLOC_PROTO_ERRLEN]) {
  a = or_system(a);
  size_t len = perftools__profiles__profile__get_packed_size(p);
  enum { CHUNK = 64 * 1024 };
  uint8_t *raw = a->alloc(a->allocator_data, len ? len : 1);
  uint8_t *out = a->alloc(a->allocator_data, CHUNK);
  long rc = -1, written = 0;
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = z_alloc;
  z.zfree = z_free;
  z.opaque = a;
  if (raw == NULL || out == NULL) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "out of memory packing %zu bytes", len);
    goto done;
  }
  perftools__profiles__profile__pack(p, raw);
  /* deflate's state is sized by windowBits and memLevel: at 15 and 8 it is ~256 KB, and its
   * 64 KB hash head is zeroed whatever the input, which a profile written at exit adds to the
   * program's peak RSS. A window larger than the input finds no more matches, so the window is
   * the input's size rounded up to a power of two (at least 512 bytes, deflate's minimum;
   * 262 = deflate's MIN_LOOKAHEAD), and the hash is sized with it (memLevel = windowBits - 7,
   * i.e. as many hash heads as window positions): a 4 KB profile needs ~30 KB, not 256 KB, and
   * compresses to the same size; a profile of 32 KB or more gets zlib's defaults. */
  int wbits = 9;
  while (wbits < MAX_WBITS && ((size_t)1 << wbits) < len + 262) wbits++;
  int mem_level = wbits - 7 < 1 ? 1 : wbits - 7 > 8 ? 8 : wbits - 7;
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + wbits, mem_level,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "cannot start gzip encoder");
    goto done;
  }
  z.next_in = raw;
  z.avail_in = (uInt)len;
  int zr;
  do {
    z.next_out = out;
    z.avail_out = CHUNK;
    zr = deflate(&z, Z_FINISH);
    written += CHUNK - z.avail_out;
    if (palloc_proto_out_write(fd, out, CHUNK - z.avail_out) != 0) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "write failed: %s", strerror(errno));
      deflateEnd(&z);
      goto done;
    }
  } while (zr == Z_OK || zr == Z_BUF_ERROR);
  deflateEnd(&z);
  if (zr != Z_STREAM_END) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "gzip encoding failed");
    goto done;
  }
  rc = written;
done:
  if (raw) a->free(a->allocator_data, raw);
  if (out) a->free(a->allocator_data, out);
  return rc;
}

long palloc_proto_write_path(const palloc_pb_profile_t *p, const char *path,
                             ProtobufCAllocator *a, char err[PALLOC_PROTO_ERRLEN]) {
  palloc_out_t o;
  if (palloc_proto_out_open(&o, path, PALLOC_OUT_REPLACE, err) != 0) return -1;
  long rc = palloc_proto_write_fd(p, o.fd, a, err);
  return palloc_proto_out_close(&o, rc >= 0, err) == 0 ? rc : -1;
}
