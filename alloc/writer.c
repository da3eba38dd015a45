/* writer.c - when and where heap profiles are written; its part of start, exit and fork.
 *
 *  - PALLOC_PROFILE=path: written at exit (library destructor, after the program's atexit
 *    handlers). "%p" in any path is replaced by the pid at the time of writing, so a forked child
 *    writes its own file.
 *  - palloc_profile_write(path) / palloc_profile_write_fd(fd): on demand.
 *  - PALLOC_PROFILE_SIGNAL=NAME and PALLOC_PROFILE_INTERVAL=seconds (0.5 too): numbered snapshots written
 *    by a dedicated writer thread. The signal handler only posts a semaphore (async-signal-safe);
 *    the thread does the work. Snapshot n of "heap.%p.pb.gz" is "heap.<pid>.0001.pb.gz".
 *
 * Every path is opened by proto's palloc_proto_out_open (outpath.c): a regular file (or a new
 * one, or a symlink's target) is written as "<name>.tmp.<pid>" and renamed; a FIFO or a
 * character device is written directly; a directory or anything else is refused.
 * One writer lock serializes writes;
 * while a thread writes, its guard is held, so whatever zlib or libc allocate is unsampled.
 * A failure prints one "palloc:" line and the program goes on.
 *
 * Fork: the writer lock is among the locks palloc's fork handler takes; the child restarts the
 * writer thread (palloc_writer_fork_child).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"
#include "palloc_proto.h"

_Atomic uint64_t palloc_profiles_written, palloc_profile_errors;
_Atomic uint64_t palloc_last_write_ns, palloc_last_write_bytes;

static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static char exit_path[PALLOC_PROFILE_PATH_MAX];
static char snap_path[PALLOC_PROFILE_PATH_MAX];
static int snap_signal = -1;
static long snap_interval;
static unsigned snap_seq;
static sem_t snap_sem;
static volatile sig_atomic_t snap_pending;
static bool writer_wanted;
/* Set by the exit destructor: the writer thread must not start a snapshot that the process's
 * end would cut short (leaving a temporary file behind). */
static atomic_bool exiting;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void palloc_writer_lock(void) { pthread_mutex_lock(&write_lock); }
void palloc_writer_unlock(void) { pthread_mutex_unlock(&write_lock); }

/* Writes under the lock, with the guard held: to sink if it is given, else to fd if >= 0, else
 * to path (%p expanded here, but a snapshot's name comes expanded). The profile is streamed
 * (profile.c, proto/write.c): the write's memory does not grow with the number of samples. A
 * snapshot is skipped once the process has begun to exit. */
static int write_profile(const char *path, int fd, const palloc_proto_sink_t *sink,
                         bool snapshot) {
  palloc_init();
  palloc_thread_t *t = &palloc_thread;
  char err[256] = "", real[1024] = "";
  pthread_mutex_lock(&write_lock);
  if (snapshot && atomic_load(&exiting)) {
    pthread_mutex_unlock(&write_lock);
    return 0;
  }
  palloc_guard_enter(t);
  uint64_t t0 = mono_ns();
  long size = -1;
  if (sink)
    size = palloc_profile_emit_sink(sink, err, sizeof err);
  else if (fd >= 0)
    size = palloc_profile_emit(NULL, fd, err, sizeof err);
  else if (snapshot ? snprintf(real, sizeof real, "%s", path) >= (int)sizeof real
                    : !palloc_proto_expand_path(path, real, sizeof real))
    real[0] = 0, snprintf(err, sizeof err, "path too long");
  else
    size = palloc_profile_emit(real, -1, err, sizeof err);
  if (size >= 0) {
    atomic_store(&palloc_last_write_ns, mono_ns() - t0);
    atomic_store(&palloc_last_write_bytes, (uint64_t)size);
    atomic_fetch_add(&palloc_profiles_written, 1);
  } else {
    atomic_fetch_add(&palloc_profile_errors, 1);
    if (sink)
      palloc_warn("cannot write heap profile: %s", err);
    else if (fd < 0)
      palloc_warn("cannot write heap profile to %s: %s", real[0] ? real : path, err);
    else
      palloc_warn("cannot write heap profile to fd %d: %s", fd, err);
  }
  palloc_guard_exit(t);
  pthread_mutex_unlock(&write_lock);
  return size >= 0 ? 0 : -1;
}

int palloc_profile_write(const char *path) {
  if (path == NULL || *path == 0) {
    palloc_warn("palloc_profile_write: no path given");
    atomic_fetch_add(&palloc_profile_errors, 1);
    return -1;
  }
  return write_profile(path, -1, NULL, false);
}

