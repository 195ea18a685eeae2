"""Plan files: save -> load round trip, refusal of corrupt files, and running without torch."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mixq  # noqa: E402
from mixq.models import zoo  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = zoo.mobilenet_v2("small").eval()
    x = torch.randn(4, 1, 28, 28)
    config = {"default": "w8a8", "layers": {"features.1.*": "w4a8-g32", "classifier": "fp32"}}
    plan = mixq.compile(model, x, config, calibration=[x], progress=False)
    path = tmp_path_factory.mktemp("plans") / "mbv2.mixq"
    plan.save(path)
    return plan, path, x.numpy()


def test_round_trip_is_bit_identical(saved):
    plan, path, x = saved
    loaded = mixq.load_plan(path)
    np.testing.assert_array_equal(loaded.run(x), plan.run(x))
    assert loaded.weight_bytes == plan.weight_bytes
    assert loaded.layers() == plan.layers()
    assert loaded.meta["config"] == plan.meta["config"]


def test_corrupt_truncated_and_foreign_files_are_refused(saved, tmp_path):
    _, path, _ = saved
    blob = path.read_bytes()
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x40
    cases = {
        "flipped.mixq": (bytes(flipped), "checksum"),
        "truncated.mixq": (blob[: len(blob) - 100], "truncated"),
        "empty.mixq": (b"", "not a mixq plan"),
        "foreign.mixq": (b"PK\x03\x04" + blob[4:], "not a mixq plan"),
        "future.mixq": (blob[:8] + (99).to_bytes(4, "little") + blob[12:], "version 99 is newer"),
        "version0.mixq": (blob[:8] + (0).to_bytes(4, "little") + blob[12:], "version 0 is not one"),
    }
    for name, (data, message) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(mixq.PlanFileError, match=message):
            mixq.load_plan(p)
    with pytest.raises(FileNotFoundError):
        mixq.load_plan(tmp_path / "missing.mixq")


def test_saved_plan_runs_without_torch(saved, tmp_path):
    plan, path, x = saved
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", plan.run(x))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now raises ImportError
        import numpy as np
        import mixq
        plan = mixq.load_plan({str(path)!r})
        y = plan.run(np.load({str(tmp_path / 'x.npy')!r}))
        np.testing.assert_array_equal(y, np.load({str(tmp_path / 'expected.npy')!r}))
        assert "torch" not in sys.modules or sys.modules["torch"] is None
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
