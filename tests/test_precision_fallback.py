"""A layer that cannot run the precision its config asks for says so: plan.layers() and the log."""
import numpy as np
import pytest

import mixq

torch = pytest.importorskip("torch")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.shallow = torch.nn.Conv2d(1, 16, 3)     # depth 9: less than a group of 128
        self.deep = torch.nn.Conv2d(16, 16, 4)       # depth 256: two groups of 128
        self.fc = torch.nn.Linear(16 * 23 * 23, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.deep(torch.relu(self.shallow(x))), 1))


def test_group_fallback_is_reported(tmp_path, capsys):
    x = torch.randn(2, 1, 28, 28)
    plan = mixq.compile(Net().eval(), x, "w4a8-g128", calibration=[x])
    log = capsys.readouterr().err
    assert "1 layer(s) run another precision than asked" in log
    plan.save(tmp_path / "p.mixq")
    layers = {d["name"]: d for d in mixq.load_plan(tmp_path / "p.mixq").layers()}
    assert layers["shallow"]["requested"] == "w4a8-g128" and layers["shallow"]["precision"] == "w4a8-gchannel"
    assert "requested" not in layers["deep"] and layers["deep"]["precision"] == "w4a8-g128"
    assert np.isfinite(plan.run(x.numpy())).all()
