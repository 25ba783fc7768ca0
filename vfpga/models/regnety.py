"""A RegNetY-style squeeze-excite network (Radosavovic et al., 2020; torchvision's
``regnet_y_400mf`` with fewer blocks), at 160x160 input.

Stem Conv 3x3/2 (32) -> BN -> ReLU; four stages of Y blocks with the widths of
RegNetY-400MF (48, 104, 208, 440), depths 1, 2, 4, 2 (the original: 1, 3, 6, 6), group
width 8 and bottleneck ratio 1. A Y block (torchvision ``ResBottleneckBlock``): 1x1 Conv
-> BN -> ReLU, grouped 3x3 Conv (stride 2 in a stage's first block, ``width / 8``
groups) -> BN -> ReLU, squeeze-excite (squeeze width ``round(input width / 4)``, ReLU
inside, Sigmoid gate, ``Mul(gate, x)``), 1x1 Conv -> BN, ``Add`` with the shortcut (a
projecting 1x1/s Conv -> BN where the width or the resolution changes) -> ReLU. Head:
GlobalAveragePool -> Flatten -> Gemm (1000 logits). Opset 13. Input ``input``
(1, 3, 160, 160), output ``output`` (1, 1000) logits.
"""

from __future__ import annotations

import onnx

from vfpga.models._blocks import conv_bn, squeeze_excite
from vfpga.models._builder import GraphBuilder

#: (width, depth) per stage; every stage starts with a stride-2 block.
REGNETY_STAGES: tuple[tuple[int, int], ...] = ((48, 1), (104, 2), (208, 4), (440, 2))
GROUP_WIDTH = 8
INPUT_SIZE = 160


def build_regnety_style(seed: int = 0) -> onnx.ModelProto:
    """The RegNetY-style network (9 Y blocks, each with squeeze-excite), seeded weights."""
    b = GraphBuilder(seed)
    x = conv_bn(b, "input", "stem", 3, 32, 3, stride=2, act="relu")
    cin = 32
    for s, (w, depth) in enumerate(REGNETY_STAGES, start=1):
        for j in range(depth):
            name = f"stage{s}.{j}"
            st = 2 if j == 0 else 1
            short = x
            if st != 1 or cin != w:
                short = conv_bn(b, x, f"{name}.proj", cin, w, 1, stride=st)
            y = conv_bn(b, x, f"{name}.a", cin, w, 1, act="relu")
            y = conv_bn(b, y, f"{name}.b", w, w, 3, stride=st, group=w // GROUP_WIDTH, act="relu")
            y = squeeze_excite(b, y, f"{name}.se", w, round(cin / 4), "relu", "sigmoid")
            y = conv_bn(b, y, f"{name}.c", w, w, 1)
            x = b.relu(b.add(short, y, f"{name}.add"), f"{name}.relu")
            cin = w
    x = b.flatten(b.global_avg_pool(x, "avgpool"), "flatten")
    out = b.gemm(x, "fc", cin, 1000, out_name="output")
    return b.finish("regnety_style", (1, 3, INPUT_SIZE, INPUT_SIZE), out, (1, 1000), __doc__ or "")
