"""Tests for bench/harness (the shared benchmark helpers) and the JSON contract."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
from harness import cli, machine, report, timing  # noqa: E402


@pytest.mark.parametrize("script", ["e2e.py", "bert.py"])
def test_model_bench_help_lists_options(script):
    r = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for opt in ("--quick", "--json", "--threads", "--models"):
        assert opt in r.stdout


def test_search_throughput_help():
    r = subprocess.run([sys.executable, str(BENCH / "search_throughput.py"), "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "evaluations per minute" in r.stdout and "--json" in r.stdout


def test_parse_args_defaults_and_quick():
    a = cli.parse_args("x", [])
    assert (a.quick, a.json, a.threads, a.repeats) == (False, None, 2, 10)
    q = cli.parse_args("x", ["--quick", "--json", "o.json", "--threads", "1"])
    assert (q.quick, q.json, q.threads, q.repeats) == (True, "o.json", 1, 3)
    assert cli.parse_args("x", ["--quick", "--repeats", "7"]).repeats == 7


def test_time_fn_counts_runs():
    calls = []
    med, mn = timing.time_fn(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7 and 0 <= mn <= med
    calls.clear()
    timing.time_fn(lambda: calls.append(1), repeats=1, warmup=0, min_time=0.01, max_runs=50)
    assert 1 <= len(calls) <= 50


def test_results_table_and_json(tmp_path, capsys):
    r = report.Results()
    case = "gemm M=2 N=2 K=2"
    r.add(case, "torch-mm", 1.0, 0.9, ops=4e9)
    r.add(case, "ort-matmul-fp32", 0.5, 0.4, ops=4e9)
    r.add(case, "mixq-fp32", 0.25, 0.2, ops=4e9)
    r.add("other", "torch-mm", 1.0, 1.0, ops=1e9)
    assert r.gops(case, "mixq-fp32") == 16.0
    assert report.best_peer_gops(r, case, ["torch-mm", "ort-matmul-fp32", "mixq-fp32"]) == 8.0

    report.print_table(r, ["torch-mm", "ort-matmul-fp32", "mixq-fp32"], "t", {"mixq-fp32": 32.0})
    out = capsys.readouterr().out
    assert "2.00x" in out and "50%" in out
    other = next(line for line in out.splitlines() if line.startswith("other"))
    assert other.split()[1:] == ["1.0", "-", "-", "-", "-"]

    path = tmp_path / "r.json"
    mach = {"cpu": "c", "isa": "avx512vnni", "threads": 2, "peak_int8_gops": 1.0,
            "peak_fp32_gflops": 1.0, "dram_read_gbs": 1.0}
    report.write_json(str(path), mach, r)
    data = json.loads(path.read_text())
    assert set(data) == {"machine", "results"} and data["machine"] == mach
    assert all(set(row) == {"case", "impl", "median_s", "min_s", "ops", "bytes"}
               for row in data["results"])
    assert data["results"][0]["bytes"] is None


def test_cpu_model_name_and_dram_estimate():
    assert isinstance(machine.cpu_model_name(), str)
    assert machine.numpy_dram_read_gbs(threads=2, mbytes=16, rounds=1) > 0


def test_other_load_is_a_core_count():
    assert 0.0 <= timing.other_load(0.05) <= (__import__("os").cpu_count() or 1) + 0.01


def test_time_interleaved_runs_every_impl_in_rotated_rounds(monkeypatch):
    from types import SimpleNamespace

    # A clock that each call advances by its nominal duration: the block arithmetic below must not
    # depend on how long a loaded machine oversleeps.
    now = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    calls = []

    def run(name, d):
        calls.append(name)
        now[0] += d

    fns = {name: (lambda name=name, d=d: run(name, d)) for name, d in (("fast", 0.001), ("slow", 0.006), ("mid", 0.003))}
    out = timing.time_interleaved(fns, SimpleNamespace(repeats=4, warmup=1, min_time=0.0), block_s=0.005)
    assert calls[:3] == ["fast", "slow", "mid"]                      # warm-up
    # blocks: fast ~ 2 + 5 calls, mid ~ 2 + 1, slow (longer than block_s) 1; rotated each round
    runs = [name for i, name in enumerate(calls[3:]) if i == 0 or calls[3 + i - 1] != name]
    assert runs[:3] == ["fast", "slow", "mid"] and runs[3:6] == ["slow", "mid", "fast"]
    assert calls.count("slow") == 1 + 4 and calls.count("fast") > calls.count("mid") > calls.count("slow")
    assert out["fast"][0] < out["mid"][0] < out["slow"][0]
    assert all(mn <= med for med, mn, _ in out.values())


def test_per_round_times_give_the_ratio_range(monkeypatch):
    from types import SimpleNamespace

    now = [0.0]  # a clock each call advances by its nominal duration, as above
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    fns = {"fast": lambda: now.__setitem__(0, now[0] + 0.002), "slow": lambda: now.__setitem__(0, now[0] + 0.008)}
    per_round = {}
    out = timing.time_interleaved(fns, SimpleNamespace(repeats=3, warmup=1, min_time=0.0), block_s=0.001,
                                  per_round=per_round)
    assert set(per_round) == {"fast", "slow"} and all(len(v) == 3 for v in per_round.values())
    results = report.Results()
    for name, (med, mn, _) in out.items():
        results.add("case", name, med, mn, rounds=per_round[name])
    lo, hi = report.round_ratio_range(results, "case", "fast", "slow")
    assert 3.9 < lo <= hi < 4.1  # 4x each round
    assert report.round_range_text(results, "case", "fast", "slow").startswith("; rounds ")
    # rows without per-round times (older JSON, other benches) give no range
    results.add("plain", "fast", 1.0, 1.0)
    results.add("plain", "slow", 2.0, 2.0)
    assert report.round_ratio_range(results, "plain", "fast", "slow") is None
    assert report.round_range_text(results, "plain", "fast", "slow") == ""
    assert "round_s" not in results.get("plain", "fast")


def test_json_without_path_goes_to_the_cpu_folder():
    assert cli.parse_args("x", ["--json"]).json == cli.DEFAULT_JSON
    zen4 = {"cpu": "AMD EPYC", "isa": "avx512vnni", "uarch": "zen4"}
    path = report.json_path(cli.DEFAULT_JSON, "gemm", zen4)
    assert Path(path) == BENCH / "results" / "zen4-avx512vnni" / "gemm.json"
    assert report.json_path("x.json", "gemm", zen4) == "x.json" and report.json_path(None, "gemm", zen4) is None


def test_cpu_id_rule():
    amd = {"vendor_id": "AuthenticAMD", "cpu family": "25"}
    assert machine.uarch({**amd, "model": "17"}) == "zen4"      # EPYC 9004 (Genoa)
    assert machine.uarch({**amd, "model": "1"}) == "zen3"       # EPYC 7003 (Milan)
    assert machine.uarch({"vendor_id": "GenuineIntel", "cpu family": "6", "model": "143"}) is None
    assert machine.cpu_id({"cpu": "AMD EPYC", "isa": "avx2", "uarch": "zen3"}) == "zen3-avx2"
    # without a known microarchitecture the CPU's name stands in; the ISA still splits the folders
    assert machine.cpu_id({"cpu": "Intel(R) Xeon(R) Gold 6338", "isa": "avx512vnni"}) == \
        "intel-r-xeon-r-gold-6338-avx512vnni"
    assert machine.cpu_id({"cpu": "AMD EPYC", "isa": "avx2"}) != machine.cpu_id({"cpu": "AMD EPYC", "isa": "avx512vnni"})
