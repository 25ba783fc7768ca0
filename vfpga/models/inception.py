"""Inception v3 (Szegedy et al., 2016), exactly as torchvision's ``inception_v3`` without
the auxiliary head, 299x299.

Every "BasicConv2d" is Conv (no bias) -> BatchNormalization (eps 0.001) -> Relu.

* Stem: Conv 3x3/2 (32) -> Conv 3x3 (32) -> Conv 3x3 pad 1 (64) -> MaxPool 3x3/2 ->
  Conv 1x1 (80) -> Conv 3x3 (192) -> MaxPool 3x3/2: 299 -> 149 -> 147 -> 147 -> 73 -> 73 ->
  71 -> 35.
* Mixed_5b/5c/5d (InceptionA, pool features 32, 64, 64; 35x35, 256/288/288 channels):
  1x1 (64) | 1x1 (48) -> 5x5 pad 2 (64) | 1x1 (64) -> 3x3 (96) -> 3x3 (96) |
  AveragePool 3x3/1 pad 1 -> 1x1 (pool features).
* Mixed_6a (InceptionB, 35 -> 17, 768): 3x3/2 (384) | 1x1 (64) -> 3x3 pad 1 (96) ->
  3x3/2 (96) | MaxPool 3x3/2.
* Mixed_6b..6e (InceptionC, c7 = 128, 160, 160, 192; 17x17, 768): 1x1 (192) |
  1x1 (c7) -> 1x7 (c7) -> 7x1 (192) | 1x1 (c7) -> 7x1 (c7) -> 1x7 (c7) -> 7x1 (c7) ->
  1x7 (192) | AveragePool 3x3/1 pad 1 -> 1x1 (192). (1x7 convs pad (0, 3), 7x1 pad (3, 0).)
* Mixed_7a (InceptionD, 17 -> 8, 1280): 1x1 (192) -> 3x3/2 (320) | 1x1 (192) -> 1x7 (192)
  -> 7x1 (192) -> 3x3/2 (192) | MaxPool 3x3/2.
* Mixed_7b/7c (InceptionE, 8x8, 2048): 1x1 (320) | 1x1 (384) -> [1x3 (384), 3x1 (384)] |
  1x1 (448) -> 3x3 pad 1 (384) -> [1x3 (384), 3x1 (384)] | AveragePool 3x3/1 pad 1 ->
  1x1 (192).
* Head: GlobalAveragePool -> Flatten -> Gemm 2048 -> 1000 (Dropout omitted: inference).

Branches are concatenated along channels in the order listed. Every AveragePool has
``count_include_pad=1`` (PyTorch ``F.avg_pool2d`` default: border windows divide by 9);
every MaxPool has no padding. Input ``input`` (1, 3, 299, 299); output ``output`` (1, 1000)
logits.
"""

from __future__ import annotations

import onnx

from vfpga.models._builder import GraphBuilder

#: BN epsilon of torchvision's BasicConv2d.
BN_EPS = 1e-3


