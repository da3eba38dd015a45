/* fetch.c - profiles from a live process: `palloc top|diff|flame|folded http://host:port/...`.
 *
 * A PROFILE operand that starts with http:// is fetched with one HTTP/1.1 GET (no TLS, no
 * proxy: the endpoints are libpalloc's PALLOC_HTTP or a Go program's net/http/pprof, on a
 * host the user reaches directly). `--seconds N` (any subcommand that reads profiles; main.c
 * takes it) adds Go's ?seconds=N: the server waits N seconds and answers a delta profile. The
 * body may come with a Content-Length (libpalloc), chunked (Go) or until the server closes; a
 * status other than 200 is an error with the server's first line of explanation.
 */
#include <errno.h>
#include <netdb.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

long fetch_seconds; /* --seconds N, 0: none */
long fetch_timeout;  /* --timeout N: the whole fetch's seconds; 0: pprof's, --seconds + 60 */

bool fetch_is_url(const char *s) { return strncmp(s, "http://", 7) == 0; }

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads everything until the server closes or the deadline passes. The bytes are followed by a
 * NUL (not counted in *len): the parse below reads the head and the error text with the string
 * functions (sscanf, strtoul, strcspn), which stop only at a NUL. */
static int read_all(int fd, long long deadline, char **buf, size_t *len, char *err, size_t errlen) {
  size_t cap = 1 << 16, n = 0;
  char *b = xmalloc(cap);
  for (;;) {
    long long left = deadline - now_ms();
    struct pollfd pf = {fd, POLLIN, 0};
    if (left <= 0 || poll(&pf, 1, (int)left) == 0) {
      snprintf(err, errlen, "timed out waiting for the server");
      free(b);
      return -1;
    }
    if (n + 1 == cap) b = xrealloc(b, cap *= 2);
    ssize_t k = read(fd, b + n, cap - n - 1);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      snprintf(err, errlen, "read: %s", strerror(errno));
      free(b);
      return -1;
    }
    if (k == 0) break;
    n += (size_t)k;
    if (n > PALLOC_PROTO_MAX_BYTES) {
      snprintf(err, errlen, "response larger than %zu bytes", (size_t)PALLOC_PROTO_MAX_BYTES);
      free(b);
      return -1;
    }
  }
  b[n] = 0;
  *buf = b;
  *len = n;
  return 0;
}

/* Decodes a chunked body in place; its length, or -1 if malformed. */
static long dechunk(char *p, size_t n) {
  size_t in = 0, out = 0;
  for (;;) {
    char *end;
    if (in >= n) return -1;
    unsigned long sz = strtoul(p + in, &end, 16);
    char *nl = memchr(p + in, '\n', n - in);
    if (nl == NULL || end == p + in) return -1;
    in = (size_t)(nl - p) + 1;
    if (sz == 0) return (long)out;
    if (sz > n - in) return -1;
    memmove(p + out, p + in, sz);
    out += sz, in += sz;
    if (in < n && p[in] == '\r') in++;
    if (in < n && p[in] == '\n') in++;
  }
}

