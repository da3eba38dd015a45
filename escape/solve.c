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
 * The program is every unit's functions at once: calls across units are linked by name
 * (link_program). Summaries are iterated over all functions in Tarjan order (callees first)
 * until no flag changes; flags only grow, so this terminates at the least fixpoint, which is
 * the sound one for reachability. A free wrapper (freeparam) turns its callers' free sinks
 * into their own frees; its state only moves -1 -> p -> -2, so the fixpoint still ends.
 * Functions in a call cycle get no stack candidates (unbounded recursion of a stack frame that
 * grew would overflow where the heap would not).
 *
 * Then, callees first: pass-through functions (return their parameter) and allocation
 * wrappers (find_wrapper), whose call values become allocations of their callers (wrap_calls);
 * then the verdicts of the units to report.
 */
#include <stdlib.h>
#include <string.h>
#include "escape.h"

/* The functions of all units, linked: calls by name to a function with external linkage
 * defined in another unit resolve to it. */
typedef struct {
  pe_unit *units; int nunits;
  pe_func **fn; int nf;
  int *unit_of;
} program;

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

static const char *call_name(const program *pg, const pe_func *f, const pe_call *c) {
  if (c->callee < 0) return f->ext[-c->callee - 1];
  return c->target >= 0 ? pg->fn[c->target]->name : "?";
}

