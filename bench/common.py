"""Shared helpers for the benchmark scripts in bench/.

Every benchmark follows the contract in ARCHITECTURE.md ("Benchmarks: the contract"):
mixq and every installed peer run in the same process on the same inputs with the same
thread count; we report medians of repeated runs after warm-up, print a side-by-side
table and, with ``--json PATH``, write ``{"machine": {...}, "results": [...]}``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Set before any peer imports torch: idle OpenMP threads that spin take the cores from whoever is
# timed next in this process (measured: mixq plans 1.5-2x slower after a torch call).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PEER_MODULES = ("torch", "onnxruntime", "onnx")


# ---------------------------------------------------------------- arguments
def parse_args(description: str, argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer cases/repeats (CI smoke run)")
    p.add_argument("--json", metavar="PATH", help="write machine info and results as JSON")
    p.add_argument("--threads", type=int, default=2, help="threads for mixq and every peer")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per case (default 10, 3 with --quick)")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 10
    args.warmup = 1 if args.quick else 2
    args.min_time = 0.05 if args.quick else 0.25  # keep timing tiny cases a little longer
    return args


# ---------------------------------------------------------------- timing
def time_fn(fn, repeats: int = 10, warmup: int = 2, min_time: float = 0.0,
            max_runs: int = 1000) -> tuple[float, float]:
    """Call fn() `warmup` times, then time single calls with perf_counter.

    Runs at least `repeats` times and keeps going (up to `max_runs`) until `min_time`
    seconds were spent timing, so sub-millisecond cases get enough samples.
    Returns (median_s, min_s).
    """
    for _ in range(warmup):
        fn()
    times = []
    total = 0.0
    while len(times) < max(repeats, 1) or (total < min_time and len(times) < max_runs):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return statistics.median(times), min(times)


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


def time_interleaved(fns: dict, args, block_s: float = 0.05, per_round: dict | None = None) -> dict:
    """Times several implementations of one case in rounds: each round gives every fn a block of
    calls, in an order rotated from round to round. On a machine whose speed drifts for seconds at
    a time (this VM), every impl then samples the same moments, and their ratios stay fair where
    timing them one after another would hand one impl the slow spell. A fast fn's block is about
    `block_s` long and its first call is not timed, so caches and worker threads are as warm as in
    back-to-back runs; a call longer than `block_s` is its own block. Rounds repeat at least
    `args.repeats` times and until `args.min_time` seconds.
    Returns {name: (median_s, min_s, cores other processes used meanwhile)}; with `per_round` (a
    dict), also fills per_round[name] with each round's median: the spread of a ratio across
    rounds (round_ratio_range) shows how far the machine's drift moved it within this run."""
    names = list(fns)
    block = {}
    for name in names:
        for _ in range(max(args.warmup, 1)):
            s = time.perf_counter()
            fns[name]()
            took = time.perf_counter() - s
        block[name] = 1 if took >= block_s else min(50, 2 + int(block_s / max(took, 1e-6)))
    times = {name: [] for name in names}
    c0, t0 = cpu_times(), time.perf_counter()
    rounds = 0
    while rounds < max(args.repeats, 1) or (time.perf_counter() - t0 < args.min_time and rounds < 1000):
        for i in range(len(names)):
            name = names[(i + rounds) % len(names)]
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


# ---------------------------------------------------------------- peers
_PEERS: dict | None = None


def peers(verbose: bool = True) -> dict:
    """{name: module or None} for mixq and every optional peer; missing ones are printed."""
    global _PEERS
    if _PEERS is None:
        _PEERS = {}
        for name in ("mixq",) + PEER_MODULES:
            try:
                _PEERS[name] = importlib.import_module(name)
            except Exception as e:  # ImportError, or a broken native extension
                _PEERS[name] = None
                if verbose:
                    print(f"[bench] {name} not available ({type(e).__name__}: {e}); skipping its rows")
    return _PEERS


def set_threads(n: int) -> None:
    """Give mixq and torch the same thread count (ORT gets it per session: ort_session)."""
    p = peers()
    if p["torch"] is not None:
        p["torch"].set_num_threads(n)
        try:
            p["torch"].set_num_interop_threads(1)
        except RuntimeError:  # only allowed before torch started inter-op work
            pass
    if p["mixq"] is not None:
        p["mixq"].set_num_threads(n)


