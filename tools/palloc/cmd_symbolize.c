/* cmd_symbolize.c - `palloc symbolize IN OUT`: names, files and lines for an unsymbolized profile.
 *
 * For profiles written with PALLOC_SYMBOLIZE=none (or any profile with bare addresses): each
 * location without lines is looked up with libdw in the binary its mapping names (proto/dwsym.h
 * says how an address is found in a binary that need not be loaded where it ran).
 * A mapping whose binary is missing, or whose build id differs from the one recorded, is left
 * as it is with a one-line warning: wrong names are worse than none.
 *
 * New functions are deduplicated by (name, file) and get ids above the existing ones; new
 * strings are appended to the string table (existing indexes never move). has_functions,
 * has_filenames and has_line_numbers are set on the mappings that got them, as pprof expects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "dwsym.h"

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Mapping Mapping;
typedef Perftools__Profiles__Function Function;
typedef Perftools__Profiles__Line Line;

static const char help[] =
  "usage: palloc symbolize IN OUT\n"
  "\n"
  "Reads profile IN, fills in function names, source files and line numbers for the\n"
  "addresses that have none (profiles written with PALLOC_SYMBOLIZE=none), looking them up\n"
  "with libdw in the binaries named by the profile's mappings (they must still be there and\n"
  "unchanged: the build id is checked), and writes the result to OUT (gzip). A stripped\n"
  "binary's separate debug file is found as gdb finds it: by build id under /usr/lib/debug\n"
  "(Debian's -dbgsym packages) or by its .gnu_debuglink name; PALLOC_DEBUG_DIRS adds\n"
  "directories (':'-separated) searched first. Compressed debug sections are read too.\n"
  "\n"
  "Exit status: 0 written, 1 unreadable IN or OUT not writable, 2 usage error.\n";

/* (name, file) string-index pair -> function id */
typedef struct {
  int64_t *name, *file;
  uint64_t *id;
  size_t cap, len;
} fmap_t;

static uint64_t *fmap_slot(fmap_t *m, int64_t name, int64_t file) {
  size_t i = (size_t)(((uint64_t)name * 0x9e3779b97f4a7c15ull) ^ (uint64_t)file * 0xc2b2ae3d27d4eb4full) & (m->cap - 1);
  while (m->id[i] != 0 && (m->name[i] != name || m->file[i] != file)) i = (i + 1) & (m->cap - 1);
  m->name[i] = name;
  m->file[i] = file;
  return &m->id[i];
}

typedef struct {
  Profile *p;
  palloc_strtab_t st;    /* new strings; index k >= 1 becomes n_orig + k - 1 */
  size_t n_orig;
  fmap_t fm;
  uint64_t next_fid;
  size_t done, missing;
} sym_t;

static int64_t str_index(sym_t *S, const char *s) {
  if (s == NULL || *s == 0) return 0;
  int64_t k = palloc_strtab_intern(&S->st, s);
  if (k == 0) {
    fprintf(stderr, "palloc: out of memory\n");
    exit(EXIT_CHECK);
  }
  return (int64_t)S->n_orig + k - 1;
}

static uint64_t function_for(sym_t *S, const char *name, const char *file) {
  int64_t ni = str_index(S, name), fi = str_index(S, file);
  if (S->fm.len * 2 >= S->fm.cap) {
    fmap_t old = S->fm;
    S->fm.cap = old.cap ? old.cap * 2 : 1024;
    S->fm.name = xcalloc(S->fm.cap, sizeof(int64_t));
    S->fm.file = xcalloc(S->fm.cap, sizeof(int64_t));
    S->fm.id = xcalloc(S->fm.cap, sizeof(uint64_t));
    for (size_t i = 0; i < old.cap; i++)
      if (old.id[i]) *fmap_slot(&S->fm, old.name[i], old.file[i]) = old.id[i];
    free(old.name);
    free(old.file);
    free(old.id);
  }
  uint64_t *slot = fmap_slot(&S->fm, ni, fi);
  if (*slot) return *slot;
  Profile *p = S->p;
  Function *f = xmalloc(sizeof *f);
  perftools__profiles__function__init(f);
  f->id = S->next_fid++;
  f->name = f->system_name = ni;
  f->filename = fi;
  p->function = xrealloc(p->function, (p->n_function + 1) * sizeof *p->function);
  p->function[p->n_function++] = f;
  S->fm.len++;
  return *slot = f->id;
}

