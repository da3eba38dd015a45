/* test_elfread.c - the in-process ELF/DWARF reader (alloc/elfsym.c, dwarfline.c) on broken files.
 *
 * The reader parses files palloc does not control, inside the profiled program, so no input may
 * crash it, hang it or make it write out of bounds. This test takes real files (this program
 * itself, with its symbol table and DWARF line table, and libz, with only .dynsym) and feeds
 * palloc_symbolize_fd thousands of deterministic variants of them through a memfd: truncations at
 * many lengths, bit flips, bytes and words set to boundary values, aimed at the ELF header, the
 * section header table and the sections the reader uses. It asserts that every variant returns
 * with sane results, and that the unmodified files give the expected answers (the name, file and
 * line of a known function here). Then hand-made line tables and symbol tables for the bugs
 * found while hardening the reader (a hang, undefined behaviour, a wrong file name) and for the
 * work bounds; an input the fuzzer (fuzz_elf.c) finds belongs here too, as the mutation or the
 * table that reproduces it.
 *
 * The scratch arena is replaced by one on malloc (one block per allocation) so that, in the
 * sanitizer build, ASan sees every buffer the reader uses: palloc's own arena is mmap'd chunks
 * that ASan cannot check. This is why the reader's sources are built into this test directly
 * rather than through palloc_core (which has the real arena).
 *
 * usage: test_elfread [ITERATIONS_SCALE [COMPRESSED]]   (default 1; the sanitizer build runs the
 * same count). COMPRESSED: a copy of this program with zlib-compressed debug sections.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "elfread.h"

#include "scratch_malloc.h" /* the scratch arena on malloc */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/syscall.h>

/* ---- the loader's lock while files are read ---------------------------------------------- */
/* The reader opens each object's file with open(2); this program's own `open` takes those
 * calls, and while `probing` asks another thread to run dl_iterate_phdr, which needs the
 * loader's lock: if the reader holds it (reading files inside dl_iterate_phdr's callback, as
 * symbolize.c once did), that thread cannot finish, and `blocked` counts the open. */
static atomic_int probing, probed, blocked;
static atomic_int walked;
static int noop_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)info, (void)size, (void)arg;
  return 1;
}
static void *walk(void *arg) {
  (void)arg;
  dl_iterate_phdr(noop_object, NULL);
  atomic_store(&walked, 1);
  return NULL;
}
int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (atomic_load(&probing)) {
    pthread_t th;
    atomic_store(&walked, 0);
    if (pthread_create(&th, NULL, walk, NULL) == 0) {
      for (int i = 0; i < 200 && !atomic_load(&walked); i++) usleep(5000); /* up to 1 s */
      atomic_fetch_add(&probed, 1);
      if (!atomic_load(&walked)) atomic_fetch_add(&blocked, 1);
      pthread_detach(th); /* it ends once the lock is free */
    }
  }
  return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

/* ---- the known function -------------------------------------------------------------------- */
enum { KNOWN_LINE = __LINE__ + 2 };
__attribute__((noinline, used))
int elfread_known_function(volatile int *x) { return *x * 3 + 1; }

static int failures;
#define CHECK(c, ...)                                                                          \
  do {                                                                                         \
    if (!(c)) {                                                                                \
      failures++;                                                                              \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                     \
      fprintf(stderr, __VA_ARGS__);                                                            \
      fputc('\n', stderr);                                                                     \
    }                                                                                          \
  } while (0)

/* ---- files and queries --------------------------------------------------------------------- */
typedef struct {
  const char *name;
  uint8_t *data;          /* the original bytes */
  size_t size;
  int fd;                 /* a memfd holding the variant under test */
  palloc_symq_t q[64];    /* the queries (addr = rel), sorted */
  size_t nq;
  long known;             /* index of the known function's query, or -1 */
  struct { uint64_t off, len; } region[16]; /* where mutations are aimed */
  size_t nregion;
} target_t;

static uint8_t *slurp(const char *path, size_t *n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  uint8_t *b = NULL;
  if (fstat(fd, &st) == 0 && st.st_size > 0 && (b = malloc((size_t)st.st_size)) != NULL) {
    size_t got = 0;
    while (got < (size_t)st.st_size) {
      ssize_t r = pread(fd, b + got, (size_t)st.st_size - got, (off_t)got);
      if (r <= 0) break;
      got += (size_t)r;
    }
    *n = got;
  }
  close(fd);
  return b;
}

static void put_all(int fd, const uint8_t *b, size_t n, size_t at) {
  while (n > 0) {
    ssize_t r = pwrite(fd, b, n, (off_t)at);
    if (r <= 0) { perror("pwrite"); exit(2); }
    b += r, n -= (size_t)r, at += (size_t)r;
  }
}

static int cmp_rel(const void *a, const void *b) {
  const palloc_symq_t *x = a, *y = b;
  return x->rel < y->rel ? -1 : x->rel > y->rel;
}

/* Reads the original's section headers (with the reader itself, on the unmodified file) to aim
 * the queries at its code and the mutations at the parts the reader uses. */
