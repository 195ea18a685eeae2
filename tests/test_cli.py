"""Smoke tests of the `mixq` command (python -m mixq)."""

import json
import os
import subprocess
import sys
import tempfile

_CACHE = tempfile.mkdtemp(prefix="mixq-cli-cache-")  # the machine model cache of these runs


def _mixq(*args, cwd=None):
    env = {**os.environ, "XDG_CACHE_HOME": _CACHE}
    return subprocess.run([sys.executable, "-m", "mixq", *args], capture_output=True, text=True, timeout=600,
                          env=env, cwd=cwd)


def test_help_lists_subcommands():
    r = _mixq("--help")
    assert r.returncode == 0
    for cmd in ("demo", "machine", "profile", "search", "compile", "run", "bench", "report"):
        assert cmd in r.stdout
        assert _mixq(cmd, "--help").returncode == 0


def test_bench_runs_every_path():
    r = _mixq("bench", "--m", "8", "--n", "64", "--k", "96", "--repeats", "1")
    assert r.returncode == 0, r.stderr
    for label in ("mixq fp32", "mixq bf16", "mixq w8a8", "mixq w4a8 g128", "mixq w4a32 g128", "numpy fp32"):
        assert label in r.stdout


def test_machine_json():
    r = _mixq("--threads", "1", "machine", "--json", "--seconds", "0.02")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["threads"] == 1 and info["isa"] in info["available_isas"]
    assert info["dram_read_gbs"] > 0 and set(info["peak_gops"]) == {"int8", "fp32", "bf16"}


def test_bad_arguments_fail_cleanly():
    r = _mixq("bench", "--m", "zero")
    assert r.returncode == 2 and "invalid int value" in r.stderr
    r = _mixq("--threads", "0", "machine")
    assert r.returncode == 2 and "must be >= 1" in r.stderr and "Traceback" not in r.stderr
