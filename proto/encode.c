/* encode.c - the protobuf wire encoding of a Profile, without protobuf-c.
 *
 * libpalloc only ever encodes, and encoding this schema (proto/profile.proto: varint scalars,
 * packed repeated scalars, strings, nested messages) is a few dozen lines, so libpalloc does not
 * load protobuf-c into every process it is preloaded into; the readers (tools, tests) still
 * decode with protobuf-c. The bytes are exactly those protobuf_c_message_pack produces for the
 * same message (tests/proto checks it): fields in field-number order; proto3 scalars equal to
 * zero omitted; repeated scalars packed, omitted when empty; a NULL submessage omitted; every
 * element of a repeated message or string written, even an empty one; then the message's
 * unknown fields (kept by protobuf-c when it decoded a newer profile), as they were read.
 *
 * The messages' base.descriptor is not used: libpalloc builds its messages zero-initialised.
 *
 * Every message is encoded twice: once with out == NULL to learn its size (the length prefix
 * comes first), then for real. Nesting is at most three deep (Profile > Sample > Label), so the
 * whole encoding costs at most three passes over the smallest messages.
 *
 * Streaming (palloc_proto_encode_stream): the Profile itself has no length prefix, so its
 * fields can be written one after the other through a buffer of fixed size that is handed to a
 * sink each time it fills; its samples may come one at a time from a function instead of an
 * array (palloc_proto_samples_t), so that a writer need not hold a message per sample. The
 * bytes are the same as palloc_proto_encode's for the same profile.
 */
#include <string.h>
#include "palloc_proto.h"
#include "palloc_assert.h"

#define palloc_likely(x) __builtin_expect(!!(x), 1)

typedef struct {
  uint8_t *out;  /* NULL: only count */
  size_t n;      /* bytes encoded so far */
  /* streaming: out is a buffer of cap bytes, pos of them filled, handed to sink when full */
  const palloc_proto_sink_t *sink;
  size_t cap, pos;
  bool failed;   /* a sink write failed: nothing more is written */
} enc_t;

static void flush(enc_t *e) {
  if (e->pos != 0 && !e->failed && e->sink->write(e->sink->ctx, e->out, e->pos) != 0)
    e->failed = true;
  e->pos = 0;
}

enum { WT_VARINT = 0, WT_LEN = 2 };

static void put_raw(enc_t *e, const void *p, size_t n) {
  if (e->out && e->sink) {
    if (palloc_likely(e->cap - e->pos > n)) { /* fits, and the buffer does not fill */
      memcpy(e->out + e->pos, p, n);
      e->pos += n;
      e->n += n;
      return;
    }
    const uint8_t *s = p;
    for (size_t k; n > 0; s += k, n -= k) {
      k = e->cap - e->pos < n ? e->cap - e->pos : n;
      memcpy(e->out + e->pos, s, k);
      e->pos += k;
      e->n += k;
      if (e->pos == e->cap) flush(e);
    }
    return;
  }
  if (e->out) memcpy(e->out + e->n, p, n);
  e->n += n;
}

static void put_varint(enc_t *e, uint64_t v) {
  if (e->out == NULL) { /* counting */
    size_t k = 1;
    while (v >= 0x80) v >>= 7, k++;
    e->n += k;
    return;
  }
  uint8_t b[10];
  size_t k = 0;
  do {
    b[k] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) b[k] |= 0x80;
    k++;
  } while (v);
  put_raw(e, b, k);
}

static size_t varint_len(uint64_t v) {
  size_t k = 1;
  while (v >= 0x80) v >>= 7, k++;
  return k;
}

static void put_key(enc_t *e, unsigned field, unsigned wt) {
  put_varint(e, (uint64_t)field << 3 | wt);
}

/* int64, uint64 and bool are all plain varints (an int64 < 0 takes ten bytes). */
static void put_u64(enc_t *e, unsigned field, uint64_t v) {
  if (v == 0) return;
  put_key(e, field, WT_VARINT);
  put_varint(e, v);
}

static void put_packed(enc_t *e, unsigned field, const uint64_t *v, size_t n) {
  if (n == 0) return;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) len += varint_len(v[i]);
  put_key(e, field, WT_LEN);
  put_varint(e, len);
  size_t start = e->n;
  for (size_t i = 0; i < n; i++) put_varint(e, v[i]);
  palloc_assert(e->n - start == len); /* the length prefix is what follows it */
}

static void put_unknown(enc_t *e, const ProtobufCMessage *m) {
  for (unsigned i = 0; i < m->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
    put_key(e, u->tag, (unsigned)u->wire_type);
    put_raw(e, u->data, u->len); /* for a length-delimited field, data holds the length too */
  }
}

typedef void (*encode_fn)(enc_t *e, const void *msg);

static void put_message(enc_t *e, unsigned field, encode_fn fn, const void *msg) {
  if (msg == NULL) return;
  enc_t c = {NULL, 0, NULL, 0, 0, false};
  fn(&c, msg);
  put_key(e, field, WT_LEN);
  put_varint(e, c.n);
  size_t start = e->n;
  fn(e, msg);
  palloc_assert(e->n - start == c.n); /* the counting pass and the writing pass agree */
}

static void enc_value_type(enc_t *e, const void *msg) {
  const Perftools__Profiles__ValueType *m = msg;
  put_u64(e, 1, (uint64_t)m->type);
  put_u64(e, 2, (uint64_t)m->unit);
  put_unknown(e, &m->base);
}

