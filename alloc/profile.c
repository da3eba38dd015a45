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
 * Memory: everything lives in one scratch arena, released when the write ends. What it holds
 * grows with the profile's distinct frames, functions and mappings (their messages) and by one
 * bit per bucket; the samples, one per bucket, are made one at a time as the encoder asks for
 * them and streamed through gzip to the file (proto/write.c), so a profile of a million buckets
 * is never held whole, as messages, encoded or compressed.
 * The messages are protoc-c's structs, encoded by proto/encode.c: no protobuf-c code is linked.
 *
 * The other profiles made from the buckets (the peak heap, the lifetimes: profinternal.h's
 * kinds) are built the same way from rows their collect step gives, one sample per row, with the
 * kind's sample types, labels and comments; those rows are few (live or freed buckets) and held.
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
  size_t n;      /* keys held (idmap_put) */
} idmap_t;

static bool idmap_init(idmap_t *m, size_t n, palloc_scratch_t *s) {
  m->n = 0;
  m->cap = 64;
  while (m->cap < n * 2) m->cap *= 2;
  m->keys = palloc_scratch_alloc(s, m->cap * sizeof *m->keys);
  m->vals = palloc_scratch_alloc(s, m->cap * sizeof *m->vals);
  if (!m->keys || !m->vals) return false;
  memset(m->vals, 0, m->cap * sizeof *m->vals);
  return true;
}

/* Returns the slot for key; *found tells whether it held the key already. */
static size_t idmap_slot(idmap_t *m, uint64_t key, bool *found);

/* Enters key -> val (key not in m), doubling m first if it would be over half full: the map
 * grows with the keys it holds, not with an estimate made before. The old arrays stay in the
 * scratch arena: at most as much again as the final ones. */
static bool idmap_put(idmap_t *m, uint64_t key, uint32_t val, palloc_scratch_t *s) {
  if ((m->n + 1) * 2 > m->cap) {
    idmap_t g;
    if (!idmap_init(&g, m->cap, s)) return false; /* twice the slots (idmap_init: >= 2n) */
    for (size_t i = 0; i < m->cap; i++) {
      if (m->vals[i] == 0) continue;
      bool found;
      size_t j = idmap_slot(&g, m->keys[i], &found);
      g.keys[j] = m->keys[i];
      g.vals[j] = m->vals[i];
    }
    g.n = m->n;
    palloc_scratch_free(s, m->keys);
    palloc_scratch_free(s, m->vals);
    *m = g;
  }
  bool found;
  size_t j = idmap_slot(m, key, &found);
  palloc_assert(!found && val != 0);
  m->keys[j] = key;
  m->vals[j] = val;
  m->n++;
  return true;
}

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

/* One bucket of the profile, as a pass over the buckets reads it. gone does not change during
 * the write: unload.c sets it under the writer lock, which the whole write holds. */
typedef struct {
  const palloc_bucket_t *b;
  const uint32_t *gone;
  palloc_bucket_counts_t c;
} entry_t;

/* A kind's row's label strings, interned before the string table is written: key, unit. */
typedef struct { int64_t s[2 * PALLOC_KIND_MAX_LABELS]; } row_strs_t;

/* A pass over the profile's samples, in order: the heap profile's buckets (the list from
 * B->head, position pos, those with their bit set) or a kind's rows. */
typedef struct {
  palloc_bucket_t *b;
  size_t pos;  /* b's position in the list */
  size_t i;    /* samples passed */
} cursor_t;

/* A profile under construction. Each step below fills in its part, in this order; every array
 * comes from the scratch arena s. A frame is a distinct location of the profile: frame i has
 * location id i + 1, and frames [0, naddr) are numbered in the order the stacks first show them. */
