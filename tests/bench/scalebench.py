"""scalebench.py - the scale benchmark: `tests/bench/run.sh --scale-bench` (bench.py's mode).

How palloc's memory and cost grow, against its peers in the same run (tests/bench/scale.c):

  threads  1, 8, 64, 512 threads that each allocate and free 2 MiB of small blocks; idle: then
           they wait, and the RSS with them idle is the measure (a thread-per-connection server
           between requests); busy: they churn their blocks and exit (CPU, peak RSS)
  heap     a live heap of 64 MiB up to --heap-max (small blocks, then a quarter replaced):
           peak RSS, CPU, and palloc's own memory (page map, registry, buckets)
  depth    allocations 8 to 128 frames deep, every one sampled: instructions per sample
           (callgrind, the difference between two run lengths, so fixed costs cancel) for
           palloc with its default .eh_frame walk, with PALLOC_UNWIND=libunwind and =fp, and
           jemalloc's profiling
  stacks   1k to --stacks-max distinct stacks, every allocation sampled: palloc's memory, the
           profile write's time and size, `palloc top`'s time on it; jemalloc's dump
  exec     start-up of a preloaded exec (startup.py) against mimalloc preloaded

Each table gives the values, the ratios to the base peer, and the curve's shape: the exponent
of the power law through the first and last points (0 constant, 1 linear, 2 quadratic).
Results: BUILD/bench-results/scale-TIMESTAMP/{table.txt,results.json}.
"""
import datetime
import json
import math
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
MIMALLOC = LIBDIR + "/libmimalloc.so.2"
JEMALLOC = LIBDIR + "/libjemalloc.so.2"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def env_for(cfg, palloc_so, extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PALLOC_", "MALLOC_CONF", "MIMALLOC_")) and k != "LD_PRELOAD"}
    if cfg == "mimalloc":
        env["LD_PRELOAD"] = MIMALLOC
    elif cfg.startswith("palloc"):
        env["LD_PRELOAD"] = palloc_so
        if cfg.endswith("-fp"):
            env["PALLOC_UNWIND"] = "fp"
        if cfg.endswith("-libunwind"):
            env["PALLOC_UNWIND"] = "libunwind"
        if cfg.startswith("palloc-off"):
            env["PALLOC_SAMPLE_RATE"] = "0"
    elif cfg == "jemalloc":
        env["LD_PRELOAD"] = JEMALLOC
    elif cfg.startswith("jemalloc-prof"):
        env["LD_PRELOAD"] = JEMALLOC
        env["MALLOC_CONF"] = "prof:true,lg_prof_sample:19"
    env.update(extra or {})
    return env


def run(argv, env, timeout=120):
    """Runs argv under the rusage launcher (bench.py's): wall, cpu, peak rss, and the workload's
    'scale:' line parsed into a dict."""
    out = os.path.join(os.path.dirname(RUSAGE[0]), "scale-rusage.out")
    t0 = time.monotonic()
    p = subprocess.run([RUSAGE[0], out] + argv, env=env, capture_output=True, text=True,
                       timeout=timeout)
    wall = time.monotonic() - t0
    r = {"wall": wall, "rc": p.returncode}
    try:
        f = open(out).read().split()
        r["cpu"], r["maxrss_kb"] = float(f[0]) + float(f[1]), int(f[2])
    except (OSError, IndexError, ValueError):
        r["cpu"], r["maxrss_kb"] = float("nan"), 0
    m = re.search(r"scale: (.*)", p.stderr)
    if m:
        for kv in m.group(1).split():
            k, _, v = kv.partition("=")
            try:
                r[k] = float(v) if "." in v else int(v)
            except ValueError:
                r[k] = v
    if p.returncode != 0:
        log("scale: %s exited %d: %s" % (" ".join(argv), p.returncode, p.stderr[-300:]))
    return r


RUSAGE = [None]


def shape(xs, ys):
    """The curve's shape: "a + b/x" when the points lie within 10% of the line through the first
    and last (a cost per unit plus a fixed part: stack depth), else the exponent k of y = c x^k
    through them (0 constant, 1 linear, 2 quadratic)."""
    pts = [(x, y) for x, y in zip(xs, ys) if y and y > 0 and not math.isnan(y)]
    if len(pts) < 2 or pts[0][0] == pts[-1][0]:
        return "-"
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    k = math.log(y1 / y0) / math.log(x1 / x0)
    b = (y1 - y0) / (x1 - x0)
    a = y0 - b * x0
    if len(pts) >= 3 and a > 0 and b > 0 and 0.15 < k < 0.85 and \
            all(abs(a + b * x - y) <= 0.1 * y for x, y in pts):
        return "%.0f + %.3g/unit" % (a, b)
    name = ("constant" if abs(k) < 0.15 else "sublinear" if k < 0.85 else "linear" if k < 1.2
            else "superlinear" if k < 1.8 else "quadratic or worse")
    return "x^%.2f %s" % (k, name)


def table(title, xname, xs, cfgs, cell, fmt, base=None, out=None, note=""):
    """Rows per x, a column per configuration (value, and ratio to base), then the shapes."""
    out.append("")
    out.append(title + ((" (ratio to %s in brackets)" % base) if base else "") + note)
    w = 26
    out.append(xname.ljust(10) + "".join(c.rjust(w) for c in cfgs))
    for x in xs:
        row = str(x).ljust(10)
        for c in cfgs:
            v = cell(x, c)
            s = fmt(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else "-"
            if base and c != base and v:
                b = cell(x, base)
                if b:
                    s += " [%.2f]" % (v / b)
            row += s.rjust(w)
        out.append(row)
    out.append("shape".ljust(10) + "".join(shape(xs, [cell(x, c) for x in xs]).rjust(w)
                                           for c in cfgs))


def mib(v):
    return "%.1f MiB" % (v / 1024.0)


def bench_threads(exe, palloc_so, res, out, counts):
    cfgs = ["mimalloc", "palloc", "jemalloc", "jemalloc-prof"]
    for mode in ("idle", "busy"):
        for n in counts:
            for c in cfgs:  # alternating peers for every point
                r = run([exe, "threads", str(n), mode], env_for(c, palloc_so))
                res.setdefault("threads", {})[(mode, n, c)] = r
                log("threads %s %4d %-14s rss %8d KB max %8d KB cpu %.2f" % (
                    mode, n, c, r.get("rss_kb", 0), r["maxrss_kb"], r["cpu"]))
    t = res["threads"]
    table("Threads, idle: RSS with N threads waiting after each allocated and freed 2 MiB",
          "threads", counts, cfgs, lambda x, c: t[("idle", x, c)].get("rss_kb"), mib,
          "jemalloc-prof", out)
    table("Threads, busy: CPU seconds (N threads churning 2 MiB each, 4 passes)", "threads",
          counts, cfgs, lambda x, c: t[("busy", x, c)]["cpu"], lambda v: "%.2f s" % v,
          "mimalloc", out)
    table("Threads, busy: peak RSS", "threads", counts, cfgs,
          lambda x, c: t[("busy", x, c)]["maxrss_kb"], mib, "mimalloc", out)


def bench_heap(exe, palloc_so, res, out, sizes):
    cfgs = ["mimalloc", "palloc", "jemalloc", "jemalloc-prof"]
    for mb in sizes:
        for c in cfgs:
            r = run([exe, "heap", str(mb)], env_for(c, palloc_so), timeout=300)
            res.setdefault("heap", {})[(mb, c)] = r
            log("heap %6d MiB %-14s max %9d KB cpu %.2f internal %s" % (
                mb, c, r["maxrss_kb"], r["cpu"], r.get("internal_bytes", "-")))
    h = res["heap"]
    table("Live heap: peak RSS", "heap MiB", sizes, cfgs, lambda x, c: h[(x, c)]["maxrss_kb"],
          mib, "mimalloc", out)
    table("Live heap: CPU seconds (allocate, then replace a quarter)", "heap MiB", sizes, cfgs,
          lambda x, c: h[(x, c)]["cpu"], lambda v: "%.2f s" % v, "mimalloc", out)
    text = ["", "Live heap: palloc's own memory (internal_bytes: page map, registry, buckets), "
            "and as a share of the live heap", "heap MiB".ljust(10) + "palloc".rjust(24)]
    for x in sizes:
        ib = h[(x, "palloc")].get("internal_bytes", 0)
        text.append(str(x).ljust(10) + ("%.1f MiB (%.2f%%)" % (ib / 2**20, 100.0 * ib / (x << 20))
                                        ).rjust(24))
    text.append("shape".ljust(10) + shape(sizes, [h[(x, "palloc")].get("internal_bytes", 0)
                                                  for x in sizes]).rjust(24))
    out += text


def callgrind(argv, env):
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                       env=env, capture_output=True, text=True, timeout=900)
    m = re.search(r"Collected : (\d+)", p.stderr)
    return int(m.group(1)) if m else None


def bench_depth(exe, palloc_so, res, out, depths, n1=500, n2=1500):
    """Instructions per sampled allocation: (I(n2) - I(n1)) / (n2 - n1) at rate 1, minus the
    same for the allocator alone (palloc-off, jemalloc)."""
    cfgs = {"palloc": ("palloc", {"PALLOC_SAMPLE_RATE": "1", "PALLOC_STACK_DEPTH": "128"}),
            "palloc-fp": ("palloc-fp", {"PALLOC_SAMPLE_RATE": "1", "PALLOC_STACK_DEPTH": "128"}),
            "palloc-libunwind": ("palloc-libunwind", {"PALLOC_SAMPLE_RATE": "1",
                                                      "PALLOC_STACK_DEPTH": "128"}),
            "palloc-off": ("palloc-off", {}),
            "jemalloc-prof": ("jemalloc", {"MALLOC_CONF": "prof:true,lg_prof_sample:0"}),
            "jemalloc": ("jemalloc", {})}
    d = res.setdefault("depth", {})
    for depth in depths:
        for name, (c, extra) in cfgs.items():
            i1 = callgrind([exe, "depth", str(depth), str(n1)], env_for(c, palloc_so, extra))
            i2 = callgrind([exe, "depth", str(depth), str(n2)], env_for(c, palloc_so, extra))
            d[(depth, name)] = (i2 - i1) / (n2 - n1) if i1 and i2 else None
            log("depth %3d %-14s %s insn per allocation" % (depth, name, d[(depth, name)]))

    def per_sample(x, c):
        base = "palloc-off" if c.startswith("palloc") else "jemalloc"
        v, b = d.get((x, c)), d.get((x, base))
        return v - b if v is not None and b is not None else None
    table("Stack depth: instructions per sample (callgrind; every allocation sampled, over the "
          "allocator alone)", "frames", depths,
          ["palloc", "palloc-libunwind", "palloc-fp", "jemalloc-prof"], per_sample, lambda v: "%.0f" % v, "jemalloc-prof", out)


def bench_stacks(exe, palloc_so, tool, res, out, counts, tmp):
    s = res.setdefault("stacks", {})
    for n in counts:
        for c, extra in (("palloc", {"PALLOC_SAMPLE_RATE": "1"}),
                         ("jemalloc-prof", {"MALLOC_CONF": "prof:true,lg_prof_sample:0"})):
            path = os.path.join(tmp, "stacks.%s.prof" % c)
            if os.path.exists(path):
                os.unlink(path)
            base = run([exe, "stacks", str(n)], env_for(c, palloc_so, extra), timeout=600)
            r = run([exe, "stacks", str(n)], env_for(c, palloc_so, dict(extra, SCALE_DUMP=path)),
                    timeout=600)
            r["base_maxrss_kb"] = base["maxrss_kb"]
            r["base_cpu"] = base["cpu"]
            r["size"] = os.path.getsize(path) if os.path.exists(path) else 0
            if c == "palloc" and r["size"]:
                t0 = time.monotonic()
                subprocess.run([tool, "top", "-n", "10", path], capture_output=True, timeout=600)
                r["cli_s"] = time.monotonic() - t0
            s[(n, c)] = r
            log("stacks %8d %-14s dump %.3f s size %d KB rss %d KB (without dump %d) internal %s "
                "cli %s" % (n, c, r.get("dump_s", -1), r["size"] // 1024, r["maxrss_kb"],
                            base["maxrss_kb"], r.get("internal_bytes", "-"), r.get("cli_s", "-")))
    cfgs = ["palloc", "jemalloc-prof"]
    table("Distinct stacks: the run's CPU seconds (every allocation sampled; without a dump)",
          "stacks", counts, cfgs, lambda x, c: s[(x, c)]["base_cpu"], lambda v: "%.2f s" % v,
          "jemalloc-prof", out)
    table("Distinct stacks: peak RSS without a dump", "stacks", counts, cfgs,
          lambda x, c: s[(x, c)]["base_maxrss_kb"], mib, "jemalloc-prof", out)
    table("Distinct stacks: palloc's own memory (internal_bytes)", "stacks", counts, ["palloc"],
          lambda x, c: s[(x, c)].get("internal_bytes", 0) / 1024.0, mib, None, out)
    table("Distinct stacks: profile write (palloc_profile_write; jemalloc's prof.dump), seconds",
          "stacks", counts, cfgs, lambda x, c: s[(x, c)].get("dump_s"),
          lambda v: "%.3f s" % v, "jemalloc-prof", out)
    table("Distinct stacks: profile size (palloc gzip'd pprof; jemalloc heap_v2 text)", "stacks",
          counts, cfgs, lambda x, c: s[(x, c)]["size"] / 1024.0, lambda v: "%.0f KiB" % v,
          "jemalloc-prof", out)
    table("Distinct stacks: peak RSS added by the write (with dump minus without)", "stacks",
          counts, cfgs, lambda x, c: max(0, s[(x, c)]["maxrss_kb"] - s[(x, c)]["base_maxrss_kb"]),
          lambda v: "%.0f KiB" % v, None, out)
    table("Distinct stacks: `palloc top` on palloc's profile, seconds", "stacks", counts,
          ["palloc"], lambda x, c: s[(x, c)].get("cli_s"), lambda v: "%.3f s" % v, None, out)


def bench_exec(build, out, res, rounds, n):
    p = subprocess.run([sys.executable, os.path.join(HERE, "startup.py"), "--build-dir", build,
                        "--rounds", str(rounds), "--n", str(n), "--prog", "/bin/true"],
                       capture_output=True, text=True, timeout=600)
    res["exec"] = p.stdout
    out.append("")
    out.append("Exec start-up (startup.py, %d rounds x %d execs of /bin/true): constant per exec"
               % (rounds, n))
    out += ["  " + line for line in p.stdout.splitlines() if line.strip()]


def main(args, build, palloc_so, out_dir):
    RUSAGE[0] = os.path.join(out_dir, "rusage")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", RUSAGE[0],
                    os.path.join(HERE, "rusage.c")], check=True)
    exe = os.path.join(out_dir, "scale")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-g", "-fno-omit-frame-pointer",
                    "-fno-optimize-sibling-calls", "-no-pie", "-fno-pie", "-pthread", "-o", exe,
                    os.path.join(HERE, "scale.c"), "-ldl"], check=True)
    tool = os.path.join(build, "tools", "palloc", "palloc")
    tmp = os.path.join(out_dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    parts = args.scale_parts.split(",")
    res, text = {}, []
    text.append("palloc scale benchmark, %s; libpalloc %s" % (
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), palloc_so))
    t0 = time.monotonic()
    heaps = [m for m in (64, 512, 2048, 8192) if m <= args.heap_max]
    stacks = [k for k in (1000, 10000, 100000, 1000000) if k <= args.stacks_max]
    if "threads" in parts:
        bench_threads(exe, palloc_so, res, text, [1, 8, 64, 512])
    if "heap" in parts:
        bench_heap(exe, palloc_so, res, text, heaps)
    if "depth" in parts:
        bench_depth(exe, palloc_so, res, text, [8, 16, 32, 64, 128])
    if "stacks" in parts:
        bench_stacks(exe, palloc_so, tool, res, text, stacks, tmp)
    if "exec" in parts:
        bench_exec(build, text, res, 5, 40)
    text.append("")
    text.append("(%.0f s)" % (time.monotonic() - t0))
    s = "\n".join(text)
    print(s)
    with open(os.path.join(out_dir, "table.txt"), "w") as f:
        f.write(s + "\n")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({part: {" ".join(map(str, k if isinstance(k, tuple) else (k,))): v
                          for k, v in d.items()} if isinstance(d, dict) else d
                   for part, d in res.items()}, f, indent=1, default=str)
    print("\nresults: %s/{table.txt,results.json}" % out_dir)
    return 0
