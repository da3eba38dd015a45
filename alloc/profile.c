/* profile.c - assembles the heap profile (Go's writeHeapProto) from the buckets.
 *
 * One Sample per bucket with allocations: values [alloc_objects, alloc_space, inuse_objects,
 * inuse_space], each pair unsampled with scaleHeapSample at the current rate, and a numeric
 * label bytes = the bucket's request size. Each distinct return address becomes one Location at
 * address - 1 (inside the call instruction, which is also what is symbolized), tied to the
 * executable mapping that contains it; functions are deduplicated by (name, file).
 * has_functions / has_filenames / has_line_numbers are set per mapping only if at least one of
 * its locations got that information, so pprof re-symbolizes exactly the mappings we could not.
 *
 * Memory: everything lives in one scratch arena, released when the write ends.
 * The messages are protoc-c's structs, encoded by proto/encode.c: no protobuf-c code is linked.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "palloc_proto.h"
#include "profinternal.h"

typedef Perftools__Profiles__ValueType VT;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Label Label;
typedef Perftools__Profiles__Mapping Mapping;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Line Line;
typedef Perftools__Profiles__Function Function;


/* Open-addressing map from a 64-bit key to an index (value+1, 0 = empty). */
typedef struct {
  uint64_t *keys;
  uint32_t *vals;
  size_t cap;
} idmap_t;

static bool idmap_init(idmap_t *m, size_t n, palloc_scratch_t *s) {
  m->cap = 64;
  while (m->cap < n * 2) m->cap *= 2;
  m->keys = palloc_scratch_alloc(s, m->cap * sizeof *m->keys);
  m->vals = palloc_scratch_alloc(s, m->cap * sizeof *m->vals);
  if (!m->keys || !m->vals) return false;
  memset(m->vals, 0, m->cap * sizeof *m->vals);
  return true;
}

/* Returns the slot for key; *found tells whether it held the key already. */
static size_t idmap_slot(idmap_t *m, uint64_t key, bool *found) {
  size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 17) & (m->cap - 1);
  while (m->vals[i] != 0 && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
  *found = m->vals[i] != 0;
  return i;
}

static uint64_t now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Messages start all zero: that is every proto3 field's default, and the encoder (proto/encode.c)
 * does not use base.descriptor, so libpalloc needs none of protobuf-c's generated descriptors. */
#define ZERO(m) memset((m), 0, sizeof *(m))

#define NEW(s, type, n) ((type *)palloc_scratch_alloc((s), (n) * sizeof(type) + 1))

typedef struct {
  palloc_scratch_t *s;
  palloc_strtab_t st;
  palloc_pb_profile_t p;
} build_t;

