/* elfread.h - palloc's reader of ELF symbol tables (elfsym.c) and DWARF line tables
 * (dwarfline.c), driven per loaded object by symbolize.c.
 *
 * The reader runs inside the profiled program on files palloc does not control, so it must
 * never crash, hang or corrupt its host whatever the bytes. Its invariants:
 *  - a file is only ever read with pread (never mmap'd: a file truncated under us gives a short
 *    read, not SIGBUS), into scratch memory of the write;
 *  - every section it uses lies inside the file as it was when opened (palloc_elf_open checks
 *    offset and size against fstat), so offset + size never overflows and no allocation is sized
 *    by more than the file holds;
 *  - everything decoded from section contents goes through a bounds-checked cursor, and every
 *    loop over file data consumes input or is bounded by a count that was checked first;
 *  - the work is bounded too, not only the memory accesses: a made-up table whose entries each
 *    match every address, or a name without its NUL, costs at most the PALLOC_ELF_* bounds
 *    below; a line-table unit is read into memory only up to 256 MiB.
 * tests/alloc/test_elfread.c feeds it truncated, mutated and hand-made files; fuzz_elf.c is its
 * libFuzzer target.
 * Everything here runs under the writer lock; memory comes from the write's scratch arena.
 */
#ifndef PALLOC_ELFREAD_H
#define PALLOC_ELFREAD_H
#include <elf.h>
#include <link.h>
#include "profinternal.h"
#pragma GCC visibility push(hidden)

/* An address being symbolized. The caller sets addr and rel (the address in the file's terms:
 * minus the load bias) and keeps the array sorted by rel; the reader fills in the rest. */
typedef struct palloc_symq_s {
  uintptr_t addr, rel;
  const Elf64_Sym *best; /* the chosen symbol (a copy in sym), if any */
  Elf64_Sym sym;
  uint64_t file_off;     /* the row's file: .debug_line unit offset and file index */
  uint64_t file_idx;
  int line;
  bool has_row;          /* a line-table row covers the address */
  const char *func, *file;
} palloc_symq_t;

/* One open ELF file: its section headers and the sections the reader uses (NULL if absent). */
typedef struct palloc_elf_s {
  int fd;
  uint64_t size;           /* the file's size when opened: every section used lies inside */
  palloc_scratch_t *s;
  Elf64_Shdr *sh;
  size_t shnum;
  const Elf64_Shdr *symtab, *dynsym, *line, *line_str, *str;
  const Elf64_Shdr *build_id, *debuglink; /* .note.gnu.build-id, .gnu_debuglink */
  /* SHF_COMPRESSED debug sections (objcopy --compress-debug-sections, gcc -gz), inflated into
   * scratch memory: line, line_str and str then point at copies of their headers whose
   * sh_offset lies past the file's size ("virtual" offsets, vbase[k]), and palloc_elf_read
   * serves those offsets from vdata[k]. */
  Elf64_Shdr vsh[3];
  uint64_t vbase[3], vlen[3];
  const unsigned char *vdata[3];
  int nv;
  /* a compressed .debug_str is only inflated when a line table refers to it (DW_FORM_strp is
   * rare in line tables, and .debug_str is the largest debug section of C++ code) */
  const Elf64_Shdr *str_z;
  palloc_symq_t *w;        /* sorted by rel */
  size_t n;
  uint64_t matches_left;   /* work bounds (palloc_elf_want) */
  uint64_t str_bytes_left;
  uint64_t header_bytes_left;
} palloc_elf_t;

/* Work bounds, so that no file, however made, costs much more than a compiler's output does.
 * Matches of a symbol or a line row to a wanted address: each address is normally matched by a
 * few (aliases, overlapping sequences), while a made-up table can match every address with every
 * entry (entries x addresses). Bytes read for strings: a name without its NUL is read up to
 * 1 MiB, for each address. Bytes of line-table headers read and walked for file names: each
 * distinct (unit, file) walks its unit's tables (kilobytes), but a made-up program can give
 * every address its own file of a unit with megabytes of tables. Past a bound a pass stops and
 * keeps what it found. */
#define PALLOC_ELF_MATCHES(n) (64 * (uint64_t)(n) + ((uint64_t)1 << 20))
#define PALLOC_ELF_STR_BYTES(n) (((uint64_t)64 << 20) + 16384 * (uint64_t)(n))
#define PALLOC_ELF_HEADER_BYTES(n) (((uint64_t)64 << 20) + 65536 * (uint64_t)(n))

/* Reads the ELF and section headers of fd (a 64-bit ELF file) and finds the sections; false if
 * the file is not one palloc can read. */
