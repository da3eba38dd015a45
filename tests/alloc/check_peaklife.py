#!/usr/bin/env python3
"""The peak-heap profile, the lifetime profile, their error bars and the leak gate, on peaklife.c:
  - peak: phase 1 holds 64 MiB from site_x then frees it (on 4 threads with "threads"), phase 2
    holds 16 MiB from site_y to exit. The peak profile shows site_x at 64 MiB within 4 standard
    errors and no site_y; the exit profile site_y only. Read by go tool pprof and upstream pprof;
    also in a forked child, and as the snapshot a signal asks for;
  - lifetimes: site_a freed at once, site_b after ~50 ms, site_c never: the order a < b, their
    magnitudes, c censored (live, never freed); the temporaries list site_a first, not site_b;
  - error bars: over 30 seeds, the leak report's 95% interval holds the true leaked bytes at
    least 25 times (a binomial(30, 0.95) is below 25 with probability 0.06; the seeds are fixed,
    so the outcome is too), and the peak comment's interval holds 64 MiB as often;
  - the leak gate: exit status 23 and the report at rate 1 and the default rate, a clean program
    and a leak under its budget pass, suppressions by function and by file, with threads and in a
    forked child, the program's buffered stdout kept, and `palloc run --leak-check`.
usage: check_peaklife.py PEAKLIFE PALLOC_TOOL LIBPALLOC_SO TMPDIR [UPSTREAM_PPROF]
"""
import glob, math, os, re, shutil, subprocess, sys

prog, tool, lib, tmp = [os.path.abspath(a) for a in sys.argv[1:5]]
upstream = os.path.abspath(sys.argv[5]) if len(sys.argv) > 5 and os.path.exists(sys.argv[5]) else None
go = shutil.which('go')
shutil.rmtree(tmp, ignore_errors=True)
os.makedirs(tmp)
failures = []
MiB = 1 << 20


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def run(args, env=None, preload=True):
    e = {k: v for k, v in os.environ.items() if not k.startswith('PALLOC_') and k != 'LD_PRELOAD'}
    if preload:
        e['LD_PRELOAD'] = lib
    e.update(env or {})
    return subprocess.run(args, env=e, cwd=tmp, capture_output=True, text=True, timeout=60)


def pprof_top(reader, path, index):
    """{function: flat value} from `pprof -top -unit=B` (or count)."""
    cmd = ([go, 'tool', 'pprof'] if reader == 'go' else [reader])
    env = dict(os.environ, GOCACHE=os.path.join(tmp, '.gocache'), PPROF_TMPDIR=tmp)
    r = subprocess.run(cmd + ['-top', '-nodefraction=0', f'-sample_index={index}', '-unit=B',
                              os.path.join(tmp, path)], capture_output=True, text=True, env=env,
                       timeout=120)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r'\s*([\d.]+)B?\s+[\d.]+%\s+[\d.]+%\s+[\d.]+B?\s+[\d.]+%\s+(\S+)', line)
        if m:
            out[m.group(2)] = float(m.group(1))
    if r.returncode != 0:
        failures.append(f'{reader} pprof on {path}: {r.stderr.strip()[:300]}')
    return out, r.stdout


def readers():
    rs = []
    if go:
        rs.append('go')
    if upstream:
        rs.append(upstream)
    return rs


# ---- peak ----------------------------------------------------------------------------------
def site_se(total, size, rate):
    """The standard error of the estimate of total bytes in blocks of size at rate."""
    n = total / size
    p = 1 - math.exp(-size / rate)
    return math.sqrt(n * (1 - p) / p) * size


