"""A YOLO-nano-style detector (YOLOv5n layout at width 16, 128x128 input): every
convolution is Conv -> BN -> SiLU (``x * Sigmoid(x)``); a backbone of stride-2
convolutions and C3 blocks (two 1x1 branches, a residual bottleneck, concat, 1x1); SPPF
(three chained MaxPool 5x5 / stride 1, concatenated with their input); a PAN neck with two
nearest 2x ``Resize`` (``nn.Upsample(scale_factor=2)``: asymmetric, floor) and four
Concats; three 1x1 detection heads (3 anchors x (5 + 8 classes) = 39 channels) at strides
8, 16 and 32. Input ``input`` (1, 3, 128, 128); outputs ``det_p3`` (1, 39, 16, 16),
``det_p4`` (1, 39, 8, 8), ``det_p5`` (1, 39, 4, 4), raw head outputs (no decoding, no
NMS).
"""

from __future__ import annotations

import onnx

from vfpga.models._builder import GraphBuilder
from vfpga.models._spatial import conv, conv_bn, finish_outputs, resize

#: Channels of each head's output: 3 anchors x (4 box + 1 objectness + 8 classes).
HEAD_CHANNELS = 3 * (5 + 8)


def _c3(b: GraphBuilder, x: str, name: str, cin: int, cout: int, shortcut: bool = True) -> str:
    """C3: ``cv1`` / ``cv2`` 1x1 to ``cout/2``, one bottleneck (1x1, 3x3, residual Add when
    ``shortcut``) on ``cv1``, Concat, 1x1 to ``cout``."""
    h = cout // 2
    a = conv_bn(b, x, f"{name}.cv1", cin, h, 1, act="silu")
    c = conv_bn(b, x, f"{name}.cv2", cin, h, 1, act="silu")
    m = conv_bn(b, a, f"{name}.m.cv1", h, h, 1, act="silu")
    m = conv_bn(b, m, f"{name}.m.cv2", h, h, 3, act="silu")
    if shortcut:
        m = b.add(a, m, f"{name}.m.add")
    return conv_bn(b, b.concat([m, c], f"{name}.cat"), f"{name}.cv3", cout, cout, 1, act="silu")


def _sppf(b: GraphBuilder, x: str, name: str, c: int) -> str:
    h = c // 2
    y0 = conv_bn(b, x, f"{name}.cv1", c, h, 1, act="silu")
    y1 = b.max_pool(y0, f"{name}.pool1", 5, 1, 2)
    y2 = b.max_pool(y1, f"{name}.pool2", 5, 1, 2)
    y3 = b.max_pool(y2, f"{name}.pool3", 5, 1, 2)
    return conv_bn(b, b.concat([y0, y1, y2, y3], f"{name}.cat"), f"{name}.cv2", 4 * h, c, 1,
                   act="silu")


def build_yolo_nano(seed: int = 0) -> onnx.ModelProto:
    """Build the YOLO-nano-style detector with seeded He-initialised weights."""
    b = GraphBuilder(seed)
    x = conv_bn(b, "input", "stem", 3, 16, 3, 2, act="silu")  # 64x64
    x = conv_bn(b, x, "down1", 16, 32, 3, 2, act="silu")  # 32x32
    x = _c3(b, x, "c3_1", 32, 32)
    x = conv_bn(b, x, "down2", 32, 64, 3, 2, act="silu")  # 16x16
    p3 = _c3(b, x, "c3_2", 64, 64)
    x = conv_bn(b, p3, "down3", 64, 128, 3, 2, act="silu")  # 8x8
    p4 = _c3(b, x, "c3_3", 128, 128)
    x = conv_bn(b, p4, "down4", 128, 128, 3, 2, act="silu")  # 4x4
    x = _c3(b, x, "c3_4", 128, 128)
    p5 = _sppf(b, x, "sppf", 128)
    # PAN neck: top-down with nearest upsampling, then bottom-up
    h1 = conv_bn(b, p5, "neck.lat1", 128, 64, 1, act="silu")  # 4x4
    u1 = resize(b, h1, "neck.up1", factor=2)  # 8x8
    h2 = _c3(b, b.concat([u1, p4], "neck.cat1"), "neck.c3_1", 192, 64, shortcut=False)
    h3 = conv_bn(b, h2, "neck.lat2", 64, 32, 1, act="silu")  # 8x8
    u2 = resize(b, h3, "neck.up2", factor=2)  # 16x16
    o3 = _c3(b, b.concat([u2, p3], "neck.cat2"), "neck.c3_2", 96, 32, shortcut=False)
    d1 = conv_bn(b, o3, "neck.down1", 32, 32, 3, 2, act="silu")  # 8x8
    o4 = _c3(b, b.concat([d1, h3], "neck.cat3"), "neck.c3_3", 64, 64, shortcut=False)
    d2 = conv_bn(b, o4, "neck.down2", 64, 64, 3, 2, act="silu")  # 4x4
    o5 = _c3(b, b.concat([d2, h1], "neck.cat4"), "neck.c3_4", 128, 128, shortcut=False)
    outs = []
    for i, (o, c, s) in enumerate(((o3, 32, 16), (o4, 64, 8), (o5, 128, 4)), start=3):
        outs.append((conv(b, o, f"det_p{i}", c, HEAD_CHANNELS, 1, bias=True),
                     (1, HEAD_CHANNELS, s, s)))
    return finish_outputs(b, "yolo_nano", (1, 3, 128, 128), outs, __doc__ or "")
