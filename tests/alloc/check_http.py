#!/usr/bin/env python3
"""PALLOC_HTTP against real clients (alloc/http.c), with tests/alloc/http_prog.c under LD_PRELOAD.

  - `go tool pprof -top` and upstream pprof on /debug/pprof/heap and /allocs: the kept site's
    in-use values within 4 standard errors of the truth; each profile's default type (Go's
    default_sample_type: inuse_space for heap, alloc_space for allocs);
  - ?seconds=N deltas: a window in which site B allocates shows it (go tool pprof -seconds), a
    window without shows none of it (palloc top --seconds);
  - ?debug=1 read by go tool pprof; /debug/pprof/symbol names a PALLOC_SYMBOLIZE=none profile's
    frames through `go tool pprof -symbolize=remote`; /debug/pprof/cmdline; the index;
  - /metrics checked by promtool, then scraped by a real Prometheus (Debian's package) started
    on a free loopback port, the series read back through its HTTP API; a part whose tool is
    missing says "SKIP" and the test exits 77 (skipped) only if every part of it was skipped;
  - hostile clients while four threads allocate: garbage, a 1 MiB header, 200 idle connections,
    a client that reads one byte a second, one that writes one byte a second, path traversal,
    unknown methods; the program's output and exit status unchanged, the endpoint answering;
  - unset: no thread and no socket; fork (the child has no listener); ":0"; a port in use; a
    unix socket (removed at exit) and one whose directory does not exist.
usage: check_http.py HTTP_PROG LIBPALLOC_SO PALLOC_TOOL UPSTREAM_PPROF TMPDIR
"""
import math, os, random, re, select, shutil, socket, subprocess, sys, threading, time
import urllib.request, urllib.error

prog, libso, palloc, upstream, tmp = sys.argv[1:6]
os.makedirs(tmp, exist_ok=True)
RATE = 524288
failures = []
skipped = []
promtool, prometheus = shutil.which('promtool'), shutil.which('prometheus')


def fail(msg):
    failures.append(msg)
    print('FAIL:', msg, flush=True)


def ok(msg):
    print('ok', msg, flush=True)


