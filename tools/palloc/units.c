/* units.c - numbers as upstream pprof prints them, so that tables can be compared as text.
 *
 * Memory units are binary multiples named B, kB, MB, GB, TB, PB (pprof's names). A table uses one
 * unit for all its rows, chosen like pprof's selectOutputUnit("minimum"): the unit of the
 * smallest nonzero row value, unless that is a different unit from the total's and the minimum
 * is under 1% of the total, in which case the unit of 100 x minimum (so the smallest row still
 * shows as at least 0.01). Values print with "%.2f" and a trailing ".00" removed; zero is "0".
 * Other units (counts) print as plain numbers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cli.h"
#include "options.h"

static const unit_t mem_units[] = {
  {1.0, "B"}, {1024.0, "kB"}, {1048576.0, "MB"}, {1073741824.0, "GB"},
  {1099511627776.0, "TB"}, {1125899906842624.0, "PB"},
};

bool unit_is_bytes(const char *u) {
  /* pprof's aliases: b, byte, bytes (case-insensitive, a trailing "s" dropped). */
  return strcasecmp(u, "b") == 0 || strcasecmp(u, "byte") == 0 || strcasecmp(u, "bytes") == 0;
}

bool unit_named(const char *name, unit_t *out) {
  for (size_t i = 0; i < sizeof mem_units / sizeof mem_units[0]; i++)
    if (strcasecmp(name, mem_units[i].suffix) == 0) {
      *out = mem_units[i];
      return true;
    }
  return false;
}

/* pprof's autoScale: the largest unit in which the value is at least 1 (B for 0). */
static unit_t mem_auto(double v) {
  unit_t u = mem_units[0];
  for (size_t i = 0; i < sizeof mem_units / sizeof mem_units[0]; i++)
    if (v / mem_units[i].factor >= 1.0) u = mem_units[i];
  return u;
}

unit_t unit_select(const char *sample_unit, int64_t min_value, int64_t total) {
  if (!unit_is_bytes(sample_unit)) return (unit_t){1.0, ""};
  int64_t maxv = llabs(total), minv = llabs(min_value);
  if (minv == 0) minv = maxv;
  unit_t lo = mem_auto((double)minv), hi = mem_auto((double)maxv);
  if (strcmp(lo.suffix, hi.suffix) != 0 && (double)minv * 100 < (double)maxv)
    lo = mem_auto(100.0 * (double)minv);
  return lo;
}

const char *unit_format(char *buf, size_t n, int64_t v, unit_t u) {
  snprintf(buf, n, "%.2f", (double)v / u.factor);
  size_t len = strlen(buf);
  if (len > 3 && strcmp(buf + len - 3, ".00") == 0) buf[len -= 3] = 0;
  if (strcmp(buf, "0") == 0 || strcmp(buf, "-0") == 0) return strcpy(buf, "0");
  snprintf(buf + len, n - len, "%s", u.suffix);
  return buf;
}

const char *unit_auto(char *buf, size_t n, int64_t v, const char *sample_unit) {
  unit_t u = unit_is_bytes(sample_unit) ? mem_auto(fabs((double)v)) : (unit_t){1.0, ""};
  return unit_format(buf, n, v, u);
}

const char *percent(char *buf, size_t n, int64_t v, int64_t total) {
  double r = total != 0 ? fabs((double)v / (double)total) * 100.0 : 0.0;
  if (r >= 99.95 && r <= 100.05)
    snprintf(buf, n, "  100%%");
  else if (r >= 1.0)
    snprintf(buf, n, "%5.2f%%", r);
  else
    snprintf(buf, n, "%5.2g%%", r);
  return buf;
}

/* libpalloc's size parser (alloc/options.c), so that a size means the same everywhere. */
int64_t parse_bytes(const char *s) { return palloc_parse_size(s); }
