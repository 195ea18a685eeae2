"""The one timer of the benchmarks, and probes of what else ran on the machine meanwhile.

Every impl of a case is timed in the same process in interleaved rounds: this VM's speed and
DRAM bandwidth drift by +-10 % (and jump for seconds), so impls timed one after another would
not see the same machine, while impls that share every round keep fair ratios."""
from __future__ import annotations

import os
import statistics
import time
from types import SimpleNamespace

BUSY = 0.25  # cores other processes used while a row was timed, above which it is marked "*"


def cpu_times() -> tuple[float, float] | None:
    """(CPU seconds all cores were busy, CPU seconds of this process) or None off Linux."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    t = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), t.user + t.system


def other_cores(before, after, wall: float) -> float:
    """Cores' worth of CPU other processes used between two cpu_times() snapshots."""
    if before is None or after is None or wall <= 0:
        return 0.0
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / wall


def time_interleaved(fns: dict, args, block_s: float = 0.05, per_round: dict | None = None,
                     max_rounds: int = 1000) -> dict:
    """Times several implementations of one case in rounds: each round gives every fn a block of
    calls, in an order rotated from round to round, so every impl samples the same moments of
    the machine. A fast fn's block is about `block_s` long and its first call is not timed (caches
    and worker threads as warm as in back-to-back runs); a call longer than `block_s`, or any call
    with block_s=0, is its own block. Rounds repeat at least `args.repeats` times and until
    `args.min_time` seconds (at most `max_rounds`), after `args.warmup` untimed calls per fn.
    Returns {name: (median_s, min_s, cores other processes used meanwhile)}; with `per_round` (a
    dict), also fills per_round[name] with each round's median (report.round_ratio_range turns
    them into the spread of a ratio within this run)."""
    names = list(fns)
    block = {}
    for name in names:
        took = 0.0
        for _ in range(args.warmup if block_s <= 0 else max(args.warmup, 1)):
            s = time.perf_counter()
            fns[name]()
            took = time.perf_counter() - s
        block[name] = 1 if block_s <= 0 or took >= block_s else min(50, 2 + int(block_s / max(took, 1e-6)))
    times = {name: [] for name in names}
    c0, t0 = cpu_times(), time.perf_counter()
    rounds = 0
    while rounds < max(args.repeats, 1) or (time.perf_counter() - t0 < args.min_time and rounds < max_rounds):
        for i in range(len(names)):
            name = names[(i + rounds) % len(names)]
            if len(names) > 1:
                time.sleep(0.002)  # the previous library's spinning workers go idle, untimed
            this_round = []
            for k in range(block[name]):
                s = time.perf_counter()
                fns[name]()
                if k > 0 or block[name] == 1:
                    this_round.append(time.perf_counter() - s)
            times[name] += this_round
            if per_round is not None:
                per_round.setdefault(name, []).append(statistics.median(this_round))
        rounds += 1
    load = other_cores(c0, cpu_times(), time.perf_counter() - t0)
    return {name: (statistics.median(v), min(v), load) for name, v in times.items()}


def time_fn(fn, repeats: int = 10, warmup: int = 2, min_time: float = 0.0,
            max_runs: int = 1000) -> tuple[float, float]:
    """One fn alone through the same timer, one call per round: `warmup` untimed calls, then at
    least `repeats` timed ones, more (up to `max_runs`) until `min_time` seconds were spent.
    Returns (median_s, min_s). Compare impls with time_interleaved, not with two of these."""
    args = SimpleNamespace(repeats=repeats, warmup=warmup, min_time=min_time)
    med, mn, _ = time_interleaved({"fn": fn}, args, block_s=0, max_rounds=max_runs)["fn"]
    return med, mn


def other_load(seconds: float = 0.5) -> float:
    """Cores' worth of CPU time used by anyone (other processes, since we are idle here)
    during `seconds`, from /proc/stat; 0.0 where unavailable."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        (t0, i0), _, (t1, i1) = sample(), time.sleep(seconds), sample()
    except OSError:
        return 0.0
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(t1 - t0, 1))


def warn_if_busy() -> None:
    load = other_load()
    if load > 0.3:
        print(f"[bench] WARNING: other processes use ~{load:.1f} cores right now; "
              "timings (especially multi-threaded peers) will be low and noisy")
