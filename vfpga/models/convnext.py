"""A ConvNeXt-T-style network (Liu et al., 2022), small enough for ``vfpga check``.

ConvNeXt-T's block types and layer kinds at a smaller depth and input: patchify stem
``Conv 4x4/4`` (bias) -> channels-first LayerNorm; four stages of widths 96, 192, 384, 768
with :data:`CONVNEXT_DEPTHS` blocks (ConvNeXt-T has 3, 3, 9, 3); before stages 2-4 a
downsampling LayerNorm -> ``Conv 2x2/2``. A block: depthwise ``Conv 7x7`` (pad 3, bias) ->
``Transpose`` to NHWC -> ``LayerNormalization`` -> pointwise MLP ``Linear(C, 4C)`` -> GELU
(Erf form) -> ``Linear(4C, C)`` (``MatMul`` + ``Add`` over the channel axis, as PyTorch
exports ``nn.Linear`` on NHWC) -> layer scale (``Mul`` by a per-channel gamma) ->
``Transpose`` back -> residual ``Add``. Head: ``ReduceMean`` over H, W -> LayerNorm ->
``Gemm`` to 1000 logits. Channels-first LayerNorms are ``Transpose`` -> LayerNorm ->
``Transpose`` (timm's ``LayerNorm2d`` export). Opset 17 (LayerNormalization); input
``input`` (1, 3, 128, 128); output ``output`` (1, 1000) logits. Layer-scale gammas ~
U(0.3, 0.6) (ConvNeXt initialises them at 1e-6, which would make random blocks identities).
"""

from __future__ import annotations

import numpy as np
import onnx

from vfpga.models._xfmr import XFMR_OPSET, XfmrBuilder

#: Blocks per stage (ConvNeXt-T: 3, 3, 9, 3).
CONVNEXT_DEPTHS: tuple[int, ...] = (1, 1, 2, 1)
#: Channels per stage (those of ConvNeXt-T).
CONVNEXT_DIMS: tuple[int, ...] = (96, 192, 384, 768)
#: Input side (ConvNeXt-T: 224).
CONVNEXT_SIZE = 128


def build_convnext_t(seed: int = 0) -> onnx.ModelProto:
    """Build the ConvNeXt-T-style network with seeded weights."""
    b = XfmrBuilder(seed)
    d0 = CONVNEXT_DIMS[0]
    x = b.conv("input", "stem.conv", 3, d0, 4, stride=4, bias=True)
    x = b.layer_norm_2d(x, "stem.norm", d0)
    cin = d0
    for s, (depth, dim) in enumerate(zip(CONVNEXT_DEPTHS, CONVNEXT_DIMS, strict=True)):
        if s:
            x = b.layer_norm_2d(x, f"stages.{s}.downsample.norm", cin)
            x = b.conv(x, f"stages.{s}.downsample.conv", cin, dim, 2, stride=2, bias=True)
        for i in range(depth):
            p = f"stages.{s}.blocks.{i}"
            y = b.conv(x, f"{p}.dwconv", dim, dim, 7, pad=3, group=dim, bias=True)
            y = b.node("Transpose", [y], f"{p}.to_nhwc", perm=[0, 2, 3, 1])
            y = b.layer_norm(y, f"{p}.norm", dim)
            y = b.linear(y, f"{p}.pwconv1", dim, 4 * dim, gain=2.0)
            y = b.gelu(y, f"{p}.act")
            y = b.linear(y, f"{p}.pwconv2", 4 * dim, dim)
            gamma = b.rng.uniform(0.3, 0.6, dim).astype(np.float32)
            y = b.node("Mul", [y, b.const(f"{p}.gamma", gamma)], f"{p}.layer_scale")
            y = b.node("Transpose", [y], f"{p}.to_nchw", perm=[0, 3, 1, 2])
            x = b.add(x, y, f"{p}.add")
        cin = dim
    x = b.node("ReduceMean", [x], "head.pool", axes=[2, 3], keepdims=0)
    x = b.layer_norm(x, "head.norm", cin)
    out = b.gemm(x, "head.fc", cin, 1000, out_name="output")
    size = CONVNEXT_SIZE
    return b.finish(
        "convnext_t", (1, 3, size, size), out, (1, 1000), __doc__ or "", opset=XFMR_OPSET
    )
