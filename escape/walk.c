/* walk.c - from libclang cursors to the escape graph of each function (model: escape.h).
 *
 * val(e) returns the node holding the pointer value of expression e (-1: e carries no tracked
 * pointer), addr(e) the node holding the address of lvalue e, store(lhs, n) records "n is
 * stored into lhs". Every sub-expression is visited exactly once, for its effects, whatever its
 * value is used for; a kind we do not know merges the values of its children (over-approximate:
 * more flows can only make more things escape).
 *
 * libclang 14 has no operator-kind API. Unary operators are told apart by types (&x: T -> T*,
 * *p: T* -> T, the rest keeps the type). Binary operators only matter when both operands carry
 * pointers: then it is '=' or ','; the operator is read from the source text between the two
 * operands, and when that text is not there (operands from a macro body) it is taken to be '=',
 * the conservative choice. An integer-typed value never carries a tracked pointer, because the
 * pointer-to-integer cast that made it is itself an escape.
 *
 * Loops: each allocation remembers the body extent of its innermost loop (or of a backward goto
 * region); a variable declared outside that extent outlives the iteration (solve.c).
 * Deep expressions recurse; past PE_MAX_DEPTH the function is given up (all its allocations
 * escape, its parameters leak) rather than risk the stack.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "escape.h"

#define PE_MAX_DEPTH 20000

typedef struct { unsigned lo, hi; } region;

typedef struct {
  const void *key; int node;
} varslot;

typedef struct {
  CXTranslationUnit tu;
  pe_unit *u;
  pe_func *f;
  const pe_opts *o;
  CXFile mainfile;
  CXCursor *fcur;           /* cursor of each function of the unit */
  varslot *vars; size_t nvars, capvars; /* Decl* -> node, open addressing */
  char **fnames; int *fidx; size_t capf; /* function name -> index */
  region loops[512]; int nloops;
  int depth;
  bool too_deep;
} walker;

/* ---- small helpers ---------------------------------------------------------------------- */
typedef struct { CXCursor *v; int n, cap; } kids_t;

static enum CXChildVisitResult collect(CXCursor c, CXCursor parent, CXClientData d) {
  kids_t *k = d;
  PE_PUSH(k->v, k->n, k->cap, c);
  return CXChildVisit_Continue;
}

static kids_t kids(CXCursor c) {
  kids_t k = {0};
  clang_visitChildren(c, collect, &k);
  return k;
}

static char *spell(CXCursor c) {
  CXString s = clang_getCursorSpelling(c);
  char *r = pe_xstrdup(clang_getCString(s));
  clang_disposeString(s);
  return r;
}

static pe_loc loc_of(CXCursor c) {
  CXFile f;
  unsigned line, col, off;
  clang_getExpansionLocation(clang_getCursorLocation(c), &f, &line, &col, &off);
  return (pe_loc){line, col, off};
}

static void extent_offs(CXCursor c, unsigned *lo, unsigned *hi) {
  CXSourceRange r = clang_getCursorExtent(c);
  CXFile f;
  clang_getExpansionLocation(clang_getRangeStart(r), &f, NULL, NULL, lo);
  clang_getExpansionLocation(clang_getRangeEnd(r), &f, NULL, NULL, hi);
}

static CXType ctype(CXCursor c) { return clang_getCanonicalType(clang_getCursorType(c)); }
static bool is_ptr(CXType t) { return t.kind == CXType_Pointer || t.kind == CXType_BlockPointer; }
static bool is_arr(CXType t) {
  return t.kind == CXType_ConstantArray || t.kind == CXType_IncompleteArray ||
         t.kind == CXType_VariableArray || t.kind == CXType_DependentSizedArray;
}
static bool is_int(CXType t) { /* integers and enums; not _Bool: p != NULL leaks nothing */
  return (t.kind >= CXType_Char_U && t.kind <= CXType_Int128) || t.kind == CXType_Enum;
}
/* An array-typed expression that really is an array: not a parameter declared as one
 * (char *rows[4] is a char ** whose cursor type still shows the array). */
static bool is_local_array(CXCursor c) {
  if (!is_arr(clang_getCanonicalType(clang_getCursorType(c)))) return false;
  if (c.kind == CXCursor_DeclRefExpr && clang_getCursorReferenced(c).kind == CXCursor_ParmDecl)
    return false;
  return true;
}

static bool is_func(CXType t) {
  return t.kind == CXType_FunctionProto || t.kind == CXType_FunctionNoProto;
}
/* Can a value of this type hold a tracked pointer? Unknown kinds say yes. */
static bool carries(CXType t) {
  if (is_int(t) || is_func(t)) return false;
  switch (t.kind) {
    case CXType_Void: case CXType_Bool: case CXType_Float: case CXType_Double:
    case CXType_LongDouble: case CXType_Float128: case CXType_Half: case CXType_Float16:
    case CXType_Complex: case CXType_NullPtr: case CXType_Vector:
      return false;
    default:
      return true;
  }
}

static int node_new(walker *w, enum pe_node_kind k, char *name, pe_loc loc) {
  pe_node n = {.kind = k, .name = name, .loc = loc, .var = -1, .param = -1, .size = -1};
  PE_PUSH(w->f->nodes, w->f->nnodes, w->f->capnodes, n);
  return w->f->nnodes - 1;
}

