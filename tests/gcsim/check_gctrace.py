#!/usr/bin/env python3
"""check_gctrace.py EMITTER DIR - every line a real arena prints matches the strict pattern of
docs/gctrace.md, verbatim (Python's re has \\d and (?:...)), in both shapes, and the cycle
numbers run 1, 2, ... per arena."""
import os, re, subprocess, sys

N = r"\d+(?:\.\d+)?"
STRICT = re.compile(
    r"^gc (\d+) @(\d+\.\d{3})s (\d+)%: (N)\+(N)\+(N) ms clock, (N)\+(N)/(N)/(N)\+(N) ms cpu, "
    r"(\d+)->(\d+)->(\d+) MB, (\d+) MB goal, (?:(\d+) MB stacks, (\d+) MB globals, )?(\d+) P"
    r"( \(forced\))?$".replace("(N)", "(" + N + ")"))

emitter, out = sys.argv[1], os.path.join(sys.argv[2], "gctrace-emitted.txt")
subprocess.run([emitter, "emit", out], check=True)
lines = open(out).read().splitlines()
failures, shapes, expect = 0, set(), 1
for line in lines:
    m = STRICT.match(line)
    if not m:
        print("no match:", line)
        failures += 1
        continue
    n = int(m.group(1))
    if n != expect and n != 1:
        print("cycle number", n, "expected", expect, ":", line)
        failures += 1
    expect = n + 1
    shapes.add("1.18+" if m.group(16) is not None else "legacy")
if len(lines) < 10 or shapes != {"1.18+", "legacy"}:
    print("too few lines or a shape missing:", len(lines), shapes)
    failures += 1
print(len(lines), "lines,", failures, "failures")
sys.exit(1 if failures else 0)
