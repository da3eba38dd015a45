/* solve.c - from the graphs of walk.c to summaries and verdicts.
 *
 * Reachability is computed backwards from sinks (one breadth-first pass per kind of sink), so a
 * function costs O(nodes + edges) per pass whatever its number of allocations. Passes:
 *   esc   every sink that is an escape (all but return, own free, content-only);
 *   ret   returns;
 *   fre   frees (a parameter reaching one: the function frees what it is given);
 *   deref "what this points to leaks" (memcpy source, callee leaking param content);
 *   dang  global stores and out-parameters, and sret, returns: both strict, i.e. not through
 *         the coarse LOADED node, for the &local report, which should not cry wolf.
 * An address-taken local whose address escapes (esc, ret or deref) gets a content sink and the
 * passes are redone until nothing changes: a pointer stored in such a local escapes with it.
 *
 * Verdict rules beyond reachability: a constant size under --max-stack; no variable declared
 * outside the allocation's loop body (or backward-goto region) may receive it (the loop rule);
 * every free() it reaches must see only this allocation, since the rewrite deletes that free
 * (p = malloc(8); if (c) p = malloc(16); free(p) rewrites neither); no setjmp, no recursion.
 *
 * Summaries are iterated over the functions in Tarjan order (callees first) until no flag
 * changes; flags only grow, so this terminates at the least fixpoint, which is the sound one for
 * reachability. Functions in a call cycle get no stack candidates (unbounded recursion of a
 * stack frame that grew would overflow where the heap would not).
 */
#include <stdlib.h>
#include <string.h>
#include "escape.h"

typedef struct {
  pe_edge *e; int ne, cape;
  pe_sink *s; int ns, caps;
  char **owned; int nowned, capowned;
  int *rstart, *rlist;  /* incoming edges, CSR */
  int *queue;
} graph;

enum { PASS_ESC, PASS_RET, PASS_FREE, PASS_DEREF, PASS_DANG, PASS_SRET, NPASS };

typedef struct {
  int *reason[NPASS]; /* sink index reaching each node, -1 */
  int *next[NPASS];   /* edge toward that sink, -1 at the sink */
} reach;

static bool pick(int pass, const pe_sink *s) {
  switch (pass) {
    case PASS_ESC: return s->kind != S_RETURN && s->kind != S_FREE && s->kind != S_DEREF;
    case PASS_RET: case PASS_SRET: return s->kind == S_RETURN;
    case PASS_FREE: return s->kind == S_FREE;
    case PASS_DEREF: return s->kind == S_DEREF;
    default: return s->dangling && s->kind != S_RETURN;
  }
}

static void build_rev(graph *g, int nn) {
  free(g->rstart);
  free(g->rlist);
  g->rstart = calloc((size_t)nn + 1, sizeof *g->rstart);
  g->rlist = malloc(sizeof *g->rlist * ((size_t)g->ne + 1));
  for (int i = 0; i < g->ne; i++) g->rstart[g->e[i].to + 1]++;
  for (int i = 0; i < nn; i++) g->rstart[i + 1] += g->rstart[i];
  int *fill = malloc(sizeof *fill * ((size_t)nn + 1));
  memcpy(fill, g->rstart, sizeof *fill * (size_t)nn);
  for (int i = 0; i < g->ne; i++) g->rlist[fill[g->e[i].to]++] = i;
  free(fill);
}

/* Backward BFS from seed nodes; reason[x] = the seed's tag, next[x] = edge toward it. */
static void bfs(graph *g, int *reason, int *next, int qn, bool strict) {
  int qh = 0;
  while (qh < qn) {
    int x = g->queue[qh++];
    for (int i = g->rstart[x]; i < g->rstart[x + 1]; i++) {
      int e = g->rlist[i], y = g->e[e].from;
      if (reason[y] >= 0 || (strict && g->e[e].weak)) continue;
      reason[y] = reason[x];
      next[y] = e;
      g->queue[qn++] = y;
    }
  }
}

static void run_pass(graph *g, int nn, int pass, int *reason, int *next) {
  for (int i = 0; i < nn; i++) reason[i] = next[i] = -1;
  int qn = 0;
  for (int i = 0; i < g->ns; i++) {
    int x = g->s[i].node;
    if (!pick(pass, &g->s[i]) || reason[x] >= 0) continue;
    reason[x] = i;
    g->queue[qn++] = x;
  }
  bfs(g, reason, next, qn, pass == PASS_DANG || pass == PASS_SRET);
}

