/* cmd_flame.c - `palloc flame`: a self-contained interactive SVG flame graph.
 *
 * Layout: the call tree (tree.c), root at the bottom, children left to right by name, each
 * frame as wide as its total value. Frames narrower than MIN_PX at full zoom are left out with
 * their subtrees (they could not be seen; their value is still in their parent's width), which
 * bounds the file size for profiles with many stacks. Positions are written as fractions of the
 * root so that flame.js (embedded, see embed.py) can zoom without the tree; it also fits the
 * labels with the browser's text measurement. Each frame also has a <title>, so even a viewer
 * without scripts shows function, value and percent on hover.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "flame_js.h"

#define WIDTH 1200.0
#define PAD 10.0
#define FRAME_H 17.0
#define TOP 48.0
#define MIN_PX 0.25

static const char help[] =
  "usage: palloc flame [--sample-index TYPE] [--title TEXT] [--icicle] [--base BASE]\n"
  "                    [VIEW OPTIONS] PROFILE > flame.svg\n"
  "\n"
  "Writes an interactive flame graph (SVG, self-contained: open it in a browser). The bottom\n"
  "bar is the whole profile; each frame above is a function called from the one below, as wide\n"
  "as the memory allocated through it. The graph fills the window's width and follows its\n"
  "resizing. Hover shows the function's full name, bytes and percent of the total; click zooms\n"
  "into a frame, click the bottom bar or \"Reset zoom\" to zoom out. The search box (a\n"
  "regular expression) paints the matching frames magenta and shows their share of the total.\n"
  "\"Icicle\" turns it upside down: the root on top, callees below (who allocates through a\n"
  "wrapper). Long C++ names are shortened in labels (no parameters, no template arguments).\n"
  "Open flame.svg#zoom=NAME, #search=REGEX or #icicle to start that way.\n"
  "\n"
  "  -i, --sample-index T   alloc_objects, alloc_space, inuse_objects or inuse_space\n"
  "                         (default: the profile's default type, else inuse_space)\n"
  "  -t, --title TEXT       the title line (default: the profile's file name and type)\n"
  "  -b, --base BASE        a diff against profile BASE: the graph of PROFILE, each frame red\n"
  "                         as it grew since BASE, blue as it shrank (deeper = more), grey if\n"
  "                         unchanged; hover shows the change\n"
  "      --icicle           start in icicle mode (root at the top)\n"
  "  -h, --help             this help\n"
  "@VIEW@"
  "\n"
  "Exit status: 0 ok, 1 unreadable or not a heap profile, 2 usage error.\n";

static void xml_text(FILE *out, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", out); break;
    case '>': fputs("&gt;", out); break;
    case '&': fputs("&amp;", out); break;
    case '"': fputs("&quot;", out); break;
    case '\'': fputs("&apos;", out); break;
    default:
      /* control characters are not allowed in XML 1.0 */
      fputc((unsigned char)*s < 0x20 ? '?' : *s, out);
    }
  }
}

/* A diff's colour: red as the frame grew (relative to the largest change of the graph), blue
 * as it shrank, light grey unchanged. */
static void diff_colour(int64_t delta, double maxabs, char *buf, size_t n) {
  if (delta == 0 || maxabs <= 0) {
    snprintf(buf, n, "hsl(0,0%%,86%%)");
    return;
  }
  double i = (double)(delta < 0 ? -delta : delta) / maxabs;
  if (i > 1) i = 1;
  snprintf(buf, n, "hsl(%d,85%%,%.0f%%)", delta > 0 ? 0 : 218, 92.0 - 44.0 * i);
}

