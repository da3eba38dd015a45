#!/usr/bin/env python3
"""Every path palloc writes (PALLOC_PROFILE, its snapshots, PALLOC_TRACE_FILE) keeps what it is:
  - a symlink stays a link and its target (regular, or not yet existing) gets the profile;
  - a FIFO stays a FIFO: a reader gets the profile, no reader is one "palloc:" line, no hang;
  - a character device stays the same device node; a directory is one "palloc:" line;
  - snapshots to a FIFO go to the FIFO, no numbered files appear next to it.
A character device of our own (mknod, as root) is tried first; /dev/null and /dev/full are only
tried once everything else has passed: a palloc that replaces a FIFO would replace them too, and
they belong to the whole machine. Passes as root and as any other user.
usage: check_outpaths.py LIBPALLOC_SO PROGRAM TMPDIR
"""
import os, shutil, stat, subprocess, sys, threading, time

libso, prog, tmp = sys.argv[1:4]
shutil.rmtree(tmp, ignore_errors=True)
os.makedirs(tmp)
failures = []


def check(ok, what):
    print(('ok   ' if ok else 'FAIL ') + what)
    if not ok:
        failures.append(what)


def run(env_extra, cmd=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith('PALLOC_')}
    env['LD_PRELOAD'] = libso
    env.update(env_extra)
    try:
        r = subprocess.run(cmd or [prog], env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, ['(hung: killed after %ds)' % timeout]
    lines = [l for l in r.stderr.decode(errors='replace').splitlines() if l]
    return r.returncode, lines


def is_gzip(path):
    with open(path, 'rb') as f:
        return f.read(2) == b'\x1f\x8b'


def leftovers():
    return [n for n in os.listdir(tmp) if '.tmp.' in n]


class FifoReader:
    """Reads a FIFO, each writer's data in turn, until stopped."""
    def __init__(self, path):
        self.path, self.data, self.stop = path, [], False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()
        time.sleep(0.2)  # the reader's open is pending: a writer's open finds a reader

    def loop(self):
        while not self.stop:
            with open(self.path, 'rb') as f:
                self.data.append(f.read())

    def close(self):
        self.stop = True
        fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # wakes the pending open
        os.close(fd)
        self.t.join(10)
        return [d for d in self.data if d]


# 1. symlink chain (relative, then absolute) to a regular file
real = os.path.join(tmp, 'real.pb.gz')
with open(real, 'w') as f:
    f.write('old')
os.mkdir(os.path.join(tmp, 'sub'))
os.symlink('../real.pb.gz', os.path.join(tmp, 'sub', 'rel'))
os.symlink(os.path.join(tmp, 'sub', 'rel'), os.path.join(tmp, 'link.pb.gz'))
rc, lines = run({'PALLOC_PROFILE': os.path.join(tmp, 'link.pb.gz')})
check(rc == 0 and not lines and os.path.islink(os.path.join(tmp, 'link.pb.gz'))
      and os.path.islink(os.path.join(tmp, 'sub', 'rel')) and is_gzip(real) and not leftovers(),
      f'symlink chain: links kept, target written (rc={rc}, stderr={lines})')

# 2. dangling symlink: the target is created
os.symlink('new.pb.gz', os.path.join(tmp, 'dangling.pb.gz'))
rc, lines = run({'PALLOC_PROFILE': os.path.join(tmp, 'dangling.pb.gz')})
newp = os.path.join(tmp, 'new.pb.gz')
check(rc == 0 and not lines and os.path.islink(os.path.join(tmp, 'dangling.pb.gz'))
      and os.path.isfile(newp) and is_gzip(newp),
      f'dangling symlink: link kept, its target created (stderr={lines})')

# 3. FIFO with a reader: the reader gets the profile
fifo = os.path.join(tmp, 'fifo')
os.mkfifo(fifo)
reader = FifoReader(fifo)
rc, lines = run({'PALLOC_PROFILE': fifo})
got = reader.close()
check(rc == 0 and not lines and stat.S_ISFIFO(os.lstat(fifo).st_mode) and len(got) == 1
      and got[0][:2] == b'\x1f\x8b',
      f'FIFO with a reader: still a FIFO, reader got {len(got)} profile(s) (stderr={lines})')

# 4. FIFO without a reader: one palloc: line, no hang
t0 = time.time()
rc, lines = run({'PALLOC_PROFILE': fifo}, timeout=20)
check(rc == 0 and len(lines) == 1 and 'no reader' in lines[0]
      and stat.S_ISFIFO(os.lstat(fifo).st_mode),
      f'FIFO without a reader: {time.time() - t0:.1f}s, stderr={lines}')

# 5. snapshots to a FIFO: every snapshot and the exit profile go to the FIFO, no numbered files
reader = FifoReader(fifo)
rc, lines = run({'PALLOC_PROFILE': fifo, 'PALLOC_PROFILE_INTERVAL': '1'}, ['sleep', '2.5'])
got = reader.close()
numbered = [n for n in os.listdir(tmp) if n.startswith('fifo.')]
check(rc == 0 and not lines and stat.S_ISFIFO(os.lstat(fifo).st_mode) and len(got) >= 2
      and not numbered,
      f'snapshots to a FIFO: {len(got)} profiles read, files next to it: {numbered}, '
      f'stderr={lines}')

# 6. PALLOC_TRACE_FILE: a FIFO without reader (no hang), a symlink (appended to its target)
rc, lines = run({'PALLOC_TRACE': '1', 'PALLOC_TRACE_FILE': fifo}, timeout=30)
check(rc == 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode)
      and sum('palloc: cannot open PALLOC_TRACE_FILE' in l and 'no reader' in l
              for l in lines) == 1,
      f'PALLOC_TRACE_FILE=FIFO without reader: rc={rc}, {lines[:2]}')
