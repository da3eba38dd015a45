/* validate.c - cross-reference checks on a decoded profile.
 *
 * protobuf-c only checks the wire format. A profile can still refer to a location, function or
 * mapping id that does not exist, or to a string index past the table: pprof rejects such a
 * file, and a reader that indexes blindly would crash. After validation every reference resolves,
 * ids are nonzero and unique per kind, and each sample has one value per sample type.
 * Cost: O(n log n) in the number of ids (sorted copies, binary search).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "palloc_proto.h"

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sorted id set; returns NULL on duplicate/zero (err set) or allocation failure. */
static uint64_t *id_set(size_t n, uint64_t (*get)(const palloc_pb_profile_t *, size_t),
                        const palloc_pb_profile_t *p, const char *what, char *err) {
  uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
  if (ids == NULL) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "out of memory validating %ss", what);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    ids[i] = get(p, i);
    if (ids[i] == 0) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "%s %zu has id 0", what, i);
      free(ids);
      return NULL;
    }
  }
  qsort(ids, n, sizeof *ids, cmp_u64);
  for (size_t i = 1; i < n; i++) {
    if (ids[i] == ids[i - 1]) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "duplicate %s id %llu", what,
               (unsigned long long)ids[i]);
      free(ids);
      return NULL;
    }
  }
  return ids;
}

static uint64_t mapping_id(const palloc_pb_profile_t *p, size_t i) { return p->mapping[i]->id; }
static uint64_t location_id(const palloc_pb_profile_t *p, size_t i) { return p->location[i]->id; }
static uint64_t function_id(const palloc_pb_profile_t *p, size_t i) { return p->function[i]->id; }

static bool has(const uint64_t *ids, size_t n, uint64_t id) {
  return bsearch(&id, ids, n, sizeof *ids, cmp_u64) != NULL;
}

#define STR_OK(idx) ((idx) >= 0 && (uint64_t)(idx) < p->n_string_table)
#define CHECK_STR(idx, ...)                                                                   \
  do {                                                                                        \
    if (!STR_OK(idx)) {                                                                       \
      snprintf(err, PALLOC_PROTO_ERRLEN, __VA_ARGS__);                                        \
      goto fail;                                                                              \
    }                                                                                         \
  } while (0)

int palloc_proto_validate(const palloc_pb_profile_t *p, char err[PALLOC_PROTO_ERRLEN]) {
  uint64_t *maps = NULL, *locs = NULL, *funcs = NULL;
  if (p->n_string_table == 0 || p->string_table[0] == NULL || p->string_table[0][0] != 0) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "string_table[0] is not the empty string");
    return -1;
  }
  for (size_t i = 0; i < p->n_sample_type; i++) {
    CHECK_STR(p->sample_type[i]->type, "sample_type %zu: string index out of range", i);
    CHECK_STR(p->sample_type[i]->unit, "sample_type %zu: string index out of range", i);
  }
  if (p->period_type) {
    CHECK_STR(p->period_type->type, "period_type: string index out of range");
    CHECK_STR(p->period_type->unit, "period_type: string index out of range");
  }
  CHECK_STR(p->drop_frames, "drop_frames: string index out of range");
  CHECK_STR(p->keep_frames, "keep_frames: string index out of range");
  CHECK_STR(p->doc_url, "doc_url: string index out of range");
  for (size_t i = 0; i < p->n_comment; i++)
    CHECK_STR(p->comment[i], "comment %zu: string index out of range", i);
  if (p->default_sample_type != 0)
    CHECK_STR(p->default_sample_type, "default_sample_type: string index out of range");

  if (!(maps = id_set(p->n_mapping, mapping_id, p, "mapping", err))) goto fail;
  if (!(locs = id_set(p->n_location, location_id, p, "location", err))) goto fail;
  if (!(funcs = id_set(p->n_function, function_id, p, "function", err))) goto fail;

  for (size_t i = 0; i < p->n_mapping; i++) {
    const Perftools__Profiles__Mapping *m = p->mapping[i];
    CHECK_STR(m->filename, "mapping %llu: filename index out of range",
              (unsigned long long)m->id);
    CHECK_STR(m->build_id, "mapping %llu: build_id index out of range",
              (unsigned long long)m->id);
  }
  for (size_t i = 0; i < p->n_function; i++) {
    const Perftools__Profiles__Function *f = p->function[i];
    CHECK_STR(f->name, "function %llu: name index out of range", (unsigned long long)f->id);
    CHECK_STR(f->system_name, "function %llu: system_name index out of range",
              (unsigned long long)f->id);
    CHECK_STR(f->filename, "function %llu: filename index out of range",
              (unsigned long long)f->id);
  }
  for (size_t i = 0; i < p->n_location; i++) {
    const Perftools__Profiles__Location *l = p->location[i];
    if (l->mapping_id != 0 && !has(maps, p->n_mapping, l->mapping_id)) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "location %llu refers to missing mapping %llu",
               (unsigned long long)l->id, (unsigned long long)l->mapping_id);
      goto fail;
    }
    for (size_t j = 0; j < l->n_line; j++) {
      if (!has(funcs, p->n_function, l->line[j]->function_id)) {
        snprintf(err, PALLOC_PROTO_ERRLEN, "location %llu refers to missing function %llu",
                 (unsigned long long)l->id, (unsigned long long)l->line[j]->function_id);
        goto fail;
      }
    }
  }
  for (size_t i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample *s = p->sample[i];
    if (s->n_value != p->n_sample_type) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "sample %zu has %zu values for %zu sample types", i,
               s->n_value, p->n_sample_type);
      goto fail;
    }
    for (size_t j = 0; j < s->n_location_id; j++) {
      if (!has(locs, p->n_location, s->location_id[j])) {
        snprintf(err, PALLOC_PROTO_ERRLEN, "sample %zu refers to missing location %llu", i,
                 (unsigned long long)s->location_id[j]);
        goto fail;
      }
    }
    for (size_t j = 0; j < s->n_label; j++) {
      const Perftools__Profiles__Label *lb = s->label[j];
      CHECK_STR(lb->key, "sample %zu: label key index out of range", i);
      CHECK_STR(lb->str, "sample %zu: label string index out of range", i);
      CHECK_STR(lb->num_unit, "sample %zu: label unit index out of range", i);
    }
  }
  free(maps);
  free(locs);
  free(funcs);
  return 0;
fail:
  free(maps);
  free(locs);
  free(funcs);
  return -1;
}
