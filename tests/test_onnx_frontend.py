"""The ONNX frontend (and .pt2 programs through it): plans from model files match ONNX Runtime
in fp32, match the torch frontend's accuracy at w8a8, keep a QDQ model's scales, and reject
unsupported nodes and broken files with errors that name them."""
import io
import warnings

import numpy as np
import pytest

import mixq
from mixq import data, models
from mixq.runtime.errors import UnsupportedModelError

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def to_onnx(model, x, **kw) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.as_tensor(x),), f, dynamo=False, opset_version=17, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, **kw)
    return f.getvalue()


def ort_run(model_bytes_or_path, x):
    s = ort.InferenceSession(model_bytes_or_path, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def rel_err(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def fmnist():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped subset stands in when the full set is absent
        images, labels = data.fashion_mnist("test", allow_subset=True)
    return data.preprocess(images), labels


@pytest.fixture(scope="module", params=["resnet20", "mobilenet_v2_small"])
def zoo_onnx(request, fmnist):
    model = models.get(request.param, pretrained=True).eval()
    return request.param, model, to_onnx(model, fmnist[0][:1])


def test_fp32_plan_matches_onnxruntime(zoo_onnx, fmnist):
    _, _, blob = zoo_onnx
    x = fmnist[0][:128]
    plan = mixq.compile(blob, config="fp32", progress=False)
    assert rel_err(plan.run(x), ort_run(blob, x)) <= 1e-4


def test_w8a8_accuracy_matches_torch_frontend(zoo_onnx, fmnist, tmp_path):
    name, model, blob = zoo_onnx
    x, y = fmnist
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(blob)
    calib = [x[i:i + 64] for i in range(0, 512, 64)]
    from_onnx = mixq.compile(str(path), None, "w8a8", calibration=calib, progress=False)
    from_torch = mixq.compile(model, torch.from_numpy(x[:1]), "w8a8", calibration=calib, progress=False)
    acc = [100 * np.mean(np.concatenate([p.run(x[i:i + 1000]) for i in range(0, len(x), 1000)]).argmax(1) == y)
           for p in (from_onnx, from_torch)]
    assert abs(acc[0] - acc[1]) <= 0.2, acc
    assert acc[0] > 85, acc  # a real classifier, not two equally broken plans
    assert [t["dtype"] for t in from_onnx.spec["tensors"]].count("uint8") > 5  # int8 activations really run


def test_qdq_model_keeps_its_activation_scales(fmnist, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    x, y = fmnist
    model = models.get("resnet20", pretrained=True).eval()
    (tmp_path / "f.onnx").write_bytes(to_onnx(model, x[:1]))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": x[i:i + 64]} for i in range(0, 256, 64)])

        def get_next(self):
            return next(self.batches, None)

    import logging
    logging.getLogger().setLevel(logging.ERROR)  # ORT's "consider pre-processing" note
    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    qdq = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in qdq.graph.initializer}
    file_q = {(float(inits[n.input[1]]), int(inits[n.input[2]])) for n in qdq.graph.node
              if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    # Calibration data far off the file's ranges: scales from it would differ from the file's.
    plan = mixq.compile(str(tmp_path / "q.onnx"), None, "w8a8", calibration=[x[:64] * 5], progress=False)
    u8 = [(t["scale"], t["zero_point"]) for t in plan.spec["tensors"] if t["dtype"] == "uint8"]
    assert len(u8) > 5
    assert all(min(abs(s - fs) / fs for fs, fz in file_q if fz == z) < 1e-6 for s, z in u8), (u8, file_q)
    acc = 100 * np.mean(plan.run(x[:2000]).argmax(1) == y[:2000])
    acc_ort = 100 * np.mean(ort_run(str(tmp_path / "q.onnx"), x[:2000]).argmax(1) == y[:2000])
    assert abs(acc - acc_ort) <= 0.5, (acc, acc_ort)


class OddNet(torch.nn.Module):
    """Concat, a dilated depthwise conv, SiLU, Hardswish, BatchNorm, a residual and pools."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.a = nn.Conv2d(1, 8, 3, padding=1)
        self.b = nn.Conv2d(1, 8, 5, padding=2)
        self.dw = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)
        self.bn = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 16, 1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(16 * 7 * 7, 10)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = torch.cat([self.a(x), self.b(x)], 1)
        x = torch.nn.functional.silu(self.bn(self.dw(x)))
        x = torch.nn.functional.hardswish(self.pw(x)) + x
        x = self.avg(self.pool(torch.relu(x)))
        return self.fc(torch.flatten(x, 1))


def test_odd_cnn_with_batchnorm_matches_onnxruntime(fmnist):
    x = fmnist[0][:32]
    torch.manual_seed(0)
    blob = to_onnx(OddNet(), x[:1], do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    ops = {n.op_type for n in onnx.load_from_string(blob).graph.node}
    assert {"BatchNormalization", "Concat", "Sigmoid", "HardSwish"} <= ops, ops
    plan = mixq.compile(blob, config="fp32", progress=False)
    assert rel_err(plan.run(x), ort_run(blob, x)) <= 1e-4


def test_torch_export_program(fmnist, tmp_path):
    x = fmnist[0][:16]
    model = models.get("resnet20", pretrained=True).eval()
    path = tmp_path / "r20.pt2"
    torch.export.save(torch.export.export(model, (torch.from_numpy(x[:1]),)), str(path))
    plan = mixq.compile(str(path), config="fp32", progress=False)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert rel_err(plan.run(x), ref) <= 1e-4


def small_graph(extra_nodes, out="y"):
    h = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv0", pads=[1, 1, 1, 1])] + extra_nodes
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 1, 8, 8])],
                     [h.make_tensor_value_info(out, onnx.TensorProto.FLOAT, ["n", 4, 8, 8])], [w])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def test_unsupported_nodes_are_named_with_their_op_type():
    h = onnx.helper
    model = small_graph([h.make_node("LeakyRelu", ["c"], ["l"], name="my_leaky"),
                         h.make_node("Softmax", ["l"], ["y"], name="my_softmax")])
    with pytest.raises(UnsupportedModelError) as e:
        mixq.compile(model, config="fp32", progress=False)
    assert "my_leaky (LeakyRelu)" in str(e.value) and "my_softmax (Softmax)" in str(e.value)


def test_corrupt_truncated_and_missing_files(tmp_path):
    from mixq.runtime.cnn.onnx_frontend import OnnxFileError

    blob = small_graph([onnx.helper.make_node("Relu", ["c"], ["y"], name="r")]).SerializeToString()
    assert mixq.compile(blob, config="fp32", progress=False).run(np.ones((2, 1, 8, 8), np.float32)).shape == (2, 4, 8, 8)
    cases = {"truncated.onnx": blob[: len(blob) // 2], "garbage.onnx": bytes(range(256)) * 8, "empty.onnx": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(OnnxFileError, match=name):
            mixq.compile(str(tmp_path / name), config="fp32", progress=False)
    with pytest.raises(FileNotFoundError):
        mixq.compile(str(tmp_path / "absent.onnx"), config="fp32")
    (tmp_path / "model.bin").write_bytes(blob)
    with pytest.raises(ValueError, match="unknown model file type"):
        mixq.compile(str(tmp_path / "model.bin"), config="fp32")


def test_malformed_graphs_are_errors_not_crashes():
    h = onnx.helper
    # A conv whose input is a constant, a Gemm on a 4-D tensor, and an Add with a non-tensor: named, no crash.
    c = onnx.numpy_helper.from_array(np.ones((1, 1, 8, 8), np.float32), "k")
    model = small_graph([h.make_node("Conv", ["k", "w"], ["c2"], name="const_conv"),
                         h.make_node("Add", ["c", "c2"], ["y"], name="add_const")])
    model.graph.initializer.append(c)
    with pytest.raises(UnsupportedModelError) as e:
        mixq.compile(model, config="fp32", progress=False)
    assert "const_conv (Conv)" in str(e.value)
    fc = onnx.numpy_helper.from_array(np.ones((4, 4), np.float32), "fcw")
    model = small_graph([h.make_node("Gemm", ["c", "fcw"], ["y"], name="gemm4d")])
    model.graph.initializer.append(fc)
    with pytest.raises(UnsupportedModelError, match=r"gemm4d \(Gemm\)"):
        mixq.compile(model, config="fp32", progress=False)
