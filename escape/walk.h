/* walk.h - the state shared by the files that turn libclang cursors into the escape graph:
 * graph.c (nodes, edges, sinks, variables), text.c (source text), expr.c (expressions),
 * call.c (calls), walk.c (statements and the translation unit). The model is in escape.h. */
#ifndef PALLOC_ESCAPE_WALK_H
#define PALLOC_ESCAPE_WALK_H
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
  const char *dir;          /* the compile command's directory, or NULL */
  CXCursor *fcur;           /* cursor of each function of the unit */
  CXFile *ffile;            /* file of each function of the unit */
  CXFile file;              /* file of the function being walked, and its text */
  const char *buf;
  size_t buflen;
  varslot *vars; size_t nvars, capvars; /* Decl* -> node, open addressing */
  char **fnames; int *fidx; size_t capf; /* function name -> index */
  region loops[512]; int nloops;
  int depth;
  bool too_deep;
  unsigned pwmin[64];       /* offset of the first assignment to each parameter, ~0u: none */
} walker;

typedef struct { CXCursor *v; int n, cap; } kids_t;

/* ---- types ------------------------------------------------------------------------------ */
static inline CXType ctype(CXCursor c) { return clang_getCanonicalType(clang_getCursorType(c)); }
static inline bool is_ptr(CXType t) { return t.kind == CXType_Pointer || t.kind == CXType_BlockPointer; }
static inline bool is_arr(CXType t) {
  return t.kind == CXType_ConstantArray || t.kind == CXType_IncompleteArray ||
         t.kind == CXType_VariableArray || t.kind == CXType_DependentSizedArray;
}
static inline bool is_int(CXType t) { /* integers and enums; not _Bool: p != NULL leaks nothing */
  return (t.kind >= CXType_Char_U && t.kind <= CXType_Int128) || t.kind == CXType_Enum;
}
/* An array-typed expression that really is an array: not a parameter declared as one
 * (char *rows[4] is a char ** whose cursor type still shows the array). */
static inline bool is_local_array(CXCursor c) {
  if (!is_arr(clang_getCanonicalType(clang_getCursorType(c)))) return false;
  if (c.kind == CXCursor_DeclRefExpr && clang_getCursorReferenced(c).kind == CXCursor_ParmDecl)
    return false;
  return true;
}

static inline bool is_func(CXType t) {
  return t.kind == CXType_FunctionProto || t.kind == CXType_FunctionNoProto;
}
/* Can a value of this type hold a tracked pointer? Unknown kinds say yes. */
static inline bool carries(CXType t) {
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

static inline bool is_union(CXType t) {
  return t.kind == CXType_Record && clang_getTypeDeclaration(t).kind == CXCursor_UnionDecl;
}

/* ---- graph.c ---------------------------------------------------------------------------- */
kids_t w_kids(CXCursor c);               /* children; free(k.v) */
char *w_spell(CXCursor c);
pe_loc w_loc_of(CXCursor c);              /* expansion location */
void w_extent_offs(CXCursor c, unsigned *lo, unsigned *hi);
int w_node_new(walker *w, enum pe_node_kind k, char *name, pe_loc loc);
void w_edge(walker *w, int from, int to, pe_loc loc);
void w_sink(walker *w, int node, enum pe_sink_kind k, char *text, bool dangling, pe_loc loc);
int w_merge(walker *w, int a, int b, pe_loc loc);
int w_var_node(walker *w, CXCursor decl);
int w_var_class(CXCursor decl);           /* 0 local, 1 global, 2 static, 3 thread-local */
const char *w_class_word(int cls);
int w_addr_of_var(walker *w, int var, CXCursor at);
void w_func_put(walker *w, const char *name, int idx);
int w_func_find(walker *w, const char *name);
/* ---- text.c ----------------------------------------------------------------------------- */
char *w_call_text(walker *w, CXCursor c);
void w_op_text(walker *w, CXCursor l, CXCursor r, char out[4]);
/* ---- expr.c ----------------------------------------------------------------------------- */
int w_val(walker *w, CXCursor c);         /* node of the value, -1: no tracked pointer */
int w_addr(walker *w, CXCursor c);        /* node of the address of an lvalue */
void w_store(walker *w, CXCursor lhs, int n, pe_loc loc);
CXCursor w_strip(CXCursor c);             /* implicit casts and parentheses */
CXCursor w_strip_casts(CXCursor c);       /* and explicit casts */
int w_assigned(walker *w, CXCursor rhs, int n);
void w_through(walker *w, CXCursor ptr, int n, pe_loc loc);
void w_note_write(walker *w, CXCursor lhs); /* lhs is assigned: a parameter's value changes */
/* ---- call.c ----------------------------------------------------------------------------- */
int w_call(walker *w, CXCursor c);
long long w_eval_int(CXCursor c, bool *ok);
pe_term w_term(walker *w, CXCursor c);    /* a size expression as a term of the parameters */
/* ---- walk.c ----------------------------------------------------------------------------- */
void w_stmt(walker *w, CXCursor c);
#endif
