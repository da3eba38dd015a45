/* outpath.c - opening a path a user named for palloc's output without destroying what is there.
 *
 * PALLOC_PROFILE, its snapshots, PALLOC_TRACE_FILE and the tools' output paths may name anything:
 * a regular file, a symlink, a FIFO someone reads, /dev/null, /dev/stdout, a directory. One rule,
 * for every file palloc writes:
 *  - a regular file, or nothing: replaced through "<name>.tmp.<pid>" and rename(2) in the same
 *    directory, so a reader never sees half a file (PALLOC_OUT_REPLACE), or opened to append
 *    (PALLOC_OUT_APPEND);
 *  - a symlink is followed: its final target (at most 40 links; a relative target is taken from
 *    the link's directory) is the name replaced, and the link stays a link. A dangling link
 *    creates its target;
 *  - a FIFO or a character device (also reached through /dev/stdout or /proc/self/fd/N, whose
 *    links name no file): opened as it is and written directly: no create, no truncate, no
 *    rename. A FIFO is opened non-blocking, so a FIFO that nobody has open for reading fails at
 *    once ("no reader") instead of hanging the program in its exit; once it is open, writes block
 *    as any writer's do;
 *  - anything else (a directory, a block device, a socket): not written, with the reason.
 * Writes never raise SIGPIPE: a reader that goes away is a failed write, not the host's death.
 *
 * Async-signal-safe calls only (no stdio but snprintf into the caller's buffer, no allocation):
 * the trace file is opened from whatever thread prints the first trace line.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "palloc_proto.h"

/* Linux's own limit on the links one lookup follows (MAXSYMLINKS). */
#define MAX_LINKS 40

bool palloc_proto_expand_path(const char *path, char *out, size_t cap) {
  return palloc_proto_expand_pid(path, (long)getpid(), out, cap);
}

bool palloc_proto_expand_pid(const char *path, long pid, char *out, size_t cap) {
  size_t n = 0;
  for (const char *p = path; *p; p++) {
    char num[24];
    const char *add = num;
    size_t k;
    if (p[0] == '%' && p[1] == 'p') {
      unsigned long v = (unsigned long)pid;
      char *e = num + sizeof num;
      *--e = 0;
      do *--e = (char)('0' + v % 10); while ((v /= 10) != 0);
      add = e;
      p++;
    } else if (p[0] == '%' && p[1] == '%') {
      num[0] = '%', num[1] = 0;
      p++;
    } else {
      num[0] = *p, num[1] = 0;
    }
    k = strlen(add);
    if (n + k + 1 > cap) return false;
    memcpy(out + n, add, k);
    n += k;
  }
  if (cap == 0) return false;
  out[n] = 0;
  return true;
}

/* The name whose directory entry holds path's object: path with its last component's symlinks
 * resolved (the directories on the way need no resolving: rename works within any of them). */
static int resolve(const char *path, char *out, size_t cap, char *err) {
  size_t len = strlen(path);
  if (len + 1 > cap) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "path too long");
    return -1;
  }
  memcpy(out, path, len + 1);
  for (int links = 0;; links++) {
    struct stat ls;
    if (lstat(out, &ls) != 0) {
      if (errno == ENOENT) return 0; /* a new file (or a dangling link's target) */
      snprintf(err, PALLOC_PROTO_ERRLEN, "%.160s: %s", out, strerror(errno));
      return -1;
    }
    if (!S_ISLNK(ls.st_mode)) return 0;
    if (links == MAX_LINKS) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "too many levels of symbolic links");
      return -1;
    }
    char target[4096];
    ssize_t n = readlink(out, target, sizeof target);
    if (n < 0 || (size_t)n >= sizeof target) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "cannot read link %.160s: %s", out,
               n < 0 ? strerror(errno) : "too long");
      return -1;
    }
    target[n] = 0;
    size_t dir = 0; /* length of out's directory part, '/' included, for a relative target */
    if (target[0] != '/') {
      const char *slash = strrchr(out, '/');
      dir = slash ? (size_t)(slash - out) + 1 : 0;
    }
    if (dir + (size_t)n + 1 > cap) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "path too long");
      return -1;
    }
    memcpy(out + dir, target, (size_t)n + 1);
  }
}

