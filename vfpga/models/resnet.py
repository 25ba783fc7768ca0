"""ResNet-50 v1.5 (He et al., 2016; torchvision's variant with the stride on the 3x3 conv).

Stem: Conv 7x7/2 pad 3 (64) -> BN -> Relu -> MaxPool 3x3/2 pad 1. Four stages of
bottleneck blocks (3, 4, 6, 3 blocks; widths 64, 128, 256, 512; expansion 4): each block is
Conv 1x1 -> BN -> Relu -> Conv 3x3/s pad 1 -> BN -> Relu -> Conv 1x1 -> BN, plus a shortcut
(identity, or a projection Conv 1x1/s -> BN in the first block of each stage), joined by
``Add`` then ``Relu``. The first stage has stride 1, the others 2. Head: GlobalAveragePool ->
Flatten -> Gemm 2048 -> 1000. Convolutions have no bias. Input ``input`` (1, 3, 224, 224);
output ``output`` (1, 1000) logits.

Random-weight scaling: the last BN of an identity block's residual branch has gamma scaled by
0.3, and in a projection block both BNs feeding the Add by 1/sqrt(2), so activations do not
double at every one of the 16 joins.
"""

from __future__ import annotations

import math

import onnx

from vfpga.models._builder import GraphBuilder

#: (blocks, bottleneck width, stride of the first block) per stage.
RESNET50_STAGES: tuple[tuple[int, int, int], ...] = (
    (3, 64, 1),
    (4, 128, 2),
    (6, 256, 2),
    (3, 512, 2),
)
#: Gamma multiplier of the last BN of a residual branch that joins an identity shortcut.
RESIDUAL_GAMMA = 0.3


def build_resnet50(seed: int = 0) -> onnx.ModelProto:
    """Build ResNet-50 v1.5 with seeded He-initialised weights."""
    b = GraphBuilder(seed)
    x = b.conv_bn_act("input", "conv1", 3, 64, 7, stride=2, pad=3)
    x = b.max_pool(x, "maxpool", kernel=3, stride=2, pad=1)
    cin = 64
    for s, (blocks, width, first_stride) in enumerate(RESNET50_STAGES, start=1):
        for i in range(blocks):
            stride = first_stride if i == 0 else 1
            name = f"layer{s}.{i}"
            cout = width * 4
            project = stride != 1 or cin != cout
            last_gamma = 1 / math.sqrt(2) if project else RESIDUAL_GAMMA
            y = b.conv_bn_act(x, f"{name}.1", cin, width, 1)
            y = b.conv_bn_act(y, f"{name}.2", width, width, 3, stride=stride, pad=1)
            y = b.conv_bn_act(y, f"{name}.3", width, cout, 1, act=None, gain_scale=last_gamma)
            if project:
                sc = b.conv_bn_act(
                    x,
                    f"{name}.downsample",
                    cin,
                    cout,
                    1,
                    stride=stride,
                    act=None,
                    gain_scale=1 / math.sqrt(2),
                )
            else:
                sc = x
            x = b.relu(b.add(y, sc, f"{name}.add"), f"{name}.relu")
            cin = cout
    x = b.flatten(b.global_avg_pool(x, "avgpool"), "flatten")
    out = b.gemm(x, "fc", 2048, 1000, out_name="output")
    return b.finish("resnet50", (1, 3, 224, 224), out, (1, 1000), __doc__ or "")
