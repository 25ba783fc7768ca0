"""The quantized graph: the plain-Python form of a `dnn` module.

The ONNX importer produces a :class:`QGraph`; it converts one-to-one to and from the
`dnn` xDSL dialect (``vfpga.dialects.dnn``), and the golden reference and the compiler
consume it. Tensors are int8 with per-tensor scale and zero point
(``real = scale * (q - zero_point)``); logical shapes are ONNX's NCHW. Weights are kept as
numpy arrays (raw bytes in the IR), never as Python lists.

Arithmetic shared by every stage (ISA version 2; docs/quantization.md is the normative
text). Accumulation is exact in integers; requantization runs in IEEE-754 binary32 steps,
each rounded to nearest with ties to even, the way ONNX Runtime's integer kernels do.
Notation: ``f32(x)`` the binary32 value nearest to ``x``; ``fma(a, b, c) = f32(a*b + c)``
with one rounding (:func:`vfpga.isa.float32.fma_f32`); ``rne`` round half to even to an
integer; ``sat8(v) = clip(v, -128, 127)``; ``act`` the activation clamp.

* Convolution: ``acc[n, oc, y, x] = bias[oc] + sum((in[n, ci, ...] - in_zp) * w[oc, ci, ...])``
  over the group's input channels and the kernel window (int32; padding contributes zero,
  it is ``in_zp`` before the subtraction); ``v = f32(f32(f32(acc) * scale[oc]) / divisor)``
  with ``scale[oc] = requant_scale(multiplier[oc], shift[oc])`` (the binary32 value nearest
  to ``multiplier / 2**shift``, :func:`vfpga.isa.float32.requant_scale`);
  ``out = act(sat8(out_zp + rne(v)))``.
* Add: ``out = act(sat8(rne(fma(ua, scale_a, fma(ub, scale_b, offset))) - 128))`` on the
  biased operands ``ua = a + 128``, ``ub = b + 128``; Mul / Sub: the dequantized operands'
  float32 product / difference divided by the output scale (see :class:`QAdd`).
* Average pools: float32 sums of dequantized values with the tensors' own scales (see
  :class:`QPool`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ActKind = Literal["none", "relu", "relu6", "table"]
PoolKind = Literal["max", "avg", "global_avg"]
EltKind = Literal["add", "mul", "sub"]
#: The element-wise operations of :class:`QAdd` (``dnn.add``'s ``op``).
ELT_KINDS: tuple[EltKind, ...] = ("add", "mul", "sub")


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
    point), ``relu6`` clamps to ``[lo, hi]`` (``hi`` is 6.0 quantized); ``table`` (QConv
    only) maps each saturated int8 value ``y`` to ``table[y + 128]`` (256 int8 entries:
    an element-wise function such as sigmoid or hard-swish from the conv's intermediate
    quantization to the output's, built by :mod:`vfpga.frontend.act_tables`); then
    ``lo == hi`` is the zero point of that intermediate quantization, the one the
    requantization adds (:meth:`stage_zp`)."""

    kind: ActKind = "none"
    lo: int = -128
    hi: int = 127
    table: tuple[int, ...] = ()

    def stage_zp(self, out_zp: int) -> int:
        """The zero point the requantization adds before the activation: the output's
        ``out_zp``, or with a ``table`` the intermediate one (``lo``)."""
        return self.lo if self.kind == "table" else out_zp


