"""torch.export programs (.pt2 files from torch.export.save) -> ONNX -> the ONNX frontend.

An ExportedProgram's graph is ATen-level (conv2d, batch_norm, relu as aten ops), not the
module calls the torch.fx capture reads; ONNX is the op set mixq already reads, so the program's
module is written as ONNX (torch's TorchScript-based exporter, which needs no onnxscript) and
read back.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np


def load_exported(path):
    """An ExportedProgram from a .pt2 file, with a clear error for a bad file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such torch.export file: {path}")
    try:
        return torch.export.load(str(path))
    except Exception as e:
        raise ValueError(f"{path}: not a readable torch.export program (torch.export.save writes one): "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def exported_to_onnx(program, example_input=None) -> bytes:
    """The program's module as ONNX bytes (opset 17), its batch dimension symbolic."""
    import torch

    if example_input is None:
        example_input = next(a for a in program.example_inputs[0] if isinstance(a, torch.Tensor))
    example = torch.as_tensor(np.asarray(example_input, dtype=np.float32))
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice
        torch.onnx.export(program.module(), (example,), f, dynamo=False, opset_version=17,
                          training=torch.onnx.TrainingMode.PRESERVE,  # an exported module cannot switch modes
                          input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}})
    return f.getvalue()
