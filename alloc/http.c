/* http.c - PALLOC_HTTP: Go's /debug/pprof endpoint and Prometheus' /metrics, from a palloc thread.
 *
 * PALLOC_HTTP=127.0.0.1:6060 (or ":6060" and "6060", loopback too, "[::1]:6060", ":0" for a free
 * port, "unix:/path", %p = pid) makes palloc's constructor bind the address and start one server
 * thread. Unset, nothing here runs: no socket, no thread, no memory (the connection table is
 * mapped at start). The routes follow Go's net/http/pprof, so Go's clients work unchanged:
 *   /debug/pprof/            an HTML index, as Go's;
 *   /debug/pprof/heap        the heap profile, default_sample_type inuse_space;
 *   /debug/pprof/allocs      the same profile, default_sample_type alloc_space (Go's);
 *       ?seconds=N           a delta: the request waits N seconds (1 to 300) and answers the
 *                            difference of the two ends, scaled each (Go's serveDeltaProfile);
 *       ?debug=1             Go's legacy text heap format, with the process's mappings after
 *                            it (pprof's legacy reader symbolizes through them);
 *   /debug/pprof/peak        the peak-heap profile (peak.c: what was live at the high-water
 *                            mark), and /debug/pprof/lifetimes the lifetime profile (lifetime.c);
 *   /debug/pprof/symbol      pprof's symbolz protocol: GET "num_symbols: 1", POST "0x..+0x.."
 *                            answered "0x... name" per address palloc can name;
 *   /debug/pprof/cmdline     the command line, arguments separated by NUL (Go's);
 *   /metrics                 Prometheus' text exposition format (metrics() below).
 *
 * Safety, for a server preloaded into programs palloc does not control:
 *  - one thread, poll(2) over the listener and at most MAX_CONN connections; a connection over
 *    that is answered 503 at once and closed. Each connection has a deadline for its request
 *    (READ_TIMEOUT, whole head and body, so a client sending a byte a second is cut), and for
 *    its response (WRITE_TIMEOUT, so one reading a byte a second is cut); a delta waits in the
 *    loop, holding no lock and no thread;
 *  - the request head is parsed by httpreq.c (bounded, strict: a malformed request gets its 4xx
 *    and the connection closes); no route reads a path from the request: every route is fixed;
 *  - the thread runs under palloc's guard for its whole life (as the writer thread), so nothing
 *    it allocates is sampled; its memory is mmap'd (connections, bodies, responses: a memfd);
 *  - a profile is built under the writer lock, as every profile write, which stops no thread of
 *    the program: the bucket walk reads counters (profile.c). The response is built into a
 *    memfd first and sent after the lock is released, so a slow client never holds the lock;
 *  - every failure (bind, listen, thread) is one palloc: line and the program carries on.
 * Fork: the child closes its copies of the listener and connections (fork_child below) and
 * serves nothing: a fork without exec shares the parent's address, which the parent serves. An
 * exec'd program reads PALLOC_HTTP anew: with a fixed port it fails to bind (one palloc: line),
 * with ":0" or a unix path with %p it serves its own endpoint.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "httpreq.h"
#include "internal.h"
#include "palloc_proto.h"
#include "profinternal.h"

#define MAX_CONN 8
#define READ_TIMEOUT_NS (10 * 1000000000ull)
#define WRITE_TIMEOUT_NS (60 * 1000000000ull)
#define DRAIN_NS (1 * 1000000000ull)
#define SECONDS_MAX 300

_Atomic uint64_t palloc_http_served; /* profiles served (heap, allocs, their deltas and text) */

enum { C_FREE, C_READ, C_BODY, C_WAIT, C_WRITE, C_DRAIN };

/* A delta profile's start: bucket -> counts, open addressing on the bucket's address. */
typedef struct {
  const palloc_bucket_t *b;
  palloc_bucket_counts_t c;
} base_ent_t;
typedef struct {
  size_t cap, bytes;
  uint64_t t0;
  base_ent_t e[];
} base_t;

typedef struct {
  int fd, state;
  ino_t ino;                  /* the socket's, checked before any use of fd (still_ours) */
  uint64_t deadline;
  size_t nin;
  palloc_http_req_t req;
  char *body;                 /* POST body (mmap'd, content_length bytes) */
  size_t nbody, body_map;
  base_t *base;               /* C_WAIT: the delta's start */
  bool allocs;                /*   which profile it is */
  char head[640];             /* the response: head, then out[] */
  size_t nhead, hoff;
  char *out;
  size_t nout, ooff, out_map;
  char in[PALLOC_HTTP_HEAD_MAX];
} conn_t;

static int listen_fd = -1;
static conn_t *conns;           /* MAX_CONN, mmap'd at start */
static palloc_http_addr_t addr;
static pid_t owner;             /* the process that bound the address (unlinks a unix socket) */
static ino_t listen_ino;        /* the sockets' inodes: a program that closes every fd (a */
                                /* daemon's start) may reuse their numbers for its own files */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *map(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* A response's memfd, and its inode: the server thread makes one at a time, and checks it (as
 * the sockets, still_ours) before it reads or closes it, since the program may have closed the
 * number and opened its own file there while the profile was built. */
