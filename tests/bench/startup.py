#!/usr/bin/env python3
"""startup.py - what a preloaded allocator costs every exec of a short program.

Under LD_PRELOAD every process pays for mapping and relocating the preloaded library and its
dependencies before main. This times N execs of a tiny program (default `/bin/true` and
`seq 1 20`) under each configuration:

  none      nothing preloaded
  mimalloc  Debian's libmimalloc.so.2 (the base of every ratio)
  palloc    BUILD/alloc/libpalloc.so (no PALLOC_* variable set: no profile is written)
  NAME=LIB  any other preload (--lib, repeatable), e.g. an older libpalloc.so to compare

The configurations alternate within each round (the order rotates from round to round) so that
the machine's drift hits them alike. Per configuration it prints the median time of one exec,
wall-clock and CPU (the children's user + system time, which a busy machine disturbs less), and
per configuration and round the ratio to mimalloc of that round, summarised as the median ratio
and a 95% bootstrap interval of that median. Then, per configuration, what the dynamic loader
did for one exec of the program (LD_DEBUG=statistics: relocations, objects loaded) and which
objects it loaded.

    tests/bench/startup.py [--build-dir build] [--rounds 15] [--n 100] [--lib NAME=PATH ...]

Standard library only; a run of the defaults takes about 20 s on an idle machine.
"""
import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time

MIMALLOC = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PALLOC_") and k not in ("LD_PRELOAD", "LD_DEBUG")}
    return env


def spawn_n(argv, env, n):
    """Runs argv n times, one after another; returns (wall, cpu) seconds per exec. cpu is the
    children's user + system time (wait4's rusage): what the exec itself cost, without the time
    spent waiting for a core on a busy machine."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        fa = [(os.POSIX_SPAWN_DUP2, devnull, 1)]
        cpu = 0.0
        t0 = time.perf_counter()
        for _ in range(n):
            pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
            _, status, ru = os.wait4(pid, 0)
            cpu += ru.ru_utime + ru.ru_stime
            if status != 0:
                raise SystemExit("%s exited with status %d under %s"
                                 % (" ".join(argv), status, env.get("LD_PRELOAD", "nothing")))
        return (time.perf_counter() - t0) / n, cpu / n
    finally:
        os.close(devnull)


def boot_median_ci(xs, iters=2000, seed=1):
    rnd = random.Random(seed)
    meds = sorted(statistics.median(rnd.choices(xs, k=len(xs))) for _ in range(iters))
    return meds[int(iters * 0.025)], meds[int(iters * 0.975) - 1]


def loader_stats(argv, env):
    """LD_DEBUG=statistics and =files of one exec: relocations, loaded objects."""
    e = dict(env, LD_DEBUG="statistics")
    r = subprocess.run(argv, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    relocs = re.search(r"number of relocations:\s*(\d+)", r.stderr)
    cached = re.search(r"number of relocations from cache:\s*(\d+)", r.stderr)
    e = dict(env, LD_DEBUG="files")
    r = subprocess.run(argv, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    names = []
    for m in re.finditer(r"file=(\S+) \[0\];\s+needed by", r.stderr):
        if m.group(1) not in names:
            names.append(m.group(1))
    for m in re.finditer(r"file=(\S+) \[0\];\s+dynamically loaded", r.stderr):
        names.append(m.group(1) + " (dlopen)")
    return (int(relocs.group(1)) if relocs else -1, int(cached.group(1)) if cached else -1,
            names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get("PALLOC_BUILD_DIR", "build"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--n", type=int, default=100, help="execs per configuration and round")
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                    help="another configuration (LD_PRELOAD=PATH)")
    ap.add_argument("--prog", action="append", default=None,
                    help="a program to run, with its arguments as one string "
                         "(default: '/bin/true' and '/usr/bin/seq 1 20')")
    ap.add_argument("--no-palloc", action="store_true")
    a = ap.parse_args()

    configs = [("none", None), ("mimalloc", MIMALLOC)]
    if not a.no_palloc:
        lib = os.path.abspath(os.path.join(a.build_dir, "alloc", "libpalloc.so"))
        if not os.path.exists(lib):
            raise SystemExit("no %s (build first, or --build-dir)" % lib)
        configs.append(("palloc", lib))
    for spec in a.lib:
        name, _, path = spec.partition("=")
        configs.append((name, os.path.abspath(path)))
    progs = [p.split() for p in (a.prog or ["/bin/true", "/usr/bin/seq 1 20"])]

    base = clean_env()
    envs = {name: (dict(base, LD_PRELOAD=path) if path else base) for name, path in configs}
    for argv in progs:
        wall = {name: [] for name, _ in configs}
        cpu = {name: [] for name, _ in configs}
        for name, _ in configs:          # warm the page cache, check each config runs
            spawn_n(argv, envs[name], 5)
        for r in range(a.rounds):
            order = configs[r % len(configs):] + configs[:r % len(configs)]
            for name, _ in order:
                w, c = spawn_n(argv, envs[name], a.n)
                wall[name].append(w)
                cpu[name].append(c)
        print("%s: %d rounds x %d execs per configuration" % (" ".join(argv), a.rounds, a.n))
        print("  %-12s %9s %10s %17s   %9s %10s %17s" % (
            "config", "wall us", "x mimalloc", "95% CI", "cpu us", "x mimalloc", "95% CI"))
        for name, _ in configs:
            row = "  %-12s" % name
            for t in (wall, cpu):
                ratios = [x / m for x, m in zip(t[name], t["mimalloc"])]
                lo, hi = boot_median_ci(ratios)
                row += " %9.0f %10.3f %8.3f - %.3f  " % (statistics.median(t[name]) * 1e6,
                                                        statistics.median(ratios), lo, hi)
            print(row.rstrip())
        print("  loader, one exec: relocations (from cache); objects loaded")
        for name, _ in configs:
            rel, cached, names = loader_stats(argv, envs[name])
            print("  %-12s %5d (%d)  %s" % (name, rel, cached, " ".join(
                os.path.basename(n) for n in names) or "-"))
        print()


if __name__ == "__main__":
    main()