static void edge(walker *w, int from, int to, pe_loc loc) {
  if (from < 0 || to < 0 || from == to) return;
  pe_edge e = {from, to, loc, false};
  PE_PUSH(w->f->edges, w->f->nedges, w->f->capedges, e);
}

static void sink(walker *w, int node, enum pe_sink_kind k, char *text, bool dangling, pe_loc loc) {
  if (node < 0) { free(text); return; }
  pe_sink s = {node, k, text, dangling, loc};
  PE_PUSH(w->f->sinks, w->f->nsinks, w->f->capsinks, s);
}

static int merge(walker *w, int a, int b, pe_loc loc) {
  if (a < 0) return b;
  if (b < 0 || a == b) return a;
  int t = node_new(w, N_TEMP, NULL, loc);
  edge(w, a, t, loc);
  edge(w, b, t, loc);
  return t;
}

/* ---- variables -------------------------------------------------------------------------- */
static size_t ptrhash(const void *p) {
  uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 20);
}

static int *var_slot(walker *w, const void *key) {
  if (w->nvars * 2 >= w->capvars) {
    size_t ncap = w->capvars ? w->capvars * 2 : 64;
    varslot *nv = calloc(ncap, sizeof *nv);
    for (size_t i = 0; i < w->capvars; i++)
      if (w->vars[i].key) {
        size_t j = ptrhash(w->vars[i].key) & (ncap - 1);
        while (nv[j].key) j = (j + 1) & (ncap - 1);
        nv[j] = w->vars[i];
      }
    free(w->vars);
    w->vars = nv;
    w->capvars = ncap;
  }
  size_t j = ptrhash(key) & (w->capvars - 1);
  while (w->vars[j].key && w->vars[j].key != key) j = (j + 1) & (w->capvars - 1);
  if (!w->vars[j].key) {
    w->vars[j].key = key;
    w->vars[j].node = -1;
    w->nvars++;
  }
  return &w->vars[j].node;
}

static int var_node(walker *w, CXCursor decl) {
  int *slot = var_slot(w, decl.data[0]);
  if (*slot < 0) *slot = node_new(w, N_VAR, spell(decl), loc_of(decl));
  return *slot;
}

/* 0: automatic local or parameter; 1: global; 2: static; 3: thread-local. */
static int var_class(CXCursor decl) {
  if (decl.kind == CXCursor_ParmDecl) return 0;
  if (decl.kind != CXCursor_VarDecl) return 1;
  if (clang_getCursorTLSKind(decl) != CXTLS_None) return 3;
  enum CX_StorageClass sc = clang_Cursor_getStorageClass(decl);
  if (sc == CX_SC_Static) return 2;
  if (sc == CX_SC_Extern) return 1;
  if (clang_getCursorSemanticParent(decl).kind == CXCursor_TranslationUnit) return 1;
  return 0;
}

static const char *class_word(int cls) {
  return cls == 3 ? "thread-local" : cls == 2 ? "static" : "global";
}

static int addr_of_var(walker *w, int var, CXCursor at) {
  pe_node *x = &w->f->nodes[var];
  if (!x->addr_taken) {
    x->addr_taken = true;
    edge(w, var, w->f->loaded, x->loc);
    w->f->edges[w->f->nedges - 1].weak = true;
  }
  int a = node_new(w, N_ADDR, pe_fmt("&%s", w->f->nodes[var].name), loc_of(at));
  w->f->nodes[a].var = var;
  return a;
}

