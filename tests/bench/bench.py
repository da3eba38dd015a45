#!/usr/bin/env python3
"""bench.py - palloc's benchmark suite: overhead, memory and accuracy against its peers.

Run through tests/bench/run.sh (see tests/bench/README.md). Standard library only.
"""
import argparse
import bisect
import csv
import datetime
import gzip
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
MIMALLOC = LIBDIR + "/libmimalloc.so.2"
JEMALLOC = LIBDIR + "/libjemalloc.so.2"
TCMALLOC = LIBDIR + "/libtcmalloc.so.4"

WORKLOADS = ["churn", "larson", "realloc", "large", "longlived", "deep", "cfrac", "espresso",
             "barnes", "server", "mstress"]
CONFIGS = ["glibc", "mimalloc", "palloc-off", "palloc", "palloc-4k", "jemalloc", "jemalloc-prof",
           "tcmalloc-heapprof", "heaptrack"]
# Each profiler over the allocator it is built on: what turning profiling on costs by itself.
OWN_BASE = [("palloc", "mimalloc"), ("palloc-4k", "mimalloc"), ("jemalloc-prof", "jemalloc")]
# Extra configurations run on the deep workload only: frame-pointer unwinding against the
# default (libunwind).
DEEP_EXTRA = ["palloc-fp", "palloc-4k-fp"]
# Full-tracing tools: 10-100x slower; they run under a time cap and at most --trace-reps times.
TRACING = ["tcmalloc-heapprof", "heaptrack"]
BASE = "mimalloc"
# --lib NAME=PATH: another libpalloc.so run as configuration NAME, as "palloc" is (512 KiB, the
# profile written at exit): an older build beside the current one, paired with it.
EXTRA_LIBS = {}
JE_PROF = ["unknown"]
LIBINFO = ("?", "?", "?")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- configurations -----------------------------------------------------------------------
def config_cmd(cfg, argv, tmp, palloc_so, extra_env=None):
    """Returns (argv, env) for running argv under configuration cfg; outputs go to tmp/."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("PALLOC_", "MALLOC_CONF", "HEAPPROFILE", "HEAP_PROFILE")) or k == "LD_PRELOAD":
            del env[k]
    pre = []
    if cfg == "glibc":
        pass
    elif cfg == "mimalloc":
        env["LD_PRELOAD"] = MIMALLOC
    elif cfg in EXTRA_LIBS:
        env["LD_PRELOAD"] = EXTRA_LIBS[cfg]
        env["PALLOC_PROFILE"] = os.path.join(tmp, "palloc.%p.pb.gz")
    elif cfg.startswith("palloc"):
        env["LD_PRELOAD"] = palloc_so
        if cfg.startswith("palloc-off"):
            env["PALLOC_SAMPLE_RATE"] = "0"
        elif cfg == "palloc-nowrite":
            pass
        else:
            env["PALLOC_PROFILE"] = os.path.join(tmp, "palloc.%p.pb.gz")
            if "-4k" in cfg:
                env["PALLOC_SAMPLE_RATE"] = "4096"
            if cfg.endswith("-fp"):
                env["PALLOC_UNWIND"] = "fp"
        if "-notc" in cfg:
            env["PALLOC_TCACHE"] = "0"
    elif cfg == "jemalloc":
        env["LD_PRELOAD"] = JEMALLOC
    elif cfg == "jemalloc-prof":
        env["LD_PRELOAD"] = JEMALLOC
        env["MALLOC_CONF"] = "prof:true,lg_prof_sample:19,prof_final:true,prof_prefix:" + \
            os.path.join(tmp, "jeprof")
    elif cfg == "tcmalloc-heapprof":
        env["LD_PRELOAD"] = TCMALLOC
        env["HEAPPROFILE"] = os.path.join(tmp, "tcmalloc")
    elif cfg == "heaptrack":
        pre = ["heaptrack", "-o", os.path.join(tmp, "heaptrack")]
    else:
        raise SystemExit("unknown configuration " + cfg)
    env.update(extra_env or {})
    return pre + argv, env


def jemalloc_prof_enabled():
    """Debian's libjemalloc2 must be built with --enable-prof for jemalloc-prof to mean anything:
    ask its stats (config.prof)."""
    env = dict(os.environ, LD_PRELOAD=JEMALLOC, MALLOC_CONF="stats_print:true")
    p = subprocess.run(["/bin/true"], env=env, capture_output=True, text=True)
    m = re.search(r"config\.prof: (\w+)", p.stderr + p.stdout)
    return m.group(1) if m else "unknown"


RUSAGE = [None]  # the launcher built from rusage.c (build_workloads)


def run_measured(argv, env, cap, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
    """Runs argv; returns dict(wall, cpu, rss_kb, rc, capped). CPU and peak RSS are the rusage of
    the command (and the descendants it waited for) as written by the rusage launcher: wait4 here
    would report at least this runner's own RSS (see rusage.c). On the cap, the launcher kills
    the command (and reports its rusage), then the process group is killed."""
    env = dict(env)
    if "LD_PRELOAD" in env:
        env["BENCH_PRELOAD"] = env.pop("LD_PRELOAD")
    out = os.path.join(os.path.dirname(RUSAGE[0]), "rusage.out")
    if os.path.exists(out):
        os.unlink(out)
    t0 = time.monotonic()
    p = subprocess.Popen([RUSAGE[0], out] + argv, env=env, stdout=stdout, stderr=stderr,
                         start_new_session=True)
    capped = False
    deadline = t0 + cap if cap else None
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if deadline and time.monotonic() > deadline:
            capped = True
            os.kill(p.pid, signal.SIGUSR1)
            for _ in range(200):  # up to 1 s for the launcher to reap and report
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(0.005)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not pid:
                pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.005)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu, rss = float("nan"), 0
    try:
        f = open(out).read().split()
        cpu, rss = float(f[0]) + float(f[1]), int(f[2])
    except (OSError, IndexError, ValueError):
        pass  # killed before it could report
    return {"wall": wall, "cpu": cpu, "rss_kb": rss, "rc": p.returncode, "capped": capped}


def clean(tmp):
    for f in os.listdir(tmp):
        fp = os.path.join(tmp, f)
        if os.path.isdir(fp):
            shutil.rmtree(fp, ignore_errors=True)
        else:
            os.unlink(fp)


def profile_bytes(tmp):
    return sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)
               if os.path.isfile(os.path.join(tmp, f)))


# ---- pprof profile.proto reader (just what we need) ----------------------------------------
def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7f) << s
        if c < 0x80:
            return r, i
        s += 7


def _fields(b):
    i, n = 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            ln, i = _varint(b, i)
            v = b[i:i + ln]
            i += ln
        elif wt == 1:
            v = int.from_bytes(b[i:i + 8], "little")
            i += 8
        elif wt == 5:
            v = int.from_bytes(b[i:i + 4], "little")
            i += 4
        else:
            raise ValueError("bad wire type")
        yield f, wt, v


def _ints(wt, v):
    if wt == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def _s64(x):
    return x - (1 << 64) if x >= 1 << 63 else x


def read_pprof(path):
    """Returns (sample_types, samples[(leaf-first addresses, leaf-first names, values)])."""
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    strings, st, samples, locs, funcs = [], [], [], {}, {}
    for f, wt, v in _fields(data):
        if f == 6:
            strings.append(v.decode("utf-8", "replace"))
        elif f == 1:
            st.append([x for ff, _, x in _fields(v) if ff == 1][:1])
        elif f == 2:
            ids, vals = [], []
            for ff, w2, x in _fields(v):
                if ff == 1:
                    ids += _ints(w2, x)
                elif ff == 2:
                    vals += [_s64(y) for y in _ints(w2, x)]
            samples.append((ids, vals))
        elif f == 4:
            lid, addr, fids = 0, 0, []
            for ff, w2, x in _fields(v):
                if ff == 1:
                    lid = x
                elif ff == 3:
                    addr = x
                elif ff == 4:
                    fids += [y for f3, _, y in _fields(x) if f3 == 1]
            locs[lid] = (addr, fids)
        elif f == 5:
            fid, name = 0, 0
            for ff, _, x in _fields(v):
                if ff == 1:
                    fid = x
                elif ff == 2:
                    name = x
            funcs[fid] = name
    types = [strings[t[0]] if t else "" for t in st]
    out = []
    for ids, vals in samples:
        addrs, names = [], []
        for lid in ids:
            addr, fids = locs.get(lid, (0, []))
            addrs.append(addr)
            # inlined frames: the last Line is the outermost function of this location
            names.append(strings[funcs.get(fids[-1], 0)] if fids else "")
        out.append((addrs, names, vals))
    return types, out


# ---- symbols of the workload binary (non-PIE: addresses are link-time addresses) ------------
class Symtab:
    def __init__(self, binary):
        out = subprocess.run(["nm", "-n", "--defined-only", binary], capture_output=True,
                             text=True, check=True).stdout
        self.addrs, self.names = [], []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTwW":
                self.addrs.append(int(parts[0], 16))
                self.names.append(parts[2])

    def lookup(self, addr):
        i = bisect.bisect_right(self.addrs, addr) - 1
        return self.names[i] if i >= 0 else ""


def site_of(names):
    for n in names:
        if n.startswith("site_"):
            return n
    return None


def palloc_sites(path, symtab):
    """Per site: alloc_space, inuse_space and per-bucket (size, alloc_n, inuse_n)."""
    types, samples = read_pprof(path)
    ia, iu = types.index("alloc_space"), types.index("inuse_space")
    io, iuo = types.index("alloc_objects"), types.index("inuse_objects")
    res = {}
    for addrs, names, vals in samples:
        if not any(n.startswith("site_") for n in names):
            names = [symtab.lookup(a) for a in addrs]
        s = site_of(names)
        if s is None:
            continue
        r = res.setdefault(s, {"alloc": 0, "inuse": 0, "buckets": []})
        r["alloc"] += vals[ia]
        r["inuse"] += vals[iu]
        if vals[io]:
            r["buckets"].append((vals[ia] / vals[io], vals[io], vals[iuo]))
    return res


def jemalloc_sites(path, symtab):
    """jemalloc heap_v2 dump -> per site estimated alloc_space and inuse_space (unsampled the way
    jeprof does: both count and bytes times 1/(1-exp(-avg/rate)), avg = bytes/count)."""
    lines = open(path).read().split("\n")
    m = re.match(r"heap_v2/(\d+)", lines[0])
    rate = int(m.group(1))

    def unsample(cnt, nbytes):
        if cnt == 0 or nbytes == 0:
            return 0.0
        if rate <= 1:
            return float(nbytes)
        return nbytes / (1 - math.exp(-(nbytes / cnt) / rate))

    res, stack = {}, None
    for line in lines[1:]:
        if line.startswith("MAPPED_LIBRARIES"):
            break
        if line.startswith("@"):
            addrs = [int(x, 16) for x in line[1:].split()]
            # return addresses: look up address - 1 (inside the call instruction)
            stack = site_of([symtab.lookup(a - 1) for a in addrs])
            continue
        m = re.match(r"\s*t\*: (\d+): (\d+) \[(\d+): (\d+)\]", line)
        if m and stack:
            cur_n, cur_b, acc_n, acc_b = map(int, m.groups())
            r = res.setdefault(stack, {"alloc": 0.0, "inuse": 0.0})
            r["alloc"] += unsample(acc_n, acc_b)
            r["inuse"] += unsample(cur_n, cur_b)
            stack = None  # the per-thread lines that follow repeat the totals
    return res


def jemalloc_usize(s):
    """jemalloc's size class of a request (LG_QUANTUM 4, 4 classes per doubling): the bytes its
    profile counts."""
    if s <= 8:
        return 8
    if s <= 16:
        return 16
    delta = max(16, 1 << ((s - 1).bit_length() - 3))
    return (s + delta - 1) // delta * delta


def rounding(buckets, which):
    """Relative excess of jemalloc's usable bytes over the requested bytes for a site."""
    req = use = 0.0
    for size, n_alloc, n_inuse in buckets:
        n = n_alloc if which == "alloc" else n_inuse
        s = int(round(size))
        req += n * s
        use += n * jemalloc_usize(s)
    return use / req - 1 if req else float("nan")


