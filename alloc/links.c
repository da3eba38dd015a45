/* links.c - libpalloc_links.a: strong references to what libpalloc.a uses when it is linked.
 *
 * libpalloc refers to libgcc's unwinder (stack.c) and to zlib's deflate (proto/write.c) only
 * weakly, so that libpalloc.so needs neither. A weak reference pulls no member out of an
 * archive, and the linker's -u cannot stand in for a strong one: under --as-needed (gcc's
 * default on Debian) a shared library that satisfies only -u symbols is dropped, and the link
 * then fails on them. So `pkg-config --static --libs palloc` names this archive with
 * -Wl,-u,palloc_links: its one object refers to them strongly, which pulls libgcc_eh.a's
 * unwinder and libz.a's deflate into a -static program, and keeps libgcc_s and libz in a
 * dynamic one that links libpalloc.a.
 */
#include <unwind.h>
#include <zlib.h>

extern const void *_Unwind_Find_FDE(void *pc, void *bases[3]);

__attribute__((used, visibility("default"))) void *const palloc_links[] = {
  (void *)_Unwind_Backtrace, (void *)_Unwind_GetIP, (void *)_Unwind_Find_FDE,
  (void *)deflateInit2_, (void *)deflate, (void *)deflateEnd,
};
