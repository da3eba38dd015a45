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
  palloc_assert((m->cap & (m->cap - 1)) == 0);
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

/* The sample values, in the order of the profile's sample_type (Go's heap profile). */
enum { V_ALLOC_OBJECTS, V_ALLOC_SPACE, V_INUSE_OBJECTS, V_INUSE_SPACE, NVALUES };
static const char *const value_type[NVALUES][2] = {
  [V_ALLOC_OBJECTS] = {"alloc_objects", "count"}, [V_ALLOC_SPACE] = {"alloc_space", "bytes"},
  [V_INUSE_OBJECTS] = {"inuse_objects", "count"}, [V_INUSE_SPACE] = {"inuse_space", "bytes"}};

/* One bucket of the profile, as the snapshot read it. gone is read once, here: unload.c sets it
 * under the writer lock, which the whole write holds. */
typedef struct {
  const palloc_bucket_t *b;
  const uint32_t *gone;
  palloc_bucket_counts_t c;
  palloc_bucket_counts_t base; /* a delta profile's counts at its start (opts->base), or 0 */
} entry_t;

/* A profile under construction. Each step below fills in its part, in this order; every array
 * comes from the scratch arena s. A frame is a distinct location of the profile: frame i has
 * location id i + 1, and frames [0, naddr) are numbered in the order the stacks first show them. */
typedef struct {
  palloc_scratch_t *s;
  palloc_strtab_t st;
  palloc_pb_profile_t p;
  int64_t rate;
  const palloc_profile_opts_t *o;      /* NULL: the profile since start, no default type */

  entry_t *e;                          /* collect_buckets: the buckets with allocations */
  size_t ne, nframes;                  /*   and the total of their stack depths */

  idmap_t live_ids, gone_ids;          /* collect_frames: return address - 1 or gone frame id */
  uintptr_t *addrs;                    /*   -> frame index + 1; the frame's address */
  const palloc_gone_frame_t **gfs;     /*   its unload.c record, or NULL if still loaded */
  size_t naddr, nlive;                 /*   frames, and those with gfs[i] == NULL */

  palloc_mapping_t *maps;              /* collect_mappings: /proc/self/maps' executable */
  size_t nmaps, nlive_maps;            /*   mappings, then those of unloaded libraries */

  palloc_sym_t *syms;                  /* symbolize_frames: syms[i] names frame i */

  Location **loc;                      /* add_locations: loc[i] is frame i's */
  Function **fn;
  size_t nfn;
} build_t;

/* 1. The buckets that have allocations, with their counts, and the sum of their depths. */
static bool collect_buckets(build_t *B) {
  size_t nb = 0;
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) nb++;
  B->e = NEW(B->s, entry_t, nb);
  if (!B->e) return false;
  /* The list only grows at its head: the walk sees at least the nb buckets counted. */
  for (palloc_bucket_t *b = palloc_bucket_list(); b && B->ne < nb; b = b->allnext) {
    entry_t *e = &B->e[B->ne];
    palloc_bucket_read(b, &e->c);
    palloc_assert(e->c.frees <= e->c.allocs && e->c.free_bytes <= e->c.alloc_bytes);
    palloc_assert(b->nstk <= PALLOC_MAX_DEPTH);
    if (B->o && B->o->base) B->o->base(B->o->arg, b, &e->base);
    /* the bucket's counts changed since the base (since start: it has allocations) */
    if (e->c.allocs == e->base.allocs && e->c.frees == e->base.frees) continue;
    e->b = b;
    e->gone = atomic_load_explicit(&b->gone, memory_order_acquire);
    B->ne++;
    B->nframes += b->nstk;
  }
  return true;
}

/* Frame k of e's stack: the map that numbers it, its key there, and its unload.c record if its
 * library was unloaded since the bucket was made (then it is a frame of its own, whatever now
 * lies at its address). */
static idmap_t *frame_key(build_t *B, const entry_t *e, uint32_t k, uint64_t *key,
                          const palloc_gone_frame_t **g) {
  *g = e->gone && e->gone[k] ? palloc_unload_frame(e->gone[k]) : NULL;
  *key = *g ? e->gone[k] : e->b->stk[k] - 1;
  return *g ? &B->gone_ids : &B->live_ids;
}

/* 2. The distinct frames of all stacks, numbered in order of appearance. A frame's address is
 *    return address - 1: inside the call instruction, which is also what is symbolized. */
