"""MobileNet v1, width multiplier 1.0, 224x224 (Howard et al., 2017, Table 1).

Conv 3x3/2 (32) -> 13 depthwise-separable blocks, each a depthwise Conv 3x3 (group = C,
pad 1, stride 1 or 2) -> BN -> ReLU6 then a pointwise Conv 1x1 -> BN -> ReLU6, with pointwise
widths 64, 128, 128, 256, 256, 512 x6, 1024, 1024 and depthwise strides 1, 2, 1, 2, 1, 2,
1 x5, 2, 1 (the last depthwise stride is 1, as in every implementation; the paper's table
says 2 but its 7x7 output size implies 1). Head: GlobalAveragePool -> Flatten -> Gemm
1024 -> 1000. ReLU6 is ``Clip(x, 0, 6)`` with min/max as inputs (opset 13). Padding is
symmetric 1 (PyTorch style; TF "SAME" pads the stride-2 layers only at bottom/right, the
output sizes are the same). Convolutions have no bias. Input ``input`` (1, 3, 224, 224);
output ``output`` (1, 1000) logits.
"""

from __future__ import annotations

import onnx

from vfpga.models._builder import GraphBuilder

#: (depthwise stride, pointwise output channels) per depthwise-separable block.
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),
    (1, 1024),
)


def build_mobilenet_v1(seed: int = 0) -> onnx.ModelProto:
    """Build MobileNet v1 (1.0, 224) with seeded He-initialised weights."""
    b = GraphBuilder(seed)
    x = b.conv_bn_act("input", "conv0", 3, 32, 3, stride=2, pad=1, act="relu6")
    cin = 32
    for i, (stride, cout) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        x = b.conv_bn_act(
            x, f"block{i}.dw", cin, cin, 3, stride=stride, pad=1, group=cin, act="relu6"
        )
        x = b.conv_bn_act(x, f"block{i}.pw", cin, cout, 1, act="relu6")
        cin = cout
    x = b.flatten(b.global_avg_pool(x, "avgpool"), "flatten")
    out = b.gemm(x, "fc", 1024, 1000, out_name="output")
    return b.finish("mobilenet_v1", (1, 3, 224, 224), out, (1, 1000), __doc__ or "")
