/* test_unload.c - frames of a library that was dlclose'd keep its names in the profile.
 *
 * Plugin A (unload_a.so) allocates and keeps blocks at rate 1; a profile is written (palloc now
 * knows A's addresses); A is dlclose'd and plugin B, the same code under other names, is
 * dlopen'd, usually at A's address, and allocates blocks of the same size from the same call
 * site: the same stack. The next profile must give A's live blocks A's function and A's file as
 * their mapping, and B's blocks B's, each with its own count (the blocks and the array that
 * holds them): not `<unknown>`, not B's name for A's
 * frames (the unloaded library's address now holds B), not one bucket for both.
 * usage: test_unload UNLOAD_A_SO UNLOAD_B_SO PROFILE_PREFIX */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "palloc.h"
#include "palloc_proto.h"
#include "../check.h"

#define NA 30
#define NB 50
#define SIZE 1000

typedef void **(*keep_fn)(int, size_t);

/* One call site for both plugins: their stacks differ only in the plugin's own frames. */
__attribute__((noinline)) static void **call_keep(keep_fn f, int n) {
  void **v = f(n, SIZE);
  __asm__ volatile("" ::: "memory");
  return v;
}

static const char *fname(const palloc_pb_profile_t *p, uint64_t id) {
  for (size_t f = 0; f < p->n_function; f++)
    if (p->function[f]->id == id) return p->string_table[p->function[f]->name];
  return NULL;
}
static const Perftools__Profiles__Location *loc_of(const palloc_pb_profile_t *p, uint64_t id) {
  for (size_t l = 0; l < p->n_location; l++)
    if (p->location[l]->id == id) return p->location[l];
  return NULL;
}
static const char *map_file(const palloc_pb_profile_t *p, uint64_t id) {
  for (size_t m = 0; m < p->n_mapping; m++)
    if (p->mapping[m]->id == id) return p->string_table[p->mapping[m]->filename];
  return "";
}

/* Live objects of the samples whose stack has function fn, and of those whose frame in fn lies
 * in a mapping of a file whose name contains file. */
static void inuse_of(const palloc_pb_profile_t *p, const char *fn, const char *file,
                     int64_t *objs, int64_t *in_file) {
  *objs = *in_file = 0;
  for (size_t i = 0; i < p->n_sample; i++) {
    int hit = 0, hit_file = 0;
    for (size_t k = 0; k < p->sample[i]->n_location_id; k++) {
      const Perftools__Profiles__Location *l = loc_of(p, p->sample[i]->location_id[k]);
      for (size_t j = 0; l != NULL && j < l->n_line; j++) {
        const char *name = fname(p, l->line[j]->function_id);
        if (name != NULL && strcmp(name, fn) == 0) {
          hit = 1;
          hit_file |= strstr(map_file(p, l->mapping_id), file) != NULL;
        }
      }
    }
    if (hit) *objs += p->sample[i]->value[2];
    if (hit_file) *in_file += p->sample[i]->value[2];
  }
}

/* Writes profile number i: PREFIX.i.pb.gz. */
static palloc_pb_profile_t *write_and_read(const char *prefix, int i) {
  char err[PALLOC_PROTO_ERRLEN], path[4096];
  snprintf(path, sizeof path, "%s.%d.pb.gz", prefix, i);
  CHECK(palloc_profile_write(path) == 0, "write %s", path);
  palloc_pb_profile_t *p = palloc_proto_read_file(path, NULL, err);
  CHECK(p != NULL, "read %s: %s", path, err);
  return p;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: test_unload UNLOAD_A_SO UNLOAD_B_SO PROFILE_PREFIX\n");
    return 2;
  }
  /* Absolute paths: palloc symbolizes only objects loaded by absolute path (not the vdso). */
  char a_so[4096], b_so[4096];
  if (realpath(argv[1], a_so) == NULL || realpath(argv[2], b_so) == NULL) {
    perror("realpath");
    return 2;
  }
  argv[1] = a_so;
  argv[2] = b_so;
  palloc_set_sample_rate(1);
  void *ha = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  CHECK(ha != NULL, "dlopen %s: %s", argv[1], dlerror());
  if (ha == NULL) return CHECK_DONE();
  keep_fn fa = (keep_fn)(uintptr_t)dlsym(ha, "unload_a_keep");
  void **va = call_keep(fa, NA);
  int64_t objs, in_file;
  palloc_pb_profile_t *p = write_and_read(argv[3], 0); /* palloc has seen A's addresses */
  if (p != NULL) {
    inuse_of(p, "unload_a_keep", "unload_a", &objs, &in_file);
    CHECK(objs == NA + 1 && in_file == NA + 1, "A loaded: %lld objects in unload_a_keep (%lld in A's file), want %d",
          (long long)objs, (long long)in_file, NA + 1);
    palloc_proto_free(p, NULL);
  }
  CHECK(dlclose(ha) == 0, "dlclose A");

  void *hb = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
  CHECK(hb != NULL, "dlopen %s: %s", argv[2], dlerror());
  if (hb == NULL) return CHECK_DONE();
  keep_fn fb = (keep_fn)(uintptr_t)dlsym(hb, "unload_b_keep");
  fprintf(stderr, "A's unload_a_keep was at %p, B's unload_b_keep is at %p%s\n", (void *)fa,
          (void *)fb, fa == fb ? " (the same address)" : "");
  void **vb = call_keep(fb, NB);

  p = write_and_read(argv[3], 1);
  if (p != NULL) {
    inuse_of(p, "unload_a_keep", "unload_a", &objs, &in_file);
    CHECK(objs == NA + 1 && in_file == NA + 1,
          "A unloaded: %lld objects in unload_a_keep (%lld in A's file), want %d",
          (long long)objs, (long long)in_file, NA + 1);
    inuse_of(p, "unload_b_keep", "unload_b", &objs, &in_file);
    CHECK(objs == NB + 1 && in_file == NB + 1, "B: %lld objects in unload_b_keep (%lld in B's file), want %d",
          (long long)objs, (long long)in_file, NB + 1);
    palloc_proto_free(p, NULL);
  }
  for (int i = 0; i < NA; i++) free(va[i]);
  free(va);
  /* A's blocks freed after its unload leave the profile; B's stay. */
  p = write_and_read(argv[3], 2);
  if (p != NULL) {
    inuse_of(p, "unload_a_keep", "unload_a", &objs, &in_file);
    CHECK(objs == 0, "A's blocks freed: %lld live objects in unload_a_keep", (long long)objs);
    inuse_of(p, "unload_b_keep", "unload_b", &objs, &in_file);
    CHECK(objs == NB + 1 && in_file == NB + 1, "B after A's frees: %lld objects (%lld in B's file), want %d",
          (long long)objs, (long long)in_file, NB + 1);
    palloc_proto_free(p, NULL);
  }
  for (int i = 0; i < NB; i++) free(vb[i]);
  free(vb);
  dlclose(hb);
  return CHECK_DONE();
}
