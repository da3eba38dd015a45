#!/usr/bin/env python3
"""check_robust.py TOOL WORKDIR - palloc-escape on bad inputs, and its command line.

A file that does not compile, a missing file, a missing compile database and a function too
deeply nested to analyze are each reported on stderr, make the exit status 1, and do not stop
the other files from being analyzed. An empty file is fine. A huge generated function is
analyzed in full. Usage errors exit 2. Flags come from compile_commands.json with -p.
"""
import json
import os
import subprocess
import sys
import time

tool, work = sys.argv[1], os.path.join(sys.argv[2], 'escape-robust')
os.makedirs(work, exist_ok=True)
failures = []


def write(name, text):
    path = os.path.join(work, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


# -p caches in $XDG_CACHE_HOME/palloc-escape by default: here, not in the user's home
env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, 'xdg'))


def run(args, timeout=120):
    return subprocess.run([tool] + args, capture_output=True, text=True, timeout=timeout, env=env)


def expect(cond, what, p=None):
    if not cond:
        failures.append(what + (f'\n  rc={p.returncode}\n  stdout={p.stdout[:500]}\n  stderr={p.stderr[:800]}' if p else ''))


good = write('good.c', '#include <stdlib.h>\nint f(void) { char *p = malloc(8); p[0] = 1; int r = p[0]; free(p); return r; }\n')
bad = write('bad.c', '#include <stdlib.h>\nint g(void) { char *p = malloc(8); return p[0] +; }\n')
empty = write('empty.c', '')
missing = os.path.join(work, 'no-such-file.c')
GOOD = f'{good}:2:25: malloc(8) does not escape'

p = run([bad, good])
expect(p.returncode == 1, 'a file that does not compile: exit 1', p)
expect(GOOD in p.stdout, 'the good file is still analyzed after a bad one', p)
expect('bad.c' in p.stderr and 'does not compile' in p.stderr, 'the bad file is named on stderr', p)
expect('bad.c' not in p.stdout, 'nothing reported from the bad file', p)

p = run([empty, good])
expect(p.returncode == 0 and p.stdout.strip() == GOOD, 'an empty file is no error', p)
expect('empty.c: no function is defined' in p.stderr, 'a file without functions is said so', p)

# a header-only library: its functions are reported at the header's lines, once, whichever
# files include it with the implementation macro
hol = write('hol.h', '#include <stdlib.h>\n#ifdef HOL_IMPLEMENTATION\n'
            'static int hol_tmp(void) { char *p = malloc(8); p[0] = 1; int r = p[0]; free(p); return r; }\n'
            'int hol_use(void) { return hol_tmp(); }\n#endif\n')
u1 = write('hol1.c', '#define HOL_IMPLEMENTATION\n#include "hol.h"\n')
u2 = write('hol2.c', '#define HOL_IMPLEMENTATION\n#include "hol.h"\nint two(void) { return hol_use(); }\n')
p = run([u1, u2])
expect(p.returncode == 0 and p.stdout.count('hol.h:3:38: malloc(8) does not escape') == 1,
       'a header-only library: its verdicts at the header, once', p)
p = run([hol])
expect(p.returncode == 0 and 'no function is defined' in p.stderr and 'HOL' not in p.stdout,
       'the header alone: nothing to analyze, and it is said why', p)

p = run([missing, good])
expect(p.returncode == 1 and GOOD in p.stdout, 'a missing file: exit 1, others analyzed', p)

# huge generated function: 20000 allocations, all analyzed
lines = ['#include <stdlib.h>', 'void huge(char **out) {']
for i in range(20000):
    lines.append(f'  char *p{i} = malloc({i % 64 + 1}); p{i}[0] = 1; free(p{i});')
lines += ['  out[0] = malloc(3);', '}']
huge = write('huge.c', '\n'.join(lines) + '\n')
t0 = time.time()
p = run([huge, good], timeout=300)
expect(p.returncode == 0, 'huge function: exit 0', p)
expect(p.stdout.count('does not escape') == 20001, f'huge function: 20000 candidates + good.c, got {p.stdout.count("does not escape")}', p)
expect('malloc(3) escapes to heap: stored through parameter out' in p.stdout, 'huge function: the escaping one', p)
print(f'huge function: {time.time() - t0:.1f}s')

