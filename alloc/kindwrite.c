/* kindwrite.c - when and where the peak and lifetime profiles are written: at exit
 * (PALLOC_PEAK_PROFILE, PALLOC_LIFETIME_PROFILE), with every snapshot (signal, interval:
 * numbered as the heap profile's are), and on demand (palloc.h). As writer.c's heap profile:
 * under the writer lock, with the guard held (zlib's and libc's allocations meanwhile are
 * unsampled), through proto's output paths; a failure is one "palloc:" line.
 */
#include <stdio.h>
#include <string.h>
#include "internal.h"
#include "palloc_proto.h"

static const char *const kind_name[] = {"heap", "peak", "lifetime"};
/* Set at exit under the writer lock: a snapshot's write then starts no more (writer.c's rule). */
static bool exiting;

/* fd >= 0: to fd; else path, "%p" expanded, ".NNNN" inserted for a snapshot (seq > 0). */
int palloc_write_kind(int kind, const char *path, int fd, unsigned seq) {
  palloc_init();
  palloc_thread_t *t = &palloc_thread;
  char err[256] = "", base[1024], name[1100];
  palloc_writer_lock();
  if (seq > 0 && exiting) {
    palloc_writer_unlock();
    return 0;
  }
  palloc_guard_enter(t);
  long size = -1;
  name[0] = 0;
  if (fd >= 0) {
    size = palloc_profile_emit_kind(kind, NULL, fd, err, sizeof err);
  } else if (!palloc_proto_expand_path(path, base, sizeof base)) {
    snprintf(err, sizeof err, "path too long");
  } else {
    palloc_snapshot_name(base, seq, name, sizeof name);
    size = palloc_profile_emit_kind(kind, name, -1, err, sizeof err);
  }
  if (size >= 0) {
    atomic_fetch_add(&palloc_profiles_written, 1);
  } else {
    atomic_fetch_add(&palloc_profile_errors, 1);
    if (fd >= 0)
      palloc_warn("cannot write %s profile to fd %d: %s", kind_name[kind], fd, err);
    else
      palloc_warn("cannot write %s profile to %s: %s", kind_name[kind], name[0] ? name : path, err);
  }
  palloc_guard_exit(t);
  palloc_writer_unlock();
  return size >= 0 ? 0 : -1;
}

static int write_path(int kind, const char *path, const char *fn) {
  if (path == NULL || *path == 0) {
    palloc_warn("%s: no path given", fn);
    atomic_fetch_add(&palloc_profile_errors, 1);
    return -1;
  }
  return palloc_write_kind(kind, path, -1, 0);
}
static int write_fd(int kind, int fd, const char *fn) {
  if (fd < 0) {
    palloc_warn("%s: bad file descriptor %d", fn, fd);
    atomic_fetch_add(&palloc_profile_errors, 1);
    return -1;
  }
  return palloc_write_kind(kind, NULL, fd, 0);
}

int palloc_peak_profile_write(const char *path) {
  return write_path(PALLOC_PROFILE_PEAK, path, "palloc_peak_profile_write");
}
int palloc_peak_profile_write_fd(int fd) {
  return write_fd(PALLOC_PROFILE_PEAK, fd, "palloc_peak_profile_write_fd");
}
int palloc_lifetime_profile_write(const char *path) {
  return write_path(PALLOC_PROFILE_LIFETIME, path, "palloc_lifetime_profile_write");
}
int palloc_lifetime_profile_write_fd(int fd) {
  return write_fd(PALLOC_PROFILE_LIFETIME, fd, "palloc_lifetime_profile_write_fd");
}

/* writer.c's snapshot n, written: the others' snapshot n, next to their exit paths. */
void palloc_extra_profiles_snapshot(unsigned seq) {
  const char *peak = palloc_option_str(PALLOC_OPT_PEAK_PROFILE);
  const char *life = palloc_option_str(PALLOC_OPT_LIFETIME_PROFILE);
  if (peak) palloc_write_kind(PALLOC_PROFILE_PEAK, peak, -1, seq);
  if (life) palloc_write_kind(PALLOC_PROFILE_LIFETIME, life, -1, seq);
}

void palloc_extra_profiles_exit(void) {
  palloc_writer_lock(); /* waits for a snapshot in progress */
  exiting = true;
  palloc_writer_unlock();
  const char *peak = palloc_option_str(PALLOC_OPT_PEAK_PROFILE);
  const char *life = palloc_option_str(PALLOC_OPT_LIFETIME_PROFILE);
  if (peak) palloc_write_kind(PALLOC_PROFILE_PEAK, peak, -1, 0);
  if (life) palloc_write_kind(PALLOC_PROFILE_LIFETIME, life, -1, 0);
}
