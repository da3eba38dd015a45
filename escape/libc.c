/* libc.c - built-in knowledge of libc callees: what each one does with its pointer arguments.
 *
 * A callee missing from this table and not defined in the translation unit is unknown, and an
 * unknown callee lets every pointer argument escape. So this table only has to be right, not
 * complete: an entry may only say "safe" ('s') for an argument the function never keeps after
 * returning, never frees and never stores anywhere but through itself. Functions returning a
 * pointer into an argument (strchr, memcpy's dst) mark it 'r' so the result carries the
 * argument's flows. Those that keep a pointer (pthread_create's arg, setvbuf's buffer, putenv,
 * strtok's saved state) mark it 'c'. The codes are documented in escape.h.
 *
 * Names are matched after stripping the builtin spellings the headers use under
 * _FORTIFY_SOURCE (__builtin___memcpy_chk -> memcpy, __builtin_memcpy -> memcpy).
 */
#include <string.h>
#include "escape.h"

static const struct { const char *name, *eff; } table[] = {
  /* memory and strings */
  {"memcpy", "rCs"}, {"memmove", "rCs"}, {"mempcpy", "rCs"}, {"memccpy", "rCss"},
  {"memset", "rss"}, {"memcmp", "sss"}, {"memchr", "rss"}, {"memrchr", "rss"},
  {"rawmemchr", "rs"}, {"bcmp", "sss"}, {"bzero", "ss"}, {"explicit_bzero", "ss"},
  {"strlen", "s"}, {"strnlen", "ss"}, {"strcmp", "ss"}, {"strncmp", "sss"},
  {"strcasecmp", "ss"}, {"strncasecmp", "sss"}, {"strcoll", "ss"}, {"strverscmp", "ss"},
  {"strcpy", "rs"}, {"strncpy", "rss"}, {"strcat", "rs"}, {"strncat", "rss"},
  {"stpcpy", "rs"}, {"stpncpy", "rss"}, {"strlcpy", "sss"}, {"strlcat", "sss"},
  {"strchr", "rs"}, {"strrchr", "rs"}, {"strchrnul", "rs"}, {"strstr", "rs"},
  {"strcasestr", "rs"}, {"strpbrk", "rs"}, {"strspn", "ss"}, {"strcspn", "ss"},
  {"strerror", "s"}, {"strxfrm", "sss"}, {"memmem", "rsss"},
  {"strdup", "s"}, {"strndup", "ss"}, /* copy into a new block, keep nothing */
  /* numbers */
  {"atoi", "s"}, {"atol", "s"}, {"atoll", "s"}, {"atof", "s"},
  {"strtol", "ess"}, {"strtoul", "ess"}, {"strtoll", "ess"}, {"strtoull", "ess"},
  {"strtod", "es"}, {"strtof", "es"}, {"strtold", "es"}, {"strtoimax", "ess"},
  {"strtoumax", "ess"},
  /* stdio: reads or writes through the pointer, keeps nothing */
  {"printf", "s"}, {"fprintf", "s"}, {"sprintf", "s"}, {"snprintf", "s"}, {"dprintf", "s"},
  {"vprintf", "s"}, {"vfprintf", "s"}, {"vsprintf", "s"}, {"vsnprintf", "s"},
  {"vdprintf", "s"}, {"asprintf", "s"}, {"vasprintf", "s"}, {"scanf", "s"}, {"fscanf", "s"},
  {"sscanf", "s"}, {"vscanf", "s"}, {"vfscanf", "s"}, {"vsscanf", "s"},
  {"puts", "s"}, {"fputs", "ss"}, {"fputc", "ss"}, {"putc", "ss"}, {"putchar", "s"},
  {"fgets", "rss"}, {"fgetc", "s"}, {"getc", "s"}, {"ungetc", "ss"},
  {"fwrite", "ssss"}, {"fread", "ssss"}, {"fflush", "s"}, {"fclose", "s"},
  {"fopen", "ss"}, {"fdopen", "ss"}, {"fileno", "s"}, {"feof", "s"}, {"ferror", "s"},
  {"perror", "s"}, {"remove", "s"}, {"rename", "ss"},
  {"__printf_chk", "s"}, {"__fprintf_chk", "s"}, {"__sprintf_chk", "s"},
  {"__snprintf_chk", "s"}, {"__vfprintf_chk", "s"}, {"__vsnprintf_chk", "s"},
  {"__vsprintf_chk", "s"}, {"__fgets_chk", "rsss"}, {"__fread_chk", "sssss"},
  /* unistd and friends */
  {"read", "sss"}, {"write", "sss"}, {"pread", "ssss"}, {"pwrite", "ssss"},
  {"open", "s"}, {"access", "ss"}, {"stat", "ss"}, {"lstat", "ss"}, {"fstat", "ss"},
  {"unlink", "s"}, {"mkdir", "ss"}, {"getenv", "s"}, {"setenv", "sss"}, {"unsetenv", "s"},
  {"time", "s"}, {"gettimeofday", "ss"}, {"clock_gettime", "ss"}, {"getcwd", "rs"},
  {"localtime_r", "ss"}, {"gmtime_r", "ss"}, {"strftime", "ssss"},
  {"__read_chk", "ssss"},
  /* synchronous callbacks: the pointer is used during the call only */
  {"qsort", "ssss"}, {"qsort_r", "sssss"}, {"bsearch", "srsss"},
  /* capture: the pointer is kept after the call returns */
  {"pthread_create", "sscc"}, {"pthread_setspecific", "sc"}, {"setbuf", "sc"},
  {"setvbuf", "scss"}, {"setbuffer", "scs"}, {"putenv", "c"}, {"strtok", "cs"},
  {"strtok_r", "css"}, {"atexit", "c"}, {"on_exit", "cc"}, {"tsearch", "ccs"},
  {"hsearch", "cs"}, {"pthread_key_create", "sc"}, {"signal", "sc"}, {"sigaction", "scs"},
  {"makecontext", "c"}, {"aio_read", "c"}, {"aio_write", "c"},
  /* freeing and reallocating */
  {"malloc_usable_size", "s"},
  {"free", "f"}, {"cfree", "f"}, {"realloc", "Rs"}, {"reallocarray", "Rss"},
  {"getline", "DDs"}, {"getdelim", "DDss"},
  /* compiler builtins the headers expand to */
  {"__builtin_expect", "rs"}, {"__builtin_object_size", "ss"},
  {"__builtin_dynamic_object_size", "ss"}, {"__builtin_prefetch", "s"},
  {"__builtin_assume_aligned", "rs"}, {"__builtin_va_start", "ss"},
  {"__builtin_va_end", "s"}, {"__builtin_va_copy", "ss"}, {"__builtin_constant_p", "s"},
  {"__assert_fail", "ssss"}, {"__assert_perror_fail", "ssss"}, {"__assert", "sss"},
};

