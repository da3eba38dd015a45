/* http_prog.c - a long-running program for the PALLOC_HTTP tests (check_http.py), run under
 * libpalloc. Commands on stdin, one per line, each answered "ok <cmd>" on stdout:
 *   keep     site_keep allocates 16384 blocks of 1024 bytes and keeps them (16 MiB in use)
 *   b-on     site_b starts allocating 4096-byte blocks (freed at once) in a loop, b-off stops
 *   threads  four threads allocate and free (site_churn) until quit
 *   fork     forks; the child closes stdin, stdout, stderr, sleeps 3 s and exits 0
 *   closefds closes every fd from 3 up, as daemons do, and opens /dev/null 8 times (the numbers
 *            palloc's sockets had now name files of the program's)
 *   forkfds  forks; the child checks that the fds 3 to 10 (closefds' files) are open and exits 0
 *            if they are, 1 if palloc closed one of them; answered "ok forkfds" or "closed"
 *   hold     a thread calls palloc_profile_write_fd on a full pipe (fds 500, 501) that nobody
 *            reads, which holds palloc's writer lock until "release" drains the pipe
 *   socks    closes the fds 3 to 99 and makes 8 socket pairs of the program's in the numbers
 *   checksocks  answered "ok checksocks" if nothing arrived on those sockets, else "leaked N"
 *   arena    makes a gcsim arena (libpalloc's palloc_gc_create, found with dlsym) and
 *            allocates 32 MiB of garbage in it, so that it collects
 *   quit     exits 0 after "bye A=<site_a calls>"
 * site_a allocates 256-byte blocks (freed at once) all along, on the main thread's timer.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_int b_on, stop;
static atomic_long a_calls;

__attribute__((noinline)) void *site_a(void) { return malloc(256); }
__attribute__((noinline)) void *site_b(void) { return malloc(4096); }
__attribute__((noinline)) void *site_keep(void) { return malloc(1024); }
__attribute__((noinline)) void *site_churn(size_t n) { return malloc(n); }

static void *background(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    for (int i = 0; i < 1000; i++) {
      void *volatile p = site_a();
      free(p);
      atomic_fetch_add(&a_calls, 1);
    }
    if (atomic_load(&b_on))
      for (int i = 0; i < 200; i++) {
        void *volatile p = site_b();
        free(p);
      }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void *churn(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  void *keep[64] = {0};
  while (!atomic_load(&stop)) {
    unsigned i = (seed = seed * 1103515245u + 12345u) >> 16;
    free(keep[i % 64]);
    keep[i % 64] = site_churn(16 + i % 4000);
  }
  for (int i = 0; i < 64; i++) free(keep[i]);
  return NULL;
}

static void *hold(void *arg) {
  (void)arg;
  int (*write_fd)(int) = (int (*)(int))dlsym(RTLD_DEFAULT, "palloc_profile_write_fd");
  if (write_fd) write_fd(501);
  return NULL;
}
static void *drain(void *arg) {
  (void)arg;
  char buf[4096];
  while (read(500, buf, sizeof buf) > 0) {}
  return NULL;
}

int main(void) {
  static int socks[8][2];
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t bg, th[4];
  int nth = 0;
  pthread_create(&bg, NULL, background, NULL);
  static void *kept[16384];
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    if (strcmp(line, "keep") == 0) {
      for (int i = 0; i < 16384; i++) kept[i] = site_keep();
    } else if (strcmp(line, "b-on") == 0) {
      atomic_store(&b_on, 1);
    } else if (strcmp(line, "b-off") == 0) {
      atomic_store(&b_on, 0);
    } else if (strcmp(line, "threads") == 0) {
      for (; nth < 4; nth++) pthread_create(&th[nth], NULL, churn, (void *)(uintptr_t)(nth + 1));
    } else if (strcmp(line, "fork") == 0) {
      pid_t pid = fork();
      if (pid == 0) { /* closes the pipes, so that the test sees the parent end alone */
        close(0);
        close(1);
        close(2);
        sleep(3);
        _exit(0);
      }
    } else if (strcmp(line, "closefds") == 0) {
      for (int fd = 3; fd < 1024; fd++) close(fd);
      for (int i = 0; i < 8; i++) open("/dev/null", O_WRONLY);
    } else if (strcmp(line, "forkfds") == 0) {
      pid_t pid = fork();
      if (pid == 0) {
        for (int fd = 3; fd < 11; fd++)
          if (fcntl(fd, F_GETFD) < 0) _exit(1);
        _exit(0);
      }
      int st = 1;
      if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("closed\n");
        continue;
      }
    } else if (strcmp(line, "hold") == 0 || strcmp(line, "release") == 0) {
      if (line[0] == 'h') {
        int pp[2];
        static char fill[65536];
        pipe(pp);
        dup2(pp[0], 500);
        dup2(pp[1], 501);
        close(pp[0]);
        close(pp[1]);
        fcntl(501, F_SETPIPE_SZ, 4096);
        fcntl(501, F_SETFL, O_NONBLOCK);
        while (write(501, fill, sizeof fill) > 0) {}
        fcntl(501, F_SETFL, 0);
      }
      pthread_t h;
      pthread_create(&h, NULL, line[0] == 'h' ? hold : drain, NULL);
      pthread_detach(h);
    } else if (strcmp(line, "socks") == 0) {
      for (int fd = 3; fd < 100; fd++) close(fd);
      for (int i = 0; i < 8; i++) socketpair(AF_UNIX, SOCK_STREAM, 0, socks[i]);
    } else if (strcmp(line, "checksocks") == 0) {
      char buf[256];
      long got = 0;
      for (int i = 0; i < 8; i++)
        for (int k = 0; k < 2; k++) {
          ssize_t r = recv(socks[i][k], buf, sizeof buf, MSG_DONTWAIT);
          if (r > 0) got += r;
        }
      if (got) {
        printf("leaked %ld\n", got);
        continue;
      }
    } else if (strcmp(line, "arena") == 0) {
      void *(*create)(const void *) = (void *(*)(const void *))dlsym(RTLD_DEFAULT, "palloc_gc_create");
      void *(*gcmalloc)(void *, size_t) = (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "palloc_gc_malloc");
      void *gc = create && gcmalloc ? create(NULL) : NULL;
      if (gc == NULL) {
        printf("no arena\n");
        continue;
      }
      for (int i = 0; i < 32768; i++) gcmalloc(gc, 1024);
    } else if (strcmp(line, "quit") == 0) {
      break;
    } else {
      printf("unknown %s\n", line);
      continue;
    }
    printf("ok %s\n", line);
  }
  atomic_store(&stop, 1);
  pthread_join(bg, NULL);
  for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 16384; i++) free(kept[i]);
  printf("bye\n");
  return 0;
}
