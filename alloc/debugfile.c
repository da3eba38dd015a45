/* debugfile.c - the separate debug file of a stripped binary, for in-process symbolization.
 *
 * Debian's binaries are stripped: their .symtab (the names of static functions) and their DWARF
 * live in /usr/lib/debug/.build-id/xx/yyyy.debug (the -dbgsym packages), named by the GNU build
 * id; a binary split by hand (objcopy --only-keep-debug, --add-gnu-debuglink) names its debug
 * file in .gnu_debuglink instead. The places searched are gdb's, in gdb's order: for each DIR of
 * PALLOC_DEBUG_DIRS then /usr/lib/debug, DIR/.build-id/xx/yyyy.debug; then the debuglink name
 * next to the binary, in its .debug/ directory, and under each DIR followed by the binary's own
 * directory. A candidate must be a readable ELF file and, if the binary has a build id, carry
 * the same one: a debug file from another build would give wrong names, which are worse than
 * none. (The debuglink's CRC is not computed: it would read the whole debug file, hundreds of
 * megabytes for some libraries, at every profile write; the build id covers the common case.)
 *
 * Runs in the profile writer: paths are built in fixed buffers, nothing is allocated but the
 * scratch memory palloc_elf_open uses, and every file is opened O_NONBLOCK (a FIFO in a debug
 * file's place must not block the writer).
 */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "elfread.h"
#ifndef PALLOC_DEBUGFILE_NO_OPTIONS
#include "options.h"

const char *palloc_debug_dirs(void) { return palloc_option_str(PALLOC_OPT_DEBUG_DIRS); }
#else
/* the reader's tests and fuzzer, built without the options table: /usr/lib/debug only */
const char *palloc_debug_dirs(void) { return NULL; }
#endif

#define DEBUG_PATH_MAX 4096
static const char system_dir[] = "/usr/lib/debug";

/* Opens path if it is a usable debug file for the binary e (build id id[0..nid), if nid > 0),
 * and not the binary itself (same device and inode); -1 otherwise. */
static int try_open(palloc_elf_t *e, const char *path, const unsigned char *id, size_t nid) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  struct stat a, b;
  if (fstat(fd, &a) != 0 || fstat(e->fd, &b) != 0 || (a.st_dev == b.st_dev && a.st_ino == b.st_ino)) {
    close(fd);
    return -1;
  }
  if (nid > 0) {
    palloc_elf_t d;
    unsigned char did[64];
    bool ok = palloc_elf_open_sections(&d, fd, e->s, false) &&
              palloc_elf_build_id(&d, did, sizeof did) == nid &&
              memcmp(did, id, nid) == 0;
    if (d.sh) palloc_scratch_free(e->s, d.sh);
    if (!ok) {
      close(fd);
      return -1;
    }
  }
  return fd;
}

/* Calls fn(dir, len) for each directory: PALLOC_DEBUG_DIRS's then /usr/lib/debug; stops at the
 * first that returns a descriptor. */
typedef int (*dir_fn)(palloc_elf_t *e, const char *dir, size_t len, const void *arg);
static int each_dir(palloc_elf_t *e, dir_fn fn, const void *arg) {
  const char *dirs = palloc_debug_dirs();
  for (const char *p = dirs; p && *p;) {
    const char *c = strchr(p, ':');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len > 0) {
      int fd = fn(e, p, len, arg);
      if (fd >= 0) return fd;
    }
    if (c == NULL) break;
    p = c + 1;
  }
  return fn(e, system_dir, sizeof system_dir - 1, arg);
}

typedef struct {
  const unsigned char *id;
  size_t nid;
  const char *name, *bindir; /* debuglink name, the binary's directory */
  size_t bindir_len;
} want_t;

static int by_build_id(palloc_elf_t *e, const char *dir, size_t len, const void *arg) {
  const want_t *w = arg;
  char path[DEBUG_PATH_MAX];
  if (len + 2 * w->nid + 32 > sizeof path) return -1;
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  memcpy(path, dir, len);
  o = len;
  memcpy(path + o, "/.build-id/", 11);
  o += 11;
  for (size_t i = 0; i < w->nid; i++) {
    path[o++] = hex[w->id[i] >> 4];
    path[o++] = hex[w->id[i] & 15];
    if (i == 0) path[o++] = '/';
  }
  memcpy(path + o, ".debug", 7);
  return try_open(e, path, w->id, w->nid);
}

static int by_link_in_dir(palloc_elf_t *e, const char *dir, size_t len, const void *arg) {
  const want_t *w = arg;
  char path[DEBUG_PATH_MAX];
  size_t n = strlen(w->name);
  if (len + w->bindir_len + n + 3 > sizeof path) return -1;
  memcpy(path, dir, len);
  memcpy(path + len, w->bindir, w->bindir_len);
  path[len + w->bindir_len] = '/';
  memcpy(path + len + w->bindir_len + 1, w->name, n + 1);
  return try_open(e, path, w->id, w->nid);
}

int palloc_debug_open(palloc_elf_t *e, const char *path) {
  unsigned char id[64];
  want_t w = {.id = id, .nid = palloc_elf_build_id(e, id, sizeof id)};
  if (w.nid > 0) {
    int fd = each_dir(e, by_build_id, &w);
    if (fd >= 0) return fd;
  }
  const Elf64_Shdr *l = e->debuglink;
  char name[256];
  if (l == NULL || l->sh_size < 2 || l->sh_size > 4096) return -1;
  size_t k = l->sh_size < sizeof name ? (size_t)l->sh_size : sizeof name - 1;
  if (!palloc_elf_read(e, name, k, l->sh_offset)) return -1;
  name[k] = 0;
  if (name[0] == 0 || strchr(name, '/') != NULL || strlen(name) >= sizeof name - 1) return -1;
  w.name = name;
  /* the binary's directory: of the path as loaded (a symlink's own directory first is what gdb
   * does too; /proc/self/exe resolves to the real file) */
  char real[DEBUG_PATH_MAX];
  const char *bin = path;
  if (strcmp(path, "/proc/self/exe") == 0) {
    ssize_t r = readlink(path, real, sizeof real - 1);
    if (r <= 0) return -1;
    real[r] = 0;
    bin = real;
  }
  const char *slash = strrchr(bin, '/');
  if (slash == NULL) return -1;
  w.bindir = bin;
  w.bindir_len = (size_t)(slash - bin);
  /* next to the binary, then in its .debug/ (by_link_in_dir with the empty prefix and with
   * the binary's directory as the "debug directory") */
  want_t here = w;
  here.bindir_len = 0;
  int fd;
  if ((fd = by_link_in_dir(e, bin, w.bindir_len, &here)) >= 0) return fd;
  char dot[DEBUG_PATH_MAX];
  if (w.bindir_len + 8 > sizeof dot) return -1;
  memcpy(dot, bin, w.bindir_len);
  memcpy(dot + w.bindir_len, "/.debug", 7);
  if ((fd = by_link_in_dir(e, dot, w.bindir_len + 7, &here)) >= 0) return fd;
  return each_dir(e, by_link_in_dir, &w);
}
