"""EfficientNet-B0 (Tan & Le, 2019; torchvision's ``efficientnet_b0``), at 160x160 input.

Stem Conv 3x3/2 (32) -> BN -> SiLU; 16 MBConv blocks in 7 stages (the configurations
below, as torchvision): an expanding 1x1 Conv -> BN -> SiLU (absent for expansion 1), a
depthwise kxk Conv (stride s) -> BN -> SiLU, a squeeze-excite gate (squeeze width
``max(1, input width / 4)``, SiLU inside, Sigmoid gate, ``Mul(gate, x)``), a projecting
1x1 Conv -> BN, and an identity ``Add`` when the stride is 1 and the widths match
(stochastic depth is the identity at inference). Head: 1x1 Conv (1280) -> BN -> SiLU ->
GlobalAveragePool -> Flatten -> Gemm (1000 logits); Dropout is omitted. SiLU is written
``x * Sigmoid(x)``, as PyTorch exports it. Opset 13. Input ``input`` (1, 3, 160, 160),
output ``output`` (1, 1000) logits.
"""

from __future__ import annotations

import onnx

from vfpga.models._blocks import conv_bn, squeeze_excite
from vfpga.models._builder import GraphBuilder

#: (expansion, kernel, stride, input width, output width, blocks) per stage.
EFFICIENTNET_B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)

INPUT_SIZE = 160


def build_efficientnet_b0(seed: int = 0) -> onnx.ModelProto:
    """EfficientNet-B0 (16 MBConv blocks, each with squeeze-excite), seeded weights."""
    b = GraphBuilder(seed)
    x = conv_bn(b, "input", "stem", 3, 32, 3, stride=2, act="silu")
    for s, (expand, k, stride, cin0, cout, n) in enumerate(EFFICIENTNET_B0_STAGES, start=1):
        for j in range(n):
            name = f"stage{s}.{j}"
            cin = cin0 if j == 0 else cout
            st = stride if j == 0 else 1
            exp = cin * expand
            y = x
            if expand != 1:
                y = conv_bn(b, y, f"{name}.expand", cin, exp, 1, act="silu")
            y = conv_bn(b, y, f"{name}.dw", exp, exp, k, stride=st, group=exp, act="silu")
            y = squeeze_excite(b, y, f"{name}.se", exp, max(1, cin // 4), "silu", "sigmoid")
            y = conv_bn(b, y, f"{name}.project", exp, cout, 1)
            x = b.add(x, y, f"{name}.add") if st == 1 and cin == cout else y
    x = conv_bn(b, x, "head", 320, 1280, 1, act="silu")
    x = b.flatten(b.global_avg_pool(x, "avgpool"), "flatten")
    out = b.gemm(x, "classifier", 1280, 1000, out_name="output")
    return b.finish(
        "efficientnet_b0", (1, 3, INPUT_SIZE, INPUT_SIZE), out, (1, 1000), __doc__ or ""
    )