static char *own(graph *g, char *s) {
  PE_PUSH(g->owned, g->nowned, g->capowned, s);
  return s;
}

static void add_sink(graph *g, int node, enum pe_sink_kind k, char *text, bool dang, pe_loc loc) {
  pe_sink s = {node, k, text, dang, loc};
  PE_PUSH(g->s, g->ns, g->caps, s);
}

/* Builds the graph of f under the current summaries and runs every pass. */
static void solve_func(pe_unit *u, pe_func *f, graph *g, reach *r) {
  int nn = f->nnodes;
  g->ne = g->ns = 0;
  for (int i = 0; i < f->nedges; i++) PE_PUSH(g->e, g->ne, g->cape, f->edges[i]);
  for (int i = 0; i < f->nsinks; i++) PE_PUSH(g->s, g->ns, g->caps, f->sinks[i]);
  for (int i = 0; i < f->ncalls; i++) {
    pe_callarg *c = &f->calls[i];
    pe_func *callee = &u->funcs[c->callee];
    unsigned s = callee->analyzed ? callee->psum[c->param] : (P_ESC | P_RET | P_FREE | P_CONTENT);
    const char *why = callee->analyzed ? callee->preason[c->param] : "not analyzed";
    if (s & P_ESC)
      add_sink(g, c->arg, S_CALLEE_ESC,
               own(g, pe_fmt("passed to %s: %s", callee->name, why ? why : "escapes")),
               (s & P_DANGLE) != 0, c->loc);
    if (s & P_FREE)
      add_sink(g, c->arg, S_CALLEE_FREES, own(g, pe_fmt("freed by callee %s", callee->name)),
               false, c->loc);
    if (s & P_CONTENT)
      add_sink(g, c->arg, S_DEREF, own(g, pe_fmt("content leaked by %s", callee->name)), false,
               c->loc);
    if ((s & P_RET) && c->result >= 0) {
      pe_edge e = {c->arg, c->result, c->loc, !(s & P_SRET)};
      PE_PUSH(g->e, g->ne, g->cape, e);
    }
  }
  g->queue = pe_xrealloc(g->queue, sizeof *g->queue * ((size_t)nn + 1));
  build_rev(g, nn);
  bool *content = calloc((size_t)nn + 1, 1);
  for (int round = 0;; round++) {
    if (round == 64) { /* long chains of &x stored in y stored in ...: give up, conservatively */
      for (int a = 0; a < nn; a++)
        if (f->nodes[a].kind == N_ADDR && !content[f->nodes[a].var]) {
          content[f->nodes[a].var] = true;
          add_sink(g, f->nodes[a].var, S_CONTENT, own(g, pe_xstrdup("address taken")), false,
                   f->nodes[a].loc);
        }
    }
    run_pass(g, nn, PASS_ESC, r->reason[PASS_ESC], r->next[PASS_ESC]);
    run_pass(g, nn, PASS_RET, r->reason[PASS_RET], r->next[PASS_RET]);
    run_pass(g, nn, PASS_DEREF, r->reason[PASS_DEREF], r->next[PASS_DEREF]);
    bool changed = false;
    for (int a = 0; a < nn; a++) {
      if (f->nodes[a].kind != N_ADDR) continue;
      int x = f->nodes[a].var;
      if (content[x]) continue;
      int why = r->reason[PASS_ESC][a] >= 0   ? r->reason[PASS_ESC][a]
                : r->reason[PASS_RET][a] >= 0 ? r->reason[PASS_RET][a]
                                              : r->reason[PASS_DEREF][a];
      if (why < 0) continue;
      content[x] = true;
      changed = true;
      add_sink(g, x, S_CONTENT,
               own(g, pe_fmt("stored in %s, whose address escapes (%s)", f->nodes[x].name,
                             g->s[why].text)),
               false, f->nodes[a].loc);
    }
    if (!changed) break;
  }
  free(content);
  run_pass(g, nn, PASS_FREE, r->reason[PASS_FREE], r->next[PASS_FREE]);
  run_pass(g, nn, PASS_DANG, r->reason[PASS_DANG], r->next[PASS_DANG]);
  run_pass(g, nn, PASS_SRET, r->reason[PASS_SRET], r->next[PASS_SRET]);
}