typedef struct {
  palloc_scratch_t *s;
  palloc_strtab_t st;
  palloc_pb_profile_t p;
  int64_t rate;
  const palloc_profile_opts_t *o;      /* NULL: the profile since start, no default type */

  palloc_bucket_t *head;               /* collect_buckets: the list as the write found it, */
  size_t nb;                           /*   its length, */
  uint64_t *in;                        /*   bit i: its i-th bucket had allocations (in the */
  size_t ne;                           /*   profile); ne of them */

  const palloc_profile_kind_t *kind;   /* NULL: the heap profile; else its rows are the */
  palloc_profile_row_t *rows;          /*   samples (collect_buckets), and the strings of */
  row_strs_t *row_strs;                /* row i's labels' key and unit strings (add_samples) */
  char kcomment[PALLOC_KIND_MAX_COMMENTS][256];
  int nkcomment;

  Sample smp;                          /* sample_at: the one sample being encoded, its parts */
  Label lb[1 + PALLOC_KIND_MAX_LABELS], *lbp[1 + PALLOC_KIND_MAX_LABELS];
  int64_t vals[PALLOC_KIND_MAX_VALUES];
  uint64_t ids[PALLOC_MAX_DEPTH];
  cursor_t cur;                        /*   the pass, at sample cur.i */
  int64_t bytes_key;                   /*   the label's key */

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

_Static_assert(NVALUES <= PALLOC_KIND_MAX_VALUES, "a sample's values fit build_t's vals");

/* 1'. Another kind's rows (profinternal.h): every row is a sample. */
static bool collect_rows(build_t *B) {
  long n = B->kind->collect(B->s, B->rate, &B->rows, B->kcomment, &B->nkcomment);
  palloc_assert(B->nkcomment >= 0 && B->nkcomment <= PALLOC_KIND_MAX_COMMENTS);
  if (n < 0) return false;
  B->ne = (size_t)n;
  for (size_t i = 0; i < B->ne; i++) palloc_assert(B->rows[i].b->nstk <= PALLOC_MAX_DEPTH);
  return true;
}

/* 1. The buckets that have allocations: which of the list's buckets are in the profile, a bit
 *    each. Buckets are added at the list's head only and never removed, so the list from this
 *    head stays the same for the whole write, and a bucket's allocations never go back to 0:
 *    every later pass (frames, samples) sees exactly these buckets. */
static bool collect_buckets(build_t *B) {
  if (B->kind) return collect_rows(B);
  B->head = palloc_bucket_list();
  for (palloc_bucket_t *b = B->head; b; b = b->allnext) B->nb++;
  B->in = NEW(B->s, uint64_t, B->nb / 64 + 1);
  if (!B->in) return false;
  memset(B->in, 0, (B->nb / 64 + 1) * sizeof *B->in);
  size_t i = 0;
  for (palloc_bucket_t *b = B->head; b; b = b->allnext, i++) {
    palloc_assert(i < B->nb && b->nstk <= PALLOC_MAX_DEPTH);
    if (B->o && B->o->base) {
      /* a delta profile: the buckets whose counts changed since its base */
      palloc_bucket_counts_t now, base = {0};
      palloc_bucket_read(b, &now);
      B->o->base(B->o->arg, b, &base);
      if (now.allocs == base.allocs && now.frees == base.frees) continue;
    } else if (atomic_load_explicit(&b->allocs, memory_order_relaxed) == 0) {
      continue;
    }
    B->in[i / 64] |= 1ull << (i % 64);
    B->ne++;
  }
  return true;
}


static void cursor_start(build_t *B, cursor_t *c) { *c = (cursor_t){B->head, 0, 0}; }

/* The next sample's bucket as an entry (counts not read), and moves past it; false at the end. */
static bool cursor_next(build_t *B, cursor_t *c, entry_t *e) {
  if (B->kind) {
    if (c->i >= B->ne) return false;
    e->b = B->rows[c->i++].b;
    e->gone = atomic_load_explicit(&e->b->gone, memory_order_acquire);
    return true;
  }
  for (; c->b; c->b = c->b->allnext, c->pos++) {
    if (!(B->in[c->pos / 64] >> (c->pos % 64) & 1)) continue;
    e->b = c->b;
    e->gone = atomic_load_explicit(&c->b->gone, memory_order_acquire);
    c->b = c->b->allnext;
    c->pos++;
    c->i++;
    return true;
  }
  return false;
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
 *    return address - 1: inside the call instruction, which is also what is symbolized. The
 *    maps grow with the distinct frames; the arrays are made once their number is known. */
static bool collect_frames(build_t *B) {
  if (!idmap_init(&B->live_ids, 32, B->s) || !idmap_init(&B->gone_ids, 0, B->s)) return false;
  cursor_t c;
  entry_t e;
  cursor_start(B, &c);
  while (cursor_next(B, &c, &e)) {
    for (uint32_t k = 0; k < e.b->nstk; k++) {
      uint64_t key;
      const palloc_gone_frame_t *g;
      idmap_t *m = frame_key(B, &e, k, &key, &g);
      bool found;
      idmap_slot(m, key, &found);
      if (found) continue;
      if (!idmap_put(m, key, (uint32_t)++B->naddr, B->s)) return false;
      B->nlive += g == NULL;
    }
  }
  B->addrs = NEW(B->s, uintptr_t, B->naddr);
  B->gfs = NEW(B->s, const palloc_gone_frame_t *, B->naddr);
  if (!B->addrs || !B->gfs) return false;
  for (size_t j = 0; j < B->live_ids.cap; j++)
    if (B->live_ids.vals[j]) {
      B->addrs[B->live_ids.vals[j] - 1] = (uintptr_t)B->live_ids.keys[j];
      B->gfs[B->live_ids.vals[j] - 1] = NULL;
    }
  for (size_t j = 0; j < B->gone_ids.cap; j++)
    if (B->gone_ids.vals[j]) {
      const palloc_gone_frame_t *g = palloc_unload_frame((uint32_t)B->gone_ids.keys[j]);
      B->addrs[B->gone_ids.vals[j] - 1] = g->addr;
      B->gfs[B->gone_ids.vals[j] - 1] = g;
    }
  /* every frame is in exactly one map */
  palloc_assert(B->nlive <= B->naddr && B->live_ids.n + B->gone_ids.n == B->naddr);
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
 *    bytes = its size class. The samples are not kept: the encoder asks for them one at a time
 *    (sample_at), twice over (once to size the output); this step only interns the label's key,
 *    where the string table's order puts it. */
static bool add_samples(build_t *B) {
  B->bytes_key = palloc_strtab_intern(&B->st, "bytes");
  if (B->kind) {
    B->row_strs = NEW(B->s, row_strs_t, B->ne);
    if (!B->row_strs) return false;
    for (size_t i = 0; i < B->ne; i++)
      for (int k = 0; k < B->rows[i].nlabels; k++) {
        palloc_assert(k < PALLOC_KIND_MAX_LABELS);
        B->row_strs[i].s[2 * k] = palloc_strtab_intern(&B->st, B->rows[i].label[k].key);
        B->row_strs[i].s[2 * k + 1] =
            B->rows[i].label[k].unit ? palloc_strtab_intern(&B->st, B->rows[i].label[k].unit) : 0;
      }
  }
  return !B->st.failed;
}

/* Sample i of the profile, i = 0, 1, ..., ne - 1 in order, each pass starting at 0: the next
 * bucket in the profile, read now (its counts may have grown since step 1; its frames are all
 * numbered by step 2). Valid until the next call. */
static const Sample *sample_at(void *ctx, size_t i) {
  build_t *B = ctx;
  if (i == 0) cursor_start(B, &B->cur);
  palloc_assert(i == B->cur.i && i < B->ne);
  entry_t e;
  bool more = cursor_next(B, &B->cur, &e);
  palloc_assert(more); /* step 1 counted ne samples */
  (void)more;
  Sample *x = &B->smp;
  ZERO(x);
  for (uint32_t k = 0; k < e.b->nstk; k++) {
    uint64_t key;
    const palloc_gone_frame_t *g;
    idmap_t *m = frame_key(B, &e, k, &key, &g);
    bool found;
    B->ids[k] = m->vals[idmap_slot(m, key, &found)];
    /* collect_frames numbered every frame of every stack: ids 1..naddr */
    palloc_assert(found && B->ids[k] >= 1 && B->ids[k] <= B->naddr);
  }
  x->location_id = B->ids;
  x->n_location_id = e.b->nstk;
  x->value = B->vals;
  if (B->kind) {
    x->n_value = (size_t)B->kind->nvalues;
    memcpy(B->vals, B->rows[i].v, x->n_value * sizeof *B->vals);
  } else {
    palloc_bucket_read(e.b, &e.c);
    scale_counts(&e.c, B->rate, B->vals);
    x->n_value = NVALUES;
    if (B->o && B->o->base) { /* Go's delta: each end scaled, then subtracted */
      palloc_bucket_counts_t bc = {0};
      int64_t base[NVALUES];
      B->o->base(B->o->arg, e.b, &bc);
      scale_counts(&bc, B->rate, base);
      for (int k = 0; k < NVALUES; k++) B->vals[k] -= base[k];
    }
  }
  Label *l = B->lb;
  ZERO(&l[0]);
  l[0].key = B->bytes_key;
  l[0].num = (int64_t)e.b->size;
  B->lbp[0] = &l[0];
  x->n_label = 1;
  for (int k = 0; B->kind && k < B->rows[i].nlabels; k++) {
    ZERO(&l[1 + k]);
    l[1 + k].key = B->row_strs[i].s[2 * k];
    l[1 + k].num = B->rows[i].label[k].num;
    l[1 + k].num_unit = B->row_strs[i].s[2 * k + 1];
    B->lbp[x->n_label++] = &l[1 + k];
  }
  x->label = B->lbp;
  return x;
}

/* 8. What describes the profile: its sample and period types, the comment, its times; and the
 *    string table, now complete. */
static bool add_header(build_t *B) {
  palloc_pb_profile_t *p = &B->p;
  int nv = B->kind ? B->kind->nvalues : NVALUES;
  const char *const(*types)[2] = B->kind ? B->kind->types : value_type;
  VT *vt = NEW(B->s, VT, nv + 1), **vtp = NEW(B->s, VT *, nv);
  int64_t *comment_idx = NEW(B->s, int64_t, 1 + PALLOC_KIND_MAX_COMMENTS);
  if (!vt || !vtp || !comment_idx) return false;
  for (int i = 0; i < nv; i++) {
    ZERO(&vt[i]);
    vt[i].type = palloc_strtab_intern(&B->st, types[i][0]);
    vt[i].unit = palloc_strtab_intern(&B->st, types[i][1]);
    vtp[i] = &vt[i];
  }
  VT *period = &vt[nv];
  ZERO(period);
  period->type = palloc_strtab_intern(&B->st, "space");
  period->unit = palloc_strtab_intern(&B->st, "bytes");
  char comment[128];
  snprintf(comment, sizeof comment, "palloc %s, sample rate %lld bytes", PALLOC_VERSION,
           (long long)B->rate);
  *comment_idx = palloc_strtab_intern(&B->st, comment);
  for (int i = 0; B->kind && i < B->nkcomment; i++)
    comment_idx[1 + i] = palloc_strtab_intern(&B->st, B->kcomment[i]);
  if (B->kind && B->kind->default_type)
    p->default_sample_type = palloc_strtab_intern(&B->st, B->kind->default_type);
  if (B->o && B->o->default_sample_type)
    p->default_sample_type = palloc_strtab_intern(&B->st, B->o->default_sample_type);
  if (B->st.failed) return false;

  p->n_sample_type = (size_t)nv;
  p->sample_type = vtp;
  p->period_type = period;
  p->period = B->rate;
  p->n_comment = 1 + (size_t)(B->kind ? B->nkcomment : 0);
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
static long build_and_write(build_t *B, const char *path, int fd, const palloc_proto_sink_t *sink,
                            char *err, size_t errlen) {
  B->rate = atomic_load(&palloc_g.rate);
  if (!collect_buckets(B) || !collect_frames(B) || !collect_mappings(B) ||
      !symbolize_frames(B) || !add_locations(B) || !add_mappings(B) || !add_samples(B) ||
      !add_header(B)) {
    snprintf(err, errlen, "out of memory building the profile");
    return -1;
  }
  ProtobufCAllocator a = {palloc_scratch_alloc, palloc_scratch_free, B->s};
  char perr[PALLOC_PROTO_ERRLEN];
  palloc_proto_samples_t samples = {B->ne, sample_at, B};
  long written = sink ? palloc_proto_write_sink(&B->p, &samples, sink, &a, perr)
                 : path ? palloc_proto_write_path_samples(&B->p, &samples, path, &a, perr)
                        : palloc_proto_write_fd_samples(&B->p, &samples, fd, &a, perr);
  if (written < 0) snprintf(err, errlen, "%s", perr);
  return written;
}

static long emit(int kind, const palloc_profile_opts_t *o, const char *path, int fd,
                 const palloc_proto_sink_t *sink, char *err, size_t errlen) {
  build_t B;
  memset(&B, 0, sizeof B);
  B.o = o;
  B.kind = kind == PALLOC_PROFILE_PEAK ? &palloc_peak_kind
         : kind == PALLOC_PROFILE_LIFETIME ? &palloc_lifetime_kind : NULL;
  B.s = palloc_scratch_new();
  if (B.s == NULL) {
    snprintf(err, errlen, "out of memory (scratch arena)");
    return -1;
  }
  ProtobufCAllocator a = {palloc_scratch_alloc, palloc_scratch_free, B.s};
  palloc_strtab_init(&B.st, &a);
  ZERO(&B.p);
  long r = build_and_write(&B, path, fd, sink, err, errlen);
  palloc_scratch_destroy(B.s);
  return r;
}

long palloc_profile_emit(const char *path, int fd, char *err, size_t errlen) {
  return emit(PALLOC_PROFILE_HEAP, NULL, path, fd, NULL, err, errlen);
}

long palloc_profile_emit_kind(int kind, const char *path, int fd, char *err, size_t errlen) {
  return emit(kind, NULL, path, fd, NULL, err, errlen);
}

long palloc_profile_emit_opts(const char *path, int fd, const palloc_profile_opts_t *o,
                              char *err, size_t errlen) {
  return emit(PALLOC_PROFILE_HEAP, o, path, fd, NULL, err, errlen);
}

long palloc_profile_emit_sink(const palloc_proto_sink_t *sink, char *err, size_t errlen) {
  return emit(PALLOC_PROFILE_HEAP, NULL, NULL, -1, sink, err, errlen);
}
