"""mixq.planner.report: the planner's markdown report and its PNG plots, on synthetic data."""
import math
import struct
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from mixq.planner.report import (  # noqa: E402
    INSTALL_HINT, MissingMatplotlibError, default_why, layers_from_costs, write_report)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MACHINE = dict(cpu="Synthetic Zen 4", isa="avx512vnni", threads=2, peak_int8_gops=900.0, peak_bf16_gflops=450.0,
               peak_fp32_gflops=226.0, gemm_int8_gops=800.0, gemm_fp32_gflops=190.0, dram_read_gbs=35.0,
               l3_read_gbs=200.0, l2_read_gbs=600.0, measured_at="2025-01-01T00:00:00")


def _side(precision, flops, wbytes, abytes, measured, predicted):
    return dict(precision=precision, weight_bytes=wbytes, act_bytes=abytes, ai=flops / (wbytes + abytes),
                measured_s=measured, predicted_s=predicted)


def _layers():
    L = []

    def add(name, kind, flops, before, after, bound, why=None):
        d = dict(name=name, kind=kind, flops=flops, before=_side(*before[:1], flops, *before[1:]),
                 after=_side(*after[:1], flops, *after[1:]), bound_after=bound)
        if why is not None:
            d["why"] = why
        L.append(d)

    add("stem", "conv", 2e6, ("fp32", 4e3, 6e4, 8e-6, 6e-6), ("fp32", 4e3, 6e4, 8e-6, 6e-6), "memory",
        "first layer kept at fp32: accuracy")
    add("layer1.conv", "conv", 1.2e8, ("fp32", 1.5e5, 4e5, 9e-4, 6e-4), ("w8a8", 4e4, 1e5, 2.5e-4, 1.5e-4),
        "compute", "compute-bound: int8 roof")
    add("layer2.conv", "conv", 6e7, ("w8a8", 3e5, 5e4, 1.2e-4, 1e-4), ("w4a8-g128", 1.6e5, 5e4, 1.2e-4, 9e-5),
        "compute", "compute-bound: lower bits add no speed")
    add("layer3.dw", "depthwise", 1e5, ("fp32", 2e3, 4e4, 3e-6, 1e-6), ("w8a8", 600, 1e4, 2e-6, 3e-7), "memory",
        "too small: overhead dominates")
    add("layer4.conv", "conv", 3e7, ("w8a8", 2e6, 2e4, 1e-4, 6e-5), ("fp32", 8e6, 8e4, 3e-4, 2.3e-4), "memory")
    add("fc", "linear", 8e6, ("fp32", 1.6e7, 2e3, 5e-4, 4.6e-4), ("w4a32-g128", 2.1e6, 2e3, None, 6e-5),
        "memory", "memory-bound: 8x fewer bytes")
    return L


def _fronts(latency=True):
    def pt(acc, ai, lat, label, on):
        return dict(accuracy=acc, ai=ai, latency_s=lat if latency else None, label=label, on_front=on)

    return {
        "aiq": [pt(0.91, 20.0, 2e-3, "aiq-0", True), pt(0.90, 35.0, 1.6e-3, "aiq-1", True),
                pt(0.88, 60.0, 1.3e-3, "aiq-2", True), pt(0.87, 30.0, 1.9e-3, "aiq-x", False)],
        "random": [pt(0.85, 25.0, 2.2e-3, "r0", False), pt(0.89, 40.0, 1.8e-3, "r1", True),
                   pt(float("nan"), 50.0, None, "broken", False)],
    }


