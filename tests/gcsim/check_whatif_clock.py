#!/usr/bin/env python3
"""check_whatif_clock.py WHATIF_PROG CHURN_PROG DIR - the what-if's simulated clock and CPU limiter.

A stop-the-world collector stops the program for each pause, so in the what-if trace the clock
(`@T s`) runs on by every simulated pause, and `N%` is the simulated GC time over that clock
(Go's gc_cpu_fraction with 1 P). Go's GC CPU limiter (mgclimit.go) is a bucket of 1 CPU-second
per P that fills with GC time and drains with mutator time; once full, due cycles wait and the
heap overshoots, so GC time never exceeds 1 s + the mutator's time (+ the one cycle that crossed).

Every figure checked here is derived from the trace's own numbers: printed times are truncated
(fmtNSAsMS, whole ms for @T), so each is an interval [printed, printed + unit) and the checks hold
for every value in it.
  1. `@T` strictly increases, and by at least the previous cycle's pause.
  2. `N%` is (sum of pauses so far) / (@T + this pause).
  3. The bucket: before each cycle, GC time - mutator time (= @T - GC time) <= 1 s + one pause.
  4. The summary agrees with the last line.
Scenarios: the memory limit below the live heap (16 MiB live, 8 MiB limit: the goal is the live
heap, every 64 KiB batch is due), and the no-limit churn loop of tests/gcsim/bench, where the GC
time must be what a GOGC=100 pacer costs for the allocation the trace shows (allocated bytes /
mark rate), capped by the bucket."""
import os, re, subprocess, sys

N = r"\d+(?:\.\d+)?"
LINE = re.compile(r"^gc (\d+) @(\d+\.\d{3})s (\d+)%: (N)\+(N)\+(N) ms clock, .* "
                  r"(\d+)->(\d+)->(\d+) MB, (\d+) MB goal, ".replace("(N)", "(" + N + ")"))
SUMMARY = re.compile(r"^palloc: what-if GC summary: (\d+) cycles, estimated GC CPU ([\d.]+)%, "
                     r"peak heap ([\d.]+) MiB with GC.*mark rate (\d+) MB/s")
CAPACITY_MS = 1000.0  # the limiter's bucket: 1 CPU-second per P, 1 P
whatif_prog, churn_prog, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
failures = 0


def fail(*msg):
    global failures
    failures += 1
    print("FAIL:", *msg)


def unit_ms(s):
    """The truncation unit of a fmtNSAsMS field: 1 ms from 10 ms, else its last decimal."""
    if "." in s:
        return 10.0 ** -len(s.split(".")[1])
    return 1.0 if int(s) >= 10 else 0.001