@dataclass
class QConv:
    """Quantized 2-D convolution with fused bias, per-output-channel requantization and
    activation. Fully connected layers are 1x1 (or HxW, after a flatten) convolutions.

    ``weight`` int8 ``[OC, IC/groups, KH, KW]``; ``bias``, ``multiplier``, ``shift`` int32
    ``[OC]`` (multiplier in ``[0, 2**31)``, shift in ``[0, 62]``); ``pads`` ONNX order
    ``(top, left, bottom, right)``; ``divisor`` a finite positive float32 value.

    ``acc = bias[oc] + sum((in - in_zp) * weight)`` (int32), then
    ``v = f32(f32(f32(acc) * scale[oc]) / divisor)`` with
    ``scale[oc] = requant_scale(multiplier[oc], shift[oc])``, and
    ``out = act(sat8(out_zp + rne(v)))`` (saturation in float, so ``v = +-inf`` saturates).

    With ``divisor = 1.0`` the division is exact and ``v = f32(f32(acc) * scale[oc])``:
    ONNX Runtime's ``QLinearConv`` with ``scale[oc] = f32(f32(s_in * s_w[oc]) / s_out)``.

    ``dilations = (dh, dw)``: kernel tap ``(ky, kx)`` reads input offset ``(ky * dh, kx *
    dw)`` (the kernel spans ``(KH - 1) * dh + 1`` rows). ``upsample = (uh, uw)``: before
    padding, the input is spread out by zero insertion, element ``(y, x)`` of ``in - in_zp``
    at ``(y * uh, x * uw)`` of a ``((H - 1) * uh + 1) x ((W - 1) * uw + 1)`` grid of zeros:
    a transposed convolution (``ConvTranspose`` with stride ``u``) is a stride-1 QConv
    over that grid with the kernel flipped and in/out channels swapped, and a nearest
    ``Resize`` by an integer factor ``f`` is a depthwise one with an ``f x f`` kernel of
    ones (:mod:`vfpga.frontend.qdq_lower`).
    ``fsum_in_scale`` set (a float32 value, the input scale): the float32-summing
    transposed convolution of ISA version 5 (the CONV ``fsum`` flag; the one home of its
    arithmetic is :mod:`vfpga.isa.float_conv`), onnxruntime's float32 ``DequantizeLinear
    -> ConvTranspose -> QuantizeLinear``: ``bias`` is then the int32 quantized bias
    (dequantized with ``f32(in_scale * scale[oc])``, not folded with the zero point),
    ``scale[oc] = requant_scale(multiplier[oc], shift[oc])`` the weight scale and
    ``divisor`` the output scale; the integer formula above does not apply.
    A requantizing copy (``DequantizeLinear -> QuantizeLinear``, a ``QLinearConcat`` input
    of another quantization, an unfused activation) is a depthwise 1x1 QConv with unit
    weights and zero bias whose ``multiplier / 2**shift`` is ``s_in`` and whose
    ``divisor`` is ``s_out``: ``v = f32(f32(f32(q - in_zp) * s_in) / s_out)``, ORT's
    ``DequantizeLinear -> QuantizeLinear`` (and ``QLinearConcat``) arithmetic.
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
    divisor: float = 1.0
    dilations: tuple[int, int] = (1, 1)
    upsample: tuple[int, int] = (1, 1)
    fsum_in_scale: float | None = None


def conv_in_extent(node: QConv, h: int, w: int) -> tuple[int, int]:
    """The extent ``(H', W')`` a QConv's kernel slides over before padding: the input
    ``h x w`` spread out by ``node.upsample`` (``(h - 1) * uh + 1``)."""
    uh, uw = node.upsample
    return (h - 1) * uh + 1, (w - 1) * uw + 1


def conv_kernel_extent(node: QConv) -> tuple[int, int]:
    """The rows and columns a QConv's kernel spans: ``(KH - 1) * dh + 1`` and likewise."""
    kh, kw = int(node.weight.shape[2]), int(node.weight.shape[3])
    dh, dw = node.dilations
    return (kh - 1) * dh + 1, (kw - 1) * dw + 1


@dataclass
class QPool:
    """Max, average or global-average pooling; the average pools requantize with the
    input and output tensors' scales ``s_in``, ``s_out`` (float32 values) directly.

    * ``max``: the window maximum; the output keeps the input quantization (padding never
      wins a maximum).
    * ``avg`` (ONNX Runtime's ``QLinearAveragePool``): every in-bounds element of the
      window becomes ``e = f32(f32(in - in_zp) * s_in)``; ``s`` is their float32 sum,
      starting at ``+0.0`` and adding row by row (top to bottom), left to right within a
      row, each addition rounded to float32; ``count`` is ``kh * kw`` if
      ``count_include_pad`` else the number of in-bounds elements; ``m = f32(s / count)``;
      ``v = f32(f32(m / s_out) + (out_zp + 128))``; ``out = sat8(rne(v) - 128)`` (the biased
      zero point is added before rounding).
    * ``global_avg`` (``QLinearGlobalAveragePool``): ``acc = sum(in - in_zp)`` over the
      ``H x W`` plane (exact integer), ``scale = f32(s_in / f32(s_out * f32(H * W)))``,
      ``out = sat8(out_zp + rne(f32(f32(acc) * scale)))``; ``kernel`` is ``(H, W)``.
    """

    name: str
    input: str
    output: str
    kind: PoolKind
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False


