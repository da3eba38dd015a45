/* view.c - a profile as the reports see it: one value per sample, stacks of function nodes.
 *
 * Naming follows upstream pprof at its default granularity ("functions", inline frames kept),
 * because `palloc top` must agree with `pprof -top` row for row:
 *  - a location contributes one frame per Line, line[0] innermost (the inlined callee first);
 *  - a frame is named by its function's name; a frame without a name (no line, or a function
 *    with an empty name) is "[basename of the mapping's file]", or "<unknown>" without a mapping;
 *  - frames with equal names are one node, wherever they occur.
 * The profile was validated by proto/ (every id resolves, every string index is in range), so
 * lookups here cannot fail; the id->index tables exist only to make them O(1).
 *
 * A heap profile is one with at least one sample type measured in bytes; anything else (a CPU
 * profile, a contention profile) is refused with a one-line error rather than summarized wrongly.
 */
#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libiberty/demangle.h>
#include <unistd.h>
#include "cli.h"

typedef Perftools__Profiles__Profile Profile;

static uint64_t hash64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* id -> index table for ids of one kind (locations, functions, mappings). */
typedef struct {
  uint64_t *keys;
  uint32_t *vals;
  size_t cap;
} idtab_t;

static void idtab_init(idtab_t *t, size_t n) {
  t->cap = 16;
  while (t->cap < n * 2) t->cap *= 2;
  t->keys = xcalloc(t->cap, sizeof *t->keys);
  t->vals = xcalloc(t->cap, sizeof *t->vals);
}

static void idtab_put(idtab_t *t, uint64_t id, uint32_t idx) {
  size_t i = hash64(id) & (t->cap - 1);
  while (t->keys[i] != 0 && t->keys[i] != id) i = (i + 1) & (t->cap - 1);
  t->keys[i] = id;
  t->vals[i] = idx;
}

static uint32_t idtab_get(const uint64_t *keys, const uint32_t *vals, size_t cap, uint64_t id) {
  size_t i = hash64(id) & (cap - 1);
  while (keys[i] != id) {
    if (keys[i] == 0) return UINT32_MAX;
    i = (i + 1) & (cap - 1);
  }
  return vals[i];
}

/* Interns printable names into node ids. */
typedef struct {
  view_t *v;
  uint32_t *slots; /* node id + 1 */
  size_t cap, ncap;
} names_t;

static uint32_t intern(names_t *n, const char *s) {
  view_t *v = n->v;
  if ((v->nnodes + 1) * 2 > n->cap) {
    size_t cap = n->cap ? n->cap * 2 : 1024;
    uint32_t *slots = xcalloc(cap, sizeof *slots);
    for (uint32_t k = 0; k < v->nnodes; k++) {
      size_t i = hash_str(v->names[k]) & (cap - 1);
      while (slots[i]) i = (i + 1) & (cap - 1);
      slots[i] = k + 1;
    }
    free(n->slots);
    n->slots = slots;
    n->cap = cap;
  }
  size_t i = hash_str(s) & (n->cap - 1);
  while (n->slots[i]) {
    if (strcmp(v->names[n->slots[i] - 1], s) == 0) return n->slots[i] - 1;
    i = (i + 1) & (n->cap - 1);
  }
  if (v->nnodes == n->ncap) {
    n->ncap = n->ncap ? n->ncap * 2 : 256;
    v->names = xrealloc(v->names, n->ncap * sizeof *v->names);
  }
  v->names[v->nnodes] = xstrdup(s);
  n->slots[i] = v->nnodes + 1;
  return v->nnodes++;
}

static const char *base_name(const char *path) {
  const char *b = strrchr(path, '/');
  return b ? b + 1 : path;
}

/* ---- names ------------------------------------------------------------------------------ */

/* "malloc@@GLIBC_2.2.5" and "memcpy@GLIBC_2.14" are one function whatever version of the
 * symbol was bound: the suffix is dropped. A suffix is '@' or "@@" then a version node name
 * ([A-Za-z_][A-Za-z0-9_.]*) up to the end. */
static size_t unversioned_len(const char *s) {
  const char *at = strchr(s, '@');
  if (at == NULL || at == s) return strlen(s);
  const char *v = at + 1 + (at[1] == '@');
  if (!(isalpha((unsigned char)*v) || *v == '_')) return strlen(s);
  for (const char *c = v; *c; c++)
    if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '.')) return strlen(s);
  return (size_t)(at - s);
}

