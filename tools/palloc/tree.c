/* tree.c - the call tree of a profile, root first, for flame graphs and collapsed stacks.
 *
 * Node 0 is the root (all samples). A sample's stack is walked from its outermost frame to its
 * leaf; each step finds or adds the child (parent, name) through one hash table over all edges,
 * so building is O(total frames). total = value of every sample through the node, self = the
 * part whose leaf is the node. Unlike pprof's cum, a recursive function appears once per depth,
 * which is what a flame graph draws. Negative values (a diff) count as their magnitude.
 * Children are linked in insertion order; the writers sort them by name themselves.
 */
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static uint64_t edge_hash(uint32_t parent, uint32_t name) {
  uint64_t x = ((uint64_t)parent << 32 | name) * 0x9e3779b97f4a7c15ull;
  return x ^ (x >> 29);
}

static void rehash(tree_t *t) {
  size_t cap = t->nslots ? t->nslots * 2 : 4096;
  uint32_t *slots = xcalloc(cap, sizeof *slots);
  for (size_t k = 1; k < t->len; k++) {
    size_t i = edge_hash(t->n[k].parent, t->n[k].name) & (cap - 1);
    while (slots[i]) i = (i + 1) & (cap - 1);
    slots[i] = (uint32_t)k + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->nslots = cap;
}

static uint32_t child(tree_t *t, uint32_t parent, uint32_t name) {
  if ((t->len + 1) * 2 > t->nslots) rehash(t);
  size_t i = edge_hash(parent, name) & (t->nslots - 1);
  while (t->slots[i]) {
    tnode_t *c = &t->n[t->slots[i] - 1];
    if (c->parent == parent && c->name == name) return t->slots[i] - 1;
    i = (i + 1) & (t->nslots - 1);
  }
  if (t->len == t->cap) {
    t->cap *= 2;
    t->n = xrealloc(t->n, t->cap * sizeof *t->n);
  }
  uint32_t k = (uint32_t)t->len++;
  t->n[k] = (tnode_t){.name = name, .parent = parent, .first_child = UINT32_MAX,
                      .next_sibling = t->n[parent].first_child};
  t->n[parent].first_child = k;
  t->slots[i] = k + 1;
  return k;
}

uint32_t tree_find(const tree_t *t, uint32_t parent, uint32_t name) {
  if (t->nslots == 0) return UINT32_MAX;
  size_t i = edge_hash(parent, name) & (t->nslots - 1);
  while (t->slots[i]) {
    const tnode_t *c = &t->n[t->slots[i] - 1];
    if (c->parent == parent && c->name == name) return t->slots[i] - 1;
    i = (i + 1) & (t->nslots - 1);
  }
  return UINT32_MAX;
}

int tree_build(tree_t *t, const view_t *v) {
  memset(t, 0, sizeof *t);
  t->cap = 1024;
  t->n = xmalloc(t->cap * sizeof *t->n);
  t->n[0] = (tnode_t){.name = UINT32_MAX, .parent = UINT32_MAX, .first_child = UINT32_MAX,
                      .next_sibling = UINT32_MAX};
  t->len = 1;
  uint32_t *stack = xmalloc(v->maxdepth * sizeof *stack);
  for (size_t i = 0; i < v->p->n_sample; i++) {
    int64_t w = view_value(v, v->p->sample[i]);
    if (w < 0) w = -w;
    if (w == 0) continue;
    size_t n = view_stack(v, v->p->sample[i], stack, NULL);
    uint32_t at = 0;
    t->n[0].total += w;
    for (size_t k = n; k-- > 0;) {
      at = child(t, at, stack[k]);
      t->n[at].total += w;
    }
    t->n[at].self += w;
  }
  free(stack);
  return 0;
}

static const view_t *cmp_view;
static const tree_t *cmp_tree;

static int by_name(const void *a, const void *b) {
  const tnode_t *x = &cmp_tree->n[*(const uint32_t *)a], *y = &cmp_tree->n[*(const uint32_t *)b];
  return strcmp(cmp_view->names[x->name], cmp_view->names[y->name]);
}

/* Children of node k, sorted by name, in out (returns count). */
size_t tree_sorted_children(const tree_t *t, const view_t *v, uint32_t k, uint32_t *out) {
  size_t n = 0;
  for (uint32_t c = t->n[k].first_child; c != UINT32_MAX; c = t->n[c].next_sibling) out[n++] = c;
  cmp_view = v;
  cmp_tree = t;
  qsort(out, n, sizeof *out, by_name);
  return n;
}

void tree_free(tree_t *t) {
  free(t->n);
  free(t->slots);
  memset(t, 0, sizeof *t);
}