static bool target_init(target_t *t, const char *name, const char *path, long known_rel) {
  memset(t, 0, sizeof *t);
  t->name = name;
  t->known = -1;
  if ((t->data = slurp(path, &t->size)) == NULL) return false;
  t->fd = memfd_create("elfread", MFD_CLOEXEC);
  if (t->fd < 0) { perror("memfd_create"); exit(2); }
  put_all(t->fd, t->data, t->size, 0);
  palloc_scratch_t *s = palloc_scratch_new();
  palloc_elf_t e;
  CHECK(palloc_elf_open(&e, t->fd, s), "%s: not readable as ELF", name);
  uint64_t lo = UINT64_MAX, hi = 0;
  for (size_t i = 0; i < e.shnum; i++)
    if ((e.sh[i].sh_flags & SHF_EXECINSTR) && e.sh[i].sh_size > 0) {
      if (e.sh[i].sh_addr < lo) lo = e.sh[i].sh_addr;
      if (e.sh[i].sh_addr + e.sh[i].sh_size > hi) hi = e.sh[i].sh_addr + e.sh[i].sh_size;
    }
  if (lo >= hi) lo = 0, hi = 0x10000;
  t->nq = 48;
  for (size_t i = 0; i < t->nq; i++) t->q[i].rel = lo + (hi - lo) * i / t->nq;
  if (known_rel >= 0) t->q[t->nq++].rel = (uint64_t)known_rel;
  t->q[t->nq++].rel = 0;
  t->q[t->nq++].rel = UINT64_MAX - 1;
  qsort(t->q, t->nq, sizeof t->q[0], cmp_rel);
  for (size_t i = 0; i < t->nq; i++) {
    t->q[i].addr = t->q[i].rel;
    if (known_rel >= 0 && t->q[i].rel == (uint64_t)known_rel) t->known = (long)i;
  }
  /* mutation targets: the ELF header, the section headers and the sections the reader reads */
  Elf64_Ehdr eh;
  memcpy(&eh, t->data, sizeof eh);
  t->region[t->nregion].off = 0, t->region[t->nregion++].len = sizeof eh;
  t->region[t->nregion].off = eh.e_shoff;
  t->region[t->nregion++].len = (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr);
  const Elf64_Shdr *secs[] = {e.symtab, e.dynsym, e.line, e.line_str, e.str,
                              e.symtab ? &e.sh[e.symtab->sh_link] : NULL,
                              e.dynsym ? &e.sh[e.dynsym->sh_link] : NULL,
                              &e.sh[eh.e_shstrndx]};
  for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++)
    if (secs[i] && secs[i]->sh_size > 0 && secs[i]->sh_offset < t->size) { /* not inflated */
      t->region[t->nregion].off = secs[i]->sh_offset;
      /* the start of a section is where headers are; mutate at most its first 16 KiB */
      t->region[t->nregion++].len = secs[i]->sh_size < 16384 ? secs[i]->sh_size : 16384;
    }
  /* compressed sections: their Elf64_Chdr and the start of the zlib stream */
  for (size_t i = 0; i < e.shnum && t->nregion < 16; i++)
    if ((e.sh[i].sh_flags & SHF_COMPRESSED) && e.sh[i].sh_size > 0 && e.sh[i].sh_offset < t->size) {
      t->region[t->nregion].off = e.sh[i].sh_offset;
      t->region[t->nregion++].len = e.sh[i].sh_size < 4096 ? e.sh[i].sh_size : 4096;
    }
  palloc_scratch_destroy(s);
  return true;
}

typedef struct { size_t named, lined; } result_t;

/* One run of the reader on the memfd as it is now; checks that every result is sane. */
static result_t run(target_t *t, palloc_symq_t *out) {
  palloc_symq_t w[64];
  for (size_t i = 0; i < t->nq; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].addr = t->q[i].addr, w[i].rel = t->q[i].rel;
  }
  palloc_scratch_t *s = palloc_scratch_new();
  palloc_symbolize_fd(t->fd, w, t->nq, s);
  result_t r = {0, 0};
  for (size_t i = 0; i < t->nq; i++) {
    /* strlen: an unterminated string is an ASan report in the sanitizer build */
    if (w[i].func) CHECK(strlen(w[i].func) < (4u << 20), "%s: function name too long", t->name);
    if (w[i].file) CHECK(strlen(w[i].file) < (4u << 20), "%s: file name too long", t->name);
    CHECK(w[i].line >= 0, "%s: line %d", t->name, w[i].line);
    CHECK(w[i].addr == t->q[i].addr && w[i].rel == t->q[i].rel, "%s: query changed", t->name);
    r.named += w[i].func != NULL;
    r.lined += w[i].file != NULL && w[i].line > 0;
  }
  if (out) memcpy(out, w, t->nq * sizeof *w); /* the strings die with s: callers copy first */
  if (out) {
    for (size_t i = 0; i < t->nq; i++) {
      out[i].func = out[i].func ? strdup(out[i].func) : NULL;
      out[i].file = out[i].file ? strdup(out[i].file) : NULL;
    }
  }
  palloc_scratch_destroy(s);
  return r;
}

