#!/usr/bin/env python3
"""Real programs under LD_PRELOAD=libpalloc.so give the same output and exit code as a plain run,
and leave readable profiles (one per process: PALLOC_PROFILE=...%p...).
  - python3 running a few stdlib modules (json, re, sqlite3, decimal, hashlib, zlib, threads);
  - python3 exiting with status 3 (exit codes pass through);
  - sort of a 100 MB file (large buffers, many small allocations);
  - gcc compiling a C file (a driver and its children cc1 and as: fork + exec);
  - a C++ program (new/delete, containers, exceptions), and the same program's `ops` mode at
    rate 1: every operator new and delete, their contracts, and 8,000 objects new'd at one site
    that the profile must count exactly (palloc's own operators, cxxops.c);
  - a program that allocates before constructors, in a library constructor, in threads started
    by a constructor and in exit handlers, at rate 1 (every allocation sampled and unwound);
  - bad PALLOC_* values: one "palloc:" line each, and the program runs on with its defaults.
usage: check_programs.py LIBPALLOC_SO CXX_PROGRAM EARLY_PROGRAM TMPDIR
"""
import glob, hashlib, os, random, shutil, subprocess, sys

libso, cxx_prog, early_prog, tmp = sys.argv[1:5]
os.makedirs(tmp, exist_ok=True)
failures = []

PY = r'''
import json, re, collections, sqlite3, decimal, hashlib, zlib, threading
d = {"k%d" % i: [i, str(i) * 3, {"x": i / 7}] for i in range(20000)}
s = json.dumps(d, sort_keys=True)
print(len(s), hashlib.sha256(s.encode()).hexdigest())
print(len(re.findall(r"k\d+7", s)))
db = sqlite3.connect(":memory:")
db.execute("create table t (a integer, b text)")
db.executemany("insert into t values (?, ?)", ((i, str(i) * 5) for i in range(50000)))
print(db.execute("select count(*), sum(a), max(length(b)) from t").fetchone())
decimal.getcontext().prec = 200
print(str(decimal.Decimal(1) / decimal.Decimal(7))[:60])
print(len(zlib.compress(s.encode() * 4)))
c = collections.Counter(s)
print(c.most_common(3))
out = []
def work(n): out.append(sum(len(str(i)) for i in range(n)))
ts = [threading.Thread(target=work, args=(200000,)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sorted(out))
'''

C_SRC = r'''
#include <stdio.h>
#include <stdlib.h>
struct node { struct node *next; int v; };
static int sum(struct node *n) { int s = 0; for (; n; n = n->next) s += n->v; return s; }
int main(int argc, char **argv) {
  struct node *h = NULL;
  for (int i = 0; i < argc * 1000; i++) { struct node *n = malloc(sizeof *n); n->v = i; n->next = h; h = n; }
  printf("%d\n", sum(h));
  return 0;
}
'''


def run(name, cmd, preload, extra_env=None, **kw):
    env = dict(os.environ)
    env.pop('LD_PRELOAD', None)
    if extra_env:
        env.update(extra_env)
    if preload:
        env['LD_PRELOAD'] = libso
        env['PALLOC_PROFILE'] = os.path.join(tmp, f'{name}.%p.pb.gz')
    return subprocess.run(cmd, env=env, capture_output=True, timeout=600, **kw)


def compare(name, cmd, expect_code=0, extra_env=None, note=None, **kw):
    for f in glob.glob(os.path.join(tmp, f'{name}.*.pb.gz')):
        os.unlink(f)
    plain = run(name, cmd, False, **kw)
    pre = run(name, cmd, True, extra_env, **kw)
    ok = True
    if plain.returncode != expect_code:
        failures.append(f'{name}: plain run exited {plain.returncode}: {plain.stderr[-300:]!r}')
        ok = False
    if pre.returncode != plain.returncode:
        failures.append(f'{name}: exit {pre.returncode} under palloc, {plain.returncode} plain')
        ok = False
    if pre.stdout != plain.stdout:
        failures.append(f'{name}: stdout differs under palloc')
        ok = False
    err = pre.stderr
    if note:  # exactly one line starting with note is palloc's, the rest the program's
        lines = err.splitlines(keepends=True)
        kept = [l for l in lines if not l.startswith(note)]
        if len(kept) != len(lines) - 1:
            failures.append(f'{name}: want one {note!r} line: {err[-300:]!r}')
            ok = False
        err = b''.join(kept)
    if err != plain.stderr:
        failures.append(f'{name}: stderr differs under palloc: {pre.stderr[-300:]!r}')
        ok = False
    profiles = glob.glob(os.path.join(tmp, f'{name}.*.pb.gz'))
    if not profiles:
        failures.append(f'{name}: no profile written')
        ok = False
    for p in profiles:
        r = subprocess.run(['go', 'tool', 'pprof', '-raw', p], capture_output=True, text=True,
                           env=dict(os.environ, HOME=tmp), timeout=120)
        if r.returncode != 0 or 'PeriodType: space bytes' not in r.stdout:
            failures.append(f'{name}: {p} not readable: {r.stderr[-300:]}')
            ok = False
    print(('ok   ' if ok else 'FAIL ') + f'{name}: exit {pre.returncode}, '
          f'{len(pre.stdout)} bytes of output, {len(profiles)} profile(s)')


