"""Bad input gives a clear Python exception, never a crash or a silent wrong answer."""

import os
import subprocess
import sys

import numpy as np
import pytest

import mixq


@pytest.fixture
def packed(rng):
    return mixq.pack_weights(rng.standard_normal((8, 16)).astype(np.float32))


def test_wrong_dtypes(packed, rng):
    with pytest.raises(TypeError, match="float32, uint8 or int8"):
        mixq.matmul(rng.standard_normal((2, 16)), packed)  # float64
    with pytest.raises(TypeError, match="numpy array"):
        mixq.matmul([[1.0] * 16], packed)
    with pytest.raises(TypeError, match="PackedWeight"):
        mixq.matmul(np.zeros((2, 16), np.float32), np.zeros((8, 16), np.float32))
    with pytest.raises(TypeError, match="int8 codes or float"):
        mixq.pack_weights(np.zeros((4, 4), np.int32), bits=8, scale=1.0)
    with pytest.raises(TypeError, match="must be float"):
        mixq.pack_weights(np.zeros((4, 4), np.int8), bits=32)
    fp = mixq.pack_weights(np.ones((8, 16), np.float32), bits=32)
    with pytest.raises(TypeError, match="needs integer weights"):
        mixq.matmul(np.zeros((2, 16), np.uint8), fp, x_scale=1.0, x_zero_point=0)


def test_shape_mismatch(packed):
    with pytest.raises(ValueError, match=r"\[\.\.\., 16\]"):
        mixq.matmul(np.zeros((2, 15), np.float32), packed)
    with pytest.raises(ValueError, match="bias"):
        mixq.matmul(np.zeros((2, 16), np.float32), packed, np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="2-D"):
        mixq.pack_weights(np.zeros(16, np.float32))
    with pytest.raises(ValueError, match="empty"):
        mixq.pack_weights(np.zeros((0, 16), np.float32))
    with pytest.raises(ValueError, match="scale"):
        mixq.pack_weights(np.zeros((4, 4), np.int8), bits=8, scale=np.ones(3, np.float32))


def test_non_contiguous_input_is_handled(packed, rng):
    x = rng.standard_normal((16, 6)).astype(np.float32).T  # [6, 16], Fortran order
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(mixq.matmul(x, packed), mixq.matmul(np.ascontiguousarray(x), packed))
    w = rng.standard_normal((16, 8)).astype(np.float32).T
    np.testing.assert_array_equal(mixq.pack_weights(w).to_bytes(), mixq.pack_weights(np.ascontiguousarray(w)).to_bytes())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_rejected(packed, bad):
    x = np.zeros((3, 16), np.float32)
    x[1, 5] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        mixq.matmul(x, packed)  # int8 weights: checked in the core while quantizing
    with pytest.raises(ValueError, match="NaN or Inf"):
        mixq.matmul(x, mixq.pack_weights(np.ones((8, 16), np.float32), bits=32))
    w = np.ones((8, 16), np.float32)
    w[2, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        mixq.pack_weights(w)
    with pytest.raises(ValueError, match="NaN or Inf"):
        mixq.matmul(np.zeros((3, 16), np.float32), packed, np.full(8, bad, np.float32))


def test_bad_quantization_parameters(rng):
    p = mixq.pack_weights(rng.integers(-3, 3, (8, 16), dtype=np.int8), bits=8, scale=0.1)
    x = np.zeros((2, 16), np.uint8)
    with pytest.raises(ValueError, match="x_scale and x_zero_point"):
        mixq.matmul(x, p)
    with pytest.raises(ValueError, match="x_scale"):
        mixq.matmul(x, p, x_scale=-1.0, x_zero_point=0)
    with pytest.raises(ValueError, match="range"):
        mixq.matmul(x, p, x_scale=1.0, x_zero_point=300)
    with pytest.raises(ValueError, match="out_scale"):
        mixq.matmul(x, p, x_scale=1.0, x_zero_point=0, out_dtype=np.uint8)
    with pytest.raises(ValueError, match="raw accumulator"):
        mixq.matmul(x, p, x_scale=1.0, x_zero_point=0, out_dtype=np.int32, clamp="relu")
    with pytest.raises(ValueError, match="out_dtype"):
        mixq.matmul(x, p, x_scale=1.0, x_zero_point=0, out_dtype=np.float64)
    with pytest.raises(ValueError, match="clamp must be"):
        mixq.matmul(np.zeros((2, 16), np.float32), p, clamp="gelu")
    with pytest.raises(ValueError, match="bits"):
        mixq.pack_weights(np.zeros((4, 4), np.float32), bits=3)
    with pytest.raises(ValueError, match="int8 range"):
        mixq.pack_weights(np.zeros((4, 4), np.int8), bits=8, scale=1.0, zero_point=200)
    with pytest.raises(ValueError):
        mixq.set_num_threads(0)


def _run(code, **env):
    e = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)