@dataclass
class QResize:
    """Bilinear resize of an NCHW map (ONNX ``Resize(mode=linear)``; the RESIZE
    instruction, ISA version 4), requantized with the input and output tensors' scales
    and zero points in onnxruntime's float32 steps (``DequantizeLinear``, the float32
    bilinear kernel, ``QuantizeLinear``; docs/isa.md, RESIZE; one home:
    :mod:`vfpga.isa.resize`). ``coord`` is the coordinate transformation
    (``half_pixel``, ``pytorch_half_pixel``, ``align_corners``, ``asymmetric``),
    ``scales`` the float32 H and W scales onnxruntime uses (the model's ``scales``, or
    ``f32(out) / f32(in)`` from ``sizes``); the output shape is the output tensor's."""

    name: str
    input: str
    output: str
    coord: str
    scales: tuple[float, float]


@dataclass
class QAdd:
    """Element-wise add, multiply or subtract of two int8 tensors with their own
    quantization. ``b`` has ``a``'s shape or is per-channel ``[N, C, 1, 1]``, broadcast
    over ``a``'s pixels. ``mult_a``, ``mult_b`` in ``[0, 2**31)`` and ``shift`` in
    ``[0, 62]`` give ``scale_a = requant_scale(mult_a, shift)`` and
    ``scale_b = requant_scale(mult_b, shift)``.

    * ``op = "add"`` (ONNX Runtime's MLAS ``QLinearAdd``): the importer makes the scales
      ``f32(s_a / s_out)`` and ``f32(s_b / s_out)``;
      ``offset = eltwise_offset(scale_a, scale_b, a_zp, b_zp, out_zp)``
      (:func:`vfpga.isa.float32.eltwise_offset`: ``f32(zc - fma(scale_a, za,
      f32(scale_b * zb)))`` with the biased zero points ``za = a_zp + 128`` etc.), then
      ``v = fma(f32(a + 128), scale_a, fma(f32(b + 128), scale_b, offset))`` and
      ``out = act(sat8(rne(v) - 128))``.
    * ``op = "mul"`` (``QLinearMul``) and ``"sub"`` (``DequantizeLinear -> Sub ->
      QuantizeLinear``): the scales are the operands' own ``s_a``, ``s_b`` and
      ``divisor`` the output scale (for mul the importer may multiply ``scale_b`` and
      ``divisor`` by one power of two, which changes no result). mul: ``ratio =
      f32(f32(scale_a * scale_b) / divisor)``, ``out = act(sat8(rne(f32(f32(f32((a -
      a_zp) * (b - b_zp)) * ratio) + f32(out_zp + 128))) - 128))`` (the exact integer
      product; :func:`vfpga.isa.float32.mul_requant`). sub: ``va = f32(f32(a - a_zp) *
      scale_a)``, ``vb`` likewise, ``out = act(sat8(out_zp + rne(f32(f32(va - vb) /
      divisor))))``; a negative ``divisor`` negates exactly (a sub whose operands were
      swapped so that the broadcast one is ``b``)."""

    name: str
    a: str
    b: str
    output: str
    mult_a: int
    mult_b: int
    shift: int
    act: Act = field(default_factory=Act)
    op: EltKind = "add"
    divisor: float = 1.0


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
class QShuffle:
    """Channel shuffle with ``groups`` groups (ShuffleNet's ``Reshape -> Transpose ->
    Reshape``, written as ``Gather`` along channels by the normalizer): with ``C`` channels
    and ``m = C / groups``, ``out[:, k] = in[:, (k % groups) * m + k // groups]``; input
    channel ``i * m + j`` goes to output channel ``j * groups + i``. Input and output have
    the same scale and zero point (a pure permutation: exact). On the accelerator it costs
    nothing: the producer's SAVEs write its channels at their shuffled positions."""

    name: str
    input: str
    output: str
    groups: int


@dataclass
class QSlice:
    """A channel range of a map: ``out[:, k] = in[:, start + k]`` for the output's ``C``
    channels (ONNX ``Split`` / ``Slice`` along channels, step 1). Input and output have the
    same scale and zero point (the codes are not touched). On the accelerator it costs
    nothing: the output is a view of the input's storage at channel offset ``start`` (its
    consumers' LOADs address that channel range), so nothing is copied."""

    name: str
    input: str
    output: str
    start: int


