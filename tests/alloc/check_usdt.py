#!/usr/bin/env python3
"""The OpenTelemetry eBPF profiler's otel_memory probes in libpalloc (alloc/usdt.h).

notes:  `readelf -n` lists provider otel_memory with probes alloc (3 arguments) and free (1),
        each argument 8 bytes, and nothing else of that provider.
gdb:    gdb attaches to the probes of usdt_prog.c (linked with libpalloc) as an eBPF agent would
        (from the notes), at PALLOC_SAMPLE_RATE=1 and at the default rate: the arguments decode
        to the block's address, its size and its weight (at rate 1, the size), every sampled
        allocation fires alloc once and every sampled free fires free once (palloc's own counts).
bpftrace: the same count through a real eBPF attachment, where bpftrace is installed and the
        kernel lets it attach; elsewhere this part says why and the test exits 77 (skipped).
usage: check_usdt.py notes|gdb|bpftrace LIBPALLOC_SO USDT_PROG TMPDIR
"""
import os, re, shutil, subprocess, sys

mode, libso, prog, tmp = sys.argv[1:5]
os.makedirs(tmp, exist_ok=True)


def die(msg):
    print('FAIL:', msg)
    sys.exit(1)


if mode == 'notes':
    out = subprocess.run(['readelf', '-n', libso], capture_output=True, text=True).stdout
    probes = re.findall(r'Provider: (\S+)\n\s+Name: (\S+)\n\s+Location: [^\n]*\n\s+Arguments: ([^\n]*)', out)
    if not probes:
        print(f'SKIP: no stapsdt notes in {libso}: built without <sys/sdt.h> (systemtap-sdt-dev)')
        sys.exit(77)
    seen = set()
    for prov, name, args in probes:
        if prov != 'otel_memory':
            continue
        a = args.split()
        want = {'alloc': 3, 'free': 1}.get(name)
        if want is None:
            die(f'unexpected probe otel_memory:{name}')
        if len(a) != want or not all(x.startswith('8@') for x in a):
            die(f'otel_memory:{name} arguments {args!r}: want {want} of 8 bytes')
        seen.add(name)
    if seen != {'alloc', 'free'}:
        die(f'otel_memory probes: {sorted(seen)}')
    print(f'ok: {len(probes)} otel_memory probe sites, alloc(ptr, size, weight) and free(ptr)')
    sys.exit(0)


def run_gdb(rate):
    script = os.path.join(tmp, 'probes.gdb')
    with open(script, 'w') as f:
        f.write('set breakpoint pending on\nset pagination off\n'
                'break -probe-stap otel_memory:alloc\ncommands\nsilent\n'
                'printf "PROBE alloc %lu %lu %lu\\n", $_probe_arg0, $_probe_arg1, $_probe_arg2\n'
                'continue\nend\n'
                'break -probe-stap otel_memory:free\ncommands\nsilent\n'
                'printf "PROBE free %lu\\n", $_probe_arg0\ncontinue\nend\nrun\n')
    env = dict(os.environ, PALLOC_SEED='7')
    if rate:
        env['PALLOC_SAMPLE_RATE'] = rate
    r = subprocess.run(['gdb', '-batch', '-nx', '-x', script, prog], capture_output=True,
                       text=True, env=env, timeout=300)
    return r.stdout + r.stderr


