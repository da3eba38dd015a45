/* report.c - the verdict records: collecting, ordering, printing as text or JSON.
 *
 * Lines are ordered by file, line, column, then insertion order (seq), so that -m=2 flow lines
 * stay under the verdict they explain, as in Go's -m=2 output. Identical lines (a macro that
 * expands to the same verdict twice at one invocation) are printed once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "escape.h"

void *pe_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fputs("palloc-escape: out of memory\n", stderr);
    abort();
  }
  return q;
}

char *pe_xstrdup(const char *s) {
  size_t n = strlen(s ? s : "") + 1;
  char *r = pe_xrealloc(NULL, n);
  memcpy(r, s ? s : "", n);
  return r;
}

char *pe_fmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *r = pe_xrealloc(NULL, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(r, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return r;
}

const char *pe_intern(const char *s) {
  static char **tab;
  static size_t n, cap;
  for (size_t i = 0; i < n; i++)
    if (!strcmp(tab[i], s)) return tab[i];
  char *c = pe_xstrdup(s);
  PE_PUSH(tab, n, cap, c);
  return c;
}

void pe_rec_add(pe_recs *r, pe_rec rec) {
  rec.seq = r->seq++;
  PE_PUSH(r->v, r->n, r->cap, rec);
}

static int cmp(const void *a, const void *b) {
  const pe_rec *x = a, *y = b;
  int c = strcmp(x->file, y->file);
  if (c) return c;
  if (x->line != y->line) return x->line < y->line ? -1 : 1;
  if (x->col != y->col) return x->col < y->col ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void pe_recs_sort(pe_recs *r) {
  if (r->n > 1) qsort(r->v, (size_t)r->n, sizeof *r->v, cmp); /* r->v is NULL when empty */
}

static bool same_place(const pe_rec *a, const pe_rec *b) {
  return a->line == b->line && a->col == b->col && !strcmp(a->file, b->file);
}

/* Two verdicts are about the same thing: the same allocation (or address) at one place, or
 * the same message. */
static bool same_subject(const pe_rec *a, const pe_rec *b) {
  if (a->kind != b->kind) return false;
  /* two allocations of one unit at one place (a macro) are two, not a repeat */
  if (a->kind == R_ALLOC || a->kind == R_ADDR) return a->unit != b->unit && !strcmp(a->expr, b->expr);
  return !strcmp(a->msg, b->msg);
}

void pe_recs_merge(pe_recs *r) {
  bool *drop = calloc((size_t)r->n + 1, sizeof *drop);
  for (int lo = 0, hi; lo < r->n; lo = hi) {
    for (hi = lo + 1; hi < r->n && same_place(&r->v[lo], &r->v[hi]); hi++) {}
    /* for each subject the first verdict, replaced by an escaping one if any */
    for (int i = lo; i < hi; i++) {
      pe_rec *x = &r->v[i];
      if (x->kind == R_FLOW || drop[i]) continue;
      for (int j = i + 1; j < hi; j++) {
        pe_rec *y = &r->v[j];
        if (y->kind == R_FLOW || drop[j] || !same_subject(x, y)) continue;
        if (x->kind == R_ALLOC && x->candidate && !y->candidate) {
          drop[i] = true;
          break;
        }
        drop[j] = true;
      }
    }
    for (int i = lo; i < hi; i++) { /* flows go with their verdict */
      if (r->v[i].kind != R_FLOW) continue;
      drop[i] = true;
      for (int j = lo; j < hi; j++)
        if (r->v[j].kind != R_FLOW && !drop[j] && r->v[j].seq == r->v[i].owner) drop[i] = false;
    }
  }
  int k = 0;
  for (int i = 0; i < r->n; i++)
    if (!drop[i]) r->v[k++] = r->v[i];
  r->n = k;
  free(drop);
}

void pe_human_bytes(long long n, char out[32]) {
  static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)n;
  int u = 0;
  while ((v >= 1024 || v <= -1024) && u < 5) { v /= 1024; u++; }
  if (u == 0) snprintf(out, 32, "%lld B", n);
  else snprintf(out, 32, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, unit[u]);
}

static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
    else if (ch < 0x20) fprintf(out, "\\u%04x", ch);
    else fputc(ch, out);
  }
  fputc('"', out);
}

static const char *kind_name(enum pe_rec_kind k) {
  return k == R_ALLOC ? "alloc" : k == R_ADDR ? "addr" : k == R_PARAM ? "param" : "flow";
}

void pe_recs_print(const pe_recs *r, const pe_opts *o, FILE *out) {
  if (!o->json) {
    const pe_rec *prev = NULL;
    for (int i = 0; i < r->n; i++) {
      const pe_rec *x = &r->v[i];
      if (prev && prev->line == x->line && prev->col == x->col && !strcmp(prev->file, x->file) &&
          !strcmp(prev->msg, x->msg))
        continue;
      fprintf(out, "%s:%u:%u: %s\n", x->file, x->line, x->col, x->msg);
      prev = x;
    }
    return;
  }
  fputs("[", out);
  bool first = true;
  for (int i = 0; i < r->n; i++) {
    const pe_rec *x = &r->v[i];
    if (x->kind == R_FLOW) continue;
    fputs(first ? "\n  {" : ",\n  {", out);
    first = false;
    fputs("\"file\": ", out); json_str(out, x->file);
    fprintf(out, ", \"line\": %u, \"col\": %u, \"kind\": \"%s\", \"message\": ", x->line, x->col,
            kind_name(x->kind));
    json_str(out, x->msg);
    fputs(", \"function\": ", out); json_str(out, x->func);
    if (x->kind == R_ALLOC || x->kind == R_ADDR) {
      fputs(", \"expr\": ", out); json_str(out, x->expr);
      fprintf(out, ", \"escapes\": %s", x->candidate ? "false" : "true");
      if (x->reason) { fputs(", \"reason\": ", out); json_str(out, x->reason); }
    }
    if (x->kind == R_ALLOC) fprintf(out, ", \"size\": %lld", x->size);
    if (x->sampled)
      fprintf(out, ", \"alloc_objects\": %lld, \"alloc_space\": %lld", x->alloc_objects,
              x->alloc_space);
    if (x->lived)
      fprintf(out, ", \"freed_objects\": %lld, \"lifetime_ns\": %lld, \"temp_objects\": %lld",
              x->freed_objects, x->lifetime_ns, x->temp_objects);
    if (o->m >= 2) { /* the flow lines that follow this record */
      fputs(", \"flow\": [", out);
      for (int j = i + 1; j < r->n && r->v[j].kind == R_FLOW; j++) {
        if (j > i + 1) fputs(", ", out);
        json_str(out, r->v[j].msg + 2);
      }
      fputs("]", out);
    }
    fputs("}", out);
  }
  fputs(first ? "]\n" : "\n]\n", out);
}
