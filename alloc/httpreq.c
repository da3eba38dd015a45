/* httpreq.c - the PALLOC_HTTP endpoint's request parser (RFC 9112's request head) and address
 * syntax. Why palloc's own and not a library: the endpoint is preloaded into programs palloc
 * does not control, and must load nothing until PALLOC_HTTP is set, run every one of its
 * allocations under palloc's guard (a server library's own threads would be profiled, and
 * would allocate from the heap being measured), and close its sockets in a forked child. What
 * it has to read is small: GET, HEAD or POST, an origin-form target, HTTP/1.0 or 1.1, and of
 * the headers only Content-Length, Transfer-Encoding and Expect. So the parser is this file:
 * bounded (PALLOC_HTTP_HEAD_MAX), strict (anything outside the grammar is a 4xx, never a
 * guess), without allocation or state, tested on every prefix of valid requests and on random
 * mutations in the suite (tests/alloc/test_httpreq.c) and fuzzed (fuzz_httpreq.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include "httpreq.h"
#include "palloc_proto.h" /* palloc_proto_expand_path */

/* RFC 9110's tchar: a token's characters. */
static bool tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}
/* A header value's characters: visible ASCII, space, tab, obs-text. */
static bool vchar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static bool ieq(const char *a, size_t n, const char *b) {
  if (strlen(b) != n) return false;
  for (size_t i = 0; i < n; i++)
    if ((a[i] | (a[i] >= 'A' && a[i] <= 'Z' ? 0x20 : 0)) != b[i]) return false;
  return true;
}

/* The end of the line that starts at p (the index of its '\n'), or -1 if it has not arrived.
 * *len is the line's length without its CR LF (or bare LF). */
static long line_end(const char *buf, size_t n, size_t p, size_t *len) {
  const char *nl = memchr(buf + p, '\n', n - p);
  if (nl == NULL) return -1;
  size_t e = (size_t)(nl - buf);
  *len = e - p - (e > p && buf[e - 1] == '\r');
  return (long)e;
}

/* The request line "METHOD SP target SP HTTP/1.x", complete or a prefix of one. */
static int request_line(const char *s, size_t n, bool complete, palloc_http_req_t *r) {
  size_t i = 0;
  while (i < n && tchar((unsigned char)s[i])) i++;
  if (i == n) return complete || i > 16 ? 400 : PALLOC_HTTP_MORE;
  if (s[i] != ' ' || i == 0 || i > 16) return 400;
  if (i == 3 && memcmp(s, "GET", 3) == 0) r->method = PALLOC_HTTP_GET;
  else if (i == 4 && memcmp(s, "HEAD", 4) == 0) r->method = PALLOC_HTTP_HEAD;
  else if (i == 4 && memcmp(s, "POST", 4) == 0) r->method = PALLOC_HTTP_POST;
  else return 405; /* a token of a method: well formed, not served (nor 501: methods are few) */
  size_t t = ++i;
  if (i < n && s[i] != '/') return 400; /* origin-form only: no absolute URI, no '*' */
  while (i < n && s[i] > 0x20 && s[i] < 0x7f) i++;
  if (i - t > PALLOC_HTTP_TARGET_MAX) return 414;
  if (i == n) return complete ? 400 : PALLOC_HTTP_MORE;
  if (s[i] != ' ' || i == t) return 400;
  r->path = s + t;
  r->path_len = i - t;
  const char *q = memchr(r->path, '?', r->path_len);
  if (q) {
    r->query = q + 1;
    r->query_len = r->path_len - (size_t)(q + 1 - r->path);
    r->path_len = (size_t)(q - r->path);
  }
  const char *v = s + i + 1;
  size_t vn = n - i - 1;
  static const char http[] = "HTTP/";
  size_t k = vn < 5 ? vn : 5;
  if (memcmp(v, http, k) != 0) return 400;
  if (vn > 5 && !(v[5] >= '0' && v[5] <= '9')) return 400;
  if (vn > 6 && v[6] != '.') return 400;
  if (vn > 7 && !(v[7] >= '0' && v[7] <= '9')) return 400;
  if (vn > 8) return 400;
  if (!complete) return PALLOC_HTTP_MORE;
  if (vn != 8) return 400;
  if (v[5] != '1') return 505;
  return PALLOC_HTTP_COMPLETE;
}

/* One header line (not the blank one). */
static int header(const char *s, size_t n, palloc_http_req_t *r) {
  size_t i = 0;
  while (i < n && tchar((unsigned char)s[i])) i++;
  if (i == 0 || i == n || s[i] != ':') return 400; /* also a folded line (leading space) */
  size_t name = i++;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  size_t e = n;
  while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
  for (size_t k = i; k < e; k++)
    if (!vchar((unsigned char)s[k])) return 400;
  const char *v = s + i;
  size_t vn = e - i;
  if (ieq(s, name, "content-length")) {
    int64_t len = palloc_http_number(v, vn, INT64_MAX / 2);
    if (len < 0) return 400;
    if (r->content_length >= 0 && r->content_length != len) return 400;
    if (len > PALLOC_HTTP_BODY_MAX) return 413;
    r->content_length = len;
  } else if (ieq(s, name, "transfer-encoding")) {
    return 501; /* no chunked bodies: the clients of this endpoint send a Content-Length */
  } else if (ieq(s, name, "expect")) {
    if (!ieq(v, vn, "100-continue")) return 417;
    r->expect_continue = true;
  }
  return PALLOC_HTTP_COMPLETE;
}