/* Symbolizes the locations of mapping m; warns and returns if its binary cannot be used. */
static void symbolize_mapping(sym_t *S, Mapping *m) {
  Profile *p = S->p;
  const char *path = p->string_table[m->filename];
  size_t unnamed = 0;
  for (size_t i = 0; i < p->n_location; i++)
    if (p->location[i]->mapping_id == m->id && p->location[i]->n_line == 0) unnamed++;
  if (unnamed == 0) return;
  char why[PALLOC_PROTO_ERRLEN];
  palloc_dwsym_t *d = palloc_dwsym_open(p, m, why, sizeof why);
  if (d == NULL) {
    if (path[0] == '/')
      fprintf(stderr, "palloc: %s: %s; %zu addresses left\n", path, why, unnamed);
    else
      fprintf(stderr, "palloc: mapping %s: %s; %zu addresses left\n",
              path[0] ? path : "(anonymous)", why, unnamed);
    S->missing += unnamed;
    return;
  }
  bool any_fn = false, any_file = false, any_line = false;
  for (size_t i = 0; i < p->n_location; i++) {
    Location *l = p->location[i];
    if (l->mapping_id != m->id || l->n_line != 0) continue;
    palloc_dwsym_frame_t fr;
    if (!palloc_dwsym_lookup(d, l->address, &fr) || fr.func == NULL) {
      S->missing++;
      continue;
    }
    Line *ln = xmalloc(sizeof *ln);
    perftools__profiles__line__init(ln);
    /* "__libc_start_main@@GLIBC_2.34" (a debug file's .symtab) is written unversioned, as
     * libpalloc writes it */
    char unv[4096];
    const char *at = fr.func ? strstr(fr.func, "@") : NULL;
    if (at && at != fr.func && (size_t)(at - fr.func) < sizeof unv && strchr(at, ' ') == NULL &&
        strchr(at, '(') == NULL) {
      memcpy(unv, fr.func, (size_t)(at - fr.func));
      unv[at - fr.func] = 0;
      fr.func = unv;
    }
    ln->function_id = function_for(S, fr.func, fr.file);
    ln->line = fr.line;
    l->line = xmalloc(sizeof *l->line);
    l->line[0] = ln;
    l->n_line = 1;
    any_fn = true;
    any_file |= fr.file != NULL;
    any_line |= fr.line > 0;
    S->done++;
  }
  m->has_functions |= any_fn;
  m->has_filenames |= any_file;
  m->has_line_numbers |= any_line;
  palloc_dwsym_close(d);
}

int cmd_symbolize(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    fputs(help, stdout);
    return 0;
  }
  for (int i = 1; i < argc; i++)
    if (argv[i][0] == '-' && argv[i][1]) return usage_error("symbolize", "unknown option '%s'", argv[i]);
  if (argc != 3) return usage_error("symbolize", "two files expected: IN OUT");
  palloc_dwsym_set_debug_dirs(getenv("PALLOC_DEBUG_DIRS"));
  char err[PALLOC_PROTO_ERRLEN];
  Profile *p = palloc_proto_read_file(argv[1], NULL, err);
  if (p == NULL) {
    fprintf(stderr, "palloc: %s: %s\n", argv[1], err);
    return EXIT_CHECK;
  }
  sym_t S = {.p = p, .n_orig = p->n_string_table, .next_fid = 1};
  palloc_strtab_init(&S.st, NULL);
  for (size_t i = 0; i < p->n_function; i++)
    if (p->function[i]->id >= S.next_fid) S.next_fid = p->function[i]->id + 1;
  for (size_t i = 0; i < p->n_mapping; i++) symbolize_mapping(&S, p->mapping[i]);
  size_t unmapped = 0;
  for (size_t i = 0; i < p->n_location; i++)
    if (p->location[i]->n_line == 0 && p->location[i]->mapping_id == 0) unmapped++;
  if (S.st.n > 1) {
    p->string_table = xrealloc(p->string_table, (S.n_orig + S.st.n - 1) * sizeof *p->string_table);
    for (size_t k = 1; k < S.st.n; k++) p->string_table[S.n_orig + k - 1] = xstrdup(S.st.strs[k]);
    p->n_string_table = S.n_orig + S.st.n - 1;
  }
  int rc = 0;
  if (palloc_proto_write_path(p, argv[2], NULL, err) < 0) {
    fprintf(stderr, "palloc: %s: %s\n", argv[2], err);
    rc = EXIT_CHECK;
  } else {
    fprintf(stderr, "palloc: %s: symbolized %zu addresses, %zu without symbols\n", argv[2],
            S.done, S.missing + unmapped);
  }
  palloc_strtab_destroy(&S.st);
  free(S.fm.name);
  free(S.fm.file);
  free(S.fm.id);
  palloc_proto_free(p, NULL);
  return rc;
}