static void free_results(palloc_symq_t *w, size_t n) {
  for (size_t i = 0; i < n; i++) free((void *)w[i].func), free((void *)w[i].file);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
  rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dull;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Writes len bytes of v (little-endian) at off in the memfd, runs the reader, restores. */
static double slowest;
static result_t mutate_run(target_t *t, uint64_t off, uint64_t v, size_t len) {
  if (off >= t->size) return (result_t){0, 0};
  if (len > t->size - off) len = t->size - off;
  uint8_t b[8];
  for (size_t i = 0; i < len; i++) b[i] = (uint8_t)(v >> (8 * i));
  put_all(t->fd, b, len, off);
  double t0 = now();
  result_t r = run(t, NULL);
  double dt = now() - t0;
  if (dt > slowest) slowest = dt;
  put_all(t->fd, t->data + off, len, off);
  return r;
}

static void truncate_run(target_t *t, size_t len) {
  if (ftruncate(t->fd, (off_t)len) != 0) { perror("ftruncate"); exit(2); }
  run(t, NULL);
  if (ftruncate(t->fd, (off_t)t->size) != 0) { perror("ftruncate"); exit(2); }
  put_all(t->fd, t->data + len, t->size - len, len);
}

static const uint64_t boundary[] = {
  0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000,
  0xfffffff0, 0xffffffff, 0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
  0xfffffffffffffff0ull, 0xffffffffffffffffull,
};
#define NBOUNDARY (sizeof boundary / sizeof boundary[0])

static void mutate_many(target_t *t, int scale) {
  size_t n = 0;
  double t0 = now();
  /* truncations: every length through the ELF header, then evenly, then around each region */
  for (size_t len = 0; len < 80 && len < t->size; len++, n++) truncate_run(t, len);
  for (size_t k = 0; k < 200; k++, n++) truncate_run(t, t->size * k / 200);
  for (size_t r = 0; r < t->nregion; r++)
    for (int d = -3; d <= 3; d++) {
      uint64_t a = t->region[r].off + (uint64_t)(int64_t)d;
      uint64_t b = t->region[r].off + t->region[r].len + (uint64_t)(int64_t)d;
      if (a < t->size) truncate_run(t, (size_t)a), n++;
      if (b < t->size) truncate_run(t, (size_t)b), n++;
    }
  /* every bit of the ELF header and of the first section headers */
  size_t hdr_bits = 64 * 8;
  for (size_t bit = 0; bit < hdr_bits; bit++, n++)
    mutate_run(t, bit / 8, t->data[bit / 8] ^ (1u << (bit % 8)), 1);
  /* every field of every section header set to each boundary value (a few bytes at a time) */
  for (size_t i = 0; i < t->region[1].len; i += 8)
    for (size_t k = 0; k < NBOUNDARY; k += 3, n++)
      mutate_run(t, t->region[1].off + i, boundary[(k + i / 8) % NBOUNDARY], 8);
  /* random flips, bytes and words in the regions */
  for (int i = 0; i < 6000 * scale; i++, n++) {
    size_t r = next_rand() % t->nregion;
    if (t->region[r].len == 0) continue;
    uint64_t off = t->region[r].off + next_rand() % t->region[r].len;
    if (off >= t->size) continue;
    switch (next_rand() % 4) {
      case 0: mutate_run(t, off, t->data[off] ^ (1u << (next_rand() % 8)), 1); break;
      case 1: mutate_run(t, off, boundary[next_rand() % NBOUNDARY], 1); break;
      case 2: mutate_run(t, off, boundary[next_rand() % NBOUNDARY], 4); break;
      default: mutate_run(t, off, boundary[next_rand() % NBOUNDARY], 8); break;
    }
  }
  /* several mutations at once, anywhere in the regions */
  for (int i = 0; i < 1000 * scale; i++, n++) {
    uint64_t saved_off[6];
    int m = 2 + (int)(next_rand() % 5);
    for (int j = 0; j < m; j++) {
      size_t r = next_rand() % t->nregion;
      saved_off[j] = t->region[r].len ? t->region[r].off + next_rand() % t->region[r].len : 0;
      if (saved_off[j] < t->size) {
        uint8_t b = (uint8_t)next_rand();
        put_all(t->fd, &b, 1, saved_off[j]);
      }
    }
    run(t, NULL);
    for (int j = 0; j < m; j++)
      if (saved_off[j] < t->size) put_all(t->fd, t->data + saved_off[j], 1, saved_off[j]);
  }
  printf("%s: %zu variants in %.2f s (slowest %.1f ms)\n", t->name, n, now() - t0,
         slowest * 1e3);
}

/* ---- targeted mutations: section header fields set to impossible offsets and sizes --------- */
static Elf64_Shdr *shdr_of(target_t *t, const Elf64_Shdr *in_reader_copy, palloc_elf_t *e) {
  Elf64_Ehdr eh;
  memcpy(&eh, t->data, sizeof eh);
  return (Elf64_Shdr *)(t->data + eh.e_shoff) + (in_reader_copy - e->sh);
}

/* Runs the reader on a copy of the file with one section header field replaced. */
static void with_shdr_field(target_t *t, const char *what, size_t field_off, uint64_t v,
                            size_t len, bool (*pick)(palloc_elf_t *, const Elf64_Shdr **)) {
  palloc_scratch_t *s = palloc_scratch_new();
  palloc_elf_t e;
  const Elf64_Shdr *h = NULL;
  if (!palloc_elf_open(&e, t->fd, s) || !pick(&e, &h) || h == NULL) {
    palloc_scratch_destroy(s);
    return;
  }
  uint64_t off = (uint64_t)((uint8_t *)shdr_of(t, h, &e) - t->data) + field_off;
  palloc_scratch_destroy(s);
  mutate_run(t, off, v, len);
  printf("%s: regression %s: ok\n", t->name, what);
}
static bool pick_shstr(palloc_elf_t *e, const Elf64_Shdr **h) {
  Elf64_Ehdr eh;
  if (pread(e->fd, &eh, sizeof eh, 0) != sizeof eh) return false;
  *h = &e->sh[eh.e_shstrndx];
  return true;
}
static bool pick_line(palloc_elf_t *e, const Elf64_Shdr **h) { return (*h = e->line) != NULL; }
static bool pick_symtab(palloc_elf_t *e, const Elf64_Shdr **h) {
  return (*h = e->symtab ? e->symtab : e->dynsym) != NULL;
}

static void regressions(target_t *t) {
  /* a section size that wraps the scratch allocation (size + 1 == 0) and overflowed it */
  with_shdr_field(t, "shstrtab size ~0", offsetof(Elf64_Shdr, sh_size), UINT64_MAX, 8, pick_shstr);
  with_shdr_field(t, "shstrtab size 2^63", offsetof(Elf64_Shdr, sh_size), 1ull << 63, 8,
                  pick_shstr);
  with_shdr_field(t, "shstrtab offset ~0", offsetof(Elf64_Shdr, sh_offset), UINT64_MAX, 8,
                  pick_shstr);
  with_shdr_field(t, "symtab size ~0", offsetof(Elf64_Shdr, sh_size), UINT64_MAX, 8, pick_symtab);
  with_shdr_field(t, "symtab offset past the file", offsetof(Elf64_Shdr, sh_offset),
                  (uint64_t)t->size - 8, 8, pick_symtab);
  with_shdr_field(t, ".debug_line size ~0", offsetof(Elf64_Shdr, sh_size), UINT64_MAX, 8,
                  pick_line);
  with_shdr_field(t, ".debug_line offset wraps", offsetof(Elf64_Shdr, sh_offset),
                  UINT64_MAX - 16, 8, pick_line);
}

/* Hand-made .debug_line sections, each in a minimal ELF file, for what mutations of real files
 * rarely reach. */
typedef struct { uint8_t *b; size_t n, cap; } buf_t;
static void put(buf_t *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2;
    if ((b->b = realloc(b->b, b->cap)) == NULL) { perror("realloc"); exit(2); }
  }
  memcpy(b->b + b->n, p, n);
  b->n += n;
}
static void buf_free(buf_t *b) { free(b->b); }
static void put1(buf_t *b, uint8_t v) { put(b, &v, 1); }
static void put_uleb(buf_t *b, uint64_t v) {
  do { put1(b, (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0))); v >>= 7; } while (v);
}
static void put_sleb(buf_t *b, int64_t v) {
  for (;;) {
    uint8_t byte = (uint8_t)(v & 0x7f);
    v >>= 7; /* arithmetic shift on the compilers palloc supports */
    bool done = (v == 0 && !(byte & 0x40)) || (v == -1 && (byte & 0x40));
    put1(b, (uint8_t)(byte | (done ? 0 : 0x80)));
    if (done) return;
  }
}
static void put_str(buf_t *b, const char *s) { put(b, s, strlen(s) + 1); }