/* ---- functions of the unit -------------------------------------------------------------- */
static size_t strhash(const char *s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static void func_put(walker *w, const char *name, int idx) {
  size_t j = strhash(name) & (w->capf - 1);
  while (w->fnames[j]) j = (j + 1) & (w->capf - 1);
  w->fnames[j] = (char *)name;
  w->fidx[j] = idx;
}

static int func_find(walker *w, const char *name) {
  size_t j = strhash(name) & (w->capf - 1);
  for (; w->fnames[j]; j = (j + 1) & (w->capf - 1))
    if (strcmp(w->fnames[j], name) == 0) return w->fidx[j];
  return -1;
}

/* ---- source text ------------------------------------------------------------------------ */
/* The text of a call for messages: its source, whitespace collapsed. For a call written in a
 * macro body the expansion is the macro invocation, so we print that (e.g. XMALLOC(64)). */
static char *call_text(walker *w, CXCursor c) {
  unsigned lo, hi;
  extent_offs(c, &lo, &hi);
  const char *b = w->u->buf;
  size_t n = w->u->buflen;
  if (lo >= n) return pe_xstrdup("allocation");
  if (hi <= lo || hi > n || hi - lo > 400) { /* identifier then balanced parentheses */
    size_t i = lo;
    while (i < n && (b[i] == '_' || (b[i] >= '0' && b[i] <= '9') || ((b[i] | 32) >= 'a' &&
                                                                      (b[i] | 32) <= 'z')))
      i++;
    while (i < n && (b[i] == ' ' || b[i] == '\t')) i++;
    if (i < n && b[i] == '(') {
      int depth = 0;
      for (; i < n; i++) {
        if (b[i] == '(') depth++;
        if (b[i] == ')' && --depth == 0) { i++; break; }
        if (i - lo > 400) break;
      }
    }
    hi = (unsigned)i;
  }
  char *out = malloc(hi - lo + 1);
  size_t k = 0;
  bool space = false;
  for (unsigned i = lo; i < hi; i++) {
    char ch = b[i];
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') { space = true; continue; }
    if (space && k > 0 && out[k - 1] != '(') out[k++] = ' ';
    space = false;
    out[k++] = ch;
  }
  out[k] = 0;
  if (k > 60) strcpy(out + 56, "...)");
  return out;
}

/* The operator between two operands, read from the main file: "=", ",", ... or "" if the
 * text is not there (macro) or is not a plain operator. */
static void op_text(walker *w, CXCursor l, CXCursor r, char out[4]) {
  unsigned llo, lhi, rlo, rhi;
  extent_offs(l, &llo, &lhi);
  extent_offs(r, &rlo, &rhi);
  out[0] = 0;
  if (lhi > rlo || rlo - lhi > 256 || rlo > w->u->buflen) return;
  const char *b = w->u->buf;
  int k = 0;
  for (unsigned i = lhi; i < rlo; i++) {
    char ch = b[i];
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\\') continue;
    if (ch == '/' && i + 1 < rlo && b[i + 1] == '*') {
      for (i += 2; i + 1 < rlo && !(b[i] == '*' && b[i + 1] == '/'); i++) {}
      i++;
      continue;
    }
    if (ch == '/' && i + 1 < rlo && b[i + 1] == '/') {
      while (i < rlo && b[i] != '\n') i++;
      continue;
    }
    if (!strchr("=,+-*/%<>!&|^", ch) || k == 3) { out[0] = 0; return; }
    out[k++] = ch;
  }
  out[k] = 0;
}

/* ---- expressions ------------------------------------------------------------------------ */
static int val(walker *w, CXCursor c);
static int addr(walker *w, CXCursor c);
static void stmt(walker *w, CXCursor c);

static int last_expr(kids_t *k) {
  for (int i = k->n - 1; i >= 0; i--)
    if (clang_isExpression(k->v[i].kind)) return i;
  return -1;
}

/* Implicit casts and parentheses. */
static CXCursor strip(CXCursor c) {
  for (;;) {
    if (c.kind != CXCursor_ParenExpr && c.kind != CXCursor_UnexposedExpr) return c;
    kids_t k = kids(c);
    if (k.n != 1 || !clang_isExpression(k.v[0].kind)) { free(k.v); return c; }
    c = k.v[0];
    free(k.v);
  }
}

static CXCursor strip_casts(CXCursor c) {
  for (;;) {
    c = strip(c);
    if (c.kind != CXCursor_CStyleCastExpr) return c;
    kids_t k = kids(c);
    int i = last_expr(&k);
    if (i < 0) { free(k.v); return c; }
    c = k.v[i];
    free(k.v);
  }
}

/* A null pointer constant: assigning it adds no pointer. */
static bool is_null(CXCursor c) {
  CXCursor s = strip_casts(c);
  return s.kind == CXCursor_IntegerLiteral || s.kind == CXCursor_GNUNullExpr ||
         s.kind == CXCursor_CharacterLiteral;
}

/* The value assigned from rhs: its node, or OTHER for an untracked pointer. */
static int assigned(walker *w, CXCursor rhs, int n) {
  if (n >= 0 || !carries(ctype(rhs)) || is_null(rhs)) return n;
  return w->f->other;
}

static void through(walker *w, CXCursor ptr, int n, pe_loc loc) {
  CXCursor s = strip_casts(ptr);
  if (s.kind == CXCursor_DeclRefExpr) {
    CXCursor ref = clang_getCursorReferenced(s);
    if (ref.kind == CXCursor_ParmDecl) {
      char *name = spell(ref);
      sink(w, n, S_OUTPARAM, pe_fmt("stored through parameter %s", name), true, loc);
      free(name);
      return;
    }
  }
  sink(w, n, S_THROUGH, pe_xstrdup("stored through pointer"), false, loc);
}

static void store(walker *w, CXCursor lhs, int n, pe_loc loc) {
  kids_t k = kids(lhs);
  switch (lhs.kind) {
    case CXCursor_ParenExpr:
      if (k.n == 1) store(w, k.v[0], n, loc);
      break;
    case CXCursor_DeclRefExpr: {
      CXCursor ref = clang_getCursorReferenced(lhs);
      if (ref.kind != CXCursor_VarDecl && ref.kind != CXCursor_ParmDecl) break;
      int cls = var_class(ref);
      if (cls == 0) {
        edge(w, n, var_node(w, ref), loc);
      } else {
        char *name = spell(ref);
        sink(w, n, S_GLOBAL, pe_fmt("stored to %s %s", class_word(cls), name), true, loc);
        free(name);
      }
      break;
    }
    case CXCursor_MemberRefExpr:
      if (k.n >= 1 && is_ptr(ctype(k.v[0]))) {
        val(w, k.v[0]);
        through(w, k.v[0], n, loc);
      } else if (k.n >= 1) {
        store(w, k.v[0], n, loc);
      } else {
        sink(w, n, S_THROUGH, pe_xstrdup("stored through pointer"), false, loc);
      }
      break;
    case CXCursor_ArraySubscriptExpr: {
      int arr = -1;
      for (int i = 0; i < k.n; i++)
        if (is_local_array(strip(k.v[i]))) arr = i;
      for (int i = 0; i < k.n; i++)
        if (i != arr) val(w, k.v[i]);
      if (arr >= 0) store(w, strip(k.v[arr]), n, loc);
      else {
        int p = 0;
        for (int i = 0; i < k.n; i++)
          if (is_ptr(ctype(k.v[i]))) p = i;
        if (k.n) through(w, k.v[p], n, loc);
        else sink(w, n, S_THROUGH, pe_xstrdup("stored through pointer"), false, loc);
      }
      break;
    }
    case CXCursor_UnaryOperator:
      if (k.n == 1) {
        val(w, k.v[0]);
        through(w, k.v[0], n, loc);
        break;
      }
      /* fall through */
    default:
      val(w, lhs);
      sink(w, n, S_THROUGH, pe_xstrdup("stored through pointer"), false, loc);
  }
  free(k.v);
}

static long long eval_int(CXCursor c, bool *ok) {
  CXEvalResult r = clang_Cursor_Evaluate(c);
  *ok = false;
  long long v = 0;
  if (r) {
    if (clang_EvalResult_getKind(r) == CXEval_Int) {
      *ok = true;
      if (clang_EvalResult_isUnsignedInt(r)) {
        unsigned long long u = clang_EvalResult_getAsUnsigned(r);
        v = u > (unsigned long long)INT64_MAX ? INT64_MAX : (long long)u;
      } else {
        v = clang_EvalResult_getAsLongLong(r);
      }
    }
    clang_EvalResult_dispose(r);
  }
  return v;
}

static bool is_name(const char *name, char **list, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(list[i], name) == 0) return true;
  return false;
}