static ino_t memfd_ino;
static int memfd_new(const char *name) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  struct stat st;
  memfd_ino = fd >= 0 && fstat(fd, &st) == 0 ? st.st_ino : 0;
  return fd;
}
static bool memfd_ours(int fd) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == memfd_ino;
}

/* ---- response bodies: a buffered writer to a memfd ------------------------------------------- */
typedef struct {
  int fd;
  bool failed;
  size_t n;
  char buf[4096];
} out_t;

static void out_flush(out_t *o) {
  if (o->n && !o->failed && palloc_proto_out_write(o->fd, o->buf, o->n) != 0) o->failed = true;
  o->n = 0;
}
static void out_bytes(out_t *o, const void *p, size_t n) {
  if (n > sizeof o->buf - o->n) out_flush(o);
  if (n > sizeof o->buf) {
    if (!o->failed && palloc_proto_out_write(o->fd, p, n) != 0) o->failed = true;
    return;
  }
  memcpy(o->buf + o->n, p, n);
  o->n += n;
}
__attribute__((format(printf, 2, 3))) static void outf(out_t *o, const char *fmt, ...) {
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  out_bytes(o, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
}
static bool out_open(out_t *o) {
  o->n = 0;
  o->failed = false;
  o->fd = memfd_new("palloc-http");
  return o->fd >= 0;
}

/* ---- connections ------------------------------------------------------------------------------- */
/* fd is still the socket palloc opened as inode ino, not a file the program opened with the
 * same number after closing palloc's (daemons close every fd; palloc must then never read,
 * write or close what the number now names). */
static bool still_ours(int fd, ino_t ino) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino;
}

static void conn_close(conn_t *c) {
  if (c->fd >= 0 && still_ours(c->fd, c->ino)) close(c->fd);
  if (c->body) munmap(c->body, c->body_map);
  if (c->out) munmap(c->out, c->out_map);
  if (c->base) munmap(c->base, c->base->bytes);
  c->fd = -1;
  c->body = c->out = NULL;
  c->base = NULL;
  c->state = C_FREE;
}

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 417: return "Expectation Failed";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Error";
  }
}

/* Queues the response: status, headers, and the body written to fd (a memfd, closed here; -1:
 * none). A HEAD request gets the head alone. */
static void respond(conn_t *c, int status, const char *ctype, const char *extra, int fd) {
  size_t len = 0;
  if (fd >= 0 && !memfd_ours(fd)) { /* the number is the program's now: neither read nor close it */
    fd = -1;
    status = 500, ctype = "text/plain; charset=utf-8", extra = "";
  }
  if (fd >= 0) {
    off_t end = lseek(fd, 0, SEEK_END);
    if (end > 0) {
      void *p = mmap(NULL, (size_t)end, PROT_READ, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        c->out = p;
        c->out_map = len = (size_t)end;
      } else {
        status = 500, ctype = "text/plain; charset=utf-8", extra = "";
      }
    }
    close(fd);
  }
  int k = snprintf(c->head, sizeof c->head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "X-Content-Type-Options: nosniff\r\nConnection: close\r\n%s\r\n",
                   status, reason(status), ctype, c->out ? len : 0, extra ? extra : "");
  c->nhead = k > 0 && (size_t)k < sizeof c->head ? (size_t)k : 0;
  c->hoff = c->ooff = 0;
  c->nout = c->req.method == PALLOC_HTTP_HEAD ? 0 : len;
  c->state = C_WRITE;
  c->deadline = mono_ns() + WRITE_TIMEOUT_NS;
}

/* A short text response (errors; Go's serveError sets X-Go-Pprof, whose text pprof prints). */
static void respond_text(conn_t *c, int status, const char *msg) {
  out_t *o = (out_t *)c->in; /* the request is done with: its buffer holds the writer */
  _Static_assert(sizeof(out_t) <= sizeof c->in, "the writer fits the request buffer");
  int fd = -1;
  if (out_open(o)) {
    outf(o, "%s\n", msg);
    out_flush(o);
    fd = o->fd;
  }
  respond(c, status, "text/plain; charset=utf-8",
          status == 405 ? "Allow: GET, HEAD\r\nX-Go-Pprof: 1\r\n" : "X-Go-Pprof: 1\r\n", fd);
}

/* ---- profiles ------------------------------------------------------------------------------------ */
static size_t ptr_slot(const base_t *b, const palloc_bucket_t *k) {
  return (size_t)(((uintptr_t)k * 0x9e3779b97f4a7c15ull) >> 20) & (b->cap - 1);
}

