/* expr.c - expressions: w_val, w_addr, w_store (see walk.c for the rules). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "walk.h"

/* ---- expressions ------------------------------------------------------------------------ */

/* a[i] / i[a]: evaluates the operands that are not a local array and returns the index of the
 * one that is (-1 if none): an element of a local array is that array's storage. */
static int subscript_operands(walker *w, kids_t *k);

static int w_last_expr(kids_t *k) {
  for (int i = k->n - 1; i >= 0; i--)
    if (clang_isExpression(k->v[i].kind)) return i;
  return -1;
}

/* Implicit casts and parentheses. */
CXCursor w_strip(CXCursor c) {
  for (;;) {
    if (c.kind != CXCursor_ParenExpr && c.kind != CXCursor_UnexposedExpr) return c;
    kids_t k = w_kids(c);
    if (k.n != 1 || !clang_isExpression(k.v[0].kind)) { free(k.v); return c; }
    c = k.v[0];
    free(k.v);
  }
}

CXCursor w_strip_casts(CXCursor c) {
  for (;;) {
    c = w_strip(c);
    if (c.kind != CXCursor_CStyleCastExpr) return c;
    kids_t k = w_kids(c);
    int i = w_last_expr(&k);
    if (i < 0) { free(k.v); return c; }
    c = k.v[i];
    free(k.v);
  }
}

/* A null pointer constant: assigning it adds no pointer. */
static bool w_is_null(CXCursor c) {
  CXCursor s = w_strip_casts(c);
  return s.kind == CXCursor_IntegerLiteral || s.kind == CXCursor_GNUNullExpr ||
         s.kind == CXCursor_CharacterLiteral;
}

/* The value assigned from rhs: its node, or OTHER for an untracked pointer. */
int w_assigned(walker *w, CXCursor rhs, int n) {
  if (n >= 0 || !carries(ctype(rhs)) || w_is_null(rhs)) return n;
  return w->f->other;
}

void w_note_write(walker *w, CXCursor lhs) {
  CXCursor s = w_strip_casts(lhs);
  if (s.kind != CXCursor_DeclRefExpr) return;
  CXCursor ref = clang_getCursorReferenced(s);
  if (ref.kind != CXCursor_ParmDecl) return;
  for (int p = 0; p < w->f->nparams && p < 64; p++)
    if (clang_equalCursors(clang_Cursor_getArgument(w->fcur[w->f - w->u->funcs], (unsigned)p), ref)) {
      unsigned off = w_loc_of(lhs).off;
      if (off < w->pwmin[p]) w->pwmin[p] = off;
    }
}

/* ++x, x--: from the tokens of the operator (inside a macro body, assumed). */
static bool is_incdec(walker *w, CXCursor c) {
  CXSourceRange ext = clang_getCursorExtent(c);
  CXFile f1, f2;
  unsigned o1, o2;
  clang_getSpellingLocation(clang_getRangeStart(ext), &f1, NULL, NULL, &o1);
  clang_getExpansionLocation(clang_getRangeStart(ext), &f2, NULL, NULL, &o2);
  if (!f1 || !f2 || !clang_File_isEqual(f1, f2) || o1 != o2) return true;
  CXToken *toks = NULL;
  unsigned n = 0;
  bool r = false;
  clang_tokenize(w->tu, ext, &toks, &n);
  for (unsigned i = 0; i < n; i++) {
    CXString t = clang_getTokenSpelling(w->tu, toks[i]);
    const char *ts = clang_getCString(t);
    if (!strcmp(ts, "++") || !strcmp(ts, "--")) r = true;
    clang_disposeString(t);
  }
  clang_disposeTokens(w->tu, toks, n);
  return r;
}

void w_through(walker *w, CXCursor ptr, int n, pe_loc loc) {
  CXCursor s = w_strip_casts(ptr);
  if (s.kind == CXCursor_DeclRefExpr) {
    CXCursor ref = clang_getCursorReferenced(s);
    if (ref.kind == CXCursor_ParmDecl) {
      char *name = w_spell(ref);
      w_sink(w, n, S_OUTPARAM, pe_fmt("stored through parameter %s", name), true, loc);
      free(name);
      return;
    }
  }
  w_sink(w, n, S_THROUGH, pe_xstrdup("stored through pointer"), false, loc);
}