/* Which arguments make the size of an allocator call: malloc(n), calloc(n, s),
 * aligned_alloc(a, n), custom ones: the product of all their arguments. */
static int alloc_size_args(walker *w, const char *name, int *first, int *count, int nargs) {
  if (!strcmp(name, "malloc") || !strcmp(name, "valloc")) { *first = 0; *count = 1; return 1; }
  if (!strcmp(name, "calloc")) { *first = 0; *count = 2; return 1; }
  if (!strcmp(name, "aligned_alloc") || !strcmp(name, "memalign")) {
    *first = 1; *count = 1; return 1;
  }
  if (is_name(name, w->o->allocs, w->o->nallocs)) { *first = 0; *count = nargs; return 1; }
  return 0;
}

static int call(walker *w, CXCursor c) {
  pe_loc loc = loc_of(c);
  CXCursor callee = clang_getCursorReferenced(c);
  int nargs = clang_Cursor_getNumArguments(c);
  if (nargs < 0) nargs = 0;
  bool carry = carries(ctype(c));
  if (callee.kind != CXCursor_FunctionDecl) { /* indirect call */
    kids_t k = kids(c);
    if (k.n > 0) val(w, k.v[0]);
    free(k.v);
    for (int i = 0; i < nargs; i++)
      sink(w, val(w, clang_Cursor_getArgument(c, i)), S_INDIRECT,
           pe_xstrdup("passed to indirect call"), false, loc);
    return -1;
  }
  char *name = spell(callee);
  int first, count, result = -1;
  if (alloc_size_args(w, name, &first, &count, nargs)) {
    long long size = 1;
    int known = 1;
    for (int i = 0; i < nargs; i++) {
      CXCursor a = clang_Cursor_getArgument(c, i);
      val(w, a);
      if (i >= first && i < first + count) {
        bool ok;
        long long v = eval_int(a, &ok);
        if (!ok) known = 0;
        else if (v < 0 || (v > 0 && size > INT64_MAX / v)) size = INT64_MAX;
        else size *= v;
      }
    }
    result = node_new(w, N_ALLOC, call_text(w, c), loc);
    pe_node *a = &w->f->nodes[result];
    a->size_known = known;
    a->size = known ? size : -1;
    if (w->nloops) {
      a->loop_lo = w->loops[w->nloops - 1].lo;
      a->loop_hi = w->loops[w->nloops - 1].hi;
    }
    free(name);
    return result;
  }
  if (pe_is_setjmp(name)) w->f->calls_setjmp = true;
  const char *eff = is_name(name, w->o->frees, w->o->nfrees) ? "f" : pe_libc_effects(name);
  if (pe_is_setjmp(name)) eff = "s";
  if (eff) {
    size_t ne = strlen(eff);
    for (int i = 0; i < nargs; i++) {
      char e = eff[(size_t)i < ne ? (size_t)i : ne - 1];
      int a = val(w, clang_Cursor_getArgument(c, i));
      switch (e) {
        case 'r': result = merge(w, result, a, loc); break;
        case 'c': sink(w, a, S_CAPTURE, pe_fmt("captured by %s", name), false, loc); break;
        case 'f': sink(w, a, S_FREE, pe_fmt("freed by %s", name), false, loc); break;
        case 'R': sink(w, a, S_REALLOC, pe_fmt("realloc'd by %s", name), false, loc); break;
        case 'C': sink(w, a, S_DEREF, pe_fmt("copied by %s", name), false, loc); break;
        case 'D': sink(w, a, S_DEREF, pe_fmt("realloc'd by %s", name), false, loc); break;
        case 'e': {
          if (a < 0 || i + 1 >= nargs) break;
          CXCursor t = strip_casts(clang_Cursor_getArgument(c, i + 1));
          kids_t k = kids(t);
          CXCursor ref = k.n == 1 ? clang_getCursorReferenced(strip(k.v[0])) : clang_getNullCursor();
          free(k.v);
          if (t.kind == CXCursor_UnaryOperator && is_ptr(ctype(t)) &&
              (ref.kind == CXCursor_VarDecl || ref.kind == CXCursor_ParmDecl) && var_class(ref) == 0)
            edge(w, a, var_node(w, ref), loc);
          else
            sink(w, a, S_THROUGH, pe_fmt("stored through pointer by %s", name), false, loc);
          break;
        }
        default: break;
      }
    }
    free(name);
    return carry ? result : -1;
  }
  int fi = func_find(w, name);
  if (fi >= 0) {
    pe_func *g = &w->u->funcs[fi];
    PE_PUSH(w->f->callees, w->f->ncallees, w->f->capcallees, fi);
    result = carry ? node_new(w, N_TEMP, pe_fmt("%s(...)", name), loc) : -1;
    if (result >= 0) w->f->nodes[result].mixed = true;
    for (int i = 0; i < nargs; i++) {
      int a = val(w, clang_Cursor_getArgument(c, i));
      if (i < g->nparams) {
        if (a < 0) continue;
        int t = node_new(w, N_TEMP, pe_fmt("argument %d of %s", i + 1, name), loc);
        edge(w, a, t, loc);
        pe_callarg ca = {fi, i, t, result, loc};
        PE_PUSH(w->f->calls, w->f->ncalls, w->f->capcalls, ca);
      } else {
        sink(w, a, S_UNKNOWN, pe_fmt("passed to variadic %s", name), false, loc);
      }
    }
    free(name);
    return result;
  }
  for (int i = 0; i < nargs; i++)
    sink(w, val(w, clang_Cursor_getArgument(c, i)), S_UNKNOWN,
         pe_fmt("passed to unknown function %s", name), false, loc);
  free(name);
  return -1;
}