/* Returns true if a summary flag changed. */
static bool summarize(pe_func *f, graph *g, reach *r) {
  bool changed = false;
  bool content = r->reason[PASS_ESC][f->loaded] >= 0 || r->reason[PASS_RET][f->loaded] >= 0;
  for (int p = 0; p < f->nparams; p++) {
    int x = f->param_node[p];
    unsigned s = 0;
    char *why = NULL;
    if (r->reason[PASS_ESC][x] >= 0) {
      s |= P_ESC;
      why = g->s[r->reason[PASS_ESC][x]].text;
    }
    if (r->reason[PASS_RET][x] >= 0) s |= P_RET;
    if (r->reason[PASS_SRET][x] >= 0) s |= P_SRET;
    if (r->reason[PASS_FREE][x] >= 0) s |= P_FREE;
    if (content || r->reason[PASS_DEREF][x] >= 0) s |= P_CONTENT;
    int d = r->reason[PASS_DANG][x];
    if (d >= 0 && (g->s[d].kind == S_GLOBAL || g->s[d].kind == S_CALLEE_ESC)) s |= P_DANGLE;
    s |= f->psum[p];
    if (s != f->psum[p]) changed = true;
    f->psum[p] = s;
    if (why && (!f->preason[p] || changed)) {
      free(f->preason[p]);
      f->preason[p] = pe_xstrdup(why);
    }
  }
  return changed;
}

/* ---- recursion: Tarjan's strongly connected components ---------------------------------- */
typedef struct {
  pe_unit *u;
  int *index, *low, *stack, *order;
  bool *on;
  int counter, sp, norder;
} tarjan;

static void strong(tarjan *t, int v) {
  t->index[v] = t->low[v] = t->counter++;
  t->stack[t->sp++] = v;
  t->on[v] = true;
  pe_func *f = &t->u->funcs[v];
  for (int i = 0; i < f->ncallees; i++) {
    int w = f->callees[i];
    if (w == v) f->recursive = true;
    if (t->index[w] < 0) {
      strong(t, w);
      if (t->low[w] < t->low[v]) t->low[v] = t->low[w];
    } else if (t->on[w] && t->index[w] < t->low[v]) {
      t->low[v] = t->index[w];
    }
  }
  if (t->low[v] == t->index[v]) {
    int first = t->sp, w;
    do {
      w = t->stack[--t->sp];
      t->on[w] = false;
      t->order[t->norder++] = w;
    } while (w != v);
    if (first - t->sp > 1)
      for (int i = t->sp; i < first; i++) t->u->funcs[t->stack[i]].recursive = true;
  }
}

/* ---- verdicts --------------------------------------------------------------------------- */
static void add(pe_recs *recs, pe_unit *u, pe_func *f, pe_loc loc, enum pe_rec_kind k, char *msg) {
  pe_rec r = {.file = u->path, .line = loc.line, .col = loc.col, .kind = k, .msg = msg,
              .func = f->name, .size = -1};
  pe_rec_add(recs, r);
}

static void explain(pe_recs *recs, pe_unit *u, pe_func *f, graph *g, reach *r, int pass, int x) {
  const char *prev = f->nodes[x].name;
  pe_loc at = f->nodes[x].loc;
  for (int y = x; r->next[pass][y] >= 0;) {
    pe_edge *e = &g->e[r->next[pass][y]];
    y = e->to;
    if (!f->nodes[y].name || f->nodes[y].kind == N_LOADED) {
      if (f->nodes[y].kind == N_LOADED)
        add(recs, u, f, at, R_FLOW,
            pe_fmt("  flow: loaded through a pointer, from %s at %u:%u", prev, e->loc.line,
                   e->loc.col));
      continue;
    }
    add(recs, u, f, at, R_FLOW,
        pe_fmt("  flow: %s = %s at %u:%u", f->nodes[y].name, prev, e->loc.line, e->loc.col));
    prev = f->nodes[y].name;
  }
  int s = r->reason[pass][x];
  add(recs, u, f, at, R_FLOW,
      pe_fmt("  from %s at %u:%u", g->s[s].text, g->s[s].loc.line, g->s[s].loc.col));
}

/* Nodes that reach a variable declared outside [lo, hi): they outlive one loop iteration. */
static void outlives(pe_func *f, graph *g, unsigned lo, unsigned hi, int *reason, int *next) {
  int qn = 0;
  for (int i = 0; i < f->nnodes; i++) reason[i] = next[i] = -1;
  for (int i = 0; i < f->nnodes; i++) {
    pe_node *n = &f->nodes[i];
    if (n->kind != N_VAR || (n->loc.off >= lo && n->loc.off < hi && n->param < 0)) continue;
    reason[i] = i;
    g->queue[qn++] = i;
  }
  bfs(g, reason, next, qn, false);
}