def ort_session(model, threads: int):
    """InferenceSession on the CPU provider with intra-op = threads, inter-op = 1, sequential."""
    ort = peers()["onnxruntime"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ORT's idle intra-op threads otherwise keep spinning after each run and take the cores
    # from whichever library is timed next in this process (measured: mixq at half speed).
    # Its own back-to-back timings were the same within noise without spinning.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def export_onnx(model, inputs: tuple, path: str, input_names, output_names, dynamic_axes,
                opset: int = 17) -> None:
    """torch.onnx.export with the TorchScript exporter (dynamo=False): the dynamo exporter, the
    default since torch 2.9, needs the onnxscript package, which the bench extra does not
    install; the TorchScript one needs nothing beyond torch and onnx."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's DeprecationWarning
        torch.onnx.export(model, inputs, path, dynamo=False, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes,
                          opset_version=opset, do_constant_folding=True)


def onnx_initializer_bytes(model) -> dict[str, int]:
    """{onnx element type name: bytes} over the initializers of an ONNX model."""
    onnx = peers()["onnx"]
    from onnx import numpy_helper

    out: dict[str, int] = {}
    for init in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(init.data_type)
        out[name] = out.get(name, 0) + numpy_helper.to_array(init).nbytes
    return out


class MixqUnavailable(Exception):
    """mixq's model API is not there (yet): `permanent` when no config can work in this run."""

    def __init__(self, msg: str, permanent: bool = False):
        super().__init__(msg)
        self.permanent = permanent


# ---------------------------------------------------------------- machine
def cpu_model_name() -> str:
    from mixq.roofline.machine import cpu_name  # one reader of /proc/cpuinfo

    return cpu_name()