static int cast(walker *w, CXCursor c, kids_t *k) {
  CXType t = ctype(c);
  int ne = 0, ei = -1;
  for (int i = 0; i < k->n; i++)
    if (clang_isExpression(k->v[i].kind)) { ne++; ei = i; }
  if (ne == 0) return -1;
  if (ne > 1) { /* not a cast: something unexposed; merge everything */
    int r = -1;
    for (int i = 0; i < k->n; i++)
      if (clang_isExpression(k->v[i].kind)) r = merge(w, r, val(w, k->v[i]), loc_of(c));
      else if (clang_isStatement(k->v[i].kind)) stmt(w, k->v[i]);
    if (!carries(t))
      sink(w, r, S_UNKNOWN, pe_xstrdup("used in an unexposed expression"), false, loc_of(c));
    return carries(t) ? r : -1;
  }
  CXCursor e = k->v[ei];
  CXType et = ctype(e);
  if (c.kind == CXCursor_ParenExpr) return val(w, e);
  if (is_int(t) && (is_ptr(et) || is_arr(et))) {
    int n = is_arr(et) ? addr(w, e) : val(w, e);
    sink(w, n, S_INTCAST, pe_xstrdup("cast to integer"), false, loc_of(c));
    return -1;
  }
  if (is_ptr(t) && is_arr(et)) return addr(w, e);
  int r = val(w, e);
  if (is_ptr(t) && is_ptr(et)) {
    /* (uintptr_t *)&p, (char *)&s: what it points to may be read as integers, pointer bits
     * and all, and an integer is untracked: the pointee's content escapes. */
    CXType to = clang_getCanonicalType(clang_getPointeeType(t));
    CXType from = clang_getCanonicalType(clang_getPointeeType(et));
    if (is_int(to) && (from.kind == CXType_Void || carries(from)))
      sink(w, r, S_DEREF, pe_xstrdup("reinterpreted as integers"), false, loc_of(c));
  }
  return carries(t) ? r : -1;
}

static bool is_union(CXType t) {
  return t.kind == CXType_Record && clang_getTypeDeclaration(t).kind == CXCursor_UnionDecl;
}