/* free(p) may only be removed by a rewrite if p can only be the allocation being rewritten.
 * For each free site, the sources that reach it; if there are several (or untracked ones),
 * every allocation reaching it is marked with the index of that free sink. */
static void shared_frees(pe_func *f, graph *g, int *shared, int *mark) {
  for (int i = 0; i < f->nnodes; i++) shared[i] = -1, mark[i] = -1;
  long long budget = 50000000;
  for (int s = 0; s < g->ns; s++) {
    if (g->s[s].kind != S_FREE) continue;
    int qn = 0, qh = 0, nsrc = 0;
    bool mixed = false;
    g->queue[qn++] = g->s[s].node;
    mark[g->s[s].node] = s;
    while (qh < qn) {
      int x = g->queue[qh++];
      pe_node *n = &f->nodes[x];
      if (n->kind == N_ALLOC || n->kind == N_ADDR) nsrc++;
      if (n->mixed) mixed = true;
      for (int i = g->rstart[x]; i < g->rstart[x + 1]; i++) {
        int y = g->e[g->rlist[i]].from;
        if (mark[y] == s) continue;
        mark[y] = s;
        g->queue[qn++] = y;
      }
    }
    budget -= qn + 1;
    if (nsrc <= 1 && !mixed && budget > 0) continue;
    for (int i = 0; i < qn; i++)
      if (f->nodes[g->queue[i]].kind == N_ALLOC) shared[g->queue[i]] = s;
  }
}

static void verdicts(pe_unit *u, pe_func *f, graph *g, reach *r, const pe_opts *o,
                     pe_recs *recs) {
  int *lreason = malloc(sizeof *lreason * ((size_t)f->nnodes + 1));
  int *lnext = malloc(sizeof *lnext * ((size_t)f->nnodes + 1));
  unsigned cur_lo = 1, cur_hi = 0; /* region lreason was computed for */
  int *shared = malloc(sizeof *shared * ((size_t)f->nnodes + 1));
  int *mark = malloc(sizeof *mark * ((size_t)f->nnodes + 1));
  shared_frees(f, g, shared, mark);
  for (int a = 0; a < f->nnodes; a++) {
    pe_node *n = &f->nodes[a];
    if (n->kind == N_ALLOC) {
      char *why = NULL;
      int pass = -1;
      if (!f->analyzed) why = pe_xstrdup("function too complex to analyze");
      else if (r->reason[PASS_ESC][a] >= 0) {
        pass = PASS_ESC;
        why = pe_xstrdup(g->s[r->reason[PASS_ESC][a]].text);
      } else if (r->reason[PASS_RET][a] >= 0) {
        pass = PASS_RET;
        why = pe_xstrdup("returned");
      } else if (!n->size_known) why = pe_xstrdup("non-constant size");
      else if (n->size > o->max_stack)
        why = pe_fmt("too large for stack (%lld bytes > %lld)", n->size, o->max_stack);
      if (!why && n->loop_hi) {
        if (cur_lo != n->loop_lo || cur_hi != n->loop_hi) {
          outlives(f, g, n->loop_lo, n->loop_hi, lreason, lnext);
          cur_lo = n->loop_lo;
          cur_hi = n->loop_hi;
        }
        if (lreason[a] >= 0)
          why = pe_fmt("outlives loop iteration (held by %s)", f->nodes[lreason[a]].name);
      }
      if (!why && shared[a] >= 0)
        why = pe_fmt("freed at %u:%u, where the pointer may be another one",
                     g->s[shared[a]].loc.line, g->s[shared[a]].loc.col);
      if (!why && f->calls_setjmp) why = pe_xstrdup("function calls setjmp");
      if (!why && f->recursive) why = pe_fmt("in recursive function %s", f->name);
      pe_rec rec = {.file = u->path, .line = n->loc.line, .col = n->loc.col, .kind = R_ALLOC,
                    .candidate = why == NULL, .expr = pe_xstrdup(n->name), .reason = why,
                    .func = f->name, .size = n->size_known ? n->size : -1};
      rec.msg = why ? pe_fmt("%s escapes to heap: %s", n->name, why)
                    : pe_fmt("%s does not escape", n->name);
      pe_rec_add(recs, rec);
      if (o->m >= 2 && pass >= 0) explain(recs, u, f, g, r, pass, a);
    } else if (n->kind == N_ADDR && f->analyzed) {
      int pass = r->reason[PASS_SRET][a] >= 0 ? PASS_SRET
                 : r->reason[PASS_DANG][a] >= 0 ? PASS_DANG : -1;
      if (pass < 0) continue;
      pe_rec rec = {.file = u->path, .line = n->loc.line, .col = n->loc.col, .kind = R_ADDR,
                    .expr = pe_xstrdup(n->name), .func = f->name, .size = -1,
                    .reason = pe_xstrdup(g->s[r->reason[pass][a]].text)};
      rec.msg = pe_fmt("%s escapes: %s", n->name, rec.reason);
      pe_rec_add(recs, rec);
      if (o->m >= 2) explain(recs, u, f, g, r, pass, a);
    } else if (n->kind == N_VAR && n->param >= 0 && n->carries && f->analyzed) {
      unsigned s = f->psum[n->param];
      if (s & P_ESC) {
        add(recs, u, f, n->loc, R_PARAM, pe_fmt("leaking param: %s", n->name));
        if (o->m >= 2) explain(recs, u, f, g, r, PASS_ESC, a);
      } else if (s & P_RET) {
        add(recs, u, f, n->loc, R_PARAM, pe_fmt("leaking param: %s to result", n->name));
      }
    }
  }
  free(lreason);
  free(lnext);
  free(shared);
  free(mark);
}

