#!/usr/bin/env python3
"""check_profile.py TOOL PROG PROG_SOURCE WORKDIR [MKLIFE] - the profile join on a real profile.

PROG (tests/escape/prog.c linked with libpalloc) is run twice with PALLOC_SAMPLE_RATE=1, so
every allocation is sampled: once with libpalloc's own symbolization (file:line in the
profile), once with PALLOC_SYMBOLIZE=none (addresses only: palloc-escape must symbolize them
with libdw). Both times the stack candidates must come out ranked by alloc_space with the exact
counts prog.c makes (the allocation wrapper's bytes at its caller's call), the never-called
candidate last and unsampled, then the escaping sites with their bytes, reason and flow.
With MKLIFE (tests/escape/mklife.c), a lifetime profile of prog.c's sites is joined too
(--lifetimes): mean lifetimes and temporaries per site, the shortest-lived hot site first.
"""
import json
import re
import os
import subprocess
import sys

tool, prog, src, work = sys.argv[1:5]
mklife = sys.argv[5] if len(sys.argv) > 5 else None
os.makedirs(work, exist_ok=True)
# (function, size, calls) of prog.c's stack candidates, biggest alloc_space first
EXPECTED = [('main', 256, 500), ('hot', 64, 1000), ('warm', 64, 100), ('rare', 2000, 3)]
failures = []


def check(symbolize):
    prof = os.path.join(work, f'escape-heap-{symbolize}.pb.gz')
    env = dict(os.environ, PALLOC_PROFILE=prof, PALLOC_SAMPLE_RATE='1', PALLOC_SYMBOLIZE=symbolize)
    if os.path.exists(prof):
        os.remove(prof)
    subprocess.run([prog], env=env, check=True, capture_output=True, timeout=60)
    if not os.path.exists(prof):
        failures.append(f'{symbolize}: the program wrote no profile')
        return
    p = subprocess.run([tool, '--profile', prof, '--json', src], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        failures.append(f'{symbolize}: exit {p.returncode}: {p.stderr}')
        return
    allrecs = json.loads(p.stdout)
    recs = [r for r in allrecs if not r['escapes']]
    hot = [r for r in allrecs if r['escapes']]
    funcs = [r['function'] for r in recs]
    want = [e[0] for e in EXPECTED] + ['never']
    if funcs != want:
        failures.append(f'{symbolize}: ranking {funcs}, want {want}')
    for r, (fn, size, calls) in zip(recs, EXPECTED):
        if r.get('alloc_objects') != calls or r.get('alloc_space') != size * calls:
            failures.append(f'{symbolize}: {fn}: alloc_objects={r.get("alloc_objects")} '
                            f'alloc_space={r.get("alloc_space")}, want {calls} and {size * calls}')
        if r['escapes']:
            failures.append(f'{symbolize}: {fn} ranked but escapes')
    if recs and 'alloc_space' in recs[-1]:
        failures.append(f'{symbolize}: the never-called candidate has samples: {recs[-1]}')
    if [(r['function'], r.get('alloc_space'), r.get('reason')) for r in hot] != \
            [('stored', 200 * 512, 'stored to static ring'),
             ('swap_slot', 20 * 1024, 'stored to static slot')] or not hot[0]['flow']:
        failures.append(f'{symbolize}: escaping hot sites: {hot}')
    m = re.search(r'(\d+) frames symbolized with libdw', p.stderr)
    nsym = int(m.group(1)) if m else -1
    # without names in the profile, the frames of the four sites went through libdw
    if symbolize == 'none' and nsym < 4:
        failures.append(f'{symbolize}: too few frames symbolized by libdw: {p.stderr.strip()}')
    # the text form carries the same figures
    t = subprocess.run([tool, '--profile', prof, src], capture_output=True, text=True, timeout=60)
    lines = t.stdout.splitlines()
    want_lines = [r'^stack candidates, by bytes allocated:$',
                  r'prog\.c:\d+:\d+: escaping\(i\) does not escape: 125 KiB in 500 allocations',
                  r'prog\.c:\d+:\d+: malloc\(64\) does not escape: 62\.5 KiB in 1000 allocations',
                  r'^escaping allocation sites, by bytes allocated \(2 of 2\):$',
                  r'prog\.c:\d+:\d+: malloc\(512\): 100 KiB in 200 allocations: escapes to heap: '
                  r'stored to static ring$',
                  r'prog\.c:\d+:\d+:   from stored to static ring']
    for rx in want_lines:
        if not any(re.search(rx, l) for l in lines):
            failures.append(f'{symbolize}: text output lacks {rx}: {t.stdout}')


    if mklife and symbolize == 'libdw':
        check_lifetimes(prof)


def line_of(text):
    return next(i for i, l in enumerate(open(src).read().splitlines(), 1) if text in l)


def check_lifetimes(prof):
    life = os.path.join(work, 'escape-life.pb.gz')
    base = os.path.basename(src)
    ring, slot, hot = line_of('ring[i % 4] = malloc(512)'), line_of('slot = malloc(1024)'), \
        line_of('char *p = malloc(64); /* candidate')
    # ring: 196 freed, 10 ms each, none temporary; slot: 19 freed, 2 us each, all temporary
    subprocess.run([mklife, life, f'{base}:{ring}:stored:196:{196 * 10000000}:0',
                    f'{base}:{slot}:swap_slot:19:{19 * 2000}:19',
                    f'{base}:{hot}:hot:1000:{1000 * 500}:1000'], check=True)
    t = subprocess.run([tool, '--profile', prof, '--lifetimes', life, src], capture_output=True,
                       text=True, timeout=60)
    lines = t.stdout.splitlines()
    esc = [l for l in lines if 'escapes to heap' in l]
    if t.returncode != 0 or len(esc) != 2 or 'malloc(1024)' not in esc[0] or \
            'mean lifetime 2.0 us, 100% temporaries' not in esc[0] or \
            'mean lifetime 10.0 ms, 0% temporaries' not in esc[1] or \
            'the shortest-lived first' not in t.stdout or \
            not any('malloc(64) does not escape' in l and 'mean lifetime 500 ns' in l for l in lines):
        failures.append(f'--lifetimes: {t.stdout} {t.stderr}')
    j = subprocess.run([tool, '--profile', prof, '--lifetimes', life, '--json', src],
                       capture_output=True, text=True, timeout=60)
    recs = json.loads(j.stdout)
    if not any(r.get('lifetime_ns') == 19 * 2000 and r.get('temp_objects') == 19 for r in recs):
        failures.append(f'--lifetimes --json: {j.stdout}')
    u = subprocess.run([tool, '--lifetimes', life, src], capture_output=True, text=True, timeout=60)
    if u.returncode != 2:
        failures.append(f'--lifetimes without --profile: exit {u.returncode}')


check('libdw')
check('none')
for f in failures:
    print(f)
print('profile join:', 'FAIL' if failures else 'ok')
sys.exit(1 if failures else 0)