SUMMARY = [
    dict(config="FP32", accuracy=0.912, ai=8.0, latency_ms=2.4, weight_mb=16.0),
    dict(config="uniform INT8", accuracy=0.910, ai=25.0, latency_ms=1.4, weight_mb=4.1, speedup=1.71),
    dict(config="uniform INT4", accuracy=0.87, ai=45.0, latency_ms=1.3, weight_mb=2.2),
    dict(config="AIQ", accuracy=0.90, ai=35.0, latency_ms=None, weight_mb=2.9),
    dict(config="latency-aware", accuracy=0.905, ai=30.0, latency_ms=1.2, weight_mb=3.3),
]


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_full_report(tmp_path):
    out = tmp_path / "rep"
    path = write_report(out, title="Synthetic net: AIQ vs latency", machine=MACHINE, layers=_layers(),
                        fronts=_fronts(), summary=SUMMARY, notes=["accuracy on a synthetic set", "two\nlines"])
    assert path == out / "report.md"
    text = path.read_text()
    for name in ("roofline.png", "pareto_ai.png", "pareto_latency.png", "precision.png"):
        f = out / name
        assert f.stat().st_size > 1000, name
        w, h = _png_size(f)
        assert w > 100 and h > 100, (name, w, h)
        assert f"]({name})" in text
    import matplotlib.image as mpimg

    assert mpimg.imread(out / "roofline.png").shape[0] > 100  # the file decodes, not just a header

    assert text.startswith("# Synthetic net: AIQ vs latency\n")
    assert "## Machine" in text and "| int8 peak (tight loop) | 900.0 GOPS |" in text
    assert "ridge point int8 (peak / DRAM) | 25.7 ops/byte" in text
    # summary table: given speedup kept, the others derived from the first row's latency
    assert "| config | accuracy | model AI (ops/byte) | latency (ms) | weights (MB) | speedup |" in text
    assert "| uniform INT8 | 0.9100 | 25.00 | 1.400 | 4.100 | 1.71× |" in text
    assert "| latency-aware | 0.9050 | 30.00 | 1.200 | 3.300 | 2.00× |" in text
    assert "| AIQ | 0.9000 | 35.00 | - | 2.900 | - |" in text
    # per-layer table
    assert "| # | layer | kind | precision | MFLOP | weight KB | AI (ops/byte) | time (µs) | bound | why |" in text
    assert "**fp32 → w8a8**" in text and "| stem | conv | fp32 |" in text
    assert "900.0 → 250.0" in text          # measured times in µs
    assert "500.0 → ≈60.0" in text          # fc after: not measured -> predicted, marked ≈
    assert "| 1631.0 → ≈740.0 |" in text    # total time: partly predicted
    for why in ("first layer kept at fp32: accuracy", "compute-bound: lower bits add no speed",
                "too small: overhead dominates", "memory-bound: 8x fewer bytes"):
        assert why in text
    # layer4.conv has no why: derived from the numbers (slower, w8a8 -> fp32 next to int8 layers)
    assert "quantize overhead at a precision boundary (*)" in text
    assert "**total**" in text
    assert "## Notes" in text and "- accuracy on a synthetic set" in text and "- two\n  lines" in text


def test_missing_latencies_skip_latency_plot(tmp_path):
    stale = tmp_path / "pareto_latency.png"
    stale.write_bytes(b"old")
    path = write_report(tmp_path, title="no latency", machine=MACHINE, layers=_layers(), fronts=_fronts(False),
                        summary=SUMMARY)
    text = path.read_text()
    assert not stale.exists()
    assert (tmp_path / "pareto_ai.png").exists()
    assert "](pareto_latency.png)" not in text
    assert "pareto_latency.png not drawn: none of the 7 front points has a latency" in text


@pytest.mark.parametrize("machine", [{}, None, MACHINE])
def test_empty_inputs(tmp_path, machine):
    path = write_report(tmp_path, title="", machine=machine, layers=[], fronts={}, summary=[])
    text = path.read_text()
    assert text.startswith("# mixq report")
    assert "_No layers were given._" in text and "_No summary rows were given._" in text
    assert "pareto_ai.png not drawn: there are no front points." in text
    assert "precision.png not drawn: there are no layers." in text
    assert not (tmp_path / "precision.png").exists() and not (tmp_path / "pareto_ai.png").exists()
    # the roofs alone are still worth a plot when the machine is known
    assert (tmp_path / "roofline.png").exists() == (machine == MACHINE)


def test_none_and_nan_everywhere(tmp_path):
    nan = float("nan")
    layers = [dict(name="a", kind="conv", flops=nan, before=dict(precision="fp32", ai=None, measured_s=nan),
                   after=dict(precision="weird", ai=-1.0, predicted_s=None)),
              dict(name="b|pipe", kind="linear", flops=1e6, before={}, after=dict(precision="w4a8", ai=10.0,
                                                                                 predicted_s=2e-5)),
              dict(name="c")]
    fronts = {"aiq": [dict(accuracy=None, ai=nan, latency_s=nan, label=None, on_front=True)], "empty": []}
    summary = [dict(config="FP32", accuracy=nan), dict()]
    machine = dict(MACHINE, dram_read_gbs=nan, l2_read_gbs=None, extra_field="x")
    text = write_report(tmp_path, title="t", machine=machine, layers=layers, fronts=fronts, summary=summary).read_text()
    assert "b\\|pipe" in text                      # a pipe in a name does not break the table
    assert "no cost data (*)" in text
    assert "| extra_field | x |" in text
    assert "pareto_ai.png not drawn" in text
    assert (tmp_path / "precision.png").exists() and (tmp_path / "roofline.png").exists()


def test_bad_input_types(tmp_path):
    with pytest.raises(TypeError, match="layers"):
        write_report(tmp_path, title="t", machine=MACHINE, layers="abc", fronts={}, summary=[])
    with pytest.raises(TypeError, match="fronts"):
        write_report(tmp_path, title="t", machine=MACHINE, layers=[], fronts=[1], summary=[])