void w_store(walker *w, CXCursor lhs, int n, pe_loc loc) {
  kids_t k = w_kids(lhs);
  switch (lhs.kind) {
    case CXCursor_ParenExpr:
      if (k.n == 1) w_store(w, k.v[0], n, loc);
      break;
    case CXCursor_DeclRefExpr: {
      CXCursor ref = clang_getCursorReferenced(lhs);
      w_note_write(w, lhs);
      if (ref.kind != CXCursor_VarDecl && ref.kind != CXCursor_ParmDecl) break;
      int cls = w_var_class(ref);
      if (cls == 0) {
        w_edge(w, n, w_var_node(w, ref), loc);
      } else {
        char *name = w_spell(ref);
        w_sink(w, n, S_GLOBAL, pe_fmt("stored to %s %s", w_class_word(cls), name), true, loc);
        free(name);
      }
      break;
    }
    case CXCursor_MemberRefExpr:
      if (k.n >= 1 && is_ptr(ctype(k.v[0]))) {
        w_val(w, k.v[0]);
        w_through(w, k.v[0], n, loc);
      } else if (k.n >= 1) {
        w_store(w, k.v[0], n, loc);
      } else {
        w_sink(w, n, S_THROUGH, pe_xstrdup("stored through pointer"), false, loc);
      }
      break;
    case CXCursor_ArraySubscriptExpr: {
      int arr = subscript_operands(w, &k);
      if (arr >= 0) w_store(w, w_strip(k.v[arr]), n, loc);
      else {
        int p = 0;
        for (int i = 0; i < k.n; i++)
          if (is_ptr(ctype(k.v[i]))) p = i;
        if (k.n) w_through(w, k.v[p], n, loc);
        else w_sink(w, n, S_THROUGH, pe_xstrdup("stored through pointer"), false, loc);
      }
      break;
    }
    case CXCursor_UnaryOperator:
      if (k.n == 1) {
        w_val(w, k.v[0]);
        w_through(w, k.v[0], n, loc);
        break;
      }
      /* fall through */
    default:
      w_val(w, lhs);
      w_sink(w, n, S_THROUGH, pe_xstrdup("stored through pointer"), false, loc);
  }
  free(k.v);
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
      if (clang_isExpression(k->v[i].kind)) r = w_merge(w, r, w_val(w, k->v[i]), w_loc_of(c));
      else if (clang_isStatement(k->v[i].kind)) w_stmt(w, k->v[i]);
    if (!carries(t))
      w_sink(w, r, S_UNKNOWN, pe_xstrdup("used in an unexposed expression"), false, w_loc_of(c));
    return carries(t) ? r : -1;
  }
  CXCursor e = k->v[ei];
  CXType et = ctype(e);
  if (c.kind == CXCursor_ParenExpr) return w_val(w, e);
  if (is_int(t) && (is_ptr(et) || is_arr(et))) {
    int n = is_arr(et) ? w_addr(w, e) : w_val(w, e);
    w_sink(w, n, S_INTCAST, pe_xstrdup("cast to integer"), false, w_loc_of(c));
    return -1;
  }
  if (is_ptr(t) && is_arr(et)) return w_addr(w, e);
  int r = w_val(w, e);
  /* a designated initializer (.a = p) is unexposed and typed void: it is its value */
  if (c.kind == CXCursor_UnexposedExpr && t.kind == CXType_Void) return carries(et) ? r : -1;
  if (is_ptr(t) && is_ptr(et)) {
    /* (uintptr_t *)&p, (char *)&s: what it points to may be read as integers, pointer bits
     * and all, and an integer is untracked: the pointee's content escapes. */
    CXType to = clang_getCanonicalType(clang_getPointeeType(t));
    CXType from = clang_getCanonicalType(clang_getPointeeType(et));
    if (is_int(to) && (from.kind == CXType_Void || carries(from)))
      w_sink(w, r, S_DEREF, pe_xstrdup("reinterpreted as integers"), false, w_loc_of(c));
  }
  return carries(t) ? r : -1;
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
      if ((ref.kind == CXCursor_VarDecl || ref.kind == CXCursor_ParmDecl) && w_var_class(ref) == 0 &&
          carries(ctype(c)))
        return w_var_node(w, ref);
      return -1;
    }
    case CXCursor_CallExpr:
      return w_call(w, c);
    default:
      break;
  }
  kids_t k = w_kids(c);
  int r = -1;
  pe_loc loc = w_loc_of(c);
  t = ctype(c);
  switch (c.kind) {
    case CXCursor_UnexposedExpr: case CXCursor_CStyleCastExpr: case CXCursor_ParenExpr:
      r = cast(w, c, &k);
      break;
    case CXCursor_UnaryOperator: {
      if (k.n != 1) { for (int i = 0; i < k.n; i++) r = w_merge(w, r, w_val(w, k.v[i]), loc); break; }
      CXType et = ctype(k.v[0]);
      if (is_ptr(t) && clang_equalTypes(clang_getCanonicalType(clang_getPointeeType(t)), et)) {
        r = w_addr(w, k.v[0]);
      } else if (is_ptr(et) &&
                 clang_equalTypes(clang_getCanonicalType(clang_getPointeeType(et)), t)) {
        w_val(w, k.v[0]);
        r = carries(t) ? w->f->loaded : -1;
      } else {
        if (w_strip_casts(k.v[0]).kind == CXCursor_DeclRefExpr && is_incdec(w, c))
          w_note_write(w, k.v[0]);
        r = w_val(w, k.v[0]);
        if (!carries(t)) r = -1;
      }
      break;
    }
    case CXCursor_BinaryOperator: {
      if (k.n != 2) { for (int i = 0; i < k.n; i++) w_val(w, k.v[i]); break; }
      char op[4];
      w_op_text(w, k.v[0], k.v[1], op);
      CXType lt = ctype(k.v[0]), rt = ctype(k.v[1]);
      bool both = (is_ptr(t) && is_ptr(lt) && is_ptr(rt)) ||
                  (t.kind == CXType_Record && lt.kind == CXType_Record &&
                   rt.kind == CXType_Record);
      if (!strcmp(op, "=") || (op[0] == 0 && both)) {
        r = w_val(w, k.v[1]);
        w_store(w, k.v[0], w_assigned(w, k.v[1], r), loc);
        if (!carries(t)) r = -1;
      } else if (!strcmp(op, ",")) {
        w_val(w, k.v[0]);
        r = w_val(w, k.v[1]);
      } else {
        int a = w_val(w, k.v[0]), b = w_val(w, k.v[1]);
        r = is_ptr(t) ? w_merge(w, a, b, loc) : -1;
      }
      break;
    }
    case CXCursor_CompoundAssignOperator:
      if (k.n == 2) {
        w_note_write(w, k.v[0]);
        w_val(w, k.v[1]);
        r = w_val(w, k.v[0]);
        if (!carries(t)) r = -1;
      }
      break;
    case CXCursor_ConditionalOperator:
      for (int i = 0; i < k.n; i++) {
        int v = w_val(w, k.v[i]);
        /* an untracked branch (a global, a string) is OTHER: the value may be it */
        if (i > 0 || k.n == 2) r = w_merge(w, r, carries(t) ? w_assigned(w, k.v[i], v) : v, loc);
      }
      if (!carries(t)) r = -1;
      break;
    case CXCursor_MemberRefExpr:
      if (k.n >= 1 && is_ptr(ctype(k.v[0]))) {
        w_val(w, k.v[0]);
        r = carries(t) ? w->f->loaded : -1;
        if (!carries(t) && is_union(clang_getCanonicalType(clang_getPointeeType(ctype(k.v[0])))))
          w_sink(w, w->f->loaded, S_INTCAST, pe_xstrdup("read as an integer through a union"),
               false, loc);
      } else if (k.n >= 1) {
        r = w_val(w, k.v[0]);
        if (!carries(t) && is_union(ctype(k.v[0])))
          w_sink(w, r, S_INTCAST, pe_xstrdup("read as an integer through a union"), false, loc);
        if (!carries(t)) r = -1;
      } else {
        r = carries(t) ? w->f->loaded : -1;
      }
      break;
    case CXCursor_ArraySubscriptExpr: {
      int arr = subscript_operands(w, &k);
      if (arr >= 0) r = w_val(w, w_strip(k.v[arr]));
      else r = w->f->loaded;
      if (!carries(t)) r = -1;
      break;
    }
    case CXCursor_StmtExpr: {
      kids_t s = k.n == 1 ? w_kids(k.v[0]) : (kids_t){0};
      for (int i = 0; i < s.n; i++) {
        if (i == s.n - 1 && clang_isExpression(s.v[i].kind)) r = w_val(w, s.v[i]);
        else w_stmt(w, s.v[i]);
      }
      free(s.v);
      if (!carries(t)) r = -1;
      break;
    }
    default: /* InitListExpr, CompoundLiteralExpr, GenericSelection, ...: merge children */
      for (int i = 0; i < k.n; i++) {
        if (clang_isExpression(k.v[i].kind)) r = w_merge(w, r, w_val(w, k.v[i]), loc);
        else if (clang_isStatement(k.v[i].kind)) w_stmt(w, k.v[i]);
      }
      if (!carries(t)) r = -1;
  }
  free(k.v);
  return r;
}

