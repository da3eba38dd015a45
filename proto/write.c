/* write.c - writing profile.proto files: encoded by encode.c, gzip-compressed by zlib.
 *
 * The message is encoded and deflated as it goes, through two buffers of fixed size, to a sink
 * (an fd, or the caller's write function): memory does not grow with the profile. A path is
 * opened by outpath.c: a regular file is written as "<path>.tmp.<pid>" and renamed, so a reader
 * never sees half a profile; a FIFO or a device is written directly. All memory
 * comes from the caller's ProtobufCAllocator, including zlib's.
 *
 * zlib is not linked: it is loaded (dlopen "libz.so.1") by the first write, so that libpalloc,
 * preloaded into every process of a build or a script, does not map and relocate it in the many
 * that never write a profile. The three functions used are looked up once; a process that already
 * has zlib loaded gets the same copy. If it cannot be loaded, the write fails with the loader's
 * reason (libpalloc prints it on one "palloc:" line) and nothing else changes. Loading runs
 * under pthread_once: libpalloc's writer lock, which fork's prepare handler takes, is held around
 * every write, so no fork happens while a thread is inside it.
 *
 * The three are also weak references, NULL unless the program links zlib: a program that links
 * libpalloc.a with `pkg-config --static --libs palloc` (-lz, and libpalloc_links.a, whose
 * alloc/links.c refers to them strongly) uses the linked copy. That is the only way for a statically linked
 * program (no dynamic loader: AT_BASE is 0), where a dlopen'd library would bring a second libc;
 * libpalloc.so needs no zlib and still loads it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include <zlib.h>
#include "palloc_proto.h"
#include "zalloc.h"

static void *sys_alloc(void *d, size_t n) { (void)d; return malloc(n); }
static void sys_free(void *d, void *p) { (void)d; free(p); }
ProtobufCAllocator palloc_proto_system_allocator = { sys_alloc, sys_free, NULL };

static ProtobufCAllocator *or_system(ProtobufCAllocator *a) {
  return a ? a : &palloc_proto_system_allocator;
}

/* ---- zlib, loaded by the first write --------------------------------------------------------- */
#define ZLIB_SONAME "libz.so.1"

static struct {
  int (*deflate_init2)(z_streamp, int, int, int, int, int, const char *, int);
  int (*deflate)(z_streamp, int);
  int (*deflate_end)(z_streamp);
  char err[160];   /* why it could not be loaded, "" if it was */
} zlib;
static pthread_once_t zlib_once = PTHREAD_ONCE_INIT;

#pragma weak deflateInit2_
#pragma weak deflate
#pragma weak deflateEnd

static void zlib_load(void) {
  if (deflateInit2_ != NULL && deflate != NULL && deflateEnd != NULL) { /* linked */
    zlib.deflate_init2 = deflateInit2_;
    zlib.deflate = deflate;
    zlib.deflate_end = deflateEnd;
    return;
  }
  if (getauxval(AT_BASE) == 0) {
    snprintf(zlib.err, sizeof zlib.err, "this static program links no zlib (link libpalloc.a "
             "with `pkg-config --static --libs palloc`)");
    return;
  }
  void *h = dlopen(ZLIB_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h != NULL) {
    zlib.deflate_init2 = (int (*)(z_streamp, int, int, int, int, int, const char *, int))
                         dlsym(h, "deflateInit2_");
    zlib.deflate = (int (*)(z_streamp, int))dlsym(h, "deflate");
    zlib.deflate_end = (int (*)(z_streamp))dlsym(h, "deflateEnd");
    if (zlib.deflate_init2 && zlib.deflate && zlib.deflate_end) return;
    snprintf(zlib.err, sizeof zlib.err, "%s lacks deflateInit2_/deflate/deflateEnd",
             ZLIB_SONAME);
    return;
  }
  const char *why = dlerror();
  snprintf(zlib.err, sizeof zlib.err, "cannot load zlib: %s", why ? why : ZLIB_SONAME);
}

static bool zlib_ready(char err[PALLOC_PROTO_ERRLEN]) {
  pthread_once(&zlib_once, zlib_load);
  if (zlib.err[0] == 0) return true;
  snprintf(err, PALLOC_PROTO_ERRLEN, "%s", zlib.err);
  return false;
}


/* ---- writing ---------------------------------------------------------------------------------- */
/* The profile is encoded into a 64 KiB buffer (encode.c's streaming encoder); each time it fills,
 * deflate takes it and its output goes to the sink through a second 64 KiB buffer. What a write
 * holds is then zlib's state and these two buffers, whatever the size of the profile: a profile
 * of a million samples is never in memory whole, neither encoded nor compressed. */
enum { CHUNK = 64 * 1024 };

typedef struct {
  z_stream z;
  uint8_t *out;                   /* outlen bytes */
  size_t outlen;
  const palloc_proto_sink_t *sink;
  long written;                   /* compressed bytes handed to the sink */
  int zerr;                       /* deflate's error, 0 if none */
  int werr;                       /* the sink's errno, 0 if none */
} gz_t;

/* Deflates what is in z's input (flush: Z_NO_FLUSH or Z_FINISH) and hands every full output
 * buffer, and the last, to the sink. */