# too deep to analyze: an error for that file (conservative verdicts), the others go on
deep = write('deep.c', '#include <stdlib.h>\nint deep(int *p) {\n  char *q = malloc(8);\n  free(q);\n  return '
             + '+'.join(['p[0]'] * 25000) + ';\n}\n')
p = run([deep, good], timeout=300)
expect(p.returncode == 1, 'too deep: exit 1', p)
expect('too deeply nested' in p.stderr, 'too deep: said on stderr', p)
expect(f'{deep}:3:13: malloc(8) escapes to heap: function too complex to analyze' in p.stdout,
       'too deep: its allocation is not a candidate', p)
expect(GOOD in p.stdout, 'too deep: the other file is analyzed', p)

# compile database: flags come from it (SIZE decides the verdict)
sized = write('sized.c', '#include <stdlib.h>\nvoid s(void) { char *p = malloc(SIZE); p[0] = 0; free(p); }\n')
db = os.path.join(work, 'build')
os.makedirs(db, exist_ok=True)
with open(os.path.join(db, 'compile_commands.json'), 'w') as f:
    json.dump([{'directory': work, 'file': 'sized.c',
                'arguments': ['cc', '-DSIZE=100000', '-c', '-o', 'sized.o', 'sized.c']},
               {'directory': work, 'file': good, 'arguments': ['cc', '-O2', '-c', good]}], f)
p = run(['-p', db, sized])
expect(p.returncode == 0 and 'malloc(SIZE) escapes to heap: too large for stack (100000 bytes' in p.stdout,
       '-p: the -D flag from compile_commands.json is used', p)
p = run(['-p', db])
expect(p.returncode == 0 and 'malloc(SIZE) escapes' in p.stdout and 'good.c:2:25: malloc(8) does not escape' in p.stdout,
       '-p without files: every file of the database', p)
expect(os.path.isdir(os.path.join(work, 'xdg', 'palloc-escape')), '-p caches in $XDG_CACHE_HOME/palloc-escape', p)
p = run(['-p', os.path.join(work, 'no-build-dir'), good])
expect(p.returncode == 1 and 'compile_commands.json' in p.stderr and GOOD in p.stdout,
       'a missing compile database: error, the named files still analyzed', p)
p = run([sized, '--', '-DSIZE=16'])
expect(p.returncode == 0 and 'malloc(SIZE) does not escape' in p.stdout, 'flags after --', p)

# whole program with -p: a named file's calls into another file of the database resolve to
# its summary; the other file is walked but not reported. The cache: a second run gives the
# same verdicts without parsing; a changed header (the callee's body) changes them.
wp = os.path.join(work, 'wp')
os.makedirs(wp, exist_ok=True)
with open(os.path.join(wp, 'h.h'), 'w') as f:
    f.write('static inline void note(char *p) { (void)p; }\n')
with open(os.path.join(wp, 'a.c'), 'w') as f:
    f.write('#include <stdlib.h>\n#include "h.h"\nvoid use(char *p);\n'
            'void a(void) { char *p = malloc(8); use(p); note(p); free(p); }\n')
with open(os.path.join(wp, 'b.c'), 'w') as f:
    f.write('void use(char *p) { p[0] = 1; }\n')
with open(os.path.join(wp, 'compile_commands.json'), 'w') as f:
    json.dump([{'directory': wp, 'file': n, 'arguments': ['cc', '-c', n]} for n in ('a.c', 'b.c')], f)
cache = os.path.join(work, 'wp-cache')
subprocess.run(['rm', '-rf', cache])
A = os.path.join(wp, 'a.c')
p = run(['-p', wp, '--cache', cache, A])
expect(p.returncode == 0 and p.stdout.strip() == f'{A}:4:26: malloc(8) does not escape',
       '-p: a call into another file of the database is not unknown; only the named file is reported', p)
expect(len(os.listdir(cache)) == 2, f'--cache: one entry per file, got {os.listdir(cache) if os.path.isdir(cache) else None}', p)
p2 = run(['-p', wp, '--cache', cache, A])
expect(p2.stdout == p.stdout, 'cache: the same verdicts on the second run', p2)
with open(os.path.join(wp, 'h.h'), 'w') as f:
    f.write('extern char *g;\nstatic inline void note(char *p) { g = p; }\n')
p3 = run(['-p', wp, '--cache', cache, A])
expect('malloc(8) escapes to heap: passed to note: stored to global g' in p3.stdout,
       'cache: a changed header invalidates the entries of the files that include it', p3)
