"""Registry of zoo models and loading of the checkpoints shipped in ``weights/``."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from . import zoo
from .errors import CheckpointNotFoundError

__all__ = [
    "WEIGHTS_DIR",
    "CheckpointNotFoundError",
    "ModelInfo",
    "available",
    "checkpoint_metadata",
    "get",
    "info",
    "load_checkpoint",
    "read_safetensors",
]

WEIGHTS_DIR = Path(__file__).with_name("weights")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable
    input_shape: tuple[int, int, int]  # C, H, W the model is meant for
    num_classes: int
    dataset: str  # what its checkpoint is (or would be) trained on
    description: str
    defaults: dict = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()


_REGISTRY: dict[str, ModelInfo] = {}


def _register(name, builder, input_shape, num_classes, dataset, description, **defaults):
    _REGISTRY[name] = ModelInfo(name, builder, input_shape, num_classes, dataset, description, defaults)


_register("resnet20", zoo.resnet20, (1, 28, 28), 10, "fashion-mnist",
          "CIFAR-style ResNet-20, 16/32/64 channels")
_register("mobilenet_v2_small", partial(zoo.mobilenet_v2, "small"), (1, 28, 28), 10, "fashion-mnist",
          "MobileNetV2 with strides for 28-32 px inputs")
_register("mobilenet_v2", partial(zoo.mobilenet_v2, "imagenet"), (3, 224, 224), 1000, "imagenet",
          "standard 224 px MobileNetV2 (no shipped weights)")
_register("resnet50", zoo.resnet50, (3, 224, 224), 1000, "imagenet",
          "ResNet-50 v1.5 (no shipped weights)")


def available() -> list[str]:
    """Names accepted by :func:`get`."""
    return sorted(_REGISTRY)


def info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available())}") from None


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a .safetensors file into numpy arrays (no torch / safetensors needed); bfloat16
    tensors come back as the float32 values they hold."""
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
              "BF16": np.uint16}
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: safetensors header length {n} exceeds file size")
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        if spec["dtype"] not in dtypes:
            raise ValueError(f"{path}: tensor {key!r} has unsupported dtype {spec['dtype']}")
        start, end = spec["data_offsets"]
        dt = np.dtype(dtypes[spec["dtype"]]).newbyteorder("<")
        arr = np.frombuffer(raw, dtype=dt, count=(end - start) // dt.itemsize, offset=base + start)
        arr = arr.reshape(spec["shape"]).astype(dt.newbyteorder("="))
        if spec["dtype"] == "BF16":  # the top 16 bits of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[key] = arr
    return out


def checkpoint_metadata(name: str) -> dict:
    """The metadata JSON recorded next to a shipped checkpoint."""
    meta = WEIGHTS_DIR / f"{name}.json"
    if not meta.is_file():
        raise CheckpointNotFoundError(_no_checkpoint_msg(name))
    return json.loads(meta.read_text())


def _no_checkpoint_msg(name: str) -> str:
    shipped = [n for n in available() if _REGISTRY[n].has_checkpoint]
    if _REGISTRY[name].dataset == "fashion-mnist":
        hint = (f"Train one with `python -m mixq.models.train --model {name} --out DIR` "
                "and load it with mixq.models.load_checkpoint(model, DIR/<name>.safetensors).")
    else:
        hint = ("No pretrained weights are shipped for this architecture (they cannot be downloaded here); "
                "use random weights (pretrained=False) or load_checkpoint(model, path) with your own.")
    return (f"no shipped checkpoint for {name!r} (looked for {WEIGHTS_DIR / (name + '.safetensors')}); "
            f"models with checkpoints: {', '.join(shipped) or 'none'}. {hint}")


def load_checkpoint(model, path: str | os.PathLike) -> None:
    """Load a .safetensors state dict into ``model`` (strict: names and shapes must match)."""
    import torch

    arrays = read_safetensors(path)
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise RuntimeError(f"checkpoint {path} does not fit this model "
                           f"(built with non-default arguments?): {e}") from None


def get(name: str, pretrained: bool = False, **kwargs):
    """Build zoo model ``name``; ``pretrained=True`` loads its shipped checkpoint.

    Keyword arguments go to the builder (e.g. ``num_classes``, ``width_mult``);
    with ``pretrained=True`` they must match those the checkpoint was trained with.
    The model is returned in eval mode when pretrained, else in train mode.
    """
    spec = info(name)
    if pretrained:
        if not spec.has_checkpoint:
            raise CheckpointNotFoundError(_no_checkpoint_msg(name))
        meta = checkpoint_metadata(name)
        kw = dict(meta.get("model_kwargs", {}))
        kw.update(kwargs)
        model = spec.builder(**kw)
        load_checkpoint(model, spec.checkpoint)
        model.eval()
        return model
    return spec.builder(**kwargs)