static int val_(walker *w, CXCursor c) {
  CXType t;
  switch (c.kind) {
    case CXCursor_IntegerLiteral: case CXCursor_FloatingLiteral: case CXCursor_ImaginaryLiteral:
    case CXCursor_StringLiteral: case CXCursor_CharacterLiteral: case CXCursor_GNUNullExpr:
    case CXCursor_UnaryExpr: case CXCursor_AddrLabelExpr:
      return -1;
    case CXCursor_DeclRefExpr: {
      CXCursor ref = clang_getCursorReferenced(c);
      if ((ref.kind == CXCursor_VarDecl || ref.kind == CXCursor_ParmDecl) && var_class(ref) == 0 &&
          carries(ctype(c)))
        return var_node(w, ref);
      return -1;
    }
    case CXCursor_CallExpr:
      return call(w, c);
    default:
      break;
  }
  kids_t k = kids(c);
  int r = -1;
  pe_loc loc = loc_of(c);
  t = ctype(c);
  switch (c.kind) {
    case CXCursor_UnexposedExpr: case CXCursor_CStyleCastExpr: case CXCursor_ParenExpr:
      r = cast(w, c, &k);
      break;
    case CXCursor_UnaryOperator: {
      if (k.n != 1) { for (int i = 0; i < k.n; i++) r = merge(w, r, val(w, k.v[i]), loc); break; }
      CXType et = ctype(k.v[0]);
      if (is_ptr(t) && clang_equalTypes(clang_getCanonicalType(clang_getPointeeType(t)), et)) {
        r = addr(w, k.v[0]);
      } else if (is_ptr(et) &&
                 clang_equalTypes(clang_getCanonicalType(clang_getPointeeType(et)), t)) {
        val(w, k.v[0]);
        r = carries(t) ? w->f->loaded : -1;
      } else {
        r = val(w, k.v[0]);
        if (!carries(t)) r = -1;
      }
      break;
    }
    case CXCursor_BinaryOperator: {
      if (k.n != 2) { for (int i = 0; i < k.n; i++) val(w, k.v[i]); break; }
      char op[4];
      op_text(w, k.v[0], k.v[1], op);
      CXType lt = ctype(k.v[0]), rt = ctype(k.v[1]);
      bool both = (is_ptr(t) && is_ptr(lt) && is_ptr(rt)) ||
                  (t.kind == CXType_Record && lt.kind == CXType_Record &&
                   rt.kind == CXType_Record);
      if (!strcmp(op, "=") || (op[0] == 0 && both)) {
        r = val(w, k.v[1]);
        store(w, k.v[0], assigned(w, k.v[1], r), loc);
        if (!carries(t)) r = -1;
      } else if (!strcmp(op, ",")) {
        val(w, k.v[0]);
        r = val(w, k.v[1]);
      } else {
        int a = val(w, k.v[0]), b = val(w, k.v[1]);
        r = is_ptr(t) ? merge(w, a, b, loc) : -1;
      }
      break;
    }
    case CXCursor_CompoundAssignOperator:
      if (k.n == 2) {
        val(w, k.v[1]);
        r = val(w, k.v[0]);
        if (!carries(t)) r = -1;
      }
      break;
    case CXCursor_ConditionalOperator:
      for (int i = 0; i < k.n; i++) {
        int v = val(w, k.v[i]);
        if (i > 0 || k.n == 2) r = merge(w, r, v, loc);
      }
      if (!carries(t)) r = -1;
      break;
    case CXCursor_MemberRefExpr:
      if (k.n >= 1 && is_ptr(ctype(k.v[0]))) {
        val(w, k.v[0]);
        r = carries(t) ? w->f->loaded : -1;
        if (!carries(t) && is_union(clang_getCanonicalType(clang_getPointeeType(ctype(k.v[0])))))
          sink(w, w->f->loaded, S_INTCAST, pe_xstrdup("read as an integer through a union"),
               false, loc);
      } else if (k.n >= 1) {
        r = val(w, k.v[0]);
        if (!carries(t) && is_union(ctype(k.v[0])))
          sink(w, r, S_INTCAST, pe_xstrdup("read as an integer through a union"), false, loc);
        if (!carries(t)) r = -1;
      } else {
        r = carries(t) ? w->f->loaded : -1;
      }
      break;
    case CXCursor_ArraySubscriptExpr: {
      int arr = -1;
      for (int i = 0; i < k.n; i++)
        if (is_local_array(strip(k.v[i]))) arr = i;
      for (int i = 0; i < k.n; i++)
        if (i != arr) val(w, k.v[i]);
      if (arr >= 0) r = val(w, strip(k.v[arr]));
      else r = w->f->loaded;
      if (!carries(t)) r = -1;
      break;
    }
    case CXCursor_StmtExpr: {
      kids_t s = k.n == 1 ? kids(k.v[0]) : (kids_t){0};
      for (int i = 0; i < s.n; i++) {
        if (i == s.n - 1 && clang_isExpression(s.v[i].kind)) r = val(w, s.v[i]);
        else stmt(w, s.v[i]);
      }
      free(s.v);
      if (!carries(t)) r = -1;
      break;
    }
    default: /* InitListExpr, CompoundLiteralExpr, GenericSelection, ...: merge children */
      for (int i = 0; i < k.n; i++) {
        if (clang_isExpression(k.v[i].kind)) r = merge(w, r, val(w, k.v[i]), loc);
        else if (clang_isStatement(k.v[i].kind)) stmt(w, k.v[i]);
      }
      if (!carries(t)) r = -1;
  }
  free(k.v);
  return r;
}

static int val(walker *w, CXCursor c) {
  if (w->too_deep) return -1;
  if (++w->depth > PE_MAX_DEPTH) { w->too_deep = true; w->depth--; return -1; }
  int r = val_(w, c);
  w->depth--;
  return r;
}

