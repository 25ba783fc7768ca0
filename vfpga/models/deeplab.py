"""A DeepLabV3-style segmentation net (128x128 input, output stride 16): a residual
backbone whose last stage replaces its stride by dilation 2 (``replace_stride_with_
dilation``), the ASPP head of torchvision's ``DeepLabHead`` (a 1x1 branch, three 3x3
branches with dilation 6, 12 and 18, and a global pooling branch: GlobalAveragePool ->
1x1 conv -> bilinear ``Resize`` back to the map size; Concat; 1x1 projection), a 3x3
conv and a 1x1 classifier (6 classes), then a bilinear ``Resize`` to the input size
(``F.interpolate(size=..., mode="bilinear", align_corners=False)``: pytorch_half_pixel).
Every conv is Conv -> BN -> ReLU except the classifier. Input ``input`` (1, 3, 128, 128);
output ``output`` (1, 6, 128, 128) logits.
"""

from __future__ import annotations

import onnx

from vfpga.models._builder import GraphBuilder
from vfpga.models._spatial import conv, conv_bn, finish_outputs, resize

#: Segmentation classes.
CLASSES = 6
#: Dilations of the ASPP 3x3 branches (torchvision's DeepLabV3 at output stride 8 uses
#: 12, 24, 36; at 16, the paper's 6, 12, 18).
ASPP_RATES = (6, 12, 18)


def _block(b: GraphBuilder, x: str, name: str, c: int, dilation: int = 1) -> str:
    """A residual basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN, Add, ReLU."""
    y = conv_bn(b, x, f"{name}.c1", c, c, 3, dilation=dilation)
    y = conv_bn(b, y, f"{name}.c2", c, c, 3, dilation=dilation, act=None)
    return b.relu(b.add(x, y, f"{name}.add"), f"{name}.relu")


def build_deeplab_v3(seed: int = 0) -> onnx.ModelProto:
    """Build the DeepLabV3-style net with seeded He-initialised weights."""
    b = GraphBuilder(seed)
    x = conv_bn(b, "input", "stem", 3, 16, 3, 2)  # 64x64
    x = conv_bn(b, x, "layer1.down", 16, 32, 3, 2)  # 32x32
    x = _block(b, x, "layer1.0", 32)
    x = conv_bn(b, x, "layer2.down", 32, 64, 3, 2)  # 16x16
    x = _block(b, x, "layer2.0", 64)
    x = conv_bn(b, x, "layer3.down", 64, 96, 3, 2)  # 8x8: output stride 16
    x = _block(b, x, "layer3.0", 96)
    x = _block(b, x, "layer4.0", 96, dilation=2)  # stride replaced by dilation
    x = _block(b, x, "layer4.1", 96, dilation=2)
    branches = [conv_bn(b, x, "aspp.b0", 96, 64, 1)]
    for i, rate in enumerate(ASPP_RATES, start=1):
        branches.append(conv_bn(b, x, f"aspp.b{i}", 96, 64, 3, dilation=rate))
    pooled = conv_bn(b, b.global_avg_pool(x, "aspp.pool.gap"), "aspp.pool", 96, 64, 1)
    branches.append(resize(b, pooled, "aspp.pool.up", size=(64, 8, 8), mode="linear",
                           coordinate_mode="pytorch_half_pixel"))
    y = conv_bn(b, b.concat(branches, "aspp.cat"), "aspp.project", 5 * 64, 64, 1)
    y = conv_bn(b, y, "head.conv", 64, 64, 3)
    y = conv(b, y, "head.classifier", 64, CLASSES, 1, bias=True)
    out = resize(b, y, "output", size=(CLASSES, 128, 128), mode="linear",
                 coordinate_mode="pytorch_half_pixel")
    return finish_outputs(b, "deeplab_v3", (1, 3, 128, 128), [(out, (1, CLASSES, 128, 128))],
                          __doc__ or "")