class Prog:
    """http_prog under libpalloc; commands on stdin, "ok CMD" back."""

    def __init__(self, http, extra=None):
        env = dict(os.environ, LD_PRELOAD=libso, **(extra or {}))
        env.pop('PALLOC_HTTP', None)
        if http is not None:
            env['PALLOC_HTTP'] = http
        self.p = subprocess.Popen([prog], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        self.port = None
        self.err = ''
        if http is not None and http.endswith(':0'):
            line = self.readline(self.p.stderr)
            self.err += line
            m = re.match(r'palloc: serving http://127\.0\.0\.1:(\d+)/debug/pprof/ \(pid (\d+)\)\n', line)
            if not m or int(m.group(2)) != self.p.pid:
                fail(f'PALLOC_HTTP=:0: the first stderr line is {line!r}')
            else:
                self.port = int(m.group(1))

    def readline(self, f, timeout=20):
        r, _, _ = select.select([f], [], [], timeout)
        return f.readline() if r else ''

    def cmd(self, c):
        self.p.stdin.write(c + '\n')
        self.p.stdin.flush()
        line = self.readline(self.p.stdout)
        if line != f'ok {c}\n':
            fail(f'http_prog {c}: answered {line!r}')
        return line == f'ok {c}\n'

    def quit(self):
        out, err = self.p.communicate('quit\n', timeout=60)
        return self.p.returncode, out, self.err + err

    def url(self, path):
        return f'http://127.0.0.1:{self.port}{path}'


def get(url, data=None, timeout=30):
    """(status, body bytes, headers)"""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def raw(port, data, read=True, timeout=10):
    """Sends data on a new connection; the response's bytes (b'' if the server closed)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b''
    try:
        while read:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return out


def pprof_top(reader, url, extra=()):
    env = dict(os.environ, PPROF_TMPDIR=tmp, HOME=tmp)
    cmd = reader + ['-top', '-nodecount=200', '-nodefraction=0', '-unit=B'] + list(extra) + [url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    if r.returncode != 0:
        fail(f'{" ".join(cmd)}: {r.stderr[-400:]}')
        return {}, ''
    vals = {}
    for line in r.stdout.splitlines():
        m = re.match(r'\s*(-?[\d.]+)B?\s+-?[\d.]+%\s+-?[\d.]+%\s+-?[\d.]+B?\s+-?[\d.]+%\s+(\S+)', line)
        if m:
            vals[m.group(2)] = float(m.group(1))
    return vals, r.stdout


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- unset: nothing started ------------------------------------------------------------------
p = Prog(None)
p.cmd('keep')
tasks = len(os.listdir(f'/proc/{p.p.pid}/task'))
socks = [f for f in os.listdir(f'/proc/{p.p.pid}/fd')
         if os.readlink(f'/proc/{p.p.pid}/fd/{f}').startswith('socket:')]
rc, out, err = p.quit()
if tasks != 2 or socks or rc != 0 or err:
    fail(f'unset: {tasks} threads (want 2: main, background), sockets {socks}, rc {rc}, err {err!r}')
else:
    ok('unset: no thread, no socket, no output')

# ---- the profiles, through go tool pprof and upstream pprof ------------------------------------
p = Prog(':0')
p.cmd('keep')
N, S = 16384, 1024
pk = 1 - math.exp(-S / RATE)
se = {'inuse_space': math.sqrt(N * (1 - pk) / pk) * S, 'inuse_objects': math.sqrt(N * (1 - pk) / pk)}
truth = {'inuse_space': N * S, 'inuse_objects': N}
readers = {'go tool pprof': ['go', 'tool', 'pprof'], 'upstream pprof': [upstream]}
if p.port:
    tasks = len(os.listdir(f'/proc/{p.p.pid}/task'))
    if tasks != 3:
        fail(f'PALLOC_HTTP set: {tasks} threads, want 3 (main, background, server)')
    for rname, reader in readers.items():
        for path in ('/debug/pprof/heap', '/debug/pprof/allocs'):
            vals, out = pprof_top(reader, p.url(path))
            want = 'inuse_space' if path.endswith('heap') else 'alloc_space'
            if f'Type: {want}' not in out:
                fail(f'{rname} {path}: default type is not {want}: {out[:300]!r}')
            if 'site_keep' not in vals:
                fail(f'{rname} {path}: site_keep not shown')
            for index in ('inuse_space', 'inuse_objects'):
                vals, out = pprof_top(reader, p.url(path), [f'-sample_index={index}'])
                got = vals.get('site_keep', 0)
                if abs(got - truth[index]) > 4 * se[index]:
                    fail(f'{rname} {path} {index}: site_keep {got:.0f}, truth {truth[index]}, '
                         f'4 SE {4 * se[index]:.0f}')
                else:
                    ok(f'{rname} {path} {index}: site_keep {got:.0f} (truth {truth[index]})')
    # the legacy text format, read by pprof's legacy parser
    vals, out = pprof_top(['go', 'tool', 'pprof'], p.url('/debug/pprof/heap?debug=1'),
                          ['-sample_index=inuse_space'])
    got = vals.get('site_keep', 0)
    if abs(got - truth['inuse_space']) > 4 * se['inuse_space']:
        fail(f'?debug=1: site_keep {got:.0f}, truth {truth["inuse_space"]}: {out[-600:]}')
    else:
        ok(f'?debug=1 through go tool pprof: site_keep {got:.0f}')
    st, body, _ = get(p.url('/debug/pprof/heap?debug=1'))
    if st != 200 or not body.startswith(b'heap profile: ') or b'\nMAPPED_LIBRARIES:\n' not in body \
            or b'\tsite_keep\t' not in body:
        fail(f'?debug=1: {st} {body[:200]!r}')

    # the peak-heap and lifetime profiles (peak.c, lifetime.c): the kept blocks were live at the
    # peak (recorded within PALLOC_PEAK_GROWTH, 1.1x, of the high-water mark)
    vals, out = pprof_top(['go', 'tool', 'pprof'], p.url('/debug/pprof/peak'),
                          ['-sample_index=inuse_space'])
    got = vals.get('site_keep', 0)
    if not (truth['inuse_space'] / 1.1 - 4 * se['inuse_space'] <= got
            <= truth['inuse_space'] + 4 * se['inuse_space']):
        fail(f'/debug/pprof/peak: site_keep {got:.0f}, truth {truth["inuse_space"]}: {out[-600:]}')
    else:
        ok(f'/debug/pprof/peak through go tool pprof: site_keep {got:.0f}')
    vals, out = pprof_top(['go', 'tool', 'pprof'], p.url('/debug/pprof/lifetimes'),
                          ['-sample_index=live_space'])
    if 'site_keep' not in vals:
        fail(f'/debug/pprof/lifetimes: site_keep not among the live (censored) blocks: {out[-600:]}')
    else:
        ok('/debug/pprof/lifetimes through go tool pprof: site_keep live (censored)')

    # deltas: B allocates inside the first window only
    env = dict(os.environ, PPROF_TMPDIR=tmp, HOME=tmp)
    d = subprocess.Popen(['go', 'tool', 'pprof', '-top', '-nodefraction=0', '-seconds=3',
                          '-sample_index=alloc_space', p.url('/debug/pprof/allocs')],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(0.7)
    p.cmd('b-on')
    time.sleep(1)
    p.cmd('b-off')
    out, err = d.communicate(timeout=120)
    if d.returncode != 0 or 'site_b' not in out or 'site_keep' in out:
        fail(f'delta over the window: rc {d.returncode}, site_b shown: {"site_b" in out}, '
             f'site_keep (before the window) shown: {"site_keep" in out}: {out[-500:]} {err[-300:]}')
    else:
        ok('delta (go tool pprof -seconds=3) over B\'s window shows site_b, not site_keep')
    r = subprocess.run([palloc, 'top', '--seconds', '2', '-i', 'alloc_space',
                        p.url('/debug/pprof/allocs')], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or 'site_b' in r.stdout or 'site_a' not in r.stdout:
        fail(f'delta outside the window (palloc top --seconds 2): rc {r.returncode}: '
             f'{r.stdout[-500:]} {r.stderr[-300:]}')
    else:
        ok('delta (palloc top --seconds 2) outside B\'s window shows site_a, not site_b')
    st, body, _ = get(p.url('/debug/pprof/heap?seconds=0'))
    st2, body2, _ = get(p.url('/debug/pprof/heap?seconds=1&debug=1'))
    st3, _, _ = get(p.url('/debug/pprof/heap?seconds=301'))
    if (st, st2, st3) != (400, 400, 400):
        fail(f'bad seconds: {st} {body!r}, {st2} {body2!r}, {st3}')

    # the CLI on a URL, and on a URL that is not a profile
    r = subprocess.run([palloc, 'top', p.url('/debug/pprof/heap')], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0 or 'site_keep' not in r.stdout:
        fail(f'palloc top URL: {r.returncode} {r.stdout[-300:]} {r.stderr[-300:]}')
    r = subprocess.run([palloc, 'top', p.url('/debug/pprof/profile')], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 1 or 'HTTP 404: Unknown profile' not in r.stderr:
        fail(f'palloc top on a 404: {r.returncode} {r.stderr!r}')
    # a listener whose accept queue is full: Linux drops the SYN and connect would wait for
    # minutes; --timeout bounds the whole fetch, connect included
    lst = socket.socket()
    lst.bind(('127.0.0.1', 0))
    lst.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(lst.getsockname())
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.2)
    t0 = time.monotonic()
    r = subprocess.run([palloc, 'top', '--timeout', '2',
                        'http://127.0.0.1:%d/debug/pprof/heap' % lst.getsockname()[1]],
                       capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    if r.returncode != 1 or 'no answer within the timeout' not in r.stderr or took > 10:
        fail(f'palloc top --timeout 2 on a host that does not answer: rc {r.returncode} after '
             f'{took:.1f} s: {r.stderr!r}')
    else:
        ok(f'palloc top --timeout 2 on a host that does not answer: one error after {took:.1f} s')
    for c in fillers + [lst]:
        c.close()

    # cmdline, index, symbol (GET), routes that do not exist
    st, body, _ = get(p.url('/debug/pprof/cmdline'))
    if st != 200 or body != prog.encode():
        fail(f'cmdline: {st} {body!r}')
    st, body, h = get(p.url('/debug/pprof/'))
    if st != 200 or b"<a href='heap?debug=1'>heap</a>" not in body or 'text/html' not in h['Content-Type']:
        fail(f'index: {st} {body[:200]!r}')
    st, body, _ = get(p.url('/debug/pprof/symbol'))
    if st != 200 or body != b'num_symbols: 1\n':
        fail(f'symbol GET: {st} {body!r}')

    # /metrics: promtool, then a real Prometheus
    st, body, h = get(p.url('/metrics'))
    m = re.search(rb'^palloc_heap_inuse_bytes (\d+)$', body, re.M)
    if st != 200 or not m or not h['Content-Type'].startswith('text/plain; version=0.0.4'):
        fail(f'/metrics: {st} {body[:300]!r}')
    elif abs(int(m.group(1)) - truth['inuse_space']) > 4 * se['inuse_space'] + 4e6:
        fail(f'/metrics: palloc_heap_inuse_bytes {m.group(1)}, about {truth["inuse_space"]} expected')
    if promtool:
        r = subprocess.run([promtool, 'check', 'metrics'], input=body, capture_output=True)
        if r.returncode != 0:
            fail(f'promtool check metrics: {r.stdout!r} {r.stderr!r}')
        else:
            ok('promtool check metrics: no problem')
    else:
        skipped.append('promtool')
        print('SKIP: promtool not installed (Debian: prometheus)')
    if prometheus:
        pport = free_port()
        cfg = os.path.join(tmp, 'prometheus.yml')
        with open(cfg, 'w') as f:
            f.write('global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: palloc\n'
                    f'    static_configs:\n      - targets: ["127.0.0.1:{p.port}"]\n')
        shutil.rmtree(os.path.join(tmp, 'tsdb'), ignore_errors=True)
        pr = subprocess.Popen([prometheus, f'--config.file={cfg}',
                               f'--storage.tsdb.path={os.path.join(tmp, "tsdb")}',
                               f'--web.listen-address=127.0.0.1:{pport}'],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, 'prometheus.log'), 'w'))
        got = None
        deadline = time.time() + 40
        while time.time() < deadline and got is None:
            time.sleep(1)
            try:
                st, body, _ = get(f'http://127.0.0.1:{pport}/api/v1/query?query=palloc_heap_inuse_bytes', timeout=5)
                m = re.search(rb'"value":\[[\d.]+,"(\d+)"\]', body)
                if m:
                    got = int(m.group(1))
            except Exception:
                pass
        st, body, _ = get(f'http://127.0.0.1:{pport}/api/v1/query?query=up', timeout=5) if got else (0, b'', None)
        pr.terminate()
        pr.wait(timeout=30)
        if got is None or b'"1"]' not in body:
            fail(f'Prometheus did not scrape palloc_heap_inuse_bytes (see {tmp}/prometheus.log)')
        else:
            ok(f'Prometheus scraped palloc_heap_inuse_bytes = {got}, up = 1')
    else:
        skipped.append('prometheus')
        print('SKIP: prometheus not installed (Debian: prometheus)')

    rc, out, err = p.quit()
    if rc != 0 or out != 'bye\n' or err.count('\n') != 1:
        fail(f'profiles run: rc {rc}, out {out!r}, err {err!r}')

# ---- gcsim's figures: the what-if collector's (PALLOC_TRACE=1), then an arena's ------------------
p = Prog(':0', {'PALLOC_TRACE': '1', 'PALLOC_TRACE_FILE': os.path.join(tmp, 'trace.%p')})
if p.port:
    p.cmd('keep')
    st, before, _ = get(p.url('/metrics'))
    p.cmd('arena')
    st2, after, _ = get(p.url('/metrics'))
    m = re.search(rb'^palloc_whatif_heap_goal_bytes (\d+)$', before, re.M)
    a = re.search(rb'^palloc_gc_cycles_total\{arena="1"\} (\d+)$', after, re.M)
    t = re.search(rb'^palloc_gc_alloc_bytes_total\{arena="1"\} (\d+)$', after, re.M)
    if not m or not a or int(a.group(1)) < 1 or not t or int(t.group(1)) < 30 << 20:
        fail(f'gcsim /metrics: what-if goal {m and m.group(0)}, arena cycles {a and a.group(0)}, '
             f'allocated {t and t.group(0)}: {after[-1500:]!r}')
    elif promtool and subprocess.run([promtool, 'check', 'metrics'], input=after).returncode != 0:
        fail('promtool refuses the metrics with gcsim\'s figures')
    else:
        ok(f'gcsim /metrics: {m.group(0).decode()}, {a.group(0).decode()}, {t.group(0).decode()}')
    p.quit()

# ---- symbolization through the endpoint -------------------------------------------------------
p = Prog(':0', {'PALLOC_SYMBOLIZE': 'none'})
p.cmd('keep')
if p.port:
    vals, out = pprof_top(['go', 'tool', 'pprof'], p.url('/debug/pprof/heap'), ['-symbolize=none'])
    if 'site_keep' in vals:
        fail('PALLOC_SYMBOLIZE=none: the profile has names already')
    vals, out = pprof_top(['go', 'tool', 'pprof'], p.url('/debug/pprof/heap'), ['-symbolize=remote'])
    if 'site_keep' not in vals or 'main' not in vals:
        fail(f'-symbolize=remote through /debug/pprof/symbol: {out[-500:]}')
    else:
        ok('go tool pprof -symbolize=remote names PALLOC_SYMBOLIZE=none frames through the endpoint')
    st, body, _ = get(p.url('/debug/pprof/symbol'), data=b'0x0+0x1+garbage')
    if st != 200 or body != b'':
        fail(f'symbol POST of unknown addresses: {st} {body!r}')
    p.quit()

# ---- hostile clients while four threads allocate --------------------------------------------------
p = Prog(':0')
if p.port:
    p.cmd('threads')
    port = p.port
    rnd = random.Random(7)
    r = raw(port, bytes(rnd.getrandbits(8) for _ in range(65536)))
    if r and not r.startswith(b'HTTP/1.1 4'):
        fail(f'garbage: {r[:100]!r}')
    r = raw(port, b'GET / HTTP/1.1\r\nX-Big: ' + b'b' * (1 << 20) + b'\r\n\r\n')
    if not r.startswith(b'HTTP/1.1 431 '):
        fail(f'1 MiB header: {r[:100]!r}')
    for req, want in [(b'GET /debug/pprof/../../../etc/passwd HTTP/1.1\r\n\r\n', b'404'),
                      (b'GET /debug/pprof/heap/../../../../etc/passwd HTTP/1.1\r\n\r\n', b'404'),
                      (b'GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n', b'404'),
                      (b'GET ../../etc/passwd HTTP/1.1\r\n\r\n', b'400'),
                      (b'PUT /debug/pprof/heap HTTP/1.1\r\n\r\n', b'405'),
                      (b'BREW /debug/pprof/heap HTTP/1.1\r\n\r\n', b'405'),
                      (b'POST /debug/pprof/heap HTTP/1.1\r\nContent-Length: 0\r\n\r\n', b'405'),
                      (b'GET /debug/pprof/heap HTTP/3.0\r\n\r\n', b'505'),
                      (b'\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03', b'400')]:
        r = raw(port, req)
        if not r.startswith(b'HTTP/1.1 ' + want):
            fail(f'{req[:40]!r}: {r[:80]!r}, want {want}')
        elif b'root:' in r:
            fail(f'{req[:40]!r} served a file')
    idle = [socket.create_connection(('127.0.0.1', port)) for _ in range(200)]
    time.sleep(0.5)
    busy = raw(port, b'GET /metrics HTTP/1.1\r\n\r\n')
    if not busy.startswith(b'HTTP/1.1 503 '):
        fail(f'a request beyond the connection limit: {busy[:80]!r}')
    for s in idle:
        s.close()
    time.sleep(0.5)
    # a client that reads one byte a second, one that writes one byte a second: neither holds
    # the endpoint (nor the writer lock: a profile is answered meanwhile)
    slow_r = socket.create_connection(('127.0.0.1', port))
    slow_r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_r.sendall(b'GET /debug/pprof/heap?debug=1 HTTP/1.1\r\n\r\n')
    slow_w = socket.create_connection(('127.0.0.1', port))
    t0 = time.time()
    for i, ch in enumerate(b'GET /metrics HTTP/1.1\r\n'[:4]):
        slow_w.send(bytes([ch]))
        slow_r.recv(1)
        st, body, _ = get(p.url('/debug/pprof/heap'), timeout=10)
        if st != 200:
            fail(f'a profile while slow clients hold connections: {st}')
        time.sleep(1)
    slow_r.close()
    slow_w.close()
    st, body, _ = get(p.url('/debug/pprof/allocs'))
    if st != 200 or not body.startswith(b'\x1f\x8b'):
        fail(f'the endpoint after the hostile clients: {st} {body[:50]!r}')
    else:
        ok('hostile clients: each answered 4xx/503 or cut, the endpoint answers afterwards')
    rc, out, err = p.quit()
    if rc != 0 or out != 'bye\n' or err.count('\n') != 1:
        fail(f'hostile run: rc {rc}, out {out!r}, err {err!r}')

# ---- fork: the child does not serve --------------------------------------------------------------
port = free_port()
p = Prog(f'127.0.0.1:{port}')
time.sleep(0.3)
p.cmd('fork')
st, _, _ = get(f'http://127.0.0.1:{port}/metrics')
rc, out, err = p.quit()  # the child sleeps 3 s more
try:
    socket.create_connection(('127.0.0.1', port), timeout=2).close()
    fail('fork: the child accepts connections on the parent\'s port')
except ConnectionRefusedError:
    if st == 200 and rc == 0 and err == '':
        ok('fork: the parent serves, the child holds no listener (connection refused)')
    else:
        fail(f'fork: {st} {rc} {err!r}')

# ---- a program that closes every fd (a daemon's start) and reuses the numbers --------------------
p = Prog(':0')
if p.port:
    get(p.url('/metrics'))
    p.cmd('closefds')
    try:
        raw(p.port, b'GET /metrics HTTP/1.1\r\n\r\n', timeout=3)
    except OSError:
        pass
    line = p.readline(p.p.stderr, timeout=5)
    t0 = os.times()
    cpu0 = sum(int(x) for x in open(f'/proc/{p.p.pid}/stat').read().split(')')[1].split()[11:13])
    time.sleep(1)
    cpu1 = sum(int(x) for x in open(f'/proc/{p.p.pid}/stat').read().split(')')[1].split()[11:13])
    rc, out, err = p.quit()
    if line != "palloc: PALLOC_HTTP: the program closed the endpoint's socket; the endpoint stops\n" \
            or rc != 0 or out != 'bye\n' or err.count('\n') != 1 or cpu1 - cpu0 > 50:
        fail(f'closed fds: line {line!r}, rc {rc}, out {out!r}, err {err!r}, '
             f'{cpu1 - cpu0} ticks of CPU in 1 s')
    else:
        ok('a program that closes the endpoint\'s fds: one line, the endpoint stops, no spin')

# ---- a daemon that closes every fd, opens its own files in their numbers, then forks -------------
# The server thread has not noticed yet (it sleeps in poll): the child's fork hook must not close
# the number the listener had, which now names a file of the program's.
p = Prog(':0')
if p.port:
    p.cmd('closefds')
    kept = p.cmd('forkfds')
    rc, out, err = p.quit()
    if not kept or rc != 0 or out != 'bye\n':
        fail(f'closefds then fork: rc {rc}, out {out!r}, err {err!r}')
    else:
        ok('closefds then fork: the child keeps the program\'s files')

# ---- the program reuses the numbers while a delta's profile is being built ----------------------
# The delta's end waits for the writer lock (held by a profile write to a full pipe nobody reads);
# meanwhile the program closes its fds and makes sockets of its own in the numbers. Once the lock
# is free the profile is built; the response must not go to the program's sockets.
p = Prog(':0')
if p.port:
    s = socket.create_connection(('127.0.0.1', p.port), timeout=10)
    s.sendall(b'GET /debug/pprof/heap?seconds=1 HTTP/1.1\r\n\r\n')
    time.sleep(0.3)
    p.cmd('hold')
    time.sleep(1.2)  # the delta's window is over: the server waits for the lock
    p.cmd('socks')
    p.cmd('release')
    time.sleep(0.5)
    clean = p.cmd('checksocks')
    rc, out, err = p.quit()
    s.close()
    if not clean or rc != 0 or out != 'bye\n':
        fail(f'numbers reused during a build: rc {rc}, out {out!r}, err {err!r}')
    else:
        ok('numbers reused while a delta was built: nothing sent to the program\'s sockets')

# ---- addresses that cannot be served, a unix socket ----------------------------------------------
blocker = socket.socket()
blocker.bind(('127.0.0.1', 0))
blocker.listen(1)
bport = blocker.getsockname()[1]
for spec, want in [(f'127.0.0.1:{bport}', f'palloc: PALLOC_HTTP: cannot listen on 127.0.0.1:{bport}: '
                    'Address already in use; no endpoint\n'),
                   ('unix:/nonexistent/dir/p.sock', 'palloc: PALLOC_HTTP: cannot listen on '
                    '/nonexistent/dir/p.sock: No such file or directory; no endpoint\n'),
                   ('example.com:80', "palloc: PALLOC_HTTP=example.com:80: 'example.com' is not an "
                    'IPv4 address (names other than localhost are not looked up); no endpoint\n')]:
    p = Prog(spec)
    p.cmd('keep')
    rc, out, err = p.quit()
    if rc != 0 or out != 'bye\n' or err != want:
        fail(f'PALLOC_HTTP={spec}: rc {rc}, out {out!r}, err {err!r}, want {want!r}')
    else:
        ok(f'PALLOC_HTTP={spec}: one line, the program runs on')
blocker.close()
sock = os.path.join(tmp, 'palloc.%p.sock')
p = Prog('unix:' + sock)
time.sleep(0.3)
path = sock.replace('%p', str(p.p.pid))
try:
    u = socket.socket(socket.AF_UNIX)
    u.connect(path)
    u.sendall(b'GET /debug/pprof/cmdline HTTP/1.1\r\n\r\n')
    r = b''
    while True:
        b = u.recv(4096)
        if not b:
            break
        r += b
    if not r.startswith(b'HTTP/1.1 200 ') or not r.endswith(prog.encode()):
        fail(f'unix socket: {r[:200]!r}')
except OSError as e:
    fail(f'unix socket {path}: {e}')
rc, out, err = p.quit()
if rc != 0 or err or os.path.exists(path):
    fail(f'unix socket run: rc {rc}, err {err!r}, socket left: {os.path.exists(path)}')
else:
    ok('unix socket with %p: served, removed at exit')

print(f'{len(failures)} failures' + (f'; skipped: {", ".join(skipped)}' if skipped else ''))
sys.exit(1 if failures else 0)