/* The name a function is shown by: unversioned, and demangled if it is an Itanium C++ ("_Z")
 * or Rust ("_R", or legacy "_ZN..17h<hash>E") symbol. libiberty's cplus_demangle does both
 * languages (the code of c++filt and gdb); __cxa_demangle knows C++ only. Parameters are kept
 * (foo::Cache<int>::insert(), overloads stay apart, as c++filt and heaptrack print them); the
 * " [clone .constprop.0]" suffixes of GCC's clones are dropped, so a function and its clones
 * are one row (pprof's demangle=full does the same). */
static char *display_name(const char *raw, bool demangle) {
  size_t n = unversioned_len(raw);
  char *s = xmalloc(n + 1);
  memcpy(s, raw, n);
  s[n] = 0;
  if (!demangle || s[0] != '_' || (s[1] != 'Z' && s[1] != 'R')) return s;
  char *d = cplus_demangle(s, DMGL_PARAMS | DMGL_ANSI);
  if (d == NULL) return s;
  free(s);
  for (char *c; (c = strstr(d, " [clone ")) != NULL;) {
    char *e = strchr(c, ']');
    if (e == NULL) break;
    memmove(c, e + 1, strlen(e + 1) + 1);
  }
  return d;
}

/* pprof's file names: "/proc/self/cwd/" prefixes trimmed, then Go's filepath.Clean. */
static char *clean_path(const char *path) {
  if (path[0] == 0) return xstrdup("");
  if (strncmp(path, "/proc/self/cwd/./", 17) == 0) path += 17;
  else if (strncmp(path, "/proc/self/cwd/", 15) == 0) path += 15;
  size_t n = strlen(path);
  char *out = xmalloc(n + 2);
  bool rooted = path[0] == '/';
  size_t o = 0, floor = 0; /* out[0..floor) cannot be popped by ".." */
  if (rooted) out[o++] = '/', floor = 1;
  for (const char *c = path; *c;) {
    while (*c == '/') c++;
    const char *e = c;
    while (*e && *e != '/') e++;
    size_t len = (size_t)(e - c);
    if (len == 0 || (len == 1 && c[0] == '.')) {
      /* nothing */
    } else if (len == 2 && c[0] == '.' && c[1] == '.') {
      if (o > floor) {
        while (o > floor && out[o - 1] != '/') o--;
        if (o > floor) o--;
      } else if (!rooted) {
        if (o > 0) out[o++] = '/';
        out[o++] = '.', out[o++] = '.';
        floor = o;
      }
    } else {
      if (o > 0 && out[o - 1] != '/') out[o++] = '/';
      memcpy(out + o, c, len);
      o += len;
    }
    c = e;
  }
  if (o == 0) out[o++] = '.';
  out[o] = 0;
  return out;
}

static bool re_matches(const regex_t *re, const char *s) { return regexec(re, s, 0, NULL, 0) == 0; }

/* A frame without a function name. At the functions and lines granularities it is one row
 * per address, "libxml2.so.2+0x1a2b3" (the file offset: address - start + file_offset, what
 * addr2line and a disassembler of that file take), because distinct unnamed functions of a
 * stripped library are distinct costs; upstream pprof's "[libxml2.so.2]" (all of them as one)
 * is --group-unnamed, and what the other granularities show. "<unknown>" without a mapping. */
static uint32_t anonymous(view_t *v, names_t *n, const Perftools__Profiles__Location *l,
                          uint32_t mi, bool by_address) {
  const Profile *p = v->p;
  char buf[4200];
  const char *file = mi != UINT32_MAX ? p->string_table[p->mapping[mi]->filename] : "";
  by_address = by_address && !v->opts.group_unnamed && l->address != 0 &&
               (v->opts.gran == VIEW_FUNCTIONS || v->opts.gran == VIEW_LINES);
  if (by_address && file[0]) {
    const Perftools__Profiles__Mapping *m = p->mapping[mi];
    snprintf(buf, sizeof buf, "%s+0x%llx", base_name(file),
             (unsigned long long)(l->address - m->memory_start + m->file_offset));
    return intern(n, buf);
  }
  if (by_address) {
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)l->address);
    return intern(n, buf);
  }
  size_t o = 0;
  if (v->opts.gran == VIEW_ADDRESSES && l->address) /* pprof: "%016x [obj]" */
    o = (size_t)snprintf(buf, sizeof buf, "%016llx ", (unsigned long long)l->address);
  if (file[0]) snprintf(buf + o, sizeof buf - o, "[%s]", base_name(file));
  else snprintf(buf + o, sizeof buf - o, "<unknown>");
  return intern(n, buf);
}