SE_X = site_se(64 * MiB, 4096, 524288)
for variant in ['', 'threads', 'fork']:
    tag = 'peak' + ('-' + variant if variant else '')
    r = run([prog, 'phases'] + ([variant] if variant else []),
            {'PALLOC_SEED': '7', 'PALLOC_PROFILE': f'{tag}-heap.pb.gz',
             'PALLOC_PEAK_PROFILE': f'{tag}.pb.gz'})
    check(r.returncode == 0, f'{tag}: exit {r.returncode}: {r.stderr[:300]}')
    for reader in readers():
        top, text = pprof_top(reader, f'{tag}.pb.gz', 'inuse_space')
        x = top.get('site_x', 0)
        check(abs(x - 64 * MiB) <= 4 * SE_X,
              f'{tag} ({reader}): site_x at the peak is {x / MiB:.1f} MiB, not 64 MiB +- 4 x '
              f'{SE_X / MiB:.1f}\n{text[:800]}')
        check('site_y' not in top, f'{tag} ({reader}): site_y at the peak\n{text[:800]}')
        check('peak heap:' in text and 'after start' in text,
              f'{tag} ({reader}): no peak comment (when, how large)\n{text[:600]}')
        heap, text = pprof_top(reader, f'{tag}-heap.pb.gz', 'inuse_space')
        check('site_y' in heap and 'site_x' not in heap,
              f'{tag} ({reader}): the exit profile is not site_y alone\n{text[:600]}')

# the snapshot that a signal asks for
r = run([prog, 'snapshot'], {'PALLOC_SEED': '3', 'PALLOC_PROFILE_SIGNAL': 'USR2',
                             'PALLOC_PROFILE': 'snap.%p.pb.gz', 'PALLOC_PEAK_PROFILE': 'snappeak.%p.pb.gz',
                             'PALLOC_LIFETIME_PROFILE': 'snaplife.%p.pb.gz'})
for kind in ['snap', 'snappeak', 'snaplife']:
    got = glob.glob(os.path.join(tmp, f'{kind}.*.0001.pb.gz'))
    check(len(got) == 1, f'signal snapshot: no {kind} snapshot 0001 ({sorted(os.listdir(tmp))})')
if go:
    got = glob.glob(os.path.join(tmp, 'snappeak.*.0001.pb.gz'))
    if got:
        top, text = pprof_top('go', os.path.basename(got[0]), 'inuse_space')
        check(abs(top.get('site_x', 0) - 64 * MiB) <= 4 * site_se(64 * MiB, 4096, 524288),
              f'the peak snapshot does not show site_x at 64 MiB\n{text[:600]}')

# ---- lifetimes -----------------------------------------------------------------------------
def lifetimes_table(path, flag):
    r = subprocess.run([tool, 'top', flag, os.path.join(tmp, path)], capture_output=True, text=True)
    check(r.returncode == 0, f'palloc top {flag} {path}: {r.returncode} {r.stderr}')
    rows = []
    for line in r.stdout.splitlines():
        m = re.search(r'(site_\w+) <', line)
        if m:
            rows.append((m.group(1), line.split()))
    return rows, r.stdout


def ns(s):
    if s == '-':
        return None
    for unit, f in (('ns', 1), ('us', 1e3), ('ms', 1e6), ('s', 1e9)):
        if s.endswith(unit) and re.match(r'^[\d.]+$', s[:-len(unit)]):
            return float(s[:-len(unit)]) * f
    return None


for variant in ['', 'threads', 'fork']:
    tag = 'life' + ('-' + variant if variant else '')
    for rate in ['1', '64k']:
        path = f'{tag}-{rate}.pb.gz'
        r = run([prog, 'lifetimes'] + ([variant] if variant else []),
                {'PALLOC_SEED': '11', 'PALLOC_SAMPLE_RATE': rate, 'PALLOC_LIFETIME_PROFILE': path})
        check(r.returncode == 0, f'{tag} rate {rate}: exit {r.returncode}: {r.stderr[:300]}')
        rows, text = lifetimes_table(path, '--lifetimes')
        order = [s for s, _ in rows]
        what = f'{tag} rate {rate}: palloc top --lifetimes'
        if not check(order[:3] == ['site_a', 'site_b', 'site_c'], f'{what}: order {order}\n{text}'):
            continue
        f = {s: c for s, c in rows}
        mean_a, mean_b = ns(f['site_a'][2]), ns(f['site_b'][2])
        check(mean_a is not None and mean_a < 1e6, f'{what}: site_a mean {f["site_a"][2]}\n{text}')
        check(mean_b is not None and 45e6 <= mean_b <= 250e6,
              f'{what}: site_b mean {f["site_b"][2]}, not ~50ms\n{text}')
        for site in ('site_a', 'site_b'):  # the mean lies between the min and the max
            mn, me, mx = ns(f[site][4]), ns(f[site][2]), ns(f[site][5])
            check(None not in (mn, me, mx) and mn * 0.999 <= me <= mx * 1.001,
                  f'{what}: {site} mean {f[site][2]} outside [{f[site][4]}, {f[site][5]}]\n{text}')
        check(f['site_c'][0] == '0' and f['site_c'][2] == '-' and float(f['site_c'][6]) > 0,
              f'{what}: site_c is not censored (never freed, live)\n{text}')
        if rate == '1':
            check(f['site_a'][0] == '16000' and f['site_b'][0] == '800' and f['site_c'][6] == '200',
                  f'{what}: exact counts (16000, 800, 200 live) expected at rate 1\n{text}')
        trows, ttext = lifetimes_table(path, '--temporaries')
        torder = [s for s, _ in trows]
        check(torder[:1] == ['site_a'] and 'site_b' not in torder and 'site_c' not in torder,
              f'{tag} rate {rate}: temporaries {torder}\n{ttext}')
        for reader in readers():
            top, text = pprof_top(reader, path, 'temp_space')
            check(max(top, key=top.get, default='') == 'site_a',
                  f'{tag} rate {rate} ({reader}): temp_space does not rank site_a first\n{text[:600]}')