int palloc_http_parse(const char *buf, size_t n, palloc_http_req_t *req) {
  memset(req, 0, sizeof *req);
  req->content_length = -1;
  size_t len;
  long e = line_end(buf, n, 0, &len);
  size_t scan = n > PALLOC_HTTP_HEAD_MAX ? PALLOC_HTTP_HEAD_MAX : n;
  if (e < 0 && scan > 0 && buf[scan - 1] == '\r') scan--; /* the CR of a CR LF to come */
  int rc = request_line(buf, e < 0 ? scan : len, e >= 0, req);
  if (rc != PALLOC_HTTP_COMPLETE) return rc == PALLOC_HTTP_MORE && n >= PALLOC_HTTP_HEAD_MAX ? 431 : rc;
  for (size_t p = (size_t)e + 1;; ) {
    e = line_end(buf, n, p, &len);
    if (e < 0) {
      if (n >= PALLOC_HTTP_HEAD_MAX) return 431;
      /* what has arrived of the line must be able to start a header */
      for (size_t k = p; k < n; k++) {
        unsigned char c = (unsigned char)buf[k];
        if (c == ':') break;
        if (!tchar(c) && !(c == '\r' && k + 1 == n && k == p)) return 400;
      }
      return PALLOC_HTTP_MORE;
    }
    if ((size_t)e + 1 > PALLOC_HTTP_HEAD_MAX) return 431;
    if (p + len < (size_t)e && buf[p + len] != '\r') return 400;
    if (len == 0) {
      req->head_len = (size_t)e + 1;
      return PALLOC_HTTP_COMPLETE;
    }
    if (memchr(buf + p, '\r', len)) return 400;
    if ((rc = header(buf + p, len, req)) != PALLOC_HTTP_COMPLETE) return rc;
    p = (size_t)e + 1;
  }
}

int64_t palloc_http_number(const char *s, size_t n, int64_t max) {
  if (n == 0 || n > 18) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v <= max ? v : -1;
}

bool palloc_http_query(const palloc_http_req_t *r, const char *key, const char **val,
                       size_t *len) {
  size_t kn = strlen(key);
  const char *q = r->query, *end = r->query ? r->query + r->query_len : NULL;
  while (q && q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *pe = amp ? amp : end;
    const char *eq = memchr(q, '=', (size_t)(pe - q));
    const char *ke = eq ? eq : pe;
    if ((size_t)(ke - q) == kn && memcmp(q, key, kn) == 0) {
      *val = eq ? eq + 1 : pe;
      *len = (size_t)(pe - *val);
      return true;
    }
    q = amp ? amp + 1 : NULL;
  }
  return false;
}

static bool port(const char *s, struct sockaddr_storage *ss, bool v6, char *err, size_t errlen) {
  int64_t p = palloc_http_number(s, strlen(s), 65535);
  if (p < 0) {
    snprintf(err, errlen, "'%s' is not a port (0 to 65535)", s);
    return false;
  }
  if (v6) ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)p);
  else ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)p);
  return true;
}

bool palloc_http_parse_addr(const char *s, palloc_http_addr_t *a, char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  if (strncmp(s, "unix:", 5) == 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
    if (s[5] == 0) {
      snprintf(err, errlen, "no path after 'unix:'");
      return false;
    }
    if (!palloc_proto_expand_path(s + 5, a->unix_path, sizeof un->sun_path)) {
      snprintf(err, errlen, "a unix socket path has at most %zu bytes", sizeof un->sun_path - 1);
      return false;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, a->unix_path, strlen(a->unix_path) + 1);
    a->len = (socklen_t)sizeof *un;
    a->is_unix = true;
    return true;
  }
  char host[64];
  const char *colon = strrchr(s, ':'), *ps;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (rb == NULL || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof host) {
      snprintf(err, errlen, "'%s' is not [IPv6]:port", s);
      return false;
    }
    memcpy(host, s + 1, (size_t)(rb - s - 1));
    host[rb - s - 1] = 0;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;
    in6->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
      snprintf(err, errlen, "'%s' is not an IPv6 address", host);
      return false;
    }
    a->len = (socklen_t)sizeof *in6;
    return port(rb + 2, &a->sa, true, err, errlen);
  }
  if (colon == NULL) { /* "6060": a port on loopback */
    host[0] = 0;
    ps = s;
  } else {
    if ((size_t)(colon - s) >= sizeof host) {
      snprintf(err, errlen, "'%.*s' is not an IPv4 address", (int)(colon - s), s);
      return false;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    ps = colon + 1;
  }
  struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;
  in->sin_family = AF_INET;
  a->len = (socklen_t)sizeof *in;
  /* loopback unless an address is given: ":6060" is not every interface (Go's meaning) */
  if (host[0] == 0 || strcmp(host, "localhost") == 0) in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  else if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
    snprintf(err, errlen, "'%s' is not an IPv4 address (names other than localhost are not looked up)", host);
    return false;
  }
  return port(ps, &a->sa, false, err, errlen);
}
