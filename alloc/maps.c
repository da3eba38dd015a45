/* maps.c - the executable mappings of the process, for the profile's Mapping messages.
 *
 * /proc/self/maps gives what pprof needs to map an address back to a file offset (start,
 * limit, file offset, path); dl_iterate_phdr gives each loaded object's GNU build ID from its
 * PT_NOTE segment, in memory, without opening files. An object's build ID is attached to every
 * maps line that overlaps one of its executable PT_LOAD segments.
 */
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "profinternal.h"

typedef struct {
  palloc_mapping_t *maps;
  size_t n;
} ids_ctx_t;

static void hex(char *out, const unsigned char *b, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = 0;
}

static const unsigned char *find_build_id(struct dl_phdr_info *info, size_t *len) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
    const unsigned char *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
      size_t name_sz = (nh->n_namesz + 3) & ~3u, desc_sz = (nh->n_descsz + 3) & ~3u;
      const unsigned char *name = p + sizeof *nh, *desc = name + name_sz;
      if (desc + desc_sz > end) break;
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
          nh->n_descsz > 0 && nh->n_descsz <= 40) {
        *len = nh->n_descsz;
        return desc;
      }
      p = desc + desc_sz;
    }
  }
  return NULL;
}

void palloc_object_build_id(struct dl_phdr_info *info, char *out) {
  size_t len;
  const unsigned char *id = find_build_id(info, &len);
  if (id != NULL) hex(out, id, len);
  else out[0] = 0;
}

static int attach_ids(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  ids_ctx_t *c = arg;
  size_t len;
  const unsigned char *id = find_build_id(info, &len);
  if (id == NULL) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    for (size_t k = 0; k < c->n; k++)
      if (c->maps[k].start < hi && c->maps[k].limit > lo) hex(c->maps[k].build_id, id, len);
  }
  return 0;
}

static char *read_maps(palloc_scratch_t *s) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 64 * 1024, n = 0;
  char *buf = palloc_scratch_alloc(s, cap);
  while (buf != NULL) {
    if (cap - n < 4096) {
      char *bigger = palloc_scratch_alloc(s, cap * 2);
      if (bigger) memcpy(bigger, buf, n);
      buf = bigger;
      cap *= 2;
      if (!buf) break;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (buf) buf[n] = 0;
  return buf;
}

palloc_mapping_t *palloc_maps_read(palloc_scratch_t *s, size_t *out_n) {
  *out_n = 0;
  char *text = read_maps(s);
  if (text == NULL) return NULL;
  size_t lines = 1;
  for (char *p = text; *p; p++) lines += *p == '\n';
  palloc_mapping_t *m = palloc_scratch_alloc(s, lines * sizeof *m);
  if (m == NULL) return NULL;
  size_t n = 0;
  for (char *line = text; *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    unsigned long lo, hi, off;
    char perms[8];
    int path_at = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &lo, &hi, perms, &off, &path_at) >= 4 &&
        perms[2] == 'x') {
      palloc_mapping_t *e = &m[n++];
      memset(e, 0, sizeof *e);
      e->start = lo;
      e->limit = hi;
      e->offset = off;
      e->path = path_at ? line + path_at : "";
    }
    if (!nl) break;
    line = nl + 1;
  }
  ids_ctx_t c = {m, n};
  dl_iterate_phdr(attach_ids, &c);
  *out_n = n;
  return m; /* /proc/self/maps is sorted by address */
}

long palloc_maps_find(const palloc_mapping_t *m, size_t n, uintptr_t addr) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (addr < m[mid].start)
      hi = mid;
    else if (addr >= m[mid].limit)
      lo = mid + 1;
    else
      return (long)mid;
  }
  return -1;
}
