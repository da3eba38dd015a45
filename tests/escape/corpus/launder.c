// Corpus: a pointer's value written as text can be read back as a pointer (snprintf "%p"
// then sscanf "%p"), out of sight of the flow: formatting a pointer's value is an escape,
// as a cast to an integer is. Formatting what it points to (%s) is not.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *gp;

void launder_p(void) {
  char *p = malloc(8); // ERROR "escapes to heap: formatted as a number by snprintf \(%p\)"
  char buf[32];
  snprintf(buf, sizeof buf, "%p", (void *)p);
  void *q;
  sscanf(buf, "%p", &q);
  gp = q;
}

void launder_after_others(int n) {
  char *p = malloc(8); // ERROR "escapes to heap: formatted as a number by sprintf \(%p\)"
  char *s = malloc(8); // ERROR "malloc\(8\) does not escape"
  char buf[64];
  strcpy(s, "x");
  sprintf(buf, "%*d %s %.*s %p", 4, n, s, 2, s, (void *)p);
  free(s);
}

void print_string(void) {
  char *s = malloc(16); // ERROR "malloc\(16\) does not escape"
  strcpy(s, "hello");
  printf("%s %5.3s %d%%\n", s, s, 3);
  free(s);
}

void print_nonconst_format(const char *fmt) {
  char *s = malloc(16); // ERROR "escapes to heap: formatted by printf with a format not known here"
  strcpy(s, "x");
  printf(fmt, s);
  free(s);
}

void print_positional(void) {
  char *s = malloc(16); // ERROR "escapes to heap: formatted by printf with a format not known here"
  strcpy(s, "x");
  printf("%1$s", s);
  free(s);
}

void print_count(void) {
  int *n = malloc(sizeof *n); // ERROR "malloc\(sizeof \*n\) does not escape"
  printf("abc%n\n", n);
  free(n);
}

/* glibc's %m prints errno's text and takes no argument: the %p after it is p's. */
void print_errno_then_pointer(void) {
  char *s = malloc(8); // ERROR "malloc\(8\) does not escape"
  char *p = malloc(8); // ERROR "escapes to heap: formatted as a number by printf \(%p\)"
  strcpy(s, "x");
  printf("%m %s %p\n", s, (void *)p);
  free(s);
}
