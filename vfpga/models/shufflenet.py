"""ShuffleNetV2-style network (Ma et al., 2018; torchvision ``shufflenet_v2_x1_0``'s
blocks and widths, fewer units, 128x128 input).

Stem: Conv 3x3/2 (24) -> BN -> ReLU -> MaxPool 3x3/2 p1. Three stages of widths 116, 232,
464 with :data:`SHUFFLENET_V2_STAGES` units (torchvision: 4, 8, 4). The first unit of a
stage downsamples: branch 1 is a depthwise Conv 3x3/2 -> BN -> Conv 1x1 -> BN -> ReLU of
the input, branch 2 a Conv 1x1 -> BN -> ReLU -> depthwise Conv 3x3/2 -> BN -> Conv 1x1 ->
BN -> ReLU of the input. The other units ``Split`` the input into two halves along
channels (torchvision's ``x.chunk(2, dim=1)``, exported as ``Split`` with a ``split``
input), keep the first and run branch 2 on the second (stride 1). Every unit ends in
``Concat`` of its two branches and a channel shuffle with 2 groups, exported as
PyTorch does: ``Reshape`` to (1, 2, C/2, H, W) -> ``Transpose(perm=[0, 2, 1, 3, 4])`` ->
``Reshape`` back. Head: Conv 1x1 (1024) -> BN -> ReLU -> ``ReduceMean`` over H, W
(``keepdims=0``, torchvision's ``x.mean([2, 3])``) -> Gemm 1024 -> 1000. Convolutions have
no bias. Input ``input`` (1, 3, 128, 128); output ``output`` (1, 1000) logits.
"""

from __future__ import annotations

import numpy as np
import onnx

from vfpga.models._builder import GraphBuilder

#: Units per stage (torchvision's ShuffleNetV2 has 4, 8, 4; every unit type is kept).
SHUFFLENET_V2_STAGES: tuple[int, ...] = (2, 3, 2)
#: Output channels of the stem, the three stages and the last 1x1 conv (x1.0).
SHUFFLENET_V2_WIDTHS: tuple[int, ...] = (24, 116, 232, 464, 1024)
#: Input size (square).
SHUFFLENET_V2_SIZE = 128


def _shuffle(b: GraphBuilder, x: str, name: str, c: int, hw: int) -> str:
    """Channel shuffle with 2 groups as PyTorch exports it (Reshape-Transpose-Reshape)."""
    s5 = b.const(f"{name}.shape5", np.array([1, 2, c // 2, hw, hw], np.int64))
    s4 = b.const(f"{name}.shape4", np.array([1, c, hw, hw], np.int64))
    y = b.node("Reshape", [x, s5], f"{name}.view")
    y = b.node("Transpose", [y], f"{name}.transpose", perm=[0, 2, 1, 3, 4])
    return b.node("Reshape", [y, s4], f"{name}.shuffle")


def _branch2(b: GraphBuilder, x: str, name: str, cin: int, cout: int, stride: int) -> str:
    """Conv 1x1 -> BN -> ReLU -> depthwise 3x3/stride -> BN -> Conv 1x1 -> BN -> ReLU."""
    y = b.conv_bn_act(x, f"{name}.0", cin, cout, 1)
    y = b.conv_bn_act(y, f"{name}.3", cout, cout, 3, stride=stride, pad=1, group=cout,
                      act=None)
    return b.conv_bn_act(y, f"{name}.5", cout, cout, 1)


def build_shufflenet_v2(seed: int = 0) -> onnx.ModelProto:
    """Build the ShuffleNetV2-style network with seeded He-initialised weights."""
    b = GraphBuilder(seed)
    stem, *stages, last = SHUFFLENET_V2_WIDTHS
    hw = SHUFFLENET_V2_SIZE // 2
    x = b.conv_bn_act("input", "conv1", 3, stem, 3, stride=2, pad=1)
    x = b.max_pool(x, "maxpool", 3, 2, 1)
    hw //= 2
    cin = stem
    for s, (units, cout) in enumerate(zip(SHUFFLENET_V2_STAGES, stages, strict=True), 2):
        half = cout // 2
        for u in range(units):
            name = f"stage{s}.{u}"
            if u == 0:
                hw //= 2
                b1 = b.conv_bn_act(x, f"{name}.branch1.0", cin, cin, 3, stride=2, pad=1,
                                   group=cin, act=None)
                b1 = b.conv_bn_act(b1, f"{name}.branch1.2", cin, half, 1)
                b2 = _branch2(b, x, f"{name}.branch2", cin, half, 2)
            else:
                sizes = b.const(f"{name}.split_sizes", np.array([half, half], np.int64))
                b1, x2 = b.node_outputs("Split", [x, sizes], f"{name}.chunk",
                                        [f"{name}.chunk.0", f"{name}.chunk.1"], axis=1)
                b2 = _branch2(b, x2, f"{name}.branch2", half, half, 1)
            x = _shuffle(b, b.concat([b1, b2], f"{name}.cat"), name, cout, hw)
            cin = cout
    x = b.conv_bn_act(x, "conv5", cin, last, 1)
    x = b.node("ReduceMean", [x], "mean", axes=[2, 3], keepdims=0)
    out = b.gemm(x, "fc", last, 1000, out_name="output")
    size = SHUFFLENET_V2_SIZE
    return b.finish("shufflenet_v2", (1, 3, size, size), out, (1, 1000), __doc__ or "")
