"""Model definitions: plain ``torch.nn`` built only from ops a quantizing runtime supports.

Every network here uses Conv2d, BatchNorm2d, ReLU/ReLU6, residual addition,
AdaptiveAvgPool2d, Flatten, Linear and Dropout -- nothing else -- so that
``torch.fx`` capture and lowering to mixq's kernels stays simple.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "InvertedResidual",
    "ResNet20",
    "ResNet50",
    "MobileNetV2",
    "resnet20",
    "resnet50",
    "mobilenet_v2",
]


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- ResNet-20


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or 1x1-projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3)
        if stride != 1 or cin != cout:
            # Projection shortcut (option B): a 1x1 conv, not the zero-padding
            # slice of option A, which a conv-only runtime could not express.
            self.shortcut = nn.Sequential(*_conv_bn(cin, cout, 1, stride))
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR-style ResNet-20: 3 stages x 3 basic blocks, 16/32/64 channels."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths=(16, 32, 64), blocks: int = 3):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, widths[0], 3), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(cin, w, stride))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(cin, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))


def resnet20(in_channels: int = 1, num_classes: int = 10) -> ResNet20:
    """CIFAR-style ResNet-20 (~0.27 M parameters) for 28-32 px images."""
    return ResNet20(in_channels=in_channels, num_classes=num_classes)


# --------------------------------------------------------------------------- MobileNetV2


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # never round down by more than 10 %
        new_v += divisor
    return new_v


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(cin, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += _conv_bn(hidden, cout, 1)
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.block(x)
        return self.block(x)


# (expansion t, output channels c, repeats n, stride s of the first block)
_MBV2_IMAGENET = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
# Small-image variant (28-32 px): stem stride 1 instead of 2, everything else
# as in the paper, so the total downsampling is 16x instead of 32x
# (28 -> 28 -> 14 -> 7 -> 4 -> 2; 32 -> 32 -> 16 -> 8 -> 4 -> 2).
_MBV2_SMALL = _MBV2_IMAGENET
_MBV2_VARIANTS = {"small": (1, _MBV2_SMALL), "imagenet": (2, _MBV2_IMAGENET)}


class MobileNetV2(nn.Module):
    def __init__(
        self,
        variant: str = "imagenet",
        in_channels: int = 3,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        last_channels: int = 1280,
    ):
        super().__init__()
        if variant not in _MBV2_VARIANTS:
            raise ValueError(f"unknown MobileNetV2 variant {variant!r}; choose from {sorted(_MBV2_VARIANTS)}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        stem_stride, cfg = _MBV2_VARIANTS[variant]
        self.variant = variant
        cin = _make_divisible(32 * width_mult)
        last = _make_divisible(last_channels * max(1.0, width_mult))
        features: list[nn.Module] = [nn.Sequential(*_conv_bn(in_channels, cin, 3, stem_stride), nn.ReLU6(inplace=True))]
        for t, c, n, s in cfg:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(nn.Sequential(*_conv_bn(cin, last, 1), nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.pool(self.features(x)))
        return self.classifier(self.dropout(x))


def mobilenet_v2(
    variant: str = "imagenet",
    in_channels: int | None = None,
    num_classes: int | None = None,
    width_mult: float = 1.0,
    dropout: float = 0.2,
) -> MobileNetV2:
    """MobileNetV2.

    ``variant="imagenet"``: the standard 224 px network (3 channels, 1000 classes by default).
    ``variant="small"``: strides adapted to 28-32 px inputs (1 channel, 10 classes by default).
    """
    small = variant == "small"
    return MobileNetV2(
        variant=variant,
        in_channels=in_channels if in_channels is not None else (1 if small else 3),
        num_classes=num_classes if num_classes is not None else (10 if small else 1000),
        width_mult=width_mult,
        dropout=dropout,
    )


# --------------------------------------------------------------------------- ResNet-50


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 reduce, 3x3 (carries the stride), 1x1 expand x4."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = _conv_bn(cin, width, 1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3, self.bn3 = _conv_bn(width, cout, 1)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(*_conv_bn(cin, cout, 1, stride))
        else:
            self.downsample = nn.Identity()
        self.relu3 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.downsample(x))


class ResNet50(nn.Module):
    """ResNet-50 v1.5 (stride on the 3x3 conv of each bottleneck) for 224 px images.

    Note: the standard stem has a 3x3/2 max-pool (``nn.MaxPool2d``); it is the
    one op in the zoo beyond conv/BN/ReLU/add/avg-pool/linear, kept so the
    network is the real ResNet-50 v1.5 that published latency numbers refer to.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, layers=(3, 4, 6, 3)):
        super().__init__()
        self.stem = nn.Sequential(
            *_conv_bn(in_channels, 64, 7, 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        cin = 64
        for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(Bottleneck(cin, width, stride))
                cin = width * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(cin, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.pool(x)))


def resnet50(in_channels: int = 3, num_classes: int = 1000) -> ResNet50:
    """ResNet-50 v1.5 (~25.6 M parameters with 1000 classes)."""
    return ResNet50(in_channels=in_channels, num_classes=num_classes)