def poisson_bound(buckets, rate, which):
    """Relative standard error of the Horvitz-Thompson estimate of a site's bytes from its exact
    per-size counts: sqrt(sum n s^2 (1-p)/p) / sum n s, p = 1 - exp(-s/rate)."""
    var = tot = 0.0
    for size, n_alloc, n_inuse in buckets:
        n = n_alloc if which == "alloc" else n_inuse
        if n <= 0 or size <= 0:
            continue
        p = -math.expm1(-size / rate)
        var += n * size * size * (1 - p) / p
        tot += n * size
    return math.sqrt(var) / tot if tot else float("nan")


# ---- the suite ----------------------------------------------------------------------------
def build_workloads(out_dir):
    RUSAGE[0] = os.path.join(out_dir, "rusage")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", RUSAGE[0],
                    os.path.join(HERE, "rusage.c")], check=True)
    exe = os.path.join(out_dir, "workloads")
    src = os.path.join(HERE, "workloads.c")
    cmd = [os.environ.get("CC", "cc"), "-O2", "-g", "-fno-omit-frame-pointer",
           "-fno-optimize-sibling-calls", "-no-pie", "-fno-pie", "-pthread", "-o", exe, src, "-ldl", "-lm"]
    subprocess.run(cmd, check=True)
    return exe


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and not math.isnan(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fmt_ratio(x, capped=False):
    if x is None or math.isnan(x):
        return "-"
    return (">" if capped else "") + ("%.3f" % x if x < 10 else "%.1f" % x)


def print_table(title, wls, cfgs, cell, base_abs, unit, out):
    w0 = max(10, max(len(w) for w in wls + ["geomean"]) + 1)
    cw = [max(8, len(c) + 1) for c in cfgs]
    out.append("")
    out.append("%s (ratio to %s; %s column = %s's absolute value)" % (title, BASE, unit, BASE))
    out.append("workload".ljust(w0) + unit.rjust(10) + "".join(c.rjust(w) for c, w in zip(cfgs, cw)))
    for wl in wls:
        row = wl.ljust(w0) + base_abs(wl).rjust(10)
        row += "".join(cell(wl, c).rjust(w) for c, w in zip(cfgs, cw))
        out.append(row)
    for agg in ("geomean", "worst"):
        row = agg.ljust(w0) + "".rjust(10)
        row += "".join(cell(agg, c).rjust(w) for c, w in zip(cfgs, cw))
        out.append(row)


def overhead(args, exe, tmp, palloc_so):
    wls, cfgs = args.workloads, args.configs
    runs = []
    plan = []
    for rep in range(args.reps):
        for wl in wls:
            cl = list(cfgs) + ([c for c in DEEP_EXTRA if wl == "deep" and args.deep_extra])
            if rep >= args.trace_reps:
                cl = [c for c in cl if c not in TRACING]
            # alternate the configurations, rotating the starting one every repetition
            k = rep % len(cl)
            plan.append((rep, wl, cl[k:] + cl[:k]))
    total = sum(len(c) for _, _, c in plan)
    done = 0
    t_start = time.monotonic()
    for rep, wl, cl in plan:
        for cfg in cl:
            clean(tmp)
            argv, env = config_cmd(cfg, [exe, wl, str(args.scale)], tmp, palloc_so)
            cap = args.cap if cfg in TRACING else max(600.0, args.cap * 3)
            r = run_measured(argv, env, cap)
            r.update({"rep": rep, "workload": wl, "config": cfg, "out_bytes": profile_bytes(tmp)})
            runs.append(r)
            done += 1
            if r["rc"] != 0 and not r["capped"]:
                log("bench: %s under %s exited with %s" % (wl, cfg, r["rc"]))
            log("[%3d/%d %5.0fs] rep %d %-10s %-18s wall %7.3f cpu %7.3f rss %8d KB%s" % (
                done, total, time.monotonic() - t_start, rep, wl, cfg, r["wall"], r["cpu"],
                r["rss_kb"], " CAPPED" if r["capped"] else ""))
    clean(tmp)
    return runs


def summarize(runs, wls, cfgs):
    summ = {}
    for wl in wls:
        for cfg in cfgs:
            rs = [r for r in runs if r["workload"] == wl and r["config"] == cfg]
            if not rs:
                continue
            # a capped heaptrack run was killed with its children unwaited: no CPU or RSS for it;
            # nor for a run whose launcher was killed before it could report
            ok = [r for r in rs if not (r["capped"] and r["config"] == "heaptrack")
                  and not math.isnan(r["cpu"])]
            summ[(wl, cfg)] = {
                "wall": median([r["wall"] for r in rs]), "cpu": median([r["cpu"] for r in ok]),
                "wall_min": min(r["wall"] for r in rs), "cpu_min": min((r["cpu"] for r in ok), default=float("nan")),
                "rss_kb": median([r["rss_kb"] for r in ok]),
                "capped": any(r["capped"] for r in rs),
                "failed": any(r["rc"] != 0 and not r["capped"] for r in rs),
                "out_bytes": median([r["out_bytes"] for r in rs]), "n": len(rs)}
    ratios = {}
    for metric in ("wall", "cpu", "rss_kb"):
        for cfg in cfgs:
            vals = []
            for wl in wls:
                s, b = summ.get((wl, cfg)), summ.get((wl, BASE))
                if s and b and b[metric] > 0 and not math.isnan(s[metric]):
                    ratios[(metric, wl, cfg)] = s[metric] / b[metric]
                    vals.append(s[metric] / b[metric])
            ratios[(metric, "geomean", cfg)] = geomean(vals)
    return summ, ratios


def paired_ratio(runs, wls, cfg, base, metric="cpu", level=0.90, boot=4000):
    """cfg's cost over base's as (point, low, high): the geometric mean over workloads of the
    median per-repetition ratio, with a bootstrap interval over repetitions. Each repetition runs
    a workload's configurations back to back, so a pair shares the machine's load of that moment
    and its ratio is steadier than the ratio of two medians taken over the whole run. Returns
    (point, low, high, {workload: median per-repetition ratio}); None if a workload lacks a
    complete pair."""
    per = []
    for wl in wls:
        by_rep = {}
        for r in runs:
            if r["workload"] == wl and r["config"] in (cfg, base) and r["rc"] == 0 and \
                    not r["capped"] and r[metric] > 0:
                by_rep.setdefault(r["rep"], {})[r["config"]] = r[metric]
        pairs = [d[cfg] / d[base] for d in by_rep.values() if cfg in d and base in d]
        if not pairs:
            return None
        per.append(pairs)
    point = geomean([median(v) for v in per])
    rng = random.Random(1)  # fixed: the same runs give the same interval
    draws = sorted(geomean([median(rng.choices(v, k=len(v))) for v in per]) for _ in range(boot))
    return (point, draws[int((1 - level) / 2 * boot)], draws[int((1 + level) / 2 * boot) - 1],
            {wl: median(v) for wl, v in zip(wls, per)})


def paired_table(runs, wls, cfgs, metric="cpu"):
    """The pairs the targets are judged on: every configuration over mimalloc, each profiler over
    its own allocator, and palloc over jemalloc's profiling mode."""
    pairs = [(c, BASE) for c in cfgs if c != BASE and c not in TRACING]
    pairs += [pb for pb in OWN_BASE if pb[1] != BASE and pb[0] in cfgs and pb[1] in cfgs]
    pairs += [("palloc", "jemalloc-prof")] if "palloc" in cfgs and "jemalloc-prof" in cfgs else []
    pairs += [("palloc", c) for c in cfgs if c in EXTRA_LIBS and "palloc" in cfgs]
    out = {}
    for c, b in pairs:
        r = paired_ratio(runs, wls, c, b, metric)
        if r:
            out["%s/%s" % (c, b)] = r
    return out


def paired_tables(runs, wls, cfgs):
    return {m: paired_table(runs, wls, cfgs, m) for m in ("cpu", "rss_kb")}


def probes(args, exe, tmp, palloc_so):
    """One untimed run per workload under palloc default that writes a profile explicitly after
    the work, reporting the write's duration and size (palloc_read_stats) with the heap live."""
    res = {}
    for wl in args.workloads:
        clean(tmp)
        argv, env = config_cmd("palloc", [exe, wl, str(args.scale)], tmp, palloc_so,
                               {"BENCH_PROBE": os.path.join(tmp, "probe.pb.gz")})
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        m = re.search(r"probe: (.*)", p.stderr)
        if m:
            res[wl] = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
            log("probe %-10s %s" % (wl, m.group(1)))
    clean(tmp)
    return res


INSN_SCALE = [0.02]
INSN_MULT = {"large": 25}  # large makes few calls: run more of it so fixed costs do not dominate
INSN_CONFIGS = ["glibc", "mimalloc", "palloc-off", "palloc-nowrite", "palloc", "palloc-4k",
                "jemalloc-prof"]


def instructions(args, exe, tmp, palloc_so):
    """Instruction counts under callgrind (deterministic, unlike time on a shared machine)."""
    res = {}
    for wl in args.workloads:
        for cfg in args.insn_configs:
            clean(tmp)
            argv, env = config_cmd(cfg, [exe, wl, str(args.insn_scale * INSN_MULT.get(wl, 1))],
                                   tmp, palloc_so)
            argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv
            p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
            m = re.search(r"Collected : (\d+)", p.stderr)
            if m:
                res[(wl, cfg)] = int(m.group(1))
                log("instructions %-10s %-15s %d" % (wl, cfg, res[(wl, cfg)]))
    clean(tmp)
    return res


def fmt_insn(insn, wls):
    out = ["", "Instructions (callgrind, scale %g, large x25), ratio to mimalloc; palloc-nowrite = "
           "512 KiB sampling without the profile write at exit" % INSN_SCALE[0]]
    cfgs = [c for c in INSN_CONFIGS + sorted({c for _, c in insn} - set(INSN_CONFIGS))
            if any((wl, c) in insn for wl in wls)]
    out.append("workload".ljust(11) + "mimalloc Minsn".rjust(15) + "".join(c.rjust(max(9, len(c) + 1))
                                                                   for c in cfgs))
    per = {c: [] for c in cfgs}
    for wl in wls:
        b = insn.get((wl, "mimalloc"))
        if not b:
            continue
        row = wl.ljust(11) + ("%.1f" % (b / 1e6)).rjust(15)
        for c in cfgs:
            v = insn.get((wl, c))
            row += (("%.3f" % (v / b)) if v else "-").rjust(max(9, len(c) + 1))
            if v:
                per[c].append(v / b)
        out.append(row)
    out.append("geomean".ljust(11) + "".rjust(15) + "".join(
        fmt_ratio(geomean(per[c])).rjust(max(9, len(c) + 1)) for c in cfgs))
    return out


def accuracy(args, exe, tmp, palloc_so, symtab):
    rate = 524288
    res = {}
    scale = args.acc_scale
    for wl in args.acc_workloads:
        d = os.path.join(tmp, "acc-" + wl)
        os.makedirs(d, exist_ok=True)
        # truth: every allocation, frame-pointer unwinding (the workload has frame pointers)
        clean(d)
        argv, env = config_cmd("palloc", [exe, wl, str(scale)], d, palloc_so,
                               {"PALLOC_SAMPLE_RATE": "1", "PALLOC_UNWIND": "fp",
                                "PALLOC_PROFILE": os.path.join(d, "truth.pb.gz")})
        t0 = time.monotonic()
        subprocess.run(argv, env=env, check=True)
        truth = palloc_sites(os.path.join(d, "truth.pb.gz"), symtab)
        log("accuracy %s: truth in %.1fs: %s" % (wl, time.monotonic() - t0, ", ".join(
            "%s alloc %.1f MB inuse %.1f MB" % (s, v["alloc"] / 1e6, v["inuse"] / 1e6)
            for s, v in sorted(truth.items()))))
        est = {"palloc": [], "jemalloc": []}
        for seed in range(1, args.seeds + 1):
            pp = os.path.join(d, "p%d.pb.gz" % seed)
            argv, env = config_cmd("palloc", [exe, wl, str(scale)], d, palloc_so,
                                   {"PALLOC_SEED": str(seed), "PALLOC_PROFILE": pp})
            subprocess.run(argv, env=env, check=True)
            est["palloc"].append(palloc_sites(pp, symtab))
            os.unlink(pp)
            jd = os.path.join(d, "je")
            os.makedirs(jd, exist_ok=True)
            clean(jd)
            argv, env = config_cmd("jemalloc-prof", [exe, wl, str(scale)], jd, palloc_so)
            env["MALLOC_CONF"] += ",prof_accum:true"
            subprocess.run(argv, env=env, check=True)
            heaps = [f for f in os.listdir(jd) if f.endswith(".f.heap")]
            if heaps:
                est["jemalloc"].append(jemalloc_sites(os.path.join(jd, heaps[0]), symtab))
        rows = []
        for site in sorted(truth):
            t = truth[site]
            for which in ("alloc", "inuse"):
                tv = t[which]
                if tv <= 0:
                    continue
                row = {"workload": wl, "site": site, "metric": which + "_space", "truth": tv,
                       "bound": poisson_bound(t["buckets"], rate, which),
                       "je_round": rounding(t["buckets"], which)}
                for tool in ("palloc", "jemalloc"):
                    # jemalloc is judged against its own truth: the usable bytes
                    tt = tv * (1 + row["je_round"]) if tool == "jemalloc" else tv
                    errs = [(e.get(site, {}).get(which, 0) - tt) / tt for e in est[tool]]
                    if errs:
                        row[tool + "_bias"] = statistics.mean(errs)
                        row[tool + "_sd"] = statistics.stdev(errs) if len(errs) > 1 else float("nan")
                        row[tool + "_n"] = len(errs)
                rows.append(row)
        res[wl] = rows
        shutil.rmtree(d, ignore_errors=True)
    return res


def fmt_acc(rows):
    out = ["", "Accuracy at 512 KiB: relative error of the estimate per site (truth = palloc at rate 1)",
           "  bias = mean error over seeds (+- its standard error), sd = spread, bound = Poisson",
           "  standard error from the truth's per-size counts (what an unbiased sampler should show);",
           "  rows with bound >= 1 (under ~1 expected sample) are left out. jemalloc counts usable",
           "  (size-class) bytes: 'j.round' is that excess over the requested bytes (computed from",
           "  the truth's sizes and jemalloc's size classes), and jemalloc's bias is measured against",
           "  the truth in usable bytes; its error against requested bytes is (1+bias)(1+round)-1.",
           "%-10s %-22s %-11s %9s %7s %15s %7s %8s %15s %7s" % (
               "workload", "site", "metric", "truth MB", "bound", "palloc bias", "p.sd",
               "j.round", "jemalloc bias", "j.sd")]
    for wl, rs in rows.items():
        for r in rs:
            if not r["bound"] < 1.0:
                continue  # under one expected sample: no estimate to speak of
            def b(tool):
                if tool + "_bias" not in r:
                    return "-"
                se = r[tool + "_sd"] / math.sqrt(r[tool + "_n"])
                return "%+.3f+-%.3f" % (r[tool + "_bias"], se)

            def sd(tool):
                return "%.3f" % r[tool + "_sd"] if tool + "_sd" in r else "-"
            out.append("%-10s %-22s %-11s %9.1f %7.3f %15s %7s %+8.3f %15s %7s" % (
                wl, r["site"], r["metric"], r["truth"] / 1e6, r["bound"], b("palloc"),
                sd("palloc"), r.get("je_round", float("nan")), b("jemalloc"), sd("jemalloc")))
    return out


def fmt_summary(paired, cfgs, reps):
    """The targets' table: per configuration over mimalloc, the paired CPU and peak-RSS ratios'
    geometric mean with its interval, and the worst workload's (median paired) ratio."""
    out = ["", "Summary over %s (paired: per workload the median per-repetition ratio; geomean "
           "over workloads with its 90%% bootstrap interval over repetitions%s; worst = the "
           "largest workload's):" % (BASE, "" if reps >= 3 else ", none with fewer than 3"),
           "%-16s %-24s %-22s %-24s %-22s" % ("configuration", "CPU geomean [90%]", "CPU worst",
                                              "RSS geomean [90%]", "RSS worst")]

    def part(v):
        if not v:
            return "-", "-"
        pt, lo, hi, per = v
        ci = " [%s, %s]" % (fmt_ratio(lo), fmt_ratio(hi)) if reps >= 3 else ""
        wl = max(per, key=per.get)
        return fmt_ratio(pt) + ci, "%s (%s)" % (fmt_ratio(per[wl]), wl)
    for c in cfgs:
        k = "%s/%s" % (c, BASE)
        if c == BASE or k not in paired.get("cpu", {}):
            continue
        cg, cw = part(paired["cpu"].get(k))
        rg, rw = part(paired.get("rss_kb", {}).get(k))
        out.append("%-16s %-24s %-22s %-24s %-22s" % (c, cg, cw, rg, rw))
    return out


def report(args, summ, ratios, probe_res, acc, wls, cfgs, insn=None, paired=None):
    out = []
    out.append("palloc benchmark suite: %s mode, scale %g, %d repetitions, %s" % (
        "quick" if args.quick else "full", args.scale, args.reps,
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")))
    out.append("configurations: " + ", ".join(cfgs))
    out.append("jemalloc config.prof (profiling compiled in): " + JE_PROF[0])
    out.append("libpalloc: %s (built %s; repository HEAD %s)" % LIBINFO)

    def cellf(metric):
        def cell(wl, cfg):
            if wl == "worst":
                r = max((ratios[(metric, w, cfg)] for w in wls if (metric, w, cfg) in ratios),
                        default=float("nan"))
            else:
                r = ratios.get((metric, wl, cfg))
            agg = wl in ("geomean", "worst")
            capped = summ.get((wl, cfg), {}).get("capped") if not agg else \
                any(summ.get((w, cfg), {}).get("capped") for w in wls)
            failed = not agg and summ.get((wl, cfg), {}).get("failed")
            return fmt_ratio(r, capped) + ("!" if failed else "")
        return cell

    def absf(metric, fmt):
        return lambda wl: fmt(summ[(wl, BASE)][metric]) if (wl, BASE) in summ else "-"

    print_table("Median wall time", wls, cfgs, cellf("wall"), absf("wall", lambda v: "%.3f" % v),
                "s", out)
    print_table("Median CPU time (user+sys)", wls, cfgs, cellf("cpu"),
                absf("cpu", lambda v: "%.3f" % v), "s", out)
    paired = paired or {}
    if paired.get("cpu"):
        out.append("")
        out.append("Paired CPU ratios (geomean over workloads of the median per-repetition ratio, "
                   "90%% bootstrap interval over repetitions%s):" %
                   ("" if args.reps >= 3 else "; none with fewer than 3"))
        for k, (pt, lo, hi, _) in paired["cpu"].items():
            ci = "  [%s, %s]" % (fmt_ratio(lo), fmt_ratio(hi)) if args.reps >= 3 else ""
            out.append("  %-28s %s%s" % (k, fmt_ratio(pt), ci))
    print_table("Median peak RSS", wls, cfgs, cellf("rss_kb"),
                absf("rss_kb", lambda v: "%.1f" % (v / 1024)), "MiB", out)
    out.append("('>' = a run hit the time cap of %gs (tracing tools only): a lower bound; "
               "'!' = a run failed)" % args.cap)
    if paired.get("cpu"):
        out += fmt_summary(paired, cfgs, args.reps)
    own = [(p, b) for p, b in OWN_BASE if any((wl, p) in summ and (wl, b) in summ for wl in wls)]
    if own:
        out.append("")
        out.append("Profiling over its own allocator (median CPU / peak RSS of the profiler divided by "
                   "its allocator's):")
        out.append("workload".ljust(11) + "".join(("%s/%s" % (p, b)).rjust(28) for p, b in own))
        per = {pb: ([], []) for pb in own}
        for wl in wls + ["geomean"]:
            row = wl.ljust(11)
            for pb in own:
                if wl == "geomean":
                    c, r = geomean(per[pb][0]), geomean(per[pb][1])
                else:
                    sp, sb = summ.get((wl, pb[0])), summ.get((wl, pb[1]))
                    c = sp["cpu"] / sb["cpu"] if sp and sb and sb["cpu"] > 0 else float("nan")
                    r = sp["rss_kb"] / sb["rss_kb"] if sp and sb and sb["rss_kb"] > 0 else float("nan")
                    per[pb][0].append(c)
                    per[pb][1].append(r)
                row += ("cpu %s rss %s" % (fmt_ratio(c), fmt_ratio(r))).rjust(28)
            out.append(row)
    extra = [c for c in DEEP_EXTRA if ("deep", c) in summ]
    if extra:
        out.append("")
        out.append("Unwinding on the deep workload (50-100 frames), ratio of wall / CPU to mimalloc:")
        for c in ["palloc", "palloc-fp", "palloc-4k", "palloc-4k-fp"]:
            if ("deep", c) in summ:
                out.append("  %-14s wall %s  cpu %s  (%s)" % (
                    c, fmt_ratio(ratios.get(("wall", "deep", c))),
                    fmt_ratio(ratios.get(("cpu", "deep", c))),
                    "PALLOC_UNWIND=fp" if c.endswith("-fp") else "default unwinder (.eh_frame walk)"))
    if probe_res:
        out.append("")
        out.append("Profile written by palloc (512 KiB) after the work, heap still live:")
        out.append("  %-10s %10s %10s %9s %12s %12s" % ("workload", "write ms", "size KB",
                                                     "buckets", "internal MB", "samples"))
        for wl, p in probe_res.items():
            out.append("  %-10s %10.1f %10.1f %9d %12.1f %12d" % (
                wl, p["write_ns"] / 1e6, p["write_bytes"] / 1024, p["buckets"],
                p["internal_bytes"] / 2**20, p["sampled_allocs"]))
    if insn:
        out += fmt_insn(insn, wls)
    if acc:
        out += fmt_acc(acc)
    return "\n".join(out)


def write_outputs(args, runs, summ, ratios, probe_res, acc, text, insn, paired):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "runs.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rep", "workload", "config", "wall_s", "cpu_s", "rss_kb", "rc", "capped",
                    "out_bytes"])
        for r in runs:
            w.writerow([r["rep"], r["workload"], r["config"], "%.4f" % r["wall"],
                        "%.4f" % r["cpu"], r["rss_kb"], r["rc"], int(r["capped"]), r["out_bytes"]])
    with open(os.path.join(args.out, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "config", "wall_s", "cpu_s", "rss_kb", "wall_ratio", "cpu_ratio",
                    "rss_ratio", "capped", "failed", "n", "wall_min_s", "cpu_min_s",
                    "cpu_min_ratio"])
        for (wl, cfg), s in summ.items():
            w.writerow([wl, cfg, "%.4f" % s["wall"], "%.4f" % s["cpu"], s["rss_kb"],
                        "%.4f" % ratios.get(("wall", wl, cfg), float("nan")),
                        "%.4f" % ratios.get(("cpu", wl, cfg), float("nan")),
                        "%.4f" % ratios.get(("rss_kb", wl, cfg), float("nan")),
                        int(s["capped"]), int(s["failed"]), s["n"], "%.4f" % s["wall_min"],
                        "%.4f" % s["cpu_min"],
                        "%.4f" % (s["cpu_min"] / summ[(wl, BASE)]["cpu_min"]
                                  if (wl, BASE) in summ else float("nan"))])
    js = {"mode": "quick" if args.quick else "full", "scale": args.scale, "reps": args.reps,
          "cap": args.cap, "je_prof": JE_PROF[0], "libinfo": list(LIBINFO),
          "workloads": args.workloads, "configs": args.configs,
          "time": datetime.datetime.utcnow().isoformat() + "Z",
          "summary": [dict(workload=wl, config=cfg, **s) for (wl, cfg), s in summ.items()],
          "ratios": [dict(metric=m, workload=wl, config=c, ratio=v)
                     for (m, wl, c), v in ratios.items()],
          "probe": probe_res, "accuracy": acc, "runs": runs,
          "paired": [dict(metric=m, pair=k, ratio=v[0], low90=v[1], high90=v[2], per_workload=v[3])
                     for m, d in paired.items() for k, v in d.items()],
          "instructions": [dict(workload=w, config=c, insn=v) for (w, c), v in insn.items()]}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(js, f, indent=1, default=str)
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write(text + "\n")


def compare(a, b):
    """Prints run b's ratios divided by run a's (per workload, config, metric)."""
    ja, jb = json.load(open(a)), json.load(open(b))
    ra = {(r["metric"], r["workload"], r["config"]): r["ratio"] for r in ja["ratios"]}
    rb = {(r["metric"], r["workload"], r["config"]): r["ratio"] for r in jb["ratios"]}
    print("change of each ratio-to-%s from %s to %s (1.000 = same; <1 = better in the second)"
          % (BASE, a, b))
    for metric in ("wall", "cpu", "rss_kb"):
        keys = sorted(k for k in rb if k[0] == metric and k in ra)
        cfgs = sorted({k[2] for k in keys}, key=lambda c: (CONFIGS + DEEP_EXTRA).index(c)
                      if c in CONFIGS + DEEP_EXTRA else 99)
        wls = sorted({k[1] for k in keys}, key=lambda w: (WORKLOADS + ["geomean"]).index(w)
                     if w in WORKLOADS + ["geomean"] else 99)
        print("\n%s" % metric)
        print("workload".ljust(11) + "".join(c.rjust(max(8, len(c) + 1)) for c in cfgs))
        for wl in wls:
            row = wl.ljust(11)
            for c in cfgs:
                x, y = ra.get((metric, wl, c)), rb.get((metric, wl, c))
                v = y / x if x and y and not math.isnan(x) and not math.isnan(y) else float("nan")
                row += fmt_ratio(v).rjust(max(8, len(c) + 1))
            print(row)


def rereport(path):
    global LIBINFO
    js = json.load(open(path))
    runs = js["runs"]
    for r in runs:
        r["capped"] = r["capped"] in (True, "True", 1)
    wls = js.get("workloads") or [w for w in WORKLOADS if any(r["workload"] == w for r in runs)]
    cfgs = js.get("configs") or [c for c in CONFIGS if any(r["config"] == c for r in runs)]
    args = argparse.Namespace(quick=js["mode"] == "quick", scale=js["scale"], reps=js["reps"],
                              cap=js.get("cap") or (5.0 if js["mode"] == "quick" else 30.0))
    JE_PROF[0] = js.get("je_prof", "?")
    LIBINFO = tuple(js.get("libinfo", ("?", "?", "?")))
    allcfgs = cfgs + [c for c in DEEP_EXTRA if any(r["config"] == c for r in runs)]
    summ, ratios = summarize(runs, wls, allcfgs)
    insn = {(d["workload"], d["config"]): d["insn"] for d in js.get("instructions", [])}
    print(report(args, summ, ratios, js.get("probe", {}), js.get("accuracy", {}), wls, cfgs, insn,
                 paired_tables(runs, wls, cfgs)))
    return 0


def main():
    ap = argparse.ArgumentParser(description="palloc benchmark suite")
    ap.add_argument("--build-dir", default=os.environ.get("PALLOC_BUILD_DIR", "build"))
    ap.add_argument("--quick", action="store_true", help="small scale, CI-sized (< 2 minutes)")
    ap.add_argument("--reps", type=int, help="repetitions per configuration (full 5, quick 1)")
    ap.add_argument("--scale", type=float, help="work multiplier (full 1.0, quick 0.03)")
    ap.add_argument("--cap", type=float, help="time cap per tcmalloc-heapprof or heaptrack run, s (full 30, quick 5)")
    ap.add_argument("--trace-reps", type=int,
                    help="repetitions of the tracing tools (tcmalloc-heapprof, heaptrack; full 2)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--no-deep-extra", dest="deep_extra", action="store_false",
                    help="skip the PALLOC_UNWIND=fp configurations on the deep workload")
    ap.add_argument("--no-accuracy", dest="accuracy", action="store_false")
    ap.add_argument("--accuracy-only", action="store_true")
    ap.add_argument("--instructions", dest="insn", action="store_true", default=None,
                    help="count instructions under callgrind (default in full mode)")
    ap.add_argument("--no-instructions", dest="insn", action="store_false")
    ap.add_argument("--insn-scale", type=float, default=0.02)
    ap.add_argument("--insn-configs", default=",".join(INSN_CONFIGS),
                    help="configurations counted under callgrind (mimalloc is the base)")
    ap.add_argument("--seeds", type=int, help="seeds for the accuracy runs (full 20, quick 3)")
    ap.add_argument("--acc-scale", type=float, help="scale of the accuracy runs (full 0.25)")
    ap.add_argument("--acc-workloads", default=None)
    ap.add_argument("--out", help="results directory (default BUILD/bench-results/TIMESTAMP)")
    ap.add_argument("--compare", nargs=2, metavar=("OLD.json", "NEW.json"))
    ap.add_argument("--report", metavar="RESULTS.json",
                    help="print the tables again from a stored results.json")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every workload has a result under every configuration "
                         "(CI: the numbers are not judged)")
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                    help="another libpalloc.so as configuration NAME (add NAME to --configs); "
                         "the pair palloc/NAME is in the paired tables")
    ap.add_argument("--scale-bench", action="store_true",
                    help="the scale benchmark instead (scalebench.py): threads, live heap, stack "
                         "depth, distinct stacks, exec start-up")
    ap.add_argument("--scale-parts", default="threads,heap,depth,stacks,exec")
    ap.add_argument("--heap-max", type=int, default=2048, help="largest live heap, MiB (8192)")
    ap.add_argument("--stacks-max", type=int, default=1000000)
    args = ap.parse_args()
    if args.scale_bench:
        import scalebench
        build = os.path.abspath(args.build_dir)
        out = args.out or os.path.join(build, "bench-results", "scale-" +
                                       datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S"))
        os.makedirs(out, exist_ok=True)
        return scalebench.main(args, build, os.path.join(build, "alloc", "libpalloc.so"), out)
    for spec in args.lib:
        name, _, path = spec.partition("=")
        EXTRA_LIBS[name] = os.path.abspath(path)
    if args.compare:
        compare(*args.compare)
        return 0
    if args.report:
        return rereport(args.report)
    q = args.quick
    args.reps = args.reps or (1 if q else 5)
    args.scale = args.scale if args.scale is not None else (0.03 if q else 1.0)
    args.cap = args.cap or (5.0 if q else 30.0)
    INSN_SCALE[0] = args.insn_scale
    if args.insn is None:
        args.insn = not q and not args.accuracy_only
    args.trace_reps = min(args.reps, args.trace_reps or 2)
    args.seeds = args.seeds or (3 if q else 20)
    args.acc_scale = args.acc_scale or (0.02 if q else 0.25)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.acc_workloads = args.acc_workloads.split(",") if args.acc_workloads else args.workloads
    args.configs = [c for c in args.configs.split(",") if c]
    args.insn_configs = [c for c in args.insn_configs.split(",") if c]
    if BASE not in args.insn_configs:
        args.insn_configs.insert(0, BASE)
    if BASE not in args.configs:
        args.configs.insert(0, BASE)
    build = os.path.abspath(args.build_dir)
    palloc_so = os.path.join(build, "alloc", "libpalloc.so")
    if not os.path.exists(palloc_so):
        raise SystemExit("bench: %s not found (build the project, or pass --build-dir)" % palloc_so)
    args.out = args.out or os.path.join(build, "bench-results",
                                        datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(args.out, "tmp")
    os.makedirs(tmp, exist_ok=True)
    exe = build_workloads(args.out)
    global LIBINFO
    head = subprocess.run(["git", "-C", HERE, "log", "-1", "--format=%h"], capture_output=True,
                          text=True).stdout.strip() or "?"
    LIBINFO = (palloc_so, datetime.datetime.utcfromtimestamp(
        os.path.getmtime(os.path.realpath(palloc_so))).strftime("%H:%M UTC"), head)
    JE_PROF[0] = jemalloc_prof_enabled()
    if JE_PROF[0] != "true":
        log("bench: WARNING: jemalloc's build has no profiling (config.prof: %s)" % JE_PROF[0])
    symtab = Symtab(exe)
    t0 = time.monotonic()
    runs, probe_res, acc = [], {}, {}
    cfgs = list(args.configs)
    if not args.accuracy_only:
        runs = overhead(args, exe, tmp, palloc_so)
        probe_res = probes(args, exe, tmp, palloc_so)
    insn = {}
    if args.insn:
        insn = instructions(args, exe, tmp, palloc_so)
    if args.accuracy or args.accuracy_only:
        acc = accuracy(args, exe, tmp, palloc_so, symtab)
    allcfgs = cfgs + [c for c in DEEP_EXTRA if any(r["config"] == c for r in runs)]
    summ, ratios = summarize(runs, args.workloads, allcfgs)
    paired = paired_tables(runs, args.workloads, cfgs)
    text = report(args, summ, ratios, probe_res, acc, args.workloads, cfgs, insn, paired) if runs else \
        "\n".join(fmt_insn(insn, args.workloads) + fmt_acc(acc))
    print(text)
    write_outputs(args, runs, summ, ratios, probe_res, acc, text, insn, paired)
    shutil.rmtree(tmp, ignore_errors=True)
    if args.check:
        bad = [(wl, c) for wl in args.workloads for c in cfgs
               if (wl, c) not in summ or summ[(wl, c)]["failed"]
               or math.isnan(ratios.get(("wall", wl, c), float("nan")))]
        if args.accuracy and not all(acc.get(wl) for wl in args.acc_workloads):
            bad.append(("accuracy", "missing"))
        if bad:
            print("bench: check FAILED, missing or failed: %s" % bad)
            return 1
        print("bench: check passed: %d workloads x %d configurations" % (len(args.workloads),
                                                                         len(cfgs)))
    print("\nresults: %s/{table.txt,summary.csv,runs.csv,results.json} (%.0f s)" % (
        args.out, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
