#!/usr/bin/env python3
"""flame.py MODE PALLOC MKPROFILE [DEMO LIBPALLOC] - the flame graph and the collapsed stacks.

MODE svg: without a browser. `palloc folded` lines sum to the profile's total for every sample
type (compared with `palloc top --unit B`), and each line's value equals that stack's value
summed over the samples; the SVG is well-formed XML whose frames nest (children inside their
parent, widths summing to at most the parent's), whose root is the total, and that carries its
script (self-contained: no external reference).
MODE browser: headless Chromium from Debian opens the SVG of a real profile (the demo's) and the
DOM after the script ran must show the expected function names drawn as labels; then zoom
(#zoom=NAME) and hover (#hover=NAME, a real mouseover event) are checked the same way.
Exit 77 (skipped) if chromium is not installed.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

mode, palloc, mkprofile = sys.argv[1:4]
demo = sys.argv[4] if len(sys.argv) > 5 else None
lib = sys.argv[5] if len(sys.argv) > 5 else None
tmp = tempfile.mkdtemp(prefix='palloc-flame.')
fails = 0
SVG = '{http://www.w3.org/2000/svg}'


def run(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit('%s: exit %d: %s' % (' '.join(cmd), r.returncode, r.stderr))
    return r.stdout


def check(ok, what):
    global fails
    print('ok:' if ok else 'FAIL:', what)
    fails += not ok


def top_total(prof, si):
    out = run([palloc, 'top', '--unit', 'B', '-i', si, prof])
    m = re.search(r'of (-?\d+)B? total', out)
    return int(m.group(1))


def check_svg(prof, si):
    svg = run([palloc, 'flame', '-i', si, prof])
    root = ET.fromstring(svg)  # raises on malformed XML
    check('href=' not in svg and 'src=' not in svg and root.find(SVG + 'script') is not None,
          '%s: self-contained, script embedded' % si)
    frames = []
    for g in root.iter(SVG + 'g'):
        if g.get('class') == 'f':
            frames.append((int(g.get('data-d')), float(g.get('data-x')), float(g.get('data-w')),
                           int(g.get('data-v')), g.get('data-n'), g))
    total = top_total(prof, si)
    roots = [f for f in frames if f[0] == 0]
    check(len(roots) == 1 and roots[0][3] == total and roots[0][2] == 1.0,
          '%s: one root frame of the total %d' % (si, total))
    # nesting: every frame at depth d>0 lies inside exactly one frame at depth d-1 whose value
    # is at least the sum of its children's
    by_depth = {}
    for f in frames:
        by_depth.setdefault(f[0], []).append(f)
    bad = 0
    child_sum = {}
    for f in frames:
        if f[0] == 0:
            continue
        parents = [p for p in by_depth[f[0] - 1] if p[1] - 1e-9 <= f[1] and f[1] + f[2] <= p[1] + p[2] + 1e-9]
        if len(parents) != 1:
            bad += 1
            continue
        child_sum[id(parents[0][5])] = child_sum.get(id(parents[0][5]), 0) + f[3]
    for f in frames:
        if child_sum.get(id(f[5]), 0) > f[3]:
            bad += 1
    check(bad == 0 and len(frames) > 3, '%s: %d frames nest in their parents' % (si, len(frames)))
    return svg


def check_folded(prof, si):
    lines = run([palloc, 'folded', '-i', si, prof]).splitlines()
    stacks = {}
    for l in lines:
        stack, v = l.rsplit(' ', 1)
        check(stack not in stacks, 'folded %s: stack listed once' % si) if stack in stacks else None
        stacks[stack] = int(v)
    total = top_total(prof, si)
    check(sum(stacks.values()) == total and len(stacks) > 3,
          'folded %s: %d stacks sum to the total %d' % (si, len(stacks), total))
    return stacks


if mode == 'svg':
    prof = os.path.join(tmp, 'h.pb.gz')
    run([mkprofile, 'heap', prof, '2000', '11'])
    for si in ('alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space'):
        check_svg(prof, si)
        check_folded(prof, si)
    # names needing XML escapes survive: the C++ name of the synthetic profile
    svg = run([palloc, 'flame', '-i', 'alloc_space', prof])
    names = {g.get('data-n') for g in ET.fromstring(svg).iter(SVG + 'g')}
    check('ns::Pool<int>::allocate(unsigned long)' in names, 'C++ name escaped and restored')
    # a deep single stack: folded line = exactly that stack (outermost first)
    stacks = check_folded(prof, 'alloc_space')
    check(all(s.split(';')[0] != '' for s in stacks), 'no empty frame names')
    sys.exit(1 if fails else 0)

# browser mode
chromium = shutil.which('chromium') or shutil.which('chromium-browser')
if chromium is None:
    print('chromium not installed: skipped')
    sys.exit(77)
prof = os.path.join(tmp, 'demo.pb.gz')
env = dict(os.environ, LD_PRELOAD=lib, PALLOC_PROFILE=prof, PALLOC_SAMPLE_RATE='1')
run([demo], env=env)
svgpath = os.path.join(tmp, 'flame.svg')
with open(svgpath, 'w') as f:
    f.write(run([palloc, 'flame', '-i', 'alloc_space', prof]))
leak = next(n for n in re.findall(r'data-n="([^"]*)"', open(svgpath).read()) if n.startswith('leak_sessions'))


def dom(fragment=''):
    profile_dir = tempfile.mkdtemp(prefix='chromium.', dir=tmp)
    cmd = [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--user-data-dir=' + profile_dir, '--dump-dom', 'file://' + svgpath + fragment]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                       timeout=120)
    return r.stdout


def drawn(d):
    """labels the script drew completely: {name: x}"""
    return {m.group(2): float(m.group(1)) for m in
            re.finditer(r'<text x="([\d.]+)" y="[\d.]+" data-drawn="full">([^<]+)</text>', d)}


d = dom()
check('data-rendered="' in d, 'the script ran in Chromium')
labels = drawn(d)
for name in ('all', 'main', 'render_page', 'parse_request'):
    check(name in labels, 'Chromium drew the label %s' % name)
check(leak not in labels, '%s (2%% of alloc_space) is too narrow for its label' % leak)
d = dom('#zoom=' + leak)
labels = drawn(d)
check('data-zoom="%s"' % leak in d and leak in labels and 'render_page' not in labels,
      'clicked %s: its label drawn, render_page hidden' % leak)
m = re.search(r'data-n="%s"[^>]*><title>[^<]*</title><rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"'
              % re.escape(leak), d)
check(m is not None and float(m.group(1)) == 10.0 and float(m.group(2)) > 1170,
      'zoomed frame spans the full width: %s' % ((m.groups() if m else None),))
d = dom('#hover=render_page')
m = re.search(r'<text id="status"[^>]*>([^<]*)</text>', d)
check(m is not None and re.match(r'render_page: [\d.]+[kMG]?B \(\d+\.\d\d%\)', m.group(1)),
      'hover shows function, bytes and percent: %r' % (m.group(1) if m else None))
sys.exit(1 if fails else 0)
