/* rusage.c - runs a command and writes the rusage of that command alone (tests/bench/bench.py).
 *
 *   rusage OUTFILE PROG [ARGS...]
 *
 * Why not wait4 in the runner: Linux keeps a process's peak RSS (ru_maxrss) across execve, and
 * Python starts children with vfork, so a child's ru_maxrss is at least the Python runner's RSS
 * (14 MB and growing), which hides the peak RSS of every workload smaller than that. This
 * launcher is small when it forks, so its child's ru_maxrss is the command's own peak (>= ~1 MB).
 * The allocator to preload is passed in BENCH_PRELOAD and set as LD_PRELOAD in the child only,
 * so the launcher itself runs on glibc. On SIGUSR1 (the runner's time cap) the child is killed
 * and its rusage still written. OUTFILE gets "utime_s stime_s maxrss_kb status" on one line; the
 * exit code is the command's (128 + signal if it was killed).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child;
static void on_cap(int sig) { (void)sig; if (child > 0) kill(child, SIGKILL); }

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: rusage OUTFILE PROG [ARGS...]\n"); return 2; }
  const char *pre = getenv("BENCH_PRELOAD");
  signal(SIGUSR1, on_cap);
  pid_t pid = fork();
  if (pid < 0) { perror("rusage: fork"); return 2; }
  if (pid == 0) {
    signal(SIGUSR1, SIG_DFL);
    if (pre) { setenv("LD_PRELOAD", pre, 1); unsetenv("BENCH_PRELOAD"); }
    execvp(argv[2], argv + 2);
    perror("rusage: exec");
    _exit(127);
  }
  child = pid;
  int st;
  struct rusage ru;
  while (wait4(pid, &st, 0, &ru) < 0) {}
  FILE *f = fopen(argv[1], "w");
  if (!f) { perror("rusage: output"); return 2; }
  fprintf(f, "%ld.%06ld %ld.%06ld %ld %d\n", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
          (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss, st);
  fclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
