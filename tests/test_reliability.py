"""Plans that cannot be broken (issue 24): crafted plan files are refused with PlanFileError, one plan
run from several threads equals serial runs, a failed huge batch leaves every plan working.
Anything that crashed before runs in a subprocess, so a regression fails a test, not pytest."""
import json
import struct
import subprocess
import sys
import textwrap
import threading
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mixq  # noqa: E402
from mixq.runtime.plan_file import read_plan  # noqa: E402

_HEADER = struct.Struct("<8sIQQI")


def _parts(path):
    blob = path.read_bytes()
    _, _, n_json, _, _ = _HEADER.unpack_from(blob)
    return json.loads(blob[_HEADER.size:_HEADER.size + n_json]), blob[_HEADER.size + n_json:]


def _write(path, doc, data, body=None, version=1):
    """A plan file with a valid checksum over whatever JSON it is given."""
    body = json.dumps(doc).encode() if body is None else body
    crc = zlib.crc32(data, zlib.crc32(body))
    path.write_bytes(_HEADER.pack(b"MIXQPLAN", version, len(body), len(data), crc) + body + data)


class Tiny(torch.nn.Module):
    """conv, depthwise, max pool, 1x1 conv, global average pool, linear: every window op."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = torch.nn.MaxPool2d(2)
        self.pw = torch.nn.Conv2d(8, 16, 1)
        self.gap = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.dw(torch.relu(self.conv(x))))
        x = self.gap(torch.relu(self.pw(self.pool(x))))
        return self.fc(torch.flatten(x, 1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    x = torch.randn(4, 1, 16, 16)
    plan = mixq.compile(Tiny().eval(), x, "w8a8", calibration=[x], progress=False)
    path = tmp_path_factory.mktemp("plans") / "tiny.mixq"
    plan.save(path)
    return plan, path


def _op(doc, name):
    return next(o for o in doc["spec"]["ops"] if o["name"] == name)


def _set(name, key, value):
    def edit(doc):
        _op(doc, name)[key] = value
    return edit


def _index(name, **fields):
    def edit(doc):
        next(e for e in doc["arrays"] if e["name"] == name).update(fields)
    return edit


# (what is edited, the edit, text the PlanFileError must contain)
CNN_CASES = {
    "depthwise padding 100": (_set("dw", "padding", [100, 100]), "'dw' (depthwise): output shape"),
    "conv padding 2^14": (_set("conv", "padding", [2**14, 2**14]), "'conv' (conv): padding"),
    "pool kernel 2^40": (_set("pool", "kernel", [2**40, 2**40]), "'pool' (pool): kernel"),
    "conv stride 0": (_set("conv", "stride", [0, 0]), "'conv' (conv): stride"),
    "depthwise stride 7": (_set("dw", "stride", [7, 7]), "'dw' (depthwise): output shape"),
    "pool stride 3": (_set("pool", "stride", [3, 3]), "'pool' (pool): output shape"),
    "overflowing padding": (_set("conv", "padding", [2**62, 2**62]), "'conv' (conv): padding"),
    "dilation 0": (_set("dw", "dilation", [0, 1]), "'dw' (depthwise): dilation"),
    "pool padding over half the kernel": (_set("pool", "padding", [2, 2]), "'pool' (pool): padding"),
    "input tensor id out of range": (_set("pw", "inputs", [10**6]), "'pw' (conv): inputs/output tensor id 1000000"),
    "negative output id": (_set("fc", "output", -1), "'fc' (conv): inputs/output tensor id -1"),
    "tensor read before it is written": (_set("conv", "inputs", [3]), "'conv' (conv): inputs"),
    "bias of another layer": (_set("pw", "bias", "fc.bias"), "'pw' (conv): bias array 'fc.bias' must have shape"),
    "weight of another layer": (_set("pw", "weight", "conv.weight"), "'pw' (conv): weight group 0 is"),
    "array index shape disagrees": (_index("dw.bias", shape=[4], nbytes=16), "'dw' (depthwise): bias"),
    "missing array": (_set("dw", "weight", "nothing"), "'dw' (depthwise): weight names array 'nothing.codes'"),
    "unknown op kind": (_set("pool", "kind", "lstm"), "kind must be one of"),
    "mode of another precision": (_set("pw", "mode", "float"), "'pw' (conv): mode"),
    "groups that do not divide": (_set("pw", "groups", 3), "'pw' (conv): groups"),
    "clamp lo > hi": (lambda d: _op(d, "conv").update(lo=5.0, hi=1.0), "'conv' (conv): lo/hi"),
    "shape of strings": (lambda d: d["spec"]["tensors"][1].update(shape="big"), "tensor 1: shape must be"),
    "huge tensor": (lambda d: d["spec"]["tensors"][1].update(shape=[2**20, 2**20, 8]), "tensor 1: shape"),
    "zero point 300": (lambda d: next(t for t in d["spec"]["tensors"] if t["dtype"] == "uint8").update(zero_point=300),
                       "zero_point must be in [0, 255]"),
    "scale 0": (lambda d: next(t for t in d["spec"]["tensors"] if t["dtype"] == "uint8").update(scale=0.0),
                "scale must be finite and > 0"),
    "no tensors key": (lambda d: d["spec"].pop("tensors"), "spec: tensors is missing"),
    "spec is a list": (lambda d: d.update(spec=[1, 2]), "malformed plan index"),
    "arrays is a string": (lambda d: d.update(arrays="x"), "malformed plan index"),
}


def _run_isolated(code: str) -> dict:
    """Runs code in a fresh interpreter that prints one JSON line; a crash or hang fails the test."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"subprocess died with {r.returncode}: {r.stderr[-2000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def _load_all_isolated(paths) -> dict:
    return _run_isolated(f"""
        import json, numpy as np, mixq
        out = {{}}
        for p in {[str(p) for p in paths]!r}:
            try:
                plan = mixq.load_plan(p)
                out[p] = "loaded"
            except mixq.PlanFileError as e:
                out[p] = "PlanFileError: " + str(e)
            except BaseException as e:
                out[p] = type(e).__name__ + ": " + str(e)
        print(json.dumps(out))
    """)


def test_crafted_cnn_plan_files_are_refused_naming_op_and_field(tiny, tmp_path):
    plan, path = tiny
    doc, data = _parts(path)
    paths = {}
    for i, (case, (edit, _)) in enumerate(CNN_CASES.items()):
        d = json.loads(json.dumps(doc))
        edit(d)
        paths[case] = tmp_path / f"case{i}.mixq"
        _write(paths[case], d, data)
    deep = tmp_path / "deep.mixq"  # JSON nested past the recursion limit
    _write(deep, None, data, body=b"[" * 200_000 + b"]" * 200_000)
    version0 = tmp_path / "v0.mixq"
    _write(version0, doc, data, version=0)
    results = _load_all_isolated(list(paths.values()) + [deep, version0])
    for case, (_, message) in CNN_CASES.items():
        got = results[str(paths[case])]
        assert got.startswith("PlanFileError") and message in got, f"{case}: {got}"
    assert results[str(deep)].startswith("PlanFileError") and "malformed" in results[str(deep)]
    assert results[str(version0)].startswith("PlanFileError") and "version 0" in results[str(version0)]


@pytest.mark.parametrize("kernel, padding, groups", [(1, 1, 1), (3, 3, 1), (3, 3, 8)])
def test_conv_padding_past_the_kernel_still_runs(kernel, padding, groups):
    """torch allows a conv to pad past its kernel span; validation must not refuse such models."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1),
                            torch.nn.Conv2d(8, 8, kernel, padding=padding, groups=groups)).eval()
    x = torch.randn(2, 8, 10, 10)
    ref = m(x).detach().numpy()
    np.testing.assert_allclose(mixq.compile(m, x, None, progress=False).run(x.numpy()), ref, rtol=1e-4, atol=1e-5)
    y8 = mixq.compile(m, x, "w8a8", calibration=[x], progress=False).run(x.numpy())
    assert np.abs(y8 - ref).max() <= 0.05 * np.abs(ref).max()  # the runtime's documented bound


def test_the_unedited_file_loads_and_matches(tiny, tmp_path):
    plan, path = tiny
    doc, data = _parts(path)
    copy = tmp_path / "same.mixq"
    _write(copy, doc, data)  # the test's own writer round-trips a valid plan
    x = np.random.default_rng(0).standard_normal((3, 1, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(mixq.load_plan(copy).run(x), plan.run(x))


def test_core_refuses_bad_geometry_without_the_validator(tiny):
    """The core's add_op is a backstop for callers that build plans without the Python validator."""
    from mixq.runtime.cnn.plan import build_core_plan

    _, path = tiny
    spec, stored, _ = read_plan(path)
    for name, key, value, message in [("dw", "padding", [100, 100], "output shape differs"),
                                      ("conv", "padding", [2**14, 2**14], "padded input too large"),
                                      ("pool", "padding", [2, 2], "pool padding"),
                                      ("pool", "kernel", [2**40, 2**40], "kernel, stride and dilation"),
                                      ("conv", "stride", [0, 0], "kernel, stride and dilation"),
                                      ("dw", "stride", [7, 7], "output shape differs")]:
        s = json.loads(json.dumps(spec))
        next(o for o in s["ops"] if o["name"] == name)[key] = value
        with pytest.raises(ValueError, match=message):
            build_core_plan(s, stored)


def _small_encoder(tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_encoder import small_bert

    plan = mixq.compile_encoder(small_bert(), "w8a8")
    path = tmp_path / "enc.mixq"
    plan.save(path)
    return plan, path


def test_crafted_encoder_plan_files_are_refused(tmp_path):
    _, path = _small_encoder(tmp_path)
    doc, data = _parts(path)
    qkv = "encoder.layer.0.attention.self.qkv" if doc["spec"]["fused_qkv"][0] else "encoder.layer.0.attention.self.query"
    cases = {
        "token types with 0 rows": (_index("embeddings.token_type_embeddings.weight", shape=[0, 64], nbytes=0),
                                    "token_type_embeddings must be [types >= 1"),
        "heads do not divide hidden": (lambda d: d["spec"].update(heads=5), "heads 5 does not divide hidden 64"),
        "hidden disagrees with the arrays": (lambda d: d["spec"].update(hidden=32, heads=4), "must have shape"),
        "norm of the wrong size": (_index("encoder.layer.1.output.LayerNorm.bias", shape=[16], nbytes=64),
                                   "output.LayerNorm.bias"),
        "linear of the wrong size": (lambda d: d["spec"].update(intermediate=96), "intermediate.dense"),
        "bias of the wrong size": (_index(f"{qkv}.bias", shape=[8], nbytes=32), f"{qkv}"),
        "missing layers key": (lambda d: d["spec"].pop("layers"), "layers is missing"),
        "fused_qkv too short": (lambda d: d["spec"].update(fused_qkv=[True]), "fused_qkv must be 2 booleans"),
        "eps 0": (lambda d: d["spec"].update(eps=0.0), "eps must be finite and > 0"),
        "unknown precision": (lambda d: d["spec"]["precisions"].update({"encoder.layer.0.output.dense": "w9a9"}),
                              "precision"),
    }
    paths = {}
    for i, (case, (edit, _)) in enumerate(cases.items()):
        d = json.loads(json.dumps(doc))
        edit(d)
        paths[case] = tmp_path / f"enc{i}.mixq"
        _write(paths[case], d, data)
    results = _load_all_isolated(list(paths.values()))
    for case, (_, message) in cases.items():
        got = results[str(paths[case])]
        assert got.startswith("PlanFileError") and message in got, f"{case}: {got}"


def _concurrent_equals_serial(run, inputs, threads=4, rounds=4):
    want = [run(x) for x in inputs]
    bad = []

    def work(t):
        for _ in range(rounds):
            for i in range(t, len(inputs), threads):
                if not np.array_equal(run(inputs[i]), want[i]):
                    bad.append(i)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not bad, f"{len(bad)} of {rounds * len(inputs)} concurrent outputs differ from serial ones"


def test_one_cnn_plan_from_four_threads_equals_serial(tiny):
    plan, path = tiny
    plan = mixq.load_plan(path)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((int(rng.choice([1, 2, 5, 16])), 1, 16, 16)).astype(np.float32) for _ in range(32)]
    _concurrent_equals_serial(plan.run, xs)


def test_one_encoder_plan_from_four_threads_equals_serial(tmp_path):
    _, path = _small_encoder(tmp_path)
    plan = mixq.load_plan(path)
    rng = np.random.default_rng(2)
    inputs = [rng.integers(0, 97, (int(rng.choice([1, 2, 4])), int(rng.choice([3, 17, 40])))) for _ in range(16)]
    _concurrent_equals_serial(plan.run, inputs)


def test_failed_huge_batch_leaves_every_plan_working(tmp_path):
    # 256 fp32 channels: 256 KB of arena per 1 KB input sample, so the batch below needs ~80 GB.
    wide = torch.nn.Sequential(torch.nn.Conv2d(1, 256, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(256, 8, 1))
    cnn_path = tmp_path / "wide.mixq"
    mixq.compile(wide.eval(), torch.randn(1, 1, 16, 16), None, progress=False).save(cnn_path)
    _, enc_path = _small_encoder(tmp_path)
    # np.zeros maps untouched zero pages: the inputs cost no memory, the arenas (tens of GB) fail.
    result = _run_isolated(f"""
        import json, numpy as np, mixq
        cnn, enc = mixq.load_plan({str(cnn_path)!r}), mixq.load_plan({str(enc_path)!r})
        x = np.random.default_rng(0).standard_normal((1, 16, 16, 1)).astype(np.float32)
        ids = np.random.default_rng(0).integers(0, 97, (2, 9))
        want_cnn, want_enc = cnn.run(x, layout="nhwc"), enc.run(ids)
        errors = []
        try:
            cnn.run(np.zeros((300_000, 16, 16, 1), np.float32), layout="nhwc")
        except MemoryError as e:
            errors.append("cnn")
        ok_after_cnn = [np.array_equal(cnn.run(x, layout="nhwc"), want_cnn), np.array_equal(enc.run(ids), want_enc)]
        try:
            enc.run(np.zeros((1_000_000, 48), np.int64))
        except MemoryError:
            errors.append("encoder")
        ok_after_enc = [np.array_equal(enc.run(ids), want_enc), np.array_equal(cnn.run(x, layout="nhwc"), want_cnn)]
        print(json.dumps(dict(errors=errors, after_cnn=ok_after_cnn, after_enc=ok_after_enc)))
    """)
    assert result == dict(errors=["cnn", "encoder"], after_cnn=[True, True], after_enc=[True, True]), result


def test_plan_loader_fuzz_smoke(tiny, tmp_path):
    """A bounded run of tests/fuzz_plan_loader.py on a CNN and an encoder seed (CI runs it longer):
    every edited file loads and runs, or raises PlanFileError; no crash."""
    _, cnn_path = tiny
    _, enc_path = _small_encoder(tmp_path)
    script = __import__("pathlib").Path(__file__).parent / "fuzz_plan_loader.py"
    r = subprocess.run([sys.executable, str(script), str(cnn_path), str(enc_path), "--max-runs", "1500",
                        "--seconds", "60", "--seed", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), f"fuzzer died with {r.returncode}: {r.stderr[-2000:]}"
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["executions"] >= 200 and result["loaded"] > 0, result
    assert not result["findings"], result["findings"][:5]
