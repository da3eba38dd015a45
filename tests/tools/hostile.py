#!/usr/bin/env python3
"""hostile.py PALLOC - the views given profiles made to hurt them: every command answers within
seconds, with output or one "palloc:" line, never a crash, a hang, unbounded reading or a
sanitizer report (the sanitize suite runs this on the ASan+UBSan build).

The profiles are encoded here (profile.proto's wire format, by hand) because they hold what
mkprofile's writer would never produce: values of +-2^63, line numbers of +-2^63, source files
that are a FIFO, /dev/zero, a directory, or a 512 MiB file with three lines; mappings of such files for symbolize; a lifetime profile
of 100k distinct stacks (top --lifetimes compared stacks pairwise: 25 s).
"""
import gzip, os, resource, subprocess, sys, tempfile, time

palloc = os.path.realpath(sys.argv[1])
d = tempfile.mkdtemp(prefix='palloc-hostile-')
failures = []
I64MIN, I64MAX = -(1 << 63), (1 << 63) - 1


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7f, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def vi(f, n): return varint(f << 3) + varint(n)
def ld(f, b): return varint(f << 3 | 2) + varint(len(b)) + b
def packed(f, ns): return ld(f, b''.join(varint(n) for n in ns))


def profile(path, samples, funcs, locs, types=(('alloc_space', 'bytes'), ('inuse_space', 'bytes')),
            period=524288, mapping=None):
    """samples: (location ids, values); funcs: (id, name, file); locs: (id, address, [(func, line)]);
    mapping: the file of a mapping 1 (0x400000-0x500000) that every location is in"""
    strs = {'': 0}
    def s(x):
        return strs.setdefault(x, len(strs))
    b = bytearray()
    for t, u in types:
        b += ld(1, vi(1, s(t)) + vi(2, s(u)))
    for stk, vals in samples:
        b += ld(2, packed(1, stk) + packed(2, vals))
    if mapping:
        b += ld(3, vi(1, 1) + vi(2, 0x400000) + vi(3, 0x500000) + vi(5, s(mapping)))
    for lid, addr, lines in locs:
        b += ld(4, vi(1, lid) + (vi(2, 1) if mapping else b'') + vi(3, addr) + b''.join(ld(4, vi(1, f) + vi(2, ln)) for f, ln in lines))
    for fid, name, fname in funcs:
        b += ld(5, vi(1, fid) + vi(2, s(name)) + vi(3, s(name)) + vi(4, s(fname)))
    b += ld(11, vi(1, s('space')) + vi(2, s('bytes'))) + vi(12, period)
    for x in strs:
        b += ld(6, x.encode())
    with open(path, 'wb') as f:
        f.write(gzip.compress(bytes(b)))


def run(args, want_rc=None, timeout=20):
    """Runs palloc with args; checks it ends in time, without a signal or a sanitizer report.
    Returns (rc, stdout, stderr, its max RSS in KiB)."""
    t0 = time.time()
    with open(os.path.join(d, 'out'), 'wb') as o, open(os.path.join(d, 'err'), 'wb') as e:
        p = subprocess.Popen([palloc] + args, stdout=o, stderr=e, stdin=subprocess.DEVNULL, cwd=d)
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.time() - t0 > timeout:
            p.kill()
            os.wait4(p.pid, 0)
            failures.append(f'{args}: still running after {timeout} s')
            return None, '', '', 0
        time.sleep(0.02)
    rc = os.waitstatus_to_exitcode(status)
    out = open(os.path.join(d, 'out'), errors='replace').read()
    err = open(os.path.join(d, 'err'), errors='replace').read()
    what = f'{" ".join(args)[:100]} ({time.time() - t0:.1f} s)'
    if rc < 0 or rc >= 128:
        failures.append(f'{what}: killed by signal / crashed (rc {rc}): {err[-500:]}')
    elif 'runtime error' in err or 'Sanitizer' in err:
        failures.append(f'{what}: sanitizer report: {err[-800:]}')
    elif want_rc is not None and rc != want_rc:
        failures.append(f'{what}: exit {rc}, want {want_rc}: {err[-300:]}')
    else:
        print(f'ok: {what}: exit {rc}')
    return rc, out, err, ru.ru_maxrss


# ---- palloc list: source files named by the profile ------------------------------------------
fifo = os.path.join(d, 'fifo.c')
os.mkfifo(fifo)
big = os.path.join(d, 'big.c')  # 512 MiB, its three lines first (sparse: no disk used)
with open(big, 'wb') as f:
    f.write(b'one\ntwo\nthree\n')
    f.truncate(512 << 20)
