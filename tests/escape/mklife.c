/* mklife.c - writes a lifetime profile in the format of libpalloc's PALLOC_LIFETIME_PROFILE
 * (alloc/lifetime.c: freed_objects, freed_space, lifetime, temp_objects, temp_space,
 * live_objects, live_space, live_age), with one sample per site given on the command line:
 *
 *   mklife OUT FILE:LINE:FUNCTION:FREED:LIFETIME_NS:TEMPS...
 *
 * LIFETIME_NS is the sum of the freed objects' lifetimes, as in the real profile. The test of
 * palloc-escape --lifetimes uses it: the branch that writes real ones is not this one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "palloc_proto.h"

static void *zalloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) abort();
  return p;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: mklife OUT FILE:LINE:FUNCTION:FREED:LIFETIME_NS:TEMPS...\n");
    return 2;
  }
  static const char *types[][2] = {
    {"freed_objects", "count"}, {"freed_space", "bytes"}, {"lifetime", "nanoseconds"},
    {"temp_objects", "count"}, {"temp_space", "bytes"}, {"live_objects", "count"},
    {"live_space", "bytes"}, {"live_age", "nanoseconds"},
  };
  palloc_strtab_t st;
  palloc_strtab_init(&st, NULL);
  palloc_pb_profile_t *p = zalloc(sizeof *p);
  perftools__profiles__profile__init(p);
  p->n_sample_type = 8;
  p->sample_type = zalloc(8 * sizeof *p->sample_type);
  for (int i = 0; i < 8; i++) {
    p->sample_type[i] = zalloc(sizeof *p->sample_type[i]);
    perftools__profiles__value_type__init(p->sample_type[i]);
    p->sample_type[i]->type = palloc_strtab_intern(&st, types[i][0]);
    p->sample_type[i]->unit = palloc_strtab_intern(&st, types[i][1]);
  }
  size_t n = (size_t)argc - 2;
  p->n_function = p->n_location = p->n_sample = n;
  p->function = zalloc(n * sizeof *p->function);
  p->location = zalloc(n * sizeof *p->location);
  p->sample = zalloc(n * sizeof *p->sample);
  for (size_t i = 0; i < n; i++) {
    char *spec = strdup(argv[i + 2]), *f[6];
    for (int k = 0; k < 6; k++) f[k] = strsep(&spec, ":");
    if (!f[5]) {
      fprintf(stderr, "mklife: bad site '%s'\n", argv[i + 2]);
      return 2;
    }
    Perftools__Profiles__Function *fn = p->function[i] = zalloc(sizeof *fn);
    perftools__profiles__function__init(fn);
    fn->id = i + 1;
    fn->name = fn->system_name = palloc_strtab_intern(&st, f[2]);
    fn->filename = palloc_strtab_intern(&st, f[0]);
    Perftools__Profiles__Location *l = p->location[i] = zalloc(sizeof *l);
    perftools__profiles__location__init(l);
    l->id = i + 1;
    l->n_line = 1;
    l->line = zalloc(sizeof *l->line);
    l->line[0] = zalloc(sizeof *l->line[0]);
    perftools__profiles__line__init(l->line[0]);
    l->line[0]->function_id = fn->id;
    l->line[0]->line = atoll(f[1]);
    Perftools__Profiles__Sample *s = p->sample[i] = zalloc(sizeof *s);
    perftools__profiles__sample__init(s);
    s->n_location_id = 1;
    s->location_id = zalloc(sizeof *s->location_id);
    s->location_id[0] = l->id;
    s->n_value = 8;
    s->value = zalloc(8 * sizeof *s->value);
    s->value[0] = atoll(f[3]);
    s->value[2] = atoll(f[4]);
    s->value[3] = atoll(f[5]);
  }
  p->string_table = (char **)st.strs;
  p->n_string_table = st.n;
  char err[PALLOC_PROTO_ERRLEN];
  if (palloc_proto_write_path(p, argv[1], NULL, err) < 0) {
    fprintf(stderr, "mklife: %s: %s\n", argv[1], err);
    return 1;
  }
  return 0;
}