static const char *strip_builtin(const char *name, char *tmp, size_t cap) {
  const char *s = name;
  if (strncmp(s, "__builtin___", 12) == 0) s += 12;
  else if (strncmp(s, "__builtin_", 10) == 0 && !pe_libc_known_builtin(name)) s += 10;
  size_t n = strlen(s);
  if (n > 4 && strcmp(s + n - 4, "_chk") == 0 && s != name && n - 4 < cap) {
    memcpy(tmp, s, n - 4);
    tmp[n - 4] = 0;
    return tmp;
  }
  return s;
}

bool pe_libc_known_builtin(const char *name) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strncmp(table[i].name, "__builtin_", 10) == 0 && strcmp(table[i].name, name) == 0)
      return true;
  return false;
}

const char *pe_libc_effects(const char *name) {
  char tmp[128];
  const char *s = strip_builtin(name, tmp, sizeof tmp);
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(table[i].name, s) == 0) return table[i].eff;
  return NULL;
}

bool pe_is_setjmp(const char *name) {
  static const char *const names[] = {"setjmp", "_setjmp", "__setjmp", "sigsetjmp",
                                      "__sigsetjmp", "__builtin_setjmp", "savectx", "vfork",
                                      "getcontext"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i]) == 0) return true;
  return false;
}