/* A FIFO or a character device, or a regular file written in place (appended to, or one that has
 * no name to replace): opened as it is, or created (flags O_CREAT) as a regular file. O_NONBLOCK
 * makes a FIFO without reader fail (ENXIO) instead of waiting; it is cleared once the file is
 * open, so that writes wait for a slow reader instead of failing with EAGAIN. */
static int open_direct(palloc_out_t *o, const char *path, int flags, bool regular, char *err) {
  int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | flags, 0644);
  if (fd < 0) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "%s", errno == ENXIO ? "a FIFO with no reader"
                                                            : strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 ||
      (regular ? !S_ISREG(st.st_mode) : !(S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)))) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "changed while being opened");
    close(fd);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  o->fd = fd;
  return 0;
}

int palloc_proto_out_open(palloc_out_t *o, const char *path, int how,
                          char err[PALLOC_PROTO_ERRLEN]) {
  o->fd = -1;
  o->tmp[0] = o->name[0] = 0;
  struct stat st;
  bool exists = stat(path, &st) == 0;
  if (!exists && errno != ENOENT) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "%s", strerror(errno));
    return -1;
  }
  if (exists && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)))
    return open_direct(o, path, 0, false, err);
  if (exists && !S_ISREG(st.st_mode)) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "%s, not a file",
             S_ISDIR(st.st_mode) ? "a directory" : S_ISBLK(st.st_mode) ? "a block device"
             : S_ISSOCK(st.st_mode) ? "a socket" : "not a regular file");
    return -1;
  }
  if (resolve(path, o->name, sizeof o->name, err) != 0) return -1;
  if (exists) {
    /* The name must hold the file stat saw. It does not through /proc/self/fd/N to a file
     * that was deleted (the link reads "/x (deleted)"): write that file in place. */
    struct stat ns;
    if (lstat(o->name, &ns) != 0 || ns.st_dev != st.st_dev || ns.st_ino != st.st_ino) {
      o->name[0] = 0;
      return open_direct(o, path, how == PALLOC_OUT_APPEND ? O_APPEND : O_TRUNC, true, err);
    }
  }
  if (how == PALLOC_OUT_APPEND) return open_direct(o, o->name, O_CREAT | O_APPEND, true, err);
  if (snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld", o->name, (long)getpid()) >=
      (int)sizeof o->tmp) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "path too long");
    o->tmp[0] = 0;
    return -1;
  }
  /* O_EXCL | O_NOFOLLOW: the temporary is a new regular file, never whatever (a link, a FIFO)
   * already has its name; one left by a process of the same pid that died is removed. */
  int fd = -1;
  for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
    fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && (errno != EEXIST || attempt > 0 || unlink(o->tmp) != 0)) break;
  }
  if (fd < 0) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "cannot create %.160s: %s", o->tmp, strerror(errno));
    o->tmp[0] = 0;
    return -1;
  }
  if (exists) (void)fchmod(fd, st.st_mode & 0777); /* the replaced file's permissions */
  o->fd = fd;
  return 0;
}

int palloc_proto_out_close(palloc_out_t *o, bool ok, char err[PALLOC_PROTO_ERRLEN]) {
  int rc = ok ? 0 : -1;
  if (o->fd >= 0 && close(o->fd) != 0 && rc == 0) {
    snprintf(err, PALLOC_PROTO_ERRLEN, "close failed: %s", strerror(errno));
    rc = -1;
  }
  o->fd = -1;
  if (o->tmp[0]) {
    if (rc == 0 && rename(o->tmp, o->name) != 0) {
      snprintf(err, PALLOC_PROTO_ERRLEN, "cannot rename to %.160s: %s", o->name,
               strerror(errno));
      rc = -1;
    }
    if (rc < 0) unlink(o->tmp);
    o->tmp[0] = 0;
  }
  return rc;
}

int palloc_proto_out_write(int fd, const void *buf, size_t n) {
  const char *p = buf;
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  int rc = 0;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      rc = -1;
      break;
    }
    p += w;
    n -= (size_t)w;
  }
  int saved = errno;
  /* EPIPE raised SIGPIPE at this thread, where it is blocked: take it back before unblocking,
   * unless one was pending already (that one is not ours). */
  if (rc < 0 && saved == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return rc;
}