/* Every bucket's counts now: the start of a delta. NULL if out of memory. */
static base_t *base_take(void) {
  /* One head for both walks: buckets made meanwhile go in front of it, so the second walk
   * sees exactly the nb counted (a new head would crowd out the oldest). */
  palloc_bucket_t *head = palloc_bucket_list();
  size_t nb = 0;
  for (palloc_bucket_t *b = head; b; b = b->allnext) nb++;
  size_t cap = 64;
  while (cap < nb * 2 + 64) cap *= 2;
  size_t bytes = (sizeof(base_t) + cap * sizeof(base_ent_t) + 4095) & ~(size_t)4095;
  base_t *B = map(bytes);
  if (B == NULL) return NULL;
  B->cap = cap;
  B->bytes = bytes;
  B->t0 = mono_ns();
  size_t n = 0;
  for (palloc_bucket_t *b = head; b && n < cap / 2; b = b->allnext, n++) {
    size_t i = ptr_slot(B, b);
    while (B->e[i].b) i = (i + 1) & (cap - 1);
    B->e[i].b = b;
    palloc_bucket_read(b, &B->e[i].c);
  }
  return B;
}

static void base_lookup(void *arg, const palloc_bucket_t *b, palloc_bucket_counts_t *c) {
  const base_t *B = arg;
  for (size_t i = ptr_slot(B, b); B->e[i].b; i = (i + 1) & (B->cap - 1))
    if (B->e[i].b == b) {
      *c = B->e[i].c;
      return;
    }
  memset(c, 0, sizeof *c); /* made since the start */
}

/* The profile (heap or allocs; a delta if base) into a memfd, under the writer lock. */
static void serve_profile(conn_t *c, bool allocs, base_t *base) {
  char err[256] = "";
  palloc_profile_opts_t o = {allocs ? "alloc_space" : "inuse_space", NULL, NULL, 0};
  palloc_writer_lock(); /* before the memfd: the wait for the lock may be long */
  int fd = memfd_new("palloc-profile");
  if (fd < 0) {
    palloc_writer_unlock();
    respond_text(c, 500, "cannot create a memfd for the profile");
    return;
  }
  if (base) {
    o.base = base_lookup;
    o.arg = base;
    o.duration_ns = (int64_t)(mono_ns() - base->t0);
  }
  long r = palloc_profile_emit_opts(NULL, fd, &o, err, sizeof err);
  palloc_writer_unlock();
  if (r < 0) {
    if (memfd_ours(fd)) close(fd);
    char msg[300];
    snprintf(msg, sizeof msg, "cannot build the profile: %s", err);
    respond_text(c, 500, msg);
    return;
  }
  atomic_fetch_add(&palloc_http_served, 1);
  char disp[96];
  snprintf(disp, sizeof disp, "Content-Disposition: attachment; filename=\"%s%s\"\r\n",
           allocs ? "allocs" : "heap", base ? "-delta" : "");
  respond(c, 200, "application/octet-stream", disp, fd);
}

/* The peak-heap or lifetime profile (internal.h's PALLOC_PROFILE_*) into a memfd, as the exit
 * writes them (kindwrite.c takes the writer lock). */
static void serve_kind(conn_t *c, int kind, const char *name) {
  int fd = memfd_new("palloc-profile");
  if (fd < 0) return respond_text(c, 500, "cannot create a memfd for the profile");
  if (palloc_write_kind(kind, NULL, fd, 0) != 0) {
    if (memfd_ours(fd)) close(fd);
    return respond_text(c, 500, "cannot build the profile (palloc: line on the program's stderr)");
  }
  atomic_fetch_add(&palloc_http_served, 1);
  char disp[96];
  snprintf(disp, sizeof disp, "Content-Disposition: attachment; filename=\"%s\"\r\n", name);
  respond(c, 200, "application/octet-stream", disp, fd);
}

/* Go's legacy text heap profile (debug=1): raw sampled counts, which pprof's legacy reader
 * unsamples with the rate in the header (heap/2*rate, Go's), each stack symbolized in '#'
 * lines, then the process's mappings after pprof's MAPPED_LIBRARIES: sentinel. */
static int cmp_addr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