/* One frame's node name at the selected granularity, as pprof's NodeInfo.PrintableName builds
 * it after aggregation: [address] [function] then file:line, file, or the object file. */
static uint32_t frame_name(view_t *v, names_t *n, const Perftools__Profiles__Location *l,
                           uint32_t mi, uint32_t fi, int64_t line) {
  int g = v->opts.gran;
  const char *fn = fi != UINT32_MAX && g != VIEW_FILES ? v->fnames[fi] : "";
  const char *file = fi != UINT32_MAX && g != VIEW_FUNCTIONS ? v->ffiles[fi] : "";
  if (g == VIEW_FUNCTIONS || g == VIEW_FILES) line = 0;
  if (fn[0] && g == VIEW_FUNCTIONS) return intern(n, fn);
  if (!fn[0] && !file[0] && line == 0) return anonymous(v, n, l, mi, true);
  char buf[8192];
  size_t o = 0;
  if (g == VIEW_ADDRESSES && l->address)
    o += (size_t)snprintf(buf + o, sizeof buf - o, "%016llx ", (unsigned long long)l->address);
  if (fn[0]) o += (size_t)snprintf(buf + o, sizeof buf - o, "%s ", fn);
  if (o >= sizeof buf) o = sizeof buf - 1;
  if (line != 0) snprintf(buf + o, sizeof buf - o, "%s:%lld", file, (long long)line);
  else if (file[0]) snprintf(buf + o, sizeof buf - o, "%s", file);
  else if (o > 0) buf[o - 1] = 0;
  return intern(n, buf);
}

static int select_index(view_t *v, const char *want) {
  const Profile *p = v->p;
  if (want == NULL) {
    v->vi = (int)p->n_sample_type - 1;
    const char *dst = p->string_table[p->default_sample_type];
    for (size_t i = 0; dst[0] && i < p->n_sample_type; i++)
      if (strcmp(p->string_table[p->sample_type[i]->type], dst) == 0) v->vi = (int)i;
    return 0;
  }
  /* pprof also accepts "inuse_X" for a legacy type named "X". */
  const char *noinuse = strncmp(want, "inuse_", 6) == 0 ? want + 6 : want;
  for (size_t i = 0; i < p->n_sample_type; i++) {
    const char *t = p->string_table[p->sample_type[i]->type];
    if (strcmp(t, want) == 0 || strcmp(t, noinuse) == 0) {
      v->vi = (int)i;
      return 0;
    }
  }
  return -1;
}

/* The objects/bytes pair of the selected type ("alloc_space" <-> "alloc_objects", "inuse_*"),
 * if the profile is sampled (period > 1 bytes). */
static void error_setup(view_t *v) {
  const Profile *p = v->p;
  v->err_cvi = v->err_bvi = -1;
  if (!p->period_type || !unit_is_bytes(p->string_table[p->period_type->unit]) || p->period <= 1)
    return;
  const char *t = v->type, *us = strchr(t, '_');
  if (us == NULL) return;
  size_t plen = (size_t)(us - t) + 1;
  for (size_t i = 0; i < p->n_sample_type; i++) {
    const char *ti = p->string_table[p->sample_type[i]->type];
    if (strncmp(ti, t, plen) != 0) continue;
    if (strcmp(ti + plen, "objects") == 0) v->err_cvi = (int)i;
    if (strcmp(ti + plen, "space") == 0) v->err_bvi = (int)i;
  }
  if (v->err_cvi < 0 || v->err_bvi < 0) v->err_cvi = v->err_bvi = -1;
  v->rate = (double)p->period;
}

double view_raw_samples(const view_t *v, const Perftools__Profiles__Sample *s) {
  double c = (double)s->value[v->err_cvi], b = (double)s->value[v->err_bvi];
  if (c < 0) c = -c;
  if (b < 0) b = -b;
  if (c == 0 || b == 0) return 0;
  return c * -expm1(-(b / c) / v->rate);
}

/* "alloc_objects/count, ..." for error messages. */
static void describe_types(const Profile *p, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = 0;
  for (size_t i = 0; i < p->n_sample_type && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%s/%s", i ? ", " : "",
                             p->string_table[p->sample_type[i]->type],
                             p->string_table[p->sample_type[i]->unit]);
}

FILE *view_diag;