# ---- error bars over 30 seeds --------------------------------------------------------------
LEAK = 8 * MiB
inside = peak_inside = 0
for seed in range(1, 31):
    r = run([prog, 'leak', str(LEAK)], {'PALLOC_SEED': str(seed), 'PALLOC_LEAK_CHECK': '1TiB'})
    m = re.search(r'Leak of ~(\d+) byte\(s\) \[95%: (\d+)-(\d+)\].*\n(?:    #.*\n)*?.*leak_site', r.stderr)
    if not check(m and r.returncode == 0, f'seed {seed}: no leak_site report (exit {r.returncode})\n{r.stderr[:800]}'):
        continue
    inside += int(m.group(2)) <= LEAK <= int(m.group(3))
check(inside >= 25, f'error bars: the 95% interval held the true leak {inside} times of 30')
for seed in range(1, 31):
    r = run([prog, 'phases'], {'PALLOC_SEED': str(seed), 'PALLOC_PEAK_PROFILE': f'seed{seed}.pb.gz'})
    p = subprocess.run([tool, 'top', os.path.join(tmp, f'seed{seed}.pb.gz')], capture_output=True,
                       text=True)
    # the peak comment: "peak_bytes=B peak_se_bytes=S"; the truth at the peak is 64 MiB of
    # site_x, minus up to the growth factor's 10% (a peak is recorded when the estimate passes
    # the last one by 1.1): the interval must hold a value in [64 MiB / 1.1, 64 MiB]
    m = re.search(r'peak_bytes=(\d+) peak_se_bytes=(\d+)', p.stdout)
    if check(m, f'seed {seed}: no peak comment in palloc top\n{p.stdout[:400]}'):
        b, se = int(m.group(1)), int(m.group(2))
        peak_inside += b - 1.96 * se <= 64 * MiB and b + 1.96 * se >= 64 * MiB / 1.1
check(peak_inside >= 25, f'error bars: the peak interval held 64 MiB {peak_inside} times of 30')

# ---- the leak gate -------------------------------------------------------------------------
def gate(args, budget, rate=None, supp=None, extra=None):
    env = {'PALLOC_LEAK_CHECK': budget, 'PALLOC_SEED': '5'}
    if rate:
        env['PALLOC_SAMPLE_RATE'] = rate
    if supp:
        env['PALLOC_LEAK_SUPPRESSIONS'] = supp
    env.update(extra or {})
    return run([prog] + args, env)


def expect(r, code, what, report=None, done=True):
    ok = check(r.returncode == code, f'{what}: exit {r.returncode}, not {code}\n{r.stderr[-1500:]}')
    if done:
        check('done' in r.stdout, f'{what}: the program\'s buffered output was lost: {r.stdout!r}')
    if report is not None:
        check(report in r.stderr, f'{what}: no {report!r} in the report\n{r.stderr[-1500:]}')
    return ok


