/* zalloc.h - zlib's allocation callbacks over a ProtobufCAllocator (opaque), shared by the
 * reading (codec.c) and writing (write.c) halves of the codec, which link apart. */
#ifndef PALLOC_ZALLOC_H
#define PALLOC_ZALLOC_H
#include <zlib.h>
#include "palloc_proto.h"

static inline voidpf palloc_z_alloc(voidpf opaque, uInt items, uInt size) {
  ProtobufCAllocator *a = opaque;
  return a->alloc(a->allocator_data, (size_t)items * size);
}
static inline void palloc_z_free(voidpf opaque, voidpf p) {
  ProtobufCAllocator *a = opaque;
  a->free(a->allocator_data, p);
}
#endif
