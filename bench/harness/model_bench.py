"""The skeleton e2e.py and bert.py share: models x batch sizes x impls.

Per model the bench builds its runners once ({impl: (run(feed), weight bytes)}: torch, the ONNX
peers, mixq plans); per batch size, `ModelBench.time_case` checks every runner's output against
torch-fp32 on the timed input (a wrong or non-finite output is not timed), times the good ones
together in interleaved rounds and adds the rows (with their per-round medians) to the results.
The bench then prints its table (report.model_table_rows) and targets, and `finish` writes the
JSON."""
from __future__ import annotations

import numpy as np

from .cli import start_with_models
from .log import make_log
from .report import Results, write_results
from .timing import BUSY, time_interleaved


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


def add_peer_runners(runners: dict, peer_sets, log, skipped: dict | None = None) -> None:
    """Adds {impl: (run, weight bytes)} of each peer set (OrtPeers, OvPeers, ...: objects with
    runners, weight_bytes and skipped) to `runners`, logging the skipped impls with the reason
    (and keeping it in `skipped`, for print_not_measured)."""
    for ps in peer_sets:
        for impl, why in ps.skipped.items():
            log(f"  {impl}: skipped ({why})")
            if skipped is not None:
                skipped.setdefault(impl, why)
        runners.update({k: (f, ps.weight_bytes[k]) for k, f in ps.runners.items()})


def print_not_measured(skipped: dict, results: Results) -> None:
    """Lines under a table for the peers that have no row in it, with the reason: a missing
    peer is reported, not silently left out."""
    measured = {r["impl"] for r in results.rows}
    by_reason: dict[str, list] = {}
    for impl, why in skipped.items():
        if impl not in measured:
            by_reason.setdefault(why, []).append(impl)
    for why, impls in by_reason.items():
        print(f"not measured: {', '.join(impls)} ({why})")


class ModelBench:
    """One run of a model benchmark: arguments (with --models), peers, machine, the results and
    the per-row info ({(case, impl): dict}) its table reads."""

    def __init__(self, bench: str, doc: str, models, argv=None):
        self.bench, self.log = bench, make_log(bench)
        self.args, self.peers, self.machine, self.models = start_with_models(doc, argv, f"{bench}.py", models)
        self.results, self.info, self.skipped = Results(), {}, {}

    def time_case(self, case: str, runners: dict, feed, quality, ops: int, meta: dict, describe) -> dict:
        """Checks and times every runner on `feed` against torch-fp32 and records the rows.
        quality(out, ref) -> dict of error figures (stored in info with `meta` and the load);
        describe(that dict) -> the text of a log line. Returns {impl: info dict}."""
        ref = np.asarray(runners["torch-fp32"][0](feed))
        self.log(f"{case}:")
        per_round = {}
        timed = check_and_time(runners, feed, ref, lambda out: quality(out, ref), self.args, self.log, per_round)
        out = {}
        for impl, (med, mn, load, q) in timed.items():
            self.results.add(case, impl, med, mn, ops=ops, bytes=runners[impl][1], rounds=per_round.get(impl))
            out[impl] = self.info[(case, impl)] = {**q, **meta, "load": load}
            self.log(f"  {impl:15s} {med * 1e3:9.2f} ms  {describe(q)}"
                     + (f"  (other processes used {load:.1f} cores meanwhile)" if load > BUSY else ""))
        return out

    def finish(self) -> None:
        write_results(self.args, self.bench, self.machine, self.results)
