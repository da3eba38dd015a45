/* fuzz_proto.c - libFuzzer target for the profile reader (meson -Dfuzz=true, built with clang).
 *
 * Input: any bytes, as a profile file would hold them. They go through proto/'s reader (gzip
 * detection and inflation, protobuf-c unpacking, cross-reference validation); whatever it
 * accepts then goes through everything the `palloc` tool does with a profile (view.c naming and
 * stacks, flat/cum, the call tree) for every sample type, so a profile that validates but
 * breaks a reader's assumption is found too. ASan+UBSan are on: any overflow or out-of-range
 * index is a crash. The one-line errors for refused profiles are silenced (view_diag), not
 * stderr: libFuzzer and the sanitizers report there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (!getenv("FUZZ_VERBOSE")) view_diag = fopen("/dev/null", "w");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[PALLOC_PROTO_ERRLEN];
  palloc_pb_profile_t *p = palloc_proto_decode(data, size, NULL, err);
  if (p == NULL) {
    if (strlen(err) == 0) abort(); /* a refusal must say why */
    return 0;
  }
  size_t ntypes = p->n_sample_type;
  /* try each sample type by name, and the default */
  for (size_t t = 0; t <= ntypes; t++) {
    char err2[PALLOC_PROTO_ERRLEN];
    palloc_pb_profile_t *q = t == 0 ? p : palloc_proto_decode(data, size, NULL, err2);
    if (q == NULL) abort(); /* decoding is deterministic */
    const char *si = t == 0 ? NULL : q->string_table[q->sample_type[t - 1]->type];
    char *name = si ? strdup(si) : NULL;
    view_t v;
    if (view_from(&v, q, "fuzz", name) == 0) {
      int64_t *flat = xmalloc((v.nnodes + 1) * sizeof *flat);
      int64_t *cum = xmalloc((v.nnodes + 1) * sizeof *cum);
      view_flat_cum(&v, flat, cum);
      tree_t tr;
      tree_build(&tr, &v);
      uint32_t *kids = xmalloc(tr.len * sizeof *kids);
      for (uint32_t k = 0; k < tr.len; k++) tree_sorted_children(&tr, &v, k, kids);
      char buf[64];
      for (uint32_t k = 0; k < v.nnodes; k++) {
        unit_format(buf, sizeof buf, flat[k], unit_select(v.unit, flat[k], v.total));
        percent(buf, sizeof buf, cum[k], v.total);
      }
      free(kids);
      tree_free(&tr);
      free(flat);
      free(cum);
      view_close(&v);
    }
    free(name);
  }
  return 0;
}