static int addr(walker *w, CXCursor c) {
  if (w->too_deep) return -1;
  kids_t k = kids(c);
  int r = -1;
  w->depth++;
  switch (c.kind) {
    case CXCursor_ParenExpr: case CXCursor_UnexposedExpr:
      if (k.n == 1) r = addr(w, k.v[0]);
      else r = val(w, c);
      break;
    case CXCursor_DeclRefExpr: {
      CXCursor ref = clang_getCursorReferenced(c);
      if (ref.kind == CXCursor_ParmDecl && is_arr(ctype(c)))
        r = var_node(w, ref); /* an array parameter decays to its own (pointer) value */
      else if ((ref.kind == CXCursor_VarDecl || ref.kind == CXCursor_ParmDecl) && var_class(ref) == 0)
        r = addr_of_var(w, var_node(w, ref), c);
      break;
    }
    case CXCursor_MemberRefExpr:
      if (k.n >= 1) r = is_ptr(ctype(k.v[0])) ? val(w, k.v[0]) : addr(w, k.v[0]);
      break;
    case CXCursor_ArraySubscriptExpr: {
      for (int i = 0; i < k.n; i++) {
        CXCursor s = strip(k.v[i]);
        r = merge(w, r, is_local_array(s) ? addr(w, s) : val(w, k.v[i]), loc_of(c));
      }
      break;
    }
    case CXCursor_UnaryOperator:
      if (k.n == 1) r = val(w, k.v[0]);
      break;
    case CXCursor_CompoundLiteralExpr: { /* an unnamed automatic object of the function */
      int v = node_new(w, N_VAR, pe_xstrdup("compound literal"), loc_of(c));
      for (int i = 0; i < k.n; i++)
        if (clang_isExpression(k.v[i].kind)) edge(w, val(w, k.v[i]), v, loc_of(c));
      r = addr_of_var(w, v, c);
      break;
    }
    case CXCursor_StringLiteral:
      break;
    default:
      r = val(w, c);
  }
  w->depth--;
  free(k.v);
  return r;
}

/* ---- statements ------------------------------------------------------------------------- */
static void vardecl(walker *w, CXCursor c) {
  CXCursor init = clang_Cursor_getVarDeclInitializer(c);
  int n = clang_Cursor_isNull(init) ? -1 : assigned(w, init, val(w, init));
  int cls = var_class(c);
  if (cls == 0) {
    edge(w, n, var_node(w, c), loc_of(c));
  } else {
    char *name = spell(c);
    sink(w, n, S_GLOBAL, pe_fmt("stored to %s %s", class_word(cls), name), true, loc_of(c));
    free(name);
  }
}

static void stmt_(walker *w, CXCursor c) {
  if (clang_isExpression(c.kind)) { val(w, c); return; }
  if (c.kind == CXCursor_VarDecl) { vardecl(w, c); return; }
  if (clang_isDeclaration(c.kind)) return; /* nested struct, typedef, function prototype */
  kids_t k = kids(c);
  switch (c.kind) {
    case CXCursor_ReturnStmt:
      for (int i = 0; i < k.n; i++)
        if (clang_isExpression(k.v[i].kind))
          sink(w, val(w, k.v[i]), S_RETURN, pe_xstrdup("returned"), true, loc_of(c));
      break;
    case CXCursor_ForStmt: case CXCursor_WhileStmt: case CXCursor_DoStmt: {
      region r = {0, 0};
      bool ok;
      if (c.kind == CXCursor_DoStmt && k.n == 2 && eval_int(k.v[1], &ok) == 0 && ok) {
        for (int i = 0; i < k.n; i++) stmt(w, k.v[i]); /* do { } while (0): not a loop */
        break;
      }
      if (k.n) extent_offs(k.v[c.kind == CXCursor_DoStmt ? 0 : k.n - 1], &r.lo, &r.hi);
      if (w->nloops < (int)(sizeof w->loops / sizeof w->loops[0])) w->loops[w->nloops++] = r;
      else w->loops[w->nloops - 1] = r;
      for (int i = 0; i < k.n; i++) stmt(w, k.v[i]);
      w->nloops--;
      break;
    }
    case CXCursor_GotoStmt: {
      CXCursor label = clang_getCursorReferenced(c);
      unsigned lo = loc_of(label).off, hi = loc_of(c).off;
      if (!clang_Cursor_isNull(label) && lo < hi && w->f->nbackgoto < 64) {
        w->f->backgoto_lo[w->f->nbackgoto] = lo;
        w->f->backgoto_hi[w->f->nbackgoto++] = hi + 1;
      } else if (w->f->nbackgoto >= 64) {
        w->f->backgoto_lo[63] = 0; /* too many: one region covering everything */
        w->f->backgoto_hi[63] = ~0u;
      }
      break;
    }
    case CXCursor_IndirectGotoStmt:
      if (w->f->nbackgoto < 64) {
        w->f->backgoto_lo[w->f->nbackgoto] = 0;
        w->f->backgoto_hi[w->f->nbackgoto++] = ~0u;
      }
      for (int i = 0; i < k.n; i++) stmt(w, k.v[i]);
      break;
    case CXCursor_GCCAsmStmt:
      for (int i = 0; i < k.n; i++)
        if (clang_isExpression(k.v[i].kind))
          sink(w, val(w, k.v[i]), S_UNKNOWN, pe_xstrdup("used by inline asm"), false, loc_of(c));
      break;
    default:
      for (int i = 0; i < k.n; i++) stmt(w, k.v[i]);
  }
  free(k.v);
}

