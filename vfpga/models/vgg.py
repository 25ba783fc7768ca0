"""VGG-16 (Simonyan & Zisserman, 2015, configuration "D"), with batch normalization.

Layers: 13 convolutions 3x3 / stride 1 / pad 1 with bias, each followed by
BatchNormalization and Relu (the ``vgg16_bn`` variant of torchvision: BN is there so BN
folding is exercised), five MaxPool 2x2 / stride 2 after conv blocks 2, 2, 3, 3, 3; then
Flatten (512 x 7 x 7 = 25088) and three Gemm layers 25088 -> 4096 -> 4096 -> 1000 with Relu
between them (Dropout omitted: inference). Input ``input`` (1, 3, 224, 224); output
``output`` (1, 1000) logits.
"""

from __future__ import annotations

import onnx

from vfpga.models._builder import GraphBuilder

#: Output channels per conv; "M" is a 2x2 max pool.
VGG16_CFG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def build_vgg16(seed: int = 0) -> onnx.ModelProto:
    """Build VGG-16 (with BN) with seeded He-initialised weights."""
    b = GraphBuilder(seed)
    x, cin, block, idx = "input", 3, 1, 1
    for item in VGG16_CFG:
        if item == "M":
            x = b.max_pool(x, f"pool{block}", kernel=2, stride=2)
            block, idx = block + 1, 1
            continue
        cout = int(item)
        x = b.conv_bn_act(x, f"conv{block}_{idx}", cin, cout, 3, 1, 1, bias=True)
        cin, idx = cout, idx + 1
    x = b.flatten(x, "flatten")
    x = b.relu(b.gemm(x, "fc6", 512 * 7 * 7, 4096), "fc6.relu")
    x = b.relu(b.gemm(x, "fc7", 4096, 4096), "fc7.relu")
    out = b.gemm(x, "fc8", 4096, 1000, out_name="output")
    return b.finish("vgg16", (1, 3, 224, 224), out, (1, 1000), __doc__ or "")
