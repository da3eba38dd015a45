/* parse.c - turning one C file and its compile flags into a libclang translation unit.
 *
 * The flags are the project's real ones (from compile_commands.json, or after "--" on the
 * command line), passed as a full argv so that the driver sees them as the compiler would.
 * Two additions: -resource-dir, so that libclang finds its own stddef.h/stdarg.h (libclang does
 * not derive it from the compiler named in argv[0]), and -working-directory for relative paths.
 * CXTranslationUnit_KeepGoing keeps the AST when GCC-only flags upset the driver.
 *
 * A file "does not compile" when an error or fatal diagnostic points into a file: its AST has
 * holes (invalid expressions are dropped), and analyzing holes would be unsound, so such a
 * file is reported and skipped. Errors without a location come from the driver (an unknown
 * GCC flag) and only warrant a warning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "escape.h"

static void print_diag(CXDiagnostic d) {
  CXString s = clang_formatDiagnostic(d, clang_defaultDiagnosticDisplayOptions());
  fprintf(stderr, "palloc-escape: %s\n", clang_getCString(s));
  clang_disposeString(s);
}

CXTranslationUnit pe_parse(CXIndex idx, const char *file, const char *dir, char **args, int nargs,
                           const pe_opts *o) {
  /* argv: compiler args..., then ours. args[0] is the compiler (or a placeholder). */
  int n = 0;
  const char **argv = malloc(sizeof *argv * (size_t)(nargs + 8));
  for (int i = 0; i < nargs; i++) argv[n++] = args[i];
  if (o->resource_dir) {
    argv[n++] = "-resource-dir";
    argv[n++] = o->resource_dir;
  }
  if (dir) {
    argv[n++] = "-working-directory";
    argv[n++] = dir;
  }
  argv[n++] = "-Wno-everything"; /* we only look at errors */
  CXTranslationUnit tu = NULL;
  enum CXErrorCode ec = clang_parseTranslationUnit2FullArgv(
      idx, NULL, argv, n, NULL, 0, CXTranslationUnit_KeepGoing, &tu);
  free(argv);
  if (ec != CXError_Success || tu == NULL) {
    fprintf(stderr, "palloc-escape: %s: error: cannot parse (libclang error %d)\n", file, ec);
    return NULL;
  }
  unsigned nd = clang_getNumDiagnostics(tu);
  bool failed = false;
  for (unsigned i = 0; i < nd; i++) {
    CXDiagnostic d = clang_getDiagnostic(tu, i);
    enum CXDiagnosticSeverity sev = clang_getDiagnosticSeverity(d);
    if (sev >= CXDiagnostic_Error) {
      CXFile f;
      clang_getExpansionLocation(clang_getDiagnosticLocation(d), &f, NULL, NULL, NULL);
      if (f != NULL || sev == CXDiagnostic_Fatal) {
        if (!failed) fprintf(stderr, "palloc-escape: %s: error: does not compile:\n", file);
        print_diag(d);
        failed = true;
      } else {
        print_diag(d);
      }
    }
    clang_disposeDiagnostic(d);
  }
  if (failed) {
    clang_disposeTranslationUnit(tu);
    return NULL;
  }
  return tu;
}
