#!/usr/bin/env python3
"""vs_pprof.py PALLOC PPROF MKPROFILE [DEMO LIBPALLOC [GO]] - `palloc top` and `palloc diff` against
upstream pprof on the same profiles.

Profiles: synthetic heap profiles (inlined frames, recursion, nameless frames, C++ names, a
default_sample_type) from mkprofile, and, if DEMO and LIBPALLOC are given, real ones of the demo
under libpalloc: sampled, exact (rate 1) and unsymbolized (names become "[palloc-demo]"); and
if GO is given, a Go heap profile written by runtime/pprof (goheap.go).
For every profile and option set, both tables are parsed and every row must match: name and
inline label, flat, flat%, sum%, cum, cum% (as printed, i.e. same unit choice and rounding),
plus the "Showing nodes" and "Dropped" lines. `palloc diff --unit B` must give, for every
function, pprof's `-diff_base` flat and cum exactly.
"""
import os
import re
import subprocess
import sys
import tempfile

palloc, pprof, mkprofile = sys.argv[1:4]
demo = sys.argv[4] if len(sys.argv) > 5 else None
libpalloc = sys.argv[5] if len(sys.argv) > 5 else None
go = sys.argv[6] if len(sys.argv) > 6 else None
tmp = tempfile.mkdtemp(prefix='palloc-vs-pprof.')
failures = 0
rows_compared = 0
inline_rows = 0
ROW = re.compile(r'^\s*(\S+)\s+(\S+%)\s+(\S+%)\s+(\S+)\s+(\S+%)\s+(.*)$')


def run(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit('%s failed (%d): %s' % (' '.join(cmd), r.returncode, r.stderr))
    return r.stdout


def table(text):
    """(summary lines, rows) of a -top output; header lines before 'Showing' are ignored."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith('Showing nodes'))
    summary = [l for l in lines[start:] if l.startswith(('Showing', 'Dropped'))]
    head = next(i for i, l in enumerate(lines) if l.strip().startswith('flat  flat%'))
    rows = []
    for l in lines[head + 1:]:
        m = ROW.match(l)
        if not m:
            raise SystemExit('unparsable row: %r' % l)
        rows.append(m.groups())
    return summary, rows


def compare_top(profile, popts, gopts):
    global failures, rows_compared, inline_rows
    mine = run([palloc, 'top'] + popts + [profile])
    theirs = run([pprof, '-top', '-symbolize=none'] + gopts + [profile])
    (ms, mr), (ts, tr) = table(mine), table(theirs)
    what = '%s %s' % (os.path.basename(profile), ' '.join(popts) or '(defaults)')
    if ms != ts:
        print('MISMATCH %s summary:\n  palloc: %s\n  pprof:  %s' % (what, ms, ts))
        failures += 1
    if len(mr) != len(tr):
        print('MISMATCH %s: %d rows, pprof %d' % (what, len(mr), len(tr)))
        failures += 1
    for a, b in zip(mr, tr):
        if a != b:
            print('MISMATCH %s row:\n  palloc: %s\n  pprof:  %s' % (what, a, b))
            failures += 1
        rows_compared += 1
        inline_rows += 'inline)' in a[5]
    print('ok' if mr == tr and ms == ts else 'FAIL', what, '-', len(mr), 'rows')


VARIANTS = [([], []), (['--cum'], ['-cum']), (['-n', '4'], ['-nodecount=4']),
            (['--all'], ['-nodefraction=0']), (['--unit', 'B', '--all'], ['-unit=B', '-nodefraction=0'])]
INDEXES = ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space']

profiles = []
for kind, seed, n in (('heap', 1, 400), ('heap', 7, 3000), ('default', 3, 800)):
    path = os.path.join(tmp, '%s-%d.pb.gz' % (kind, seed))
    run([mkprofile, kind, path, str(n), str(seed)])
    profiles.append(path)
if demo:
    for name, extra in (('demo-sampled', {}), ('demo-exact', {'PALLOC_SAMPLE_RATE': '1'}),
                        ('demo-unsymbolized', {'PALLOC_SYMBOLIZE': 'none'})):
        path = os.path.join(tmp, name + '.pb.gz')
        env = dict(os.environ, LD_PRELOAD=libpalloc, PALLOC_PROFILE=path, **extra)
        run([demo], env=env)
        profiles.append(path)

if go:
    exe = os.path.join(tmp, 'goheap')
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'goheap.go')
    env = dict(os.environ, GO111MODULE='off', GOCACHE=os.path.join(tmp, 'gocache'),
               GOPATH=os.path.join(tmp, 'gopath'), GOFLAGS='')
    run([go, 'build', '-o', exe, src], env=env)
    path = os.path.join(tmp, 'go-heap.pb.gz')
    run([exe, path])
    profiles.append(path)

for prof in profiles:
    for popts, gopts in VARIANTS:
        compare_top(prof, popts, gopts)
    for si in INDEXES:
        compare_top(prof, ['--sample-index', si], ['-sample_index=' + si])

# diff: every changed function's flat and cum growth equals pprof -diff_base's flat and cum.
base, grown = os.path.join(tmp, 'base.pb.gz'), os.path.join(tmp, 'grown.pb.gz')
run([mkprofile, 'heap', base, '1500', '5'])
run([mkprofile, 'grown', grown, '1500', '5'])
for si in ('inuse_space', 'alloc_objects'):
    out = run([palloc, 'diff', '--unit', 'B', '--sample-index', si, base, grown])
    lines = out.splitlines()
    head = next(i for i, l in enumerate(lines) if l.strip().startswith('flat+'))
    mine = {}
    for l in lines[head + 1:]:
        f = l.split(None, 4)
        mine[f[4]] = (int(f[0].rstrip('B') or 0), int(f[1].rstrip('B') or 0))
    theirs = {}
    _, rows = table(run([pprof, '-top', '-symbolize=none', '-nodefraction=0', '-unit=B',
                         '-sample_index=' + si, '-diff_base=' + base, grown]))
    for r in rows:
        name = re.sub(r' \((partial-)?inline\)$', '', r[5])
        theirs[name] = (int(r[0].rstrip('B')), int(r[3].rstrip('B')))
    theirs = {k: v for k, v in theirs.items() if v != (0, 0)}
    ok = mine == theirs and len(mine) > 3
    if not ok:
        failures += 1
        for k in sorted(set(mine) | set(theirs)):
            if mine.get(k) != theirs.get(k):
                print('MISMATCH diff %s %s: palloc %s pprof %s' % (si, k, mine.get(k), theirs.get(k)))
    print('ok' if ok else 'FAIL', 'diff', si, '-', len(mine), 'functions')

# --fail-over makes diff a check: exit 1 over the limit (growth is > 1 GB here), 0 under it
for limit, want in (('1MiB', 1), ('100000GiB', 0)):  # libpalloc's sizes: GB is refused
    r = subprocess.run([palloc, 'diff', '--fail-over', limit, base, grown], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    ok = r.returncode == want and (want == 0 or 'more than the limit' in r.stderr)
    failures += not ok
    print('ok' if ok else 'FAIL', 'diff --fail-over', limit, '-> exit', r.returncode)

print('%d rows compared, %d with inline labels, %d mismatches' % (rows_compared, inline_rows, failures))
if rows_compared < 100 or inline_rows == 0:
    print('FAIL: too few rows compared to mean anything')
    sys.exit(1)
sys.exit(1 if failures else 0)
