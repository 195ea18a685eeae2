"""The machine model (cache) and the layer cost model on hand-checkable layers."""
import json

import numpy as np
import pytest

import mixq
from mixq.planner.roofline import Machine, machine, model_ai, plan_costs, profile_plan, weight_bytes
from mixq.planner.roofline.machine import cache_path, cpu_name

torch = pytest.importorskip("torch")
nn = torch.nn

FAKE = Machine(cpu="test cpu", isa="avx512vnni", threads=2, peak_int8_gops=1000.0, peak_bf16_gflops=500.0,
               peak_fp32_gflops=250.0, gemm_int8_gops=900.0, gemm_fp32_gflops=220.0, dram_read_gbs=40.0,
               l3_read_gbs=120.0, l2_read_gbs=300.0)


def test_weight_bytes_formula():
    assert weight_bytes(10, 64, "fp32") == 10 * 64 * 4 + 40
    assert weight_bytes(10, 64, "bf16", bias=False) == 10 * 64 * 2
    assert weight_bytes(10, 64, "w8a8") == 10 * 64 + 40 + 40          # codes, f32 scales, bias
    assert weight_bytes(10, 64, "w4a8-g32") == 10 * 32 + 3 * 10 * 2 + 40  # bf16 scale + u8 zp per group
    assert weight_bytes(10, 64, "w2a8-g32", bias=False) == 10 * 16 + 3 * 10 * 2
    assert weight_bytes(10, 64, "w4a32-gchannel", bias=False) == 10 * 32 + 3 * 10


class LinearNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


@pytest.mark.parametrize("precision", ["fp32", "w8a8", "w4a8-g32"])
def test_linear_cost_equals_formula(precision):
    x = torch.randn(3, 64, 1, 1)
    plan = mixq.compile(LinearNet().eval(), x, precision, calibration=[x], progress=False)
    (cost,) = [c for c in plan_costs(plan.spec, 3, FAKE) if c.kind == "linear"]
    assert cost.flops == 2 * 3 * 10 * 64
    assert cost.weight_bytes == weight_bytes(10, 64, precision)
    in_bytes = 3 * 64 * (1 if precision != "fp32" else 4)
    assert cost.act_bytes == in_bytes + 3 * 10 * 4  # the logits are float32
    assert cost.ai == pytest.approx(cost.flops / (cost.weight_bytes + cost.act_bytes))
    t_mem = (cost.weight_bytes + cost.act_bytes) / 40e9
    t_cmp = cost.flops / (1000e9 if precision != "fp32" else 250e9)
    assert cost.predicted_s == pytest.approx(max(t_mem, t_cmp))
    assert cost.bound == ("compute" if t_cmp >= t_mem else "memory")


def test_conv_cost_equals_formula():
    x = torch.randn(2, 8, 10, 10)
    plan = mixq.compile(ConvNet().eval(), x, "w8a8", calibration=[x], progress=False)
    (cost,) = [c for c in plan_costs(plan.spec, 2, FAKE) if c.kind == "conv"]
    assert cost.flops == 2 * (2 * 10 * 10) * 16 * (3 * 3 * 8)
    assert cost.weight_bytes == 16 * 72 + 4 * 16 + 4 * 16
    assert cost.act_bytes == 2 * 10 * 10 * 8 + 2 * 10 * 10 * 16 * 4  # u8 in, f32 out (the model output)
    totals = model_ai(plan_costs(plan.spec, 2, FAKE))
    assert totals["flops"] == cost.flops
    assert totals["ai_weights"] == pytest.approx(cost.flops / totals["weight_bytes"])


def test_profile_measures_every_op():
    x = torch.randn(2, 8, 10, 10)
    plan = mixq.compile(ConvNet().eval(), x, "w8a8", calibration=[x], progress=False)
    prof = profile_plan(plan, x.numpy(), FAKE, repeats=2)
    assert all(c.measured_s is not None and c.measured_s > 0 for c in prof.ops)
    assert "total" in prof.table() and "conv" in prof.table()
    assert json.loads(json.dumps(prof.to_dict()))["totals"]["flops"] == 2 * 200 * 16 * 72


def test_machine_model_is_measured_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    m = machine(seconds=0.02)
    assert m.peak_int8_gops > 0 and m.dram_read_gbs > 0 and m.l2_read_gbs > 0 and m.gemm_int8_gops > 0
    path = cache_path(cpu_name(), m.isa, m.threads)
    assert path.is_file()
    doc = json.loads(path.read_text())
    doc["machine"]["dram_read_gbs"] = 12.5  # a cached value is returned as is
    path.write_text(json.dumps(doc))
    assert machine().dram_read_gbs == 12.5
    path.write_text("{ not json")  # a damaged cache is measured again
    assert machine(seconds=0.02).dram_read_gbs > 0
    assert Machine.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="lacks"):
        Machine.from_dict({"cpu": "x"})
    assert FAKE.compute_roof("w8a8") == 1000e9 and FAKE.compute_roof("w4a32-g128") == 250e9
    assert np.isclose(FAKE.ridge_int8, 25.0)