static void enc_label(enc_t *e, const void *msg) {
  const Perftools__Profiles__Label *m = msg;
  put_u64(e, 1, (uint64_t)m->key);
  put_u64(e, 2, (uint64_t)m->str);
  put_u64(e, 3, (uint64_t)m->num);
  put_u64(e, 4, (uint64_t)m->num_unit);
  put_unknown(e, &m->base);
}

static void enc_sample(enc_t *e, const void *msg) {
  const Perftools__Profiles__Sample *m = msg;
  put_packed(e, 1, m->location_id, m->n_location_id);
  put_packed(e, 2, (const uint64_t *)m->value, m->n_value);
  for (size_t i = 0; i < m->n_label; i++) put_message(e, 3, enc_label, m->label[i]);
  put_unknown(e, &m->base);
}

static void enc_mapping(enc_t *e, const void *msg) {
  const Perftools__Profiles__Mapping *m = msg;
  put_u64(e, 1, m->id);
  put_u64(e, 2, m->memory_start);
  put_u64(e, 3, m->memory_limit);
  put_u64(e, 4, m->file_offset);
  put_u64(e, 5, (uint64_t)m->filename);
  put_u64(e, 6, (uint64_t)m->build_id);
  put_u64(e, 7, m->has_functions != 0);
  put_u64(e, 8, m->has_filenames != 0);
  put_u64(e, 9, m->has_line_numbers != 0);
  put_u64(e, 10, m->has_inline_frames != 0);
  put_unknown(e, &m->base);
}

static void enc_line(enc_t *e, const void *msg) {
  const Perftools__Profiles__Line *m = msg;
  put_u64(e, 1, m->function_id);
  put_u64(e, 2, (uint64_t)m->line);
  put_u64(e, 3, (uint64_t)m->column);
  put_unknown(e, &m->base);
}

static void enc_location(enc_t *e, const void *msg) {
  const Perftools__Profiles__Location *m = msg;
  put_u64(e, 1, m->id);
  put_u64(e, 2, m->mapping_id);
  put_u64(e, 3, m->address);
  for (size_t i = 0; i < m->n_line; i++) put_message(e, 4, enc_line, m->line[i]);
  put_u64(e, 5, m->is_folded != 0);
  put_unknown(e, &m->base);
}

static void enc_function(enc_t *e, const void *msg) {
  const Perftools__Profiles__Function *m = msg;
  put_u64(e, 1, m->id);
  put_u64(e, 2, (uint64_t)m->name);
  put_u64(e, 3, (uint64_t)m->system_name);
  put_u64(e, 4, (uint64_t)m->filename);
  put_u64(e, 5, (uint64_t)m->start_line);
  put_unknown(e, &m->base);
}

/* The samples from s if it is given (s->get is called for 0, 1, ..., s->n - 1), else p's own. */
static void enc_profile(enc_t *e, const palloc_pb_profile_t *p, const palloc_proto_samples_t *s) {
  for (size_t i = 0; i < p->n_sample_type; i++)
    put_message(e, 1, enc_value_type, p->sample_type[i]);
  if (s)
    for (size_t i = 0; i < s->n; i++) put_message(e, 2, enc_sample, s->get(s->ctx, i));
  else
    for (size_t i = 0; i < p->n_sample; i++) put_message(e, 2, enc_sample, p->sample[i]);
  for (size_t i = 0; i < p->n_mapping; i++) put_message(e, 3, enc_mapping, p->mapping[i]);
  for (size_t i = 0; i < p->n_location; i++) put_message(e, 4, enc_location, p->location[i]);
  for (size_t i = 0; i < p->n_function; i++) put_message(e, 5, enc_function, p->function[i]);
  for (size_t i = 0; i < p->n_string_table; i++) {
    const char *s = p->string_table[i] ? p->string_table[i] : "";
    size_t len = strlen(s);
    put_key(e, 6, WT_LEN);
    put_varint(e, len);
    put_raw(e, s, len);
  }
  put_u64(e, 7, (uint64_t)p->drop_frames);
  put_u64(e, 8, (uint64_t)p->keep_frames);
  put_u64(e, 9, (uint64_t)p->time_nanos);
  put_u64(e, 10, (uint64_t)p->duration_nanos);
  put_message(e, 11, enc_value_type, p->period_type);
  put_u64(e, 12, (uint64_t)p->period);
  put_packed(e, 13, (const uint64_t *)p->comment, p->n_comment);
  put_u64(e, 14, (uint64_t)p->default_sample_type);
  put_u64(e, 15, (uint64_t)p->doc_url);
  put_unknown(e, &p->base);
}

size_t palloc_proto_encoded_size(const palloc_pb_profile_t *p) {
  return palloc_proto_encoded_size_stream(p, NULL);
}

size_t palloc_proto_encode(const palloc_pb_profile_t *p, uint8_t *out) {
  enc_t e = {out, 0, NULL, 0, 0, false};
  enc_profile(&e, p, NULL);
  palloc_assert_expensive(e.n == palloc_proto_encoded_size(p)); /* the buffer was sized so */
  return e.n;
}

size_t palloc_proto_encoded_size_stream(const palloc_pb_profile_t *p,
                                        const palloc_proto_samples_t *samples) {
  enc_t e = {NULL, 0, NULL, 0, 0, false};
  enc_profile(&e, p, samples);
  return e.n;
}

long palloc_proto_encode_stream(const palloc_pb_profile_t *p, const palloc_proto_samples_t *samples,
                                uint8_t *buf, size_t buflen, const palloc_proto_sink_t *sink) {
  palloc_assert(buf != NULL && buflen > 0 && sink != NULL);
  enc_t e = {buf, 0, sink, buflen, 0, false};
  enc_profile(&e, p, samples);
  flush(&e);
  return e.failed ? -1 : (long)e.n;
}