p4 = run(['-p', wp, '--no-cache', A])
expect(p4.stdout == p3.stdout, '--no-cache gives the same verdicts', p4)
with open(os.path.join(cache, os.listdir(cache)[0]), 'r+b') as f:  # a damaged entry is a miss
    f.truncate(40)
p5 = run(['-p', wp, '--cache', cache, A])
expect(p5.returncode == 0 and p5.stdout == p3.stdout, 'cache: a truncated entry is ignored', p5)

# the cache keeps everything the verdicts depend on: every corpus file gives the same output
# from a warm cache as without one
corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
ccache = os.path.join(work, 'corpus-cache')
subprocess.run(['rm', '-rf', ccache])
for name in sorted(os.listdir(corpus)):
    if not name.endswith('.c'):
        continue
    src = open(os.path.join(corpus, name)).read()
    args = [a for line in src.splitlines() if '// ARGS:' in line for a in line.split('// ARGS:')[1].split()]
    args += [os.path.join(corpus, w) for line in src.splitlines() if '// WITH:' in line
             for w in line.split('// WITH:')[1].split()]
    f = os.path.join(corpus, name)
    cold = run(args + ['--cache', ccache, f])
    warm = run(args + ['--cache', ccache, f])
    none = run(args + [f])
    expect(cold.stdout == none.stdout and warm.stdout == none.stdout,
           f'cache: {name}: the same verdicts cold, warm and without a cache', warm)

# relative names from the directory the tool runs in, with a database whose commands have a
# directory of their own (libclang changes the process's directory while it parses): a file
# not in the database after one that is, and a relative --cache, both still found there
loose = write('loose.c', '#include <stdlib.h>\nvoid l(void) { char *p = malloc(4); free(p); }\n')
sub = os.path.join(work, 'sub')
os.makedirs(sub, exist_ok=True)
subprocess.run(['rm', '-rf', os.path.join(sub, 'relcache')])
p = subprocess.run([os.path.abspath(tool), '-p', '../build', '--cache', 'relcache', '../sized.c',
                    '../loose.c'], cwd=sub, env=env, capture_output=True, text=True, timeout=60)
expect(p.returncode == 0 and '../loose.c:2:26: malloc(4) does not escape' in p.stdout and
       '../sized.c:2:26: malloc(SIZE) escapes' in p.stdout and
       os.path.isdir(os.path.join(sub, 'relcache')),
       'relative names and --cache resolve from the directory the tool was started in', p)

# usage
for args in ([], ['--bogus', good], ['--max-stack', 'x', good], ['--profile'], ['-p'],
             ['--top', '-1', good], ['--realloc'],
             ['-x', good], ['-m=3', good], ['--json=1', good], ['--max-stack=', good]):
    p = run(args)
    expect(p.returncode == 2 and p.stderr.startswith('palloc-escape: '), f'usage error {args}: exit 2', p)
# an option's value joined or apart, and options before or after the files
for args in (['--max-stack', '4', good], ['--max-stack=4', good], [good, '--max-stack', '4']):
    p = run(args)
    expect(p.returncode == 0 and 'too large for stack (8 bytes > 4)' in p.stdout, f'{args}', p)
p = run(['--profile', os.path.join(work, 'none.pb.gz'), good])
expect(p.returncode == 1 and 'none.pb.gz' in p.stderr, 'a missing profile: exit 1', p)

# -m=2 and --json
p = run(['-m=2', write('esc.c', 'char *g;\nvoid e(void) { char *p = __builtin_malloc(1); extern void *malloc(unsigned long); p = malloc(4); g = p; }\n')])
expect('  flow: p = malloc(4)' in p.stdout and '  from stored to global g' in p.stdout, '-m=2 flow lines', p)
p = run(['--json', '-m=2', good, os.path.join(work, 'esc.c')])
try:
    recs = json.loads(p.stdout)
    esc = [r for r in recs if r['kind'] == 'alloc' and r['escapes']]
    expect(any(r['reason'] == 'stored to global g' and r['flow'] for r in esc), '--json: reason and flow', p)
    expect(any(not r['escapes'] and r['size'] == 8 for r in recs), '--json: candidate with size', p)
except ValueError as e:
    expect(False, f'--json output is not JSON: {e}', p)

for f in failures:
    print('FAIL:', f)
print('robustness:', 'FAIL' if failures else 'ok')
sys.exit(1 if failures else 0)