static bool collect_frames(build_t *B) {
  B->addrs = NEW(B->s, uintptr_t, B->nframes);
  B->gfs = NEW(B->s, const palloc_gone_frame_t *, B->nframes);
  if (!B->addrs || !B->gfs || !idmap_init(&B->live_ids, B->nframes, B->s) ||
      !idmap_init(&B->gone_ids, B->nframes, B->s))
    return false;
  for (size_t i = 0; i < B->ne; i++) {
    for (uint32_t k = 0; k < B->e[i].b->nstk; k++) {
      uint64_t key;
      const palloc_gone_frame_t *g;
      idmap_t *m = frame_key(B, &B->e[i], k, &key, &g);
      bool found;
      size_t j = idmap_slot(m, key, &found);
      if (found) continue;
      m->keys[j] = key;
      m->vals[j] = (uint32_t)++B->naddr;
      B->addrs[B->naddr - 1] = g ? g->addr : (uintptr_t)key;
      B->gfs[B->naddr - 1] = g;
      B->nlive += g == NULL;
    }
  }
  /* a frame per distinct address: no more than the stacks' frames, which sized the arrays */
  palloc_assert(B->nlive <= B->naddr && B->naddr <= B->nframes);
  return true;
}

/* 3. The mappings: the executable ones of /proc/self/maps, then those unload.c kept for the
 *    libraries unloaded since (a gone frame's map indexes these). */
static bool collect_mappings(build_t *B) {
  size_t nlive = 0, ngone = 0;
  palloc_mapping_t *live = palloc_maps_read(B->s, &nlive);
  const palloc_mapping_t *gone = palloc_unload_mappings(&ngone);
  if (live == NULL) nlive = 0;
  B->maps = NEW(B->s, palloc_mapping_t, nlive + ngone);
  if (!B->maps) return false;
  if (nlive) memcpy(B->maps, live, nlive * sizeof *B->maps);
  if (ngone) memcpy(B->maps + nlive, gone, ngone * sizeof *B->maps);
  B->nlive_maps = nlive;
  B->nmaps = nlive + ngone;
  return true;
}

/* 4. A symbol for every frame: a gone frame's was taken when its library went; the live ones
 *    are symbolized together (symbolize.c), unless PALLOC_SYMBOLIZE=none. */
static bool symbolize_frames(build_t *B) {
  B->syms = NEW(B->s, palloc_sym_t, B->naddr);
  uintptr_t *live_addrs = NEW(B->s, uintptr_t, B->nlive);
  palloc_sym_t *live_syms = NEW(B->s, palloc_sym_t, B->nlive);
  if (!B->syms || !live_addrs || !live_syms) return false;
  for (size_t i = 0, k = 0; i < B->naddr; i++)
    if (B->gfs[i] == NULL) live_addrs[k++] = B->addrs[i];
  if (palloc_g.symbolize && B->nlive > 0)
    palloc_symbolize(live_addrs, B->nlive, live_syms, B->s);
  else
    memset(live_syms, 0, B->nlive * sizeof *live_syms);
  for (size_t i = 0, k = 0; i < B->naddr; i++)
    B->syms[i] = B->gfs[i] ? B->gfs[i]->sym : live_syms[k++];
  return true;
}

/* 5. A Location per frame, tied to the mapping that holds it, with one Line if the frame has a
 *    function; Functions deduplicated by (name, file). A live mapping is flagged as having
 *    functions, files, lines when one of its frames has them, so that pprof re-symbolizes
 *    exactly the others (an unloaded library's flags were set when it went). */