class _Inception:
    def __init__(self, seed: int) -> None:
        self.b = GraphBuilder(seed)

    def conv(
        self,
        x: str,
        name: str,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        pad: int | tuple[int, int] = 0,
    ) -> str:
        return self.b.conv_bn_act(x, name, cin, cout, kernel, stride, pad, eps=BN_EPS)

    def block_a(self, x: str, name: str, cin: int, pool_features: int) -> tuple[str, int]:
        b1 = self.conv(x, f"{name}.branch1x1", cin, 64, 1)
        b5 = self.conv(x, f"{name}.branch5x5_1", cin, 48, 1)
        b5 = self.conv(b5, f"{name}.branch5x5_2", 48, 64, 5, pad=2)
        b3 = self.conv(x, f"{name}.branch3x3dbl_1", cin, 64, 1)
        b3 = self.conv(b3, f"{name}.branch3x3dbl_2", 64, 96, 3, pad=1)
        b3 = self.conv(b3, f"{name}.branch3x3dbl_3", 96, 96, 3, pad=1)
        bp = self.b.avg_pool(x, f"{name}.branch_pool.avg", 3, 1, 1)
        bp = self.conv(bp, f"{name}.branch_pool", cin, pool_features, 1)
        return self.b.concat([b1, b5, b3, bp], f"{name}.concat"), 64 + 64 + 96 + pool_features

    def block_b(self, x: str, name: str, cin: int) -> tuple[str, int]:
        b3 = self.conv(x, f"{name}.branch3x3", cin, 384, 3, stride=2)
        bd = self.conv(x, f"{name}.branch3x3dbl_1", cin, 64, 1)
        bd = self.conv(bd, f"{name}.branch3x3dbl_2", 64, 96, 3, pad=1)
        bd = self.conv(bd, f"{name}.branch3x3dbl_3", 96, 96, 3, stride=2)
        bp = self.b.max_pool(x, f"{name}.branch_pool", 3, 2)
        return self.b.concat([b3, bd, bp], f"{name}.concat"), 384 + 96 + cin

    def block_c(self, x: str, name: str, cin: int, c7: int) -> tuple[str, int]:
        b1 = self.conv(x, f"{name}.branch1x1", cin, 192, 1)
        b7 = self.conv(x, f"{name}.branch7x7_1", cin, c7, 1)
        b7 = self.conv(b7, f"{name}.branch7x7_2", c7, c7, (1, 7), pad=(0, 3))
        b7 = self.conv(b7, f"{name}.branch7x7_3", c7, 192, (7, 1), pad=(3, 0))
        bd = self.conv(x, f"{name}.branch7x7dbl_1", cin, c7, 1)
        bd = self.conv(bd, f"{name}.branch7x7dbl_2", c7, c7, (7, 1), pad=(3, 0))
        bd = self.conv(bd, f"{name}.branch7x7dbl_3", c7, c7, (1, 7), pad=(0, 3))
        bd = self.conv(bd, f"{name}.branch7x7dbl_4", c7, c7, (7, 1), pad=(3, 0))
        bd = self.conv(bd, f"{name}.branch7x7dbl_5", c7, 192, (1, 7), pad=(0, 3))
        bp = self.b.avg_pool(x, f"{name}.branch_pool.avg", 3, 1, 1)
        bp = self.conv(bp, f"{name}.branch_pool", cin, 192, 1)
        return self.b.concat([b1, b7, bd, bp], f"{name}.concat"), 4 * 192

    def block_d(self, x: str, name: str, cin: int) -> tuple[str, int]:
        b3 = self.conv(x, f"{name}.branch3x3_1", cin, 192, 1)
        b3 = self.conv(b3, f"{name}.branch3x3_2", 192, 320, 3, stride=2)
        b7 = self.conv(x, f"{name}.branch7x7x3_1", cin, 192, 1)
        b7 = self.conv(b7, f"{name}.branch7x7x3_2", 192, 192, (1, 7), pad=(0, 3))
        b7 = self.conv(b7, f"{name}.branch7x7x3_3", 192, 192, (7, 1), pad=(3, 0))
        b7 = self.conv(b7, f"{name}.branch7x7x3_4", 192, 192, 3, stride=2)
        bp = self.b.max_pool(x, f"{name}.branch_pool", 3, 2)
        return self.b.concat([b3, b7, bp], f"{name}.concat"), 320 + 192 + cin

    def block_e(self, x: str, name: str, cin: int) -> tuple[str, int]:
        b1 = self.conv(x, f"{name}.branch1x1", cin, 320, 1)
        b3 = self.conv(x, f"{name}.branch3x3_1", cin, 384, 1)
        b3a = self.conv(b3, f"{name}.branch3x3_2a", 384, 384, (1, 3), pad=(0, 1))
        b3b = self.conv(b3, f"{name}.branch3x3_2b", 384, 384, (3, 1), pad=(1, 0))
        bd = self.conv(x, f"{name}.branch3x3dbl_1", cin, 448, 1)
        bd = self.conv(bd, f"{name}.branch3x3dbl_2", 448, 384, 3, pad=1)
        bda = self.conv(bd, f"{name}.branch3x3dbl_3a", 384, 384, (1, 3), pad=(0, 1))
        bdb = self.conv(bd, f"{name}.branch3x3dbl_3b", 384, 384, (3, 1), pad=(1, 0))
        bp = self.b.avg_pool(x, f"{name}.branch_pool.avg", 3, 1, 1)
        bp = self.conv(bp, f"{name}.branch_pool", cin, 192, 1)
        out = self.b.concat([b1, b3a, b3b, bda, bdb, bp], f"{name}.concat")
        return out, 320 + 2 * 384 + 2 * 384 + 192

    def build(self) -> onnx.ModelProto:
        b = self.b
        x = self.conv("input", "Conv2d_1a_3x3", 3, 32, 3, stride=2)
        x = self.conv(x, "Conv2d_2a_3x3", 32, 32, 3)
        x = self.conv(x, "Conv2d_2b_3x3", 32, 64, 3, pad=1)
        x = b.max_pool(x, "maxpool1", 3, 2)
        x = self.conv(x, "Conv2d_3b_1x1", 64, 80, 1)
        x = self.conv(x, "Conv2d_4a_3x3", 80, 192, 3)
        x = b.max_pool(x, "maxpool2", 3, 2)
        c = 192
        x, c = self.block_a(x, "Mixed_5b", c, 32)
        x, c = self.block_a(x, "Mixed_5c", c, 64)
        x, c = self.block_a(x, "Mixed_5d", c, 64)
        x, c = self.block_b(x, "Mixed_6a", c)
        for name, c7 in (
            ("Mixed_6b", 128),
            ("Mixed_6c", 160),
            ("Mixed_6d", 160),
            ("Mixed_6e", 192),
        ):
            x, c = self.block_c(x, name, c, c7)
        x, c = self.block_d(x, "Mixed_7a", c)
        x, c = self.block_e(x, "Mixed_7b", c)
        x, c = self.block_e(x, "Mixed_7c", c)
        assert c == 2048
        x = b.flatten(b.global_avg_pool(x, "avgpool"), "flatten")
        out = b.gemm(x, "fc", 2048, 1000, out_name="output")
        return b.finish("inception_v3", (1, 3, 299, 299), out, (1, 1000), __doc__ or "")


def build_inception_v3(seed: int = 0) -> onnx.ModelProto:
    """Build Inception v3 (no aux head) with seeded He-initialised weights."""
    return _Inception(seed).build()
