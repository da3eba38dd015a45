/* fuzz_httpreq.c - libFuzzer target for PALLOC_HTTP's request parser (alloc/httpreq.c), built
 * with clang by meson -Dfuzz=true (`meson test --suite fuzz`; FUZZ_SECONDS, FUZZ_DIR as
 * fuzz_elf.sh). Input: the bytes a client sends, cut as the server reads them (at most
 * PALLOC_HTTP_HEAD_MAX). Every prefix is parsed, and the parser's contract is checked as
 * test_httpreq.c checks it: a verdict once given never changes, a complete parse points inside
 * the buffer, and the query lookups stay inside it. A violation aborts (a crash to keep).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "httpreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > PALLOC_HTTP_HEAD_MAX) size = PALLOC_HTTP_HEAD_MAX;
  /* a copy of exactly size bytes: ASan sees any read past the end */
  char *buf = malloc(size ? size : 1);
  memcpy(buf, data, size);
  int verdict = PALLOC_HTTP_MORE;
  for (size_t k = 0; k <= size; k++) {
    palloc_http_req_t r;
    int rc = palloc_http_parse(buf, k, &r);
    if (rc != PALLOC_HTTP_MORE && rc != PALLOC_HTTP_COMPLETE && (rc < 400 || rc > 599)) abort();
    if (verdict != PALLOC_HTTP_MORE && rc != verdict) abort();
    if (verdict == PALLOC_HTTP_MORE) verdict = rc;
    if (rc == PALLOC_HTTP_COMPLETE) {
      if (r.head_len > k || r.path < buf || r.path + r.path_len > buf + r.head_len) abort();
      if (r.content_length > PALLOC_HTTP_BODY_MAX) abort();
      const char *v;
      size_t n;
      static const char *const keys[] = {"seconds", "debug", "gc", ""};
      for (int i = 0; i < 4; i++)
        if (palloc_http_query(&r, keys[i], &v, &n) && (v < buf || v + n > buf + r.head_len)) abort();
    }
  }
  free(buf);
  return 0;
}
