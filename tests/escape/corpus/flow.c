// Corpus: flows. Field-insensitive locals (a struct or array holding a pointer is one
// location), loads through pointers, the address of a local that holds a pointer, copies by
// memcpy, pointers derived by libc (strchr, strtol's endptr), and expression forms.
#include <stdlib.h>
#include <string.h>

extern void opaque(void *p);
struct pair { char *a; char *b; };
struct pair gpair;
char *gs;

struct pair field_returned(void) {
  struct pair p;
  p.a = malloc(8); // ERROR "escapes to heap: returned"
  p.b = NULL;
  return p;
}

int field_local(void) {
  struct pair p = { malloc(8), NULL }; // ERROR "malloc\(8\) does not escape"
  int r = p.a[0] = 1;
  free(p.a);
  return r;
}

void struct_copied_to_global(void) {
  struct pair p;
  p.a = malloc(8); // ERROR "escapes to heap: stored to global gpair"
  struct pair q = p;
  gpair = q;
}

void array_of_pointers(void) {
  char *slots[4];
  slots[0] = malloc(8); // ERROR "escapes to heap: stored to global gs"
  char *x = slots[0];
  gs = x;
}

char *load_through_alias(void) {
  char *slots[2];
  slots[1] = malloc(8); // ERROR "escapes to heap: returned"
  char **pp = slots;
  return pp[1];
}

void address_escapes_content(void) {
  struct pair p;
  p.a = malloc(8); // ERROR "escapes to heap: stored in p, whose address escapes \(passed to unknown function opaque\)"
  opaque(&p);
}

void address_kept_local(void) {
  struct pair p;
  p.a = malloc(8); // ERROR "malloc\(8\) does not escape"
  struct pair *pp = &p;
  pp->b = NULL;
  free(p.a);
}

void memcpy_content(void) {
  struct pair p;
  p.a = malloc(8); // ERROR "escapes to heap: stored in p, whose address escapes \(copied by memcpy\)"
  memcpy(&gpair, &p, sizeof p);
}

void memcpy_bytes(const char *src) {
  char *p = malloc(32); // ERROR "malloc\(32\) does not escape"
  char *q = malloc(32); // ERROR "malloc\(32\) does not escape"
  memcpy(p, src, 32);
  memcpy(q, p, 32);
  free(p);
  free(q);
}

char *derived_by_strchr(void) {
  char *s = malloc(16); // ERROR "escapes to heap: returned"
  strcpy(s, "a,b");
  return strchr(s, ',');
}

char *endptr_flow(void) {
  char *s = malloc(16); // ERROR "escapes to heap: returned"
  strcpy(s, "12x");
  char *end;
  strtol(s, &end, 10);
  return end;
}

char *endptr_global(void) {
  char *s = malloc(16); // ERROR "escapes to heap: stored through pointer by strtol"
  strcpy(s, "12x");
  strtol(s, &gs, 10);
  return NULL;
}

char *ternary(int c) {
  char *a = malloc(8); // ERROR "escapes to heap: returned"
  char *b = malloc(8); // ERROR "escapes to heap: returned"
  return c ? a : b;
}

char *gnu_conditional(char *q) { // ERROR "leaking param: q to result"
  char *p = malloc(8); // ERROR "escapes to heap: returned"
  return p ?: q;
}

char *comma(void) {
  char *a = malloc(8); // ERROR "malloc\(8\) does not escape"
  char *b = malloc(8); // ERROR "escapes to heap: returned"
  char *r = (a[0] = 0, b);
  free(a);
  return r;
}

char *stmt_expr(void) {
  char *r = ({ char *t = malloc(8); t; }); // ERROR "escapes to heap: returned"
  return r;
}

char *compound_assign(void) {
  char *p = malloc(8); // ERROR "escapes to heap: returned"
  p += 2;
  return p;
}

void struct_by_value(struct pair v);
void passed_by_value(void) {
  struct pair p = { malloc(8), NULL }; // ERROR "escapes to heap: passed to unknown function struct_by_value"
  struct_by_value(p);
}

void reassigned(int c) {
  char *p = malloc(8); // ERROR "escapes to heap: freed at [0-9]+:[0-9]+, where the pointer may be another one"
  if (c) p = malloc(16); // ERROR "escapes to heap: freed at [0-9]+:[0-9]+, where the pointer may be another one"
  free(p);
}

void untracked_value(char *q) {
  char *p = malloc(8); // ERROR "escapes to heap: freed at [0-9]+:[0-9]+, where the pointer may be another one"
  if (q) p = q;
  free(p);
}

void null_reset(void) {
  char *p = malloc(8); // ERROR "malloc\(8\) does not escape"
  free(p);
  p = NULL;
  free(p);
}

char *pointer_to_int_and_back(void) {
  char *p = malloc(8); // ERROR "escapes to heap: cast to integer"
  unsigned long u = (unsigned long)p;
  return (char *)u;
}

/* Designated initializers (libclang: an unexposed expression of type void) carry their value:
 * redis's *li = (functionLibInfo){ .functions = dictCreate(...) }. */
struct named { char *a; int n; };
void designated_compound(struct named *out) {
  char *p = malloc(8); // ERROR "escapes to heap: stored through parameter out"
  *out = (struct named){ .a = p, .n = 1 };
}
void designated_init(struct named *out) {
  char *p = malloc(8); // ERROR "escapes to heap: stored through parameter out"
  struct named v = { .n = 2, .a = p };
  *out = v;
}
int designated_local(void) {
  char *p = malloc(8); // ERROR "malloc\(8\) does not escape"
  struct named v = { .a = p };
  v.a[0] = 1;
  int r = v.a[0];
  free(p);
  return r;
}