compare('python', ['python3', '-c', PY])
compare('python-exit3', ['python3', '-c', 'import sys; print("bye"); sys.exit(3)'], expect_code=3)

big = os.path.join(tmp, 'sort-input.txt')
if not os.path.exists(big) or os.path.getsize(big) < 100 * 1000 * 1000:
    rnd = random.Random(7)
    with open(big, 'w') as f:
        written = 0
        while written < 100 * 1000 * 1000:
            line = ''.join(rnd.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(rnd.randint(5, 120))) + '\n'
            chunk = line * 20
            f.write(chunk)
            written += len(chunk)
compare('sort', ['sort', '-S', '64M', big])

src = os.path.join(tmp, 'prog.c')
with open(src, 'w') as f:
    f.write(C_SRC)
gcc = shutil.which('gcc') or 'cc'
compare('gcc', [gcc, '-O2', '-g', '-S', src, '-o', '-'])  # cc1 writes the assembly to stdout
compare('cxx', [cxx_prog])
compare('cxx-ops', [cxx_prog, 'ops'], extra_env={'PALLOC_SAMPLE_RATE': '1'})
for p in glob.glob(os.path.join(tmp, 'cxx-ops.*.pb.gz')):
    r = subprocess.run(['go', 'tool', 'pprof', '-top', '-sample_index=alloc_objects', cxx_prog, p],
                       capture_output=True, text=True, env=dict(os.environ, HOME=tmp), timeout=120)
    counts = [l.split()[0] for l in r.stdout.splitlines() if l.endswith(' new_object_here')]
    if counts != ['8000']:
        failures.append(f'cxx-ops: new_object_here alloc_objects {counts}, want [8000]: {r.stdout[-600:]}')
    print(('ok   ' if counts == ['8000'] else 'FAIL ') + f'cxx-ops: new_object_here alloc_objects {counts}')
# early_prog is built without frame pointers (-O2): with fp, palloc says so, once.
for unwind in ('libunwind', 'fp'):
    compare(f'early-{unwind}', [early_prog],
            extra_env={'PALLOC_SAMPLE_RATE': '1', 'PALLOC_UNWIND': unwind},
            note=b'palloc: PALLOC_UNWIND=fp: ' if unwind == 'fp' else None)

# Bad values: each gives exactly one palloc: line on stderr; output and exit code unchanged.
# gcsim's variables are reported with PALLOC_TRACE off too; a usable signal name that cannot be
# used says why, not "not a signal name"; a quoting slip (" 512", "+3") is not a number.
def bad_values(name, bad, wrong_words=()):
    plain = run(name, [early_prog], False)
    pre = run(name, [early_prog], True, bad)
    lines = pre.stderr.decode().splitlines()
    ok = pre.returncode == plain.returncode and pre.stdout == plain.stdout
    for var, val in bad.items():
        hits = [l for l in lines if l.startswith('palloc: ') and f'{var}={val}' in l]
        if len(hits) != 1:
            ok = False
            failures.append(f'bad {var}={val}: {len(hits)} palloc: lines (want 1): {lines}')
    for var, words in wrong_words:
        if any(var in l and words in l for l in lines):
            ok = False
            failures.append(f'bad {var}: says "{words}": {lines}')
    if len(lines) != len(bad):
        ok = False
        failures.append(f'{name}: {len(lines)} stderr lines for {len(bad)} bad values: {lines}')
    print(('ok   ' if ok else 'FAIL ') + f'{name}: {len(lines)} palloc: lines, program unaffected')


bad_values('bad', {'PALLOC_SAMPLE_RATE': 'lots', 'PALLOC_STACK_DEPTH': '500',
                   'PALLOC_UNWIND': 'magic', 'PALLOC_SYMBOLIZE': 'maybe', 'PALLOC_SEED': 'x1',
                   'PALLOC_PROFILE_SIGNAL': 'SIGNOPE', 'PALLOC_PROFILE_INTERVAL': '-3',
                   'PALLOC_TCACHE': 'sometimes', 'PALLOC_TRACE': 'bogus', 'PALLOC_GOGC': 'abc',
                   'PALLOC_MEMLIMIT': '1GB', 'PALLOC_TRACE_MARKRATE': 'fast'})
bad_values('bad2', {'PALLOC_SAMPLE_RATE': ' 512', 'PALLOC_STACK_DEPTH': ' 8',
                    'PALLOC_SEED': '-1', 'PALLOC_PROFILE_SIGNAL': 'KILL',
                    'PALLOC_PROFILE_INTERVAL': '+3', 'PALLOC_TRACE': '7'},
           wrong_words=[('PALLOC_PROFILE_SIGNAL', 'not a signal name')])
bad_values('bad3', {'PALLOC_PROFILE_SIGNAL': 'SEGV', 'PALLOC_SAMPLE_RATE': '512 '},
           wrong_words=[('PALLOC_PROFILE_SIGNAL', 'not a signal name')])

print(f'{len(failures)} failures')
for f in failures:
    print('FAIL:', f)
sys.exit(1 if failures else 0)