int w_val(walker *w, CXCursor c) {
  if (w->too_deep) return -1;
  if (++w->depth > PE_MAX_DEPTH) { w->too_deep = true; w->depth--; return -1; }
  int r = val_(w, c);
  w->depth--;
  return r;
}

int w_addr(walker *w, CXCursor c) {
  if (w->too_deep) return -1;
  kids_t k = w_kids(c);
  int r = -1;
  w->depth++;
  switch (c.kind) {
    case CXCursor_ParenExpr: case CXCursor_UnexposedExpr:
      if (k.n == 1) r = w_addr(w, k.v[0]);
      else r = w_val(w, c);
      break;
    case CXCursor_DeclRefExpr: {
      CXCursor ref = clang_getCursorReferenced(c);
      if (ref.kind == CXCursor_ParmDecl && is_arr(ctype(c)))
        r = w_var_node(w, ref); /* an array parameter decays to its own (pointer) value */
      else if ((ref.kind == CXCursor_VarDecl || ref.kind == CXCursor_ParmDecl) && w_var_class(ref) == 0)
        r = w_addr_of_var(w, w_var_node(w, ref), c);
      break;
    }
    case CXCursor_MemberRefExpr:
      if (k.n >= 1) r = is_ptr(ctype(k.v[0])) ? w_val(w, k.v[0]) : w_addr(w, k.v[0]);
      break;
    case CXCursor_ArraySubscriptExpr: {
      for (int i = 0; i < k.n; i++) {
        CXCursor s = w_strip(k.v[i]);
        r = w_merge(w, r, is_local_array(s) ? w_addr(w, s) : w_val(w, k.v[i]), w_loc_of(c));
      }
      break;
    }
    case CXCursor_UnaryOperator:
      if (k.n == 1) r = w_val(w, k.v[0]);
      break;
    case CXCursor_CompoundLiteralExpr: { /* an unnamed automatic object of the function */
      int v = w_node_new(w, N_VAR, pe_xstrdup("compound literal"), w_loc_of(c));
      for (int i = 0; i < k.n; i++)
        if (clang_isExpression(k.v[i].kind)) w_edge(w, w_val(w, k.v[i]), v, w_loc_of(c));
      r = w_addr_of_var(w, v, c);
      break;
    }
    case CXCursor_StringLiteral:
      break;
    default:
      r = w_val(w, c);
  }
  w->depth--;
  free(k.v);
  return r;
}


static int subscript_operands(walker *w, kids_t *k) {
  int arr = -1;
  for (int i = 0; i < k->n; i++)
    if (is_local_array(w_strip(k->v[i]))) arr = i;
  for (int i = 0; i < k->n; i++)
    if (i != arr) w_val(w, k->v[i]);
  return arr;
}
