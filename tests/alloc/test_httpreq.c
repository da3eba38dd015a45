/* test_httpreq.c - the PALLOC_HTTP request parser (alloc/httpreq.c) and address syntax.
 *
 * Known requests give their fields or their status; then the parser's contract on every prefix
 * of every request, valid or mutated: a prefix of a valid request is never refused (it asks
 * for more), a verdict (complete or a status) once given never changes as bytes are added, and
 * a complete parse points inside the buffer. The mutations are random (seeded, reproducible:
 * argv[1] = the number of rounds), so this is also a small fuzzer that runs in the suite under
 * ASan and UBSan; fuzz_httpreq.c is the libFuzzer target for longer runs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include "httpreq.h"
#include "../check.h"
#define CK(c) CHECK(c, "%s", "")

static char big[PALLOC_HTTP_HEAD_MAX * 2];

static int parse(const char *s, palloc_http_req_t *r) { return palloc_http_parse(s, strlen(s), r); }

static void expect_status(const char *s, int want) {
  palloc_http_req_t r;
  int got = parse(s, &r);
  if (got != want) {
    fprintf(stderr, "FAIL: %.60s...: got %d, want %d\n", s, got, want);
    exit(1);
  }
}

/* The contract on every prefix of buf[0..n): MORE until a verdict, then the same verdict. */
static int check_prefixes(const char *buf, size_t n, bool valid) {
  palloc_http_req_t r;
  int verdict = PALLOC_HTTP_MORE;
  size_t head = 0;
  for (size_t k = 0; k <= n; k++) {
    int rc = palloc_http_parse(buf, k, &r);
    CK(rc == PALLOC_HTTP_MORE || rc == PALLOC_HTTP_COMPLETE || (rc >= 400 && rc < 600));
    if (verdict != PALLOC_HTTP_MORE) {
      if (rc != verdict) {
        fprintf(stderr, "FAIL: verdict %d at %zu bytes became %d at %zu of '%.*s'\n", verdict,
                head, rc, k, (int)(n < 200 ? n : 200), buf);
        exit(1);
      }
    } else if (rc != PALLOC_HTTP_MORE) {
      verdict = rc;
      head = k;
    }
    if (rc == PALLOC_HTTP_COMPLETE) {
      CK(r.head_len <= k && r.head_len <= PALLOC_HTTP_HEAD_MAX);
      CK(r.path >= buf && r.path + r.path_len <= buf + r.head_len && r.path[0] == '/');
      CK(r.path_len + (r.query ? r.query_len + 1 : 0) <= PALLOC_HTTP_TARGET_MAX);
      CK(r.query == NULL || (r.query > buf && r.query + r.query_len <= buf + r.head_len));
      CK(r.content_length >= -1 && r.content_length <= PALLOC_HTTP_BODY_MAX);
      CK(r.method >= PALLOC_HTTP_GET && r.method <= PALLOC_HTTP_POST);
    }
    if (valid && k < n) CK(rc == PALLOC_HTTP_MORE || rc == PALLOC_HTTP_COMPLETE);
  }
  return verdict;
}

static const char *const valid[] = {
  "GET /debug/pprof/heap HTTP/1.1\r\nHost: 127.0.0.1:6060\r\nUser-Agent: Go-http-client/1.1\r\n"
  "Accept-Encoding: gzip\r\n\r\n",
  "GET /debug/pprof/allocs?seconds=30 HTTP/1.1\r\nHost: x\r\n\r\n",
  "HEAD /metrics HTTP/1.0\n\n",
  "POST /debug/pprof/symbol HTTP/1.1\r\nHost: h\r\nContent-Length: 23\r\n"
  "Content-Type: text/plain\r\n\r\n0x401000+0x401010+0x1",
  "POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n",
  "GET /?a=1&b&c= HTTP/1.1\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
};

