/* symbolize.c - function, file and line for the addresses of a profile, with libdw.
 *
 * Only the addresses that appear in the profile are looked up, at write time. A Dwfl session is
 * opened from /proc/self/maps for the lookups that miss the cache and closed right after, so
 * libdw's DWARF memory is returned after every write instead of growing with the program.
 *
 * libdw is loaded with dlopen at the first write that needs it, not linked: with its libelf,
 * liblzma and libbz2 it costs ~450 KB of resident memory in every process, and most processes
 * under an always-on profiler never write a profile. If it cannot be loaded, the profile is
 * written without names (pprof then symbolizes from the binaries).
 *
 * Only the symbol tables and DWARF inside the loaded files themselves are read. Separate debug
 * files (/usr/lib/debug, debuglink, debuginfod) are not: finding a line for one libc frame in
 * libc6-dbg's compressed DWARF cost 240M instructions and tens of MB at every write. Those
 * frames still get function names from the file's own symbols; `palloc symbolize` or pprof can
 * add their lines offline.
 *
 * The cache maps address -> (function, file, line) across writes (continuous profiling writes
 * the same addresses again and again). Its memory is bounded: entries and their strings live in
 * one scratch arena that is dropped and rebuilt when it passes SYMCACHE_MAX_BYTES or its table
 * is full. Only the writer (under the writer lock) touches it.
 */
#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <string.h>
#include <unistd.h>
#include "profinternal.h"

#define SYMCACHE_SLOTS 65536            /* power of two; at most 3/4 used */
#define SYMCACHE_MAX_BYTES ((uint64_t)32 << 20)

typedef struct {
  uintptr_t addr; /* 0 = empty */
  palloc_sym_t sym;
} entry_t;

/* The libdw entry points used here, resolved once from dlopen("libdw.so.1"). */
static struct {
  Dwfl *(*begin)(const Dwfl_Callbacks *);
  void (*report_begin)(Dwfl *);
  int (*linux_proc_report)(Dwfl *, pid_t);
  int (*report_end)(Dwfl *, int (*)(Dwfl_Module *, void *, const char *, Dwarf_Addr, void *),
                    void *);
  void (*end)(Dwfl *);
  Dwfl_Module *(*addrmodule)(Dwfl *, Dwarf_Addr);
  const char *(*module_addrname)(Dwfl_Module *, GElf_Addr);
  Dwfl_Line *(*module_getsrc)(Dwfl_Module *, Dwarf_Addr);
  const char *(*lineinfo)(Dwfl_Line *, Dwarf_Addr *, int *, int *, Dwarf_Word *, Dwarf_Word *);
  int (*linux_proc_find_elf)(Dwfl_Module *, void **, const char *, Dwarf_Addr, char **, Elf **);
} dw;
static int dw_state; /* 0 not tried, 1 loaded, -1 unavailable (writer lock held) */

static bool dw_load(void) {
  if (dw_state != 0) return dw_state > 0;
  dw_state = -1;
  void *h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    palloc_warn("cannot load libdw.so.1 (%s): profiles are written without symbols", dlerror());
    return false;
  }
#define RESOLVE(field, name)                                                                  \
  if ((*(void **)&dw.field = dlsym(h, name)) == NULL) {                                       \
    palloc_warn("libdw.so.1 has no %s: profiles are written without symbols", name);          \
    return false;                                                                             \
  }
  RESOLVE(begin, "dwfl_begin")
  RESOLVE(report_begin, "dwfl_report_begin")
  RESOLVE(linux_proc_report, "dwfl_linux_proc_report")
  RESOLVE(report_end, "dwfl_report_end")
  RESOLVE(end, "dwfl_end")
  RESOLVE(addrmodule, "dwfl_addrmodule")
  RESOLVE(module_addrname, "dwfl_module_addrname")
  RESOLVE(module_getsrc, "dwfl_module_getsrc")
  RESOLVE(lineinfo, "dwfl_lineinfo")
  RESOLVE(linux_proc_find_elf, "dwfl_linux_proc_find_elf")
#undef RESOLVE
  dw_state = 1;
  return true;
}

