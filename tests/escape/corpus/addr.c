// Corpus: the reverse report. The address of a local (&x, or a local array decaying to a
// pointer) that is returned, stored to a global or static, or stored through a pointer
// parameter outlives its frame: a dangling pointer (CWE-562).
#include <stdio.h>
#include <string.h>

int *gp;
char *gbuf;
struct holder { char *p; };

int *ret_addr(void) {
  int x = 1;
  return &x; // ERROR "&x escapes: returned"
}

char *ret_array(void) {
  char buf[16];
  strcpy(buf, "hi");
  return buf; // ERROR "&buf escapes: returned"
}

char *ret_array_offset(void) {
  char buf[16];
  buf[0] = 0;
  char *p = buf + 2; // ERROR "&buf escapes: returned"
  return p;
}

void store_global(void) {
  char buf[16];
  gbuf = buf; // ERROR "&buf escapes: stored to global gbuf"
}

void store_static(void) {
  static int *keep;
  int y = 0;
  keep = &y; // ERROR "&y escapes: stored to static keep"
}

void out_param(int **out) {
  int z = 0;
  *out = &z; // ERROR "&z escapes: stored through parameter out"
}

void out_field(struct holder *h) {
  char tmp[8];
  h->p = tmp; // ERROR "&tmp escapes: stored through parameter h"
}

int *ret_param_addr(int v) {
  return &v; // ERROR "&v escapes: returned"
}

int *ret_static(void) {
  static int counter;
  return &counter;
}

int *ret_global(void) {
  static int arr[4];
  return arr;
}

/* Passing the address down is normal C: no report. */
static int sum(const int *v, int n) { int s = 0; for (int i = 0; i < n; i++) s += v[i]; return s; }
int pass_down(void) {
  int v[4] = {1, 2, 3, 4};
  int x = 5;
  memset(&x, 0, sizeof x);
  printf("%d\n", x);
  return sum(v, 4);
}

/* Stored in a local struct that is then returned by value: the address goes out with it. */
struct holder ret_struct(void) {
  char tmp[8];
  struct holder h;
  h.p = tmp; // ERROR "&tmp escapes: returned"
  return h;
}

/* A callee that stores its parameter to a global makes the caller's &local dangle. */
static void remember(int *p) { gp = p; } // ERROR "leaking param: p"
void through_callee(void) {
  int w = 0;
  remember(&w); // ERROR "&w escapes: passed to remember: stored to global gp"
}

struct point { int x, y; };
struct point *compound_literal(void) {
  return &(struct point){1, 2}; // ERROR "&compound literal escapes: returned"
}

const char *string_literal(void) {
  return "fine: static storage";
}

/* A callee that returns only what it loads through its parameter: the caller's &head does not
 * come back, so no dangling report (the coarse "loaded" flow is not followed for this report). */
struct link { struct link *next; int v; };
static struct link *second(struct link *list) { // ERROR "leaking param: list to result"
  struct link *slot[1];
  slot[0] = list;
  struct link **pp = slot;
  return (*pp)->next;
}
struct link *use_second(struct link *l) { // ERROR "leaking param: l$"
  struct link head = { l, 0 };
  return second(&head);
}