trace = os.path.join(tmp, 'trace.txt')
with open(trace, 'w') as f:
    f.write('first line\n')
os.symlink('trace.txt', os.path.join(tmp, 'trace.link'))
rc, lines = run({'PALLOC_TRACE': '1', 'PALLOC_TRACE_FILE': os.path.join(tmp, 'trace.link')})
with open(trace) as f:
    text = f.read()
check(rc == 0 and os.path.islink(os.path.join(tmp, 'trace.link')) and
      text.startswith('first line\n') and 'what-if GC summary' in text,
      f'PALLOC_TRACE_FILE=symlink: appended to its target (stderr={lines})')

# 7. a directory: one palloc: line
d = os.path.join(tmp, 'dir')
os.mkdir(d)
rc, lines = run({'PALLOC_PROFILE': d})
check(rc == 0 and len(lines) == 1 and lines[0].startswith('palloc: ') and os.path.isdir(d)
      and not leftovers(),
      f'directory: one palloc: line: {lines}')

# 8. a character device of our own (root only: mknod)
mine = os.path.join(tmp, 'null')
try:
    os.mknod(mine, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
except OSError as e:
    print(f'skip private character device: {e}')
    mine = None
if mine:
    before = os.lstat(mine)
    rc, lines = run({'PALLOC_PROFILE': mine})
    after = os.lstat(mine)
    check(rc == 0 and not lines and stat.S_ISCHR(after.st_mode) and
          after.st_ino == before.st_ino and after.st_rdev == before.st_rdev,
          f'private character device (1,3): the same node after (stderr={lines})')

# 9. /dev/null and /dev/full, only if nothing above replaced what it was given
if failures:
    print('skip /dev/null and /dev/full: this palloc replaces what it is given')
else:
    for dev, want_lines in (('/dev/null', 0), ('/dev/full', 1)):
        before = os.lstat(dev)
        rc, lines = run({'PALLOC_PROFILE': dev})
        after = os.lstat(dev)
        check(rc == 0 and len(lines) == want_lines and stat.S_ISCHR(after.st_mode) and
              (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev),
              f'{dev}: the same device after, {len(lines)} palloc: lines: {lines}')

print('FAIL' if failures else 'PASS')
sys.exit(1 if failures else 0)
