/* httpreq.h - the PALLOC_HTTP endpoint's request parser and address syntax (httpreq.c).
 *
 * Pure functions over bytes: no I/O, no allocation, no global state, so that the suite and the
 * fuzzer (tests/alloc/test_httpreq.c, fuzz_httpreq.c) drive them with anything. The server
 * (http.c) hands the parser everything a connection has sent so far, at most PALLOC_HTTP_HEAD_MAX
 * bytes; the parser answers "complete", "need more" or the 4xx/5xx status the request earns.
 */
#ifndef PALLOC_HTTPREQ_H
#define PALLOC_HTTPREQ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#pragma GCC visibility push(hidden)

#define PALLOC_HTTP_HEAD_MAX 8192     /* request line + headers + blank line               */
#define PALLOC_HTTP_TARGET_MAX 2048   /* the request target (path and query)              */
#define PALLOC_HTTP_BODY_MAX (1 << 20) /* a POST body (pprof's symbol lookups)              */

enum { PALLOC_HTTP_GET = 1, PALLOC_HTTP_HEAD, PALLOC_HTTP_POST };
enum { PALLOC_HTTP_COMPLETE = 0, PALLOC_HTTP_MORE = 1 };

typedef struct palloc_http_req_s {
  int method;                /* PALLOC_HTTP_GET, _HEAD or _POST                           */
  const char *path;          /* into the parsed buffer; not NUL-terminated                */
  size_t path_len;
  const char *query;         /* after '?', or NULL                                        */
  size_t query_len;
  size_t head_len;           /* bytes up to and including the blank line                  */
  int64_t content_length;    /* -1: none                                                  */
  bool expect_continue;      /* "Expect: 100-continue" (curl sends it before large bodies) */
} palloc_http_req_t;

/* Parses the head of a request from buf[0..n). PALLOC_HTTP_COMPLETE with *req filled in once
 * the blank line has arrived; PALLOC_HTTP_MORE while every byte so far may still begin a valid
 * request; else the status to answer with: 400 (malformed), 405 (a method other than GET, HEAD,
 * POST), 413 (a body larger than PALLOC_HTTP_BODY_MAX), 414 (target too long), 431 (head
 * larger than PALLOC_HTTP_HEAD_MAX), 501 (Transfer-Encoding), 505 (not HTTP/1.x). A prefix of
 * a request is never refused, and a refusal is final: more bytes do not change it. */
int palloc_http_parse(const char *buf, size_t n, palloc_http_req_t *req);

/* The value of key in the query (the first occurrence; "" for "key" or "key="), false if
 * absent. No percent-decoding: every value the endpoint reads is digits. */
bool palloc_http_query(const palloc_http_req_t *r, const char *key, const char **val,
                       size_t *len);
/* A query value as a whole decimal number in [0, max]; -1 if it is not one. */
int64_t palloc_http_number(const char *s, size_t n, int64_t max);

/* PALLOC_HTTP's value as an address: "host:port" (host an IPv4 literal, "localhost" or
 * empty: loopback), "[v6]:port", "port" alone (loopback), or "unix:/path" (%p = pid, expanded
 * here). false with the reason in err. */
typedef struct palloc_http_addr_s {
  struct sockaddr_storage sa;
  socklen_t len;
  bool is_unix;
  char unix_path[108];
} palloc_http_addr_t;
bool palloc_http_parse_addr(const char *s, palloc_http_addr_t *a, char *err, size_t errlen);

#pragma GCC visibility pop
#endif
