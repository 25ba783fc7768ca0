"""A U-Net (Ronneberger et al., 2015) at 128x128 with widths 8-16-32-64 and a 128-channel
bottleneck: four encoder stages of two 3x3 Conv -> BN -> ReLU then MaxPool 2x2, a
bottleneck, and four decoder stages that upsample with ``ConvTranspose`` (kernel 2,
stride 2), concatenate the encoder's skip connection and apply two 3x3 Conv -> BN ->
ReLU; a 1x1 classifier (2 classes). Input ``input`` (1, 3, 128, 128); output ``output``
(1, 2, 128, 128) logits.
"""

from __future__ import annotations

import onnx

from vfpga.models._builder import GraphBuilder
from vfpga.models._spatial import conv, conv_bn, conv_transpose, finish_outputs

#: Channels of the encoder stages (the bottleneck has twice the last).
WIDTHS = (8, 16, 32, 64)
#: Segmentation classes.
CLASSES = 2


def _double(b: GraphBuilder, x: str, name: str, cin: int, cout: int) -> str:
    return conv_bn(b, conv_bn(b, x, f"{name}.0", cin, cout, 3), f"{name}.1", cout, cout, 3)


def build_unet(seed: int = 0) -> onnx.ModelProto:
    """Build the U-Net with seeded He-initialised weights."""
    b = GraphBuilder(seed)
    x, cin, skips = "input", 3, []
    for i, c in enumerate(WIDTHS):
        x = _double(b, x, f"enc{i + 1}", cin, c)
        skips.append((x, c))
        x = b.max_pool(x, f"pool{i + 1}", 2, 2)
        cin = c
    x = _double(b, x, "bottleneck", cin, 2 * cin)
    cin *= 2
    for i, (skip, c) in reversed(list(enumerate(skips))):
        up = conv_transpose(b, x, f"up{i + 1}", cin, c, 2, 2)
        x = _double(b, b.concat([up, skip], f"dec{i + 1}.cat"), f"dec{i + 1}", 2 * c, c)
        cin = c
    out = conv(b, x, "output", cin, CLASSES, 1, bias=True)
    return finish_outputs(b, "unet", (1, 3, 128, 128), [(out, (1, CLASSES, 128, 128))],
                          __doc__ or "")
