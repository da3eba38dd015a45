/* test_threads.c - 8 threads allocate, hand blocks to each other and free them (cross-thread
 * frees), millions of operations at rate 1 (every block sampled). At the end each thread keeps
 * KEEP blocks of known size: the live sampled objects and bytes palloc reports must equal that
 * truth exactly, and no counter may have gone negative. Built through the libc names with
 * libpalloc, and through the palloc_* API for the ThreadSanitizer build. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "palloc.h"
#include "../check.h"
#ifndef USE_PALLOC_API
#include "palloc_proto.h"

/* Sums inuse objects and bytes over the samples whose stack contains function `fn`, from a
 * profile palloc writes now: the libc build cannot use the process-wide stats, because glibc's
 * own allocations for the new threads (their TLS vectors) are live and sampled too. */
static void inuse_of(const char *fn, const char *path, int64_t *objs, int64_t *bytes) {
  char err[PALLOC_PROTO_ERRLEN];
  *objs = *bytes = -1;
  if (palloc_profile_write(path) != 0) return;
  palloc_pb_profile_t *p = palloc_proto_read_file(path, NULL, err);
  if (p == NULL) {
    fprintf(stderr, "%s: %s\n", path, err);
    return;
  }
  *objs = *bytes = 0;
  for (size_t i = 0; i < p->n_sample; i++) {
    int hit = 0;
    for (size_t k = 0; k < p->sample[i]->n_location_id && !hit; k++)
      for (size_t l = 0; l < p->n_location && !hit; l++) {
        Perftools__Profiles__Location *loc = p->location[l];
        if (loc->id != p->sample[i]->location_id[k]) continue;
        for (size_t j = 0; j < loc->n_line; j++)
          for (size_t f = 0; f < p->n_function; f++)
            if (p->function[f]->id == loc->line[j]->function_id &&
                strcmp(p->string_table[p->function[f]->name], fn) == 0)
              hit = 1;
      }
    if (hit) {
      *objs += p->sample[i]->value[2];
      *bytes += p->sample[i]->value[3];
    }
  }
  palloc_proto_free(p, NULL);
}
#endif

#ifdef USE_PALLOC_API
#define MALLOC palloc_malloc
#define FREE palloc_free
#else
#define MALLOC malloc
#define FREE free
#endif

#if defined(__SANITIZE_THREAD__)
#define OPS 20000
#else
#define OPS 250000
#endif
#define NT 8
#define KEEP 100
#define RING 1024

typedef struct {
  pthread_mutex_t lock;
  void *slot[RING];
  size_t size[RING];
  int head, count;
} mailbox_t;

static mailbox_t box[NT];
static size_t kept_bytes[NT];

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
  void *keep[KEEP] = {0};
  size_t keep_size[KEEP] = {0};
  for (int i = 0; i < OPS; i++) {
    size_t n = 8 + rnd(&seed) % 1024;
    if (i % 1000 == 0) n = 65536 + rnd(&seed) % 65536;
    unsigned char *p = MALLOC(n);
    if (p == NULL) abort();
#if !defined(__SANITIZE_THREAD__) /* mimalloc's reuse of memory is invisible to TSan */
    p[0] = (unsigned char)id;
    p[n - 1] = (unsigned char)i;
#endif
    int k = i % KEEP;
    if (rnd(&seed) % 2) { /* hand the previous block in this slot to the next thread */
      mailbox_t *b = &box[(id + 1) % NT];
      pthread_mutex_lock(&b->lock);
      if (keep[k] && b->count < RING) {
        b->slot[(b->head + b->count) % RING] = keep[k];
        b->size[(b->head + b->count) % RING] = keep_size[k];
        b->count++;
        keep[k] = NULL;
      }
      pthread_mutex_unlock(&b->lock);
    }
    if (keep[k]) FREE(keep[k]);
    keep[k] = p;
    keep_size[k] = n;
    mailbox_t *mine = &box[id]; /* free what other threads handed us */
    pthread_mutex_lock(&mine->lock);
    while (mine->count > 0) {
      FREE(mine->slot[mine->head]);
      mine->head = (mine->head + 1) % RING;
      mine->count--;
    }
    pthread_mutex_unlock(&mine->lock);
  }
  size_t bytes = 0;
  for (int k = 0; k < KEEP; k++) bytes += keep_size[k];
  kept_bytes[id] = bytes;
  return NULL; /* the KEEP blocks stay allocated: the known live set */
}

int main(void) {
  pthread_t th[NT];
  for (int i = 0; i < NT; i++) pthread_mutex_init(&box[i].lock, NULL);
  palloc_set_sample_rate(1);
  palloc_stats_t before, after;
  palloc_read_stats(&before);
  for (int i = 0; i < NT; i++) pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
  for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < NT; i++) /* blocks still in mailboxes are freed here */
    while (box[i].count > 0) {
      FREE(box[i].slot[box[i].head]);
      box[i].head = (box[i].head + 1) % RING;
      box[i].count--;
    }
  palloc_read_stats(&after);
  size_t truth = 0;
  for (int i = 0; i < NT; i++) truth += kept_bytes[i];
#ifdef USE_PALLOC_API
  uint64_t live = after.live_sampled_blocks - before.live_sampled_blocks;
  uint64_t bytes = after.live_sampled_bytes - before.live_sampled_bytes;
#else
  int64_t l, b;
  inuse_of("worker", "threads.pb.gz", &l, &b);
  uint64_t live = (uint64_t)l, bytes = (uint64_t)b;
#endif
  CHECK(live == NT * KEEP, "live sampled objects %llu, truth %d", (unsigned long long)live,
        NT * KEEP);
  CHECK(bytes == truth, "live sampled bytes %llu, truth %zu", (unsigned long long)bytes, truth);
  CHECK(after.sampled_allocs - before.sampled_allocs >= (uint64_t)NT * OPS,
        "every allocation sampled: %llu", (unsigned long long)(after.sampled_allocs - before.sampled_allocs));
  CHECK(after.samples_dropped == 0, "no dropped samples: %llu",
        (unsigned long long)after.samples_dropped);
  CHECK(after.sampled_frees <= after.sampled_allocs, "frees never exceed allocs");
  printf("threads: %d x %d allocations, %llu live sampled, %llu buckets, %llu B palloc-internal\n",
         NT, OPS, (unsigned long long)live, (unsigned long long)after.buckets,
         (unsigned long long)after.internal_bytes);
  return CHECK_DONE();
}
