"""torch -> ONNX export and ONNX Runtime sessions, shared by the peers of every benchmark."""
from __future__ import annotations

import warnings

from .peers import peers


def export_onnx(model, inputs: tuple, path: str, input_names, output_names, dynamic_axes,
                opset: int = 17) -> None:
    """torch.onnx.export with the TorchScript exporter (dynamo=False): the dynamo exporter, the
    default since torch 2.9, needs the onnxscript package, which the bench extra does not
    install; the TorchScript one needs nothing beyond torch and onnx (and folds BatchNorm into
    the convolutions of an eval model itself)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's DeprecationWarning
        torch.onnx.export(model, inputs, path, dynamo=False, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes,
                          opset_version=opset, do_constant_folding=True)


def onnx_initializer_bytes(model) -> dict[str, int]:
    """{onnx element type name: bytes} over the initializers of an ONNX model."""
    onnx = peers()["onnx"]
    from onnx import numpy_helper

    out: dict[str, int] = {}
    for init in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(init.data_type)
        out[name] = out.get(name, 0) + numpy_helper.to_array(init).nbytes
    return out


def ort_session(model, threads: int):
    """InferenceSession on the CPU provider with intra-op = threads, inter-op = 1, sequential."""
    ort = peers()["onnxruntime"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ORT's idle intra-op threads otherwise keep spinning after each run and take the cores
    # from whichever library is timed next in this process (measured: mixq at half speed).
    # Its own back-to-back timings were the same within noise without spinning.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def ort_model_runner(path: str, threads: int, input_names, single_input: bool = False):
    """(run, {element type: bytes} of the initializers) for the ONNX model at `path`. run takes
    a feed dict (or the one input array with single_input) and returns the first output."""
    onnx = peers()["onnx"]
    types = onnx_initializer_bytes(onnx.load(path))
    with open(path, "rb") as f:
        sess = ort_session(f.read(), threads)
    names = list(input_names)
    if single_input:
        return (lambda x: sess.run(None, {names[0]: x})[0]), types
    return (lambda feed: sess.run(None, {k: feed[k] for k in names})[0]), types
