/* test_proto.c - the proto module: scaleHeapSample vectors, string interning, a write/read
 * round trip through gzip, clear errors for truncated, corrupt, foreign and dangling input, and
 * palloc's own encoder against protobuf-c's byte for byte. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "palloc_proto.h"
#include "explog.h"
#include "../check.h"

typedef Perftools__Profiles__ValueType VT;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Location Loc;
typedef Perftools__Profiles__Line Line;
typedef Perftools__Profiles__Function Func;
typedef Perftools__Profiles__Mapping Map;

static void test_scale(void) {
  /* The three vectors of the docs: raw (allocObj, allocBytes, freeObj, freeBytes). */
  struct { int64_t ao, ab, fo, fb, want[4]; } v[] = {
    {4, 4096, 1, 1024, {2050, 2099200, 1537, 1574400}},
    {1, 524288, 0, 0, {1, 829411, 1, 829411}},
    {1, 524288, 1, 524288, {1, 829411, 0, 0}},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    int64_t got[4];
    palloc_proto_scale_heap(v[i].ao, v[i].ab, 524288, &got[0], &got[1]);
    palloc_proto_scale_heap(v[i].ao - v[i].fo, v[i].ab - v[i].fb, 524288, &got[2], &got[3]);
    for (int k = 0; k < 4; k++)
      CHECK(got[k] == v[i].want[k], "vector %zu value %d: got %lld want %lld", i, k,
            (long long)got[k], (long long)v[i].want[k]);
  }
  int64_t c, b;
  palloc_proto_scale_heap(7, 700, 1, &c, &b);
  CHECK(c == 7 && b == 700, "rate 1 must not scale: %lld %lld", (long long)c, (long long)b);
  palloc_proto_scale_heap(0, 0, 524288, &c, &b);
  CHECK(c == 0 && b == 0, "empty bucket scales to zero");
}

/* Distance in ulps between two finite doubles of the same sign. */
static uint64_t ulps(double a, double b) {
  int64_t x, y;
  memcpy(&x, &a, sizeof x);
  memcpy(&y, &b, sizeof y);
  return x > y ? (uint64_t)(x - y) : (uint64_t)(y - x);
}

/* palloc_exp and palloc_log (explog.c) against libm's: within 1 ulp over their whole domains
 * (the sampler's -log(U) for U in (0, 1], scaleHeapSample's exp(-avg/rate) <= 1), and the
 * special values. */
static void test_explog(void) {
  uint64_t worst_exp = 0, worst_log = 0;
  uint64_t r = 88172645463325252ull;
  for (int i = 0; i < 200000; i++) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    double u = (double)((r >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1], as the sampler */
    double x = -745.0 + 1454.0 * u;                                   /* exp's finite range */
    double y = ldexp(u, (int)(r % 2100) - 1074);                      /* log: subnormal..huge */
    uint64_t e = ulps(palloc_exp(x), exp(x)), l = ulps(palloc_log(u), log(u));
    if (e > worst_exp) worst_exp = e;
    if (l > worst_log) worst_log = l;
    if (y > 0 && isfinite(y) && (l = ulps(palloc_log(y), log(y))) > worst_log) worst_log = l;
  }
  CHECK(worst_exp <= 1 && worst_log <= 1, "exp within %llu ulp, log within %llu ulp of libm",
        (unsigned long long)worst_exp, (unsigned long long)worst_log);
  CHECK(palloc_exp(0) == 1 && palloc_exp(-1000) == 0 && isinf(palloc_exp(1000)) &&
        isnan(palloc_exp(NAN)), "exp: 0, underflow, overflow, NaN");
  CHECK(palloc_log(1) == 0 && isinf(palloc_log(0)) && palloc_log(0) < 0 &&
        isnan(palloc_log(-1)) && isinf(palloc_log(INFINITY)), "log: 1, 0, negative, inf");
}

