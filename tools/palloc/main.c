/* main.c - `palloc`, git-style: the first argument names a subcommand (one file each).
 *
 * Exit status everywhere: 0 success, 1 a failed check (unreadable profile, not a heap profile,
 * a diff over its limit), 2 a usage error. `palloc run` instead passes the program's own status
 * through.
 */
#include <stdio.h>
#include <string.h>
#include "cli.h"

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *what;
} cmds[] = {
  {"run", cmd_run, "run a program with libpalloc preloaded and write its heap profile"},
  {"top", cmd_top, "the functions that allocated the most (pprof -top)"},
  {"peek", cmd_peek, "callers and callees of functions matching a regex (pprof -peek)"},
  {"list", cmd_list, "source lines of functions matching a regex, with their bytes (pprof -list)"},
  {"diff", cmd_diff, "what grew between two profiles, largest growth first"},
  {"flame", cmd_flame, "an interactive SVG flame graph"},
  {"folded", cmd_folded, "collapsed stacks (\"a;b;c bytes\") for other flame graph tools"},
  {"symbolize", cmd_symbolize, "fill in function names, files and lines with libdw"},
  {"options", cmd_options, "the PALLOC_* variables, and what libpalloc makes of them here"},
};

static void usage(FILE *out) {
  fprintf(out, "usage: palloc COMMAND [OPTIONS] ARGS...\n\n"
               "Reads and produces pprof heap profiles (palloc's, Go's, any profile.proto).\n\n"
               "commands:\n");
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    fprintf(out, "  %-10s %s\n", cmds[i].name, cmds[i].what);
  fprintf(out, "\ntop, diff, flame and folded also read a live process's profile from its endpoint\n"
               "(PALLOC_HTTP, or a Go program's net/http/pprof): http://HOST:PORT/debug/pprof/heap,\n"
               "and --seconds N asks it for what the next N seconds allocated (a delta profile);\n"
               "--timeout N bounds the whole fetch (default: the seconds asked for and a minute).\n");
  fprintf(out, "\n'palloc COMMAND --help' describes a command. Exit status: 0 ok, 1 failed check\n"
               "or unreadable profile, 2 usage error ('run' returns the program's status).\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "palloc: missing command: run, top, diff, flame, folded, symbolize or options "
                    "(see 'palloc --help')\n");
    return EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(name, "help") == 0) {
    if (argc < 3) {
      usage(stdout);
      return 0;
    }
    name = argv[2];
    char *hargv[] = {argv[2], "--help", NULL};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
      if (strcmp(cmds[i].name, name) == 0) return cmds[i].fn(2, hargv);
  }
  /* top, diff, flame, folded read PROFILE operands that may be URLs of a live process
   * (fetch.c): --seconds N asks the endpoint for a delta profile, --timeout N bounds the fetch. */
  if (strcmp(name, "top") == 0 || strcmp(name, "diff") == 0 || strcmp(name, "flame") == 0 ||
      strcmp(name, "folded") == 0) {
    int sub_argc = argc - 1, rc = fetch_take_seconds(&sub_argc, argv + 1);
    if (rc != 0) return rc;
    argc = sub_argc + 1;
  }
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (strcmp(cmds[i].name, name) == 0) return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "palloc: unknown command '%s' (see 'palloc --help')\n", name);
  return EXIT_USAGE;
}
