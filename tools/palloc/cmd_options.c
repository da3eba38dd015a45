/* cmd_options.c - `palloc options`: libpalloc's PALLOC_* variables, from its own table.
 *
 * Without arguments: each variable, its kind and default, and what libpalloc would make of its
 * value in this environment (the same parser and message: alloc/options.c is compiled in).
 * --markdown: the README's table, generated (tests/alloc/check_options.py compares them).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "options.h"
#include "cli.h"

static const char help[] =
  "usage: palloc options [--markdown]\n\n"
  "Lists the PALLOC_* variables libpalloc (and gcsim) read at start-up: kind, default, and the\n"
  "verdict on this environment's value, as libpalloc would print it. Exit status 1 if a value\n"
  "set here is refused.\n\n"
  "  --markdown   print README.md's table of the variables instead\n";

static const char *kind_name(palloc_option_kind_t k) {
  switch (k) {
  case PALLOC_KIND_SIZE: return "size";
  case PALLOC_KIND_COUNT: return "count";
  case PALLOC_KIND_SEED: return "seed";
  case PALLOC_KIND_ENUM: return "enum";
  case PALLOC_KIND_BOOL: return "bool";
  case PALLOC_KIND_PERCENT: return "percent";
  case PALLOC_KIND_SIGNAL: return "signal";
  case PALLOC_KIND_PATH: return "path";
  case PALLOC_KIND_FACTOR: return "factor";
  case PALLOC_KIND_DURATION: return "duration";
  case PALLOC_KIND_SECONDS: return "seconds";
  }
  return "?";
}

/* The default column without markdown's backquotes. */
static void plain(const char *s, char *out, size_t n) {
  size_t o = 0;
  for (; *s && o + 1 < n; s++)
    if (*s != '`') out[o++] = *s;
  out[o] = 0;
}

int cmd_options(int argc, char **argv) {
  static const struct option opts[] = {
    {"markdown", no_argument, 0, 'm'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  bool markdown = false;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "mh", opts, NULL)) != -1) {
    switch (c) {
    case 'm': markdown = true; break;
    case 'h': fputs(help, stdout); return 0;
    default: return usage_error("options", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return usage_error("options", "no arguments expected, not '%s'", argv[optind]);
  if (markdown) {
    printf("| Variable | Meaning | Default |\n|---|---|---|\n");
    for (int i = 0; i < PALLOC_OPT_COUNT; i++)
      printf("| `%s` | %s | %s |\n", palloc_options[i].name, palloc_options[i].help,
             palloc_options[i].dflt_text);
    printf("\n%s\n", palloc_options_rules);
    return 0;
  }
  int bad = 0;
  printf("%-24s %-8s %-16s %s\n", "VARIABLE", "KIND", "DEFAULT", "THIS ENVIRONMENT");
  for (int i = 0; i < PALLOC_OPT_COUNT; i++) {
    const palloc_option_desc_t *o = &palloc_options[i];
    char dflt[64], verdict[512];
    plain(o->dflt_text, dflt, sizeof dflt);
    const char *s = getenv(o->name);
    int64_t v;
    palloc_option_err_t err = s && *s ? palloc_option_parse((palloc_option_t)i, s, &v) : 0;
    if (s == NULL || *s == 0)
      snprintf(verdict, sizeof verdict, "unset");
    else if (err == PALLOC_OPT_OK)
      snprintf(verdict, sizeof verdict, "%s: ok", s);
    else {
      size_t n = palloc_option_message((palloc_option_t)i, s, err, verdict, sizeof verdict);
      verdict[n > 0 ? n - 1 : 0] = 0; /* the newline */
      bad++;
    }
    printf("%-24s %-8s %-16s %s\n", o->name, kind_name(o->kind), dflt, verdict);
  }
  return bad ? EXIT_CHECK : 0;
}