int fetch_url(const char *url, uint8_t **data, size_t *len, char *err, size_t errlen) {
  const char *hp = url + 7, *slash = strchr(hp, '/');
  char host[256], port[16] = "80", target[4096];
  size_t hl = slash ? (size_t)(slash - hp) : strlen(hp);
  if (hl == 0 || hl >= sizeof host) {
    snprintf(err, errlen, "not a URL http://host:port/path");
    return -1;
  }
  memcpy(host, hp, hl);
  host[hl] = 0;
  char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
  if (colon) {
    snprintf(port, sizeof port, "%s", colon + (host[0] == '[' ? 2 : 1));
    *colon = 0;
  }
  char *h = host;
  if (h[0] == '[') {
    h++;
    char *rb = strchr(h, ']');
    if (rb) *rb = 0;
  }
  const char *path = slash ? slash : "/";
  if (fetch_seconds > 0)
    snprintf(target, sizeof target, "%s%cseconds=%ld", path, strchr(path, '?') ? '&' : '?',
             fetch_seconds);
  else
    snprintf(target, sizeof target, "%s", path);

  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int rc = getaddrinfo(h, port, &hints, &ai);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", h, gai_strerror(rc));
    return -1;
  }
  /* One deadline for the whole fetch, connect included: a host that drops the SYN (a firewall,
   * a listener whose backlog is full) would otherwise hold connect for minutes. */
  long long deadline = now_ms() + (fetch_timeout > 0 ? fetch_timeout : fetch_seconds + 60) * 1000;
  int fd = -1;
  for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      snprintf(err, errlen, "socket: %s", strerror(errno));
      continue;
    }
    int e = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (e == EINPROGRESS) {
      struct pollfd pf = {fd, POLLOUT, 0};
      long long left = deadline - now_ms();
      int r;
      while ((r = poll(&pf, 1, left > 0 ? (int)left : 0)) < 0 && errno == EINTR)
        left = deadline - now_ms();
      socklen_t el = sizeof e;
      if (r == 0) e = ETIMEDOUT;
      else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) e = errno;
    }
    if (e == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) e = errno;
    if (e != 0) {
      if (e == ETIMEDOUT)
        snprintf(err, errlen, "connect: no answer within the timeout (--timeout)");
      else
        snprintf(err, errlen, "connect: %s", strerror(e));
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  if (fd < 0) return -1;
  char req[4600];
  int k = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: palloc\r\nAccept-Encoding: "
                   "identity\r\nConnection: close\r\n\r\n", target, (int)hl, hp);
  if (k < 0 || (size_t)k >= sizeof req || write(fd, req, (size_t)k) != k) {
    snprintf(err, errlen, "cannot send the request");
    close(fd);
    return -1;
  }
  char *b;
  size_t n;
  rc = read_all(fd, deadline, &b, &n, err, errlen);
  close(fd);
  if (rc != 0) return -1;
  char *eoh = NULL;
  for (size_t i = 0; i + 1 < n && !eoh; i++)
    if (b[i] == '\n' && (b[i + 1] == '\n' || (b[i + 1] == '\r' && i + 2 < n && b[i + 2] == '\n')))
      eoh = b + i + (b[i + 1] == '\n' ? 2 : 3);
  int status = 0;
  if (eoh == NULL || sscanf(b, "HTTP/1.%*d %d", &status) != 1) {
    snprintf(err, errlen, "not an HTTP response");
    free(b);
    return -1;
  }
  size_t hlen = (size_t)(eoh - b), blen = n - hlen;
  bool chunked = false;
  long clen = -1;
  for (char *l = memchr(b, '\n', hlen); l && l + 1 < eoh; l = memchr(l, '\n', (size_t)(eoh - l))) {
    l++;
    char line[256];
    size_t m = strcspn(l, "\r\n");
    snprintf(line, sizeof line, "%.*s", (int)(m < sizeof line ? m : sizeof line - 1), l);
    if (strncasecmp(line, "transfer-encoding:", 18) == 0) chunked = strcasestr(line, "chunked") != NULL;
    if (strncasecmp(line, "content-length:", 15) == 0) clen = strtol(line + 15, NULL, 10);
  }
  if (chunked) {
    long m = dechunk(eoh, blen);
    if (m < 0) {
      snprintf(err, errlen, "malformed chunked body");
      free(b);
      return -1;
    }
    blen = (size_t)m;
  } else if (clen >= 0) {
    if ((size_t)clen > blen) {
      snprintf(err, errlen, "response cut short (%zu of %ld bytes)", blen, clen);
      free(b);
      return -1;
    }
    blen = (size_t)clen;
  }
  if (status != 200) {
    size_t m = strcspn(eoh, "\n");
    snprintf(err, errlen, "HTTP %d: %.*s", status, (int)(m < blen ? m : blen), eoh);
    free(b);
    return -1;
  }
  memmove(b, eoh, blen);
  *data = (uint8_t *)b;
  *len = blen;
  return 0;
}

/* --seconds N and --timeout N (pprof's names): whole numbers of seconds, 1 to 3600. */
int fetch_take_seconds(int *argc, char **argv) {
  for (int i = 1; i < *argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    const char *v = NULL;
    int take = 0;
    long *to = NULL;
    const char *flag = NULL;
    if (strncmp(argv[i], "--seconds", 9) == 0) to = &fetch_seconds, flag = "--seconds";
    else if (strncmp(argv[i], "--timeout", 9) == 0) to = &fetch_timeout, flag = "--timeout";
    if (to == NULL) continue;
    const char *rest = argv[i] + 9;
    if (*rest == 0 && i + 1 < *argc) v = argv[i + 1], take = 2;
    else if (*rest == '=') v = rest + 1, take = 1;
    else if (*rest == 0) return usage_error(argv[0], "%s needs a number", flag);
    if (!take) continue;
    char *end;
    long s = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || s < 1 || s > 3600)
      return usage_error(argv[0], "%s takes a whole number of seconds, 1 to 3600", flag);
    *to = s;
    memmove(argv + i, argv + i + take, (size_t)(*argc - i - take + 1) * sizeof *argv);
    *argc -= take;
    i--;
  }
  return 0;
}
