#!/usr/bin/env python3
"""fetch_hostile.py PALLOC - `palloc top http://...` (tools/palloc/fetch.c) against servers
that answer badly: each case ends with exit 1 and one line on stderr, never a signal, a
sanitizer's report or a wait past its bound.

The responses are sized to leave one byte of fetch.c's read buffer (64 KiB, then 128 KiB)
unread: the bytes of a response are not a C string, and a parse that looked for a NUL past
them read outside the buffer. The sanitize suite runs this under ASan, told to fill all of a
new block (not only its first 4 KiB) with non-zero bytes, so that no stray NUL ends the read.
"""
import os, socket, subprocess, sys, threading

palloc = sys.argv[1]
env = dict(os.environ, ASAN_OPTIONS='max_malloc_fill_size=1073741824:malloc_fill_byte=190:'
           + os.environ.get('ASAN_OPTIONS', ''))
failures = []


def serve(resp):
    """A server on a free loopback port that answers every connection with resp, then closes."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(4)

    def run():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                c.recv(65536)
                c.sendall(resp)
            except OSError:
                pass
            c.close()

    threading.Thread(target=run, daemon=True).start()
    return s


def pad(head, size, fill=b'x'):
    return head + fill * (size - len(head))


cases = [
    # a status other than 200, no body, the head padded by a long header to the buffer's size
    ('error status, 64 KiB head',
     pad(b'HTTP/1.1 503 Busy\r\nX-Pad: ', 65535 - 4) + b'\r\n\r\n', 'HTTP 503'),
    ('error status, 128 KiB head',
     pad(b'HTTP/1.1 404 Not Found\r\nX-Pad: ', 131071 - 4) + b'\r\n\r\n', 'HTTP 404'),
    # a chunked body whose last chunk size runs to the end of the buffer
    ('chunked, size digits to the end',
     pad(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 65535, b'f'), 'chunked'),
    # an error body without a newline, up to the end of the buffer
    ('error body without a newline',
     pad(b'HTTP/1.1 500 Oops\r\n\r\n', 65535, b'e'), 'HTTP 500'),
    ('garbage', b'\x00\x01garbage' * 100, 'not an HTTP response'),
    ('head only, no blank line', pad(b'HTTP/1.1 200 OK\r\nX: ', 65535), 'not an HTTP response'),
    ('redirect', b'HTTP/1.1 302 Found\r\nLocation: http://example.com/\r\nContent-Length: 0\r\n\r\n',
     'HTTP 302'),
    ('body cut short', b'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc', 'cut short'),
    ('not a profile', b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', ''),
]
for name, resp, want in cases:
    s = serve(resp)
    port = s.getsockname()[1]
    try:
        r = subprocess.run([palloc, 'top', f'http://127.0.0.1:{port}/debug/pprof/heap'],
                           capture_output=True, text=True, errors='replace', timeout=30, env=env)
        code, err = r.returncode, r.stderr
    except subprocess.TimeoutExpired:
        code, err = 'timeout', ''
    s.close()
    if code != 1 or err.count('\n') != 1 or want not in err:
        failures.append(name)
        print(f'FAIL: {name}: exit {code}, stderr {err[:600]!r}')
    else:
        print(f'ok {name}: {err.strip()[:120]}')

print(f'{len(failures)} failures')
sys.exit(1 if failures else 0)