static long build_and_write(build_t *B, const char *path, int fd, char *err, size_t errlen) {
  palloc_scratch_t *s = B->s;
  palloc_pb_profile_t *p = &B->p;
  int64_t rate = atomic_load(&palloc_g.rate);

  /* 1. Snapshot the buckets. */
  size_t nb = 0;
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) nb++;
  palloc_bucket_t **bs = NEW(s, palloc_bucket_t *, nb);
  uint64_t *vals = NEW(s, uint64_t, nb * 4);
  if (!bs || !vals) goto oom;
  size_t used = 0, nframes = 0;
  for (palloc_bucket_t *b = palloc_bucket_list(); b && used < nb; b = b->allnext) {
    palloc_bucket_read(b, &vals[used * 4]);
    if (vals[used * 4] == 0) continue;
    bs[used++] = b;
    nframes += b->nstk;
  }

  /* 2. Distinct frames -> locations: a frame is its address, or, in a library unloaded since
   *    the bucket was made, its record in unload.c (gone[k]), with a location of its own. */
  idmap_t locs, glocs;
  uintptr_t *addrs = NEW(s, uintptr_t, nframes);
  const palloc_gone_frame_t **gfs = NEW(s, const palloc_gone_frame_t *, nframes);
  if (!addrs || !gfs || !idmap_init(&locs, nframes, s) || !idmap_init(&glocs, nframes, s))
    goto oom;
  size_t naddr = 0, nlive = 0;
  for (size_t i = 0; i < used; i++) {
    const uint32_t *gone = atomic_load_explicit(&bs[i]->gone, memory_order_acquire);
    for (uint32_t k = 0; k < bs[i]->nstk; k++) {
      bool found;
      const palloc_gone_frame_t *g = gone && gone[k] ? palloc_unload_frame(gone[k]) : NULL;
      idmap_t *m = g ? &glocs : &locs;
      uint64_t key = g ? gone[k] : bs[i]->stk[k] - 1;
      size_t j = idmap_slot(m, key, &found);
      if (!found) {
        m->keys[j] = key;
        m->vals[j] = (uint32_t)++naddr;
        addrs[naddr - 1] = g ? g->addr : bs[i]->stk[k] - 1;
        gfs[naddr - 1] = g;
        nlive += g == NULL;
      }
    }
  }

  /* 3. Mappings (those of /proc/self/maps, then those of unloaded libraries) and symbols. */
  size_t nmaps = 0, nlive_maps = 0, ngone_maps = 0;
  palloc_mapping_t *live_maps = palloc_maps_read(s, &nlive_maps);
  const palloc_mapping_t *gone_maps = palloc_unload_mappings(&ngone_maps);
  palloc_mapping_t *maps = NEW(s, palloc_mapping_t, nlive_maps + ngone_maps);
  palloc_sym_t *syms = NEW(s, palloc_sym_t, naddr);
  uintptr_t *live_addrs = NEW(s, uintptr_t, nlive);
  palloc_sym_t *live_syms = NEW(s, palloc_sym_t, nlive);
  if (!maps || !syms || !live_addrs || !live_syms) goto oom;
  if (live_maps) memcpy(maps, live_maps, nlive_maps * sizeof *maps);
  else nlive_maps = 0;
  if (ngone_maps) memcpy(maps + nlive_maps, gone_maps, ngone_maps * sizeof *maps);
  nmaps = nlive_maps + ngone_maps;
  for (size_t i = 0, k = 0; i < naddr; i++)
    if (gfs[i] == NULL) live_addrs[k++] = addrs[i];
  if (palloc_g.symbolize && nlive > 0)
    palloc_symbolize(live_addrs, nlive, live_syms, s);
  else
    memset(live_syms, 0, nlive * sizeof *live_syms);
  for (size_t i = 0, k = 0; i < naddr; i++) syms[i] = gfs[i] ? gfs[i]->sym : live_syms[k++];

  /* 4. Functions (deduplicated by name and file) and locations. */
  idmap_t funcs;
  Function *fn = NEW(s, Function, naddr);
  Function **fnp = NEW(s, Function *, naddr);
  Location *loc = NEW(s, Location, naddr);
  Location **locp = NEW(s, Location *, naddr);
  Line *line = NEW(s, Line, naddr);
  Line **linep = NEW(s, Line *, naddr);
  if (!fn || !fnp || !loc || !locp || !line || !linep || !idmap_init(&funcs, naddr, s)) goto oom;
  size_t nfn = 0;
  for (size_t i = 0; i < naddr; i++) {
    Location *l = &loc[i];
    ZERO(l);
    l->id = i + 1;
    l->address = addrs[i];
    long mi = gfs[i] ? (long)(nlive_maps + gfs[i]->map)
                     : palloc_maps_find(maps, nlive_maps, addrs[i]);
    l->mapping_id = mi >= 0 ? (uint64_t)mi + 1 : 0;
    locp[i] = l;
    if (syms[i].func == NULL) continue;
    int64_t name = palloc_strtab_intern(&B->st, syms[i].func);
    int64_t file = palloc_strtab_intern(&B->st, syms[i].file ? syms[i].file : "");
    bool found;
    size_t j = idmap_slot(&funcs, ((uint64_t)name << 32) ^ (uint64_t)file, &found);
    if (!found) {
      Function *f = &fn[nfn];
      ZERO(f);
      f->id = nfn + 1;
      f->name = f->system_name = name;
      f->filename = file;
      fnp[nfn++] = f;
      funcs.keys[j] = ((uint64_t)name << 32) ^ (uint64_t)file;
      funcs.vals[j] = (uint32_t)nfn;
    }
    ZERO(&line[i]);
    line[i].function_id = funcs.vals[j];
    line[i].line = syms[i].line;
    linep[i] = &line[i];
    l->n_line = 1;
    l->line = &linep[i];
    if (mi >= 0 && gfs[i] == NULL) { /* an unloaded library's flags were set when it went */
      maps[mi].has_functions = true;
      if (syms[i].file) maps[mi].has_filenames = true;
      if (syms[i].line > 0) maps[mi].has_lines = true;
    }
  }

  /* 5. Mapping messages. */
  Mapping *mp = NEW(s, Mapping, nmaps);
  Mapping **mpp = NEW(s, Mapping *, nmaps);
  if (!mp || !mpp) goto oom;
  for (size_t i = 0; i < nmaps; i++) {
    ZERO(&mp[i]);
    mp[i].id = i + 1;
    mp[i].memory_start = maps[i].start;
    mp[i].memory_limit = maps[i].limit;
    mp[i].file_offset = maps[i].offset;
    mp[i].filename = palloc_strtab_intern(&B->st, maps[i].path);
    mp[i].build_id = palloc_strtab_intern(&B->st, maps[i].build_id);
    mp[i].has_functions = maps[i].has_functions;
    mp[i].has_filenames = maps[i].has_filenames;
    mp[i].has_line_numbers = maps[i].has_lines;
    mpp[i] = &mp[i];
  }

  /* 6. Samples. */
  Sample *sm = NEW(s, Sample, used);
  Sample **smp = NEW(s, Sample *, used);
  Label *lb = NEW(s, Label, used);
  Label **lbp = NEW(s, Label *, used);
  int64_t *sv = NEW(s, int64_t, used * 4);
  uint64_t *ids = NEW(s, uint64_t, nframes);
  if (!sm || !smp || !lb || !lbp || !sv || !ids) goto oom;
  int64_t bytes_key = palloc_strtab_intern(&B->st, "bytes");
  size_t idn = 0;
  for (size_t i = 0; i < used; i++) {
    const uint64_t *v = &vals[i * 4];
    Sample *x = &sm[i];
    ZERO(x);
    x->location_id = &ids[idn];
    const uint32_t *gone = atomic_load_explicit(&bs[i]->gone, memory_order_acquire);
    for (uint32_t k = 0; k < bs[i]->nstk; k++) {
      bool found;
      bool g = gone && gone[k] && palloc_unload_frame(gone[k]);
      ids[idn++] = g ? glocs.vals[idmap_slot(&glocs, gone[k], &found)]
                     : locs.vals[idmap_slot(&locs, bs[i]->stk[k] - 1, &found)];
    }
    x->n_location_id = bs[i]->nstk;
    palloc_proto_scale_heap((int64_t)v[0], (int64_t)v[1], rate, &sv[i * 4], &sv[i * 4 + 1]);
    palloc_proto_scale_heap((int64_t)(v[0] - v[2]), (int64_t)(v[1] - v[3]), rate, &sv[i * 4 + 2],
                            &sv[i * 4 + 3]);
    x->value = &sv[i * 4];
    x->n_value = 4;
    ZERO(&lb[i]);
    lb[i].key = bytes_key;
    lb[i].num = (int64_t)bs[i]->size;
    lbp[i] = &lb[i];
    x->label = &lbp[i];
    x->n_label = 1;
    smp[i] = x;
  }

  /* 7. The profile. */
  static const char *types[4][2] = {{"alloc_objects", "count"}, {"alloc_space", "bytes"},
                                    {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
  VT vt[4], *vtp[4], period;
  for (int i = 0; i < 4; i++) {
    ZERO(&vt[i]);
    vt[i].type = palloc_strtab_intern(&B->st, types[i][0]);
    vt[i].unit = palloc_strtab_intern(&B->st, types[i][1]);
    vtp[i] = &vt[i];
  }
  ZERO(&period);
  period.type = palloc_strtab_intern(&B->st, "space");
  period.unit = palloc_strtab_intern(&B->st, "bytes");
  char comment[128];
  snprintf(comment, sizeof comment, "palloc %s, sample rate %lld bytes", PALLOC_VERSION,
           (long long)rate);
  int64_t comment_idx = palloc_strtab_intern(&B->st, comment);
  if (B->st.failed) goto oom;

  p->n_sample_type = 4;
  p->sample_type = vtp;
  p->period_type = &period;
  p->period = rate;
  p->n_sample = used;
  p->sample = smp;
  p->n_location = naddr;
  p->location = locp;
  p->n_function = nfn;
  p->function = fnp;
  p->n_mapping = nmaps;
  p->mapping = mpp;
  p->n_comment = 1;
  p->comment = &comment_idx;
  p->time_nanos = (int64_t)now_ns(CLOCK_REALTIME);
  p->duration_nanos = (int64_t)(now_ns(CLOCK_MONOTONIC) - palloc_start_ns);
  p->n_string_table = B->st.n;
  p->string_table = B->st.strs;

  ProtobufCAllocator a = {palloc_scratch_alloc, palloc_scratch_free, s};
  char perr[PALLOC_PROTO_ERRLEN];
  long written = path ? palloc_proto_write_path(p, path, &a, perr)
                      : palloc_proto_write_fd(p, fd, &a, perr);
  if (written < 0) snprintf(err, errlen, "%s", perr);
  return written;
oom:
  snprintf(err, errlen, "out of memory building the profile");
  return -1;
}

long palloc_profile_emit(const char *path, int fd, char *err, size_t errlen) {
  build_t B;
  memset(&B, 0, sizeof B);
  B.s = palloc_scratch_new();
  if (B.s == NULL) {
    snprintf(err, errlen, "out of memory (scratch arena)");
    return -1;
  }
  ProtobufCAllocator a = {palloc_scratch_alloc, palloc_scratch_free, B.s};
  palloc_strtab_init(&B.st, &a);
  ZERO(&B.p);
  long r = build_and_write(&B, path, fd, err, errlen);
  palloc_scratch_destroy(B.s);
  return r;
}
