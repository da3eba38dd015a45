/* cmd_folded.c - `palloc folded`: collapsed stacks, the input format of flamegraph.pl,
 * speedscope and inferno: one line per distinct stack, "outer;...;leaf VALUE", where VALUE is
 * the selected sample value (bytes or objects) of the samples with exactly that stack.
 *
 * Lines come from the call tree (tree.c), so equal stacks are merged; they are printed in
 * depth-first order with children sorted by name, which makes the output deterministic.
 * Semicolons inside names would split a frame, so they are written as ':' (and line breaks,
 * which would split the line, as spaces).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char help[] =
  "usage: palloc folded [--sample-index TYPE] PROFILE > stacks.folded\n"
  "\n"
  "Prints collapsed stacks, one line per distinct call stack: \"main;f;g 1048576\", outermost\n"
  "frame first, then the stack's value (bytes for *_space, objects for *_objects). Feed it to\n"
  "flamegraph.pl, inferno or speedscope.\n"
  "\n"
  "  -i, --sample-index T   alloc_objects, alloc_space, inuse_objects or inuse_space\n"
  "                         (default: the profile's default type, else inuse_space)\n"
  "  -h, --help             this help\n"
  "@VIEW@"
  "\n"
  "Exit status: 0 ok, 1 unreadable or not a heap profile, 2 usage error.\n";

static void put_name(const char *s, FILE *out) {
  for (; *s; s++) fputc(*s == ';' ? ':' : *s == '\n' || *s == '\r' ? ' ' : *s, out);
}

int cmd_folded(int argc, char **argv) {
  static const struct option opts[] = {
    {"sample-index", required_argument, 0, 'i'}, {"help", no_argument, 0, 'h'},
    VIEW_LONG_OPTIONS, {0, 0, 0, 0}};
  view_opts_t vo = {0};
  const char *si = NULL;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+i:h", opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (!parse_sample_index("folded", optarg)) return EXIT_USAGE;
      si = optarg;
      break;
    case 'h': print_help(help); return 0;
    default: {
      int r = view_option(&vo, "folded", c, optarg);
      if (r < 0) return usage_error("folded", "unknown option '%s'", argv[optind - 1]);
      if (r > 0) return r;
    }
    }
  }
  view_t v;
  vo.sample_index = si;
  if (argc - optind != 1)
    return usage_error("folded", argc == optind ? "missing PROFILE" : "one PROFILE expected");
  int rc = view_open_opts(&v, argv[optind], &vo);
  if (rc) return rc;
  tree_t t;
  tree_build(&t, &v);
  /* Iterative depth-first walk: an explicit stack of pending nodes and the current path. */
  uint32_t *pending = xmalloc(t.len * sizeof *pending), *kids = xmalloc(t.len * sizeof *kids);
  uint32_t *path = xmalloc((v.maxdepth + 1) * sizeof *path);
  uint32_t *depth = xmalloc(t.len * sizeof *depth);
  size_t npending = 0, npath = 0;
  size_t nk = tree_sorted_children(&t, &v, 0, kids);
  for (size_t k = nk; k-- > 0;) pending[npending] = kids[k], depth[kids[k]] = 0, npending++;
  while (npending > 0) {
    uint32_t at = pending[--npending];
    npath = depth[at];
    path[npath++] = at;
    if (t.n[at].self > 0) {
      for (size_t k = 0; k < npath; k++) {
        if (k) fputc(';', stdout);
        put_name(v.names[t.n[path[k]].name], stdout);
      }
      printf(" %lld\n", (long long)t.n[at].self);
    }
    nk = tree_sorted_children(&t, &v, at, kids);
    for (size_t k = nk; k-- > 0;) pending[npending] = kids[k], depth[kids[k]] = (uint32_t)npath, npending++;
  }
  free(pending);
  free(kids);
  free(path);
  free(depth);
  tree_free(&t);
  view_close(&v);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "palloc folded: write error\n");
    return EXIT_CHECK;
  }
  return 0;
}