/* Builds the graph of f under the current summaries and runs every pass. */
static void solve_func(const program *pg, pe_func *f, graph *g, reach *r) {
  int nn = f->nnodes;
  g->ne = g->ns = 0;
  for (int i = 0; i < f->nedges; i++) PE_PUSH(g->e, g->ne, g->cape, f->edges[i]);
  for (int i = 0; i < f->nsinks; i++) PE_PUSH(g->s, g->ns, g->caps, f->sinks[i]);
  for (int i = 0; i < f->ncargs; i++) {
    pe_callarg *c = &f->cargs[i];
    pe_call *call = &f->calls[c->call];
    if (call->target < 0) {
      add_sink(g, c->arg, S_UNKNOWN,
               own(g, pe_fmt("passed to unknown function %s", call_name(pg, f, call))), false,
               c->loc);
      continue;
    }
    pe_func *callee = pg->fn[call->target];
    if (c->param >= callee->nparams) {
      add_sink(g, c->arg, S_UNKNOWN, own(g, pe_fmt("passed to variadic %s", callee->name)),
               false, c->loc);
      continue;
    }
    if (callee->analyzed && callee->freeparam == c->param) { /* a free() of its own */
      add_sink(g, c->arg, S_FREE, own(g, pe_fmt("freed by %s", callee->name)), false, c->loc);
      continue;
    }
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
    if ((s & P_RET) && call->result >= 0) {
      pe_edge e = {c->arg, call->result, c->loc, !(s & P_SRET)};
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
  /* what a parameter points to leaks if loads escape, are returned, or are freed (a free of
   * *pp frees what the caller stored there: git's stop_progress(&progress)) */
  bool content = r->reason[PASS_ESC][f->loaded] >= 0 || r->reason[PASS_RET][f->loaded] >= 0 ||
                 r->reason[PASS_FREE][f->loaded] >= 0;
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
  /* A free wrapper: exactly one parameter is freed, and only freed (not kept, returned, nor
   * its content leaked), and nothing else the function did not allocate itself is freed. Its
   * callers see a free() of their own (free counterparts of allocation wrappers). */
  int fp = -1, nfree = 0;
  for (int p = 0; p < f->nparams; p++)
    if (f->psum[p] & P_FREE) {
      nfree++;
      if (f->psum[p] == P_FREE) fp = p;
    }
  if (nfree != 1 || r->reason[PASS_FREE][f->loaded] >= 0 || r->reason[PASS_FREE][f->other] >= 0)
    fp = -1;
  if (f->freeparam == -1 && fp >= 0) {
    f->freeparam = fp;
    changed = true;
  } else if (f->freeparam >= 0 && fp != f->freeparam) {
    f->freeparam = -2;
    changed = true;
  }
  return changed;
}

/* ---- allocation wrappers ---------------------------------------------------------------- */
/* After the summaries: f is an allocation wrapper if what it returns is one allocation of its
 * own (or of a wrapper it calls) that does not otherwise escape, and nothing else: every node
 * reaching a return is untainted by parameters, loads, unknown call results, addresses. */
static void find_wrapper(pe_func *f, reach *r) {
  f->wrapper = false;
  f->passthru = -1;
  if (!f->analyzed || f->recursive || f->calls_setjmp) return;
  /* a pass-through (redis's extend_to_usable(ptr, size) returns ptr): what reaches its returns
   * is one parameter, copied through untainted variables */
  int param = -1;
  bool pure = true;
  for (int x = 0; x < f->nnodes && pure; x++) {
    if (r->reason[PASS_RET][x] < 0) continue;
    pe_node *n = &f->nodes[x];
    if (n->kind == N_VAR && n->param >= 0 && !n->addr_taken && (param < 0 || param == n->param))
      param = n->param;
    else if (n->mixed || n->kind != N_VAR || n->addr_taken)
      pure = false;
  }
  if (pure && param >= 0 && (f->psum[param] & P_SRET)) f->passthru = param;
  int alloc = -1;
  bool resized = false;
  pe_term t = {0};
  for (int x = 0; x < f->nnodes; x++) {
    if (r->reason[PASS_RET][x] < 0) continue;
    pe_node *n = &f->nodes[x];
    /* an address-taken variable may be given any value through its address */
    if (n->mixed || n->kind == N_ADDR || n->kind == N_LOADED || n->addr_taken) return;
    if (n->kind == N_ALLOC) { /* several (malloc(n), or malloc(1) if that failed): the larger */
      if (r->reason[PASS_ESC][x] >= 0) return;
      t = alloc < 0 ? n->term : pe_term_max(t, n->term);
      alloc = x;
      if (n->resized) resized = true;
    }
  }
  if (alloc < 0) return;
  f->wrapper = true;
  f->wterm = t;
  f->wresized = resized;
}

/* The values of f's calls to allocation wrappers become allocations of f, sized by the
 * wrapper's term of its parameters, with f's arguments put in. */
static void wrap_calls(const program *pg, pe_func *f) {
  for (int i = 0; i < f->ncalls; i++) {
    pe_call *c = &f->calls[i];
    /* the value of a pass-through's call is its argument: no longer mixed (the argument's
     * node flows to it by the callee's summary) */
    if (c->target >= 0 && c->result >= 0 && pg->fn[c->target]->passthru >= 0 &&
        pg->fn[c->target]->passthru < c->nargs)
      f->nodes[c->result].mixed = false;
    if (c->target < 0 || c->result < 0 || !pg->fn[c->target]->wrapper) continue;
    pe_func *w = pg->fn[c->target];
    pe_node *n = &f->nodes[c->result];
    if (n->kind == N_ALLOC) continue;
    n->kind = N_ALLOC;
    n->mixed = false;
    free(n->name);
    n->name = pe_xstrdup(c->text);
    n->site = i;
    n->resized = w->wresized;
    pe_term t = w->wterm.ok ? pe_term_const(w->wterm.k) : (pe_term){0};
    for (int j = 0; j < w->wterm.np && t.ok; j++) {
      int p = w->wterm.p[j];
      t = p < c->nargs ? pe_term_mul(t, c->args[p]) : (pe_term){0};
    }
    t = pe_term_max(pe_term_add(t, pe_term_const(w->wterm.add)), pe_term_const(w->wterm.lo));
    n->term = t;
    n->size_known = t.ok && t.np == 0;
    n->size = n->size_known ? (t.k + t.add > t.lo ? t.k + t.add : t.lo) : -1;
    n->loop_lo = c->loop_lo;
    n->loop_hi = c->loop_hi;
  }
}

/* ---- recursion: Tarjan's strongly connected components ---------------------------------- */
typedef struct {
  program *pg;
  int *index, *low, *stack, *order;
  bool *on;
  int counter, sp, norder;
} tarjan;

static void strong(tarjan *t, int v) {
  t->index[v] = t->low[v] = t->counter++;
  t->stack[t->sp++] = v;
  t->on[v] = true;
  pe_func *f = t->pg->fn[v];
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
      for (int i = t->sp; i < first; i++) t->pg->fn[t->stack[i]]->recursive = true;
  }
}

/* ---- verdicts --------------------------------------------------------------------------- */
static void add(pe_recs *recs, pe_func *f, pe_loc loc, enum pe_rec_kind k, char *msg, int owner) {
  pe_rec r = {.file = f->file, .line = loc.line, .col = loc.col, .kind = k, .msg = msg,
              .func = f->name, .size = -1, .owner = owner};
  pe_rec_add(recs, r);
}

/* The flow lines under the verdict just added. */
static void explain(pe_recs *recs, pe_func *f, graph *g, reach *r, int pass, int x) {
  int owner = recs->seq - 1;
  const char *prev = f->nodes[x].name;
  pe_loc at = f->nodes[x].loc;
  for (int y = x; r->next[pass][y] >= 0;) {
    pe_edge *e = &g->e[r->next[pass][y]];
    y = e->to;
    if (!f->nodes[y].name || f->nodes[y].kind == N_LOADED) {
      if (f->nodes[y].kind == N_LOADED)
        add(recs, f, at, R_FLOW,
            pe_fmt("  flow: loaded through a pointer, from %s at %u:%u", prev, e->loc.line,
                   e->loc.col), owner);
      continue;
    }
    add(recs, f, at, R_FLOW,
        pe_fmt("  flow: %s = %s at %u:%u", f->nodes[y].name, prev, e->loc.line, e->loc.col), owner);
    prev = f->nodes[y].name;
  }
  int s = r->reason[pass][x];
  add(recs, f, at, R_FLOW,
      pe_fmt("  from %s at %u:%u", g->s[s].text, g->s[s].loc.line, g->s[s].loc.col), owner);
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

static void verdicts(pe_func *f, int unit, graph *g, reach *r, const pe_opts *o,
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
      } else if (n->resized) why = pe_xstrdup("resized by realloc");
      else if (!n->size_known) why = pe_xstrdup("non-constant size");
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
      pe_rec rec = {.file = f->file, .line = n->loc.line, .col = n->loc.col, .kind = R_ALLOC,
                    .candidate = why == NULL, .expr = pe_xstrdup(n->name), .reason = why,
                    .func = f->name, .size = n->size_known ? n->size : -1,
                    .inner = f->wrapper && r->reason[PASS_RET][a] >= 0,
                    .unit = unit};
      rec.msg = why ? pe_fmt("%s escapes to heap: %s", n->name, why)
                    : pe_fmt("%s does not escape", n->name);
      pe_rec_add(recs, rec);
      if (o->m >= 2 && pass >= 0) explain(recs, f, g, r, pass, a);
    } else if (n->kind == N_ADDR && f->analyzed) {
      int pass = r->reason[PASS_SRET][a] >= 0 ? PASS_SRET
                 : r->reason[PASS_DANG][a] >= 0 ? PASS_DANG : -1;
      if (pass < 0) continue;
      pe_rec rec = {.file = f->file, .line = n->loc.line, .col = n->loc.col, .kind = R_ADDR,
                    .unit = unit,
                    .expr = pe_xstrdup(n->name), .func = f->name, .size = -1,
                    .reason = pe_xstrdup(g->s[r->reason[pass][a]].text)};
      rec.msg = pe_fmt("%s escapes: %s", n->name, rec.reason);
      pe_rec_add(recs, rec);
      if (o->m >= 2) explain(recs, f, g, r, pass, a);
    } else if (n->kind == N_VAR && n->param >= 0 && n->carries && f->analyzed) {
      unsigned s = f->psum[n->param];
      if (s & P_ESC) {
        add(recs, f, n->loc, R_PARAM, pe_fmt("leaking param: %s", n->name), -1);
        if (o->m >= 2) explain(recs, f, g, r, PASS_ESC, a);
      } else if (s & P_RET) {
        add(recs, f, n->loc, R_PARAM, pe_fmt("leaking param: %s to result", n->name), -1);
      }
    }
  }
  free(lreason);
  free(lnext);
  free(shared);
  free(mark);
}

