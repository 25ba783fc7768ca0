"""A ViT-Ti/16-style network (Dosovitskiy et al., 2021; DeiT-Ti widths), small enough for
``vfpga check``.

Patch embedding ``Conv 16x16/16`` (3 -> 192, bias) -> ``Reshape`` to (1, 192, T) ->
``Transpose`` to tokens (1, T, 192); a class token (``Concat`` of a constant) and a
position embedding (``Add`` of a constant); :data:`VIT_DEPTH` pre-norm blocks (ViT-Ti has
12): ``x + proj(MHSA(LN(x)))`` then ``x + fc2(GELU(fc1(LN(x))))`` with 3 heads of 64,
MLP width 768, linear layers as ``MatMul`` + ``Add`` (PyTorch's export on a 3-D input),
attention as timm writes it (``Reshape`` to (1, T, 3, 3, 64), ``Transpose``, ``Gather`` of
q, k, v, ``MatMul``, ``Mul`` by 1/8, ``Softmax``, ``MatMul``, ``Transpose``, ``Reshape``),
GELU in its Erf form. Head: final LayerNorm -> class token (``Gather``) -> ``Gemm`` to
1000 logits. Opset 17; input ``input`` (1, 3, 128, 128) (64 patches + the class token:
65 tokens); output ``output`` (1, 1000) logits. The class token and position embedding
are drawn from N(0, 0.5²) (ViT's 0.02 would make them vanish next to the patch features).
"""

from __future__ import annotations

import numpy as np
import onnx

from vfpga.models._xfmr import XFMR_OPSET, XfmrBuilder

#: Transformer blocks (ViT-Ti: 12).
VIT_DEPTH = 4
#: Embedding width, heads and MLP width of ViT-Ti.
VIT_DIM, VIT_HEADS, VIT_MLP = 192, 3, 768
#: Input side (ViT-Ti/16: 224) and patch size.
VIT_SIZE, VIT_PATCH = 128, 16


def build_vit_ti16(seed: int = 0) -> onnx.ModelProto:
    """Build the ViT-Ti/16-style network with seeded weights."""
    b = XfmrBuilder(seed)
    d, h = VIT_DIM, VIT_HEADS
    hd = d // h
    n = (VIT_SIZE // VIT_PATCH) ** 2
    t = n + 1
    x = b.conv("input", "patch_embed.proj", 3, d, VIT_PATCH, stride=VIT_PATCH, bias=True)
    x = b.node(
        "Reshape",
        [x, b.const("patch_embed.shape", np.array([1, d, n], np.int64))],
        "patch_embed.flatten",
    )
    x = b.node("Transpose", [x], "patch_embed.transpose", perm=[0, 2, 1])
    cls = b.const("cls_token", b.rng.normal(0.0, 0.5, (1, 1, d)).astype(np.float32))
    x = b.node("Concat", [cls, x], "cls_concat", axis=1)
    pos = b.const("pos_embed", b.rng.normal(0.0, 0.5, (1, t, d)).astype(np.float32))
    x = b.node("Add", [x, pos], "pos_add")
    qkv_shape = b.const("attn.qkv_shape", np.array([1, t, 3, h, hd], np.int64))
    out_shape = b.const("attn.out_shape", np.array([1, t, d], np.int64))
    scale = b.const("attn.scale", np.array(hd**-0.5, np.float32))
    for i in range(VIT_DEPTH):
        p = f"blocks.{i}"
        y = b.layer_norm(x, f"{p}.norm1", d)
        y = b.linear(y, f"{p}.attn.qkv", d, 3 * d)
        y = b.node("Reshape", [y, qkv_shape], f"{p}.attn.reshape")
        y = b.node("Transpose", [y], f"{p}.attn.permute", perm=[2, 0, 3, 1, 4])
        qkv = [
            b.node(
                "Gather",
                [y, b.const(f"{p}.attn.idx{j}", np.array(j, np.int64))],
                f"{p}.attn.{nm}",
                axis=0,
            )
            for j, nm in enumerate("qkv")
        ]
        kt = b.node("Transpose", [qkv[1]], f"{p}.attn.kt", perm=[0, 1, 3, 2])
        a = b.node("MatMul", [qkv[0], kt], f"{p}.attn.qk")
        a = b.node("Mul", [a, scale], f"{p}.attn.scaled")
        a = b.node("Softmax", [a], f"{p}.attn.softmax", axis=-1)
        y = b.node("MatMul", [a, qkv[2]], f"{p}.attn.av")
        y = b.node("Transpose", [y], f"{p}.attn.merge", perm=[0, 2, 1, 3])
        y = b.node("Reshape", [y, out_shape], f"{p}.attn.out")
        y = b.linear(y, f"{p}.attn.proj", d, d)
        x = b.add(x, y, f"{p}.add1")
        y = b.layer_norm(x, f"{p}.norm2", d)
        y = b.linear(y, f"{p}.mlp.fc1", d, VIT_MLP, gain=2.0)
        y = b.gelu(y, f"{p}.mlp.act")
        y = b.linear(y, f"{p}.mlp.fc2", VIT_MLP, d)
        x = b.add(x, y, f"{p}.add2")
    x = b.layer_norm(x, "norm", d)
    x = b.node("Gather", [x, b.const("cls_index", np.array(0, np.int64))], "cls_pool", axis=1)
    out = b.gemm(x, "head", d, 1000, out_name="output")
    size = VIT_SIZE
    return b.finish("vit_ti16", (1, 3, size, size), out, (1, 1000), __doc__ or "", opset=XFMR_OPSET)
