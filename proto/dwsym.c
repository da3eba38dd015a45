/* dwsym.c - a profile's addresses named from its mappings' binaries with libdw (dwsym.h). */
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dwsym.h"

struct palloc_dwsym_s {
  Dwfl *dwfl;
  Dwfl_Module *mod;
  Elf *elf;
  GElf_Addr bias;                 /* libdw's module address = ELF vaddr + bias */
  uint64_t memory_start, file_offset;
};

/* libdw's search path for separate debug files: "+" (check debuglink CRCs), the binary's
 * directory, its .debug/, the caller's directories, /usr/lib/debug (build-id trees under the
 * absolute ones). */
static char *debuginfo_path = NULL;

void palloc_dwsym_set_debug_dirs(const char *dirs) {
  free(debuginfo_path);
  debuginfo_path = NULL;
  if (dirs == NULL || dirs[0] == 0) return;
  size_t n = strlen(dirs) + 64;
  debuginfo_path = malloc(n);
  if (debuginfo_path) snprintf(debuginfo_path, n, "+:.debug:%s:/usr/lib/debug", dirs);
}

static void hexid(const unsigned char *b, int n, char *out) {
  for (int i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
  out[2 * n] = 0;
}

palloc_dwsym_t *palloc_dwsym_open(const palloc_pb_profile_t *p,
                                  const Perftools__Profiles__Mapping *m, char *err,
                                  size_t errlen) {
  const char *path = p->string_table[m->filename];
  if (path[0] != '/') {
    snprintf(err, errlen, "no binary file to read symbols from");
    return NULL;
  }
  static const Dwfl_Callbacks cb = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
  };
  elf_version(EV_CURRENT);
  palloc_dwsym_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->memory_start = m->memory_start;
  s->file_offset = m->file_offset;
  /* Offline, at bias 0: the address is translated through the file's own segments. */
  /* The path is the profile's word: opened here, O_NONBLOCK, and only a regular file is given
   * to libdw (which would open a FIFO blocking, and wait for a writer forever). On success
   * dwfl_report_elf owns fd. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "cannot read the binary (%s)", fd < 0 ? strerror(errno) : "not a regular file");
    if (fd >= 0) close(fd);
    palloc_dwsym_close(s);
    return NULL;
  }
  s->dwfl = dwfl_begin(&cb);
  s->mod = s->dwfl ? dwfl_report_elf(s->dwfl, path, path, fd, 0, false) : NULL;
  if (s->mod == NULL) close(fd);
  if (s->dwfl) dwfl_report_end(s->dwfl, NULL, NULL);
  s->elf = s->mod ? dwfl_module_getelf(s->mod, &s->bias) : NULL;
  if (s->elf == NULL) {
    snprintf(err, errlen, "cannot read the binary (%s)", dwfl_errmsg(-1));
    palloc_dwsym_close(s);
    return NULL;
  }
  const char *want = p->string_table[m->build_id];
  const unsigned char *bid;
  GElf_Addr bid_addr;
  int bid_len = dwfl_module_build_id(s->mod, &bid, &bid_addr);
  if (want[0] && bid_len > 0) {
    char have[2 * 64 + 1];
    if (bid_len <= 64) hexid(bid, bid_len, have);
    if (bid_len > 64 || strcmp(have, want) != 0) {
      snprintf(err, errlen, "build id differs from the profile's (the binary was rebuilt)");
      palloc_dwsym_close(s);
      return NULL;
    }
  }
  return s;
}

bool palloc_dwsym_lookup(palloc_dwsym_t *s, uint64_t addr, palloc_dwsym_frame_t *out) {
  memset(out, 0, sizeof *out);
  uint64_t off = addr - s->memory_start + s->file_offset;
  size_t nph = 0;
  if (elf_getphdrnum(s->elf, &nph) != 0) return false;
  for (size_t k = 0; k < nph; k++) {
    GElf_Phdr ph;
    if (gelf_getphdr(s->elf, (int)k, &ph) == NULL || ph.p_type != PT_LOAD) continue;
    if (off < ph.p_offset || off >= ph.p_offset + ph.p_filesz) continue;
    GElf_Addr a = off - ph.p_offset + ph.p_vaddr + s->bias;
    out->func = dwfl_module_addrname(s->mod, a);
    Dwfl_Line *dl = dwfl_module_getsrc(s->mod, a);
    if (dl) out->file = dwfl_lineinfo(dl, NULL, &out->line, NULL, NULL, NULL);
    if (out->file == NULL || out->line < 0) out->line = 0;
    return out->func != NULL || out->file != NULL;
  }
  return false;
}

void palloc_dwsym_close(palloc_dwsym_t *s) {
  if (s == NULL) return;
  if (s->dwfl) dwfl_end(s->dwfl);
  free(s);
}