static palloc_scratch_t *cache_arena;
static entry_t *cache;
static size_t cache_used;

static bool cache_reset(void) {
  palloc_scratch_destroy(cache_arena);
  cache_arena = palloc_scratch_new();
  /* The first allocation of a fresh scratch arena is fresh mmap memory: already zero, and
   * resident only where entries are written (a memset here made it 2 MiB of RSS). */
  cache = cache_arena ? palloc_scratch_alloc(cache_arena, SYMCACHE_SLOTS * sizeof *cache) : NULL;
  cache_used = 0;
  return cache != NULL;
}

uint64_t palloc_symcache_bytes(void) { return cache_arena ? palloc_scratch_peak(cache_arena) : 0; }

static entry_t *slot(uintptr_t addr) {
  size_t i = (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 48) & (SYMCACHE_SLOTS - 1);
  while (cache[i].addr != 0 && cache[i].addr != addr) i = (i + 1) & (SYMCACHE_SLOTS - 1);
  return &cache[i];
}

static const char *keep(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *c = palloc_scratch_alloc(cache_arena, n);
  if (c) memcpy(c, s, n);
  return c;
}

static void lookup(Dwfl *dwfl, uintptr_t addr, palloc_sym_t *out) {
  memset(out, 0, sizeof *out);
  Dwfl_Module *mod = dw.addrmodule(dwfl, addr);
  if (mod == NULL) return;
  out->func = dw.module_addrname(mod, addr);
  Dwfl_Line *line = dw.module_getsrc(mod, addr);
  if (line != NULL) {
    int lineno = 0;
    const char *file = dw.lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
    out->file = file;
    out->line = lineno > 0 ? lineno : 0;
  }
}

/* libdw then uses the DWARF of the main file, if it has any. */
static int no_separate_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
                                 Dwarf_Addr base, const char *file, const char *debuglink,
                                 GElf_Word crc, char **debuginfo_file_name) {
  (void)mod, (void)userdata, (void)modname, (void)base, (void)file, (void)debuglink, (void)crc;
  (void)debuginfo_file_name;
  return -1;
}

void palloc_symbolize(const uintptr_t *addrs, size_t n, palloc_sym_t *out, palloc_scratch_t *s) {
  (void)s;
  if (cache == NULL || cache_used + n > SYMCACHE_SLOTS * 3 / 4 ||
      palloc_scratch_peak(cache_arena) > SYMCACHE_MAX_BYTES)
    if (!cache_reset()) {
      memset(out, 0, n * sizeof *out);
      return;
    }
  Dwfl *dwfl = NULL;
  static char *debuginfo_path = NULL;
  static Dwfl_Callbacks callbacks = {
    .find_elf = NULL, /* dw.linux_proc_find_elf, set below */
    .find_debuginfo = no_separate_debuginfo,
    .debuginfo_path = &debuginfo_path,
  };
  for (size_t i = 0; i < n; i++) {
    entry_t *e = slot(addrs[i]);
    if (e->addr == 0) {
      if (dwfl == NULL) {
        if (dw_load()) {
          callbacks.find_elf = dw.linux_proc_find_elf;
          dwfl = dw.begin(&callbacks);
        }
        if (dwfl != NULL) {
          dw.report_begin(dwfl);
          if (dw.linux_proc_report(dwfl, getpid()) != 0) {
            dw.end(dwfl);
            dwfl = NULL;
          } else {
            dw.report_end(dwfl, NULL, NULL);
          }
        }
        if (dwfl == NULL) { /* no symbols this time; do not cache the failure */
          memset(&out[i], 0, (n - i) * sizeof *out);
          for (size_t k = i; k < n; k++) {
            entry_t *c = slot(addrs[k]);
            if (c->addr != 0) out[k] = c->sym;
          }
          return;
        }
      }
      palloc_sym_t sym;
      lookup(dwfl, addrs[i], &sym);
      e->addr = addrs[i];
      e->sym.func = keep(sym.func);
      e->sym.file = keep(sym.file);
      e->sym.line = sym.line;
      cache_used++;
    }
    out[i] = e->sym;
  }
  if (dwfl) dw.end(dwfl);
}