bool palloc_elf_open(palloc_elf_t *e, int fd, palloc_scratch_t *s);
/* The same; inflate=false leaves compressed debug sections out (headers and notes only). */
bool palloc_elf_open_sections(palloc_elf_t *e, int fd, palloc_scratch_t *s, bool inflate);
/* Whether section h has contents inside the file (offset + size <= the file's size). */
bool palloc_elf_section_ok(const palloc_elf_t *e, const Elf64_Shdr *h);
/* Reads n bytes at off; false on a short read or if [off, off + n) is not inside the file. */
bool palloc_elf_read(const palloc_elf_t *e, void *buf, size_t n, uint64_t off);
/* The NUL-terminated string at off in section sec (scratch memory), NULL if unreadable. */
char *palloc_elf_str(palloc_elf_t *e, const Elf64_Shdr *sec, uint64_t off);
/* Sets the addresses to symbolize (sorted by rel) and the work bounds for them. */
static inline void palloc_elf_want(palloc_elf_t *e, palloc_symq_t *w, size_t n) {
  e->w = w;
  e->n = n;
  e->matches_left = PALLOC_ELF_MATCHES(n);
  e->str_bytes_left = PALLOC_ELF_STR_BYTES(n);
  e->header_bytes_left = PALLOC_ELF_HEADER_BYTES(n);
}
/* Function names: one pass over .symtab (else .dynsym). */
void palloc_elf_symbols(palloc_elf_t *e);
/* File and line: one pass over .debug_line. */
void palloc_dwarf_lines(palloc_elf_t *e);

/* An inflated section is at most this large. A compressed section is inflated whole into the
 * write's scratch memory (the process's RSS while the profile is written), where an uncompressed
 * one is read a unit at a time: past this, the section is not read (frames get names without
 * lines; `palloc symbolize`, offline, reads it with libdw), rather than growing the host by more
 * and spending it on every write. 1 MiB keeps a profile write within its memory bound (issue 19:
 * its compressed size plus 1 MiB) and its time small: Debian's libc6-dbg has a 1.3 MB
 * .debug_line (0.5 MB compressed), whose inflating and decoding took 63 M instructions of a
 * 64.6 M exit write for three libc frames (callgrind, tests/bench/workloads.c large). */
#define PALLOC_ELF_INFLATE_MAX ((uint64_t)1 << 20)
/* e->str, inflating a compressed .debug_str at the first call (NULL if there is none). */
const Elf64_Shdr *palloc_elf_debug_str(palloc_elf_t *e);
/* The GNU build id of an open file (NT_GNU_BUILD_ID note), in id (up to 64 bytes); 0 if none. */
size_t palloc_elf_build_id(palloc_elf_t *e, unsigned char *id, size_t cap);
/* The file with the separate debug information of the loaded file path (open as e): by build id
 * in DIR/.build-id/xx/yyyy.debug, then by .gnu_debuglink's name next to the file, in its .debug/
 * and in DIR/<the file's directory>/, for each DIR of PALLOC_DEBUG_DIRS then /usr/lib/debug
 * (debugfile.c). Returns an open descriptor or -1. A candidate whose build id differs from the
 * file's is not used (a stale debug file would give wrong names). */
int palloc_debug_open(palloc_elf_t *e, const char *path);
/* The directories of PALLOC_DEBUG_DIRS (':'-separated), or NULL. */
const char *palloc_debug_dirs(void);

/* Symbolizes w[0..n) (rel set, sorted by rel) from the ELF file open on fd. This is also the
 * entry point of the robustness tests and the fuzzer, which give it arbitrary bytes. */
void palloc_symbolize_fd(int fd, palloc_symq_t *w, size_t n, palloc_scratch_t *s);

/* First index i with w[i].rel >= rel. */
static inline size_t palloc_symq_lower(const palloc_symq_t *w, size_t n, uint64_t rel) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (w[mid].rel < rel) lo = mid + 1; else hi = mid;
  }
  return lo;
}
#pragma GCC visibility pop
/* The span [*lo, *hi) of a loaded object's executable segments (dl_iterate_phdr's view), and the
 * first of them; *lo >= *hi (and NULL) if it has none. */
static inline const ElfW(Phdr) *palloc_exec_span(const struct dl_phdr_info *info, uintptr_t *lo,
                                                 uintptr_t *hi) {
  const ElfW(Phdr) *first = NULL;
  *lo = UINTPTR_MAX;
  *hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
    if (a < *lo) *lo = a;
    if (b > *hi) *hi = b;
    if (first == NULL) first = ph;
  }
  return first;
}

#endif
