/* elfsym.c - ELF headers, sections and function names for addresses.
 *
 * The file is read with pread through small scratch buffers, never mmap'd: page-cache pages read
 * with pread are not the process's RSS, and a file truncated under us gives a short read (the
 * lookup gives up) where a mapping would raise SIGBUS in the host.
 *
 * The function of an address is the symbol of .symtab (else .dynsym) that contains it; among
 * several, the nearest start, then the stronger binding (weak > global > local), then the smaller
 * size, as libdw's dwfl_module_addrname chooses. The table is read once, chunk by chunk, and each
 * symbol is matched against the sorted wanted addresses by binary search; names are read from the
 * string table only for the winners, at the end.
 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "elfread.h"

#define CHUNK (16 * 1024)      /* symbol table read buffer */
#define SHSTR_MAX (64 * 1024)  /* section names read at most */
/* A loaded object is in the host's byte order; the reader decodes fields in it. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_DATA ELFDATA2LSB
#else
#define NATIVE_DATA ELFDATA2MSB
#endif

bool palloc_elf_read(const palloc_elf_t *e, void *buf, size_t n, uint64_t off) {
  /* Nothing is read past the size the file had when opened: with this, a length taken from the
   * file can never make pread write past a buffer sized by the same length, and off + n cannot
   * wrap (nor turn negative as an off_t). */
  if (off > e->size || n > e->size - off) return false;
  char *p = buf;
  while (n > 0) {
    ssize_t r = pread(e->fd, p, n, (off_t)off);
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return true;
}

bool palloc_elf_section_ok(const palloc_elf_t *e, const Elf64_Shdr *h) {
  return h != NULL && h->sh_type != SHT_NOBITS && h->sh_offset <= e->size &&
         h->sh_size <= e->size - h->sh_offset;
}

/* Read in growing pieces: most names are short, a C++ name may be kilobytes. */
char *palloc_elf_str(palloc_elf_t *e, const Elf64_Shdr *sec, uint64_t off) {
  if (!palloc_elf_section_ok(e, sec) || off >= sec->sh_size) return NULL;
  uint64_t limit = sec->sh_offset + sec->sh_size; /* <= e->size: no wrap */
  off += sec->sh_offset;
  size_t cap = 256;
  for (;;) {
    if (off >= limit) return NULL;
    size_t n = (uint64_t)cap < limit - off ? cap : (size_t)(limit - off);
    if (n > e->str_bytes_left) return NULL;
    e->str_bytes_left -= n;
    char *b = palloc_scratch_alloc(e->s, n + 1);
    if (b == NULL) return NULL;
    ssize_t r = pread(e->fd, b, n, (off_t)off);
    if (r <= 0) return NULL;
    b[r] = 0;
    if (strlen(b) < (size_t)r || (size_t)r == limit - off) return b;
    palloc_scratch_free(e->s, b);
    if (cap >= (1u << 20)) return NULL;
    cap *= 4;
  }
}

