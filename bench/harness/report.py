"""Results of a run: rows per the JSON contract, side-by-side tables, ratios with their spread
over the interleaved rounds, and the JSON file (default: bench/results/<cpu-id>/<bench>.json)."""
from __future__ import annotations

import json
import os

from .machine import default_json_path
from .timing import BUSY

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


def json_path(arg: str | None, bench: str, machine: dict) -> str | None:
    """Where --json writes: its PATH, or with no PATH bench/results/<cpu-id>/<bench>.json."""
    if arg is None:
        return None
    return arg or str(default_json_path(bench, machine))


def write_results(args, bench: str, machine: dict, results: Results) -> None:
    """write_json to json_path(args.json, ...) when --json was given."""
    path = json_path(args.json, bench, machine)
    if path is not None:
        write_json(path, machine, results)


def write_json(path: str, machine: dict, results: Results) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": machine, "results": results.rows}, f, indent=1)
        f.write("\n")
    print(f"[bench] wrote {path}")