static void serve_text(conn_t *c) {
  out_t *o = (out_t *)c->in;
  if (!out_open(o)) {
    respond_text(c, 500, "cannot create a memfd for the profile");
    return;
  }
  palloc_writer_lock();
  palloc_scratch_t *s = palloc_scratch_new();
  int64_t rate = atomic_load(&palloc_g.rate);
  size_t nb = 0, nf = 0;
  palloc_bucket_t *head = palloc_bucket_list(); /* one head for both walks (base_take) */
  for (palloc_bucket_t *b = head; b; b = b->allnext) nb++, nf += b->nstk;
  const palloc_bucket_t **bs = s ? palloc_scratch_alloc(s, (nb + 1) * sizeof *bs) : NULL;
  palloc_bucket_counts_t *cs = s ? palloc_scratch_alloc(s, (nb + 1) * sizeof *cs) : NULL;
  uintptr_t *addrs = s ? palloc_scratch_alloc(s, (nf + 1) * sizeof *addrs) : NULL;
  palloc_sym_t *syms = s ? palloc_scratch_alloc(s, (nf + 1) * sizeof *syms) : NULL;
  if (!bs || !cs || !addrs || !syms) {
    if (s) palloc_scratch_destroy(s);
    palloc_writer_unlock();
    if (memfd_ours(o->fd)) close(o->fd);
    respond_text(c, 500, "out of memory building the profile");
    return;
  }
  uint64_t tot[4] = {0}; /* in use objects, bytes; allocated objects, bytes */
  size_t n = 0, na = 0;
  for (palloc_bucket_t *b = head; b && n < nb; b = b->allnext) {
    palloc_bucket_counts_t k;
    palloc_bucket_read(b, &k);
    if (k.allocs == 0) continue;
    palloc_assert(na + b->nstk <= nf); /* the walk sees the buckets counted, no more */
    bs[n] = b;
    cs[n++] = k;
    tot[0] += k.allocs - k.frees, tot[1] += k.alloc_bytes - k.free_bytes;
    tot[2] += k.allocs, tot[3] += k.alloc_bytes;
    for (uint32_t f = 0; f < b->nstk; f++) addrs[na++] = b->stk[f] - 1;
  }
  qsort(addrs, na, sizeof *addrs, cmp_addr);
  size_t nu = 0;
  for (size_t i = 0; i < na; i++)
    if (nu == 0 || addrs[nu - 1] != addrs[i]) addrs[nu++] = addrs[i];
  memset(syms, 0, nu * sizeof *syms);
  if (palloc_g.symbolize && nu) palloc_symbolize(addrs, nu, syms, s);
  outf(o, "heap profile: %llu: %llu [%llu: %llu] @ heap/%lld\n", (unsigned long long)tot[0],
       (unsigned long long)tot[1], (unsigned long long)tot[2], (unsigned long long)tot[3],
       (long long)rate * 2);
  for (size_t i = 0; i < n; i++) {
    const palloc_bucket_counts_t *k = &cs[i];
    outf(o, "%llu: %llu [%llu: %llu] @", (unsigned long long)(k->allocs - k->frees),
         (unsigned long long)(k->alloc_bytes - k->free_bytes), (unsigned long long)k->allocs,
         (unsigned long long)k->alloc_bytes);
    for (uint32_t f = 0; f < bs[i]->nstk; f++) outf(o, " %#lx", (unsigned long)bs[i]->stk[f]);
    outf(o, "\n");
    for (uint32_t f = 0; f < bs[i]->nstk; f++) {
      uintptr_t a = bs[i]->stk[f] - 1;
      const uintptr_t *hit = bsearch(&a, addrs, nu, sizeof *addrs, cmp_addr);
      const palloc_sym_t *y = hit ? &syms[hit - addrs] : NULL;
      if (y && y->func)
        outf(o, "#\t%#lx\t%s\t%s:%d\n", (unsigned long)bs[i]->stk[f], y->func,
             y->file ? y->file : "?", y->line);
    }
  }
  palloc_scratch_destroy(s);
  palloc_writer_unlock();
  outf(o, "\nMAPPED_LIBRARIES:\n");
  int m = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (m >= 0) {
    char buf[4096];
    ssize_t k;
    while ((k = read(m, buf, sizeof buf)) > 0) out_bytes(o, buf, (size_t)k);
    close(m);
  }
  out_flush(o);
  if (o->failed) {
    if (memfd_ours(o->fd)) close(o->fd);
    respond_text(c, 500, "cannot write the profile");
    return;
  }
  atomic_fetch_add(&palloc_http_served, 1);
  respond(c, 200, "text/plain; charset=utf-8", "", o->fd);
}

/* ---- the other routes ------------------------------------------------------------------------------ */
static void serve_index(conn_t *c) {
  out_t *o = (out_t *)c->in;
  if (!out_open(o)) return respond_text(c, 500, "cannot create a memfd");
  size_t nb = 0;
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) nb++;
  outf(o, "<html>\n<head>\n<title>/debug/pprof/</title>\n</head>\n<body>\n/debug/pprof/<br>\n"
          "<br>\n<p>Set debug=1 as a query parameter to export in legacy text format</p>\n<br>\n"
          "Types of profiles available:\n<table>\n<thead><td>Count</td><td>Profile</td></thead>\n");
  outf(o, "<tr><td>%zu</td><td><a href='allocs?debug=1'>allocs</a></td></tr>\n", nb);
  outf(o, "<tr><td>%zu</td><td><a href='heap?debug=1'>heap</a></td></tr>\n", nb);
  outf(o, "<tr><td></td><td><a href='peak'>peak</a></td></tr>\n");
  outf(o, "<tr><td></td><td><a href='lifetimes'>lifetimes</a></td></tr>\n");
  outf(o, "</table>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n"
          "<li><div class=profile-name>allocs: </div> A sampling of all past memory allocations"
          "</li>\n<li><div class=profile-name>heap: </div> A sampling of memory allocations of "
          "live objects. You can specify the seconds GET parameter to take a delta profile.</li>\n"
          "<li><div class=profile-name>peak: </div> What was live at the heap's high-water mark "
          "(palloc)</li>\n<li><div class=profile-name>lifetimes: </div> How long sampled "
          "allocations lived, and the temporaries (palloc)</li>\n"
          "<li><div class=profile-name>cmdline: </div> The command line invocation of the "
          "current program</li>\n<li><div class=profile-name>symbol: </div> pprof's symbol "
          "lookup (POST addresses)</li>\n</ul>\n</p>\n<p><a href='/metrics'>/metrics</a> "
          "(Prometheus)</p>\n</body>\n</html>\n");
  out_flush(o);
  respond(c, 200, "text/html; charset=utf-8", "", o->fd);
}

