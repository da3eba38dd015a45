/* mkprofile.c - writes the synthetic profiles of the tool tests.
 *
 * usage: mkprofile KIND OUT [SAMPLES] [SEED]
 *   heap     a heap profile (alloc/inuse x objects/space) with what real profiles contain and
 *            readers get wrong: inlined frames (several lines per location), recursion, frames
 *            without a name (bare addresses in a mapping, no mapping at all, an empty function
 *            name), C++ names with spaces and brackets, values from bytes to gigabytes, samples
 *            whose selected value is 0. Random but reproducible from SEED.
 *   default  the same, with default_sample_type = alloc_space
 *   cxx      the same with mangled C++ names (templates, lambdas, clones, operator new),
 *            a versioned symbol and allocation wrappers
 *   rust     cxx with two Rust symbols (legacy and v0 mangling)
 *   grown    the heap profile of the same seed with some stacks grown (for diff tests)
 *   allocs   a heap profile with alloc_objects and alloc_space only (no inuse_*)
 *   cpu      a CPU profile (samples/count, cpu/nanoseconds): valid, but not a heap profile
 *   dangling a heap profile whose sample refers to a location that does not exist
 *   tinyedge the heap profile and one more sample of 1 byte, whose function is reached only
 *            through an inlined frame (pprof drops an edge under 0.1% of the total: no
 *            "(inline)" label for it)
 * Profiles are gzip-compressed with palloc_proto_write_fd, which writes without validating, so
 * that invalid ones can be produced too.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "palloc_proto.h"

typedef Perftools__Profiles__Profile Profile;
static palloc_strtab_t st;

/* The profile is built once and the process exits: nothing is freed on purpose, so the leak
 * checker of the ASan build is told not to report it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
static uint64_t rng = 88172645463325252ull;

static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void *zalloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) abort();
  return p;
}

static Perftools__Profiles__ValueType *vt(const char *type, const char *unit) {
  Perftools__Profiles__ValueType *v = zalloc(sizeof *v);
  perftools__profiles__value_type__init(v);
  v->type = palloc_strtab_intern(&st, type);
  v->unit = palloc_strtab_intern(&st, unit);
  return v;
}

static const char *fnames[] = {
  "main", "server_loop", "handle_request", "parse_json", "json_alloc_node", "strdup",
  "render_template", "buffer_grow", "cache_insert", "hash_resize", "walk_tree", "visit",
  "ns::Pool<int>::allocate(unsigned long)", "operator new(unsigned long)", "log_printf",
  "compress_block", "inline_helper", "deep_inline", "", "zz_last",
};
/* cxx: the same structure with the names a C++ program's symbol table has (mangled, clones,
 * a lambda, templates, an anonymous namespace, a versioned libc symbol, allocation wrappers) */
static const char *cxx_names[] = {
  "main", "_ZN3srv6Server4loopEv", "_ZN3srv7Handler6handleERKSt6vectorIiSaIiEE",
  "_ZN4json6Parser5parseEPKcm", "_ZN4json4NodeC2Ev", "strdup@@GLIBC_2.2.5",
  "_ZN3tpl6RenderIiE3runEv", "xmalloc", "_ZN3foo5CacheIiE6insertEv", "_ZN3foo3barEv.constprop.0",
  "_ZN12_GLOBAL__N_14workEv", "_ZZ4mainENKUlvE_clEv", "_ZN2ns4PoolIiE8allocateEm", "_Znwm",
  "g_malloc", "_ZNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEE9_M_createERmm",
  "_ZN9__gnu_cxx13new_allocatorIcE8allocateEmPKv", "_ZNK3foo5Cache3getEi", "", "zz_last",
};
static const char **names = fnames;
#define NF (sizeof fnames / sizeof fnames[0])
_Static_assert(sizeof cxx_names == sizeof fnames, "cxx_names replaces fnames one for one");
#define NLOC 60

