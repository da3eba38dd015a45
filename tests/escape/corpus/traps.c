// Corpus: traps. Ways a pointer leaves a function without looking like it: type punning,
// callees that leak what their parameter points to, builtins, atomics, threads given a local.
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

uintptr_t gint;
char *gs;
struct box { char *p; int n; };
union pun { char *p; uintptr_t u; };

void union_pun(void) {
  union pun x;
  x.p = malloc(8); // ERROR "escapes to heap: read as an integer through a union"
  gint = x.u;
}

void union_pun_through_pointer(void) {
  union pun x;
  union pun *px = &x;
  x.p = malloc(8); // ERROR "escapes to heap: read as an integer through a union"
  gint = px->u;
}

void pointer_pun(void) {
  char *p = malloc(8); // ERROR "escapes to heap: stored in p, whose address escapes \(reinterpreted as integers\)"
  gint = *(uintptr_t *)&p;
}

void pointer_pun_via_void(void) {
  char *p = malloc(8); // ERROR "escapes to heap: stored in p, whose address escapes \(reinterpreted as integers\)"
  void *v = &p;
  gint = *(uintptr_t *)v;
}

/* The callee leaks what its parameter points to: the caller's box content escapes. */
static void keep_content(struct box *b) { gs = b->p; }
void callee_leaks_content(void) {
  struct box b;
  b.p = malloc(8); // ERROR "escapes to heap: stored in b, whose address escapes \(content leaked by keep_content\)"
  keep_content(&b);
}

/* The callee only reads: the box content stays. */
static int read_content(const struct box *b) { return b->p[0] + b->n; }
int callee_reads_content(void) {
  struct box b;
  b.p = malloc(8); // ERROR "malloc\(8\) does not escape"
  b.p[0] = 1;
  b.n = 1;
  int r = read_content(&b);
  free(b.p);
  return r;
}

void builtin_memcpy_out(void) {
  char *p = malloc(8); // ERROR "escapes to heap: stored in p, whose address escapes \(copied by __builtin_memcpy\)"
  __builtin_memcpy(&gs, &p, sizeof p);
}

/* Atomic builtins are not calls for libclang 14 (unexposed): conservatively an escape. */
void atomic_store(void) {
  char *p = malloc(8); // ERROR "escapes to heap: used in an unexposed expression"
  __atomic_store_n(&gs, p, __ATOMIC_SEQ_CST);
}

static void *run(void *arg) { return arg; } // ERROR "leaking param: arg to result"
void thread_gets_local(void) {
  struct box b;
  pthread_t t;
  b.p = malloc(8); // ERROR "escapes to heap: stored in b, whose address escapes \(captured by pthread_create\)"
  pthread_create(&t, NULL, run, &b);
  pthread_join(t, NULL);
}

/* A function pointer to free: an indirect call, so the allocation escapes. */
void indirect_free(void) {
  void (*release)(void *) = free;
  char *p = malloc(8); // ERROR "escapes to heap: passed to indirect call"
  release(p);
}

/* Freed through a copy: still the allocation's own free. */
void free_through_copy(void) {
  char *p = malloc(8); // ERROR "malloc\(8\) does not escape"
  char *q = p;
  free(q);
}

/* Pointer stored into an integer array element of a local: an integer cast. */
void int_slot(void) {
  uintptr_t slots[2];
  char *p = malloc(8); // ERROR "escapes to heap: cast to integer"
  slots[0] = (uintptr_t)p;
  gint = slots[0];
}

/* sizeof does not evaluate its operand. */
size_t unevaluated(void) {
  char *p = malloc(8); // ERROR "malloc\(8\) does not escape"
  size_t n = sizeof(gs = p);
  free(p);
  return n;
}