def numpy_dram_read_gbs(threads: int, mbytes: int = 512, rounds: int = 3) -> float:
    """Estimate of DRAM read bandwidth measured with numpy, NOT by mixq: `threads` threads
    each reduce one slice of an int64 array of `mbytes` MB (well above the L3), best of
    `rounds`. numpy releases the GIL inside the reduction, so the threads run in parallel."""
    arr = np.ones(mbytes * (1 << 20) // 8, dtype=np.int64)
    chunks = np.array_split(arr, threads)
    best = float("inf")
    with ThreadPoolExecutor(threads) as ex:
        for _ in range(rounds):
            t0 = time.perf_counter()
            list(ex.map(np.add.reduce, chunks))
            best = min(best, time.perf_counter() - t0)
    return arr.nbytes / best / 1e9


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


def start(doc: str, argv=None):
    """Common start of every benchmark: arguments (first line of the script's docstring as
    description), peers, one thread count for all, a busy-machine warning, the machine dict.
    Returns (args, peers, machine)."""
    args = parse_args(doc.splitlines()[0], argv)
    p = peers()
    set_threads(args.threads)
    warn_if_busy()
    return args, p, machine_info(args.threads)



def checked_output(run, x, ref, impl: str, log):
    """run(x) as an array shaped like `ref`, all finite, or None (and a log line): a wrong output
    is not timed."""
    try:
        out = np.asarray(run(x))
        if out.shape != ref.shape or not np.all(np.isfinite(out)):
            raise ValueError(f"output {out.dtype} {out.shape}, finite={np.all(np.isfinite(out))}; "
                             f"expected {ref.shape}")
        return out
    except Exception as e:
        log(f"  {impl}: wrong or failed output, not timed: {type(e).__name__}: {e}")
        return None


def check_and_time(runners: dict, x, ref, quality, args, log, per_round: dict | None = None) -> dict:
    """One case: every runner's output on x checked against `ref` (checked_output) and scored by
    quality(out); the good ones timed together in interleaved rounds (time_interleaved, which
    fills `per_round` if given). runners: {impl: (run, anything)}.
    Returns {impl: (median_s, min_s, other cores, quality)}."""
    scored = {}
    for impl, (run, _) in runners.items():
        out = checked_output(run, x, ref, impl, log)
        if out is not None:
            scored[impl] = quality(out)
    log(f"  timing {', '.join(scored)} in interleaved rounds")
    timed = time_interleaved({impl: (lambda run=runners[impl][0]: run(x)) for impl in scored}, args,
                             per_round=per_round)
    return {impl: (*timed[impl], scored[impl]) for impl in scored}


def parse_models(argv, script: str, models) -> tuple[list, list[str]]:
    """Splits `--models LIST` (a comma-separated subset of `models`; default all) off argv:
    (the rest of argv, for start; the chosen models). Unknown names exit with status 2."""
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--models", default=",".join(models))
    ns, rest = extra.parse_known_args(argv)
    chosen = [m for part in ns.models.split(",") for m in part.split() if m]
    bad = [m for m in chosen if m not in models]
    if bad or not chosen:
        print(f"{script}: error: --models: unknown {bad or 'empty list'}; choose from {', '.join(models)}",
              file=sys.stderr)
        raise SystemExit(2)
    return rest, chosen


def start_with_models(doc: str, argv, script: str, models):
    """start() for a model benchmark (torch required) with a --models option: prints the run's
    header line; returns (args, peers, machine, chosen models)."""
    rest, chosen = parse_models(argv, script, models)
    try:
        args, p, machine = start(doc, rest)
    except SystemExit as e:
        if e.code == 0 and any(a in ("-h", "--help") for a in rest):
            print(f"\n{script} options:\n  --models LIST         comma-separated subset of "
                  f"{','.join(models)} (default: all)")
        raise
    if p["torch"] is None:
        raise SystemExit(f"bench/{script} needs torch (the models are torch modules): pip install .[bench]")
    if p["onnxruntime"] is not None:
        p["onnxruntime"].set_default_logger_severity(3)  # no per-initializer warnings
    print(f"[{script.removesuffix('.py')}] {machine['cpu']}, isa={machine['isa']}, threads={args.threads}, "
          f"repeats={args.repeats}{' (quick)' if args.quick else ''}; models: {', '.join(chosen)}")
    return args, p, machine, chosen

def machine_info(threads: int) -> dict:
    """The "machine" dict of the JSON contract; isa and peaks come from mixq (None without it)."""
    mixq = peers()["mixq"]
    info = {"cpu": cpu_model_name(), "isa": None, "threads": threads,
            "peak_int8_gops": None, "peak_fp32_gflops": None, "dram_read_gbs": None}
    if mixq is not None:
        ci = mixq.cpu_info()
        info["isa"] = ci.get("isa")
        info["peak_int8_gops"] = float(mixq.measure_peak("int8"))
        info["peak_fp32_gflops"] = float(mixq.measure_peak("fp32"))
        if hasattr(mixq, "measure_bandwidth"):  # mixq's own streaming-read probe
            info["dram_read_gbs"] = float(mixq.measure_bandwidth())
    if info["dram_read_gbs"] is None:
        info["dram_read_gbs"] = numpy_dram_read_gbs(threads)  # numpy-measured estimate
    return info


# ---------------------------------------------------------------- results
class Results:
    """Collects rows {"case", "impl", "median_s", "min_s", "ops", "bytes"}, and "round_s" (the
    median of each interleaved round, in order) when the bench passes them."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, case: str, impl: str, median_s: float, min_s: float,
            ops: float | None = None, bytes: float | None = None, rounds: list | None = None) -> dict:
        row = {"case": case, "impl": impl, "median_s": float(median_s), "min_s": float(min_s),
               "ops": None if ops is None else float(ops),
               "bytes": None if bytes is None else float(bytes)}
        if rounds:
            row["round_s"] = [float(t) for t in rounds]
        self.rows.append(row)
        return row

    def get(self, case: str, impl: str) -> dict | None:
        return next((r for r in self.rows if r["case"] == case and r["impl"] == impl), None)

    def gops(self, case: str, impl: str) -> float | None:
        r = self.get(case, impl)
        return None if r is None or not r["ops"] else r["ops"] / r["median_s"] / 1e9


def is_mixq(impl: str) -> bool:
    return impl.startswith("mixq-")


def best_peer_gops(results: Results, case: str, impls) -> float | None:
    vals = [results.gops(case, i) for i in impls if not is_mixq(i)]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def print_table(results: Results, impls=None, title: str | None = None,
                peaks: dict | None = None, baseline: str | None = None) -> None:
    """One line per case, one GOPS column (from the median) per impl. Each mixq-* impl
    also gets a column "<precision>/peer" with its ratio to the best non-mixq impl of this
    table and, when peaks[impl] is given, "<precision> %peak". With `baseline` (an impl), the
    ratio columns compare against it instead. Missing measurements print as '-'."""
    impls = list(impls or dict.fromkeys(r["impl"] for r in results.rows))
    cases = list(dict.fromkeys(r["case"] for r in results.rows
                               if r["impl"] in impls))
    peaks = peaks or {}
    mine = [i for i in impls if is_mixq(i)]
    cols = [(i, i, "GOPS") for i in impls]  # (header, impl, what)
    ref_name = baseline[5:] if baseline and is_mixq(baseline) else (baseline or "peer")
    cols += [(f"{i[5:]}/{ref_name}", i, "ratio") for i in mine if i != baseline]
    cols += [(f"{i[5:]} %peak", i, "peak") for i in mine if peaks.get(i)]
    wc = max([len("case")] + [len(c) for c in cases])
    widths = [max(len(head), 7) for head, _, _ in cols]
    if title:
        print(f"\n{title}")
    header = "case".ljust(wc) + "".join("  " + h.rjust(w) for (h, _, _), w in zip(cols, widths))
    print(header)
    print("-" * len(header))
    for case in cases:
        best = results.gops(case, baseline) if baseline else best_peer_gops(results, case, impls)
        cells = []
        for (_, impl, what), w in zip(cols, widths):
            g = results.gops(case, impl)
            if g is None:
                s = "-"
            elif what == "GOPS":
                s = f"{g:.1f}"
            elif what == "ratio":
                s = f"{g / best:.2f}x" if best else "-"
            else:
                s = f"{100 * g / peaks[impl]:.0f}%"
            cells.append("  " + s.rjust(w))
        print(case.ljust(wc) + "".join(cells))


def ratio(results: Results, case: str, impl: str, base: str) -> float | None:
    """Speed-up of impl over base on case (base median / impl median), None if either is missing."""
    a, b = results.get(case, impl), results.get(case, base)
    return None if a is None or b is None else b["median_s"] / a["median_s"]


def round_ratio_range(results: Results, case: str, impl: str, base: str) -> tuple[float, float] | None:
    """(lowest, highest) speed-up of impl over base among the interleaved rounds of this run
    (base's round median / impl's, round by round); None without per-round times."""
    a, b = results.get(case, impl), results.get(case, base)
    if a is None or b is None or not a.get("round_s") or not b.get("round_s"):
        return None
    per_round = [tb / ta for ta, tb in zip(a["round_s"], b["round_s"])]
    return min(per_round), max(per_round)


def round_range_text(results: Results, case: str, impl: str, base: str) -> str:
    """ "; rounds 1.18-1.31x" for a target line, or "" without per-round times."""
    r = round_ratio_range(results, case, impl, base)
    return "" if r is None else f"; rounds {r[0]:.2f}-{r[1]:.2f}x"


ERR_FLAG = {"fp32": 1e-3, "int": 0.5}  # rel err vs torch-fp32 above which a row is marked "!"


def model_table_rows(results: Results, info: dict, impls, cells, ratios_last: bool = False) -> list:
    """Rows of a model benchmark's table, cases in run order, a None between cases: for every
    timed (case, impl), [case, impl, median ms (* when other processes were busy)], the
    speed-ups over ort-fp32 and ort-int8 and cells(result, info, err_cell) (speed-ups last with
    ratios_last) -- err_cell(err) is the error with "!" past ERR_FLAG for that impl."""
    rows = []
    for case in dict.fromkeys(r["case"] for r in results.rows):
        for impl in impls:
            r = results.get(case, impl)
            if r is None:
                continue
            q = info[(case, impl)]
            flag = ERR_FLAG["fp32" if impl.endswith("fp32") else "int"]
            speedups = []
            for base in ("ort-fp32", "ort-int8"):
                v = ratio(results, case, impl, base)
                speedups.append("-" if v is None or impl == base else f"{v:.2f}x")
            rest = cells(r, q, lambda err: f"{err:.1e}" + ("!" if err > flag else ""))
            rows.append([case, impl, f"{r['median_s'] * 1e3:.2f}" + ("*" if q["load"] > BUSY else "")]
                        + (rest + speedups if ratios_last else speedups + rest))
        rows.append(None)
    return rows


def print_columns(head: list[str], rows: list, left: int = 2) -> None:
    """A plain text table: the first `left` columns left-aligned, the rest right-aligned; a row
    None prints as an empty line (a group separator)."""
    rows = list(rows)
    while rows and rows[-1] is None:
        rows.pop()
    widths = [max([len(h)] + [len(r[i]) for r in rows if r]) for i, h in enumerate(head)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt(head))
    print("-" * len(fmt(head)))
    for r in rows:
        print(fmt(r) if r else "")


def write_json(path: str, machine: dict, results: Results) -> None:
    with open(path, "w") as f:
        json.dump({"machine": machine, "results": results.rows}, f, indent=1)
        f.write("\n")
    print(f"[bench] wrote {path}")
