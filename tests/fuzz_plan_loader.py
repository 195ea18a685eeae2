"""A structure-aware fuzzer for the plan loader (no dependencies beyond mixq and numpy).

Seeds are real plan files. Each execution edits the JSON of one seed at a random place (a value
made extreme, of the wrong type, removed, duplicated; a list cut short; array index entries
changed), writes it with a valid checksum (so the loader cannot stop at the CRC), loads it and,
if it loads, runs it. Loading must either succeed or raise PlanFileError; a plan that loads must
run. Anything else is reported; a crash or hang kills the process, which the caller detects.

python tests/fuzz_plan_loader.py SEED.mixq [SEED.mixq ...] [--seconds S] [--max-runs N] [--seed R]
Prints one JSON line: {"executions": n, "loaded": k, "overflowed": j, "findings": [...]} (overflowed:
plans that loaded and whose run raised ValueError on NaN/Inf from edited weights, a clean refusal).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys
import tempfile
import time
import zlib

import numpy as np

_HEADER = struct.Struct("<8sIQQI")
_INTS = [0, 1, -1, 2, 3, 7, 100, 255, 256, 2**31 - 1, 2**31, 2**40, 2**62, 2**63 - 1, -(2**63)]
_FLOATS = [0.0, -0.0, 1e-45, -1.0, 1e38, float("inf"), float("-inf"), float("nan")]
_OTHER = [None, True, False, "x", "", [], {}, [1, 2, 3], {"a": 1}]


def _parts(path):
    blob = open(path, "rb").read()
    _, _, n_json, _, _ = _HEADER.unpack_from(blob)
    return json.loads(blob[_HEADER.size:_HEADER.size + n_json]), blob[_HEADER.size + n_json:]


def _write(path, doc, data):
    body = json.dumps(doc).encode()
    crc = zlib.crc32(data, zlib.crc32(body))
    with open(path, "wb") as f:
        f.write(_HEADER.pack(b"MIXQPLAN", 1, len(body), len(data), crc) + body + data)


def _slots(node, out, path=()):
    """Every (container, key) in the document."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out, path + (i,))
    return out


def _mutate(doc, rng: random.Random) -> str:
    container, key = rng.choice(_slots(doc, []))
    v = container[key]
    r = rng.random()
    if r < 0.35 and isinstance(v, (int, float)) and not isinstance(v, bool):
        new = rng.choice(_INTS + [v + rng.choice([-2, -1, 1, 2]), v * 2, -v] if isinstance(v, int) else _FLOATS)
    elif r < 0.45:
        new = rng.choice(_INTS + _FLOATS + _OTHER)
    elif r < 0.55 and isinstance(v, list) and v:
        new = v[:rng.randrange(len(v))] if rng.random() < 0.5 else v + [rng.choice(v)]
    elif r < 0.65 and isinstance(container, dict):
        del container[key]
        return f"del {key!r}"
    elif r < 0.75 and isinstance(container, list) and len(container) > 1:
        i = rng.randrange(len(container))
        container[key], container[i] = container[i], container[key]
        return f"swap {key}<->{i}"
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        new = v + rng.choice([-1, 1])
    else:
        new = rng.choice(_INTS + _OTHER)
    container[key] = new
    return f"{key!r}: {v!r:.40} -> {new!r:.40}"


def _run(plan) -> None:
    import mixq

    if isinstance(plan, mixq.EncoderPlan):
        s = plan.spec
        ids = np.zeros((2, min(5, s["max_positions"])), np.int64) % s["vocab"]
        plan.run(ids)
    elif isinstance(plan, mixq.DecoderPlan):  # a prompt, then two decode steps on the KV cache
        n = max(1, min(3, plan.max_positions - 2))
        plan.generate(np.arange(n) % plan.vocab_size, min(2, plan.max_positions - n))
    else:
        c, h, w = plan.input_shape
        plan.run(np.ones((2, c, h, w), np.float32))


def fuzz(seeds, seconds: float, max_runs: int, seed: int) -> dict:
    import mixq

    rng = random.Random(seed)
    parts = [_parts(s) for s in seeds]
    findings, loaded, overflowed, n = [], 0, 0, 0
    fd, path = tempfile.mkstemp(suffix=".mixq")
    os.close(fd)
    stop = time.perf_counter() + seconds
    try:
        while n < max_runs and time.perf_counter() < stop:
            doc, data = rng.choice(parts)
            doc = json.loads(json.dumps(doc))
            edits = [_mutate(doc, rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            _write(path, doc, data)
            n += 1
            try:
                plan = mixq.load_plan(path)
            except mixq.PlanFileError:
                continue
            except Exception as e:  # noqa: BLE001 - every other exception is a finding
                findings.append(dict(edits=edits, stage="load", error=f"{type(e).__name__}: {e}"[:300]))
                continue
            loaded += 1
            try:
                _run(plan)
            except ValueError as e:
                # Edited weights are still weights: garbage can overflow to Inf, which the core reports.
                if "NaN or Inf" not in str(e):
                    findings.append(dict(edits=edits, stage="run", error=f"ValueError: {e}"[:300]))
                else:
                    overflowed += 1
            except Exception as e:  # noqa: BLE001
                findings.append(dict(edits=edits, stage="run", error=f"{type(e).__name__}: {e}"[:300]))
    finally:
        os.unlink(path)
    return dict(executions=n, loaded=loaded, overflowed=overflowed, findings=findings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seeds", nargs="+")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-runs", type=int, default=10**9)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    result = fuzz(args.seeds, args.seconds, args.max_runs, args.seed)
    print(json.dumps(result))
    sys.exit(1 if result["findings"] else 0)


if __name__ == "__main__":
    main()