bool palloc_elf_open(palloc_elf_t *e, int fd, palloc_scratch_t *s) {
  memset(e, 0, sizeof *e);
  e->fd = fd;
  e->s = s;
  /* Only a regular file: a FIFO or a device put in a library's place would block or never end. */
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0) return false;
  e->size = (uint64_t)st.st_size;
  Elf64_Ehdr eh;
  /* e_shnum == 0 with sections would be extended numbering (the count in section 0): rare
   * enough (> 65279 sections) to be read as "no sections". shnum * 64 <= 4 MiB. */
  if (!palloc_elf_read(e, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != NATIVE_DATA ||
      eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum)
    return false;
  e->shnum = eh.e_shnum;
  e->sh = palloc_scratch_alloc(s, e->shnum * sizeof *e->sh);
  if (e->sh == NULL || !palloc_elf_read(e, e->sh, e->shnum * sizeof *e->sh, eh.e_shoff))
    return false;
  const Elf64_Shdr *names = &e->sh[eh.e_shstrndx];
  if (!palloc_elf_section_ok(e, names)) return false;
  /* Section names are short and few; a larger table is read in part (names past it unknown). */
  size_t nnames = names->sh_size < SHSTR_MAX ? (size_t)names->sh_size : SHSTR_MAX;
  char *shstr = palloc_scratch_alloc(s, nnames + 1);
  if (shstr == NULL || !palloc_elf_read(e, shstr, nnames, names->sh_offset)) return false;
  shstr[nnames] = 0;
  for (size_t i = 0; i < e->shnum; i++) {
    const Elf64_Shdr *h = &e->sh[i];
    /* a section that does not lie inside the file is as good as absent */
    if (h->sh_name >= nnames || !palloc_elf_section_ok(e, h)) continue;
    const char *nm = shstr + h->sh_name;
    bool compressed = (h->sh_flags & SHF_COMPRESSED) != 0;
    if (h->sh_type == SHT_SYMTAB) e->symtab = h;
    else if (h->sh_type == SHT_DYNSYM) e->dynsym = h;
    else if (compressed) continue;
    else if (strcmp(nm, ".debug_line") == 0) e->line = h;
    else if (strcmp(nm, ".debug_line_str") == 0) e->line_str = h;
    else if (strcmp(nm, ".debug_str") == 0) e->str = h;
  }
  return true;
}

static int bind_rank(unsigned char info) {
  switch (ELF64_ST_BIND(info)) {
    case STB_WEAK: return 2;
    case STB_GLOBAL: return 1;
    default: return 0;
  }
}

void palloc_elf_symbols(palloc_elf_t *e) {
  const Elf64_Shdr *tab = e->symtab ? e->symtab : e->dynsym;
  if (tab == NULL || tab->sh_entsize != sizeof(Elf64_Sym) || tab->sh_link >= e->shnum) return;
  const Elf64_Shdr *str = &e->sh[tab->sh_link];
  Elf64_Sym *buf = palloc_scratch_alloc(e->s, CHUNK);
  if (buf == NULL) return;
  e->matches_left = PALLOC_ELF_MATCHES(e->n);
  size_t per = CHUNK / sizeof(Elf64_Sym), total = tab->sh_size / sizeof(Elf64_Sym);
  for (size_t at = 0; at < total && e->matches_left > 0; at += per) {
    size_t k = total - at < per ? total - at : per;
    if (!palloc_elf_read(e, buf, k * sizeof *buf, tab->sh_offset + at * sizeof *buf)) break;
    for (size_t j = 0; j < k; j++) {
      const Elf64_Sym *y = &buf[j];
      int type = ELF64_ST_TYPE(y->st_info);
      if (y->st_size == 0 || y->st_shndx == SHN_UNDEF ||
          (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE))
        continue;
      uint64_t end = y->st_value + y->st_size;
      if (end < y->st_value) end = UINT64_MAX; /* a size that wraps: up to the top */
      for (size_t i = palloc_symq_lower(e->w, e->n, y->st_value); i < e->n && e->w[i].rel < end;
           i++) {
        if (e->matches_left == 0) break;
        e->matches_left--;
        palloc_symq_t *w = &e->w[i];
        const Elf64_Sym *b = w->best;
        if (b == NULL || y->st_value > b->st_value ||
            (y->st_value == b->st_value &&
             (bind_rank(y->st_info) > bind_rank(b->st_info) ||
              (bind_rank(y->st_info) == bind_rank(b->st_info) && y->st_size < b->st_size)))) {
          w->sym = *y;
          w->best = &w->sym;
        }
      }
    }
  }
  palloc_scratch_free(e->s, buf);
  for (size_t i = 0; i < e->n; i++)
    if (e->w[i].best && e->w[i].func == NULL)
      e->w[i].func = palloc_elf_str(e, str, e->w[i].sym.st_name);
}
