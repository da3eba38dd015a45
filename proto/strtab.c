/* strtab.c - the interning string table of a profile being built.
 *
 * pprof stores every string once, in string_table, and refers to it by index; index 0 is "".
 * Interning is an open-addressing hash (FNV-1a, linear probing, load <= 1/2) over indexes into
 * the table. All memory comes from the caller's ProtobufCAllocator (libpalloc passes a scratch
 * arena), and an allocation failure poisons the table (failed = true) instead of crashing: the
 * writer then reports one error and gives up on that profile.
 */
#include <string.h>
#include "palloc_proto.h"
#include "palloc_assert.h"

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static void *a_alloc(palloc_strtab_t *t, size_t n) {
  void *p = t->a->alloc(t->a->allocator_data, n);
  if (p == NULL) t->failed = true;
  return p;
}

static bool grow_slots(palloc_strtab_t *t) {
  size_t n = t->nslots ? t->nslots * 2 : 256;
  uint32_t *s = a_alloc(t, n * sizeof *s);
  if (s == NULL) return false;
  memset(s, 0, n * sizeof *s);
  for (size_t i = 0; i < t->n; i++) {
    size_t j = fnv1a(t->strs[i]) & (n - 1);
    while (s[j] != 0) j = (j + 1) & (n - 1);
    s[j] = (uint32_t)(i + 1);
  }
  if (t->slots) t->a->free(t->a->allocator_data, t->slots);
  t->slots = s;
  t->nslots = n;
  return true;
}

static bool grow_strs(palloc_strtab_t *t) {
  size_t cap = t->cap ? t->cap * 2 : 128;
  char **s = a_alloc(t, cap * sizeof *s);
  if (s == NULL) return false;
  if (t->n) memcpy(s, t->strs, t->n * sizeof *s);
  if (t->strs) t->a->free(t->a->allocator_data, t->strs);
  t->strs = s;
  t->cap = cap;
  return true;
}

void palloc_strtab_init(palloc_strtab_t *t, ProtobufCAllocator *a) {
  memset(t, 0, sizeof *t);
  t->a = a ? a : &palloc_proto_system_allocator;
  palloc_strtab_intern(t, "");
}

int64_t palloc_strtab_intern(palloc_strtab_t *t, const char *s) {
  if (t->failed) return 0;
  if (s == NULL) s = "";
  if ((t->n + 1) * 2 > t->nslots && !grow_slots(t)) return 0;
  size_t j = fnv1a(s) & (t->nslots - 1);
  while (t->slots[j] != 0) {
    uint32_t i = t->slots[j] - 1;
    if (strcmp(t->strs[i], s) == 0) return i;
    j = (j + 1) & (t->nslots - 1);
  }
  if (t->n == t->cap && !grow_strs(t)) return 0;
  size_t len = strlen(s) + 1;
  char *copy = a_alloc(t, len);
  if (copy == NULL) return 0;
  memcpy(copy, s, len);
  t->strs[t->n] = copy;
  t->slots[j] = (uint32_t)(t->n + 1);
  /* load <= 1/2, and n within the strings' array */
  palloc_assert((t->n + 1) * 2 <= t->nslots && t->n < t->cap);
  return (int64_t)t->n++;
}

void palloc_strtab_destroy(palloc_strtab_t *t) {
  for (size_t i = 0; i < t->n; i++) t->a->free(t->a->allocator_data, t->strs[i]);
  if (t->strs) t->a->free(t->a->allocator_data, t->strs);
  if (t->slots) t->a->free(t->a->allocator_data, t->slots);
  memset(t, 0, sizeof *t);
}