static void stmt(walker *w, CXCursor c) {
  if (w->too_deep) return;
  if (++w->depth > PE_MAX_DEPTH) { w->too_deep = true; w->depth--; return; }
  stmt_(w, c);
  w->depth--;
}

/* ---- the unit --------------------------------------------------------------------------- */
static enum CXChildVisitResult top(CXCursor c, CXCursor parent, CXClientData d) {
  walker *w = d;
  if (c.kind != CXCursor_FunctionDecl || !clang_isCursorDefinition(c)) return CXChildVisit_Continue;
  CXFile f;
  clang_getExpansionLocation(clang_getCursorLocation(c), &f, NULL, NULL, NULL);
  if (!f || !clang_File_isEqual(f, w->mainfile)) return CXChildVisit_Continue;
  pe_func fn = {0};
  fn.name = spell(c);
  fn.loc = loc_of(c);
  fn.nparams = clang_Cursor_getNumArguments(c);
  if (fn.nparams < 0) fn.nparams = 0;
  int capfcur = w->u->capfuncs;
  PE_PUSH(w->u->funcs, w->u->nfuncs, w->u->capfuncs, fn);
  if (capfcur != w->u->capfuncs) w->fcur = pe_xrealloc(w->fcur, sizeof *w->fcur * (size_t)w->u->capfuncs);
  w->fcur[w->u->nfuncs - 1] = c;
  return CXChildVisit_Continue;
}

int pe_walk_unit(CXTranslationUnit tu, pe_unit *u, const pe_opts *o) {
  walker w = {.tu = tu, .u = u, .o = o};
  CXString sp = clang_getTranslationUnitSpelling(tu);
  w.mainfile = clang_getFile(tu, clang_getCString(sp));
  clang_disposeString(sp);
  if (!w.mainfile) {
    fprintf(stderr, "palloc-escape: %s: error: main file not found in its translation unit\n",
            u->path);
    return -1;
  }
  size_t len = 0;
  u->buf = clang_getFileContents(tu, w.mainfile, &len);
  u->buflen = u->buf ? len : 0;
  clang_visitChildren(clang_getTranslationUnitCursor(tu), top, &w);
  w.capf = 16;
  while (w.capf < (size_t)u->nfuncs * 2 + 2) w.capf *= 2;
  w.fnames = calloc(w.capf, sizeof *w.fnames);
  w.fidx = calloc(w.capf, sizeof *w.fidx);
  for (int i = 0; i < u->nfuncs; i++)
    if (func_find(&w, u->funcs[i].name) < 0) func_put(&w, u->funcs[i].name, i);
  int rc = 0;
  for (int i = 0; i < u->nfuncs; i++) {
    pe_func *f = &u->funcs[i];
    w.f = f;
    w.nvars = 0;
    if (w.vars) memset(w.vars, 0, w.capvars * sizeof *w.vars);
    w.nloops = 0;
    w.depth = 0;
    w.too_deep = false;
    f->loaded = node_new(&w, N_LOADED, pe_xstrdup("*(load)"), f->loc);
    f->nodes[f->loaded].mixed = true;
    f->other = node_new(&w, N_TEMP, NULL, f->loc);
    f->nodes[f->other].mixed = true;
    f->param_node = calloc((size_t)f->nparams + 1, sizeof *f->param_node);
    f->psum = calloc((size_t)f->nparams + 1, sizeof *f->psum);
    f->preason = calloc((size_t)f->nparams + 1, sizeof *f->preason);
    for (int p = 0; p < f->nparams; p++) {
      CXCursor pc = clang_Cursor_getArgument(w.fcur[i], (unsigned)p);
      f->param_node[p] = var_node(&w, pc);
      f->nodes[f->param_node[p]].param = p;
      f->nodes[f->param_node[p]].mixed = true;
      f->nodes[f->param_node[p]].carries = carries(clang_getCanonicalType(clang_getCursorType(pc)));
    }
    kids_t k = kids(w.fcur[i]);
    for (int j = 0; j < k.n; j++)
      if (k.v[j].kind == CXCursor_CompoundStmt) stmt(&w, k.v[j]);
    free(k.v);
    f->analyzed = !w.too_deep;
    if (w.too_deep) {
      fprintf(stderr, "palloc-escape: %s:%u: error: function %s is too deeply nested to analyze; "
              "its allocations are taken to escape\n", u->path, f->loc.line, f->name);
      rc = -1;
    }
    for (int g = 0; g < f->nbackgoto; g++)
      for (int n = 0; n < f->nnodes; n++) {
        pe_node *a = &f->nodes[n];
        unsigned lo = f->backgoto_lo[g], hi = f->backgoto_hi[g];
        if (a->kind != N_ALLOC || a->loc.off < lo || a->loc.off >= hi) continue;
        if (a->loop_hi == 0 || hi - lo < a->loop_hi - a->loop_lo) {
          a->loop_lo = lo;
          a->loop_hi = hi;
        }
      }
  }
  free(w.vars);
  free(w.fnames);
  free(w.fidx);
  free(w.fcur);
  return rc;
}
