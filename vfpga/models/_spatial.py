"""Layers of the dense-prediction builders (:mod:`vfpga.models.yolo`,
:mod:`vfpga.models.deeplab`, :mod:`vfpga.models.unet`) on top of
:class:`vfpga.models._builder.GraphBuilder`: dilated convolutions, SiLU written as
``x * Sigmoid(x)`` (as PyTorch exports ``nn.SiLU``), ``Resize`` as ``F.interpolate``
exports it, ``ConvTranspose``, and models with several outputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from vfpga.models._builder import GraphBuilder


def conv(b: GraphBuilder, x: str, name: str, cin: int, cout: int, k: int, stride: int = 1,
         dilation: int = 1, bias: bool = False) -> str:
    """``Conv`` with He-normal weights, "same" padding ``dilation * (k - 1) / 2`` for odd
    ``k`` (``(k - 1) / 2`` scaled by the dilation, as PyTorch's ``padding=dilation``)."""
    w = b.he_normal((cout, cin, k, k), fan_in=cin * k * k)
    inputs = [x, b.const(f"{name}.weight", w)]
    if bias:
        inputs.append(b.const(f"{name}.bias",
                              b.rng.normal(0.0, 0.05, size=cout).astype(np.float32)))
    p = dilation * (k - 1) // 2
    return b.node("Conv", inputs, name, kernel_shape=[k, k], strides=[stride, stride],
                  pads=[p, p, p, p], dilations=[dilation, dilation], group=1)


def conv_bn(b: GraphBuilder, x: str, name: str, cin: int, cout: int, k: int, stride: int = 1,
            dilation: int = 1, act: str | None = "relu") -> str:
    """Conv -> BatchNormalization -> ``act``: ``"relu"``, ``"silu"`` (``x * Sigmoid(x)``)
    or None."""
    y = conv(b, x, f"{name}.conv", cin, cout, k, stride, dilation)
    y = b.batch_norm(y, f"{name}.bn", cout)
    if act == "relu":
        return b.relu(y, f"{name}.relu")
    if act == "silu":
        s = b.node("Sigmoid", [y], f"{name}.sigmoid")
        return b.node("Mul", [y, s], f"{name}.silu")
    if act is not None:
        raise ValueError(f"unknown activation {act!r}")
    return y


def resize(b: GraphBuilder, x: str, name: str, *, factor: int | None = None,
           size: tuple[int, int, int] | None = None, mode: str = "nearest",
           coordinate_mode: str = "asymmetric", nearest_mode: str = "floor") -> str:
    """``Resize`` by an integer ``factor`` (a ``scales`` input, as ``nn.Upsample(
    scale_factor=2)`` exports it: nearest, asymmetric, floor) or to ``size = (C, H, W)``
    (a ``sizes`` input, as ``F.interpolate(size=...)`` exports it)."""
    attrs: dict[str, str] = {"mode": mode, "coordinate_transformation_mode": coordinate_mode}
    if mode == "nearest":
        attrs["nearest_mode"] = nearest_mode
    if factor is not None:
        sc = b.const(f"{name}.scales", np.array([1, 1, factor, factor], np.float32))
        return b.node("Resize", [x, "", sc], name, **attrs)
    assert size is not None
    sz = b.const(f"{name}.sizes", np.array([1, *size], np.int64))
    return b.node("Resize", [x, "", "", sz], name, **attrs)


def conv_transpose(b: GraphBuilder, x: str, name: str, cin: int, cout: int, k: int,
                   stride: int, pad: int = 0, output_padding: int = 0) -> str:
    """``ConvTranspose`` (weights ``[cin, cout, k, k]``, He-normal, bias N(0, 0.05²))."""
    w = b.he_normal((cin, cout, k, k), fan_in=cin * k * k // (stride * stride))
    bias = b.rng.normal(0.0, 0.05, size=cout).astype(np.float32)
    return b.node("ConvTranspose", [x, b.const(f"{name}.weight", w),
                                    b.const(f"{name}.bias", bias)], name,
                  kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                  output_padding=[output_padding] * 2)


def finish_outputs(b: GraphBuilder, graph_name: str, input_shape: Sequence[int],
                   outputs: Sequence[tuple[str, Sequence[int]]], doc: str) -> onnx.ModelProto:
    """:meth:`GraphBuilder.finish` for a model with several outputs, in order."""
    (first, first_shape), rest = outputs[0], outputs[1:]
    model = b.finish(graph_name, input_shape, first, first_shape, doc)
    names = {n for n, _ in rest}
    keep = [vi for vi in model.graph.value_info if vi.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    for n, shape in rest:
        model.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT,
                                                                list(shape)))
    return model