sources = {'zero': '/dev/zero', 'fifo': fifo, 'dir': d, 'big': big}
funcs = [(i + 1, name, path) for i, (name, path) in enumerate(sources.items())]
funcs += [(9, 'lowline', big), (10, 'highline', big)]
locs = [(i + 1, 0x1000 * (i + 1), [(i + 1, 2)]) for i in range(len(sources))]
locs += [(9, 0x9000, [(9, I64MIN)]), (10, 0xa000, [(10, I64MAX)])]
profile(os.path.join(d, 'src.pb.gz'), [([l[0]], [100, 100]) for l in locs], funcs, locs)
for name in ('zero', 'fifo', 'dir'):
    rc, out, err, _ = run(['list', f'^{name}$', 'src.pb.gz'], want_rc=0)
    if rc == 0 and f'Error: open {sources[name]}: not a regular file' not in out:
        failures.append(f'list {name}: no " Error: open {sources[name]}: not a regular file" line:\n{out}')
# the big file: its three lines, without reading (and holding) the other 512 MiB
rc, out, err, rss = run(['list', '^big$', 'src.pb.gz'], want_rc=0)
if rc == 0 and ('2:two' not in out or '3:three' not in out):
    failures.append(f'list big: lines missing:\n{out}')
if rss > 400 << 10:
    failures.append(f'list big: max RSS {rss >> 10} MiB for three lines of a 512 MiB file')
# line numbers at the ends of int64
run(['list', 'line$', 'src.pb.gz'], want_rc=0)
for g in ('--lines', '--files', '--addresses'):
    run(['top', g, 'src.pb.gz'], want_rc=0)
    run(['peek', g, '.', 'src.pb.gz'], want_rc=0)

# ---- values whose sums overflow int64 --------------------------------------------------------
funcs = [(1, 'main', 'main.c'), (2, 'leaf', 'leaf.c')]
locs = [(1, 0x1000, [(1, 10)]), (2, 0x2000, [(2, 3)])]
profile(os.path.join(d, 'ovf.pb.gz'),
        [([2, 1], [I64MAX, I64MIN]), ([2, 1], [I64MAX, I64MIN]), ([1], [I64MIN, 5])], funcs, locs)
profile(os.path.join(d, 'ok.pb.gz'), [([2, 1], [100, 50])], funcs, locs)
for args in (['top'], ['top', '--lines'], ['peek', '.'], ['list', '.'], ['folded'], ['flame'],
             ['diff', 'ok.pb.gz'], ['flame', '--base', 'ok.pb.gz'], ['top', '-i', 'alloc_space']):
    rc, out, err, _ = run(args + ['ovf.pb.gz'], want_rc=1)
    if rc == 1 and not ('ovf.pb.gz' in err and 'too large' in err and err.count('\n') == 1):
        failures.append(f'{args}: want one line naming ovf.pb.gz and "too large": {err}')

# ---- regular expressions: huge, never matching -----------------------------------------------
huge = '(' + '|'.join(f'fn{i}' for i in range(3000)) + ')'
for args in (['top', '--focus', huge], ['top', '--hide', huge], ['top', '--show', 'nomatch^'],
             ['top', '--ignore', '.'], ['peek', huge], ['list', 'nomatch^'],
             ['flame', '--focus', huge]):
    run(args + ['ok.pb.gz'], timeout=60)

# ---- a lifetime profile of 100k distinct stacks: top --lifetimes/--temporaries in seconds ----
ltypes = [('freed_objects', 'count'), ('freed_space', 'bytes'), ('lifetime', 'nanoseconds'),
          ('temp_objects', 'count'), ('temp_space', 'bytes'), ('live_objects', 'count'),
          ('live_space', 'bytes'), ('live_age', 'nanoseconds')]
n = 100000
profile(os.path.join(d, 'life.pb.gz'), [([i + 1], [1, 8, 100, 1, 8, 0, 0, 0]) for i in range(n)],
        [(i + 1, f'f{i}', 'x.c') for i in range(n)], [(i + 1, 0x1000 + i, [(i + 1, 1)]) for i in range(n)],
        types=ltypes, period=1)
for g in ('--lifetimes', '--temporaries'):
    rc, out, err, _ = run(['top', g, '-n', '3', 'life.pb.gz'], want_rc=0, timeout=10)
    if rc == 0 and out.count('\n') < 5:
        failures.append(f'top {g}: too few rows:\n{out}')

# ---- palloc symbolize: a mapping whose file is a FIFO, a device, a directory -----------------
def mapped(path, fname):
    """a profile of two unsymbolized addresses in a mapping of fname"""
    b = profile(path, [([1, 2], [100, 100])], [], [(1, 0x401000, []), (2, 0x401100, [])],
                mapping=fname)
for name, fname in (('fifo', fifo), ('zero', '/dev/zero'), ('dir', d)):
    mapped(os.path.join(d, f'map_{name}.pb.gz'), fname)
    rc, out, err, _ = run(['symbolize', f'map_{name}.pb.gz', f'out_{name}.pb.gz'], want_rc=0, timeout=10)
    if rc == 0 and f'{fname}: cannot read the binary (not a regular file)' not in err:
        failures.append(f'symbolize {name}: want "{fname}: cannot read the binary (not a regular file)": {err}')

if failures:
    print('FAIL:\n' + '\n'.join(failures))
    sys.exit(1)
print('all hostile inputs answered')
