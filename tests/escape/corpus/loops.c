// Corpus: the loop rule. An allocation made in a loop whose pointer outlives the iteration
// (held by a variable declared outside the loop body) cannot become a local array of the body.
#include <stdlib.h>
#include <string.h>

int inside(int n) {
  int s = 0;
  for (int i = 0; i < n; i++) {
    char *p = malloc(32); // ERROR "malloc\(32\) does not escape"
    p[0] = (char)i;
    s += p[0];
    free(p);
  }
  return s;
}

void outlives(int n) {
  char *keep = NULL;
  for (int i = 0; i < n; i++) {
    free(keep);
    keep = malloc(32); // ERROR "outlives loop iteration \(held by keep\)"
  }
  free(keep);
}

void outlives_via_copy(int n) {
  char *last = NULL;
  while (n-- > 0) {
    char *p = malloc(8); // ERROR "outlives loop iteration \(held by last\)"
    char *q = p;
    last = q;
  }
  free(last);
}

void for_init_variable(void) {
  for (char *p = NULL; ; ) {
    p = malloc(8); // ERROR "outlives loop iteration \(held by p\)"
    free(p);
    break;
  }
}

void do_while(int n) {
  do {
    char *p = malloc(8); // ERROR "malloc\(8\) does not escape"
    free(p);
  } while (--n > 0);
}

void nested(int n) {
  for (int i = 0; i < n; i++) {
    char *row = malloc(8); // ERROR "malloc\(8\) escapes to heap: freed at [0-9]+:[0-9]+, where the pointer may be another one"
    for (int j = 0; j < n; j++) {
      char *cell = malloc(8); // ERROR "malloc\(8\) does not escape"
      free(cell);
      row = malloc(8); // ERROR "outlives loop iteration \(held by row\)"
    }
    free(row);
  }
}

void backward_goto(int n) {
  char *held = NULL;
again:
  held = malloc(8); // ERROR "outlives loop iteration \(held by held\)"
  if (--n > 0) { free(held); goto again; }
  free(held);
}

void forward_goto(int n) {
  char *p = malloc(8); // ERROR "malloc\(8\) does not escape"
  if (n) goto out;
  p[0] = 0;
out:
  free(p);
}

void loop_condition(void) {
  char *p;
  int k = 0;
  while ((p = malloc(8)) != NULL && k++ < 3) // ERROR "outlives loop iteration \(held by p\)"
    free(p);
}

void array_of_rows(char *rows[4]) {
  for (int i = 0; i < 4; i++)
    rows[i] = malloc(8); // ERROR "escapes to heap: stored through parameter rows"
}