def test_mixq_isa_env():
    for isa in mixq.available_isas():
        r = _run("import mixq; print(mixq.cpu_info()['isa'])", MIXQ_ISA=isa)
        assert r.returncode == 0 and r.stdout.strip() == isa, r.stderr
    r = _run("import mixq", MIXQ_ISA="avx9000")
    assert r.returncode != 0 and "unknown ISA" in r.stderr
    levels = ("ref", "avx2", "avx512", "avx512vnni", "neon", "dotprod", "i8mm", "sve", "rvv")
    missing = [i for i in levels if i not in mixq.available_isas()]
    assert missing, "no CPU runs both the x86 and the Arm / RISC-V levels"
    for isa in missing:  # only on CPUs that lack a level
        r = _run("import mixq", MIXQ_ISA=isa)
        assert r.returncode != 0 and "cannot run" in r.stderr
    with pytest.raises(ValueError, match="unknown ISA"):
        mixq.set_isa("sse9")
    for isa in missing:  # known names of levels this CPU or build lacks: a clear error, path unchanged
        before = mixq.cpu_info()["isa"]
        with pytest.raises(ValueError, match=f"ISA '{isa}'"):
            mixq.set_isa(isa)
        assert mixq.cpu_info()["isa"] == before


def test_cpu_info_and_kernel_list():
    info = mixq.cpu_info()
    assert info["isa"] in mixq.available_isas()
    assert info["threads"] == mixq.get_num_threads() >= 1
    assert info["l1d_bytes"] > 0 and info["l2_bytes"] > 0
    names = [k["name"] for k in mixq.kernel_list()]
    assert len(names) == len(set(names))
    for k in mixq.kernel_list():  # names say types, tile (GEMM kernels) and ISA
        assert k["name"].endswith("__" + k["isa"]) or k["needs_bf16"]
        if k["family"] == "gemm":
            assert f"{k['mr']}x{k['nr']}" in k["name"]
    kinds = {"s8", "s8q", "f32", "bf16", "u4", "u2", "f32u4", "f32u2", "bf16u4", "bf16u2"}
    # Beside the GEMM kernels: the s8w panel widening, depthwise kernels, helper and encoder op sets.
    kinds |= {"widen_s8", "dw_s8", "dw_f32", "isa_ops", "encoder_ops"}
    if any(k["isa"] == "avx512vnni" for k in mixq.kernel_list()):
        kinds.add("s8g")  # the groupwise W4A8 kernel is VNNI-only (listed where the compiler built it)
        kinds |= {"dw_s8_3x3", "peak_int8"}
    if any(k["isa"] in ("dotprod", "i8mm", "rvv") for k in mixq.kernel_list()):
        kinds.add("s8g")  # Arm / RISC-V builds: their groupwise W4A8 kernels
    if any(k["isa"] == "neon" for k in mixq.kernel_list()):
        kinds.add("peak_fp32")
    if any(k["isa"] == "dotprod" for k in mixq.kernel_list()):
        kinds.add("peak_int8")
    if any(k["isa"] == "avx2" for k in mixq.kernel_list()):
        kinds |= {"s8w", "s7", "s7q", "peak_int8_narrow"}  # int8 on int16-widened operands and on narrow codes
        kinds |= {"peak_fp32", "peak_int8"}
        kinds |= {"u2lut", "u2lut_tables"}  # the lookup-table 2-bit GEMV and its table builder
    if any(k["needs_bf16"] for k in mixq.kernel_list()):
        kinds.add("peak_bf16")
    assert kinds == {k["kind"] for k in mixq.kernel_list()}
