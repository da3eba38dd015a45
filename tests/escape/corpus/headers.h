// Corpus: functions defined in a header (included by headers.c). They are analyzed like the
// main file's: summaries for their callers, and their own verdicts, reported here once.
#include <stdlib.h>
#include <string.h>

struct hid { unsigned char hash[20]; };

/* git's oidcpy: reads and writes through its parameters, keeps nothing */
static inline void hid_copy(struct hid *dst, const struct hid *src) {
  memcpy(dst->hash, src->hash, sizeof dst->hash);
}

static inline int hid_cmp(const struct hid *a, const struct hid *b) {
  return memcmp(a->hash, b->hash, sizeof a->hash);
}

extern struct hid *hid_registry;
static inline void hid_register(struct hid *h) { hid_registry = h; } // ERROR "leaking param: h"

/* an allocation inside a header function */
static inline int hid_scratch(const struct hid *h) {
  struct hid *t = malloc(sizeof *t); // ERROR "malloc\(sizeof \*t\) does not escape"
  hid_copy(t, h);
  int r = t->hash[0];
  free(t);
  return r;
}

static inline struct hid *hid_keep_copy(const struct hid *h) {
  struct hid *t = malloc(sizeof *t); // ERROR "escapes to heap: passed to hid_register: stored to global hid_registry"
  hid_copy(t, h);
  hid_register(t);
  return t;
}
