#!/usr/bin/env python3
"""Accuracy of libpalloc's profiles as real pprof readers see them.

Runs tests/alloc/sites.c (three sites of known volume) under libpalloc, linked (-lpalloc) and
preloaded (LD_PRELOAD), reads each profile with BOTH `go tool pprof` and upstream pprof
(`-top -sample_index=...` for all four sample types) and checks, per reader:
  - every site's function name is shown;
  - at the default rate, every estimate lies within 4 standard errors of the truth, the error
    derived from the sampling probability of the site's object size (Horvitz-Thompson variance:
    N s^2 (1-p)/p with p = 1 - exp(-s/rate)); freed sites show 0 in use;
  - site C holds >= 95% of inuse_space;
  - at rate 1, every value equals the true count exactly.
usage: check_readers.py SITES_LINKED SITES_PLAIN LIBPALLOC_SO UPSTREAM_PPROF TMPDIR
"""
import math, os, re, subprocess, sys

linked, plain, libso, upstream, tmp = sys.argv[1:6]
RATE = 524288
SITES = {  # name: (objects, size, freed)
    'site_a': (256 * 1024, 1024, True),
    'site_b': (1024, 65536, True),
    'site_c': (64 * 1024, 512, False),
}
INDEXES = ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space']
failures = []


def fail(msg):
    failures.append(msg)
    print('FAIL:', msg)


def run_program(cmd, env_extra, out):
    env = dict(os.environ, PALLOC_PROFILE=out, **env_extra)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or 'sites: A=262144 B=1024 C=65536' not in r.stdout:
        fail(f'{cmd} {env_extra}: exit {r.returncode}, out {r.stdout!r} err {r.stderr[-500:]!r}')
    if r.stderr.strip():
        fail(f'{cmd}: unexpected stderr {r.stderr[-500:]!r}')
    if not os.path.exists(out):
        fail(f'{out} was not written')


def top(reader, binary, profile, index):
    """Returns {function: flat value} from `pprof -top` in bytes or counts."""
    cmd = reader + ['-top', '-nodecount=1000', '-nodefraction=0', f'-sample_index={index}']
    if index.endswith('space'):
        cmd.append('-unit=B')
    cmd += [binary, profile]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PPROF_TMPDIR=tmp, HOME=tmp))
    if r.returncode != 0:
        fail(f'{" ".join(cmd)} failed: {r.stderr[-500:]}')
        return {}, ''
    vals = {}
    for line in r.stdout.splitlines():
        m = re.match(r'\s*(-?[\d.]+)(B?)\s+[\d.]+%\s+[\d.]+%\s+(-?[\d.]+)B?\s+[\d.]+%\s+(\S+)', line)
        if m:
            vals[m.group(4)] = float(m.group(1))
    total = re.search(r'of (-?[\d.]+)B? total', r.stdout)
    return vals, (float(total.group(1)) if total else None)


def truth(site, index):
    n, s, freed = SITES[site]
    objs = n if index.endswith('objects') else n * s
    if index.startswith('inuse') and freed:
        return 0
    return objs


def stderr_of(site, index):
    """Standard error of the estimate of this site's value at RATE."""
    n, s, freed = SITES[site]
    if index.startswith('inuse') and freed:
        return 0
    p = 1 - math.exp(-s / RATE)
    var_objects = n * (1 - p) / p
    return math.sqrt(var_objects) * (s if index.endswith('space') else 1)


readers = {'go tool pprof': ['go', 'tool', 'pprof'], 'upstream pprof': [upstream]}
runs = []
# 'traced': PALLOC_TRACE=1 routes every malloc and free through the slow path (gcsim's what-if
# GC trace); the sampled profile must be just as right.
trace_env = {'PALLOC_TRACE': '1', 'PALLOC_TRACE_FILE': os.path.join(tmp, 'trace.txt')}
for mode, cmd, extra in [('linked', [linked], {}), ('preloaded', [plain], {'LD_PRELOAD': libso}),
                         ('traced', [linked], trace_env)]:
    for rate in ('default', '1'):
        out = os.path.join(tmp, f'sites-{mode}-{rate}.pb.gz')
        env = dict(extra)
        env['PALLOC_SEED'] = '42'
        if rate == '1':
            env['PALLOC_SAMPLE_RATE'] = '1'
        run_program(cmd, env, out)
        runs.append((mode, rate, cmd[0], out))

for mode, rate, binary, prof in runs:
    if not os.path.exists(prof):
        continue
    for rname, reader in readers.items():
        for index in INDEXES:
            vals, total = top(reader, binary, prof, index)
            where = f'{rname}, {mode}, rate {rate}, {index}'
            for site in SITES:
                want = truth(site, index)
                got = vals.get(site)
                if got is None:
                    if want != 0:
                        fail(f'{where}: {site} not shown')
                    continue
                if rate == '1':
                    if got != want:
                        fail(f'{where}: {site} = {got:.0f}, exact truth {want}')
                else:
                    se = stderr_of(site, index)
                    if abs(got - want) > 4 * se + 1e-9:
                        fail(f'{where}: {site} = {got:.0f}, truth {want}, 4 SE = {4 * se:.0f}')
                    else:
                        print(f'ok {where}: {site} {got:.0f} vs {want} '
                              f'({(got - want) / want * 100 if want else 0:+.1f}%, SE {se / want * 100 if want else 0:.1f}%)')
            if index == 'inuse_space' and total:
                share = vals.get('site_c', 0) / total
                if share < 0.95:
                    fail(f'{where}: site_c holds {share:.1%} of inuse_space (< 95%)')

# Rate 0: profiling off still writes an empty but valid profile that both readers accept.
out0 = os.path.join(tmp, 'sites-rate0.pb.gz')
run_program([linked], {'PALLOC_SAMPLE_RATE': '0'}, out0)
for rname, reader in readers.items():
    r = subprocess.run(reader + ['-raw', out0], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, HOME=tmp, PPROF_TMPDIR=tmp))
    if r.returncode != 0 or 'PeriodType: space bytes' not in r.stdout:
        fail(f'{rname}: rate-0 profile rejected: {r.stderr[-300:]}')
    elif re.search(r'^Samples:.*\n.*\n\s+\d', r.stdout, re.M):
        fail(f'{rname}: rate-0 profile has samples')
    else:
        print(f'ok {rname}: rate-0 profile is valid and empty')

print(f'{len(failures)} failures')
sys.exit(1 if failures else 0)
