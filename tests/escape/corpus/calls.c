// Corpus: callees. libc knowledge (safe, capturing, freeing, realloc), unknown and indirect
// callees, summaries of functions defined in this file, recursion and setjmp.
#include <pthread.h>
#include <search.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void opaque(void *p);
static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int libc_safe(const char *src) {
  char *p = malloc(64); // ERROR "malloc\(64\) does not escape"
  memset(p, 0, 64);
  memcpy(p, src, 8);
  strcpy(p + 8, "x");
  int n = (int)strlen(p) + strcmp(p, src) + memcmp(p, src, 2);
  printf("%s %d\n", p, n);
  snprintf(p, 64, "%d", n);
  free(p);
  return n;
}

int sync_callbacks(void) {
  int *v = malloc(10 * sizeof(int)); // ERROR "does not escape"
  for (int i = 0; i < 10; i++) v[i] = 10 - i;
  qsort(v, 10, sizeof(int), cmp_int);
  int key = 3;
  int *hit = bsearch(&key, v, 10, sizeof(int), cmp_int);
  int r = hit ? *hit : -1;
  free(v);
  return r;
}

void unknown_callee(void) {
  char *p = malloc(16); // ERROR "escapes to heap: passed to unknown function opaque"
  opaque(p);
}

void indirect(void (*fn)(void *)) {
  char *p = malloc(16); // ERROR "escapes to heap: passed to indirect call"
  fn(p);
  free(p);
}

struct ops { void (*use)(char *); };
void indirect_member(struct ops *o) {
  char *p = malloc(16); // ERROR "escapes to heap: passed to indirect call"
  o->use(p);
}

static void *worker(void *arg) { return arg; } // ERROR "leaking param: arg to result"
void thread_capture(void) {
  pthread_t t;
  int *arg = malloc(sizeof(int)); // ERROR "escapes to heap: captured by pthread_create"
  pthread_create(&t, NULL, worker, arg);
  pthread_join(t, NULL);
}

static pthread_key_t key;
void tls_capture(void) {
  char *p = malloc(8); // ERROR "captured by pthread_setspecific"
  pthread_setspecific(key, p);
}

void stdio_buffer(FILE *f) {
  char *buf = malloc(BUFSIZ); // ERROR "captured by setvbuf"
  setvbuf(f, buf, _IOFBF, BUFSIZ);
  char *b2 = malloc(BUFSIZ); // ERROR "captured by setbuf"
  setbuf(f, b2);
}

void env_capture(void) {
  char *s = malloc(32); // ERROR "captured by putenv"
  strcpy(s, "A=1");
  putenv(s);
}

void strtok_state(void) {
  char *s = malloc(32); // ERROR "captured by strtok"
  strcpy(s, "a b");
  strtok(s, " ");
  strtok(NULL, " ");
  free(s);
}

void getline_reallocs(FILE *f) {
  size_t n = 16;
  char *line = malloc(16); // ERROR "escapes to heap: stored in line, whose address escapes \(realloc'd by getline\)"
  getline(&line, &n, f);
  free(line);
}

void reallocated(void) {
  char *p = malloc(16); // ERROR "escapes to heap: realloc'd by realloc"
  char *q = realloc(p, 32); // ERROR "realloc\(p, 32\) escapes to heap: resized by realloc"
  free(q);
}

/* Summaries of functions defined here. */
static size_t only_reads(const char *s) { return strlen(s); }
static void frees_it(char *p) { free(p); }
static char *identity(char *p) { return p; } // ERROR "leaking param: p to result"
static char *saved;
static void keeps(char *p) { saved = p; } // ERROR "leaking param: p"
static void keeps_indirectly(char *p) { keeps(p); } // ERROR "leaking param: p"

size_t summary_reads(void) {
  char *p = calloc(1, 16); // ERROR "calloc\(1, 16\) does not escape"
  size_t n = only_reads(p);
  free(p);
  return n;
}

/* A callee that only frees its parameter is a free() of the caller's own. */
void summary_frees(void) {
  char *p = malloc(16); // ERROR "malloc\(16\) does not escape"
  frees_it(p);
}