static bool add_locations(build_t *B) {
  size_t n = B->naddr;
  idmap_t funcs;
  Function *fn = NEW(B->s, Function, n);
  Location *loc = NEW(B->s, Location, n);
  Line *line = NEW(B->s, Line, n);
  Line **linep = NEW(B->s, Line *, n);
  B->fn = NEW(B->s, Function *, n);
  B->loc = NEW(B->s, Location *, n);
  if (!fn || !loc || !line || !linep || !B->fn || !B->loc || !idmap_init(&funcs, n, B->s))
    return false;
  for (size_t i = 0; i < n; i++) {
    const palloc_sym_t *sym = &B->syms[i];
    Location *l = &loc[i];
    ZERO(l);
    l->id = i + 1;
    l->address = B->addrs[i];
    long mi = B->gfs[i] ? (long)(B->nlive_maps + B->gfs[i]->map)
                        : palloc_maps_find(B->maps, B->nlive_maps, B->addrs[i]);
    palloc_assert(mi < (long)B->nmaps); /* a mapping id names a Mapping of this profile */
    l->mapping_id = mi >= 0 ? (uint64_t)mi + 1 : 0;
    B->loc[i] = l;
    if (sym->func == NULL) continue;
    int64_t name = palloc_strtab_intern(&B->st, sym->func);
    int64_t file = palloc_strtab_intern(&B->st, sym->file ? sym->file : "");
    uint64_t key = ((uint64_t)name << 32) ^ (uint64_t)file;
    bool found;
    size_t j = idmap_slot(&funcs, key, &found);
    if (!found) {
      Function *f = &fn[B->nfn];
      ZERO(f);
      f->id = B->nfn + 1;
      f->name = f->system_name = name;
      f->filename = file;
      B->fn[B->nfn++] = f;
      funcs.keys[j] = key;
      funcs.vals[j] = (uint32_t)B->nfn;
    }
    palloc_assert(funcs.vals[j] >= 1 && funcs.vals[j] <= B->nfn && B->nfn <= n);
    ZERO(&line[i]);
    line[i].function_id = funcs.vals[j];
    line[i].line = sym->line;
    linep[i] = &line[i];
    l->n_line = 1;
    l->line = &linep[i];
    if (mi >= 0 && B->gfs[i] == NULL) {
      palloc_mapping_t *m = &B->maps[mi];
      m->has_functions = true;
      if (sym->file) m->has_filenames = true;
      if (sym->line > 0) m->has_lines = true;
    }
  }
  B->p.n_location = n;
  B->p.location = B->loc;
  B->p.n_function = B->nfn;
  B->p.function = B->fn;
  return true;
}

/* 6. The Mapping messages. */
static bool add_mappings(build_t *B) {
  Mapping *mp = NEW(B->s, Mapping, B->nmaps);
  Mapping **mpp = NEW(B->s, Mapping *, B->nmaps);
  if (!mp || !mpp) return false;
  for (size_t i = 0; i < B->nmaps; i++) {
    const palloc_mapping_t *m = &B->maps[i];
    ZERO(&mp[i]);
    mp[i].id = i + 1;
    mp[i].memory_start = m->start;
    mp[i].memory_limit = m->limit;
    mp[i].file_offset = m->offset;
    mp[i].filename = palloc_strtab_intern(&B->st, m->path);
    mp[i].build_id = palloc_strtab_intern(&B->st, m->build_id);
    mp[i].has_functions = m->has_functions;
    mp[i].has_filenames = m->has_filenames;
    mp[i].has_line_numbers = m->has_lines;
    mpp[i] = &mp[i];
  }
  B->p.n_mapping = B->nmaps;
  B->p.mapping = mpp;
  return true;
}

/* A bucket's values: its raw counts unsampled at the rate (Go's scaleHeapSample), allocated and
 * in use (allocated - freed). */
static void scale_counts(const palloc_bucket_counts_t *c, int64_t rate, int64_t v[NVALUES]) {
  palloc_assert(c->frees <= c->allocs && c->free_bytes <= c->alloc_bytes); /* in use >= 0 */
  palloc_proto_scale_heap((int64_t)c->allocs, (int64_t)c->alloc_bytes, rate,
                          &v[V_ALLOC_OBJECTS], &v[V_ALLOC_SPACE]);
  palloc_proto_scale_heap((int64_t)(c->allocs - c->frees),
                          (int64_t)(c->alloc_bytes - c->free_bytes), rate,
                          &v[V_INUSE_OBJECTS], &v[V_INUSE_SPACE]);
}

/* 7. A Sample per bucket: its stack as location ids, its scaled values, and the label
 *    bytes = its size class. */