static int fail(view_t *v, const char *fmt, const char *arg) {
  FILE *out = view_diag ? view_diag : stderr;
  fprintf(out, "palloc: %s: ", v->path);
  fprintf(out, fmt, arg);
  fputc('\n', out);
  view_close(v);
  return EXIT_CHECK;
}

/* The profile at path: a file, or the URL of a live process's endpoint (fetch.c); NULL after
 * one message naming the problem. */
static palloc_pb_profile_t *read_profile(const char *path) {
  char err[PALLOC_PROTO_ERRLEN];
  palloc_pb_profile_t *p = NULL;
  if (fetch_is_url(path)) {
    uint8_t *data;
    size_t len;
    if (fetch_url(path, &data, &len, err, sizeof err) == 0) {
      p = palloc_proto_decode(data, len, NULL, err);
      free(data);
    }
  } else {
    p = palloc_proto_read_file(path, NULL, err);
  }
  if (p == NULL) fprintf(stderr, "palloc: %s: %s\n", path, err);
  return p;
}

int view_open(view_t *v, const char *path, const char *sample_index) {
  view_opts_t o = {.sample_index = sample_index};
  return view_open_opts(v, path, &o);
}

/* The option combination that stands for --trim-wrappers (README: "Allocation wrappers"). */
const char view_wrappers_re[] =
  "^(xmalloc|xcalloc|xrealloc|xstrdup|xstrndup|xmemdup|xzalloc|g_malloc|g_malloc0|g_realloc|"
  "g_try_malloc|g_try_malloc0|g_try_realloc|g_strdup|g_strndup|g_memdup2?|zmalloc.*|zcalloc.*|"
  "zrealloc.*|ztrymalloc.*|zstrdup|operator new|operator new\\[\\]|_Znwm.*|_Znam.*|"
  "__gnu_cxx::new_allocator<.*>::allocate|std::__new_allocator<.*>::allocate|"
  "std::allocator_traits<.*>::allocate|std::allocator<.*>::allocate)(\\(.*)?$";

enum { F_FOCUS, F_IGNORE, F_HIDE, F_SHOW, NFILTERS };
typedef struct {
  regex_t re[NFILTERS];
  bool on[NFILTERS], any;
} filters_t;

/* Removes the samples pprof's FilterSamplesByName removes (kept ones first, in their order;
 * the others are kept after p->n_sample so that view_close frees them). */
static void filter_samples(view_t *v, const uint8_t *lfocus, idtab_t *locs) {
  Profile *p = v->p;
  Perftools__Profiles__Sample **keep = xmalloc((p->n_sample + 1) * sizeof *keep);
  Perftools__Profiles__Sample **drop = xmalloc((p->n_sample + 1) * sizeof *drop);
  size_t nk = 0, nd = 0;
  for (size_t i = 0; i < p->n_sample; i++) {
    Perftools__Profiles__Sample *s = p->sample[i];
    bool focused = false, ignored = false, visible = false;
    for (size_t j = 0; j < s->n_location_id; j++) {
      uint32_t li = idtab_get(locs->keys, locs->vals, locs->cap, s->location_id[j]);
      if (lfocus[li] == 2) ignored = true;
      if (lfocus[li] == 1) focused = true;
      if (v->fstart[li + 1] > v->fstart[li]) visible = true;
    }
    if (focused && !ignored && visible) keep[nk++] = s;
    else drop[nd++] = s;
  }
  memcpy(p->sample, keep, nk * sizeof *keep);
  memcpy(p->sample + nk, drop, nd * sizeof *drop);
  v->nsample_all = p->n_sample;
  p->n_sample = nk;
  free(keep);
  free(drop);
}

int view_from(view_t *v, palloc_pb_profile_t *prof, const char *path, const char *sample_index) {
  view_opts_t o = {.sample_index = sample_index};
  return view_from_opts(v, prof, path, &o);
}

int view_open_opts(view_t *v, const char *path, const view_opts_t *o) {
  palloc_pb_profile_t *p = read_profile(path);
  return p ? view_from_opts(v, p, path, o) : EXIT_CHECK;
}