int palloc_writer_write_sink(const palloc_proto_sink_t *sink) {
  return write_profile(NULL, -1, sink, false);
}

int palloc_profile_write_fd(int fd) {
  if (fd < 0) {
    palloc_warn("palloc_profile_write_fd: bad file descriptor %d", fd);
    atomic_fetch_add(&palloc_profile_errors, 1);
    return -1;
  }
  return write_profile(NULL, fd, NULL, false);
}

/* ---- snapshots ----------------------------------------------------------------------------- */
/* Snapshot n of "heap.%p.pb.gz" goes to "heap.<pid>.000n.pb.gz", next to the exit profile. A
 * path that is a FIFO or a character device (a reader, /dev/null) is a stream, not a name to
 * number: every snapshot is written to it (numbering would create files next to it: in /dev). */
void palloc_snapshot_name(const char *base, unsigned seq, char *name, size_t size) {
  size_t n = strlen(base);
  struct stat st;
  if (seq == 0 || (stat(base, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))))
    snprintf(name, size, "%s", base);
  else if (n > 6 && strcmp(base + n - 6, ".pb.gz") == 0)
    snprintf(name, size, "%.*s.%04u.pb.gz", (int)(n - 6), base, seq);
  else
    snprintf(name, size, "%s.%04u", base, seq);
}

static void snapshot(void) {
  char base[1024], name[1100];
  if (!palloc_proto_expand_path(snap_path, base, sizeof base)) {
    write_profile(snap_path, -1, NULL, true); /* reports the path as too long */
    return;
  }
  unsigned seq = ++snap_seq;
  palloc_snapshot_name(base, seq, name, sizeof name);
  write_profile(name, -1, NULL, true);
  palloc_extra_profiles_snapshot(seq); /* the peak and lifetime profiles' snapshot seq */
}

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  snap_pending = 1;
  sem_post(&snap_sem);
  errno = saved;
}

static void *writer_main(void *arg) {
  (void)arg;
  palloc_thread.guard++; /* the writer thread itself is never sampled */
  for (;;) {
    int r;
    if (snap_interval > 0) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += snap_interval / 1000; /* snap_interval is in milliseconds */
      ts.tv_nsec += (snap_interval % 1000) * 1000000L;
      if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
      while ((r = sem_timedwait(&snap_sem, &ts)) != 0 && errno == EINTR) {}
    } else {
      while ((r = sem_wait(&snap_sem)) != 0 && errno == EINTR) {}
    }
    if (r == 0 || snap_pending) snap_pending = 0;
    snapshot();
  }
  return NULL;
}

static void start_writer_thread(void) {
  if (!palloc_thread_spawn(writer_main))
    palloc_warn("cannot start the profile writer thread: snapshots are off");
}

/* ---- process start, fork and exit (lifecycle.c calls these) --------------------------------- */
/* At palloc's start: the snapshot signal and the writer thread, if wanted. */
void palloc_writer_start(void) {
  /* options.c checked them at initialization (a path that does not fit exit_path is refused) */
  const char *s = palloc_option_str(PALLOC_OPT_PROFILE);
  if (s) strcpy(exit_path, s);
  strcpy(snap_path, exit_path[0] ? exit_path : "palloc.%p.pb.gz");
  if (palloc_option_is_set(PALLOC_OPT_PROFILE_SIGNAL))
    snap_signal = (int)palloc_option_int(PALLOC_OPT_PROFILE_SIGNAL);
  if (palloc_option_is_set(PALLOC_OPT_PROFILE_INTERVAL))
    snap_interval = (long)palloc_option_int(PALLOC_OPT_PROFILE_INTERVAL);
  writer_wanted = snap_interval > 0 || snap_signal > 0;
  if (writer_wanted) {
    sem_init(&snap_sem, 0, 0);
    if (snap_signal > 0) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_signal;
      sa.sa_flags = SA_RESTART;
      sigemptyset(&sa.sa_mask);
      sigaction(snap_signal, &sa, NULL);
    }
    start_writer_thread();
  }
}

/* The fork child, once palloc's locks are released: the writer thread did not survive the fork. */
void palloc_writer_fork_child(void) {
  if (writer_wanted) {
    sem_init(&snap_sem, 0, 0);
    snap_seq = 0;
    start_writer_thread();
  }
}

/* At exit: no snapshot from here on, and the exit profile. */
void palloc_writer_stop(void) {
  pthread_mutex_lock(&write_lock); /* waits for a snapshot in progress */
  atomic_store(&exiting, true);
  pthread_mutex_unlock(&write_lock);
  if (exit_path[0]) write_profile(exit_path, -1, NULL, false);
}