/* The header fields after header_length up to and including standard_opcode_lengths. */
static void std_fields(buf_t *h, unsigned version) {
  static const uint8_t std_len[12] = {0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1};
  put1(h, 1);                      /* minimum_instruction_length */
  if (version >= 4) put1(h, 1);    /* maximum_operations_per_instruction */
  put1(h, 1), put1(h, (uint8_t)-5), put1(h, 14), put1(h, 13);
  put(h, std_len, sizeof std_len);
}
/* Appends a unit; hlen < 0: the true header length. */
static void put_unit(buf_t *sec, unsigned version, const buf_t *hdr, const buf_t *prog,
                     int64_t hlen) {
  uint32_t len = (uint32_t)(2 + (version >= 5 ? 2 : 0) + 4 + hdr->n + prog->n);
  put(sec, &len, 4);
  put1(sec, (uint8_t)version), put1(sec, 0);
  if (version >= 5) put1(sec, 8), put1(sec, 0);
  uint32_t h = hlen < 0 ? (uint32_t)hdr->n : (uint32_t)hlen;
  put(sec, &h, 4);
  put(sec, hdr->b, hdr->n);
  put(sec, prog->b, prog->n);
}
static void prog_set_address(buf_t *p, uint64_t a) {
  put1(p, 0), put_uleb(p, 9), put1(p, 2);
  put(p, &a, 8);
}
static void prog_end(buf_t *p, uint64_t advance) {
  put1(p, 2), put_uleb(p, advance);        /* DW_LNS_advance_pc */
  put1(p, 0), put_uleb(p, 1), put1(p, 1);  /* DW_LNE_end_sequence */
}

/* An ELF file in a memfd with a .debug_line section and, if given, a .symtab and its .strtab. */
static int mini_elf_syms(const buf_t *dl, const buf_t *symtab, const buf_t *strtab) {
  static const char names[] = "\0.debug_line\0.shstrtab\0.symtab\0.strtab";
  const buf_t empty = {0};
  if (symtab == NULL) symtab = &empty, strtab = &empty;
  size_t dl_off = 0x100, sym_off = (dl_off + dl->n + 7) & ~(size_t)7;
  size_t str_off = sym_off + symtab->n, names_off = str_off + strtab->n;
  size_t sh_off = (names_off + sizeof names + 7) & ~(size_t)7;
  uint8_t *f = calloc(1, sh_off + 5 * sizeof(Elf64_Shdr));
  if (f == NULL) exit(2);
  memcpy(f + dl_off, dl->b, dl->n);
  if (symtab->n) memcpy(f + sym_off, symtab->b, symtab->n);
  if (strtab->n) memcpy(f + str_off, strtab->b, strtab->n);
  memcpy(f + names_off, names, sizeof names);
  Elf64_Shdr sh[5];
  memset(sh, 0, sizeof sh);
  sh[1].sh_name = 1, sh[1].sh_type = SHT_PROGBITS, sh[1].sh_offset = dl_off;
  sh[1].sh_size = dl->n;
  sh[2].sh_name = 13, sh[2].sh_type = SHT_STRTAB, sh[2].sh_offset = names_off;
  sh[2].sh_size = sizeof names;
  sh[3].sh_name = 23, sh[3].sh_type = SHT_SYMTAB, sh[3].sh_offset = sym_off;
  sh[3].sh_size = symtab->n, sh[3].sh_entsize = sizeof(Elf64_Sym), sh[3].sh_link = 4;
  sh[4].sh_name = 31, sh[4].sh_type = SHT_STRTAB, sh[4].sh_offset = str_off;
  sh[4].sh_size = strtab->n;
  size_t nsh = symtab->n ? 5 : 3;
  memcpy(f + sh_off, sh, nsh * sizeof sh[0]);
  Elf64_Ehdr eh;
  memset(&eh, 0, sizeof eh);
  memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64, eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_DYN, eh.e_machine = EM_X86_64, eh.e_version = EV_CURRENT;
  eh.e_ehsize = sizeof eh, eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shoff = sh_off, eh.e_shnum = (uint16_t)nsh, eh.e_shstrndx = 2;
  memcpy(f, &eh, sizeof eh);
  int fd = memfd_create("mini", MFD_CLOEXEC);
  put_all(fd, f, sh_off + nsh * sizeof sh[0], 0);
  free(f);
  return fd;
}
static int mini_elf(const buf_t *dl) { return mini_elf_syms(dl, NULL, NULL); }