static void serve_cmdline(conn_t *c) {
  out_t *o = (out_t *)c->in;
  if (!out_open(o)) return respond_text(c, 500, "cannot create a memfd");
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  char buf[4096];
  ssize_t k;
  bool nul = false; /* each argument ends with a NUL: Go joins them with one, none at the end */
  while (fd >= 0 && (k = read(fd, buf, sizeof buf)) > 0) {
    if (nul) out_bytes(o, "", 1);
    nul = buf[k - 1] == 0;
    out_bytes(o, buf, (size_t)k - nul);
  }
  if (fd >= 0) close(fd);
  out_flush(o);
  respond(c, 200, "text/plain; charset=utf-8", "", o->fd);
}

/* pprof's symbolz: GET says that symbols exist; POST names each address of "0x1+0x2+...". */
static void serve_symbol(conn_t *c) {
  out_t *o = (out_t *)c->in;
  if (!out_open(o)) return respond_text(c, 500, "cannot create a memfd");
  if (c->req.method != PALLOC_HTTP_POST) {
    outf(o, "num_symbols: 1\n");
    out_flush(o);
    return respond(c, 200, "text/plain; charset=utf-8", "", o->fd);
  }
  size_t max = c->nbody / 2 + 1, n = 0;
  palloc_writer_lock();
  palloc_scratch_t *s = palloc_scratch_new();
  uintptr_t *a = s ? palloc_scratch_alloc(s, max * sizeof *a) : NULL;
  uintptr_t *sorted = s ? palloc_scratch_alloc(s, max * sizeof *a) : NULL;
  palloc_sym_t *y = s ? palloc_scratch_alloc(s, max * sizeof *y) : NULL;
  if (a && sorted && y) {
    for (size_t i = 0; i < c->nbody && n < max;) { /* Go's: split on '+', each strconv'd */
      size_t j = i;
      while (j < c->nbody && c->body[j] != '+') j++;
      const char *t = c->body + i;
      size_t tn = j - i;
      while (tn && (t[tn - 1] == '\n' || t[tn - 1] == '\r')) tn--;
      if (tn > 2 && t[0] == '0' && (t[1] | 0x20) == 'x' && tn <= 18) {
        uintptr_t v = 0;
        bool ok = true;
        for (size_t k = 2; k < tn && ok; k++) {
          char ch = (char)(t[k] | 0x20);
          int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
          ok = d >= 0;
          v = v << 4 | (uintptr_t)(d & 15);
        }
        if (ok) a[n++] = v;
      }
      i = j + 1;
    }
    memcpy(sorted, a, n * sizeof *a);
    qsort(sorted, n, sizeof *sorted, cmp_addr);
    size_t nu = 0;
    for (size_t i = 0; i < n; i++)
      if (nu == 0 || sorted[nu - 1] != sorted[i]) sorted[nu++] = sorted[i];
    memset(y, 0, nu * sizeof *y);
    if (nu) palloc_symbolize(sorted, nu, y, s);
    for (size_t i = 0; i < n; i++) {
      const uintptr_t *hit = bsearch(&a[i], sorted, nu, sizeof *sorted, cmp_addr);
      if (hit && y[hit - sorted].func) outf(o, "%#lx %s\n", (unsigned long)a[i], y[hit - sorted].func);
    }
  }
  if (s) palloc_scratch_destroy(s);
  palloc_writer_unlock();
  out_flush(o);
  respond(c, 200, "text/plain; charset=utf-8", "", o->fd);
}

/* Prometheus' text exposition format (version 0.0.4). Estimates are unsampled per bucket as the
 * heap profile's values (scaleHeapSample), so /metrics and the profile's totals agree. */