def run(name, argv, env_extra):
    path = os.path.join(outdir, "whatif-clock-%s.txt" % name)
    if os.path.exists(path):
        os.unlink(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALLOC_")}
    env.update(env_extra)
    env["PALLOC_TRACE"] = "1"
    env["PALLOC_TRACE_FILE"] = path
    subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    lines = open(path).read().splitlines()
    cycles = []
    for l in lines:
        m = LINE.match(l)
        if m:
            mark = m.group(5)
            cycles.append(dict(n=int(m.group(1)), t=float(m.group(2)) * 1000, pct=int(m.group(3)),
                               m=float(mark), mu=unit_ms(mark), heap0=int(m.group(7)),
                               marked=int(m.group(9)), goal=int(m.group(10))))
    summary = [SUMMARY.match(l) for l in lines if SUMMARY.match(l)]
    print("%-8s %d cycles; %s; %s" % (name, len(cycles), lines[-2] if len(lines) > 1 else "",
                                      lines[-1] if lines else "(no output)"))
    return cycles, summary[0] if summary else None


def check_clock(name, cycles, summary):
    """Checks 1-4; returns (GC ms low, high, mutator ms low, high) at the last cycle's end."""
    if not cycles or summary is None:
        fail(name, "no cycles or no summary")
        return None
    g_lo = g_hi = 0.0  # sum of the pauses before cycle i
    m_max = max(c["m"] + c["mu"] for c in cycles)
    bad_t = bad_pct = bad_bucket = 0
    for i, c in enumerate(cycles):
        if c["n"] != i + 1:
            fail(name, "cycle number", c["n"], "at", i + 1)
        if i:
            p = cycles[i - 1]
            # true T_i >= true T_{i-1} + true pause_{i-1}; printed values lose < 1 ms and < mu
            if c["t"] <= p["t"] or c["t"] + 1.0 < p["t"] + p["m"]:
                bad_t += 1
                if bad_t <= 3:
                    fail(name, "@T does not advance by the pause: gc %d @%.3f (pause %.3g ms), "
                         "gc %d @%.3f" % (p["n"], p["t"] / 1000, p["m"], c["n"], c["t"] / 1000))
        # the bucket before this cycle: GC time - mutator time, mutator = T - GC (1 P), so
        # GC - mutator = 2 GC - T, at least 2 g_lo - (t + 1 ms): the same lower bound of GC on
        # both sides (with g_hi for the mutator's, the truncations of ~100 printed pauses, up to
        # 1 ms each, made the bound fail where the limiter held)
        mut_hi = c["t"] + 1.0 - g_lo
        if g_lo - mut_hi > CAPACITY_MS + m_max:
            bad_bucket += 1
            if bad_bucket <= 3:
                fail(name, "limiter: gc %d starts with %.0f ms of GC against %.0f ms of mutator "
                     "(bucket of %.0f ms)" % (c["n"], g_lo, mut_hi, CAPACITY_MS))
        g_lo += c["m"]
        g_hi += c["m"] + c["mu"]
        f_lo = g_lo / (c["t"] + 1.0 + c["m"] + c["mu"])
        f_hi = g_hi / (c["t"] + c["m"])
        if not int(100 * f_lo) - 1 <= c["pct"] <= int(100 * min(f_hi, 1.0)) + 1:
            bad_pct += 1
            if bad_pct <= 3:
                fail(name, "gc %d: %d%% GC CPU, but its pauses over its clock give %.1f..%.1f%%"
                     % (c["n"], c["pct"], 100 * f_lo, 100 * f_hi))
    if int(summary.group(1)) != len(cycles):
        fail(name, "summary cycles", summary.group(1), "lines", len(cycles))
    if float(summary.group(2)) > cycles[-1]["pct"] + 1:
        fail(name, "summary share", summary.group(2), "above the last line's", cycles[-1]["pct"])
    last = cycles[-1]
    w_lo, w_hi = last["t"] - g_hi + last["m"], last["t"] + 1.0 - g_lo + last["m"] + last["mu"]
    print("%-8s GC %.0f..%.0f ms, mutator %.0f..%.0f ms, last line %d%%, %d bad @T, %d bad %%, "
          "%d over the bucket" % (name, g_lo, g_hi, w_lo, w_hi, last["pct"], bad_t, bad_pct,
                                  bad_bucket))
    return g_lo, g_hi, max(w_lo, 0.0), w_hi, m_max


# 1. the memory limit below the live heap (issue 12 item 9): back-to-back cycles until the
#    bucket is full, then at most ~50%: a few hundred cycles at most, not one per batch
env = {"PALLOC_MEMLIMIT": "8MiB", "PALLOC_TRACE_MARKRATE": "800MiB"}
cycles, summary = run("limit", [whatif_prog, "16", "512", "4096"], env)
r = check_clock("limit", cycles, summary)
if r:
    g_lo, g_hi, w_lo, w_hi, m_max = r
    # the bucket bounds the cycles: each costs at least the smallest pause printed
    m_min = min(c["m"] for c in cycles if c["m"] > 0)
    bound = (CAPACITY_MS + w_hi + m_max) / m_min + 1
    if len(cycles) > bound:
        fail("limit", len(cycles), "cycles; the limiter allows at most %.0f" % bound)
    # Go's limiter lets the heap overshoot its goal (at most the live heap, 16 MiB) rather
    # than collect: 512 MiB of churn against a bucket that is full
    peak = float(summary.group(3))
    if g_lo >= CAPACITY_MS - m_max and peak < 2 * max(c["goal"] for c in cycles):
        fail("limit", "peak heap %.1f MiB: no overshoot although the limiter is full" % peak)

# 2. the churn loop without a limit: GOGC=100 costs (allocated bytes / mark rate) of GC time,
#    capped by the bucket at 1 s + the mutator's time
cycles, summary = run("churn", [churn_prog, "4000000"], {})
r = check_clock("churn", cycles, summary)
if r and summary:
    g_lo, g_hi, w_lo, w_hi, m_max = r
    rate_mib_ms = int(summary.group(4)) * 1e6 / 2**20 / 1000.0  # MB/s -> MiB/ms
    # bytes allocated between cycles: heap at cycle i+1 - marked at cycle i (floored MiB each)
    alloc = cycles[0]["heap0"] + sum(cycles[i + 1]["heap0"] - cycles[i]["marked"]
                                     for i in range(len(cycles) - 1))
    cost = alloc / rate_mib_ms  # ms of marking a GOGC=100 collector spends on that allocation
    want_lo = min(0.9 * cost, CAPACITY_MS) - 2 * m_max
    want_hi = min(1.1 * cost, CAPACITY_MS + w_hi) + m_max
    p_lo = 100 * max(want_lo, 0) / (max(want_lo, 0) + w_hi)
    p_hi = 100 * want_hi / (want_hi + w_lo) if want_hi + w_lo > 0 else 100
    print("churn    %d MiB allocated at %.2f MiB/ms: unlimited GC cost %.0f ms; expect GC "
          "%.0f..%.0f ms, %.1f..%.1f%%" % (alloc, rate_mib_ms, cost, want_lo, want_hi, p_lo, p_hi))
    if not (want_lo <= g_hi and g_lo <= want_hi):
        fail("churn", "GC time %.0f..%.0f ms, expected %.0f..%.0f" % (g_lo, g_hi, want_lo, want_hi))
    if not int(p_lo) - 1 <= cycles[-1]["pct"] <= p_hi + 1:
        fail("churn", "GC CPU %d%%, expected %.1f..%.1f%%" % (cycles[-1]["pct"], p_lo, p_hi))

print(failures, "failures")
sys.exit(1 if failures else 0)
