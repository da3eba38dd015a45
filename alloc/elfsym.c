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
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "elfread.h"

#define CHUNK (16 * 1024)      /* symbol table read buffer */
#define SHSTR_MAX (64 * 1024)  /* section names read at most */
/* A loaded object is in the host's byte order; the reader decodes fields in it. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_DATA ELFDATA2LSB
#else
#define NATIVE_DATA ELFDATA2MSB
#endif

/* The inflated section holding [off, off + n), or -1. */
static int virtual_at(const palloc_elf_t *e, uint64_t off, uint64_t n) {
  for (int k = 0; k < e->nv; k++)
    if (off >= e->vbase[k] && off - e->vbase[k] <= e->vlen[k] && n <= e->vlen[k] - (off - e->vbase[k]))
      return k;
  return -1;
}

bool palloc_elf_read(const palloc_elf_t *e, void *buf, size_t n, uint64_t off) {
  if (e->nv > 0 && off >= e->size) {
    int k = virtual_at(e, off, n);
    if (k < 0) return false;
    memcpy(buf, e->vdata[k] + (off - e->vbase[k]), n);
    return true;
  }
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
  if (h != NULL && e->nv > 0 && h->sh_offset >= e->size) return virtual_at(e, h->sh_offset, h->sh_size) >= 0;
  return h != NULL && h->sh_type != SHT_NOBITS && h->sh_offset <= e->size &&
         h->sh_size <= e->size - h->sh_offset;
}

/* pread, or a copy from an inflated section: up to n bytes at off (fewer at its end). */
static ssize_t read_some(const palloc_elf_t *e, void *buf, size_t n, uint64_t off) {
  if (e->nv > 0 && off >= e->size) {
    int k = virtual_at(e, off, 0);
    if (k < 0) return -1;
    uint64_t left = e->vlen[k] - (off - e->vbase[k]);
    if (n > left) n = (size_t)left;
    memcpy(buf, e->vdata[k] + (off - e->vbase[k]), n);
    return (ssize_t)n;
  }
  return pread(e->fd, buf, n, (off_t)off);
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
    ssize_t r = read_some(e, b, n, off);
    if (r <= 0) return NULL;
    b[r] = 0;
    if (strlen(b) < (size_t)r || (size_t)r == limit - off) return b;
    palloc_scratch_free(e->s, b);
    if (cap >= (1u << 20)) return NULL;
    cap *= 4;
  }
}

static const Elf64_Shdr *inflate_section(palloc_elf_t *e, const Elf64_Shdr *h);

bool palloc_elf_open(palloc_elf_t *e, int fd, palloc_scratch_t *s) {
  return palloc_elf_open_sections(e, fd, s, true);
}

bool palloc_elf_open_sections(palloc_elf_t *e, int fd, palloc_scratch_t *s, bool inflate) {
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
    const Elf64_Shdr **debug = strcmp(nm, ".debug_line") == 0       ? &e->line
                               : strcmp(nm, ".debug_line_str") == 0 ? &e->line_str
                               : strcmp(nm, ".debug_str") == 0      ? &e->str
                                                                    : NULL;
    if (h->sh_type == SHT_SYMTAB) e->symtab = h;
    else if (h->sh_type == SHT_DYNSYM) e->dynsym = h;
    else if (h->sh_type == SHT_NOTE && strcmp(nm, ".note.gnu.build-id") == 0) e->build_id = h;
    else if (strcmp(nm, ".gnu_debuglink") == 0) e->debuglink = h;
    else if (debug == &e->str && compressed) e->str_z = inflate ? h : NULL; /* on demand */
    else if (debug && compressed) *debug = inflate ? inflate_section(e, h) : NULL;
    else if (debug) *debug = h;
  }
  return true;
}

/* zlib's inflater, as proto/write.c gets its deflater: linked (weak references, a static
 * program that links -lz) or loaded by the first compressed section (dlopen "libz.so.1"), so
 * that libpalloc needs no zlib at load time. Without it, compressed sections stay unread (names
 * without lines), as before palloc read them. */
#pragma weak inflateInit_
#pragma weak inflate
#pragma weak inflateEnd
static struct {
  int (*init)(z_streamp, const char *, int);
  int (*inflate)(z_streamp, int);
  int (*end)(z_streamp);
} zi;
static pthread_once_t zi_once = PTHREAD_ONCE_INIT;

