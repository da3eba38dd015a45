// Corpus: calls into functions defined in a header are calls to known functions (before, they
// were unknown, and every pointer passed to them escaped). The header's own verdicts are in
// headers.h.
#include "headers.h"

struct hid *hid_registry;

int header_callee_reads(const struct hid *in) {
  struct hid *h = malloc(sizeof *h); // ERROR "malloc\(sizeof \*h\) does not escape"
  hid_copy(h, in);
  int r = hid_cmp(h, in) + hid_scratch(h);
  free(h);
  return r;
}

void header_callee_keeps(const struct hid *in) {
  struct hid *h = malloc(sizeof *h); // ERROR "escapes to heap: passed to hid_register: stored to global hid_registry"
  hid_copy(h, in);
  hid_register(h);
}

struct hid *header_callee_returns(const struct hid *in) {
  return hid_keep_copy(in);
}