static void metric(out_t *o, const char *name, const char *type, const char *help, double v) {
  outf(o, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

/* An observer's figure (gcsim's arenas and what-if collector): HELP and TYPE once per name. */
typedef struct {
  out_t *o;
  char last[128];
} emit_ctx_t;
static void emit(void *ctx, const char *name, const char *type, const char *help,
                 const char *labels, double v) {
  emit_ctx_t *e = ctx;
  if (strcmp(e->last, name) != 0) {
    outf(e->o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    snprintf(e->last, sizeof e->last, "%s", name);
  }
  outf(e->o, "%s%s %.17g\n", name, labels, v);
}

static void serve_metrics(conn_t *c) {
  out_t *o = (out_t *)c->in;
  if (!out_open(o)) return respond_text(c, 500, "cannot create a memfd");
  palloc_stats_t st;
  palloc_read_stats(&st);
  int64_t rate = atomic_load(&palloc_g.rate);
  int64_t est[4] = {0}; /* in use objects, bytes; allocated objects, bytes */
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) {
    palloc_bucket_counts_t k;
    int64_t n, v;
    palloc_bucket_read(b, &k);
    palloc_proto_scale_heap((int64_t)k.allocs, (int64_t)k.alloc_bytes, rate, &n, &v);
    est[2] += n, est[3] += v;
    palloc_proto_scale_heap((int64_t)(k.allocs - k.frees), (int64_t)(k.alloc_bytes - k.free_bytes),
                            rate, &n, &v);
    est[0] += n, est[1] += v;
  }
  metric(o, "palloc_heap_inuse_bytes", "gauge",
         "Estimated bytes of live heap allocations (the heap profile's inuse_space total).",
         (double)est[1]);
  metric(o, "palloc_heap_inuse_objects", "gauge",
         "Estimated live heap allocations (the heap profile's inuse_objects total).",
         (double)est[0]);
  metric(o, "palloc_heap_allocated_bytes_total", "counter",
         "Estimated bytes allocated since start (the heap profile's alloc_space total).",
         (double)est[3]);
  metric(o, "palloc_heap_allocated_objects_total", "counter",
         "Estimated allocations since start (the heap profile's alloc_objects total).",
         (double)est[2]);
  metric(o, "palloc_samples_total", "counter", "Allocations sampled since start.",
         (double)st.sampled_allocs);
  metric(o, "palloc_samples_dropped_total", "counter",
         "Sampled allocations that could not be recorded.", (double)st.samples_dropped);
  metric(o, "palloc_sample_rate_bytes", "gauge", "Mean bytes between samples (0: off).",
         (double)st.sample_rate);
  metric(o, "palloc_buckets", "gauge", "Distinct (stack, size class) buckets.",
         (double)st.buckets);
  metric(o, "palloc_internal_bytes", "gauge",
         "Memory palloc maps for itself (buckets, registry, symbol cache).",
         (double)st.internal_bytes);
  metric(o, "palloc_threads", "gauge", "Threads that have allocated and not exited.",
         (double)st.threads);
  metric(o, "palloc_profiles_written_total", "counter", "Heap profiles written to files.",
         (double)st.profiles_written);
  metric(o, "palloc_profiles_served_total", "counter",
         "Heap profiles served by this endpoint (heap, allocs, deltas, text).",
         (double)atomic_load(&palloc_http_served));
  uint64_t decoded, to_libunwind, slots;
  palloc_cfi_counts(&decoded, &to_libunwind, &slots);
  metric(o, "palloc_unwind_rules_decoded_total", "counter",
         "Call-frame rules decoded from .eh_frame by the default unwinder (once per return "
         "address, again after a dlclose).", (double)decoded);
  metric(o, "palloc_unwind_libunwind_stacks_total", "counter",
         "Sampled stacks the default unwinder left to libunwind (signal frames, stacks off the "
         "thread's own, code without unwind tables).", (double)to_libunwind);
  emit_ctx_t e = {o, ""};
  palloc_observers_metrics(emit, &e);
  out_flush(o);
  respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", "", o->fd);
}

/* ---- requests ------------------------------------------------------------------------------------- */
static bool path_is(const palloc_http_req_t *r, const char *p) {
  return r->path_len == strlen(p) && memcmp(r->path, p, r->path_len) == 0;
}

static void route(conn_t *c) {
  palloc_http_req_t *r = &c->req;
  bool heap = path_is(r, "/debug/pprof/heap"), allocs = path_is(r, "/debug/pprof/allocs");
  bool symbol = path_is(r, "/debug/pprof/symbol");
  if (r->method == PALLOC_HTTP_POST && !symbol) return respond_text(c, 405, "method not allowed");
  if (heap || allocs) {
    const char *v;
    size_t n;
    int64_t debug = 0;
    if (palloc_http_query(r, "debug", &v, &n) && (debug = palloc_http_number(v, n, 1 << 20)) < 0)
      debug = 1; /* Go: Atoi's error is ignored, a non-number is 0 */
    if (palloc_http_query(r, "seconds", &v, &n)) {
      int64_t sec = palloc_http_number(v, n, SECONDS_MAX);
      if (sec <= 0)
        return respond_text(c, 400, "invalid value for \"seconds\" - must be a positive integer "
                                    "(at most 300)");
      if (debug != 0) return respond_text(c, 400, "seconds and debug params are incompatible");
      palloc_writer_lock();
      c->base = base_take();
      palloc_writer_unlock();
      if (c->base == NULL) return respond_text(c, 500, "out of memory for the delta's start");
      c->allocs = allocs;
      c->state = C_WAIT;
      c->deadline = c->base->t0 + (uint64_t)sec * 1000000000ull;
      return;
    }
    if (debug != 0) return serve_text(c);
    return serve_profile(c, allocs, NULL);
  }
  if (path_is(r, "/debug/pprof/peak")) return serve_kind(c, PALLOC_PROFILE_PEAK, "peak");
  if (path_is(r, "/debug/pprof/lifetimes"))
    return serve_kind(c, PALLOC_PROFILE_LIFETIME, "lifetimes");
  if (symbol) return serve_symbol(c);
  if (path_is(r, "/debug/pprof/cmdline")) return serve_cmdline(c);
  if (path_is(r, "/debug/pprof/") || path_is(r, "/debug/pprof")) return serve_index(c);
  if (path_is(r, "/metrics")) return serve_metrics(c);
  if (r->path_len > 13 && memcmp(r->path, "/debug/pprof/", 13) == 0)
    return respond_text(c, 404, "Unknown profile");
  respond_text(c, 404, "404 page not found");
}

/* Bytes arrived (or the peer closed): parse, read a body, route. */
static void on_read(conn_t *c) {
  if (c->state == C_READ) {
    ssize_t k = recv(c->fd, c->in + c->nin, sizeof c->in - c->nin, MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) return conn_close(c);
    if (k < 0) return;
    c->nin += (size_t)k;
    int rc = palloc_http_parse(c->in, c->nin, &c->req);
    if (rc == PALLOC_HTTP_MORE) return;
    if (rc != PALLOC_HTTP_COMPLETE) {
      c->req.method = PALLOC_HTTP_GET;
      return respond_text(c, rc, reason(rc));
    }
    if (c->req.method == PALLOC_HTTP_POST && c->req.content_length > 0) {
      c->body_map = ((size_t)c->req.content_length + 4095) & ~(size_t)4095;
      c->body = map(c->body_map);
      if (c->body == NULL) return respond_text(c, 500, "out of memory for the body");
      c->nbody = c->nin - c->req.head_len;
      if (c->nbody > (size_t)c->req.content_length) c->nbody = (size_t)c->req.content_length;
      memcpy(c->body, c->in + c->req.head_len, c->nbody);
      if (c->req.expect_continue && c->nbody < (size_t)c->req.content_length) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (send(c->fd, cont, sizeof cont - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {}
      }
      c->state = C_BODY;
    } else {
      return route(c);
    }
  } else { /* C_BODY */
    ssize_t k = recv(c->fd, c->body + c->nbody, (size_t)c->req.content_length - c->nbody,
                     MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) return conn_close(c);
    if (k < 0) return;
    c->nbody += (size_t)k;
  }
  if (c->nbody == (size_t)c->req.content_length) route(c);
}

static void on_write(conn_t *c) {
  while (c->hoff < c->nhead || c->ooff < c->nout) {
    const char *p = c->hoff < c->nhead ? c->head + c->hoff : c->out + c->ooff;
    size_t n = c->hoff < c->nhead ? c->nhead - c->hoff : c->nout - c->ooff;
    ssize_t k = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (k <= 0) return conn_close(c);
    if (c->hoff < c->nhead) c->hoff += (size_t)k;
    else c->ooff += (size_t)k;
  }
  /* Done: no more to send; read what the client may still send until it closes, so that the
   * close does not reset the connection under the response (TCP sends RST on unread input). */
  shutdown(c->fd, SHUT_WR);
  c->state = C_DRAIN;
  c->deadline = mono_ns() + DRAIN_NS;
}

static void on_accept(void) {
  for (int round = 0; round < 16; round++) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    conn_t *c = NULL;
    for (int i = 0; i < MAX_CONN && !c; i++)
      if (conns[i].state == C_FREE) c = &conns[i];
    if (c == NULL) { /* full: say so, at once, without waiting for the request */
      static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\nRetry-After: 1\r\n\r\n";
      if (send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {}
      close(fd);
      continue;
    }
    memset(c, 0, offsetof(conn_t, in));
    struct stat st;
    c->ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
    c->fd = fd;
    c->state = C_READ;
    c->deadline = mono_ns() + READ_TIMEOUT_NS;
  }
}

static void *server_main(void *arg) {
  (void)arg;
  palloc_thread.guard++; /* nothing this thread allocates is sampled */
  struct pollfd pf[MAX_CONN + 1];
  for (;;) {
    uint64_t now = mono_ns(), next = now + 60 * 1000000000ull;
    pf[0] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
    for (int i = 0; i < MAX_CONN; i++) {
      conn_t *c = &conns[i];
      short ev = c->state == C_READ || c->state == C_BODY || c->state == C_DRAIN ? POLLIN
               : c->state == C_WRITE ? POLLOUT : POLLRDHUP; /* C_WAIT: a client that leaves */
      pf[i + 1] = (struct pollfd){.fd = c->state == C_FREE ? -1 : c->fd, .events = ev};
      if (c->state != C_FREE && c->deadline < next) next = c->deadline;
    }
    int timeout = next <= now ? 0 : (int)((next - now) / 1000000 + 1);
    int r = poll(pf, MAX_CONN + 1, timeout);
    if (r < 0 && errno != EINTR) {
      palloc_warn("PALLOC_HTTP: poll failed (%s); the endpoint stops", strerror(errno));
      return NULL;
    }
    if ((r > 0 && (pf[0].revents & POLLNVAL)) || !still_ours(listen_fd, listen_ino)) {
      palloc_warn("PALLOC_HTTP: the program closed the endpoint's socket; the endpoint stops");
      for (int i = 0; i < MAX_CONN; i++) {
        if (conns[i].state == C_FREE) continue;
        if (!still_ours(conns[i].fd, conns[i].ino)) conns[i].fd = -1;
        conn_close(&conns[i]);
      }
      listen_fd = -1;
      return NULL;
    }
    for (int i = 0; i < MAX_CONN; i++) {
      conn_t *c = &conns[i];
      if (c->state == C_FREE) continue;
      if (!still_ours(c->fd, c->ino)) { /* closed under us: forget the number, close nothing */
        c->fd = -1;
        conn_close(c);
        continue;
      }
      if (r <= 0) continue;
      short re = pf[i + 1].revents;
      if (c->state == C_WAIT && (re & (POLLRDHUP | POLLHUP | POLLERR))) {
        conn_close(c); /* the client of a delta left: no profile to build */
      } else if (c->state == C_DRAIN && re) {
        char sink[4096];
        ssize_t k = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) conn_close(c);
      } else if (re & (POLLIN | POLLHUP | POLLERR) && (c->state == C_READ || c->state == C_BODY)) {
        on_read(c);
      } else if (re & (POLLOUT | POLLHUP | POLLERR) && c->state == C_WRITE) {
        on_write(c);
      }
    }
    /* The checks above are older than the profiles built since (a build waits for the writer
     * lock, then walks the buckets): the program may have closed a number and made it its own
     * meanwhile, so each fd is checked again right before it is used below. */
    now = mono_ns();
    for (int i = 0; i < MAX_CONN; i++) {
      conn_t *c = &conns[i];
      if (c->state == C_FREE || c->deadline > now) continue;
      if (c->state == C_WAIT) { /* the delta's window is over */
        base_t *b = c->base;
        serve_profile(c, c->allocs, b);
        munmap(b, b->bytes);
        c->base = NULL;
        if (c->state == C_WRITE && still_ours(c->fd, c->ino)) on_write(c);
      } else if (c->state == C_READ && c->nin == 0) {
        conn_close(c); /* opened and never spoke: no answer is owed */
      } else if (c->state == C_READ || c->state == C_BODY) {
        c->req.method = PALLOC_HTTP_GET;
        respond_text(c, 408, "request not received in time");
        if (still_ours(c->fd, c->ino)) on_write(c);
        if (c->state == C_WRITE || c->state == C_DRAIN) conn_close(c);
      } else {
        conn_close(c); /* a response not taken in time, or a drain done */
      }
    }
    if (r > 0 && (pf[0].revents & POLLIN) && still_ours(listen_fd, listen_ino)) on_accept();
  }
}

/* ---- start, fork, exit (an observer of alloc's lifecycle: observer.h) ----------------------------- */
static bool http_listen(const char *spec) {
  char err[200];
  if (!palloc_http_parse_addr(spec, &addr, err, sizeof err)) {
    palloc_warn("PALLOC_HTTP=%s: %s; no endpoint", spec, err);
    return false;
  }
  int fd = socket(addr.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0 && !addr.is_unix) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr.sa, addr.len) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    if (addr.is_unix) spec = addr.unix_path;
    palloc_warn("PALLOC_HTTP: cannot listen on %s: %s; no endpoint", spec, strerror(e));
    return false;
  }
  listen_fd = fd;
  owner = getpid();
  struct stat st;
  listen_ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
  if (!addr.is_unix) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    bool chosen = (addr.sa.ss_family == AF_INET ? ((struct sockaddr_in *)&addr.sa)->sin_port
                                                : ((struct sockaddr_in6 *)&addr.sa)->sin6_port) == 0;
    if (chosen) /* the port the kernel chose: the one line that tells where to connect */
      palloc_warn("serving http://%s%s%s:%d/debug/pprof/ (pid %d)", ss.ss_family == AF_INET6 ? "[" : "",
                  host, ss.ss_family == AF_INET6 ? "]" : "", port, (int)owner);
  }
  return true;
}