void pe_solve_unit(pe_unit *u, const pe_opts *o, pe_recs *recs) {
  int nf = u->nfuncs;
  if (nf == 0) return;
  tarjan t = {.u = u};
  t.index = malloc(sizeof(int) * (size_t)nf);
  t.low = malloc(sizeof(int) * (size_t)nf);
  t.stack = malloc(sizeof(int) * (size_t)nf);
  t.order = malloc(sizeof(int) * (size_t)nf);
  t.on = calloc((size_t)nf, 1);
  for (int i = 0; i < nf; i++) t.index[i] = -1;
  for (int i = 0; i < nf; i++)
    if (t.index[i] < 0) strong(&t, i);
  int maxn = 1;
  for (int i = 0; i < nf; i++)
    if (u->funcs[i].nnodes > maxn) maxn = u->funcs[i].nnodes;
  reach r;
  for (int p = 0; p < NPASS; p++) {
    r.reason[p] = malloc(sizeof(int) * ((size_t)maxn + 1));
    r.next[p] = malloc(sizeof(int) * ((size_t)maxn + 1));
  }
  graph g = {0};
  for (int round = 0;; round++) {
    bool changed = false;
    for (int i = 0; i < nf; i++) {
      pe_func *f = &u->funcs[t.order[i]];
      if (!f->analyzed) continue;
      solve_func(u, f, &g, &r);
      changed |= summarize(f, &g, &r);
      for (int k = 0; k < g.nowned; k++) free(g.owned[k]);
      g.nowned = 0;
    }
    if (!changed) break;
    if (round > 100) { /* cannot happen (flags only grow); be safe anyway */
      for (int i = 0; i < nf; i++)
        for (int p = 0; p < u->funcs[i].nparams; p++)
          u->funcs[i].psum[p] = P_ESC | P_RET | P_FREE | P_CONTENT;
      break;
    }
  }
  for (int i = 0; i < nf; i++) {
    pe_func *f = &u->funcs[i];
    solve_func(u, f, &g, &r);
    verdicts(u, f, &g, &r, o, recs);
    for (int k = 0; k < g.nowned; k++) free(g.owned[k]);
    g.nowned = 0;
  }
  for (int p = 0; p < NPASS; p++) {
    free(r.reason[p]);
    free(r.next[p]);
  }
  free(g.e); free(g.s); free(g.owned); free(g.rstart); free(g.rlist); free(g.queue);
  free(t.index); free(t.low); free(t.stack); free(t.order); free(t.on);
}

void pe_unit_free(pe_unit *u) {
  for (int i = 0; i < u->nfuncs; i++) {
    pe_func *f = &u->funcs[i];
    for (int n = 0; n < f->nnodes; n++) free(f->nodes[n].name);
    for (int s = 0; s < f->nsinks; s++) free(f->sinks[s].text);
    for (int p = 0; p < f->nparams; p++) free(f->preason[p]);
    free(f->nodes); free(f->edges); free(f->sinks); free(f->calls); free(f->callees);
    free(f->param_node); free(f->psum); free(f->preason);
  }
  free(u->funcs);
  u->funcs = NULL;
  u->nfuncs = 0;
}