/* Resolves every external call by name: to the one function of that name with external
 * linkage; none, or several: unknown. Fills pg and the call graph (callees, global indexes). */
static void link_program(program *pg) {
  pg->nf = 0;
  for (int i = 0; i < pg->nunits; i++) pg->nf += pg->units[i].nfuncs;
  pg->fn = malloc(sizeof *pg->fn * ((size_t)pg->nf + 1));
  pg->unit_of = malloc(sizeof *pg->unit_of * ((size_t)pg->nf + 1));
  int *base = malloc(sizeof *base * ((size_t)pg->nunits + 1));
  int k = 0;
  for (int i = 0; i < pg->nunits; i++) {
    base[i] = k;
    for (int j = 0; j < pg->units[i].nfuncs; j++) {
      pg->unit_of[k] = i;
      pg->fn[k++] = &pg->units[i].funcs[j];
    }
  }
  /* name -> function, open addressing; -2: ambiguous */
  size_t cap = 16;
  while (cap < (size_t)pg->nf * 2 + 2) cap *= 2;
  const char **names = calloc(cap, sizeof *names);
  int *idx = calloc(cap, sizeof *idx);
  for (int i = 0; i < pg->nf; i++) {
    pe_func *f = pg->fn[i];
    if (!f->external) continue;
    size_t h = 1469598103934665603ull;
    for (const char *c = f->name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    size_t j = h & (cap - 1);
    while (names[j] && strcmp(names[j], f->name) != 0) j = (j + 1) & (cap - 1);
    if (!names[j]) {
      names[j] = f->name;
      idx[j] = i;
    } else {
      idx[j] = -2; /* several definitions (two programs, or an inline one per file, which
                      macros may make differ): which one is called is not known here */
    }
  }
  for (int i = 0; i < pg->nf; i++) {
    pe_func *f = pg->fn[i];
    int b = base[pg->unit_of[i]];
    for (int j = 0; j < f->ncallees; j++) f->callees[j] += b;
    for (int j = 0; j < f->ncalls; j++) {
      pe_call *c = &f->calls[j];
      if (c->callee >= 0) {
        c->target = b + c->callee;
        continue;
      }
      const char *name = f->ext[-c->callee - 1];
      size_t h = 1469598103934665603ull;
      for (const char *s = name; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
      size_t x = h & (cap - 1);
      while (names[x] && strcmp(names[x], name) != 0) x = (x + 1) & (cap - 1);
      c->target = names[x] && idx[x] >= 0 ? idx[x] : PE_UNKNOWN;
      if (c->target >= 0) PE_PUSH(f->callees, f->ncallees, f->capcallees, c->target);
    }
  }
  free(names);
  free(idx);
  free(base);
}

void pe_solve_program(pe_unit *units, int nunits, const pe_opts *o, pe_recs *recs) {
  program pg = {.units = units, .nunits = nunits};
  link_program(&pg);
  int nf = pg.nf;
  if (nf == 0) { free(pg.fn); free(pg.unit_of); return; }
  tarjan t = {.pg = &pg};
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
    if (pg.fn[i]->nnodes > maxn) maxn = pg.fn[i]->nnodes;
  reach r;
  for (int p = 0; p < NPASS; p++) {
    r.reason[p] = malloc(sizeof(int) * ((size_t)maxn + 1));
    r.next[p] = malloc(sizeof(int) * ((size_t)maxn + 1));
  }
  graph g = {0};
  for (int round = 0;; round++) {
    bool changed = false;
    for (int i = 0; i < nf; i++) {
      pe_func *f = pg.fn[t.order[i]];
      if (!f->analyzed) continue;
      solve_func(&pg, f, &g, &r);
      changed |= summarize(f, &g, &r);
      for (int k = 0; k < g.nowned; k++) free(g.owned[k]);
      g.nowned = 0;
    }
    if (!changed) break;
    if (round > 100) { /* cannot happen (flags only grow); be safe anyway */
      for (int i = 0; i < nf; i++) {
        for (int p = 0; p < pg.fn[i]->nparams; p++)
          pg.fn[i]->psum[p] = P_ESC | P_RET | P_FREE | P_CONTENT;
        pg.fn[i]->freeparam = -2;
      }
      break;
    }
  }
  /* allocation wrappers, callees first (wrappers of wrappers) */
  for (int i = 0; i < nf; i++) {
    pe_func *f = pg.fn[t.order[i]];
    wrap_calls(&pg, f);
    if (!f->analyzed) continue;
    solve_func(&pg, f, &g, &r);
    find_wrapper(f, &r);
    for (int k = 0; k < g.nowned; k++) free(g.owned[k]);
    g.nowned = 0;
  }
  for (int i = 0; i < nf; i++) {
    pe_func *f = pg.fn[i];
    if (!units[pg.unit_of[i]].report) continue;
    solve_func(&pg, f, &g, &r);
    verdicts(f, pg.unit_of[i], &g, &r, o, recs);
    for (int k = 0; k < g.nowned; k++) free(g.owned[k]);
    g.nowned = 0;
  }
  for (int p = 0; p < NPASS; p++) {
    free(r.reason[p]);
    free(r.next[p]);
  }
  free(g.e); free(g.s); free(g.owned); free(g.rstart); free(g.rlist); free(g.queue);
  free(t.index); free(t.low); free(t.stack); free(t.order); free(t.on);
  free(pg.fn); free(pg.unit_of);
}

void pe_unit_free(pe_unit *u) {
  for (int i = 0; i < u->nfuncs; i++) {
    pe_func *f = &u->funcs[i];
    for (int n = 0; n < f->nnodes; n++) free(f->nodes[n].name);
    for (int s = 0; s < f->nsinks; s++) free(f->sinks[s].text);
    for (int p = 0; p < f->nparams; p++) free(f->preason[p]);
    for (int c = 0; c < f->ncalls; c++) { free(f->calls[c].args); free(f->calls[c].text); }
    for (int e = 0; e < f->next; e++) free(f->ext[e]);
    free(f->nodes); free(f->edges); free(f->sinks); free(f->calls); free(f->callees);
    free(f->cargs); free(f->ext);
    free(f->param_node); free(f->psum); free(f->preason);
  }
  free(u->files);
  u->files = NULL;
  u->nfiles = 0;
  free(u->funcs);
  u->funcs = NULL;
  u->nfuncs = 0;
}