def shuffle_perm(channels: int, groups: int) -> np.ndarray:
    """The gather indices of a channel shuffle: ``out[:, k] = in[:, p[k]]`` with ``p[k] =
    (k % groups) * (channels // groups) + k // groups`` (int64, a permutation)."""
    if groups < 1 or channels % groups:
        raise ValueError(f"{channels} channels do not split into {groups} groups")
    k = np.arange(channels, dtype=np.int64)
    return (k % groups) * (channels // groups) + k // groups


def shuffle_groups(perm: np.ndarray) -> int:
    """``g`` when ``perm`` is the gather order of a channel shuffle with ``1 < g < C``
    groups (``perm == shuffle_perm(C, g)``), else 0."""
    p = np.asarray(perm)
    c = len(p)
    for g in range(2, c):
        if c % g == 0 and np.array_equal(p, shuffle_perm(c, g)):
            return g
    return 0


@dataclass
class QHostOp:
    """An op run on the host CPU in float32: inputs are dequantized, ``op_type`` (an ONNX
    op such as ``Softmax`` or ``LRN``) runs with ``attrs``, and the result is quantized
    with the output tensor's quantization (``output_float`` keeps it float32 instead, for
    a graph output). ``attrs`` are the ONNX node's attributes (ints, floats, lists)."""

    name: str
    op_type: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    output_float: bool = False


#: ``QHostOp.op_type`` of a host segment: an ONNX subgraph run by onnxruntime, carried as
#: its serialized model in ``attrs["onnx"]`` (base64) with ``nodes``/``ops``/``reasons``/
#: ``macs`` for the placement report (:mod:`vfpga.frontend.host_partition`).
SEGMENT_OP = "OnnxSegment"


#: Host-segment attributes of a graph output whose shape the data decides
#: (NonMaxSuppression's boxes, NonZero): its element type and ONNX shape, -1 for each
#: data-dependent dimension. Such an output is not in DDR: the runtime keeps onnxruntime's
#: result as it is; its QGraph tensor is a 1x1x1x1 placeholder.
DYN_DTYPE = "output_dtype"
DYN_SHAPE = "output_shape"
#: Element types such an output may have.
DYNAMIC_DTYPES: tuple[str, ...] = ("float32", "int32", "int64")

QNode = QConv | QPool | QAdd | QConcat | QShuffle | QSlice | QHostOp | QResize


def node_inputs(node: QNode) -> list[str]:
    """The tensors a node reads, in operand order."""
    if isinstance(node, QConv | QPool | QShuffle | QSlice | QResize):
        return [node.input]
    if isinstance(node, QAdd):
        return [node.a, node.b]
    return list(node.inputs)


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
    #: graph inputs fed and stored as float32, unquantized (``scale`` 1, ``zero_point``
    #: 0): an input the QDQ model never quantizes (a ``Pad`` or a rank-5
    #: ``BatchNormalization`` reads it directly), read only by host segments
    float_inputs: list[str] = field(default_factory=list)
    #: graph inputs of int64 ids (``scale`` 1, ``zero_point`` 0), fed and stored as
    #: int64 and read only by host segments (an Embedding's ``Gather``;
    #: ``vfpga.quant.index_inputs``)
    index_inputs: list[str] = field(default_factory=list)
    #: the ONNX shape of each graph input whose 4-D tensor shape differs from it (an
    #: ``(N, C, L)`` sequence held as ``(N, C, 1, L)``, ``(N, C)`` as ``(N, C, 1, 1)``): a
    #: row-major reshape of the tensor's NCHW elements, as ``output_shapes`` for outputs
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def dynamic_outputs(g: QGraph) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The graph outputs whose shape the data decides: name -> (element type, ONNX shape
    with -1 for each data-dependent dimension), from their host segments' attributes."""
    return {
        n.output: (str(n.attrs[DYN_DTYPE]), tuple(int(d) for d in n.attrs[DYN_SHAPE]))
        for n in g.nodes
        if isinstance(n, QHostOp) and DYN_DTYPE in n.attrs
    }


def float_tensors(g: QGraph) -> set[str]:
    """The tensors of ``g`` stored as float32 (every other tensor is int8): its float
    inputs and the outputs of host ops with ``output_float``."""
    return set(g.float_inputs) | {
        n.output for n in g.nodes if isinstance(n, QHostOp) and n.output_float
    }