/* Symbolizes rel[0..n) from mini_elf(dl). */
static void mini_run(const buf_t *dl, const uint64_t *rel, size_t n, palloc_symq_t *w,
                     palloc_scratch_t *s, double *secs) {
  int fd = mini_elf(dl);
  memset(w, 0, n * sizeof *w);
  for (size_t i = 0; i < n; i++) w[i].addr = w[i].rel = rel[i];
  double t0 = now();
  palloc_symbolize_fd(fd, w, n, s);
  *secs = now() - t0;
  close(fd);
}

static void crafted(void) {
  palloc_symq_t w[2];
  double secs;
  uint64_t q1[1] = {0x1004}, q2[2] = {0x1004, 0x2004};
  /* one scratch arena for every case: the files and lines they return point into it */
  palloc_scratch_t *s = palloc_scratch_new();

  /* DWARF 5 file table with no entry format and 2^64 - 1 entries: the table walk counted
   * through them, for ever (found by reading the code for the fuzzer's harness). */
  {
    buf_t h = {0}, p = {0}, sec = {0};
    std_fields(&h, 5);
    put1(&h, 1), put_uleb(&h, 1), put_uleb(&h, 0x08), put_uleb(&h, 1), put_str(&h, "/d");
    put1(&h, 0), put_uleb(&h, UINT64_MAX);
    prog_set_address(&p, 0x1000), put1(&p, 1), prog_end(&p, 16);
    put_unit(&sec, 5, &h, &p, -1);
    mini_run(&sec, q1, 1, w, s, &secs);
    CHECK(secs < 1.0, "v5 file table without formats: %.1f s", secs);
    CHECK(w[0].has_row && w[0].line == 1 && w[0].file == NULL,
          "v5 file table without formats: row %d line %d", w[0].has_row, w[0].line);
    buf_free(&h), buf_free(&p), buf_free(&sec);
  }
  /* DW_LNS_advance_line by 2^62, three times: the line was a signed 64-bit sum (undefined
   * behaviour on overflow); now it wraps, and a line out of int's range is no line. */
  {
    buf_t h = {0}, p = {0}, sec = {0};
    std_fields(&h, 4);
    put1(&h, 0), put_str(&h, "big.c"), put_uleb(&h, 0), put_uleb(&h, 0), put_uleb(&h, 0);
    put1(&h, 0);
    prog_set_address(&p, 0x1000);
    for (int i = 0; i < 3; i++) put1(&p, 3), put_sleb(&p, (int64_t)1 << 62);
    put1(&p, 1), prog_end(&p, 16);
    put_unit(&sec, 4, &h, &p, -1);
    mini_run(&sec, q1, 1, w, s, &secs);
    CHECK(w[0].has_row && w[0].line == 0, "line overflow: row %d line %d", w[0].has_row,
          w[0].line);
    buf_free(&h), buf_free(&p), buf_free(&sec);
  }
  /* Two DWARF 4 units whose files are relative to directory 0: the first one's name pointed
   * into the unit buffer, which reading the second unit overwrote (wrong file names in
   * profiles of programs built with -gdwarf-4). */
  {
    buf_t sec = {0};
    const char *names[2] = {"one.c", "two.c"};
    for (int u = 0; u < 2; u++) {
      buf_t h = {0}, p = {0};
      std_fields(&h, 4);
      put1(&h, 0), put_str(&h, names[u]), put_uleb(&h, 0), put_uleb(&h, 0), put_uleb(&h, 0);
      put1(&h, 0);
      prog_set_address(&p, 0x1000 * (uint64_t)(u + 1));
      put1(&p, 3), put_sleb(&p, 10 * (u + 1)), put1(&p, 1), prog_end(&p, 16);
      put_unit(&sec, 4, &h, &p, -1);
      buf_free(&h), buf_free(&p);
    }
    mini_run(&sec, q2, 2, w, s, &secs);
    for (int u = 0; u < 2; u++)
      CHECK(w[u].file && strcmp(w[u].file, names[u]) == 0 && w[u].line == 11 + 10 * u,
            "two DWARF 4 units: query %d at %s:%d, want %s:%d", u, w[u].file ? w[u].file : "?",
            w[u].line, names[u], 11 + 10 * u);
    buf_free(&sec);
  }
  /* A header_length shorter than the header's own fields: the file-name pass took a cursor
   * whose start lay past its end (memchr over the rest of the buffer); such a unit is now
   * skipped by both passes. */
  for (int64_t hl = 0; hl < 8; hl++) {
    buf_t h = {0}, p = {0}, sec = {0};
    std_fields(&h, 2);
    put1(&h, 0), put_str(&h, "short.c"), put_uleb(&h, 0), put_uleb(&h, 0), put_uleb(&h, 0);
    put1(&h, 0);
    prog_set_address(&p, 0x1000), put1(&p, 1), prog_end(&p, 16);
    put_unit(&sec, 2, &h, &p, hl);
    mini_run(&sec, q1, 1, w, s, &secs);
    CHECK(!w[0].has_row && w[0].file == NULL, "header_length %d: row %d file %s", (int)hl,
          w[0].has_row, w[0].file ? w[0].file : "-");
    buf_free(&h), buf_free(&p), buf_free(&sec);
  }
  /* an opcode this reader does not know (opcode_base 14: opcode 13 has 2 operands), extended
   * opcodes longer than they need and one longer than the program */
  {
    buf_t h = {0}, p = {0}, sec = {0};
    static const uint8_t std_len[13] = {0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 2};
    put1(&h, 1), put1(&h, 1), put1(&h, 1), put1(&h, (uint8_t)-5), put1(&h, 14), put1(&h, 14);
    put(&h, std_len, sizeof std_len);
    put1(&h, 0), put_str(&h, "/abs/x.c"), put_uleb(&h, 0), put_uleb(&h, 0), put_uleb(&h, 0);
    put1(&h, 0);
    put1(&p, 0), put_uleb(&p, 12), put1(&p, 2);  /* set_address with 11 bytes: 8 used */
    uint64_t a = 0x1000;
    put(&p, &a, 8), put1(&p, 0xee), put1(&p, 0xee), put1(&p, 0xee);
    put1(&p, 13), put_uleb(&p, 1000000), put_uleb(&p, 7);
    put1(&p, 3), put_sleb(&p, 41), put1(&p, 1), prog_end(&p, 16);
    put1(&p, 0), put_uleb(&p, 1000);              /* runs past the end */
    put_unit(&sec, 4, &h, &p, -1);
    mini_run(&sec, q1, 1, w, s, &secs);
    CHECK(w[0].file && strcmp(w[0].file, "/abs/x.c") == 0 && w[0].line == 42,
          "unknown opcode: %s:%d", w[0].file ? w[0].file : "?", w[0].line);
    buf_free(&h), buf_free(&p), buf_free(&sec);
  }
  /* A unit of length 0 first (the reader's buffer did not exist yet: a cursor over NULL, which
   * UBSan reports), then a sound one: its rows are found. */
  {
    buf_t h = {0}, p = {0}, sec = {0};
    uint32_t zero = 0;
    put(&sec, &zero, 4);
    std_fields(&h, 3);
    put1(&h, 0), put_str(&h, "/after/zero.c"), put_uleb(&h, 0), put_uleb(&h, 0), put_uleb(&h, 0);
    put1(&h, 0);
    prog_set_address(&p, 0x1000), put1(&p, 1), prog_end(&p, 16);
    put_unit(&sec, 3, &h, &p, -1);
    mini_run(&sec, q1, 1, w, s, &secs);
    CHECK(w[0].file && strcmp(w[0].file, "/after/zero.c") == 0 && w[0].line == 1,
          "after an empty unit: %s:%d", w[0].file ? w[0].file : "?", w[0].line);
    buf_free(&h), buf_free(&p), buf_free(&sec);
  }
  /* Line rows that each cover every wanted address, and symbols that each contain them all,
   * 100000 times over: unbounded, that is entries x addresses of work (10^8 here, 10^12 for a
   * made-up 100 MB table and a large profile); each pass stops after PALLOC_ELF_MATCHES. */
  {
    buf_t h = {0}, p = {0}, sec = {0}, sym = {0}, str = {0};
    std_fields(&h, 4);
    put1(&h, 0), put_str(&h, "all.c"), put_uleb(&h, 0), put_uleb(&h, 0), put_uleb(&h, 0);
    put1(&h, 0);
    put_str(&str, ""), put_str(&str, "everything");
    for (int i = 0; i < 100000; i++) {
      prog_set_address(&p, 0), put1(&p, 1);
      put1(&p, 2), put_uleb(&p, (uint64_t)1 << 62), put1(&p, 1);
      Elf64_Sym y = {.st_name = 1, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC),
                     .st_shndx = 1, .st_value = (uint64_t)i, .st_size = (uint64_t)1 << 62};
      put(&sym, &y, sizeof y);
    }
    put_unit(&sec, 4, &h, &p, -1);
    int fd = mini_elf_syms(&sec, &sym, &str);
    enum { NQ = 1000 };
    palloc_symq_t *q = calloc(NQ, sizeof *q);
    for (size_t i = 0; i < NQ; i++) q[i].addr = q[i].rel = 0x100000 + 16 * i;
    palloc_elf_t e;
    CHECK(palloc_elf_open(&e, fd, s) && e.symtab && e.line, "bound: file not read");
    palloc_elf_want(&e, q, NQ);
    double t0 = now();
    palloc_elf_symbols(&e);
    CHECK(e.matches_left == 0, "bound: symbols pass did not stop (%llu left)",
          (unsigned long long)e.matches_left);
    palloc_dwarf_lines(&e);
    CHECK(e.matches_left == 0, "bound: line pass did not stop (%llu left)",
          (unsigned long long)e.matches_left);
    double dt = now() - t0;
    CHECK(q[0].func && strcmp(q[0].func, "everything") == 0 && q[0].file &&
          strcmp(q[0].file, "all.c") == 0, "bound: %s at %s", q[0].func ? q[0].func : "?",
          q[0].file ? q[0].file : "?");
    printf("bounded work: 2 x 10^8 matches cut to 2 x %llu, %.3f s\n",
           (unsigned long long)PALLOC_ELF_MATCHES(NQ), dt);
    close(fd);
    free(q);
    buf_free(&h), buf_free(&p), buf_free(&sec), buf_free(&sym), buf_free(&str);
  }
  /* Every address its own file, near the end of a 40000-file table: a walk of the table per
   * address (400 MB here); the walks stop after PALLOC_ELF_HEADER_BYTES. */
  {
    buf_t h = {0}, p = {0}, sec = {0};
    std_fields(&h, 4);
    put1(&h, 0);
    for (int i = 0; i < 40000; i++) {
      char nm[16];
      snprintf(nm, sizeof nm, "f%05d.c", i);
      put_str(&h, nm), put_uleb(&h, 0), put_uleb(&h, 0), put_uleb(&h, 0);
    }
    put1(&h, 0);
    enum { NQ = 1000 };
    prog_set_address(&p, 0x100000);
    for (int i = 0; i < NQ; i++) {
      put1(&p, 4), put_uleb(&p, 39000 + (uint64_t)i); /* DW_LNS_set_file (1-based) */
      put1(&p, 1), put1(&p, 2), put_uleb(&p, 16);
    }
    prog_end(&p, 16);
    put_unit(&sec, 4, &h, &p, -1);
    int fd = mini_elf(&sec);
    palloc_symq_t *q = calloc(NQ, sizeof *q);
    for (size_t i = 0; i < NQ; i++) q[i].addr = q[i].rel = 0x100000 + 16 * i + 4;
    palloc_elf_t e;
    CHECK(palloc_elf_open(&e, fd, s) && e.line, "tables bound: file not read");
    palloc_elf_want(&e, q, NQ);
    double t0 = now();
    palloc_dwarf_lines(&e);
    double dt = now() - t0;
    size_t named = 0;
    for (size_t i = 0; i < NQ; i++) named += q[i].file != NULL;
    CHECK(e.header_bytes_left == 0 && named > 0 && named < NQ && q[0].file &&
          strcmp(q[0].file, "f38999.c") == 0, "tables bound: %zu named, first %s, %llu left",
          named, q[0].file ? q[0].file : "?", (unsigned long long)e.header_bytes_left);
    printf("bounded table walks: %zu of %d file names, %.3f s\n", named, NQ, dt);
    close(fd);
    free(q);
    buf_free(&h), buf_free(&p), buf_free(&sec);
  }
  printf("crafted line tables: ok\n");
  palloc_scratch_destroy(s);
}

