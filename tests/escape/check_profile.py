#!/usr/bin/env python3
"""check_profile.py TOOL PROG PROG_SOURCE WORKDIR - the profile join on a real profile.

PROG (tests/escape/prog.c linked with libpalloc) is run twice with PALLOC_SAMPLE_RATE=1, so
every allocation is sampled: once with libpalloc's own symbolization (file:line in the
profile), once with PALLOC_SYMBOLIZE=none (addresses only: palloc-escape must symbolize them
with libdw). Both times the stack candidates must come out ranked by alloc_space with the exact
counts prog.c makes, the never-called candidate last and unsampled, and the escaping site
(the biggest allocator) absent from the ranking.
"""
import json
import re
import os
import subprocess
import sys

tool, prog, src, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)
# (function, size, calls) of prog.c's stack candidates, biggest alloc_space first
EXPECTED = [('hot', 64, 1000), ('warm', 64, 100), ('rare', 2000, 3)]
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
    recs = json.loads(p.stdout)
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
    if 'escaping' in funcs:
        failures.append(f'{symbolize}: an escaping allocation was ranked')
    m = re.search(r'\((\d+) frames symbolized with libdw\)', p.stderr)
    nsym = int(m.group(1)) if m else -1
    # without names in the profile, the frames of the four sites went through libdw
    if symbolize == 'none' and nsym < 4:
        failures.append(f'{symbolize}: too few frames symbolized by libdw: {p.stderr.strip()}')
    # the text form carries the same figures
    t = subprocess.run([tool, '--profile', prof, src], capture_output=True, text=True, timeout=60)
    first = t.stdout.splitlines()[0] if t.stdout else ''
    if 'alloc_space=64000 alloc_objects=1000' not in first:
        failures.append(f'{symbolize}: text output first line: {first}')


check('libdw')
check('none')
for f in failures:
    print(f)
print('profile join:', 'FAIL' if failures else 'ok')
sys.exit(1 if failures else 0)
