"""The machine model: compute and memory roofs measured with mixq's own code, cached per CPU.

`machine()` measures, at the current thread count: the int8 / bf16 / fp32 peaks of tight
loops of the core, the best int8 and fp32 GEMM of the core (what a layer can really reach), and
the read bandwidth of DRAM, the L3 and the L2. The result is cached as JSON in
`$XDG_CACHE_HOME/mixq/` (default `~/.cache/mixq/`), keyed by CPU, ISA and threads.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ... import ops
from ...quant import parse_precision
from ...quant.precisions import default_int8

CACHE_VERSION = 2  # 2: peak_int8_narrow_gops


def roof_field(precision: str) -> str:
    """The Machine field holding the compute roof of a layer at `precision` (the precision
    table's `roof`: bf16 layers the bf16 peak, int8 activations the int8 peak, the rest fp32)."""
    try:
        return parse_precision(precision).entry.roof
    except ValueError:  # a name from elsewhere (a report of another tool): the fp32 roof
        return "peak_fp32_gflops"


@dataclass(frozen=True)
class Machine:
    cpu: str
    isa: str
    threads: int
    peak_int8_gops: float       # tight-loop compute roofs
    peak_bf16_gflops: float
    peak_fp32_gflops: float
    gemm_int8_gops: float       # best measured GEMM of the core (2048^2 x 1024 class)
    gemm_fp32_gflops: float
    dram_read_gbs: float
    l3_read_gbs: float
    l2_read_gbs: float
    measured_at: str = ""
    # w7a8's roof: the narrow-code (vpmaddubsw) loop where w7a8 runs on it (CPUs without VNNI), else
    # the int8 peak; 0 (a model from before it was measured) reads as the int8 peak.
    peak_int8_narrow_gops: float = 0.0

    def compute_roof(self, precision: str) -> float:
        """Ops/s roof of a layer at `precision` (a mixq.quant.config precision name)."""
        field = roof_field(precision)
        if field == "peak_int8_narrow_gops" and not self.peak_int8_narrow_gops:
            field = "peak_int8_gops"
        return getattr(self, field) * 1e9

    @property
    def ridge_int8(self) -> float:
        """Arithmetic intensity (ops/byte) where int8 layers turn compute-bound."""
        return self.peak_int8_gops / self.dram_read_gbs

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Machine":
        names = {f.name for f in fields(cls)}
        missing = names - set(d) - {"measured_at", "peak_int8_narrow_gops"}
        if missing:
            raise ValueError(f"machine model lacks {sorted(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown cpu"


def cache_path(cpu: str, isa: str, threads: int) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mixq"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu).strip("-").lower()[:60]
    return root / f"machine-{slug}-{isa}-t{threads}.json"


def _best_gemm(precision: str, seconds: float) -> float:
    """Best GOPS of the core's GEMM on a large, cache-friendly shape."""
    rng = np.random.default_rng(0)
    m, n, k = 1024, 1024, 1024
    p = parse_precision(precision)
    w = p.pack(rng.standard_normal((n, k)).astype(np.float32))
    if p.int8_activations:
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)

        def run():
            return ops.matmul(x, w, x_scale=1.0, x_zero_point=0, out_dtype=np.int32)
    else:
        x = rng.standard_normal((m, k)).astype(np.float32)

        def run():
            return ops.matmul(x, w)
    run()
    best, t_end = 0.0, time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        run()
        best = max(best, 2.0 * m * n * k / (time.perf_counter() - t0) / 1e9)
        if time.perf_counter() > t_end:
            return best


def measure(seconds: float = 0.3) -> Machine:
    """Measures the machine now (about 10 x `seconds`)."""
    info = ops.cpu_info()
    l2, l3 = int(info["l2_bytes"]), int(info["l3_bytes"])
    threads = ops.get_num_threads()
    peak_int8 = ops.measure_peak("int8", seconds)
    return Machine(
        cpu=cpu_name(), isa=info["isa"], threads=threads,
        peak_int8_gops=peak_int8,
        peak_int8_narrow_gops=ops.measure_peak("int8_narrow", seconds) if default_int8() == "w7a8" else peak_int8,
        peak_bf16_gflops=_bf16_peak(seconds),
        peak_fp32_gflops=ops.measure_peak("fp32", seconds),
        gemm_int8_gops=_best_gemm("w8a8", seconds),
        gemm_fp32_gflops=_best_gemm("fp32", seconds),
        dram_read_gbs=ops.measure_bandwidth(seconds),
        # Half of each level per thread, so the buffer really stays in it.
        l3_read_gbs=ops.measure_bandwidth(seconds, max(4096, l3 // 2)),
        l2_read_gbs=ops.measure_bandwidth(seconds, max(4096, l2 // 2 * threads)),
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )


def machine(refresh: bool = False, seconds: float = 0.3) -> Machine:
    """The machine model for this CPU, ISA and thread count: from the cache, or measured (and
    cached) when there is none, it is unreadable, or `refresh=True`."""
    info = ops.cpu_info()
    path = cache_path(cpu_name(), info["isa"], ops.get_num_threads())
    if not refresh and path.exists():
        try:
            doc = json.loads(path.read_text())
            if doc.get("version") == CACHE_VERSION:
                return Machine.from_dict(doc["machine"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is measured again
    m = measure(seconds)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "machine": m.to_dict()}, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home still gets a (measured) machine model
    return m


def _bf16_peak(seconds: float) -> float:
    """The bf16 peak, 0 where the kernel path in use has no bf16 loop (no AVX512-BF16 on the CPU,
    or MIXQ_ISA forcing a lower path)."""
    try:
        return ops.measure_peak("bf16", seconds)
    except ValueError:
        return 0.0