static void test_strtab(void) {
  palloc_strtab_t t;
  palloc_strtab_init(&t, NULL);
  CHECK(t.n == 1 && strcmp(t.strs[0], "") == 0, "index 0 is the empty string");
  CHECK(palloc_strtab_intern(&t, "") == 0, "empty string interns to 0");
  char buf[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(buf, sizeof buf, "s%d", i);
    CHECK(palloc_strtab_intern(&t, buf) == i + 1, "new string %d gets the next index", i);
  }
  for (int i = 0; i < 5000; i += 7) {
    snprintf(buf, sizeof buf, "s%d", i);
    CHECK(palloc_strtab_intern(&t, buf) == i + 1, "string %d interns to its index", i);
  }
  CHECK(t.n == 5001, "table size %zu", t.n);
  palloc_strtab_destroy(&t);
}

/* Builds a small valid heap profile: two samples over two locations in one mapping. */
static palloc_pb_profile_t *build(palloc_strtab_t *st, VT *vt, VT **vtp, VT *pt, Sample *s,
                                  Sample **sp, Loc *l, Loc **lp, Line *ln, Line **lnp,
                                  Func *f, Func **fp, Map *m, Map **mp, uint64_t *ids,
                                  int64_t *vals) {
  static palloc_pb_profile_t p;
  perftools__profiles__profile__init(&p);
  const char *types[4][2] = {{"alloc_objects", "count"}, {"alloc_space", "bytes"},
                             {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
  for (int i = 0; i < 4; i++) {
    perftools__profiles__value_type__init(&vt[i]);
    vt[i].type = palloc_strtab_intern(st, types[i][0]);
    vt[i].unit = palloc_strtab_intern(st, types[i][1]);
    vtp[i] = &vt[i];
  }
  perftools__profiles__value_type__init(pt);
  pt->type = palloc_strtab_intern(st, "space");
  pt->unit = palloc_strtab_intern(st, "bytes");
  perftools__profiles__mapping__init(m);
  m->id = 1; m->memory_start = 0x400000; m->memory_limit = 0x500000;
  m->filename = palloc_strtab_intern(st, "/bin/demo");
  m->has_functions = 1;
  mp[0] = m;
  for (int i = 0; i < 2; i++) {
    perftools__profiles__function__init(&f[i]);
    f[i].id = i + 1;
    f[i].name = palloc_strtab_intern(st, i ? "main" : "leaky");
    fp[i] = &f[i];
    perftools__profiles__line__init(&ln[i]);
    ln[i].function_id = i + 1;
    ln[i].line = 10 + i;
    lnp[i] = &ln[i];
    perftools__profiles__location__init(&l[i]);
    l[i].id = i + 1; l[i].mapping_id = 1; l[i].address = 0x401000 + i;
    l[i].n_line = 1; l[i].line = &lnp[i];
    lp[i] = &l[i];
  }
  ids[0] = 1; ids[1] = 2;
  for (int i = 0; i < 2; i++) {
    perftools__profiles__sample__init(&s[i]);
    s[i].n_location_id = 2 - i; s[i].location_id = ids + i;
    s[i].n_value = 4; s[i].value = vals + 4 * i;
    sp[i] = &s[i];
  }
  p.n_sample_type = 4; p.sample_type = vtp;
  p.period_type = pt; p.period = 524288;
  p.n_mapping = 1; p.mapping = mp;
  p.n_location = 2; p.location = lp;
  p.n_function = 2; p.function = fp;
  p.n_sample = 2; p.sample = sp;
  p.time_nanos = 123456789; p.duration_nanos = 1000;
  p.n_string_table = st->n; p.string_table = st->strs;
  return &p;
}

static int write_bytes(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  fwrite(b, 1, n, f);
  return fclose(f);
}

static void test_roundtrip(const char *dir) {
  palloc_strtab_t st;
  palloc_strtab_init(&st, NULL);
  VT vt[4], *vtp[4], pt; Sample s[2], *sp[2]; Loc l[2], *lp[2]; Line ln[2], *lnp[2];
  Func f[2], *fp[2]; Map m, *mp[1]; uint64_t ids[2];
  int64_t vals[8] = {2050, 2099200, 1537, 1574400, 1, 829411, 0, 0};
  palloc_pb_profile_t *p = build(&st, vt, vtp, &pt, s, sp, l, lp, ln, lnp, f, fp, &m, mp, ids,
                                 vals);
  char path[512], err[PALLOC_PROTO_ERRLEN];
  snprintf(path, sizeof path, "%s/rt.pb.gz", dir);
  CHECK(palloc_proto_write_path(p, path, NULL, err) > 0, "write: %s", err);
  palloc_pb_profile_t *q = palloc_proto_read_file(path, NULL, err);
  CHECK(q != NULL, "read back: %s", err);
  if (q) {
    CHECK(q->n_sample == 2 && q->n_location == 2 && q->n_function == 2, "counts");
    CHECK(q->period == 524288 && q->time_nanos == 123456789, "scalars");
    CHECK(q->n_sample_type == 4 && strcmp(q->string_table[q->sample_type[3]->type],
                                          "inuse_space") == 0, "sample types");
    CHECK(q->sample[0]->value[1] == 2099200 && q->sample[1]->n_location_id == 1, "values");
    CHECK(strcmp(q->string_table[q->function[0]->name], "leaky") == 0, "function name");
    palloc_proto_free(q, NULL);
  }
  /* raw (uncompressed) protobuf is accepted too */
  size_t len = perftools__profiles__profile__get_packed_size(p);
  uint8_t *raw = malloc(len);
  perftools__profiles__profile__pack(p, raw);
  q = palloc_proto_decode(raw, len, NULL, err);
  CHECK(q != NULL, "raw protobuf decodes: %s", err);
  palloc_proto_free(q, NULL);

  /* dangling references are rejected with a reason */
  s[0].location_id[0] = 99;
  q = palloc_proto_decode(raw, len, NULL, err);
  palloc_proto_free(q, NULL);
  size_t len2 = perftools__profiles__profile__get_packed_size(p);
  uint8_t *bad = malloc(len2);
  perftools__profiles__profile__pack(p, bad);
  q = palloc_proto_decode(bad, len2, NULL, err);
  CHECK(q == NULL && strstr(err, "missing location 99"), "dangling location: %s", err);
  ids[0] = 1;
  ln[1].function_id = 7;
  perftools__profiles__profile__pack(p, bad);
  q = palloc_proto_decode(bad, len2, NULL, err);
  CHECK(q == NULL && strstr(err, "missing function 7"), "dangling function: %s", err);
  ln[1].function_id = 2;
  free(bad);

  /* a multi-member gzip file (the profile split in two members) decodes to the same profile */
  {
    size_t half = len / 2;
    uint8_t *gz2 = malloc(2 * len + 1024);
    size_t n2 = 0;
    for (int part = 0; part < 2; part++) {
      z_stream z;
      memset(&z, 0, sizeof z);
      deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      z.next_in = raw + (part ? half : 0);
      z.avail_in = (uInt)(part ? len - half : half);
      z.next_out = gz2 + n2;
      z.avail_out = (uInt)(2 * len + 1024 - n2);
      deflate(&z, Z_FINISH);
      n2 = 2 * len + 1024 - z.avail_out;
      deflateEnd(&z);
    }
    q = palloc_proto_decode(gz2, n2, NULL, err);
    CHECK(q != NULL && q->n_sample == 2 && q->n_function == 2, "multi-member gzip: %s",
          q ? "ok" : err);
    palloc_proto_free(q, NULL);
    free(gz2);
  }

  /* truncated gzip: every prefix of the file fails cleanly */
  FILE *fh = fopen(path, "rb");
  uint8_t gz[1 << 16];
  size_t gzlen = fh ? fread(gz, 1, sizeof gz, fh) : 0;
  if (fh) fclose(fh);
  CHECK(gzlen > 20, "gzip file size %zu", gzlen);
  int clean = 1;
  for (size_t cut = 1; cut < gzlen; cut++) {
    q = palloc_proto_decode(gz, cut, NULL, err);
    if (q != NULL) { clean = 0; palloc_proto_free(q, NULL); }
  }
  CHECK(clean, "no truncated prefix decodes");
  q = palloc_proto_decode(gz, gzlen / 2, NULL, err);
  CHECK(q == NULL && strstr(err, "truncated"), "truncation is named: %s", err);
  /* corrupt bytes in the deflate stream */
  gz[gzlen / 2] ^= 0x55; gz[gzlen / 2 + 1] ^= 0xaa;
  q = palloc_proto_decode(gz, gzlen, NULL, err);
  CHECK(q == NULL, "corrupt gzip rejected");
  palloc_proto_free(q, NULL);
  /* foreign and empty files */
  const char *text = "this is a text file, not a profile\n";
  snprintf(path, sizeof path, "%s/foreign.txt", dir);
  write_bytes(path, text, strlen(text));
  q = palloc_proto_read_file(path, NULL, err);
  CHECK(q == NULL && err[0], "foreign file rejected: %s", err);
  snprintf(path, sizeof path, "%s/empty.pb", dir);
  write_bytes(path, "", 0);
  q = palloc_proto_read_file(path, NULL, err);
  CHECK(q == NULL && strstr(err, "empty"), "empty file: %s", err);
  q = palloc_proto_read_file("/nonexistent/x.pb.gz", NULL, err);
  CHECK(q == NULL && strstr(err, "No such file"), "missing file: %s", err);
  /* an unwritable destination reports an error and leaves no temporary file */
  CHECK(palloc_proto_write_path(p, "/nonexistent-dir/x.pb.gz", NULL, err) < 0 &&
        strstr(err, "cannot create"), "unwritable path: %s", err);
  free(raw);
  palloc_strtab_destroy(&st);
}

/* A growing buffer as a sink, and sinks for the streaming tests. */
typedef struct { uint8_t *p; size_t n, cap; } mem_t;
static int mem_write(void *ctx, const void *buf, size_t n) {
  mem_t *m = ctx;
  if (m->n + n > m->cap) {
    m->cap = (m->n + n) * 2;
    m->p = realloc(m->p, m->cap);
  }
  memcpy(m->p + m->n, buf, n);
  m->n += n;
  return 0;
}
static int fail_write(void *ctx, const void *buf, size_t n) {
  (void)ctx, (void)buf, (void)n;
  errno = ENOSPC;
  return -1;
}
static const Perftools__Profiles__Sample *sample_at(void *ctx, size_t i) {
  const palloc_pb_profile_t *p = ctx;
  return p->sample[i];
}

/* palloc_proto_encode must produce exactly protobuf-c's bytes for the same message. */
static int same_as_protobuf_c(const palloc_pb_profile_t *p, const char *what) {
  size_t want = perftools__profiles__profile__get_packed_size(p);
  size_t got = palloc_proto_encoded_size(p);
  CHECK(got == want, "%s: encoded size %zu, protobuf-c's %zu", what, got, want);
  if (got != want) return 0;
  uint8_t *a = malloc(want + 1), *b = malloc(want + 1);
  perftools__profiles__profile__pack(p, a);
  size_t n = palloc_proto_encode(p, b);
  int same = n == want && memcmp(a, b, want) == 0;
  CHECK(same, "%s: encoding differs from protobuf-c's (%zu bytes)", what, want);
  /* Streamed through buffers of a few sizes (a field split anywhere), the samples given one at
   * a time: the same bytes, and gzip-compressed to a sink, a profile that decodes to them. */
  palloc_proto_samples_t smp = {p->n_sample, sample_at, (void *)p};
  for (size_t buflen = 1; buflen <= 4096; buflen = buflen * 3 + 1) {
    mem_t m = {0};
    palloc_proto_sink_t sink = {mem_write, &m};
    uint8_t *buf = malloc(buflen);
    long k = palloc_proto_encode_stream(p, buflen & 1 ? &smp : NULL, buf, buflen, &sink);
    CHECK(k == (long)want && m.n == want && memcmp(m.p, a, want) == 0,
          "%s: streamed through %zu bytes: %ld bytes, %s", what, buflen, k,
          m.n == want && memcmp(m.p, a, want) == 0 ? "same" : "different");
    CHECK(palloc_proto_encoded_size_stream(p, &smp) == want, "%s: streamed size", what);
    free(buf);
    free(m.p);
  }
  mem_t z = {0};
  palloc_proto_sink_t zs = {mem_write, &z};
  char err[PALLOC_PROTO_ERRLEN];
  long zn = palloc_proto_write_sink(p, &smp, &zs, NULL, err);
  CHECK(zn == (long)z.n && zn > 0, "%s: write_sink gave %ld for %zu bytes: %s", what, zn, z.n,
        err);
  palloc_pb_profile_t *q = palloc_proto_decode(z.p, z.n, NULL, err);
  if (q != NULL) {
    size_t qn = perftools__profiles__profile__get_packed_size(q);
    uint8_t *c = malloc(qn + 1);
    perftools__profiles__profile__pack(q, c);
    CHECK(qn == want && memcmp(c, a, want) == 0, "%s: the gzip stream decodes to another profile",
          what);
    free(c);
    palloc_proto_free(q, NULL);
  }
  /* a sink that fails: -1, with the sink's errno in the message */
  palloc_proto_sink_t bad = {fail_write, NULL};
  CHECK(palloc_proto_write_sink(p, &smp, &bad, NULL, err) < 0 && strstr(err, "No space"),
        "%s: a failing sink: %s", what, err);
  free(z.p);
  free(a);
  free(b);
  return same;
}

static uint64_t rnd_state = 0x853c49e6748fea9bull;
static uint64_t rnd(void) {
  rnd_state ^= rnd_state << 13, rnd_state ^= rnd_state >> 7, rnd_state ^= rnd_state << 17;
  return rnd_state;
}
/* 0, small, large, negative, and the extremes: each with its own varint length */
static int64_t rnd_i64(void) {
  switch (rnd() % 6) {
  case 0: return 0;
  case 1: return (int64_t)(rnd() % 200);
  case 2: return (int64_t)(rnd() >> (rnd() % 64));
  case 3: return -(int64_t)(rnd() % 100000) - 1;
  case 4: return rnd() & 1 ? INT64_MIN : INT64_MAX;
  default: return (int64_t)rnd();
  }
}

static void test_encode(void) {
  palloc_strtab_t st;
  palloc_strtab_init(&st, NULL);
  VT vt[4], *vtp[4], pt; Sample s[2], *sp[2]; Loc l[2], *lp[2]; Line ln[2], *lnp[2];
  Func f[2], *fp[2]; Map m, *mp[1]; uint64_t ids[2];
  int64_t vals[8] = {2050, 2099200, 1537, 1574400, 1, 829411, 0, 0};
  palloc_pb_profile_t *p = build(&st, vt, vtp, &pt, s, sp, l, lp, ln, lnp, f, fp, &m, mp, ids,
                                 vals);
  same_as_protobuf_c(p, "the small profile");

  /* Every field of every message, with random values (zero included: omitted by both). */
  Perftools__Profiles__Label lb[3], *lbp[3];
  for (int i = 0; i < 3; i++) {
    perftools__profiles__label__init(&lb[i]);
    lbp[i] = &lb[i];
  }
  Line ln2[2], *lnp2[3] = {&ln[0], &ln2[0], &ln2[1]};
  perftools__profiles__line__init(&ln2[0]);
  perftools__profiles__line__init(&ln2[1]);
  int64_t comments[3];
  for (int round = 0; round < 500; round++) {
    for (int i = 0; i < 4; i++) vt[i].type = rnd_i64(), vt[i].unit = rnd_i64();
    pt.type = rnd_i64(), pt.unit = rnd_i64();
    p->period_type = rnd() % 4 ? &pt : NULL;
    m.id = (uint64_t)rnd_i64(), m.memory_start = (uint64_t)rnd_i64();
    m.memory_limit = (uint64_t)rnd_i64(), m.file_offset = (uint64_t)rnd_i64();
    m.filename = rnd_i64(), m.build_id = rnd_i64();
    m.has_functions = rnd() & 1, m.has_filenames = rnd() & 1;
    m.has_line_numbers = rnd() & 1, m.has_inline_frames = rnd() & 1;
    for (int i = 0; i < 2; i++) {
      f[i].id = (uint64_t)rnd_i64(), f[i].name = rnd_i64(), f[i].system_name = rnd_i64();
      f[i].filename = rnd_i64(), f[i].start_line = rnd_i64();
      l[i].id = (uint64_t)rnd_i64(), l[i].mapping_id = (uint64_t)rnd_i64();
      l[i].address = (uint64_t)rnd_i64(), l[i].is_folded = rnd() & 1;
      ids[i] = (uint64_t)rnd_i64();
    }
    l[1].n_line = rnd() % 4;  /* 0 lines, or several (inlined frames) */
    l[1].line = lnp2;
    for (int i = 0; i < 3; i++) {
      lnp2[i]->function_id = (uint64_t)rnd_i64(), lnp2[i]->line = rnd_i64();
      lnp2[i]->column = rnd_i64();
      lb[i].key = rnd_i64(), lb[i].str = rnd_i64(), lb[i].num = rnd_i64();
      lb[i].num_unit = rnd_i64();
      comments[i] = rnd_i64();
    }
    for (int i = 0; i < 8; i++) vals[i] = rnd_i64();
    s[0].n_value = rnd() % 5;  /* an empty packed field is omitted */
    s[1].n_label = rnd() % 4, s[1].label = lbp;
    p->n_comment = rnd() % 4, p->comment = comments;
    p->drop_frames = rnd_i64(), p->keep_frames = rnd_i64();
    p->time_nanos = rnd_i64(), p->duration_nanos = rnd_i64(), p->period = rnd_i64();
    p->default_sample_type = rnd_i64(), p->doc_url = rnd_i64();
    char what[64];
    snprintf(what, sizeof what, "random round %d", round);
    if (!same_as_protobuf_c(p, what)) break;
  }

  /* Unknown fields (a newer profile.proto's, kept by protobuf-c's decoder) are written back as
   * they were read: a varint, a fixed64, a length-delimited and a fixed32 field in the Profile,
   * and one in a Sample. */
  static const uint8_t newer[] = {
      0x12, 0x07, 0x0a, 0x01, 0x01, 0xa0, 0x06, 0xac, 0x02,  /* sample{location_id:[1], f100:300} */
      0x32, 0x00,                                            /* string_table[0] = "" */
      0xf8, 0x06, 0x96, 0x01,                                /* f111 varint 150 */
      0x81, 0x07, 1, 2, 3, 4, 5, 6, 7, 8,                    /* f112 fixed64 */
      0x8a, 0x07, 0x03, 'a', 'b', 'c',                       /* f113 bytes "abc" */
      0x95, 0x07, 9, 8, 7, 6,                                /* f114 fixed32 */
      0x60, 0x05,                                            /* period = 5 */
  };
  palloc_pb_profile_t *q = perftools__profiles__profile__unpack(NULL, sizeof newer, newer);
  CHECK(q != NULL && q->base.n_unknown_fields == 4 && q->n_sample == 1 &&
        q->sample[0]->base.n_unknown_fields == 1, "a profile with unknown fields decodes");
  if (q) {
    same_as_protobuf_c(q, "a profile with unknown fields");
    perftools__profiles__profile__free_unpacked(q, NULL);
  }
  palloc_strtab_destroy(&st);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp";
  test_scale();
  test_explog();
  test_strtab();
  test_roundtrip(dir);
  test_encode();
  return CHECK_DONE();
}