if mode == 'gdb':
    if not shutil.which('gdb'):
        print('SKIP: gdb not installed')
        sys.exit(77)
    for rate in ('1', None):
        out = run_gdb(rate)
        allocs = [tuple(map(int, m)) for m in re.findall(r'PROBE alloc (\d+) (\d+) (\d+)', out)]
        frees = [int(m) for m in re.findall(r'PROBE free (\d+)', out)]
        m = re.search(r'sampled (\d+) freed (\d+)', out)
        if not m:
            die(f'rate {rate}: usdt_prog did not finish under gdb: {out[-800:]}')
        sampled, freed = int(m.group(1)), int(m.group(2))
        if len(allocs) != sampled or len(frees) != freed:
            die(f'rate {rate}: {len(allocs)} alloc probes for {sampled} sampled allocations, '
                f'{len(frees)} free probes for {freed} sampled frees')
        if rate == '1':
            block = int(re.search(r'block (\d+)', out).group(1))
            moved = int(re.search(r'moved (\d+)', out).group(1))
            if (block, 1000, 1000) not in allocs or block not in frees:
                die(f'rate 1: no alloc({block}, 1000, 1000) and free({block}): {allocs[:5]}')
            if moved not in frees or not any(s == 1 << 20 and w == 1 << 20 for _, s, w in allocs):
                die('rate 1: realloc did not fire free(old) and alloc(new, 1 MiB, 1 MiB)')
            if any(w != s for _, s, w in allocs):
                die('rate 1: a weight differs from its size')
        else:
            if sampled == 0 or any(w < s for _, s, w in allocs):
                die(f'default rate: {sampled} samples, weights {allocs[:5]}')
        print(f'ok rate {rate or "default"}: {len(allocs)} alloc and {len(frees)} free probes '
              f'= palloc\'s {sampled} sampled allocations and {freed} sampled frees')
    sys.exit(0)

if mode == 'bpftrace':
    bt = shutil.which('bpftrace')
    if not bt:
        print('SKIP: bpftrace is not installed (Debian: bpftrace); the probes are not counted '
              'through eBPF here (the gdb test counts them through the same notes)')
        sys.exit(77)
    if os.geteuid() != 0:
        print('SKIP: bpftrace needs root to attach')
        sys.exit(77)
    # Attached by path, system-wide: `bpftrace -c PROG` looks the library's probes up before
    # PROG has mapped it ("Error finding location for probe"). A private copy of the library,
    # which only PROG maps, keeps the counts PROG's while other tests run.
    import select, signal
    # A new directory (a new file) each run: uprobes that bpftrace could not detach here ("failed
    # to detach probe") stay on the old file, and a rebuilt library copied over it ran into them.
    import tempfile
    d = tempfile.mkdtemp(prefix='bpf.', dir=tmp)
    copy = os.path.join(d, 'libpalloc.so.0')
    shutil.copyfile(os.path.realpath(libso), copy)
    # BEGIN runs once every probe is attached: "ready" says the program may start
    b = subprocess.Popen([bt, '-e', f'BEGIN {{ printf("ready\\n"); }} '
                                    f'usdt:{copy}:otel_memory:alloc {{ @a = count(); }} '
                                    f'usdt:{copy}:otel_memory:free {{ @f = count(); }}'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    attached = False
    while not attached and select.select([b.stdout], [], [], 60)[0]:
        line = b.stdout.readline()
        if not line:
            break
        attached = line.startswith('ready')
    if not attached:
        b.kill()
        out, err = b.communicate(timeout=30)
        if 'Operation not permitted' in err or 'BPF' in err or 'kernel' in err:
            print(f'SKIP: bpftrace cannot attach on this kernel: {err.strip()[-300:]}')
            sys.exit(77)
        die(f'bpftrace did not attach: {out[-300:]} {err[-300:]}')
    r = subprocess.run([prog], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, LD_LIBRARY_PATH=d, PALLOC_SEED='7',
                                PALLOC_SAMPLE_RATE='1'))  # every allocation: hundreds of firings
    b.send_signal(signal.SIGINT)
    out, err = b.communicate(timeout=60)
    m = re.search(r'sampled (\d+) freed (\d+)', r.stdout)
    a = re.search(r'@a: (\d+)', out)
    f = re.search(r'@f: (\d+)', out)
    if not m or not a or int(a.group(1)) != int(m.group(1)) or \
            int(f.group(1) if f else 0) != int(m.group(2)):
        die(f'bpftrace counts {out[-500:]} {err[-300:]}; program: {r.stdout[-200:]}')
    print(f'ok bpftrace: {a.group(1)} alloc probes = {m.group(1)} sampled allocations')
    shutil.rmtree(d, ignore_errors=True)
    sys.exit(0)
die(f'unknown mode {mode}')