int main(int argc, char **argv) {
  long rounds = argc > 1 ? atol(argv[1]) : 200000;
  palloc_http_req_t r;

  /* fields */
  CK(parse(valid[1], &r) == PALLOC_HTTP_COMPLETE);
  CK(r.method == PALLOC_HTTP_GET && r.path_len == 19 && memcmp(r.path, "/debug/pprof/allocs", 19) == 0);
  const char *v;
  size_t vn;
  CK(palloc_http_query(&r, "seconds", &v, &vn) && vn == 2 && memcmp(v, "30", 2) == 0);
  CK(palloc_http_number(v, vn, 300) == 30 && palloc_http_number(v, vn, 29) == -1);
  CK(!palloc_http_query(&r, "debug", &v, &vn) && !palloc_http_query(&r, "second", &v, &vn));
  CK(parse(valid[5], &r) == PALLOC_HTTP_COMPLETE);
  CK(palloc_http_query(&r, "b", &v, &vn) && vn == 0 && palloc_http_query(&r, "c", &v, &vn) && vn == 0);
  CK(parse(valid[3], &r) == PALLOC_HTTP_COMPLETE && r.method == PALLOC_HTTP_POST &&
        r.content_length == 23 && r.head_len == strlen(valid[3]) - 21);
  CK(parse(valid[4], &r) == PALLOC_HTTP_COMPLETE && r.expect_continue);
  CK(parse(valid[2], &r) == PALLOC_HTTP_COMPLETE && r.method == PALLOC_HTTP_HEAD);
  CK(palloc_http_number("", 0, 10) == -1 && palloc_http_number("1a", 2, 10) == -1 &&
        palloc_http_number("9999999999999999999", 19, INT64_MAX) == -1);

  /* statuses */
  expect_status("PUT /x HTTP/1.1\r\n\r\n", 405);
  expect_status("DELETE /debug/pprof/heap HTTP/1.1\r\n\r\n", 405);
  expect_status("get /x HTTP/1.1\r\n\r\n", 405);
  expect_status("GET  /x HTTP/1.1\r\n\r\n", 400);
  expect_status("GET http://h/x HTTP/1.1\r\n\r\n", 400);
  expect_status("GET * HTTP/1.1\r\n\r\n", 400);
  expect_status("GET /x HTTP/2.0\r\n\r\n", 505);
  expect_status("GET /x HTTP/1.1x\r\n\r\n", 400);
  expect_status("GET /x HTTP/1.1\r\n folded\r\n\r\n", 400);
  expect_status("GET /x HTTP/1.1\r\nNo-Colon\r\n\r\n", 400);
  expect_status("GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n", 400);
  expect_status("GET /x HTTP/1.1\r\nA: b\rc\r\n\r\n", 400);
  expect_status("GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
  expect_status("GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400);
  expect_status("POST /x HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413);
  expect_status("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
  expect_status("POST /x HTTP/1.1\r\nExpect: magic\r\n\r\n", 417);
  expect_status("\r\nGET /x HTTP/1.1\r\n\r\n", 400);
  expect_status("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400); /* a TLS ClientHello */
  static const char nul[] = "GET /a\x00b HTTP/1.1\r\n\r\n"; /* a NUL in the target */
  CK(palloc_http_parse(nul, sizeof nul - 1, &r) == 400);
  /* a target over the limit, a head over the limit (a 1 MiB header is cut at 8 KiB) */
  memcpy(big, "GET /", 5);
  memset(big + 5, 'a', PALLOC_HTTP_TARGET_MAX + 10);
  CK(palloc_http_parse(big, PALLOC_HTTP_TARGET_MAX + 15, &r) == 414);
  int k = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Big: ");
  memset(big + k, 'b', sizeof big - (size_t)k);
  CK(palloc_http_parse(big, PALLOC_HTTP_HEAD_MAX, &r) == 431);
  CK(palloc_http_parse(big, PALLOC_HTTP_HEAD_MAX - 1, &r) == PALLOC_HTTP_MORE);
  memset(big, 'A', sizeof big);
  CK(palloc_http_parse(big, 17, &r) == 400); /* a method longer than any */

  /* prefixes of valid requests, then seeded mutations of them */
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
    CK(check_prefixes(valid[i], strlen(valid[i]), true) == PALLOC_HTTP_COMPLETE);
  unsigned long long seed = 0x9e3779b97f4a7c15ull;
  static const char alphabet[] = "\r\n :?&=/+-0123456789GETPOSTHEAD\t\x00\x7f\x80\xff";
  for (long round = 0; round < rounds; round++) {
    const char *base = valid[round % (sizeof valid / sizeof valid[0])];
    size_t n = strlen(base);
    char buf[512];
    memcpy(buf, base, n);
    int muts = 1 + (int)(seed % 4);
    for (int m = 0; m < muts; m++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      size_t at = (size_t)(seed >> 33) % n;
      char c = (seed >> 20) & 1 ? alphabet[(seed >> 24) % (sizeof alphabet - 1)] : (char)(seed >> 40);
      switch ((seed >> 16) % 3) {
      case 0: buf[at] = c; break;                       /* replace */
      case 1: if (n < sizeof buf - 1) { memmove(buf + at + 1, buf + at, n - at); buf[at] = c; n++; } break;
      default: if (n > 1) { memmove(buf + at, buf + at + 1, n - at - 1); n--; } break;
      }
    }
    check_prefixes(buf, n, false);
  }

  /* addresses: loopback unless given */
  palloc_http_addr_t a;
  char err[200];
  struct sockaddr_in *in = (struct sockaddr_in *)&a.sa;
  CK(palloc_http_parse_addr(":6060", &a, err, sizeof err) && in->sin_family == AF_INET &&
        ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK && ntohs(in->sin_port) == 6060);
  CK(palloc_http_parse_addr("6061", &a, err, sizeof err) &&
        ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK && ntohs(in->sin_port) == 6061);
  CK(palloc_http_parse_addr("localhost:0", &a, err, sizeof err) &&
        ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK && in->sin_port == 0);
  CK(palloc_http_parse_addr("0.0.0.0:80", &a, err, sizeof err) && in->sin_addr.s_addr == 0);
  CK(palloc_http_parse_addr("[::1]:6060", &a, err, sizeof err) && a.sa.ss_family == AF_INET6);
  CK(palloc_http_parse_addr("unix:/tmp/p.%p.sock", &a, err, sizeof err) && a.is_unix);
  char want[64];
  snprintf(want, sizeof want, "/tmp/p.%d.sock", (int)getpid());
  CK(strcmp(a.unix_path, want) == 0);
  CK(!palloc_http_parse_addr("example.com:80", &a, err, sizeof err));
  CK(!palloc_http_parse_addr(":65536", &a, err, sizeof err));
  CK(!palloc_http_parse_addr(":", &a, err, sizeof err));
  CK(!palloc_http_parse_addr("[::1]6060", &a, err, sizeof err));
  CK(!palloc_http_parse_addr("unix:", &a, err, sizeof err));
  memset(big, 'p', 200);
  memcpy(big, "unix:/", 6);
  big[200] = 0;
  CK(!palloc_http_parse_addr(big, &a, err, sizeof err)); /* longer than sun_path */
  printf("httpreq: %ld mutation rounds\n", rounds);
  return CHECK_DONE();
}
