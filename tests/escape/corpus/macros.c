// Corpus: macros. A macro-wrapped allocation is reported at the macro invocation (the
// expansion location, where compilers and profilers put it too); operators written inside
// macro bodies cannot be read from the source, and are taken conservatively.
#include <stdlib.h>
#include <string.h>

#define NEW(T) ((T *)malloc(sizeof(T)))
#define NEW_ARRAY(T, n) ((T *)calloc((n), sizeof(T)))
#define XFREE(p) do { free(p); (p) = NULL; } while (0)
#define KEEP(dst, src) ((dst) = (src))
#define PICK(a, b) ((a), (b))

struct item { int key; char name[16]; };
struct item *gitem;
char *gitem_name;
#define gitem_name_ptr() gitem_name

int macro_local(void) {
  struct item *it = NEW(struct item); // ERROR "NEW\(struct item\) does not escape"
  it->key = 3;
  int k = it->key;
  XFREE(it);
  return k;
}

struct item *macro_returned(void) {
  struct item *it = NEW(struct item); // ERROR "NEW\(struct item\) escapes to heap: returned"
  return it;
}

void macro_array(int n) {
  int *a = NEW_ARRAY(int, 8); // ERROR "NEW_ARRAY\(int, 8\) does not escape"
  int *b = NEW_ARRAY(int, n); // ERROR "NEW_ARRAY\(int, n\) escapes to heap: non-constant size"
  free(a);
  free(b);
}

void macro_store(void) {
  struct item *it = NEW(struct item); // ERROR "stored to global gitem"
  KEEP(gitem, it);
}

/* Two allocations in one invocation: two verdicts on that line, both named by the invocation.
 * do { } while (0) is not a loop. */
#define PAIR(a, b) do { a = malloc(8); b = malloc(4096 * 2); } while (0)
void macro_pair(void) {
  char *x, *y;
  PAIR(x, y); // ERROR "PAIR\(x, y\) does not escape" "PAIR\(x, y\) escapes to heap: too large for stack \(8192 bytes"
  free(x);
  free(y);
}

/* The comma inside the macro body cannot be read: taken as an assignment (conservative). */
void macro_comma(void) {
  char *p = malloc(8); // ERROR "escapes to heap: stored through pointer" SAFE
  char *q = malloc(8); // ERROR "malloc\(8\) does not escape"
  char *r = PICK(gitem_name_ptr(), p);
  free(r == q ? q : q);
}