int view_from_opts(view_t *v, palloc_pb_profile_t *prof, const char *path, const view_opts_t *o) {
  memset(v, 0, sizeof *v);
  v->path = path;
  v->p = prof;
  v->opts = *o;
  const char *sample_index = o->sample_index;
  const Profile *p = v->p;
  char types[512];
  describe_types(p, types, sizeof types);
  if (p->n_sample_type == 0) return fail(v, "%s", "not a heap profile (no sample types)");
  bool heap = false;
  for (size_t i = 0; i < p->n_sample_type; i++)
    heap |= unit_is_bytes(p->string_table[p->sample_type[i]->unit]);
  if (!heap) return fail(v, "not a heap profile (sample types: %s)", types);
  if (select_index(v, sample_index) != 0) {
    char msg[700];
    snprintf(msg, sizeof msg, "no sample type \"%s\" (has %s)", sample_index, types);
    return fail(v, "%s", msg);
  }
  v->type = p->string_table[p->sample_type[v->vi]->type];
  v->unit = p->string_table[p->sample_type[v->vi]->unit];
  /* The reports add values of a type in int64_t (the total, flat and cum, a diff's new - base,
   * a tree's sums): the sum of their magnitudes must stay below 2^62 so that none of those
   * overflows (no real profile comes near: 4 EiB). */
  for (size_t t = 0; t < p->n_sample_type; t++) {
    uint64_t mag = 0;
    for (size_t i = 0; i < p->n_sample && mag < ((uint64_t)1 << 62); i++) {
      int64_t x = p->sample[i]->value[t];
      mag += x < 0 ? -(uint64_t)x : (uint64_t)x; /* < 2^62 + 2^63: no wrap */
    }
    if (mag >= ((uint64_t)1 << 62))
      return fail(v, "sample values of type %s too large (their sum overflows)",
                  p->string_table[p->sample_type[t]->type]);
  }
  error_setup(v);

  filters_t filt = {.any = false};
  const char *exprs[NFILTERS] = {o->focus, o->ignore, o->hide, o->show};
  char *hide = NULL;
  if (o->trim_wrappers) {
    size_t n = strlen(view_wrappers_re) + (o->hide ? strlen(o->hide) : 0) + 8;
    hide = xmalloc(n);
    if (o->hide) snprintf(hide, n, "(%s)|%s", o->hide, view_wrappers_re);
    else snprintf(hide, n, "%s", view_wrappers_re);
    exprs[F_HIDE] = hide;
  }
  for (int k = 0; k < NFILTERS; k++) {
    if (!exprs[k]) continue;
    if (regcomp(&filt.re[k], exprs[k], REG_EXTENDED | REG_NOSUB) != 0) {
      for (int j = 0; j < k; j++)
        if (filt.on[j]) regfree(&filt.re[j]);
      snprintf(types, sizeof types, "bad regular expression '%s'", exprs[k]);
      free(hide);
      return fail(v, "%s", types);
    }
    filt.on[k] = filt.any = true;
  }
  free(hide);
  idtab_t maps, funcs, locs;
  idtab_init(&maps, p->n_mapping);
  for (size_t i = 0; i < p->n_mapping; i++) idtab_put(&maps, p->mapping[i]->id, (uint32_t)i);
  idtab_init(&funcs, p->n_function);
  for (size_t i = 0; i < p->n_function; i++) idtab_put(&funcs, p->function[i]->id, (uint32_t)i);
  idtab_init(&locs, p->n_location);
  names_t names = {.v = v};
  size_t nframes = 0;
  for (size_t i = 0; i < p->n_location; i++) {
    idtab_put(&locs, p->location[i]->id, (uint32_t)i);
    nframes += p->location[i]->n_line ? p->location[i]->n_line : 1;
  }
  /* Every function's display name (demangled once) and filename, and which of the filter
   * expressions each function and mapping matches (bit k = filter k, as pprof's matchesName:
   * the function's name or filename; a mapping's file). */
  v->fnames = xcalloc(p->n_function + 1, sizeof *v->fnames);
  v->ffiles = xcalloc(p->n_function + 1, sizeof *v->ffiles);
  uint8_t *fmatch = xcalloc(p->n_function + 1, 1), *mmatch = xcalloc(p->n_mapping + 1, 1);
  for (size_t i = 0; i < p->n_function; i++) {
    v->fnames[i] = display_name(p->string_table[p->function[i]->name], !v->opts.no_demangle);
    v->ffiles[i] = clean_path(p->string_table[p->function[i]->filename]);
    for (int k = 0; k < NFILTERS; k++)
      if (filt.on[k] && (re_matches(&filt.re[k], v->fnames[i]) ||
                         re_matches(&filt.re[k], p->string_table[p->function[i]->filename])))
        fmatch[i] |= (uint8_t)(1u << k);
  }
  for (size_t i = 0; i < p->n_mapping; i++)
    for (int k = 0; k < NFILTERS; k++)
      if (filt.on[k] && re_matches(&filt.re[k], p->string_table[p->mapping[i]->filename]))
        mmatch[i] |= (uint8_t)(1u << k);
  v->frames = xmalloc((nframes + 1) * sizeof *v->frames);
  v->ffunc = xmalloc((nframes + 1) * sizeof *v->ffunc);
  v->fline = xmalloc((nframes + 1) * sizeof *v->fline);
  v->fstart = xmalloc((p->n_location + 1) * sizeof *v->fstart);
  /* per location: 1 focused, 2 ignored (pprof's focusOrIgnore), 0 neither */
  uint8_t *lfocus = filt.any ? xcalloc(p->n_location + 1, 1) : NULL;
  bool matched[NFILTERS] = {false}; /* pprof's fm, im, hm, hnm: for its warnings */
  size_t f = 0, maxlines = 1;
  for (size_t i = 0; i < p->n_location; i++) {
    const Perftools__Profiles__Location *l = p->location[i];
    v->fstart[i] = (uint32_t)f;
    if (l->n_line > maxlines) maxlines = l->n_line;
    uint32_t mi = l->mapping_id ? idtab_get(maps.keys, maps.vals, maps.cap, l->mapping_id) : UINT32_MAX;
    uint8_t lm = mi != UINT32_MAX ? mmatch[mi] : 0, any = lm;
    for (size_t j = 0; j < l->n_line; j++) {
      uint32_t fi = l->line[j]->function_id
                        ? idtab_get(funcs.keys, funcs.vals, funcs.cap, l->line[j]->function_id)
                        : UINT32_MAX;
      if (fi != UINT32_MAX) any |= fmatch[fi];
    }
    if (filt.any) {
      if (filt.on[F_IGNORE] && (any & 1u << F_IGNORE)) lfocus[i] = 2, matched[F_IGNORE] = true;
      else if (!filt.on[F_FOCUS] || (any & 1u << F_FOCUS)) lfocus[i] = 1, matched[F_FOCUS] = true;
      if (any & 1u << F_HIDE) matched[F_HIDE] = true;
    }
    /* --hide drops the lines that match (all of them if the mapping does), --show keeps only
     * those (all if the mapping does; a location without lines never survives --show) */
    bool hide_all = filt.on[F_HIDE] && (any & 1u << F_HIDE) && (lm & 1u << F_HIDE);
    bool hide_some = filt.on[F_HIDE] && (any & 1u << F_HIDE);
    bool show_all = filt.on[F_SHOW] && (lm & 1u << F_SHOW);
    if (l->n_line == 0) {
      if (!hide_all && !filt.on[F_SHOW]) {
        v->ffunc[f] = UINT32_MAX;
        v->fline[f] = 0;
        v->frames[f++] = anonymous(v, &names, l, mi, true);
      }
      continue;
    }
    if (hide_all) continue;
    for (size_t j = 0; j < l->n_line; j++) {
      uint32_t fi = l->line[j]->function_id
                        ? idtab_get(funcs.keys, funcs.vals, funcs.cap, l->line[j]->function_id)
                        : UINT32_MAX;
      uint8_t m = fi != UINT32_MAX ? fmatch[fi] : 0;
      if (hide_some && (m & 1u << F_HIDE)) continue;
      if (filt.on[F_SHOW] && !show_all && fi != UINT32_MAX && !(m & 1u << F_SHOW)) continue;
      if (filt.on[F_SHOW]) matched[F_SHOW] = true; /* a line --show kept */
      v->ffunc[f] = fi;
      v->fline[f] = l->line[j]->line;
      v->frames[f++] = frame_name(v, &names, l, mi, fi, l->line[j]->line);
    }
  }
  v->fstart[p->n_location] = (uint32_t)f;
  v->nframes = f;
  size_t maxlocs = 0;
  for (size_t i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample *s = p->sample[i];
    if (s->n_location_id > maxlocs) maxlocs = s->n_location_id;
    int64_t x = s->value[v->vi];
    v->total += x < 0 ? -x : x;
  }
  v->maxdepth = maxlocs * maxlines + 1;
  /* the total (and so every percentage) is of the whole profile, filters or not (pprof's
   * default, -relative_percentages=false) */
  if (filt.any) filter_samples(v, lfocus, &locs);
  static const char *const what[NFILTERS] = {"--focus", "--ignore", "--hide", "--show"};
  for (int k = 0; k < NFILTERS; k++) /* pprof says "Focus expression matched no samples" */
    if (filt.on[k] && !matched[k] && !(k == F_HIDE && o->trim_wrappers && !o->hide))
      fprintf(view_diag ? view_diag : stderr, "palloc: %s: the %s expression matched nothing\n",
              v->path, what[k]);
  for (int k = 0; k < NFILTERS; k++)
    if (filt.on[k]) regfree(&filt.re[k]);
  free(lfocus);
  free(fmatch);
  free(mmatch);
  v->lkeys = locs.keys;
  v->lvals = locs.vals;
  v->lcap = locs.cap;
  free(maps.keys);
  free(maps.vals);
  free(funcs.keys);
  free(funcs.vals);
  free(names.slots);
  return 0;
}