static void zi_load(void) {
  if (inflateInit_ != NULL && inflate != NULL && inflateEnd != NULL) {
    zi.init = inflateInit_, zi.inflate = inflate, zi.end = inflateEnd;
    return;
  }
  if (getauxval(AT_BASE) == 0) return; /* static: no dynamic loader to ask */
  void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) return;
  zi.init = (int (*)(z_streamp, const char *, int))dlsym(h, "inflateInit_");
  zi.inflate = (int (*)(z_streamp, int))dlsym(h, "inflate");
  zi.end = (int (*)(z_streamp))dlsym(h, "inflateEnd");
  if (!zi.init || !zi.inflate || !zi.end) zi.init = NULL;
}

static voidpf z_alloc(voidpf s, uInt items, uInt size) {
  return palloc_scratch_alloc(s, (size_t)items * size);
}
static void z_free(voidpf s, voidpf p) { palloc_scratch_free(s, p); }

/* The section inflated into scratch memory, under a header with a virtual offset (elfread.h);
 * NULL if it is not zlib-compressed (ELFCOMPRESS_ZSTD is not in Debian 12's binutils), larger
 * than PALLOC_ELF_INFLATE_MAX, or corrupt. */
static const Elf64_Shdr *inflate_section(palloc_elf_t *e, const Elf64_Shdr *h) {
  Elf64_Chdr ch;
  pthread_once(&zi_once, zi_load);
  if (zi.init == NULL || e->nv == 3 || h->sh_size < sizeof ch || !palloc_elf_read(e, &ch, sizeof ch, h->sh_offset) ||
      ch.ch_type != ELFCOMPRESS_ZLIB || ch.ch_size == 0 || ch.ch_size > PALLOC_ELF_INFLATE_MAX)
    return NULL;
  unsigned char *out = palloc_scratch_alloc(e->s, (size_t)ch.ch_size);
  unsigned char *in = palloc_scratch_alloc(e->s, CHUNK);
  if (out == NULL || in == NULL) return NULL;
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = z_alloc;
  z.zfree = z_free;
  z.opaque = e->s;
  if (zi.init(&z, ZLIB_VERSION, (int)sizeof z) != Z_OK) return NULL;
  uint64_t at = h->sh_offset + sizeof ch, end = h->sh_offset + h->sh_size;
  z.next_out = out;
  z.avail_out = (uInt)ch.ch_size;
  int rc = Z_OK;
  while (rc == Z_OK && at < end) {
    size_t k = end - at < CHUNK ? (size_t)(end - at) : CHUNK;
    if (!palloc_elf_read(e, in, k, at)) break;
    at += k;
    z.next_in = in;
    z.avail_in = (uInt)k;
    rc = zi.inflate(&z, Z_NO_FLUSH);
  }
  uint64_t got = z.total_out;
  zi.end(&z);
  palloc_scratch_free(e->s, in);
  if (rc != Z_STREAM_END || got != ch.ch_size) return NULL;
  int k = e->nv++;
  /* past the file and the other inflated sections, 4 KiB apart */
  e->vbase[k] = (k == 0 ? e->size : e->vbase[k - 1] + e->vlen[k - 1]) + 4096;
  e->vlen[k] = ch.ch_size;
  e->vdata[k] = out;
  e->vsh[k] = *h;
  e->vsh[k].sh_flags &= ~(uint64_t)SHF_COMPRESSED;
  e->vsh[k].sh_offset = e->vbase[k];
  e->vsh[k].sh_size = ch.ch_size;
  return &e->vsh[k];
}

const Elf64_Shdr *palloc_elf_debug_str(palloc_elf_t *e) {
  if (e->str == NULL && e->str_z != NULL) {
    e->str = inflate_section(e, e->str_z);
    e->str_z = NULL; /* one attempt */
  }
  return e->str;
}

size_t palloc_elf_build_id(palloc_elf_t *e, unsigned char *id, size_t cap) {
  const Elf64_Shdr *h = e->build_id;
  unsigned char buf[256];
  if (h == NULL || h->sh_size > sizeof buf || h->sh_size < 12 ||
      !palloc_elf_read(e, buf, (size_t)h->sh_size, h->sh_offset))
    return 0;
  for (size_t at = 0; at + 12 <= h->sh_size;) {
    Elf64_Nhdr nh;
    memcpy(&nh, buf + at, sizeof nh);
    size_t name = (nh.n_namesz + 3) & ~(size_t)3, desc = (nh.n_descsz + 3) & ~(size_t)3;
    if (nh.n_namesz > 256 || nh.n_descsz > 256 || at + 12 + name + desc > h->sh_size) return 0;
    if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(buf + at + 12, "GNU", 4) == 0 &&
        nh.n_descsz <= cap && nh.n_descsz > 0) {
      memcpy(id, buf + at + 12 + name, nh.n_descsz);
      return nh.n_descsz;
    }
    at += 12 + name + desc;
  }
  return 0;
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
