"""MobileNetV3-Large and -Small (Howard et al., 2019; torchvision's ``mobilenet_v3_large``
/ ``mobilenet_v3_small`` 1.0), at 160x160 input.

Stem Conv 3x3/2 (16) -> BN -> HardSwish; inverted-residual blocks ("bneck", the
configurations below, as torchvision): an expanding 1x1 Conv -> BN -> act (absent when the
expansion equals the input width), a depthwise kxk Conv (stride s) -> BN -> act, an
optional squeeze-excite gate (squeeze width ``make_divisible(expanded / 4)``, ReLU inside,
HardSigmoid gate, ``Mul(gate, x)``), a projecting 1x1 Conv -> BN, and an identity ``Add``
when the stride is 1 and the widths match; act is ReLU ("RE") or HardSwish ("HS"). Head:
1x1 Conv (6 x the last width) -> BN -> HardSwish -> GlobalAveragePool -> Flatten -> Gemm
-> HardSwish -> Gemm (1000 logits); Dropout is omitted (inference). Opset 14 (HardSwish).
Input ``input`` (1, 3, 160, 160), output ``output`` (1, 1000) logits.
"""

from __future__ import annotations

import onnx

from vfpga.models._blocks import activation, conv_bn, make_divisible, squeeze_excite
from vfpga.models._builder import GraphBuilder

#: (input width, kernel, expanded width, output width, squeeze-excite, act, stride)
Bneck = tuple[int, int, int, int, bool, str, int]

MOBILENET_V3_LARGE: tuple[Bneck, ...] = (
    (16, 3, 16, 16, False, "relu", 1),
    (16, 3, 64, 24, False, "relu", 2),
    (24, 3, 72, 24, False, "relu", 1),
    (24, 5, 72, 40, True, "relu", 2),
    (40, 5, 120, 40, True, "relu", 1),
    (40, 5, 120, 40, True, "relu", 1),
    (40, 3, 240, 80, False, "hswish", 2),
    (80, 3, 200, 80, False, "hswish", 1),
    (80, 3, 184, 80, False, "hswish", 1),
    (80, 3, 184, 80, False, "hswish", 1),
    (80, 3, 480, 112, True, "hswish", 1),
    (112, 3, 672, 112, True, "hswish", 1),
    (112, 5, 672, 160, True, "hswish", 2),
    (160, 5, 960, 160, True, "hswish", 1),
    (160, 5, 960, 160, True, "hswish", 1),
)

MOBILENET_V3_SMALL: tuple[Bneck, ...] = (
    (16, 3, 16, 16, True, "relu", 2),
    (16, 3, 72, 24, False, "relu", 2),
    (24, 3, 88, 24, False, "relu", 1),
    (24, 5, 96, 40, True, "hswish", 2),
    (40, 5, 240, 40, True, "hswish", 1),
    (40, 5, 240, 40, True, "hswish", 1),
    (40, 5, 120, 48, True, "hswish", 1),
    (48, 5, 144, 48, True, "hswish", 1),
    (48, 5, 288, 96, True, "hswish", 2),
    (96, 5, 576, 96, True, "hswish", 1),
    (96, 5, 576, 96, True, "hswish", 1),
)

INPUT_SIZE = 160


def _build(seed: int, blocks: tuple[Bneck, ...], last: int, graph: str) -> onnx.ModelProto:
    b = GraphBuilder(seed)
    x = conv_bn(b, "input", "stem", 3, 16, 3, stride=2, act="hswish")
    for i, (cin, k, exp, cout, se, act, stride) in enumerate(blocks, start=1):
        name = f"block{i}"
        y = x
        if exp != cin:
            y = conv_bn(b, y, f"{name}.expand", cin, exp, 1, act=act)
        y = conv_bn(b, y, f"{name}.dw", exp, exp, k, stride=stride, group=exp, act=act)
        if se:
            y = squeeze_excite(b, y, f"{name}.se", exp, make_divisible(exp / 4), "relu", "hsigmoid")
        y = conv_bn(b, y, f"{name}.project", exp, cout, 1)
        x = b.add(x, y, f"{name}.add") if stride == 1 and cin == cout else y
    cin = blocks[-1][3]
    x = conv_bn(b, x, "head", cin, 6 * cin, 1, act="hswish")
    x = b.flatten(b.global_avg_pool(x, "avgpool"), "flatten")
    x = activation(b, b.gemm(x, "classifier.0", 6 * cin, last), "classifier.0", "hswish")
    out = b.gemm(x, "classifier.3", last, 1000, out_name="output")
    return b.finish(graph, (1, 3, INPUT_SIZE, INPUT_SIZE), out, (1, 1000), __doc__ or "", opset=14)


def build_mobilenet_v3_large(seed: int = 0) -> onnx.ModelProto:
    """MobileNetV3-Large 1.0 (15 bneck blocks, 8 with squeeze-excite), seeded weights."""
    return _build(seed, MOBILENET_V3_LARGE, 1280, "mobilenet_v3_large")


def build_mobilenet_v3_small(seed: int = 0) -> onnx.ModelProto:
    """MobileNetV3-Small 1.0 (11 bneck blocks, 9 with squeeze-excite), seeded weights."""
    return _build(seed, MOBILENET_V3_SMALL, 1024, "mobilenet_v3_small")