/* ---- the unmodified files ------------------------------------------------------------------ */
typedef struct { uintptr_t addr, bias; const char *path; } find_t;
static int find_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  find_t *f = arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t a = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && f->addr >= a && f->addr < a + ph->p_memsz) {
      f->bias = info->dlpi_addr;
      f->path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
      return 1;
    }
  }
  return 0;
}

static void check_known(target_t *exe, uintptr_t known) {
  palloc_symq_t w[64];
  result_t r = run(exe, w);
  CHECK(exe->known >= 0, "known function not queried");
  if (exe->known < 0) return;
  const palloc_symq_t *k = &w[exe->known];
  const char *file = k->file ? strrchr(k->file, '/') : NULL;
  CHECK(k->func && strcmp(k->func, "elfread_known_function") == 0, "function: %s",
        k->func ? k->func : "(null)");
  CHECK(k->file && strcmp(file ? file + 1 : k->file, "test_elfread.c") == 0, "file: %s",
        k->file ? k->file : "(null)");
  CHECK(k->line == KNOWN_LINE, "line %d, want %d", k->line, KNOWN_LINE);
  /* few lines is no failure: with clang, the sanitizer runtime is linked into the program
   * without line tables and may fill most of its text */
  CHECK(r.named >= exe->nq / 4 && r.lined >= 3, "%s: only %zu named, %zu with lines",
        exe->name, r.named, r.lined);
  printf("%s: %s at %s:%d; %zu of %zu queries named, %zu with lines\n", exe->name,
         k->func ? k->func : "?", k->file ? k->file : "?", k->line, r.named, exe->nq, r.lined);
  free_results(w, exe->nq);
  /* and through the whole in-process path: grouping by object, the cache */
  palloc_scratch_t *s = palloc_scratch_new();
  palloc_sym_t out[2];
  uintptr_t addrs[2] = {known, known};
  palloc_symbolize(addrs, 2, out, s);
  CHECK(out[0].func && strcmp(out[0].func, "elfread_known_function") == 0 &&
        out[0].line == KNOWN_LINE, "palloc_symbolize: %s:%d", out[0].func ? out[0].func : "?",
        out[0].line);
  palloc_symbolize(addrs, 1, out + 1, s); /* from the cache */
  CHECK(out[1].func == out[0].func && out[1].line == out[0].line, "cache");
  /* more addresses than the cache can hold (a profile of 60000 distinct frames: the endpoint's
   * ?debug=1 of a TSan program made one) get no names, and the cache stays usable: it once kept
   * the table size of the refused request with the smaller table, and the next call read past
   * the table's end */
  size_t nbig = 60000;
  uintptr_t *big = malloc(nbig * sizeof *big);
  palloc_sym_t *bigout = malloc(nbig * sizeof *bigout);
  for (size_t i = 0; i < nbig; i++) big[i] = known + i;
  palloc_symbolize(big, nbig, bigout, s);
  palloc_symbolize(addrs, 1, out, s);
  CHECK(out[0].func && strcmp(out[0].func, "elfread_known_function") == 0,
        "palloc_symbolize after an oversized request: %s", out[0].func ? out[0].func : "?");
  free(big);
  free(bigout);
  /* files are read outside dl_iterate_phdr: an uncached address of libc's */
  uintptr_t libc_addr = (uintptr_t)&dl_iterate_phdr + 1;
  atomic_store(&probing, 1);
  palloc_symbolize(&libc_addr, 1, out, s);
  atomic_store(&probing, 0);
  CHECK(atomic_load(&probed) >= 1 && atomic_load(&blocked) == 0,
        "%d of %d object files were opened with the loader's lock held (another thread's "
        "dl_iterate_phdr waited)", atomic_load(&blocked), atomic_load(&probed));
  palloc_scratch_destroy(s);
}