size_t view_stack(const view_t *v, const Perftools__Profiles__Sample *s, uint32_t *out,
                  uint8_t *inl) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_location_id; i++) {
    uint32_t li = idtab_get(v->lkeys, v->lvals, v->lcap, s->location_id[i]);
    for (uint32_t f = v->fstart[li]; f < v->fstart[li + 1]; f++) {
      if (inl) inl[n] = f + 1 < v->fstart[li + 1];
      out[n++] = v->frames[f];
    }
  }
  return n;
}

void view_close(view_t *v) {
  if (v->p && v->nsample_all) v->p->n_sample = v->nsample_all;
  for (size_t i = 0; v->fnames && i < v->p->n_function; i++) free(v->fnames[i]), free(v->ffiles[i]);
  palloc_proto_free(v->p, NULL);
  free(v->fnames);
  free(v->ffiles);
  free(v->ffunc);
  free(v->fline);
  for (uint32_t i = 0; i < v->nnodes; i++) free(v->names[i]);
  free(v->names);
  free(v->frames);
  free(v->fstart);
  free(v->lkeys);
  free(v->lvals);
  memset(v, 0, sizeof *v);
}

/* pprof's graph weights: flat goes to the leaf frame, cum once to every distinct node of the
 * stack (recursion is not counted twice); samples whose value is 0 are skipped. */
