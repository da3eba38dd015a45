/* test_http_threads.c - the PALLOC_HTTP endpoint under the sanitizers: four threads allocate and
 * free through the palloc_* API while the main thread fetches every route many times over the
 * endpoint's unix socket (PALLOC_HTTP=unix:<dir>/t.%p.sock, set by meson), so that ASan, UBSan
 * and TSan see the server thread's profile builds, delta snapshots, symbol lookups and metrics
 * against live buckets. Each answer must be a 200 with a body of the right shape. (The rate is
 * high, 16 MiB: under TSan the frame-pointer walk starts in the runtime's frames and nearly
 * every sample makes a bucket of its own, each symbolized at every profile.)
 * usage: test_http_threads DIR (PALLOC_HTTP=unix:DIR/t.%p.sock in the environment)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "palloc.h"
#include "../check.h"

static atomic_int stop;

static void *worker(void *arg) {
  unsigned r = (unsigned)(uintptr_t)arg;
  void *keep[128] = {0};
  while (!atomic_load(&stop)) {
    r = r * 1103515245u + 12345u;
    unsigned i = (r >> 16) & 127;
    palloc_free(keep[i]);
    keep[i] = palloc_malloc(16 + (r >> 8) % 8192);
  }
  for (int i = 0; i < 128; i++) palloc_free(keep[i]);
  return NULL;
}

/* One request on a new connection; the whole response in buf (NUL-terminated), its length. */
static size_t fetch(const char *path, const char *req, char *buf, size_t cap) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    buf[0] = 0;
    return 0;
  }
  if (write(fd, req, strlen(req)) < 0) {}
  size_t n = 0;
  ssize_t k;
  while (n < cap - 1 && (k = read(fd, buf + n, cap - 1 - n)) > 0) n += (size_t)k;
  buf[n] = 0;
  close(fd);
  return n;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  char path[108];
  snprintf(path, sizeof path, "%s/t.%d.sock", argv[1], (int)getpid());
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
  static char buf[1 << 22];
  char post[256];
  snprintf(post, sizeof post, "POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%#lx+0x1",
           strlen("0x1") + 1 + (size_t)snprintf(NULL, 0, "%#lx", (unsigned long)(uintptr_t)&worker),
           (unsigned long)(uintptr_t)&worker);
  static const char *const gets[] = {
    "GET /debug/pprof/heap HTTP/1.1\r\n\r\n", "GET /debug/pprof/allocs HTTP/1.1\r\n\r\n",
    "GET /debug/pprof/heap?debug=1 HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.1\r\n\r\n",
    "GET /debug/pprof/allocs?seconds=1 HTTP/1.1\r\n\r\n", "GET /debug/pprof/ HTTP/1.1\r\n\r\n",
  };
  int rounds = 0;
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i <= sizeof gets / sizeof gets[0]; i++) {
      const char *req = i < sizeof gets / sizeof gets[0] ? gets[i] : post;
      size_t n = fetch(path, req, buf, sizeof buf);
      CHECK(n > 0 && strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.40s: %.80s", req, buf);
      char *body = strstr(buf, "\r\n\r\n");
      CHECK(body != NULL, "%.40s: no end of head", req);
      if (body == NULL) continue;
      body += 4;
      if (strstr(req, "debug=1")) CHECK(strncmp(body, "heap profile: ", 14) == 0, "text: %.40s", body);
      else if (strstr(req, "/metrics")) CHECK(strstr(body, "\npalloc_samples_total ") != NULL, "metrics");
      else if (strstr(req, "POST")) CHECK(strstr(body, " worker\n") != NULL, "symbol: %s", body);
      else if (strstr(req, "pprof/ ")) CHECK(strstr(body, "<html>") != NULL, "index");
      else CHECK((unsigned char)body[0] == 0x1f && (unsigned char)body[1] == 0x8b, "not gzip: %.20s", req);
      rounds++;
    }
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  printf("%d requests\n", rounds);
  return CHECK_DONE();
}
