"""Blocks shared by the squeeze-excite networks (MobileNetV3, EfficientNet, RegNetY):
their activations and the squeeze-excite gate, written the way torchvision exports them.

* HardSwish: the opset-14 ``HardSwish`` op; HardSigmoid: ``HardSigmoid(alpha=1/6,
  beta=0.5)`` (PyTorch's ``hardsigmoid``); SiLU: ``x * Sigmoid(x)`` (PyTorch exports
  ``silu`` as ``Sigmoid`` then ``Mul``).
* Squeeze-excite (torchvision ``SqueezeExcitation``): ``GlobalAveragePool`` -> 1x1 conv
  with bias -> activation -> 1x1 conv with bias -> gate (Sigmoid or HardSigmoid) ->
  ``Mul(gate, x)``: the per-channel ``[1, C, 1, 1]`` gate first, broadcast over the map.
"""

from __future__ import annotations

from vfpga.models._builder import GraphBuilder

#: PyTorch's hardsigmoid: relu6(x + 3) / 6 = HardSigmoid(alpha=1/6, beta=0.5).
HARD_SIGMOID_ALPHA = 1.0 / 6.0


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: ``v`` rounded to a multiple of ``divisor``, not
    below ``divisor`` and not more than 10 % below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def activation(b: GraphBuilder, x: str, name: str, act: str | None) -> str:
    """``act`` of ``x``: ``"relu"``, ``"hswish"`` (HardSwish), ``"silu"`` (x *
    Sigmoid(x)), ``"hsigmoid"``, ``"sigmoid"`` or None (no node)."""
    if act is None:
        return x
    if act == "relu":
        return b.relu(x, f"{name}.relu")
    if act == "hswish":
        return b.node("HardSwish", [x], f"{name}.hswish")
    if act == "silu":
        return b.node("Mul", [x, b.node("Sigmoid", [x], f"{name}.silu.sigmoid")], f"{name}.silu")
    if act == "hsigmoid":
        return b.node("HardSigmoid", [x], f"{name}.hsigmoid", alpha=HARD_SIGMOID_ALPHA, beta=0.5)
    if act == "sigmoid":
        return b.node("Sigmoid", [x], f"{name}.sigmoid")
    raise ValueError(f"unknown activation {act!r}")


def conv_bn(
    b: GraphBuilder,
    x: str,
    name: str,
    cin: int,
    cout: int,
    kernel: int,
    stride: int = 1,
    group: int = 1,
    act: str | None = None,
) -> str:
    """Conv (no bias, padding ``kernel // 2``) -> BatchNormalization -> ``act``."""
    y = b.conv(x, f"{name}.conv", cin, cout, kernel, stride, kernel // 2, group)
    y = b.batch_norm(y, f"{name}.bn", cout)
    return activation(b, y, name, act)


def squeeze_excite(
    b: GraphBuilder, x: str, name: str, channels: int, squeeze: int, act: str, gate: str
) -> str:
    """``x * gate(fc2(act(fc1(GlobalAveragePool(x)))))`` with 1x1 convolutions with bias
    ``fc1`` (``channels -> squeeze``) and ``fc2`` (``squeeze -> channels``)."""
    s = b.global_avg_pool(x, f"{name}.avgpool")
    s = b.conv(s, f"{name}.fc1", channels, squeeze, 1, bias=True)
    s = activation(b, s, f"{name}.fc1", act)
    s = b.conv(s, f"{name}.fc2", squeeze, channels, 1, bias=True)
    s = activation(b, s, f"{name}.fc2", gate)
    return b.node("Mul", [s, x], f"{name}.mul")
