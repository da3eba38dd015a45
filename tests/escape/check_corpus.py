#!/usr/bin/env python3
"""check_corpus.py TOOL FILE.c... - runs palloc-escape on the annotated corpus and compares
every verdict line both ways, as Go's test/run.go does with errorcheck files:

  - a line annotated  // ERROR "re1" "re2"  must get exactly one message matching each regex,
    and no other message;
  - a line without annotation must get no message at all;
  - '// ARGS: ...' anywhere in a file adds command-line options for that file;
  - '// WITH: other.c' analyzes other.c (same directory) together with the file: one
    program, calls between them resolved (whole-program mode);
  - verdicts in other files of the corpus directory (a header the file includes, a WITH
    file) are compared with that file's annotations the same way; each file's figures are
    counted once;
  - a trailing SAFE on an annotation says the allocation truly stays local although the tool
    (conservatively) reports it escaping: it counts as a false negative in the recall figure.

Soundness is checked on its own: a 'does not escape' verdict on a line whose annotation does
not expect one is reported as UNSOUND. Prints precision and recall of the stack-candidate
verdicts (truth: 'does not escape' annotations plus SAFE ones).
"""
import os
import re
import shlex
import subprocess
import sys

ANN = re.compile(r'//\s*ERROR\s+(.*)$')
REGEX = re.compile(r'"((?:[^"\\]|\\.)*)"')
OUT = re.compile(r'^(.*?):(\d+):(\d+): (.*)$')


def annotations(path):
    src = open(path).read().splitlines()
    args, with_ = [], []
    want = {}     # line -> [regex]
    safe = set()  # lines marked SAFE
    for i, line in enumerate(src, 1):
        m = re.search(r'//\s*ARGS:\s*(.*)$', line)
        if m:
            args += shlex.split(m.group(1))
        m = re.search(r'//\s*WITH:\s*(.*)$', line)
        if m:
            with_ += [os.path.join(os.path.dirname(path), f) for f in shlex.split(m.group(1))]
        m = ANN.search(line)
        if m:
            want[i] = REGEX.findall(m.group(1))
            if re.search(r'"\s*SAFE\s*$', line):
                safe.add(i)
    return args, with_, want, safe


def compare(path, want, safe, got, errors, stats):
    for line in sorted(set(want) | set(got)):
        msgs = list(got.get(line, []))
        stats['verdicts'] += len(msgs)
        for rx in want.get(line, []):
            hit = next((k for k, msg in enumerate(msgs) if re.search(rx, msg)), None)
            if hit is None:
                errors.append(f'{path}:{line}: missing verdict matching "{rx}" (got {got.get(line)})')
            else:
                msgs.pop(hit)
        for msg in msgs:
            errors.append(f'{path}:{line}: unexpected verdict: {msg}')
        expect_cand = any('does not escape' in rx for rx in want.get(line, []))
        n_cand = sum('does not escape' in msg for msg in got.get(line, []))
        truth_cand = sum('does not escape' in rx for rx in want.get(line, [])) + (1 if line in safe else 0)
        if n_cand and not expect_cand:
            stats['unsound'] += n_cand
            errors.append(f'{path}:{line}: UNSOUND: reported as a stack candidate')
        tp = min(n_cand, truth_cand)
        stats['tp'] += tp
        stats['fp'] += n_cand - tp
        stats['fn'] += truth_cand - tp


def check(tool, path, counted):
    args, with_, want, safe = annotations(path)
    p = subprocess.run([tool] + args + [path] + with_, capture_output=True, text=True, timeout=60)
    errors = []
    if p.returncode != 0:
        errors.append(f'{path}: exit status {p.returncode}: {p.stderr.strip()}')
    got = {}      # file -> line -> [messages]
    here = os.path.dirname(os.path.abspath(path))
    for out in p.stdout.splitlines():
        m = OUT.match(out)
        f = m and os.path.abspath(m.group(1))
        if not m or os.path.dirname(f) != here or not os.path.exists(f):
            errors.append(f'{path}: unparsable output line: {out}')
            continue
        got.setdefault(f, {}).setdefault(int(m.group(2)), []).append(m.group(4))
    stats = {'tp': 0, 'fp': 0, 'fn': 0, 'unsound': 0, 'verdicts': 0}
    files = [os.path.abspath(path)] + [f for f in got if f != os.path.abspath(path)]
    for f in files:
        _, _, w, sf = annotations(f) if f != os.path.abspath(path) else (None, None, want, safe)
        s = stats if f not in counted else {'tp': 0, 'fp': 0, 'fn': 0, 'unsound': 0, 'verdicts': 0}
        compare(f, w, sf, got.get(f, {}), errors, s)
        stats['unsound'] += s['unsound'] if s is not stats else 0
        counted.add(f)
    return errors, stats


def main():
    tool, files = sys.argv[1], sys.argv[2:]
    total = {'tp': 0, 'fp': 0, 'fn': 0, 'unsound': 0, 'verdicts': 0}
    errors = []
    counted = set()
    for f in files:
        e, s = check(tool, f, counted)
        errors += e
        for k in total:
            total[k] += s[k]
    for e in errors:
        print(e)
    tp, fp, fn = total['tp'], total['fp'], total['fn']
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    print(f'corpus: {len(files)} files, {total["verdicts"]} verdict lines; stack candidates: '
          f'{tp} true, {fp} false (unsound), {fn} missed; precision {prec:.3f}, recall {rec:.3f}')
    if total['verdicts'] == 0:
        print('no verdicts at all: the tool produced nothing')
        return 1
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
