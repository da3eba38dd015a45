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
    # --base: the new profile's graph, each frame red if its stack grew since the base, blue if
    # it shrank, grey if unchanged; data-b is the same stack's total in the base profile
    base, grown = os.path.join(tmp, 'b.pb.gz'), os.path.join(tmp, 'g.pb.gz')
    run([mkprofile, 'heap', base, '1500', '5'])
    run([mkprofile, 'grown', grown, '1500', '5'])
    svg = run([palloc, 'flame', '--base', base, grown])
    root = ET.fromstring(svg)
    grew = shrank = same = bad = 0
    for g in root.iter(SVG + 'g'):
        if g.get('class') != 'f':
            continue
        v, b = int(g.get('data-v')), int(g.get('data-b'))
        fill = g.find(SVG + 'rect').get('fill')
        hue = fill.split('(')[1].split(',')[0]
        sat = fill.split(',')[1]
        if v > b:
            grew += 1
            bad += hue != '0' or sat == '0%'
        elif v < b:
            shrank += 1
            bad += hue != '218'
        else:
            same += 1
            bad += sat != '0%'
    check(bad == 0 and grew > 3 and same > 3 and root.get('data-diff') == '1',
          'diff colours: %d grew (red), %d shrank (blue), %d unchanged (grey)' % (grew, shrank, same))
    # the other way round, everything that grew has shrunk: blue
    rev = ET.fromstring(run([palloc, 'flame', '--base', grown, base]))
    blue = [g for g in rev.iter(SVG + 'g') if g.get('class') == 'f'
            and int(g.get('data-v')) < int(g.get('data-b'))]
    check(len(blue) > 3 and all(g.find(SVG + 'rect').get('fill').startswith('hsl(218,') for g in blue),
          'diff colours reversed: %d shrank (blue)' % len(blue))
    total_b = top_total(base, 'inuse_space')
    check(next(int(g.get('data-b')) for g in root.iter(SVG + 'g') if g.get('data-d') == '0') == total_b,
          'diff: the root\'s base value is the base total')
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


def chromium_cmd(size):
    profile_dir = tempfile.mkdtemp(prefix='chromium.', dir=tmp)
    return [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            '--hide-scrollbars', '--window-size=' + size, '--user-data-dir=' + profile_dir]


def dom(fragment='', size='1400,900', path=None, extra=()):
    cmd = chromium_cmd(size) + list(extra) + ['--dump-dom', 'file://' + (path or svgpath) + fragment]
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
check(m is not None and float(m.group(1)) == 10.0 and float(m.group(2)) > 1370,
      'zoomed frame spans the full width: %s' % ((m.groups() if m else None),))
d = dom('#hover=render_page')
m = re.search(r'<text id="status"[^>]*>([^<]*)</text>', d)
check(m is not None and re.match(r'render_page: [\d.]+[kMG]?B \(\d+\.\d\d%\)', m.group(1)),
      'hover shows function, bytes and percent: %r' % (m.group(1) if m else None))


def root_rect(d):
    m = re.search(r'data-d="0"[^>]*><title>[^<]*</title><rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', d)
    return tuple(float(x) for x in m.groups()) if m else None


# the graph fills the window: 1400 and 800 pixels wide, 10 px margins
for size, want in (('1400,900', 1380), ('800,600', 780)):
    r = root_rect(dom('', size))
    check(r is not None and abs(r[2] + 0.5 - want) < 2, 'window %s: root frame %s px wide' % (size, r and r[2]))
# ... and reflows when the window is resized: the SVG in an iframe that a page narrows from
# 1200 to 700 pixels, then reports the root frame's width
page = os.path.join(tmp, 'resize.html')
with open(page, 'w') as f:
    f.write('<html><body style="margin:0"><iframe id="f" src="flame.svg" style="border:0" width="1200" '
            'height="500"></iframe><pre id="out"></pre><script>\n'
            'var f = document.getElementById("f");\n'
            'function w() { return f.contentDocument.querySelector("g.f[data-d=\'0\'] rect").getAttribute("width"); }\n'
            'f.onload = function () { var before = w(); f.width = 700;\n'
            '  setTimeout(function () { document.getElementById("out").textContent = "widths " + before + " " + w(); }, 500); };\n'
            '</script></body></html>')
d = dom('', '1400,900', page, ['--allow-file-access-from-files', '--virtual-time-budget=5000'])
m = re.search(r'widths ([\d.]+) ([\d.]+)', d)
check(m is not None and abs(float(m.group(1)) - 1179.5) < 2 and abs(float(m.group(2)) - 679.5) < 2,
      'resized from 1200 to 700 px: root frame %s' % (m.groups() if m else None,))
# search: matching frames painted, their share shown, a stack counted once
d = dom('#search=render')
share = re.search(r'data-search-share="([\d.]+)"', d)
out = run([palloc, 'top', '--unit', 'B', '-i', 'alloc_space', '--all', '--focus', 'render', prof])
want = int(re.search(r'accounting for (\d+)B', out).group(1))
want_share = want / top_total(prof, 'alloc_space')
status = re.search(r'<text id="status"[^>]*>([^<]*)</text>', d)
check(share is not None and abs(float(share.group(1)) - want_share) < 1e-5 and
      status is not None and status.group(1).startswith('Matched "render"'),
      'search "render": share %s (want %.6f), status %r' % (share and share.group(1), want_share,
                                                             status and status.group(1)))
check(d.count('data-match="1"') >= 1 and '#e040fb' in d, 'search: matches painted')
# icicle: the root on top
r = root_rect(dom('#icicle'))
check(r is not None and r[1] < 60, 'icicle: root frame at the top (y=%s)' % (r and r[1]))
# a diff in the browser: after the script laid it out (and a search painted and unpainted it),
# frames that grew are still red, shrunk ones blue, unchanged ones grey
dbase, dgrown = os.path.join(tmp, 'db.pb.gz'), os.path.join(tmp, 'dg.pb.gz')
run([mkprofile, 'heap', dbase, '600', '5'])
run([mkprofile, 'grown', dgrown, '600', '5'])
diffsvg = os.path.join(tmp, 'diff.svg')
with open(diffsvg, 'w') as f:
    f.write(run([palloc, 'flame', '--base', dbase, dgrown]))
d = dom('#search=visit', path=diffsvg)
bad = shown = 0
for m in re.finditer(r'<g class="f"[^>]*?data-v="(\d+)" data-s="\d+" data-b="(\d+)"[^>]*>(?:(?!</g>).)*?'
                     r'<rect[^>]*fill="([^"]+)"', d, re.S):
    v, b, fill = int(m.group(1)), int(m.group(2)), m.group(3)
    shown += 1
    if fill == '#e040fb':
        continue  # a search match
    want = 'hsl(0,' if v > b else 'hsl(218,' if v < b else 'hsl(0,0%'
    bad += not fill.startswith(want)
check(shown > 10 and bad == 0 and 'data-match="1"' in d,
      'diff in Chromium: %d frames, colours kept through layout and search (%d wrong)' % (shown, bad))
# the screenshots of both sizes are written for a human look
shots = os.environ.get('FLAME_SHOTS')
if shots:
    for size in ('1400,900', '800,600'):
        subprocess.run(chromium_cmd(size) + ['--screenshot=%s/flame-%s.png' % (shots, size.replace(',', 'x')),
                                             'file://' + svgpath + '#search=render'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
sys.exit(1 if fails else 0)