static void http_start(void) {
  const char *spec = palloc_option_str(PALLOC_OPT_HTTP);
  if (spec == NULL) return; /* unset: nothing at all */
  if (!http_listen(spec)) return;
  conns = map(MAX_CONN * sizeof *conns);
  if (conns == NULL) {
    palloc_warn("PALLOC_HTTP: out of memory; no endpoint");
    close(listen_fd);
    listen_fd = -1;
    return;
  }
  for (int i = 0; i < MAX_CONN; i++) conns[i].fd = -1;
  if (!palloc_thread_spawn(server_main)) { /* it takes none of the program's signals */
    palloc_warn("PALLOC_HTTP: cannot start the server thread; no endpoint");
    close(listen_fd);
    listen_fd = -1;
  }
}

/* The child of a fork: the server thread is not there, and the address is the parent's. The
 * listener's number is checked as the connections' are: a program that closed every fd and
 * opened its own files into those numbers may fork before the server thread has noticed (it
 * sleeps in poll, which a close does not wake), and the number then names the program's file. */
static void http_fork_child(void) {
  if (listen_fd < 0) return;
  if (still_ours(listen_fd, listen_ino)) close(listen_fd);
  listen_fd = -1;
  for (int i = 0; i < MAX_CONN; i++)
    if (conns[i].state != C_FREE && still_ours(conns[i].fd, conns[i].ino)) close(conns[i].fd);
}

static void http_exit(void) {
  if (addr.is_unix && listen_fd >= 0 && getpid() == owner) unlink(addr.unix_path);
}

static const palloc_observer_t http_observer = {
  .name = "http", .start = http_start, .fork_child = http_fork_child, .exit = http_exit};
PALLOC_OBSERVER(http_observer);
