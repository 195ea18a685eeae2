"""The "machine" dict of the JSON contract, and the CPU id that names a results folder.

Peaks and ISA come from mixq's own probes (mixq.cpu_info, mixq.measure_peak,
mixq.measure_bandwidth); without mixq, the DRAM figure is a numpy estimate."""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import mixq_api
from .peers import peers

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def cpu_model_name() -> str:
    return mixq_api.cpu_name()


def cpuinfo_fields(path: str = "/proc/cpuinfo") -> dict:
    """The first processor's "vendor_id", "cpu family" and "model" from /proc/cpuinfo ({} off Linux)."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # end of the first processor
                key, _, value = line.partition(":")
                if key.strip() in ("vendor_id", "cpu family", "model"):
                    out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


# AMD family 0x19 covers Zen 3 and Zen 4 and 0x1a Zen 5: the model range tells them apart.
_AMD_UARCH = [(0x17, range(0x00, 0x30), "zen"), (0x17, range(0x30, 0x100), "zen2"),
              (0x19, range(0x00, 0x10), "zen3"), (0x19, range(0x20, 0x60), "zen3"),
              (0x19, range(0x10, 0x20), "zen4"), (0x19, range(0x60, 0x80), "zen4"),
              (0x19, range(0xa0, 0xb0), "zen4"), (0x1a, range(0x00, 0x100), "zen5")]


def uarch(fields: dict) -> str | None:
    """"zen3", "zen4", ... for AMD CPUs whose family/model we know, else None."""
    try:
        family, model = int(fields["cpu family"]), int(fields["model"])
    except (KeyError, ValueError):
        return None
    if fields.get("vendor_id") == "AuthenticAMD":
        for fam, models, name in _AMD_UARCH:
            if family == fam and model in models:
                return name
    return None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "unknown"


def cpu_id(machine: dict) -> str:
    """The results folder of a machine: "<uarch or cpu name>-<isa>", e.g. zen4-avx512vnni,
    zen3-avx2, intel-xeon-gold-6338-avx512vnni. The ISA is part of it because the same CPU name
    (a VM reports "AMD EPYC" on Zen 3 and Zen 4) runs different kernels on different ISAs."""
    base = machine.get("uarch") or slug(machine.get("cpu") or "unknown")
    return f"{base}-{slug(machine.get('isa') or 'noisa').replace('-', '')}"


def default_json_path(bench: str, machine: dict) -> Path:
    """bench/results/<cpu-id>/<bench>.json: each CPU writes only its own folder."""
    return RESULTS_DIR / cpu_id(machine) / f"{bench}.json"


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


def dram_probe(threads: int):
    """(source name, a function measuring DRAM read GB/s now): mixq's streaming-read probe when
    mixq has it, else the numpy estimate."""
    mixq = peers()["mixq"]
    if mixq is not None and hasattr(mixq, "measure_bandwidth"):
        return "mixq.measure_bandwidth()", lambda: float(mixq.measure_bandwidth())
    return "numpy estimate, harness.machine.numpy_dram_read_gbs", lambda: numpy_dram_read_gbs(threads)


def machine_info(threads: int) -> dict:
    """The "machine" dict of the JSON contract (plus "uarch" where known, for cpu_id); isa and
    peaks come from mixq (None without it)."""
    mixq = peers()["mixq"]
    info = {"cpu": cpu_model_name(), "isa": None, "threads": threads,
            "peak_int8_gops": None, "peak_fp32_gflops": None, "dram_read_gbs": None}
    arch = uarch(cpuinfo_fields())
    if arch:
        info["uarch"] = arch
    if mixq is not None:
        ci = mixq.cpu_info()
        info["isa"] = ci.get("isa")
        info["peak_int8_gops"] = float(mixq.measure_peak("int8"))
        info["peak_fp32_gflops"] = float(mixq.measure_peak("fp32"))
    info["dram_read_gbs"] = dram_probe(threads)[1]()
    return info
