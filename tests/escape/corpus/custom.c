// Corpus: options. Custom allocators and deallocators (--alloc/--free) and a smaller stack
// threshold (--max-stack).
// ARGS: --alloc xmalloc --alloc xcalloc --free xfree --max-stack 128
#include <stddef.h>
#include <string.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void xfree(void *p);
char *gkeep;

int custom_local(void) {
  char *p = xmalloc(64); // ERROR "xmalloc\(64\) does not escape"
  memset(p, 1, 64);
  int r = p[3];
  xfree(p);
  return r;
}

void custom_threshold(void) {
  char *p = xmalloc(129); // ERROR "too large for stack \(129 bytes > 128\)"
  int *q = xcalloc(4, sizeof(int)); // ERROR "xcalloc\(4, sizeof\(int\)\) does not escape"
  int *r = xcalloc(64, sizeof(int)); // ERROR "too large for stack \(256 bytes > 128\)"
  xfree(p);
  xfree(q);
  xfree(r);
}

void custom_escape(void) {
  char *p = xmalloc(8); // ERROR "stored to global gkeep"
  gkeep = p;
}

/* A wrapper defined here frees through the custom deallocator and does nothing else: it is
 * that deallocator's counterpart, a free() of the caller's own. */
static void release(char *p) { xfree(p); }
void via_wrapper(void) {
  char *p = xmalloc(8); // ERROR "xmalloc\(8\) does not escape"
  release(p);
}

/* One that also frees what the object points to is not (the rewrite cannot delete it). */
struct node { char *name; };
static void release_node(struct node *n) { xfree(n->name); xfree(n); }
void via_deep_release(void) {
  struct node *n = xmalloc(sizeof *n); // ERROR "freed by callee release_node"
  n->name = 0;
  release_node(n);
}
