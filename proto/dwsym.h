/* dwsym.h - names for a profile's bare addresses, read with libdw from the binaries its mappings
 * name: `palloc symbolize` (tools/palloc/cmd_symbolize.c) and palloc-escape's profile join
 * (escape/profile.c). For readers of profiles only: libpalloc symbolizes in-process with its own
 * ELF and DWARF reader (alloc/symbolize.c) and never loads libdw.
 *
 * A location's address is a runtime address of the process that wrote the profile. It becomes a
 * file offset (address - memory_start + file_offset: mappings and offsets are page-aligned as
 * /proc/self/maps gives them), then an ELF virtual address through the PT_LOAD segment holding
 * that offset, then libdw's module address (plus the bias libdw chose). So the binary need not
 * be loaded where it ran, and PIE, shared libraries, non-PIE programs and linkers that place a
 * segment's address apart from its offset (lld) all work.
 */
#ifndef PALLOC_DWSYM_H
#define PALLOC_DWSYM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "palloc_proto.h"

typedef struct palloc_dwsym_s palloc_dwsym_t;

typedef struct {
  const char *func;  /* NULL if no symbol covers the address */
  const char *file;  /* NULL if the binary has no line table for it */
  int line;          /* 0 if unknown */
} palloc_dwsym_frame_t;

/* Opens the binary of mapping m of profile p. NULL, with the reason in err, if the mapping names
 * no file (anonymous memory, [vdso]), the file cannot be read, or its GNU build id is not the
 * one the profile recorded (the binary was rebuilt: its names would be wrong ones). */
palloc_dwsym_t *palloc_dwsym_open(const palloc_pb_profile_t *p,
                                  const Perftools__Profiles__Mapping *m, char *err,
                                  size_t errlen);
/* Names addr, the address of a location in the opened mapping; false if neither a symbol nor a
 * line covers it. The strings live until palloc_dwsym_close. */
bool palloc_dwsym_lookup(palloc_dwsym_t *s, uint64_t addr, palloc_dwsym_frame_t *out);
void palloc_dwsym_close(palloc_dwsym_t *s);
/* Directories (':'-separated) searched for separate debug files before /usr/lib/debug, by build
 * id (DIR/.build-id/xx/yyyy.debug) and by .gnu_debuglink name; NULL: libdw's default
 * (next to the binary, .debug/, /usr/lib/debug). For the files opened after the call. */
void palloc_dwsym_set_debug_dirs(const char *dirs);

#endif