static Profile *heap(int nsamples, bool cpu, bool grown, bool allocs) {
  Profile *p = zalloc(sizeof *p);
  perftools__profiles__profile__init(p);
  palloc_strtab_init(&st, NULL);
  if (cpu) {
    p->n_sample_type = 2;
    p->sample_type = zalloc(2 * sizeof *p->sample_type);
    p->sample_type[0] = vt("samples", "count");
    p->sample_type[1] = vt("cpu", "nanoseconds");
    p->period_type = vt("cpu", "nanoseconds");
    p->period = 10000000;
  } else {
    p->n_sample_type = allocs ? 2 : 4;
    p->sample_type = zalloc(4 * sizeof *p->sample_type);
    p->sample_type[0] = vt("alloc_objects", "count");
    p->sample_type[1] = vt("alloc_space", "bytes");
    if (!allocs) {
      p->sample_type[2] = vt("inuse_objects", "count");
      p->sample_type[3] = vt("inuse_space", "bytes");
    }
    p->period_type = vt("space", "bytes");
    p->period = 524288;
  }
  p->n_mapping = 2;
  p->mapping = zalloc(2 * sizeof *p->mapping);
  for (int i = 0; i < 2; i++) {
    Perftools__Profiles__Mapping *m = p->mapping[i] = zalloc(sizeof *m);
    perftools__profiles__mapping__init(m);
    m->id = (uint64_t)i + 1;
    m->memory_start = 0x400000ull + (uint64_t)i * 0x10000000ull;
    m->memory_limit = m->memory_start + 0x1000000;
    m->filename = palloc_strtab_intern(&st, i == 0 ? "/usr/bin/synthetic" : "/usr/lib/libfoo.so.1");
    m->has_functions = i == 0;
  }
  p->n_function = NF;
  p->function = zalloc(NF * sizeof *p->function);
  for (size_t i = 0; i < NF; i++) {
    Perftools__Profiles__Function *f = p->function[i] = zalloc(sizeof *f);
    perftools__profiles__function__init(f);
    f->id = i * 7 + 3; /* sparse ids: readers must not index by id */
    f->name = f->system_name = palloc_strtab_intern(&st, names[i]);
    f->filename = palloc_strtab_intern(&st, i % 2 ? "src/a.c" : "src/b.c");
  }
  p->n_location = NLOC;
  p->location = zalloc(NLOC * sizeof *p->location);
  for (int i = 0; i < NLOC; i++) {
    Perftools__Profiles__Location *l = p->location[i] = zalloc(sizeof *l);
    perftools__profiles__location__init(l);
    l->id = (uint64_t)i * 3 + 1000;
    int kind = i % 10;
    l->mapping_id = kind == 9 ? 0 : kind == 8 ? 2 : 1;
    l->address = (kind == 8 ? 0x10400000ull : 0x400000ull) + (uint64_t)i * 0x40;
    if (kind == 8 || kind == 9) continue; /* bare addresses */
    l->n_line = kind < 3 ? 1 + (size_t)(kind % 3 == 0 ? 2 : 0) : 1; /* some inlined */
    l->line = zalloc(l->n_line * sizeof *l->line);
    for (size_t j = 0; j < l->n_line; j++) {
      Perftools__Profiles__Line *ln = l->line[j] = zalloc(sizeof *ln);
      perftools__profiles__line__init(ln);
      ln->function_id = p->function[(size_t)(i + (int)j * 5) % NF]->id;
      ln->line = 10 + i;
    }
  }
  p->n_sample = (size_t)nsamples;
  p->sample = zalloc((size_t)nsamples * sizeof *p->sample);
  for (int i = 0; i < nsamples; i++) {
    Perftools__Profiles__Sample *s = p->sample[i] = zalloc(sizeof *s);
    perftools__profiles__sample__init(s);
    size_t depth = 1 + next() % 12;
    s->n_location_id = depth;
    s->location_id = zalloc(depth * sizeof *s->location_id);
    for (size_t d = 0; d < depth; d++) {
      /* the outermost frames are shared (main, loops), recursion repeats a location */
      uint64_t li = d + 1 == depth ? 0 : (d > 2 && next() % 4 == 0) ? (next() % 3) + 10 : next() % NLOC;
      s->location_id[d] = p->location[li]->id;
    }
    s->n_value = p->n_sample_type;
    s->value = zalloc(4 * sizeof *s->value);
    uint64_t r = next();
    int64_t size = (int64_t)(1 + (r % 5 == 0 ? next() % (1u << 30) : r % 5 == 1 ? next() % (1u << 20)
                                                                                 : next() % 4096));
    int64_t count = 1 + (int64_t)(next() % 100);
    if (cpu) {
      s->value[0] = count;
      s->value[1] = count * 10000000;
      continue;
    }
    int64_t live = (int64_t)(next() % 3 == 0 ? 0 : next() % (uint64_t)count + 1);
    if (grown && i % 7 == 0) live = count, count *= 3; /* "leaking" stacks */
    s->value[0] = count;
    s->value[1] = count * size;
    if (allocs) continue;
    s->value[2] = live;
    s->value[3] = live * size;
  }
  p->n_string_table = st.n;
  p->string_table = st.strs;
  return p;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: mkprofile heap|default|grown|allocs|cpu|dangling OUT [SAMPLES] [SEED]\n");
    return 2;
  }
  const char *kind = argv[1];
  if (strcmp(kind, "cxx") == 0 || strcmp(kind, "rust") == 0) names = cxx_names;
  if (strcmp(kind, "rust") == 0) { /* Rust's legacy (_ZN..17h<hash>E) and v0 (_R) manglings */
    static const char *rust_names[NF];
    memcpy(rust_names, cxx_names, sizeof rust_names);
    rust_names[6] = "_ZN3std2io5stdio6_print17h1234567890abcdefE";
    rust_names[15] = "_RNvCs15kBYyAo9fc_7mycrate7example";
    names = rust_names;
  }
  int n = argc > 3 ? atoi(argv[3]) : 500;
  if (argc > 4) rng ^= strtoull(argv[4], NULL, 0) * 0x9e3779b97f4a7c15ull;
  if (rng == 0) rng = 1;
  Profile *p = heap(n, strcmp(kind, "cpu") == 0, strcmp(kind, "grown") == 0,
                    strcmp(kind, "allocs") == 0);
  if (strcmp(kind, "default") == 0)
    p->default_sample_type = palloc_strtab_intern(&st, "alloc_space"),
    p->n_string_table = st.n, p->string_table = st.strs;
  if (strcmp(kind, "dangling") == 0) p->sample[n / 2]->location_id[0] = 999999;
  if (strcmp(kind, "tinyedge") == 0) { /* tiny_inlined inlined into tiny_caller, one location */
    Perftools__Profiles__Function **fs = zalloc((p->n_function + 2) * sizeof *fs);
    memcpy(fs, p->function, p->n_function * sizeof *fs);
    for (int i = 0; i < 2; i++) {
      Perftools__Profiles__Function *f = fs[p->n_function + (size_t)i] = zalloc(sizeof *f);
      perftools__profiles__function__init(f);
      f->id = 90001 + (uint64_t)i;
      f->name = f->system_name = palloc_strtab_intern(&st, i ? "tiny_caller" : "tiny_inlined");
    }
    p->function = fs;
    p->n_function += 2;
    Perftools__Profiles__Location **ls = zalloc((p->n_location + 1) * sizeof *ls);
    memcpy(ls, p->location, p->n_location * sizeof *ls);
    Perftools__Profiles__Location *l = ls[p->n_location] = zalloc(sizeof *l);
    perftools__profiles__location__init(l);
    l->id = 90001;
    l->n_line = 2;
    l->line = zalloc(2 * sizeof *l->line);
    for (int j = 0; j < 2; j++) {
      l->line[j] = zalloc(sizeof *l->line[j]);
      perftools__profiles__line__init(l->line[j]);
      l->line[j]->function_id = 90001 + (uint64_t)j;
      l->line[j]->line = 7;
    }
    p->location = ls;
    p->n_location++;
    Perftools__Profiles__Sample **ss = zalloc((p->n_sample + 1) * sizeof *ss);
    memcpy(ss, p->sample, p->n_sample * sizeof *ss);
    Perftools__Profiles__Sample *t = ss[p->n_sample] = zalloc(sizeof *t);
    perftools__profiles__sample__init(t);
    t->n_location_id = 1;
    t->location_id = zalloc(sizeof *t->location_id);
    t->location_id[0] = 90001;
    t->n_value = p->n_sample_type;
    t->value = zalloc(4 * sizeof *t->value);
    for (size_t k = 0; k < t->n_value; k++) t->value[k] = 1;
    p->sample = ss;
    p->n_sample++;
    p->n_string_table = st.n, p->string_table = st.strs;
  }
  int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  char err[PALLOC_PROTO_ERRLEN];
  if (fd < 0 || palloc_proto_write_fd(p, fd, NULL, err) < 0 || close(fd) != 0) {
    fprintf(stderr, "mkprofile: cannot write %s\n", argv[2]);
    return 1;
  }
  return 0;
}
