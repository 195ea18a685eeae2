"""mixq model zoo: plain torch.nn networks and shipped Fashion-MNIST checkpoints.

    >>> from mixq import models
    >>> models.available()
    ['mobilenet_v2', 'mobilenet_v2_small', 'resnet20', 'resnet50']
    >>> net = models.get("resnet20", pretrained=True)   # trained on Fashion-MNIST

Imports torch (the zoo is torch modules); nothing else from mixq.
"""

from .registry import (
    WEIGHTS_DIR,
    CheckpointNotFoundError,
    ModelInfo,
    available,
    checkpoint_metadata,
    get,
    info,
    load_checkpoint,
    read_safetensors,
)
from .zoo import MobileNetV2, ResNet20, ResNet50, mobilenet_v2, resnet20, resnet50

__all__ = [
    "WEIGHTS_DIR",
    "CheckpointNotFoundError",
    "ModelInfo",
    "MobileNetV2",
    "ResNet20",
    "ResNet50",
    "available",
    "checkpoint_metadata",
    "get",
    "info",
    "load_checkpoint",
    "mobilenet_v2",
    "read_safetensors",
    "resnet20",
    "resnet50",
]
