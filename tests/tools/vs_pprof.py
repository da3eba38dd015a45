#!/usr/bin/env python3
"""vs_pprof.py PALLOC PPROF MKPROFILE [DEMO LIBPALLOC [GO]] - `palloc top`, `diff`, `peek` and
`list` against upstream pprof on the same profiles, with every granularity and filter option.

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
# palloc's ±flat column (sampling error, which pprof does not have) is skipped
ROW = re.compile(r'^\s*(\S+)\s+(?:(?:±\S+|-)\s+)?(\S+%)\s+(\S+%)\s+(\S+)\s+(\S+%)\s+(.*)$')
VERSION = re.compile(r'@@?[A-Za-z_][A-Za-z0-9_.]*(?= |$)')


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
    head = next(i for i, l in enumerate(lines) if re.match(r'\s*flat\s+(±flat\s+)?flat%', l))
    rows = []
    for l in lines[head + 1:]:
        m = ROW.match(l)
        if not m:
            raise SystemExit('unparsable row: %r' % l)
        rows.append(m.groups())
    return summary, rows


def compare_top(profile, popts, gopts, symbolize='none', unversion=False):
    """palloc top POPTS vs pprof -top GOPTS. palloc shows unnamed frames one per address where
    pprof merges them per binary: --group-unnamed asks for pprof's rows (checked separately
    below). unversion: palloc drops "@@GLIBC_2.2.5" from names, pprof does not."""
    global failures, rows_compared, inline_rows
    mine = run([palloc, 'top', '--group-unnamed'] + popts + [profile])
    theirs = run([pprof, '-top', '-symbolize=' + symbolize] + gopts + [profile])
    (ms, mr), (ts, tr) = table(mine), table(theirs)
    if unversion:
        tr = [r[:5] + (VERSION.sub('', r[5]),) for r in tr]
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
for kind, seed, n in (('heap', 1, 400), ('heap', 7, 3000), ('default', 3, 800), ('tinyedge', 5, 400)):
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

# Granularities and filters, on the synthetic profiles (names, files, lines, inlined frames,
# nameless frames): every option against its pprof counterpart.
GRAN = [(['--files'], ['-files']), (['--lines'], ['-lines']), (['--addresses'], ['-addresses']),
        (['--functions', '--cum'], ['-functions', '-cum'])]
FILTERS = [(['--focus', 'parse|render'], ['-focus=parse|render']),
           (['--ignore', 'hash'], ['-ignore=hash']),
           (['--hide', 'inline|strdup'], ['-hide=inline|strdup']),
           (['--show', 'main|visit|walk'], ['-show=main|visit|walk']),
           (['--focus', 'json', '--ignore', 'cache', '--hide', '^main$'],
            ['-focus=json', '-ignore=cache', '-hide=^main$']),
           (['--focus', 'libfoo'], ['-focus=libfoo']),   # a mapping's file name matches
           (['--hide', 'src/a'], ['-hide=src/a']),        # a source file name matches
           (['--lines', '--focus', 'visit', '--cum'], ['-lines', '-focus=visit', '-cum'])]
for prof in profiles[:3]:
    for popts, gopts in GRAN + FILTERS:
        compare_top(prof, popts, gopts)

# C++ names: demangled as pprof's demangle=full does them (parameters kept, clones merged),
# versions dropped; --no-demangle shows the symbols; --trim-wrappers is the --hide expression
# palloc prints under "Active filters".
cxx = os.path.join(tmp, 'cxx.pb.gz')
run([mkprofile, 'cxx', cxx, '1500', '11'])
for popts, gopts in VARIANTS + GRAN[1:] + [(['--focus', 'foo::'], ['-focus=foo::']),
                                            (['--hide', r'operator new\('], [r'-hide=operator new\('])]:
    compare_top(cxx, popts, gopts, symbolize='demangle=full', unversion=True)
compare_top(cxx, ['--no-demangle'], [], unversion=True)
out = run([palloc, 'top', '--all', cxx])
for want in ('foo::Cache::get(int) const', 'main::{lambda()#1}::operator()() const',
             'operator new(unsigned long)', '(anonymous namespace)::work()', '  strdup ',
             'std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >'):
    if want not in out.replace('\n', ' \n'):
        print('FAIL: no %r in palloc top of the C++ profile' % want)
        failures += 1
wrappers = next(l for l in run([palloc, 'top', '--trim-wrappers', cxx]).splitlines()
                if l.startswith('   hide='))[len('   hide='):]
for popts, gopts in ((['--trim-wrappers'], ['-hide=' + wrappers]),
                     (['--trim-wrappers', '--cum'], ['-hide=' + wrappers, '-cum'])):
    compare_top(cxx, popts, gopts, symbolize='demangle=full', unversion=True)
trimmed = table(run([palloc, 'top', '--all', '--trim-wrappers', cxx]))[1]
trimmed = '\n'.join(r[5] for r in trimmed)
for gone in ('xmalloc', 'g_malloc', 'operator new(unsigned long)', 'new_allocator'):
    if gone in trimmed:
        print('FAIL: --trim-wrappers left %s' % gone)
        failures += 1

# peek: the whole table after the header, line for line (pprof -peek).
def compare_peek(profile, regex, popts, gopts, symbolize='none', unversion=False):
    global failures, rows_compared
    mine = run([palloc, 'peek', '--group-unnamed'] + popts + [regex, profile]).splitlines()
    theirs = run([pprof, '-peek=' + regex, '-symbolize=' + symbolize] + gopts + [profile]).splitlines()
    mine = mine[next(i for i, l in enumerate(mine) if l.startswith('Showing')):]
    theirs = theirs[next(i for i, l in enumerate(theirs) if l.startswith('Showing')):]
    if unversion:
        theirs = [VERSION.sub('', l) for l in theirs]
    ok = mine == theirs and len(mine) > 5
    rows_compared += len(mine)
    failures += not ok
    print('ok' if ok else 'FAIL', 'peek', regex, os.path.basename(profile), ' '.join(popts), '-', len(mine), 'lines')
    if not ok:
        for a, b in zip(mine, theirs):
            if a != b:
                print('  palloc: %r\n  pprof:  %r' % (a, b))
                break
        print('  (%d lines, pprof %d)' % (len(mine), len(theirs)))


for prof in profiles[:3]:
    compare_peek(prof, 'visit|parse', [], [])
    compare_peek(prof, 'json_alloc', ['--cum', '--sample-index', 'alloc_space'], ['-cum', '-sample_index=alloc_space'])
    compare_peek(prof, 'deep', ['--lines'], ['-lines'])
    compare_peek(prof, 'main', ['--hide', 'inline'], ['-hide=inline'])
compare_peek(cxx, 'Cache|lambda', [], [], symbolize='demangle=full', unversion=True)
compare_peek(cxx, 'Pool|Render', ['--trim-wrappers'], ['-hide=' + wrappers], symbolize='demangle=full',
             unversion=True)

# list: the annotated source of the demo's functions (its source is on disk), line for line.
def compare_list(profile, regex, popts, gopts):
    global failures, rows_compared
    mine = run([palloc, 'list'] + popts + [regex, profile]).splitlines()
    theirs = run([pprof, '-list=' + regex, '-symbolize=none'] + gopts + [profile]).splitlines()
    ok = mine == theirs and sum(l.startswith('ROUTINE') for l in mine) >= 1 and len(mine) > 10
    rows_compared += len(mine)
    failures += not ok
    print('ok' if ok else 'FAIL', 'list', regex, os.path.basename(profile), ' '.join(popts), '-', len(mine), 'lines')
    if not ok:
        for a, b in zip(mine, theirs):
            if a != b:
                print('  palloc: %r\n  pprof:  %r' % (a, b))
                break
        print('  (%d lines, pprof %d)' % (len(mine), len(theirs)))


if demo:
    for name in ('demo-sampled', 'demo-exact'):
        prof = os.path.join(tmp, name + '.pb.gz')
        compare_list(prof, 'render|leak|parse', [], [])
        compare_list(prof, 'main', ['--sample-index', 'alloc_space'], ['-sample_index=alloc_space'])
        compare_list(prof, 'parse_request', ['--sample-index', 'alloc_objects', '--focus', 'main'],
                     ['-sample_index=alloc_objects', '-focus=main'])

# Unnamed frames: palloc shows one row per address (lib.so+0xOFFSET, the file offset) where
# pprof's functions view merges them into [lib.so]. pprof's -addresses view of an unsymbolized
# profile has one row per address too: the rows must be the same, with pprof's address turned
# into binary+offset through the profile's mappings (from pprof -raw).
def mappings(profile):
    maps = []
    for l in run([pprof, '-raw', '-symbolize=none', profile]).splitlines():
        m = re.match(r'^\s*\d+: 0x([0-9a-f]+)/0x([0-9a-f]+)/0x([0-9a-f]+) (\S+)', l)
        if m:
            maps.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16), m.group(4)))
    return maps


if demo:
    unsym = os.path.join(tmp, 'demo-unsymbolized.pb.gz')
    maps = mappings(unsym)

    def per_address(name):
        m = re.match(r'^([0-9a-f]{16}) \[(.*)\]$', name)
        if not m:
            return name
        a = int(m.group(1), 16)
        for start, limit, off, f in maps:
            if start <= a < limit and os.path.basename(f) == m.group(2):
                return '%s+0x%x' % (m.group(2), a - start + off)
        return name
    for popts, gopts in (([], []), (['--cum'], ['-cum']), (['--all'], ['-nodefraction=0'])):
        (ms, mr) = table(run([palloc, 'top'] + popts + [unsym]))
        (ts, tr) = table(run([pprof, '-top', '-symbolize=none', '-addresses'] + gopts + [unsym]))
        tr = [r[:5] + (per_address(r[5]),) for r in tr]
        key = lambda r: (r[5], r[0], r[1], r[3], r[4])  # sum% depends on the order of ties
        ok = ms == ts and sorted(map(key, mr)) == sorted(map(key, tr)) and len(mr) > 3
        ok = ok and all(re.match(r'^\S+\+0x[0-9a-f]+$', r[5]) for r in mr)
        rows_compared += len(mr)
        failures += not ok
        print('ok' if ok else 'FAIL', 'unnamed frames per address', ' '.join(popts), '-', len(mr), 'rows')
        if not ok:
            print('  palloc:', ms, mr[:5], '\n  pprof: ', ts, tr[:5])

# diff: every changed function's flat and cum growth equals pprof -diff_base's flat and cum.
base, grown = os.path.join(tmp, 'base.pb.gz'), os.path.join(tmp, 'grown.pb.gz')
run([mkprofile, 'heap', base, '1500', '5'])
run([mkprofile, 'grown', grown, '1500', '5'])
for si in ('inuse_space', 'alloc_objects'):
    out = run([palloc, 'diff', '--group-unnamed', '--unit', 'B', '--sample-index', si, base, grown])
    lines = out.splitlines()
    head = next(i for i, l in enumerate(lines) if l.strip().startswith('flat+'))
    mine = {}
    for l in lines[head + 1:]:
        m = re.match(r'^\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(±\S+) ([* ]) (.*)$', l)
        f = m.groups()
        mine[f[6]] = (int(f[0].rstrip('B') or 0), int(f[1].rstrip('B') or 0))
        # '*' marks exactly the changes beyond the noise column
        d, noise = abs(int(f[0].rstrip('B') or 0)), int(f[4].lstrip('±').rstrip('B') or 0)
        if (f[5] == '*') != (d > noise) and abs(d - noise) > 1:
            print('FAIL: diff marks %r (%s) against noise %s' % (f[6], f[5], f[4]))
            failures += 1
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
