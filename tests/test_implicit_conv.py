"""int8 convs read straight from their input (padded with the zero point per task), no im2col: bit-identical to the
im2col path on every geometry the implicit GEMM takes, and the geometries it does not take still
run (through im2col)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import mixq  # noqa: E402
from mixq import _core  # noqa: E402


class Block(nn.Module):
    """conv (+ BN) plus a second conv of the same geometry (the fused residual add), a clamp, a
    strided 1x1 conv and a 3x3 head."""

    def __init__(self, cin, cout, k, stride, padding, dilation=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.other = nn.Conv2d(cin, cout, k, stride, padding, dilation, bias=True)
        self.down = nn.Conv2d(cout, 24, 1, 2, 0)
        self.head = nn.Conv2d(24, 8, 3, 1, 1)

    def forward(self, x):
        y = nn.functional.relu6(self.bn(self.conv(x)) + self.other(x))
        return self.head(torch.relu(self.down(y)))


GEOMETRIES = [  # cin, cout, kernel, stride, padding, dilation, groups
    (16, 32, 3, 1, 1, 1, 1),
    (16, 40, 3, 2, 1, 1, 1),
    (8, 64, 5, 1, 2, 1, 1),
    (12, 24, 3, 1, 0, 1, 1),
    (5, 16, 4, 2, 1, 1, 1),    # KW * C = 20: a k step (4 bytes) never straddles a kernel row
    (64, 96, 1, 2, 0, 1, 1),
    (3, 32, 7, 2, 3, 1, 1),    # KW * C = 21: weights with a zero 8th tap per kernel row
    (3, 16, 3, 2, 0, 1, 1),    # RGB, no padding: the input copy is only widened for the 4th tap
    (1, 16, 3, 1, 1, 1, 1),    # grey: 4 taps of 1 channel per kernel row
    (3, 8, 5, 1, 2, 1, 1),     # 5 taps of 3 channels would need 8: im2col
    (1, 8, 1, 2, 0, 1, 1),     # a strided 1x1 grey conv would need 4 taps: im2col
    (16, 32, 3, 1, 2, 2, 1),   # dilated: im2col
    (16, 32, 3, 1, 1, 1, 2),   # grouped: im2col
    (32, 48, (3, 1), 1, (1, 0), 1, 1),
    (7, 33, 3, 3, 1, 1, 1),    # stride larger than 2, odd channels (KW * C = 21: a zero 4th tap)
    (20, 33, 3, 3, 1, 1, 1),   # stride 3, odd output channels
    (464, 72, 3, 1, 1, 1, 1),  # K = 4176: two kc slices over each task's padded rows
]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("batch", [1, 3])
def test_implicit_gemm_matches_im2col_bit_for_bit(geometry, batch):
    cin, cout, k, stride, padding, dilation, groups = geometry
    torch.manual_seed(0)
    model = Block(cin, cout, k, stride, padding, dilation, groups).eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 1.5)
    shape = (cin, 13, 11)
    g = torch.Generator().manual_seed(1)
    calib = [torch.randn(4, *shape, generator=g) for _ in range(2)]
    plan = mixq.compile(model, calib[0], "w8a8", calibration=calib, progress=False)
    x = np.random.default_rng(2).standard_normal((batch, *shape)).astype(np.float32)
    try:
        _core.set_implicit_conv(False)
        reference = plan.run(x)
    finally:
        _core.set_implicit_conv(True)
    np.testing.assert_array_equal(plan.run(x), reference)


def test_extreme_codes_and_every_isa():
    """Inputs that saturate the uint8 grid (codes 0 and 255 everywhere, borders at the zero point)
    on every ISA path this CPU runs."""
    torch.manual_seed(3)
    model = Block(16, 64, 3, 1, 1).eval()
    calib = [torch.full((2, 16, 9, 9), 3.0), torch.full((2, 16, 9, 9), -3.0)]
    plan = mixq.compile(model, calib[0], "w8a8", calibration=calib, progress=False)
    x = np.where(np.random.default_rng(4).random((2, 16, 9, 9)) < 0.5, 50.0, -50.0).astype(np.float32)
    before = mixq.cpu_info()["isa"]
    try:
        for isa in mixq.available_isas():
            mixq.set_isa(isa)
            _core.set_implicit_conv(False)
            reference = plan.run(x)
            _core.set_implicit_conv(True)
            np.testing.assert_array_equal(plan.run(x), reference, err_msg=isa)
    finally:
        _core.set_implicit_conv(True)
        mixq.set_isa(before)