static void on_alarm(int sig) {
  (void)sig;
  static const char m[] = "FAIL: test_elfread: the reader did not finish (hang?)\n";
  ssize_t w = write(2, m, sizeof m - 1);
  (void)w;
  _exit(1);
}

int main(int argc, char **argv) {
  int scale = argc > 1 ? atoi(argv[1]) : 1;
  if (scale < 1) scale = 1;
  signal(SIGALRM, on_alarm);
  alarm(240);
  uintptr_t known = (uintptr_t)&elfread_known_function;
  find_t fo = {known, 0, NULL};
  dl_iterate_phdr(find_object, &fo);
  CHECK(fo.path != NULL, "this program is not among the loaded objects");
  if (fo.path == NULL) return 1;

  /* not an ELF file, a pipe, an empty file: no answer, no harm */
  int pfd[2];
  if (pipe(pfd) == 0) {
    palloc_symq_t w = {.addr = 1, .rel = 1};
    palloc_scratch_t *s = palloc_scratch_new();
    palloc_symbolize_fd(pfd[0], &w, 1, s);
    CHECK(w.func == NULL && !w.has_row, "a pipe gave a symbol");
    palloc_scratch_destroy(s);
    close(pfd[0]), close(pfd[1]);
  }
  crafted();

  target_t exe, libz;
  if (!target_init(&exe, "self", fo.path, (long)(known - fo.bias))) {
    fprintf(stderr, "cannot read %s\n", fo.path);
    return 1;
  }
  check_known(&exe, known);
  regressions(&exe);
  mutate_many(&exe, scale);
  check_known(&exe, known); /* every mutation was undone */

  /* libz: a stripped shared library, names from .dynsym only */
  void *z = dlopen("libz.so.1", RTLD_LAZY | RTLD_LOCAL);
  void *zsym = z ? dlsym(z, "deflate") : NULL;
  find_t fz = {(uintptr_t)zsym, 0, NULL};
  if (zsym) dl_iterate_phdr(find_object, &fz);
  bool zok = fz.path && target_init(&libz, "libz", fz.path, -1);
  if (zok) {
    result_t r = run(&libz, NULL);
    CHECK(r.named >= libz.nq / 4, "libz: only %zu of %zu named", r.named, libz.nq);
    printf("libz: %zu of %zu queries named\n", r.named, libz.nq);
    regressions(&libz);
    mutate_many(&libz, scale);
    result_t r2 = run(&libz, NULL);
    CHECK(r2.named == r.named, "libz: %zu named after the mutations, %zu before", r2.named,
          r.named);
  } else {
    printf("libz.so.1 not found: skipped\n");
  }
  free(exe.data), close(exe.fd);
  if (zok) free(libz.data), close(libz.fd);

  /* this program again, its debug sections compressed (objcopy --compress-debug-sections=zlib):
   * the same answers, and the same robustness with the inflater in the way */
  target_t gz;
  if (argc > 2 && target_init(&gz, "self-gz", argv[2], (long)(known - fo.bias))) {
    palloc_symq_t w[64];
    result_t r = run(&gz, w);
    const palloc_symq_t *k = gz.known >= 0 ? &w[gz.known] : NULL;
    CHECK(k && k->func && strcmp(k->func, "elfread_known_function") == 0 && k->line == KNOWN_LINE,
          "compressed: %s:%d", k && k->func ? k->func : "?", k ? k->line : 0);
    printf("self-gz: %zu of %zu queries named, %zu with lines\n", r.named, gz.nq, r.lined);
    free_results(w, gz.nq);
    /* a compressed .debug_line whose Elf64_Chdr (ch_size, 8 bytes in) claims more than
     * PALLOC_ELF_INFLATE_MAX: the same names, no lines, and nothing allocated for it (the claim
     * is refused before inflating; an exact claim of a wrong size fails after) */
    palloc_scratch_t *s = palloc_scratch_new();
    palloc_elf_t e;
    uint64_t chdr = 0;
    if (palloc_elf_open(&e, gz.fd, s) && e.line != NULL)
      for (size_t i = 0; i < e.shnum; i++)
        if ((e.sh[i].sh_flags & SHF_COMPRESSED) && e.sh[i].sh_name == e.line->sh_name)
          chdr = e.sh[i].sh_offset;
    palloc_scratch_destroy(s);
    CHECK(chdr != 0, "self-gz: no compressed .debug_line");
    if (chdr != 0) {
      uint8_t big[8];
      for (int i = 0; i < 8; i++) big[i] = (uint8_t)((PALLOC_ELF_INFLATE_MAX + 1) >> (8 * i));
      put_all(gz.fd, big, 8, chdr + 8);
      result_t rb = run(&gz, w);
      k = gz.known >= 0 ? &w[gz.known] : NULL;
      CHECK(k && k->func && strcmp(k->func, "elfread_known_function") == 0 && k->line == 0 &&
                rb.lined == 0 && rb.named == r.named,
            "compressed .debug_line over the inflate bound: %s:%d, %zu with lines",
            k && k->func ? k->func : "?", k ? k->line : 0, rb.lined);
      free_results(w, gz.nq);
      put_all(gz.fd, gz.data + chdr + 8, 8, chdr + 8);
    }
    mutate_many(&gz, scale);
    free(gz.data), close(gz.fd);
  }
  if (z) dlclose(z);
  if (failures) fprintf(stderr, "%d failures\n", failures);
  return failures != 0;
}