/* A warm colour from the name, so a function keeps its colour across graphs. */
static void colour(const char *name, char *buf, size_t n) {
  uint32_t h = 2166136261u;
  for (const char *s = name; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  snprintf(buf, n, "hsl(%u,%u%%,%u%%)", h % 45, 70 + (h >> 8) % 25, 52 + (h >> 16) % 14);
}

typedef struct {
  const view_t *v;
  const tree_t *t;
  const int64_t *btotal; /* --base: each node's total in the base profile, else NULL */
  double maxdelta;
  FILE *out;
  uint32_t *kids;   /* scratch for sorted children, one level at a time */
  double root;
  int maxdepth;
  size_t drawn;
} flame_t;

/* Pass 1 computes the depth of the drawn frames; pass 2 writes them. Both walk iteratively. */
typedef struct { uint32_t node; double x; int depth; } item_t;

static void walk(flame_t *F, bool emit, double height) {
  const tree_t *t = F->t;
  item_t *pending = xmalloc(t->len * sizeof *pending);
  size_t n = 0;
  pending[n++] = (item_t){0, 0.0, 0};
  while (n > 0) {
    item_t it = pending[--n];
    const tnode_t *nd = &t->n[it.node];
    double w = (double)nd->total / F->root;
    if (it.depth > F->maxdepth) F->maxdepth = it.depth;
    if (emit) {
      const char *name = it.node == 0 ? "all" : F->v->names[nd->name];
      char col[48], a[64], b[64];
      if (F->btotal) diff_colour(nd->total - F->btotal[it.node], F->maxdelta, col, sizeof col);
      else colour(name, col, sizeof col);
      percent(b, sizeof b, nd->total, (int64_t)F->root);
      double y = height - PAD - (it.depth + 1) * FRAME_H;
      double px = PAD + it.x * (WIDTH - 2 * PAD), pw = w * (WIDTH - 2 * PAD);
      fprintf(F->out, "<g class=\"f\" data-d=\"%d\" data-x=\"%.12g\" data-w=\"%.12g\" data-v=\"%lld\" "
              "data-s=\"%lld\" ", it.depth, it.x, w, (long long)nd->total, (long long)nd->self);
      if (F->btotal) fprintf(F->out, "data-b=\"%lld\" ", (long long)F->btotal[it.node]);
      fprintf(F->out, "data-n=\"");
      xml_text(F->out, name);
      fprintf(F->out, "\"><title>");
      xml_text(F->out, name);
      if (F->btotal) {
        char c[64];
        int64_t d = nd->total - F->btotal[it.node];
        unit_auto(c, sizeof c, d, F->v->unit);
        fprintf(F->out, " (%s%s since base)", d > 0 ? "+" : "", c);
      }
      fprintf(F->out, " (%s, %s)</title><rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
              "rx=\"2\" fill=\"%s\"/><text x=\"%.2f\" y=\"%.1f\"></text></g>\n",
              unit_auto(a, sizeof a, nd->total, F->v->unit),
              b + strspn(b, " "), px, y,
              pw > 0.5 ? pw - 0.5 : pw, FRAME_H - 1, col, px + 3, y + FRAME_H - 5);
      F->drawn++;
    }
    size_t k = tree_sorted_children(t, F->v, it.node, F->kids);
    double x = it.x;
    size_t first = n;
    for (size_t j = 0; j < k; j++) {
      double cw = (double)t->n[F->kids[j]].total / F->root;
      if (cw * (WIDTH - 2 * PAD) >= MIN_PX) pending[n++] = (item_t){F->kids[j], x, it.depth + 1};
      x += cw;
    }
    /* reversed, so that the left-most child is popped (and emitted) first */
    for (size_t i = first, j = n; i + 1 < j; i++, j--) {
      item_t tmp = pending[i];
      pending[i] = pending[j - 1];
      pending[j - 1] = tmp;
    }
  }
  free(pending);
}

/* hash of the base view's names: string -> base node id */
static uint32_t *name_index(const view_t *b, size_t *cap_out) {
  size_t cap = 16;
  while (cap < (size_t)b->nnodes * 2 + 2) cap *= 2;
  uint32_t *slots = xcalloc(cap, sizeof *slots);
  for (uint32_t k = 0; k < b->nnodes; k++) {
    uint64_t h = 1469598103934665603ull;
    for (const char *c = b->names[k]; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    size_t i = h & (cap - 1);
    while (slots[i]) i = (i + 1) & (cap - 1);
    slots[i] = k + 1;
  }
  *cap_out = cap;
  return slots;
}

static uint32_t name_lookup(const view_t *b, const uint32_t *slots, size_t cap, const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (const char *c = s; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
  for (size_t i = h & (cap - 1); slots[i]; i = (i + 1) & (cap - 1))
    if (strcmp(b->names[slots[i] - 1], s) == 0) return slots[i] - 1;
  return UINT32_MAX;
}

/* For every node of t (the new profile's tree), the total of the same stack (same names from
 * the root) in bt, the base profile's tree; 0 where the base has no such stack. Parents come
 * before their children in t (tree.c appends), so one pass suffices. */
static int64_t *base_totals(const tree_t *t, const view_t *v, const tree_t *bt, const view_t *b) {
  size_t cap;
  uint32_t *slots = name_index(b, &cap);
  uint32_t *map = xmalloc(t->len * sizeof *map);
  int64_t *out = xcalloc(t->len, sizeof *out);
  map[0] = 0;
  out[0] = bt->n[0].total;
  for (size_t k = 1; k < t->len; k++) {
    uint32_t bp = map[t->n[k].parent];
    uint32_t bn = bp == UINT32_MAX ? UINT32_MAX : name_lookup(b, slots, cap, v->names[t->n[k].name]);
    map[k] = bn == UINT32_MAX ? UINT32_MAX : tree_find(bt, bp, bn);
    out[k] = map[k] == UINT32_MAX ? 0 : bt->n[map[k]].total;
  }
  free(slots);
  free(map);
  return out;
}

int cmd_flame(int argc, char **argv) {
  static const struct option opts[] = {
    {"sample-index", required_argument, 0, 'i'}, {"title", required_argument, 0, 't'},
    {"base", required_argument, 0, 'b'}, {"icicle", no_argument, 0, 'I'},
    {"help", no_argument, 0, 'h'}, VIEW_LONG_OPTIONS, {0, 0, 0, 0}};
  view_opts_t vo = {0};
  const char *si = NULL, *title = NULL, *base_path = NULL;
  bool icicle = false;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+i:t:b:h", opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (!parse_sample_index("flame", optarg)) return EXIT_USAGE;
      si = optarg;
      break;
    case 't': title = optarg; break;
    case 'b': base_path = optarg; break;
    case 'I': icicle = true; break;
    case 'h': print_help(help); return 0;
    default: {
      int r = view_option(&vo, "flame", c, optarg);
      if (r < 0) return usage_error("flame", "unknown option '%s'", argv[optind - 1]);
      if (r > 0) return r;
    }
    }
  }
  view_t v, bv;
  vo.sample_index = si;
  if (argc - optind != 1)
    return usage_error("flame", argc == optind ? "missing PROFILE" : "one PROFILE expected");
  int rc = view_open_opts(&v, argv[optind], &vo);
  if (rc) return rc;
  tree_t t, bt;
  tree_build(&t, &v);
  flame_t F = {.v = &v, .t = &t, .out = stdout, .root = t.n[0].total > 0 ? (double)t.n[0].total : 1.0};
  int64_t *btotal = NULL;
  if (base_path) {
    /* the base is read with the same sample type as PROFILE, whatever its own default */
    view_opts_t bo = vo;
    bo.sample_index = v.type;
    if ((rc = view_open_opts(&bv, base_path, &bo)) != 0) {
      tree_free(&t);
      view_close(&v);
      return rc;
    }
    tree_build(&bt, &bv);
    btotal = base_totals(&t, &v, &bt, &bv);
    for (size_t k = 1; k < t.len; k++) {
      double d = (double)(t.n[k].total - btotal[k]);
      if (d < 0) d = -d;
      if (d > F.maxdelta) F.maxdelta = d;
    }
    F.btotal = btotal;
  }
  F.kids = xmalloc(t.len * sizeof *F.kids);
  walk(&F, false, 0);
  double height = TOP + (F.maxdepth + 1) * FRAME_H + 2 * PAD;
  char tot[64], btot[64];
  const char *unit = unit_is_bytes(v.unit) ? "bytes" : v.unit;
  /* width 100%: the script lays the frames out for the window's width (x and width written
   * below are for WIDTH, what a viewer without scripts shows) */
  printf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"100%%\" height=\"%.0f\" "
         "data-plot-x=\"%.0f\" data-plot-width=\"%.0f\" data-frame-height=\"%.0f\" data-top=\"%.0f\" "
         "data-icicle=\"%d\" data-diff=\"%d\" data-total=\"%lld\" data-unit=\"",
         height, PAD, WIDTH - 2 * PAD, FRAME_H, TOP, icicle, btotal != NULL, (long long)t.n[0].total);
  xml_text(stdout, unit);
  printf("\">\n<style>\n"
         "text { font-family: 'DejaVu Sans Mono', 'Liberation Mono', monospace; font-size: 11px; "
         "fill: #111; pointer-events: none; }\n"
         "g.f { cursor: pointer; } g.f:hover rect { stroke: #222; stroke-width: 0.8; }\n"
         "#title { font-size: 15px; font-weight: bold; } .button { fill: #0645ad; cursor: pointer; "
         "pointer-events: auto; font-size: 13px; }\n"
         "input { font: 12px 'DejaVu Sans Mono', monospace; width: 236px; height: 18px; "
         "box-sizing: border-box; }\n</style>\n"
         "<rect x=\"0\" y=\"0\" width=\"100%%\" height=\"100%%\" fill=\"#fdfaf3\"/>\n"
         "<text id=\"title\" x=\"%.0f\" y=\"20\">", PAD);
  if (title) {
    xml_text(stdout, title);
  } else {
    const char *b = strrchr(v.path, '/');
    xml_text(stdout, b ? b + 1 : v.path);
    printf(" - %s", v.type);
    if (base_path) {
      printf(" since ");
      b = strrchr(base_path, '/');
      xml_text(stdout, b ? b + 1 : base_path);
    }
  }
  printf("</text>\n<text id=\"reset\" class=\"button\" x=\"%.0f\" y=\"20\" text-anchor=\"end\" "
         "style=\"display:none\">Reset zoom</text>\n"
         "<text id=\"flip\" class=\"button\" x=\"%.0f\" y=\"20\" text-anchor=\"end\">%s</text>\n"
         "<foreignObject id=\"searchbox\" x=\"%.0f\" y=\"5\" width=\"240\" height=\"22\">"
         "<input xmlns=\"http://www.w3.org/1999/xhtml\" id=\"search\" type=\"search\" "
         "placeholder=\"search (regex)\"/></foreignObject>\n"
         "<text id=\"status\" x=\"%.0f\" y=\"40\">total %s (%s)",
         WIDTH - PAD, WIDTH - PAD - 95, icicle ? "Flame" : "Icicle", WIDTH - PAD - 395, PAD,
         unit_auto(tot, sizeof tot, t.n[0].total, v.unit), v.type);
  if (btotal)
    printf(", base %s: red grew, blue shrank", unit_auto(btot, sizeof btot, btotal[0], v.unit));
  printf("; hover for details, click to zoom</text>\n");
  walk(&F, true, height);
  printf("<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n</svg>\n", flame_js);
  free(F.kids);
  tree_free(&t);
  view_close(&v);
  if (btotal) {
    free(btotal);
    tree_free(&bt);
    view_close(&bv);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "palloc flame: write error\n");
    return EXIT_CHECK;
  }
  return 0;
}