for v in ['', 'threads', 'fork']:
    va = [v] if v else []
    expect(gate(['leak', str(4 * MiB)] + va, '1MiB', '1'), 23, f'leak 4 MiB, rate 1 {v}',
           'Leak of 4194304 byte(s) in 4096 object(s) allocated from:')
    expect(gate(['leak', str(512 * 1024)] + va, '1MiB', '1'), 0, f'leak 512 KiB under 1 MiB, rate 1 {v}',
           'within budget')
    expect(gate(['clean'] + va, '0', '1'), 0, f'clean, budget 0, rate 1 {v}')
    expect(gate(['leak', str(64 * MiB)] + va, '1MiB'), 23, f'leak 64 MiB, default rate {v}',
           'over budget by more than the noise')
    expect(gate(['clean'] + va, '0'), 0, f'clean, budget 0, default rate {v}')
    expect(gate(['leak', str(128 * 1024)] + va, '64MiB'), 0, f'leak 128 KiB under 64 MiB, default rate {v}')
r = gate(['clean'], '0', '1')
check('ERROR' not in r.stderr, f'a clean program has a report:\n{r.stderr}')
# a forked child that exits by exit() leaving the 1 MiB its parent holds: not its leak
for budget, rate in [('0', '1'), ('0', None)]:
    r = gate(['inherit'], budget, rate)
    expect(r, 0, f'a child exits with its parent\'s blocks live, budget {budget} rate {rate}')
    check('child 0' in r.stdout and 'ERROR' not in r.stderr,
          f'inherit: the child\'s status or report: {r.stdout!r}\n{r.stderr[-1500:]}')
# a program that closes its stderr at exit and opens a file on descriptor 2: the report goes to
# the stderr of the start, never into the program's file
victim = os.path.join(tmp, 'victim.txt')
r = gate(['leak', str(4 * MiB), 'closeerr'], '1MiB', '1')
expect(r, 23, 'stderr closed at exit', 'SUMMARY: palloc LeakCheck')
check(os.path.exists(victim) and os.path.getsize(victim) == 0,
      f'the report went into the program\'s file on descriptor 2: {open(victim).read()[:300]!r}'
      if os.path.exists(victim) else 'victim.txt was not created')
r = gate(['leak', str(4 * MiB)], '1MiB', '1')
check(re.search(r'#0 0x[0-9a-f]+ in leak_site .*peaklife\.c:\d+', r.stderr),
      f'the report does not name leak_site with its file and line:\n{r.stderr[:1200]}')

supp = os.path.join(tmp, 'supp.txt')
with open(supp, 'w') as f:
    f.write('# peaklife\nleak:suppressed_site\n\nleak:peaklife_supp.c\n')
only_fn = os.path.join(tmp, 'supp-fn.txt')
with open(only_fn, 'w') as f:
    f.write('leak:^suppressed_s*e$\n')
expect(gate(['leak', str(2 * MiB), 'supp'], '2MiB', '1'), 23, 'leak 6 MiB, no suppressions')
r = gate(['leak', str(2 * MiB), 'supp'], '2MiB', '1', supp)
expect(r, 0, 'leak 6 MiB, 4 MiB suppressed by function and by file', 'Suppressions used:')
check(re.search(r'2048\s+2097152 suppressed_site', r.stderr) and
      re.search(r'2048\s+2097152 peaklife_supp\.c', r.stderr),
      f'suppressions: counts and bytes per rule\n{r.stderr[-1200:]}')
expect(gate(['leak', str(2 * MiB), 'supp'], '2MiB', '1', only_fn), 23,
       'a function rule alone leaves the file\'s leak', 'other_file_site')

r = subprocess.run([tool, 'run', '-r', '1', '--leak-check', '1MiB', '--', prog, 'leak', str(4 * MiB)],
                   cwd=tmp, capture_output=True, text=True, timeout=60,
                   env={k: v for k, v in os.environ.items() if not k.startswith('PALLOC_')} |
                       {'PALLOC_LIB': lib})
expect(r, 23, 'palloc run --leak-check 1MiB, a 4 MiB leak', 'leak check failed')
r = subprocess.run([tool, 'run', '--leak-check', '1MiB', '--', prog, 'clean'], cwd=tmp,
                   capture_output=True, text=True, timeout=60,
                   env={k: v for k, v in os.environ.items() if not k.startswith('PALLOC_')} |
                       {'PALLOC_LIB': lib})
expect(r, 0, 'palloc run --leak-check 1MiB, clean')

for f in failures:
    print('FAIL:', f)
print(f'{len(failures)} failures')
sys.exit(1 if failures else 0)