static bool add_samples(build_t *B) {
  size_t n = B->ne;
  Sample *sm = NEW(B->s, Sample, n);
  Sample **smp = NEW(B->s, Sample *, n);
  Label *lb = NEW(B->s, Label, n);
  Label **lbp = NEW(B->s, Label *, n);
  int64_t *vals = NEW(B->s, int64_t, n * NVALUES);
  uint64_t *ids = NEW(B->s, uint64_t, B->nframes);
  if (!sm || !smp || !lb || !lbp || !vals || !ids) return false;
  int64_t bytes_key = palloc_strtab_intern(&B->st, "bytes");
  for (size_t i = 0; i < n; i++) {
    const entry_t *e = &B->e[i];
    Sample *x = &sm[i];
    ZERO(x);
    x->location_id = ids;
    x->n_location_id = e->b->nstk;
    for (uint32_t k = 0; k < e->b->nstk; k++) {
      uint64_t key;
      const palloc_gone_frame_t *g;
      idmap_t *m = frame_key(B, e, k, &key, &g);
      bool found;
      *ids++ = m->vals[idmap_slot(m, key, &found)];
      /* collect_frames numbered every frame of every stack: ids 1..naddr */
      palloc_assert(found && ids[-1] >= 1 && ids[-1] <= B->naddr);
    }
    scale_counts(&e->c, B->rate, &vals[i * NVALUES]);
    if (B->o && B->o->base) { /* Go's delta: each end scaled, then subtracted */
      int64_t base[NVALUES];
      scale_counts(&e->base, B->rate, base);
      for (int k = 0; k < NVALUES; k++) vals[i * NVALUES + k] -= base[k];
    }
    x->value = &vals[i * NVALUES];
    x->n_value = NVALUES;
    ZERO(&lb[i]);
    lb[i].key = bytes_key;
    lb[i].num = (int64_t)e->b->size;
    lbp[i] = &lb[i];
    x->label = &lbp[i];
    x->n_label = 1;
    smp[i] = x;
  }
  B->p.n_sample = n;
  B->p.sample = smp;
  return true;
}

/* 8. What describes the profile: its sample and period types, the comment, its times; and the
 *    string table, now complete. */
static bool add_header(build_t *B) {
  palloc_pb_profile_t *p = &B->p;
  VT *vt = NEW(B->s, VT, NVALUES + 1), **vtp = NEW(B->s, VT *, NVALUES);
  int64_t *comment_idx = NEW(B->s, int64_t, 1);
  if (!vt || !vtp || !comment_idx) return false;
  for (int i = 0; i < NVALUES; i++) {
    ZERO(&vt[i]);
    vt[i].type = palloc_strtab_intern(&B->st, value_type[i][0]);
    vt[i].unit = palloc_strtab_intern(&B->st, value_type[i][1]);
    vtp[i] = &vt[i];
  }
  VT *period = &vt[NVALUES];
  ZERO(period);
  period->type = palloc_strtab_intern(&B->st, "space");
  period->unit = palloc_strtab_intern(&B->st, "bytes");
  char comment[128];
  snprintf(comment, sizeof comment, "palloc %s, sample rate %lld bytes", PALLOC_VERSION,
           (long long)B->rate);
  *comment_idx = palloc_strtab_intern(&B->st, comment);
  if (B->o && B->o->default_sample_type)
    p->default_sample_type = palloc_strtab_intern(&B->st, B->o->default_sample_type);
  if (B->st.failed) return false;

  p->n_sample_type = NVALUES;
  p->sample_type = vtp;
  p->period_type = period;
  p->period = B->rate;
  p->n_comment = 1;
  p->comment = comment_idx;
  p->time_nanos = (int64_t)now_ns(CLOCK_REALTIME);
  p->duration_nanos = (int64_t)(now_ns(CLOCK_MONOTONIC) - palloc_start_ns);
  if (B->o && B->o->duration_ns > 0) p->duration_nanos = B->o->duration_ns;
  p->n_string_table = B->st.n;
  p->string_table = B->st.strs;
  return true;
}

/* Builds the profile, as Go's writeHeapProto does over its profileBuilder, and writes it.
 * The string table is interned in the order of the steps (functions, mappings, samples,
 * header), which fixes the profile's bytes for a given heap. */
static long build_and_write(build_t *B, const char *path, int fd, char *err, size_t errlen) {
  B->rate = atomic_load(&palloc_g.rate);
  if (!collect_buckets(B) || !collect_frames(B) || !collect_mappings(B) ||
      !symbolize_frames(B) || !add_locations(B) || !add_mappings(B) || !add_samples(B) ||
      !add_header(B)) {
    snprintf(err, errlen, "out of memory building the profile");
    return -1;
  }
  ProtobufCAllocator a = {palloc_scratch_alloc, palloc_scratch_free, B->s};
  char perr[PALLOC_PROTO_ERRLEN];
  long written = path ? palloc_proto_write_path(&B->p, path, &a, perr)
                      : palloc_proto_write_fd(&B->p, fd, &a, perr);
  if (written < 0) snprintf(err, errlen, "%s", perr);
  return written;
}

long palloc_profile_emit(const char *path, int fd, char *err, size_t errlen) {
  return palloc_profile_emit_opts(path, fd, NULL, err, errlen);
}

long palloc_profile_emit_opts(const char *path, int fd, const palloc_profile_opts_t *o,
                              char *err, size_t errlen) {
  build_t B;
  memset(&B, 0, sizeof B);
  B.o = o;
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