def test_missing_matplotlib_message(tmp_path, monkeypatch):
    # A None entry in sys.modules makes `import matplotlib...` raise ImportError, as if not installed.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingMatplotlibError) as e:
        write_report(tmp_path / "r", title="t", machine=MACHINE, layers=_layers(), fronts=_fronts(), summary=SUMMARY)
    assert 'pip install "mixq[report]"' in str(e.value) and INSTALL_HINT in str(e.value)
    assert isinstance(e.value, ImportError)
    assert not (tmp_path / "r").exists()          # nothing written


def test_import_mixq_does_not_import_matplotlib():
    code = "import sys, mixq, mixq.planner.report; assert not any(m.startswith('matplotlib') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def _layer(pb, pa, tb, ta, bound=None, wb=4e5, wa=1e5, ai=5.0):
    return dict(name="x", kind="conv", flops=1e8, bound_after=bound,
                before=dict(precision=pb, weight_bytes=wb, ai=ai, measured_s=tb),
                after=dict(precision=pa, weight_bytes=wa, ai=ai, measured_s=ta))


@pytest.mark.parametrize("layer, expected", [
    (_layer("fp32", "w8a8", 1e-4, None), "no cost data"),
    (_layer("fp32", "w8a8", 1e-4, 3e-6), "too small: overhead dominates"),
    (_layer("fp32", "w4a32", 1e-4, 2e-4), "slower at w4a32 than fp32 (×2.00)"),
    (_layer("w8a8", "w4a8", 1e-4, 1e-4, "compute"), "compute-bound: lower bits add no speed"),
    (_layer("w8a8", "w4a8", 1e-4, 1e-4, "memory"), "memory-bound: no measurable speed change"),
    (_layer("fp32", "w4a32", 4e-4, 1e-4, "memory"), "memory-bound: ×4.0 fewer weight bytes, ×4.0 faster"),
    (_layer("fp32", "w8a8", 4e-4, 1e-4, "compute"), "compute-bound: int8 roof, ×4.0 faster"),
    (_layer("w8a8", "w8a8", 1e-4, 1e-4, "compute"), "compute-bound: lower bits add no speed"),
    (_layer("fp32", "fp32", 1e-4, 1e-4, "compute"), "kept at fp32 (compute-bound)"),
    # no bound given: from the roofline rule (AI 5 < int8 ridge 900/35 -> memory; AI 50 >= -> compute)
    (_layer("w8a8", "w8a8", 1e-4, 1e-4), "kept at w8a8 (memory-bound)"),
    (_layer("w8a8", "w8a8", 1e-4, 1e-4, ai=50.0), "compute-bound: lower bits add no speed"),
])
def test_default_why_rules(layer, expected):
    assert default_why([layer], 0, MACHINE) == expected


def test_default_why_precision_boundary():
    layers = [_layer("w8a8", "w8a8", 1e-4, 1e-4), _layer("w8a8", "fp32", 1e-4, 2e-4), _layer("w8a8", "w8a8", 1, 1)]
    assert default_why(layers, 1, MACHINE) == "quantize overhead at a precision boundary"
    assert default_why([layers[1]], 0, MACHINE).startswith("slower at fp32")
    assert math.isclose(MACHINE["peak_int8_gops"] / MACHINE["dram_read_gbs"], 25.714, rel_tol=1e-3)


def test_layers_from_costs(tmp_path):
    from mixq.planner.roofline import Machine
    from mixq.planner.roofline.cost import OpCost

    def op(name, kind, prec, wb, meas, bound="memory"):
        return OpCost(name, kind, prec, (8, 8, 64), (8, 8, 64), 4.7e6, wb, 8192, 2e-5, bound, meas)

    before = [op("c1", "conv", "fp32", 147712, 4e-5), op("add", "add", "", 0, 1e-6, "-"),
              op("fc", "linear", "fp32", 40000, None)]
    after = [op("c1", "conv", "w8a8", 37120, 1e-5, "compute"), op("add", "add", "", 0, 1e-6, "-"),
             op("fc", "linear", "w4a32-g128", 6000, None).to_dict()]
    rows = layers_from_costs(before, after, why={"c1": "int8 roof"})
    assert [r["name"] for r in rows] == ["c1", "fc"]
    assert rows[0]["why"] == "int8 roof" and "why" not in rows[1]
    assert rows[0]["bound_after"] == "compute" and rows[0]["before"]["precision"] == "fp32"
    assert rows[0]["after"]["ai"] == pytest.approx(4.7e6 / (37120 + 8192))
    machine = Machine.from_dict(MACHINE)              # the object itself is accepted too
    text = write_report(tmp_path, title="costs", machine=machine, layers=rows, fronts={}, summary=[]).read_text()
    assert "| c1 | conv | **fp32 → w8a8** |" in text and "| 40.0 → 10.0 | compute | int8 roof |" in text
    assert "| ≈20.0 | memory | memory-bound: no measurable speed change (*) |" in text
    with pytest.raises(ValueError, match="not in the before"):
        layers_from_costs(before[:1], after)