/* One that frees it and keeps it, or frees something else too, is not. */
static char *kept_after_free;
static void frees_and_keeps(char *p) { kept_after_free = p; free(p); } // ERROR "leaking param: p"
static void frees_two(char *p, char *q) { free(p); free(q); }
void summary_frees_more(char *other) { // ERROR "leaking param: other"
  char *p = malloc(16); // ERROR "escapes to heap: passed to frees_and_keeps: stored to static kept_after_free"
  frees_and_keeps(p);
  char *q = malloc(16); // ERROR "escapes to heap: freed by callee frees_two"
  frees_two(q, other);
}

char *summary_identity(void) {
  char *p = malloc(16); // ERROR "escapes to heap: returned"
  char *q = malloc(16); // ERROR "malloc\(16\) does not escape"
  identity(q);
  free(q);
  return identity(p);
}

void summary_keeps(void) {
  char *p = malloc(16); // ERROR "passed to keeps_indirectly: passed to keeps: stored to static saved"
  keeps_indirectly(p);
}

/* Defined after its use: summaries do not depend on order. */
static int later(const char *p);
int use_later(void) {
  char *p = malloc(16); // ERROR "does not escape"
  int r = later(p);
  free(p);
  return r;
}
static int later(const char *p) { return p[0]; }

/* Recursion: no stack candidates in a call cycle. */
int self_recursive(int n) {
  char *p = malloc(16); // ERROR "escapes to heap: in recursive function self_recursive"
  int r = n > 0 ? self_recursive(n - 1) : 0;
  free(p);
  return r;
}
static int ping(int n);
static int pong(int n) {
  char *p = malloc(16); // ERROR "in recursive function pong"
  free(p);
  return n > 0 ? ping(n - 1) : 0;
}
static int ping(int n) { return pong(n); }
int start_ping(void) { return ping(3); }

/* A recursive function that stores its parameter: the fixpoint finds the leak. */
static char *deep_keep;
static void walk_down(char *p, int n) { // ERROR "leaking param: p"
  if (n == 0) deep_keep = p;
  else walk_down(p, n - 1);
}
void use_walk_down(void) {
  char *p = malloc(16); // ERROR "passed to walk_down"
  walk_down(p, 3);
}

jmp_buf env;
int with_setjmp(void) {
  char *p = malloc(16); // ERROR "escapes to heap: function calls setjmp"
  if (setjmp(env)) return 1;
  free(p);
  return 0;
}

void variadic_own(int n, ...);
static void my_printf(const char *fmt, ...) { (void)fmt; }
void variadic(void) {
  char *p = malloc(16); // ERROR "passed to variadic my_printf"
  my_printf("%p", p);
  free(p);
}

void tree_capture(void **root) { // ERROR "leaking param: root"
  int *k = malloc(sizeof(int)); // ERROR "captured by tsearch"
  tsearch(k, root, cmp_int);
}

/* strdup copies: the source stays a candidate (the copy is not a tracked allocation). */
char *dup_of_local(void) {
  char *p = malloc(16); // ERROR "malloc\(16\) does not escape"
  strcpy(p, "x");
  char *d = strdup(p);
  free(p);
  return d;
}

/* A call in an argument of another call: each argument goes to its own callee. */
static char *nested_kept;
static void keep_second(const char *a, char *b) { (void)a; nested_kept = b; } // ERROR "leaking param: b"
static const char *first_of(const char *a, const char *b) { (void)b; return a; } // ERROR "leaking param: a to result"
void nested_call_args(const char *x, const char *y) {
  char *p = malloc(8); // ERROR "escapes to heap: passed to keep_second: stored to static nested_kept"
  keep_second(first_of(x, y), p);
}

/* A callee that frees what its parameter points to (git's stop_progress(&progress)): the
 * allocation stored there is freed by someone else. */
struct progress { int n; };
static void release_ref(struct progress **pp) { free(*pp); *pp = NULL; }
void callee_frees_content(void) {
  struct progress *p = malloc(sizeof *p); // ERROR "escapes to heap: stored in p, whose address escapes \(content leaked by release_ref\)"
  p->n = 1;
  release_ref(&p);
}
