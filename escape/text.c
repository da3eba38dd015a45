/* text.c - what walk needs from the source text itself: the text of an allocation call for
 * messages, and the operator between two operands (libclang 14 has no operator-kind API). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "walk.h"

/* ---- source text ------------------------------------------------------------------------ */
/* The text of a call for messages: its source, whitespace collapsed. For a call written in a
 * macro body the expansion is the macro invocation, so we print that (e.g. XMALLOC(64)). */
char *w_call_text(walker *w, CXCursor c) {
  unsigned lo, hi;
  w_extent_offs(c, &lo, &hi);
  const char *b = w->buf;
  size_t n = w->buflen;
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
void w_op_text(walker *w, CXCursor l, CXCursor r, char out[4]) {
  unsigned llo, lhi, rlo, rhi;
  w_extent_offs(l, &llo, &lhi);
  w_extent_offs(r, &rlo, &rhi);
  out[0] = 0;
  if (lhi > rlo || rlo - lhi > 256 || rlo > w->buflen) return;
  /* both operands in the walked function's file (an #include inside a function body would
   * give offsets into another file's text) */
  CXFile lf, rf;
  clang_getExpansionLocation(clang_getRangeEnd(clang_getCursorExtent(l)), &lf, NULL, NULL, NULL);
  clang_getExpansionLocation(clang_getRangeStart(clang_getCursorExtent(r)), &rf, NULL, NULL, NULL);
  if (!lf || !rf || !clang_File_isEqual(lf, w->file) || !clang_File_isEqual(rf, w->file)) return;
  const char *b = w->buf;
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

