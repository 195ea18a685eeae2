"""Every kernel of the one list (kernels.inc), called by name on edge shapes against its kind's
reference by the core's kernel tester, whichever paths the dispatcher would pick."""
import math

import pytest

import mixq
from mixq import _core

KERNELS = mixq.kernel_list()


def test_list_holds_every_family():
    kinds = {k["kind"] for k in KERNELS}
    assert {"s8", "f32", "bf16", "dw_s8", "dw_f32", "encoder_ops", "isa_ops"} <= kinds
    families = {k["family"] for k in KERNELS}
    assert {"gemm", "depthwise", "ops"} <= families
    if any(k["isa"] != "ref" for k in KERNELS):  # x86 builds: the SIMD-only kinds
        assert {"dw_s8_3x3", "peak_int8", "peak_fp32"} <= kinds
    for kind in kinds:  # every kind has a reference entry, or is SIMD-only by design
        refs = [k for k in KERNELS if k["kind"] == kind and k["isa"] == "ref"]
        assert refs or kind in {"s8g", "s8w", "s7", "s7q", "u2lut", "u2lut_tables", "dw_s8_3x3", "peak_int8",
                                "peak_int8_narrow", "peak_fp32", "peak_bf16"}, kind


def test_active_kernels_are_listed():
    names = {k["name"] for k in KERNELS}
    for kernel in mixq.cpu_info()["kernels"].values():
        assert kernel == "none" or kernel in names


@pytest.mark.parametrize("kernel", KERNELS, ids=[k["name"] for k in KERNELS])
def test_kernel(kernel):
    report = _core.test_kernel(kernel["name"])
    assert report["name"] == kernel["name"] and report["kind"] == kernel["kind"]
    assert report["runnable"] == kernel["runnable"]
    if not kernel["runnable"]:
        pytest.skip(f"this CPU cannot run {kernel['isa']}" + (" + AVX512-BF16" if kernel["needs_bf16"] else ""))
    assert report["cases"] > 0
    assert report["mismatches"] == 0, report["first_mismatch"]
    assert report["max_error"] <= report["tolerance"]
    if kernel["family"] == "peak":
        assert math.isfinite(report["gops"]) and report["gops"] > 0


def test_unknown_kernel():
    with pytest.raises(ValueError, match="no kernel named"):
        _core.test_kernel("u8s8s32_gemm_99x32c4__avx9000")
