/* test_options.c - alloc/options.c: every kind's parser, the size rules, the messages, the one
 * %p expander, and the environment read once.
 *
 * Without arguments: the parsers and messages (pure). With "env": run with the variables that
 * tests/alloc/meson.build sets, some bad; a child checks the values taken (from several threads)
 * and that a later setenv changes nothing, and the parent counts its palloc: lines: one per bad
 * value.
 */
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../check.h"
#include "options.h"
#include "palloc_proto.h"

extern char **environ;

static int64_t v;
#define OK(id, s) (palloc_option_parse(id, s, &v) == PALLOC_OPT_OK)
#define ERR(id, s) palloc_option_parse(id, s, &v)

static void test_sizes(void) {
  static const struct { const char *s; int64_t want; } good[] = {
    {"0", 0}, {"524288", 524288}, {"77B", 77}, {"512KiB", 512 << 10}, {"1MiB", 1 << 20},
    {"2GiB", (int64_t)2 << 30}, {"3TiB", (int64_t)3 << 40}, {"512K", 512 << 10},
    {"512k", 512 << 10}, {"64m", 64 << 20}, {"1G", 1 << 30}, {"1t", (int64_t)1 << 40},
    {"9223372036854775807", INT64_MAX}, {"8388607TiB", (int64_t)8388607 << 40},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    CHECK(palloc_parse_size(good[i].s) == good[i].want, "'%s' -> %lld", good[i].s,
          (long long)palloc_parse_size(good[i].s));
  /* Go's units exactly; no decimal units, sign, space, fraction or bare unit */
  static const char *bad[] = {"", "abc", "KiB", "1kib", "1MIB", "1Mib", "1KB", "1kb", "4 kb",
                              "1GB", "1TB", "1MB", "1 MiB", " 512", "512 ", "+512", "-5",
                              "1.5MiB", "12XB", "1bb", "1b", "0x10", "1KiBB"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(palloc_parse_size(bad[i]) == -1, "'%s' accepted", bad[i]);
  CHECK(palloc_parse_size("9223372036854775808") == -1 && palloc_parse_size("8388608TiB") == -1 &&
        palloc_parse_size("99999999999999999999K") == -1, "overflow");
  CHECK(ERR(PALLOC_OPT_SAMPLE_RATE, "99999999999999999999") == PALLOC_OPT_RANGE &&
        ERR(PALLOC_OPT_SAMPLE_RATE, "9999999TiB") == PALLOC_OPT_RANGE &&
        ERR(PALLOC_OPT_SAMPLE_RATE, "3EiB") == PALLOC_OPT_SYNTAX, "too large is a range error");
  /* every size variable uses the one parser; "off" only where the table allows it */
  CHECK(OK(PALLOC_OPT_MEMLIMIT, "Off") && v == INT64_MAX, "MEMLIMIT=off");
  CHECK(!OK(PALLOC_OPT_SAMPLE_RATE, "off") && !OK(PALLOC_OPT_TRACE_MARKRATE, "off"), "off refused");
  CHECK(OK(PALLOC_OPT_TRACE_MARKRATE, "800MiB") && v == (int64_t)800 << 20, "mark rate");
  CHECK(!OK(PALLOC_OPT_TRACE_MARKRATE, "0"), "mark rate 0 is below its bound");
  CHECK(OK(PALLOC_OPT_SAMPLE_RATE, "0") && v == 0 && OK(PALLOC_OPT_SAMPLE_RATE, "1") && v == 1,
        "rate 0 (off) and 1 (all)");
}

static void test_kinds(void) {
  CHECK(OK(PALLOC_OPT_STACK_DEPTH, "128") && v == 128 && OK(PALLOC_OPT_STACK_DEPTH, "1"), "depth");
  CHECK(ERR(PALLOC_OPT_STACK_DEPTH, "129") == PALLOC_OPT_RANGE &&
        ERR(PALLOC_OPT_STACK_DEPTH, "0") == PALLOC_OPT_RANGE, "depth bounds");
  CHECK(!OK(PALLOC_OPT_STACK_DEPTH, " 8") && !OK(PALLOC_OPT_STACK_DEPTH, "+8") &&
        !OK(PALLOC_OPT_STACK_DEPTH, "8x") && !OK(PALLOC_OPT_STACK_DEPTH, "-8"), "depth syntax");
  /* seconds, in milliseconds */
  CHECK(!OK(PALLOC_OPT_PROFILE_INTERVAL, "+3") && !OK(PALLOC_OPT_PROFILE_INTERVAL, "0") &&
        OK(PALLOC_OPT_PROFILE_INTERVAL, "60") && v == 60000, "interval");
  CHECK(OK(PALLOC_OPT_PROFILE_INTERVAL, "0.5") && v == 500 &&
        OK(PALLOC_OPT_PROFILE_INTERVAL, "1.2345") && v == 1234 &&
        OK(PALLOC_OPT_PROFILE_INTERVAL, "0.001") && v == 1, "interval decimals");
  CHECK(ERR(PALLOC_OPT_PROFILE_INTERVAL, "0.0009") == PALLOC_OPT_RANGE &&
        !OK(PALLOC_OPT_PROFILE_INTERVAL, ".5") && !OK(PALLOC_OPT_PROFILE_INTERVAL, "1.") &&
        !OK(PALLOC_OPT_PROFILE_INTERVAL, "1.5s") && !OK(PALLOC_OPT_PROFILE_INTERVAL, "-1") &&
        ERR(PALLOC_OPT_PROFILE_INTERVAL, "2147483648") == PALLOC_OPT_RANGE, "interval syntax");
  CHECK(OK(PALLOC_OPT_SEED, "42") && v == 42 && OK(PALLOC_OPT_SEED, "0x2A") && v == 42 &&
        OK(PALLOC_OPT_SEED, "052") && v == 42 && OK(PALLOC_OPT_SEED, "0") && v == 0, "seed bases");
  CHECK(OK(PALLOC_OPT_SEED, "18446744073709551615") && (uint64_t)v == UINT64_MAX, "seed 2^64-1");
  CHECK(!OK(PALLOC_OPT_SEED, "-1") && !OK(PALLOC_OPT_SEED, " 1") && !OK(PALLOC_OPT_SEED, "x1") &&
        !OK(PALLOC_OPT_SEED, "0x") && !OK(PALLOC_OPT_SEED, "08") &&
        !OK(PALLOC_OPT_SEED, "18446744073709551616"), "seed syntax");
  CHECK(OK(PALLOC_OPT_UNWIND, "fp") && v == 1 && OK(PALLOC_OPT_UNWIND, "LIBUNWIND") && v == 2 &&
        OK(PALLOC_OPT_UNWIND, "cfi") && v == 0 && !OK(PALLOC_OPT_UNWIND, "magic"), "unwind");
  CHECK(OK(PALLOC_OPT_SYMBOLIZE, "libdw") && v == 1 && OK(PALLOC_OPT_SYMBOLIZE, "none") && v == 0,
        "symbolize, and its old name");
  CHECK(OK(PALLOC_OPT_TCACHE, "ON") && v == 1 && OK(PALLOC_OPT_TCACHE, "0") && v == 0 &&
        !OK(PALLOC_OPT_TCACHE, "2") && !OK(PALLOC_OPT_TCACHE, "sometimes"), "tcache");
  CHECK(OK(PALLOC_OPT_TRACE, "legacy") && v == PALLOC_TRACE_LEGACY &&
        OK(PALLOC_OPT_TRACE, "1") && v == PALLOC_TRACE_ON && OK(PALLOC_OPT_TRACE, "off") &&
        v == PALLOC_TRACE_OFF && !OK(PALLOC_OPT_TRACE, "7"), "trace");
  CHECK(OK(PALLOC_OPT_GOGC, "-5") && v == -1 && OK(PALLOC_OPT_GOGC, "0") && v == 0 &&
        !OK(PALLOC_OPT_GOGC, "100000001") && !OK(PALLOC_OPT_GOGC, "+5"), "gogc");
  CHECK(OK(PALLOC_OPT_PROFILE_SIGNAL, "usr2") && v == SIGUSR2 &&
        OK(PALLOC_OPT_PROFILE_SIGNAL, "SIGRTMIN+2") && v == SIGRTMIN + 2, "signal");
  CHECK(ERR(PALLOC_OPT_PROFILE_SIGNAL, "KILL") == PALLOC_OPT_UNCATCHABLE &&
        ERR(PALLOC_OPT_PROFILE_SIGNAL, "sigstop") == PALLOC_OPT_UNCATCHABLE &&
        ERR(PALLOC_OPT_PROFILE_SIGNAL, "SEGV") == PALLOC_OPT_FAULT &&
        ERR(PALLOC_OPT_PROFILE_SIGNAL, "6") == PALLOC_OPT_FAULT &&
        ERR(PALLOC_OPT_PROFILE_SIGNAL, "NOPE") == PALLOC_OPT_SYNTAX, "signals that cannot serve");
  char path[2000];
  memset(path, 'a', sizeof path - 1);
  path[sizeof path - 1] = 0;
  CHECK(ERR(PALLOC_OPT_PROFILE, path) == PALLOC_OPT_TOO_LONG && OK(PALLOC_OPT_TRACE_FILE, path),
        "path bounds: PALLOC_PROFILE must fit writer.c's buffer");
  path[PALLOC_PROFILE_PATH_MAX] = 0;
  CHECK(!OK(PALLOC_OPT_PROFILE, path), "%d bytes do not fit", PALLOC_PROFILE_PATH_MAX);
  path[PALLOC_PROFILE_PATH_MAX - 1] = 0;
  CHECK(OK(PALLOC_OPT_PROFILE, path), "%d bytes fit", PALLOC_PROFILE_PATH_MAX - 1);
}

static void test_table(void) {
  for (int i = 0; i < PALLOC_OPT_COUNT; i++) {
    const palloc_option_desc_t *o = &palloc_options[i];
    CHECK(o->name && strncmp(o->name, "PALLOC_", 7) == 0 && o->help && o->dflt_text && o->on_bad,
          "entry %d is complete", i);
    for (int j = 0; j < i; j++) CHECK(strcmp(o->name, palloc_options[j].name) != 0, "%s twice", o->name);
    if (o->kind == PALLOC_KIND_SIZE || o->kind == PALLOC_KIND_COUNT)
      CHECK((o->lo <= o->dflt || o->dflt == 0) && o->dflt <= o->hi, "%s: default in bounds (0: unset)",
            o->name);
  }
}

static void test_messages(void) {
  char line[384], big[1000];
  size_t n = palloc_option_message(PALLOC_OPT_STACK_DEPTH, "500", PALLOC_OPT_RANGE, line, sizeof line);
  line[n] = 0;
  CHECK(strcmp(line, "palloc: PALLOC_STACK_DEPTH=500 is not a whole number in [1, 128]; using 64\n") == 0,
        "%s", line);
  n = palloc_option_message(PALLOC_OPT_PROFILE_SIGNAL, "kill", PALLOC_OPT_UNCATCHABLE, line, sizeof line);
  line[n] = 0;
  CHECK(strstr(line, "SIGKILL cannot be caught; no signal snapshots\n") && !strstr(line, "not a signal name"),
        "%s", line);
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  n = palloc_option_message(PALLOC_OPT_SAMPLE_RATE, big, PALLOC_OPT_SYNTAX, line, sizeof line);
  line[n] = 0;
  CHECK(n < sizeof line && line[n - 1] == '\n' && strchr(line, '\n') == line + n - 1 &&
        strstr(line, "...") && strstr(line, "; using 524288\n"), "a long value is cut: %s", line);
  n = palloc_option_message(PALLOC_OPT_UNWIND, "x", PALLOC_OPT_SYNTAX, line, 12);
  CHECK(n == 12 && line[11] == '\n', "a small buffer still ends the line: %zu", n);
  n = palloc_option_message(PALLOC_OPT_SYMBOLIZE, "x", PALLOC_OPT_SYNTAX, line, sizeof line);
  line[n] = 0;
  CHECK(strstr(line, "is not 'elf' or 'none';") != NULL, "an alias is not listed: %s", line);
}

static void test_expand(void) {
  char out[64];
  CHECK(palloc_proto_expand_pid("heap.%p.pb.gz", 1234, out, sizeof out) &&
        strcmp(out, "heap.1234.pb.gz") == 0, "%s", out);
  CHECK(palloc_proto_expand_pid("a%%p%p%x%", 7, out, sizeof out) && strcmp(out, "a%p7%x%") == 0,
        "%%%% and stray %%: %s", out);
  CHECK(!palloc_proto_expand_pid("%p%p%p", 1234567, out, 21) &&
        palloc_proto_expand_pid("%p%p%p", 1234567, out, 22), "fits or refuses, never cuts");
}

/* ---- with the environment meson.build sets ---- */
static void *reader(void *arg) {
  (void)arg;
  return (void *)(intptr_t)palloc_option_int(PALLOC_OPT_STACK_DEPTH);
}

/* The values taken, in a child whose stderr is the parent's pipe: libpalloc's constructor (in
 * palloc_core too) or the first accessor reads the environment. */
static void test_env_child(void) {
  pthread_t th[8];
  for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, reader, NULL);
  for (int i = 0; i < 8; i++) {
    void *r;
    pthread_join(th[i], &r);
    CHECK((intptr_t)r == 64, "a thread saw depth %ld", (long)(intptr_t)r);
  }
  CHECK(palloc_option_int(PALLOC_OPT_SEED) == 16 && palloc_option_is_set(PALLOC_OPT_SEED), "seed");
  CHECK(!palloc_option_is_set(PALLOC_OPT_STACK_DEPTH) && !palloc_option_is_set(PALLOC_OPT_MEMLIMIT) &&
        palloc_option_int(PALLOC_OPT_MEMLIMIT) == INT64_MAX, "bad values leave the defaults");
  CHECK(palloc_option_int(PALLOC_OPT_SAMPLE_RATE) == 64 << 10, "rate 64k");
  const char *t = palloc_option_str(PALLOC_OPT_TRACE_FILE);
  CHECK(t && strcmp(t, "/nonexistent/t.%p") == 0, "trace file %s", t ? t : "(null)");
  CHECK(palloc_option_str(PALLOC_OPT_PROFILE) == NULL && palloc_option_int(PALLOC_OPT_PROFILE) == 0,
        "unset path");
  setenv("PALLOC_SAMPLE_RATE", "1", 1);
  setenv("PALLOC_STACK_DEPTH", "9x", 1);
  unsetenv("PALLOC_TRACE_FILE");
  palloc_options_load();
  t = palloc_option_str(PALLOC_OPT_TRACE_FILE);
  CHECK(palloc_option_int(PALLOC_OPT_SAMPLE_RATE) == 64 << 10 && t && strcmp(t, "/nonexistent/t.%p") == 0,
        "read once: a later setenv changes nothing");
}

static void test_env(const char *self) {
  int p[2];
  if (pipe(p) != 0) abort();
  /* posix_spawn, not fork: palloc's fork handlers take its registry's 64 stripe locks, more
   * than TSan's deadlock detector can hold at once (a CHECK failure in TSan, not a palloc bug) */
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  char *args[] = {(char *)self, "env-child", NULL};
  pid_t pid;
  CHECK(posix_spawn(&pid, self, &fa, NULL, args, environ) == 0, "spawning %s", self);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  char buf[8192];
  ssize_t n, got = 0;
  while ((n = read(p[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += n;
  buf[got < 0 ? 0 : got] = 0;
  int st;
  waitpid(pid, &st, 0);
  fputs(buf, stderr);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's checks (above)");
  int lines = 0;
  for (char *s = buf; *s; s++) lines += strncmp(s, "palloc: ", 8) == 0 && (s == buf || s[-1] == '\n');
  CHECK(lines == 2 && strstr(buf, "palloc: PALLOC_STACK_DEPTH=500 ") &&
        strstr(buf, "palloc: PALLOC_MEMLIMIT=1GB ") && !strstr(buf, "=9x"),
        "one palloc: line per bad value, once (%d)", lines);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "env") == 0) {
    test_env(argv[0]);
    return CHECK_DONE();
  }
  if (argc == 2 && strcmp(argv[1], "env-child") == 0) {
    test_env_child();
    return CHECK_DONE();
  }
  test_sizes();
  test_kinds();
  test_table();
  test_messages();
  test_expand();
  return CHECK_DONE();
}