static int gz_run(gz_t *g, int flush) {
  int zr;
  do {
    g->z.next_out = g->out;
    g->z.avail_out = (uInt)g->outlen;
    zr = zlib.deflate(&g->z, flush);
    if (zr == Z_STREAM_ERROR) {
      g->zerr = zr;
      return -1;
    }
    size_t k = g->outlen - g->z.avail_out;
    if (k && g->sink->write(g->sink->ctx, g->out, k) != 0) {
      g->werr = errno ? errno : EIO;
      return -1;
    }
    g->written += (long)k;
  } while (g->z.avail_out == 0 || (flush == Z_FINISH && zr == Z_OK));
  if (flush == Z_FINISH && zr != Z_STREAM_END) {
    g->zerr = zr;
    return -1;
  }
  return 0;
}

/* The encoder's sink: its buffer goes through deflate. */
static int gz_write(void *ctx, const void *buf, size_t n) {
  gz_t *g = ctx;
  g->z.next_in = (Bytef *)buf;
  g->z.avail_in = (uInt)n;
  return gz_run(g, Z_NO_FLUSH);
}

long palloc_proto_write_sink(const palloc_pb_profile_t *p, const palloc_proto_samples_t *samples,
                             const palloc_proto_sink_t *sink, ProtobufCAllocator *a,
                             char err[PALLOC_PROTO_ERRLEN]) {
  if (!zlib_ready(err)) return -1;
  a = or_system(a);
  /* One pass to size the encoding (it encodes nothing: no memory), for deflate's window below. */
  size_t len = palloc_proto_encoded_size_stream(p, samples);
  /* buffers no larger than the profile needs: a small profile written at exit adds its bytes,
   * not 128 KiB, to a small program's peak RSS (any sizes work: both loops go round) */
  size_t rawlen = len < CHUNK ? len + 1 : CHUNK;
  uint8_t *raw = a->alloc(a->allocator_data, rawlen);
  gz_t g;
  memset(&g, 0, sizeof g);
  g.outlen = len + 1024 < CHUNK ? len + 1024 : CHUNK;
  g.out = a->alloc(a->allocator_data, g.outlen);
  g.sink = sink;
  g.z.zalloc = palloc_z_alloc;
  g.z.zfree = palloc_z_free;
  g.z.opaque = a;
  long rc = -1;
  if (raw == NULL || g.out == NULL) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "out of memory for the write's buffers");
    goto done;
  }
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
  if (zlib.deflate_init2(&g.z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + wbits, mem_level,
                         Z_DEFAULT_STRATEGY, ZLIB_VERSION, (int)sizeof(z_stream)) != Z_OK) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "cannot start gzip encoder");
    goto done;
  }
  palloc_proto_sink_t gz_sink = {gz_write, &g};
  errno = 0;
  long enc = palloc_proto_encode_stream(p, samples, raw, rawlen, &gz_sink);
  if (enc >= 0) {
    g.z.next_in = NULL;
    g.z.avail_in = 0;
    gz_run(&g, Z_FINISH);
  }
  zlib.deflate_end(&g.z);
  if (g.werr) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "write failed: %s", strerror(g.werr));
    errno = g.werr;
  } else if (enc < 0 || g.zerr) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "gzip encoding failed");
  } else {
    rc = g.written;
  }
done:
  if (raw) a->free(a->allocator_data, raw);
  if (g.out) a->free(a->allocator_data, g.out);
  return rc;
}

static int fd_write(void *ctx, const void *buf, size_t n) {
  return palloc_proto_out_write(*(const int *)ctx, buf, n);
}

long palloc_proto_write_fd_samples(const palloc_pb_profile_t *p,
                                   const palloc_proto_samples_t *samples, int fd,
                                   ProtobufCAllocator *a, char err[PALLOC_PROTO_ERRLEN]) {
  palloc_proto_sink_t sink = {fd_write, &fd};
  return palloc_proto_write_sink(p, samples, &sink, a, err);
}

long palloc_proto_write_fd(const palloc_pb_profile_t *p, int fd, ProtobufCAllocator *a,
                           char err[PALLOC_PROTO_ERRLEN]) {
  return palloc_proto_write_fd_samples(p, NULL, fd, a, err);
}

long palloc_proto_write_path_samples(const palloc_pb_profile_t *p,
                                     const palloc_proto_samples_t *samples, const char *path,
                                     ProtobufCAllocator *a, char err[PALLOC_PROTO_ERRLEN]) {
  /* zlib is loaded before the file is opened: if it cannot be, nothing is created. */
  if (!zlib_ready(err)) return -1;
  palloc_out_t o;
  if (palloc_proto_out_open(&o, path, PALLOC_OUT_REPLACE, err) != 0) return -1;
  long rc = palloc_proto_write_fd_samples(p, samples, o.fd, a, err);
  return palloc_proto_out_close(&o, rc >= 0, err) == 0 ? rc : -1;
}

long palloc_proto_write_path(const palloc_pb_profile_t *p, const char *path,
                             ProtobufCAllocator *a, char err[PALLOC_PROTO_ERRLEN]) {
  return palloc_proto_write_path_samples(p, NULL, path, a, err);
}
