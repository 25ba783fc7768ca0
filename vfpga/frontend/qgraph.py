"""The quantized graph: the plain-Python form of a `dnn` module.

The ONNX importer produces a :class:`QGraph`; it converts one-to-one to and from the
`dnn` xDSL dialect (``vfpga.dialects.dnn``), and the integer golden reference and the
compiler consume it. Tensors are int8 with per-tensor scale and zero point
(``real = scale * (q - zero_point)``); logical shapes are ONNX's NCHW. Weights are kept as
numpy arrays (raw bytes in the IR), never as Python lists.

Integer semantics shared by every stage (docs/quantization.md is the normative text):

* ``requant(acc, m, s) = round_half_to_even(acc * m / 2**s)`` computed exactly in integers
  (``acc`` int32, ``m`` int32 in ``[0, 2**31)``, ``s`` in ``[0, 62]``), then ``+ zero_point``
  and saturation to ``[-128, 127]``, then the activation clamp.
* Convolution: ``acc[n, oc, y, x] = bias[oc] + sum((in[n, ci, ...] - in_zp) * w[oc, ci, ...])``
  over the group's input channels and the kernel window; padding contributes zero
  (it is ``in_zp`` before the subtraction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ActKind = Literal["none", "relu", "relu6"]
PoolKind = Literal["max", "avg", "global_avg"]


@dataclass
class QTensor:
    """An int8 tensor of the graph with its quantization (``real = scale * (q - zp)``)."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int


@dataclass
class Act:
    """Activation after requantization: ``relu`` clamps below at ``lo`` (the output zero
    point), ``relu6`` clamps to ``[lo, hi]`` (``hi`` is 6.0 quantized)."""

    kind: ActKind = "none"
    lo: int = -128
    hi: int = 127


@dataclass
class QConv:
    """Quantized 2-D convolution with fused bias, per-output-channel requantization and
    activation. Fully connected layers are 1x1 (or HxW, after a flatten) convolutions.

    ``weight`` int8 ``[OC, IC/groups, KH, KW]``; ``bias``, ``multiplier``, ``shift`` int32
    ``[OC]``; ``pads`` ONNX order ``(top, left, bottom, right)``.
    """

    name: str
    input: str
    output: str
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    act: Act = field(default_factory=Act)


@dataclass
class QPool:
    """Max, average or global-average pooling. Max pooling keeps the input quantization
    (padding never wins a maximum). Average: ``acc = sum(in - in_zp)`` over the window,
    ``count`` is the window size if ``count_include_pad`` else the number of in-bounds
    elements, ``out = sat(out_zp + round_half_to_even(acc * multiplier / (count * 2**shift)))``.
    """

    name: str
    input: str
    output: str
    kind: PoolKind
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False
    multiplier: int = 1 << 30
    shift: int = 30


@dataclass
class QAdd:
    """Element-wise add of two int8 tensors of the same shape with their own quantization:
    ``out = act(sat(out_zp + round_half_to_even(((a - a_zp) * mult_a + (b - b_zp) * mult_b)
    / 2**shift)))``."""

    name: str
    a: str
    b: str
    output: str
    mult_a: int
    mult_b: int
    shift: int
    act: Act = field(default_factory=Act)


@dataclass
class QConcat:
    """Concatenation along channels. Every input has the output's scale and zero point
    (the importer inserts requantizing convolutions where they differ), so on the
    accelerator it costs nothing: producers write at channel offsets."""

    name: str
    inputs: list[str]
    output: str
    axis: int = 1


@dataclass
class QHostOp:
    """An op run on the host CPU in float32: inputs are dequantized, ``op_type`` (an ONNX
    op such as ``Softmax`` or ``LRN``) runs with ``attrs``, and the result is quantized
    with the output tensor's quantization (``output_float`` keeps it float32 instead, for
    a graph output)."""

    name: str
    op_type: str
    inputs: list[str]
    output: str
    attrs: dict[str, object] = field(default_factory=dict)
    output_float: bool = False


QNode = QConv | QPool | QAdd | QConcat | QHostOp


@dataclass
class QGraph:
    """A quantized network: the float input is quantized with ``tensors[inputs[0]]``'s
    quantization, nodes run in list order (topologically sorted), outputs are dequantized.

    ``output_shapes`` holds the ONNX shape of each graph output when it differs from the
    4-D tensor shape (for example ``(1, 1000)`` for a ``(1, 1000, 1, 1)`` classifier).
    """

    name: str
    inputs: list[str]
    outputs: list[str]
    tensors: dict[str, QTensor]
    nodes: list[QNode]
    output_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