void view_flat_cum(const view_t *v, int64_t *flat, int64_t *cum) {
  uint32_t *stack = xmalloc(v->maxdepth * sizeof *stack);
  uint32_t *stamp = xcalloc(v->nnodes, sizeof *stamp);
  memset(flat, 0, v->nnodes * sizeof *flat);
  memset(cum, 0, v->nnodes * sizeof *cum);
  for (size_t i = 0; i < v->p->n_sample; i++) {
    const Perftools__Profiles__Sample *s = v->p->sample[i];
    int64_t w = s->value[v->vi];
    if (w == 0) continue;
    size_t n = view_stack(v, s, stack, NULL);
    if (n == 0) continue;
    flat[stack[0]] += w;
    for (size_t k = 0; k < n; k++) {
      if (stamp[stack[k]] == (uint32_t)i + 1) continue;
      stamp[stack[k]] = (uint32_t)i + 1;
      cum[stack[k]] += w;
    }
  }
  free(stack);
  free(stamp);
}

void view_print_header(const view_t *v, FILE *out) {
  const Profile *p = v->p;
  if (p->n_mapping > 0 && p->string_table[p->mapping[0]->filename][0])
    fprintf(out, "File: %s\n", base_name(p->string_table[p->mapping[0]->filename]));
  for (size_t i = 0; i < p->n_comment; i++) /* pprof shows comments not starting with '#' */
    if (p->string_table[p->comment[i]][0] != '#') fprintf(out, "%s\n", p->string_table[p->comment[i]]);
  fprintf(out, "Type: %s\n", v->type);
  if (p->time_nanos != 0) {
    time_t t = (time_t)(p->time_nanos / 1000000000);
    struct tm tm;
    char buf[64];
    if (localtime_r(&t, &tm) && strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm))
      fprintf(out, "Time: %s\n", buf);
  }
  if (p->period_type && unit_is_bytes(p->string_table[p->period_type->unit])) {
    char buf[64];
    if (p->period <= 1)
      fprintf(out, "Sampling: every allocation (exact)\n");
    else
      fprintf(out, "Sampling: one sample every %s allocated on average (values are unsampled estimates)\n",
              unit_auto(buf, sizeof buf, p->period, "bytes"));
  } else if (p->period_type) {
    fprintf(out, "Period: %lld %s\n", (long long)p->period,
            p->string_table[p->period_type->unit]);
  }
}

int view_open_operand(view_t *v, const char *cmd, int argc, char **argv, const char *sample_index) {
  if (argc - optind != 1)
    return usage_error(cmd, argc == optind ? "missing PROFILE" : "one PROFILE expected");
  return view_open(v, argv[optind], sample_index);
}

const char view_options_help[] =
  "  --functions            one row per function (default)\n"
  "  --files                one row per source file\n"
  "  --lines                one row per source line (function file:line)\n"
  "  --addresses            one row per instruction address\n"
  "  --focus RE             only samples with a frame matching RE (function, file or binary)\n"
  "  --ignore RE            drop samples with a frame matching RE\n"
  "  --hide RE              remove frames matching RE from the stacks\n"
  "  --show RE              keep only frames matching RE in the stacks\n"
  "  --trim-wrappers        hide allocation wrappers (xmalloc, g_malloc, zmalloc, operator new\n"
  "                         ...): their bytes go to their callers\n"
  "  --no-demangle          C++ and Rust names as the profile has them (_ZN3foo3barEv)\n"
  "  --group-unnamed        frames without a symbol as one row per binary ([lib.so], as pprof)\n"
  "                         instead of one per address (lib.so+0x1a2b3)\n"
  "                         (RE: POSIX extended regular expression, matched anywhere, as pprof's\n"
  "                         options; percentages stay of the whole profile)\n";

int view_open_regex(view_t *v, regex_t *rx, const char *cmd, int argc, char **argv,
                    const view_opts_t *o) {
  if (argc - optind != 2) return usage_error(cmd, "REGEX and PROFILE expected");
  if (regcomp(rx, argv[optind], REG_EXTENDED | REG_NOSUB) != 0)
    return usage_error(cmd, "bad regular expression '%s'", argv[optind]);
  int rc = view_open_opts(v, argv[optind + 1], o);
  if (rc) regfree(rx);
  return rc;
}

int view_option(view_opts_t *o, const char *cmd, int c, const char *arg) {
  const char **re = NULL;
  switch (c) {
  case VOPT_FUNCTIONS: o->gran = VIEW_FUNCTIONS; return 0;
  case VOPT_FILES: o->gran = VIEW_FILES; return 0;
  case VOPT_LINES: o->gran = VIEW_LINES; return 0;
  case VOPT_ADDRESSES: o->gran = VIEW_ADDRESSES; return 0;
  case VOPT_NO_DEMANGLE: o->no_demangle = true; return 0;
  case VOPT_GROUP_UNNAMED: o->group_unnamed = true; return 0;
  case VOPT_TRIM_WRAPPERS: o->trim_wrappers = true; return 0;
  case VOPT_FOCUS: re = &o->focus; break;
  case VOPT_IGNORE: re = &o->ignore; break;
  case VOPT_HIDE: re = &o->hide; break;
  case VOPT_SHOW: re = &o->show; break;
  default: return -1;
  }
  regex_t r;
  char err[200];
  int e = regcomp(&r, arg, REG_EXTENDED | REG_NOSUB);
  if (e != 0) {
    regerror(e, &r, err, sizeof err);
    return usage_error(cmd, "bad regular expression '%s': %s", arg, err);
  }
  regfree(&r);
  *re = arg;
  return 0;
}

void view_print_filters(const view_t *v, FILE *out) {
  const view_opts_t *o = &v->opts;
  if (!o->focus && !o->ignore && !o->hide && !o->show && !o->trim_wrappers) return;
  fprintf(out, "Active filters:\n");
  if (o->focus) fprintf(out, "   focus=%s\n", o->focus);
  if (o->ignore) fprintf(out, "   ignore=%s\n", o->ignore);
  /* --trim-wrappers shows as the --hide expression it stands for (also valid for pprof) */
  if (o->hide && o->trim_wrappers) fprintf(out, "   hide=(%s)|%s\n", o->hide, view_wrappers_re);
  else if (o->hide || o->trim_wrappers) fprintf(out, "   hide=%s\n", o->hide ? o->hide : view_wrappers_re);
  if (o->show) fprintf(out, "   show=%s\n", o->show);
}

void print_help(const char *help) {
  const char *at = strstr(help, "@VIEW@");
  if (at == NULL) {
    fputs(help, stdout);
    return;
  }
  fwrite(help, 1, (size_t)(at - help), stdout);
  fputs(view_options_help, stdout);
  fputs(at + 6, stdout);
}
