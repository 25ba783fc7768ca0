"""Lower a QDQ ONNX model (``QuantizeLinear``/``DequantizeLinear`` around float ops, as
written by ``onnxruntime.quantization.quantize_static`` with ``QuantFormat.QDQ``) to a
:class:`~vfpga.frontend.qgraph.QGraph` with integer parameters.

The model is read as islands of float ops between ``DequantizeLinear`` (DQ) inputs and one
``QuantizeLinear`` (Q) output. Every island becomes one or a few QGraph nodes whose
arithmetic (exact integer accumulation, float32 requantization; docs/quantization.md) is
that of the integer kernel ONNX Runtime fuses the island into, with ORT's own float32
constants:

* ``DQ(x), DQ(w), DQ(b) -> Conv [-> Relu | Clip]* -> Q`` -> :class:`QConv`: int8 weights
  (weight zero point folded, it must leave values in int8), int32 bias, per-channel
  ``multiplier / 2**shift == float32(float32(s_in * s_w[c]) / s_out)`` exactly (a float32
  has a 24-bit mantissa), ``divisor = 1.0``, activation clamp in the output's quantized
  domain (``QLinearConv``).
* ``DQ -> MaxPool -> Q``: :class:`QPool` ``max``; when the output quantization differs from
  the input's, a requantizing copy (below) follows.
* ``DQ -> AveragePool | GlobalAveragePool -> Q``: :class:`QPool` ``avg`` / ``global_avg``,
  which requantize with the input and output tensors' scales (``QLinearAveragePool``,
  ``QLinearGlobalAveragePool``).
* ``DQ(a), DQ(b) -> Add [-> Relu | Clip]* -> Q``: :class:`QAdd` with
  ``mult_a / 2**shift == float32(s_a / s_out)``, ``mult_b / 2**shift == float32(s_b / s_out)``
  (``QLinearAdd``); ``Mul`` of two maps (``QLinearMul``) and ``Sub``: :class:`QAdd` with
  ``op`` mul / sub, ``mult_x / 2**shift == s_x`` and ``divisor = s_out``. One operand may be
  per-channel ``[N, C, 1, 1]`` (the squeeze-excite gate), broadcast over the other.
* ``DQ(x_i) -> Concat(axis=1) -> Q``: :class:`QConcat`; inputs whose quantization differs
  from the output's first go through a requantizing copy (``QLinearConcat``'s table).
* ``DQ -> Relu | Clip -> Q`` and ``DQ -> Q`` with another quantization: a requantizing copy
  (fused into the producing QConv/QAdd when the quantization is unchanged and nothing else
  reads the producer's output).
* A *requantizing copy* is a depthwise 1x1 QConv with unit weights and zero bias whose
  ``multiplier / 2**shift == s_in`` and ``divisor == s_out``:
  ``float32(float32(float32(q - in_zp) * s_in) / s_out)``, rounded half to even, like ORT's
  ``DequantizeLinear -> QuantizeLinear``.
* ``DQ -> Gather(axis=1) -> Q`` with the indices of a channel shuffle: :class:`QShuffle`.
* ``DQ -> Softmax | LRN -> Q`` (and such an op producing a float graph output):
  :class:`QHostOp` run on the host in float32.
* ``Reshape``, ``Flatten``, ``Squeeze``, ``Unsqueeze``, ``Identity`` are views: they must only
  add or drop unit dimensions (the classifier's final ``(N, C, 1, 1) -> (N, C)``), except on
  the way to a graph output, where the ONNX shape goes to ``QGraph.output_shapes``.

Tensors of rank 2 and 3 are padded to 4-D with trailing unit dimensions (``(N, C)`` ->
``(N, C, 1, 1)``, ``(N, C, L)`` -> ``(N, C, L, 1)``; 1-D convolutions and pools become
``K x 1`` ones). uint8 tensors are mapped to int8 exactly (``q - 128``, zero point - 128).

QGraph tensors are named after the float ONNX tensor the ``QuantizeLinear`` reads (the op's
output), graph outputs after the ONNX graph outputs; tensors the lowering inserts (requant
inputs) get a ``/`` suffix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vfpga.errors import FrontendError
from vfpga.frontend import act_tables
from vfpga.frontend.host_partition import HostSegment, encode, node_macs, segment_model
from vfpga.frontend.qgraph import (
    DYN_DTYPE,
    DYN_SHAPE,
    DYNAMIC_DTYPES,
    SEGMENT_OP,
    Act,
    EltKind,
    QAdd,
    QConcat,
    QConv,
    QGraph,
    QHostOp,
    QNode,
    QPool,
    QResize,
    QShuffle,
    QSlice,
    QTensor,
    node_inputs,
    shuffle_groups,
)
from vfpga.frontend.resize import nearest_source
from vfpga.isa.float32 import requant_scale
from vfpga.isa.limits import MAX_DILATION, MAX_KERNEL, MAX_MULTIPLIER, MAX_SHIFT, MAX_UPSAMPLE
from vfpga.isa.resize import COORD_MODE_NAMES
from vfpga.quant.index_inputs import INDEX_ONNX_TYPE

#: ONNX ops the lowering accepts (besides QuantizeLinear / DequantizeLinear / Constant).
SUPPORTED_OPS: tuple[str, ...] = (
    "Conv",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Add",
    "Sub",
    "Concat",
    "Gather",
    "Slice",
    "Split",
    "Softmax",
    "LRN",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Mul",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "HardSigmoid",
    "LeakyRelu",
    "Elu",
    "Erf",
    "Gelu",
)
#: Ops run on the host CPU in float32 (:class:`QHostOp`).
HOST_OPS: tuple[str, ...] = ("Softmax", "LRN")
_QDQ_GLUE = ("QuantizeLinear", "DequantizeLinear", "Constant")
#: Why op types left in the QDQ graph without an accelerator lowering are not on it, where
#: a bare "not supported" would mislead (normalization already turned the MatMul/Gemm
#: with a constant weight and the free NCHW/NHWC transposes into convs and views).
_NO_LOWERING_WHY = {
    "MatMul": "MatMul of two activations (such as attention's) is not supported; only "
    "MatMul/Gemm with a constant weight runs on the accelerator, as a 1x1 conv",
    "Gemm": "Gemm without a constant weight is not supported; only MatMul/Gemm with a "
    "constant weight runs on the accelerator, as a 1x1 conv",
    "Transpose": "op type Transpose is not supported; the NCHW/NHWC transposes between "
    "token-wise layers are free views, this one feeds or follows a host op",
}
_VIEW_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
_ACT_OPS = ("Relu", "Clip")
#: Element-wise functions of one tensor, lowered to 256-entry tables (act_tables.py).
UNARY_OPS: tuple[str, ...] = (
    "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Erf", "Gelu",
)


# --------------------------------------------------------------------------------------
# multiplier / shift
# --------------------------------------------------------------------------------------


def _odd_mantissa(r: float) -> tuple[int, int]:
    """``r == o * 2**-k`` with ``o`` odd (or ``(0, 0)`` for 0); ``r`` finite, ``>= 0``."""
    if r == 0.0:
        return 0, 0
    mant, exp = math.frexp(r)  # r = mant * 2**exp, mant in [0.5, 1)
    o = int(mant * (1 << 53))  # exact: a double has a 53-bit mantissa
    k = 53 - exp
    while o % 2 == 0:
        o //= 2
        k -= 1
    return o, k


def _rhe_fraction(num: int, den_shift: int) -> int:
    """``round_half_to_even(num / 2**den_shift)`` for Python ints, ``den_shift >= 0``."""
    if den_shift == 0:
        return num
    q, r = divmod(num, 1 << den_shift)
    half = 1 << (den_shift - 1)
    if r > half or (r == half and q & 1):
        q += 1
    return q


def mult_shift(ratio: float) -> tuple[int, int]:
    """The multiplier ``m`` in ``[0, 2**31)`` and shift ``s`` in ``[0, 62]`` with
    ``m / 2**s == ratio`` exactly when possible (every float32 at least ``2**-38`` is
    representable; the smallest ``s`` is chosen, so ``m`` is odd). Smaller ratios are
    rounded half to even at ``s = 62``. Raises ``ValueError`` for negative, non-finite or
    too large (``>= 2**31``) ratios."""
    if not math.isfinite(ratio) or ratio < 0:
        raise ValueError(f"requantization ratio {ratio!r} is not a finite non-negative number")
    o, k = _odd_mantissa(ratio)
    if o == 0:
        return 0, 0
    if k < 0:
        m = o << (-k)
        k = 0
    else:
        m = o
    if k > MAX_SHIFT:
        m = _rhe_fraction(m, k - MAX_SHIFT)
        k = MAX_SHIFT
    if m >= MAX_MULTIPLIER:
        raise ValueError(f"requantization ratio {ratio!r} is too large (>= 2**31)")
    return m, k


def mult_shift_pair(ra: float, rb: float) -> tuple[int, int, int]:
    """``(mult_a, mult_b, shift)`` with one shared shift: ``mult_x / 2**shift == r_x``
    exactly when both fit (float32 ratios whose exponents differ by at most 7 always do);
    otherwise the shift is the largest that keeps both multipliers below ``2**31`` and the
    multipliers are rounded half to even."""
    oa, ka = _odd_mantissa(ra)
    ob, kb = _odd_mantissa(rb)
    ks = [k for o, k in ((oa, ka), (ob, kb)) if o]
    if not ks:
        return 0, 0, 0
    s = max(0, *ks)
    ma = (oa << (s - ka)) if oa else 0
    mb = (ob << (s - kb)) if ob else 0
    if s <= MAX_SHIFT and ma < MAX_MULTIPLIER and mb < MAX_MULTIPLIER:
        return ma, mb, s
    big = max(ra, rb)
    if big >= MAX_MULTIPLIER:
        raise ValueError(f"requantization ratio {big!r} is too large (>= 2**31)")
    # largest s with big * 2**s < 2**31
    s = min(MAX_SHIFT, 30 - math.frexp(big)[1] + 1)
    while s > 0 and big * 2.0**s >= MAX_MULTIPLIER:
        s -= 1

    def rnd(o: int, k: int) -> int:
        if not o:
            return 0
        return o << (s - k) if s >= k else _rhe_fraction(o, k - s)

    return rnd(oa, ka), rnd(ob, kb), s


def _f32(v: object) -> np.float32:
    return np.float32(v)  # type: ignore[arg-type]


def exact_f32(value: float) -> float:
    """``value`` rounded to float32 (the tensors' scales are float32 values in the ONNX
    model; a QGraph built by hand may hold any float)."""
    return float(_f32(value))


def ratio_f32(*factors: float, divisor: float) -> float:
    """``float32(float32(f0 * f1 * ...) / divisor)`` evaluated in float32 left to right,
    the way ONNX Runtime's integer kernels compute their output scales."""
    acc = _f32(1.0)
    for i, f in enumerate(factors):
        acc = _f32(f) if i == 0 else _f32(acc * _f32(f))
    return float(_f32(acc / _f32(divisor)))


def _unsupported_why(op: str) -> str:
    """Why the QDQ op type ``op``, which has no accelerator lowering, is not on it."""
    return _NO_LOWERING_WHY.get(op, f"op type {op} is not supported")


def _reason(message: str) -> str:
    """Why a node is not on the accelerator, from the lowering's error message (without
    the model/node prefix and the list of supported ops)."""
    head, sep, rest = message.partition("): ")
    text = rest if sep and "node '" in head else message
    return text.split("; supported ops:")[0]


# --------------------------------------------------------------------------------------
# values of ONNX tensors during the walk
# --------------------------------------------------------------------------------------


@dataclass
class _Const:
    """A constant: an initializer, a ``Constant`` output or the DQ of one (then ``value``
    holds the integer data and ``scale``/``zero_point`` the DQ parameters)."""

    value: np.ndarray
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    axis: int = 1

    def as_float(self) -> np.ndarray:
        if self.scale is None:
            return self.value
        v = self.value.astype(np.float64)
        sc = self.scale.astype(np.float64)
        zp = (self.zero_point if self.zero_point is not None else np.zeros_like(sc)).astype(
            np.float64
        )
        if sc.size > 1:
            shape = [1] * v.ndim
            shape[self.axis] = -1
            sc = sc.reshape(shape)
            zp = zp.reshape(shape)
        return ((v - zp) * sc).astype(np.float32)


@dataclass
class _QVal:
    """A float tensor equal to the dequantization of the QGraph tensor ``tensor``;
    ``shape`` is its ONNX shape (a view may differ from the tensor's 4-D shape)."""

    tensor: str
    shape: tuple[int, ...]


@dataclass
class _Pending:
    """The float result of an island's op, waiting for its ``QuantizeLinear``.

    ``build(out, act)`` returns the QGraph nodes computing the QGraph tensor ``out`` with
    activation ``act`` (only called with a non-trivial ``act`` when ``supports_act``)."""

    name: str
    op_type: str
    shape4: tuple[int, ...]
    shape: tuple[int, ...]
    build: Callable[[QTensor, Act], list[QNode]]
    supports_act: bool
    lo: float | None = None
    hi: float | None = None
    host: bool = False
    build_float: Callable[[QTensor], list[QNode]] | None = None
    segment: HostSegment | None = None


@dataclass
class _Fn:
    """An element-wise function of the int8 codes of one QGraph tensor ``src``, waiting
    for its ``QuantizeLinear``: ``table_for(scale, zero_point)`` is the 256-entry int8
    table of the quantized result (entry ``q + 128`` for code ``q`` of ``src``);
    ``values`` the float32 result per code when it is a float op's output (``None`` after
    an integer kernel such as ``QLinearMul``)."""

    name: str
    op_type: str
    src: str
    shape: tuple[int, ...]
    table_for: Callable[[float, int], np.ndarray]
    values: np.ndarray | None = None


_Value = _Const | _QVal | _Pending | _Fn


def _as4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) == 4:
        return (shape[0], shape[1], shape[2], shape[3])
    if len(shape) == 3:
        return (shape[0], shape[1], shape[2], 1)
    if len(shape) == 2:
        return (shape[0], shape[1], 1, 1)
    if len(shape) == 1:
        return (1, shape[0], 1, 1)
    raise ValueError(f"rank {len(shape)}")


def _text(v: object) -> str:
    """A string attribute's value (onnx gives bytes) as str."""
    return v.decode() if isinstance(v, bytes) else str(v)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """The attributes of ``node`` by name (``onnx.helper.get_attribute_value``: an int,
    float, bytes, list or tensor, depending on the attribute)."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _spatial_attrs(
    name: str,
    attrs: dict[str, Any],
    in_hw: tuple[int, int],
    kernel: tuple[int, int],
    rank_spatial: int,
    err: Callable[[str], FrontendError],
    dilations: list[int] | None = None,
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Strides and pads (top, left, bottom, right) for a 1-D or 2-D conv / pool node.
    With a ``dilations`` list (a Conv) the node's dilations are appended to it (then
    ``kernel`` is the dilated extent for ``auto_pad``); without, dilation is an error."""
    strides = [int(v) for v in attrs.get("strides", [1] * rank_spatial)]
    dil = [int(v) for v in attrs.get("dilations", [1] * rank_spatial)]
    if dilations is not None:
        if not all(1 <= d <= MAX_DILATION for d in dil):
            raise err(f"dilations {dil} are not supported (1..{MAX_DILATION})")
        dilations.extend(dil if rank_spatial == 2 else [dil[0], 1])
    elif any(d != 1 for d in dil):
        raise err(f"dilations {dil} are not supported")
    pads_raw = [int(v) for v in attrs.get("pads", [0] * (2 * rank_spatial))]
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if rank_spatial == 1:
        strides = [strides[0], 1]
        pads_raw = [pads_raw[0], 0, pads_raw[1], 0]
    st = (strides[0], strides[1])
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for d in range(2):
            out = -(-in_hw[d] // st[d])
            total = max((out - 1) * st[d] + kernel[d] - in_hw[d], 0)
            small, big = total // 2, total - total // 2
            begin, end = (small, big) if auto == "SAME_UPPER" else (big, small)
            pads[d], pads[d + 2] = begin, end
        pads_raw = pads
    elif auto == "VALID":
        pads_raw = [0, 0, 0, 0]
    elif auto != "NOTSET":
        raise err(f"auto_pad={auto!r} is not supported")
    p = (pads_raw[0], pads_raw[1], pads_raw[2], pads_raw[3])
    if any(v < 0 for v in p):
        raise err(f"negative pads {p} are not supported")
    return st, p


def _out_hw(
    in_hw: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
) -> tuple[int, int]:
    oh = (in_hw[0] + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (in_hw[1] + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    return oh, ow


def _q_clamp(v: float, scale: float, zp: int) -> int:
    """``QuantizeLinear`` of one float (float32 division, half to even, int8 saturation)."""
    q = float(np.rint(_f32(v) / _f32(scale))) + zp
    return int(min(max(q, -128), 127))


def _make_act(lo: float | None, hi: float | None, out: QTensor) -> Act:
    qlo = -128 if lo is None else _q_clamp(lo, out.scale, out.zero_point)
    qhi = 127 if hi is None else _q_clamp(hi, out.scale, out.zero_point)
    if qlo == -128 and qhi == 127:
        return Act()
    if qhi == 127:
        return Act("relu", qlo, 127)
    return Act("relu6", qlo, qhi)


def _same_quant(a: QTensor, b: QTensor) -> bool:
    return _f32(a.scale) == _f32(b.scale) and a.zero_point == b.zero_point


# --------------------------------------------------------------------------------------
# the lowering
# --------------------------------------------------------------------------------------


@dataclass
class LoweringResult:
    """A lowered graph and, for each QGraph tensor that exists in the QDQ model, the name
    of the ONNX int8 tensor (a ``QuantizeLinear`` output) holding it and the offset to add
    to ONNX's values to get the QGraph's (``-128`` for uint8 tensors, else 0)."""

    graph: QGraph
    onnx_int8: dict[str, tuple[str, int]]


class _Lowerer:
    def __init__(self, model: onnx.ModelProto, source: str, quantized: bool = False) -> None:
        self.model = model
        self.source = source
        #: host segments may read the graph input unquantized: the model came out of
        #: vfpga's quantizer (which leaves the inputs of ops it does not quantize float), or
        #: it is a QDQ model (it has QuantizeLinear/DequantizeLinear nodes)
        self.float_input_ok = quantized or any(
            n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
        self.opset = 13
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = int(imp.version)
        self.values: dict[str, _Value] = {}
        self.tensors: dict[str, QTensor] = {}
        self.nodes: list[QNode] = []
        self.node_names: set[str] = set()
        self.onnx_int8: dict[str, tuple[str, int]] = {}
        self.inputs: list[str] = []
        #: graph inputs host segments read unquantized (QGraph.float_inputs)
        self.float_inputs: list[str] = []
        #: graph inputs of int64 ids host segments read (QGraph.index_inputs)
        self.index_inputs: list[str] = []
        #: graph outputs whose shape the data decides: name -> (dtype, ONNX shape, -1
        #: for a data-dependent dimension)
        self.dynamic: dict[str, tuple[str, tuple[int, ...]]] = {}
        #: tensor -> (source tensor, int8 table): the tensor is ``table[source + 128]``
        self.derived: dict[str, tuple[str, np.ndarray]] = {}
        self.cur: onnx.NodeProto | None = None
        self.cur_name = ""
        self._shapes: dict[str, tuple[int, ...]] | None = None

    # ---- errors and names -----------------------------------------------------------

    def err(self, msg: str, node: onnx.NodeProto | None = None) -> FrontendError:
        n = node if node is not None else self.cur
        where = f"{self.source}"
        if n is not None:
            nm = n.name or self.cur_name
            where += f": node '{nm}' ({n.op_type})"
        return FrontendError(f"{where}: {msg}")

    def unsupported(self, node: onnx.NodeProto, what: str) -> FrontendError:
        return self.err(
            f"{what}; supported ops: {', '.join(SUPPORTED_OPS)} (between "
            "DequantizeLinear and QuantizeLinear; run `vfpga quantize` on an fp32 model first)",
            node,
        )

    def tensor_name(self, want: str) -> str:
        name = want or "t"
        i = 1
        while name in self.tensors:
            name = f"{want}/{i}"
            i += 1
        return name

    def node_name(self, want: str) -> str:
        name = want
        i = 1
        while name in self.node_names:
            name = f"{want}/{i}"
            i += 1
        self.node_names.add(name)
        return name

    def add_tensor(self, want: str, shape4: tuple[int, ...], scale: float, zp: int) -> QTensor:
        t = QTensor(self.tensor_name(want), tuple(int(d) for d in shape4), float(scale), int(zp))
        self.tensors[t.name] = t
        return t

    # ---- value access ---------------------------------------------------------------

    def val(self, name: str) -> _Value:
        if name == self.input_name and name not in self.values:
            raise self.err(
                f"reads the float graph input '{name}' without a QuantizeLinear; the model "
                "is not quantized (QDQ): run `vfpga quantize` or lower through load_qgraph"
            )
        if name not in self.values:
            raise self.err(f"input '{name}' is not produced by any node, initializer or input")
        return self.values[name]

    def qin(self, name: str) -> _QVal:
        """The input ``name`` as a dequantized QGraph tensor, checked against its 4-D form."""
        v = self.val(name)
        if isinstance(v, _Pending | _Fn):
            raise self.err(
                f"input '{name}' is the float output of node '{v.name}' ({v.op_type}) with no "
                "QuantizeLinear/DequantizeLinear pair in between; quantize the model with "
                "every op quantized"
            )
        if isinstance(v, _Const):
            raise self.err(
                f"input '{name}' is a constant where an activation is expected; constant "
                "activations are not supported (fold them into the weights)"
            )
        t = self.tensors[v.tensor]
        if len(v.shape) > 4:
            raise self.err(f"input '{name}' has rank {len(v.shape)} ({v.shape}); the "
                           "accelerator runs 1-D and 2-D ops, rank-5 volumes go to the host")
        if _as4(v.shape) != t.shape:
            if len(v.shape) <= 4 and v.shape[0] == 1 and t.shape[0] == 1:
                return self.reshape_on_host(name, v)
            raise self.err(
                f"input '{name}' is a reshaped view {v.shape} of the {t.shape} tensor "
                f"'{t.name}'; only unit dimensions may be added or dropped before an op"
            )
        return v

    def const(self, name: str, what: str) -> _Const:
        v = self.val(name)
        if not isinstance(v, _Const):
            raise self.err(f"the {what} '{name}' must be a constant")
        return v

    def int_list(self, name: str, what: str) -> list[int]:
        return [int(x) for x in np.ravel(self.const(name, what).as_float())]

    # ---- entry ----------------------------------------------------------------------

    def run(self) -> LoweringResult:
        g = self.model.graph
        for init in g.initializer:
            self.values[init.name] = _Const(numpy_helper.to_array(init))
        init_names = {i.name for i in g.initializer}
        real_inputs = [i for i in g.input if i.name not in init_names]
        if len(real_inputs) != 1:
            raise FrontendError(
                f"{self.source}: the model has {len(real_inputs)} inputs "
                f"({', '.join(i.name for i in real_inputs)}); exactly one float input is "
                "supported"
            )
        self.graph_input = real_inputs[0]
        self.input_shape = self._input_shape(real_inputs[0])
        #: the input holds int64 ids (vfpga.quant.index_inputs), read by host nodes only
        self.index_input = real_inputs[0].type.tensor_type.elem_type == INDEX_ONNX_TYPE
        self.input_name = real_inputs[0].name
        self.input4 = self._input4(g)
        for idx, node in enumerate(g.node):
            self.cur = node
            self.cur_name = node.name or f"{node.op_type}_{idx}"
            self.lower_node(node)
        self.cur = None
        if not self.inputs:
            raise FrontendError(
                f"{self.source}: the graph input '{self.input_name}' is never quantized "
                "(no QuantizeLinear reads it, nothing was quantized); this is not a QDQ model "
                "the accelerator can run"
            )
        outputs = self.finish_outputs()
        return LoweringResult(
            QGraph(
                name=g.name or self.source,
                inputs=self.inputs,
                outputs=outputs,
                tensors=self.tensors,
                nodes=self.nodes,
                output_shapes=self.output_shapes,
                float_inputs=self.float_inputs,
                index_inputs=self.index_inputs,
                input_shapes={t: self.input_shape for t in self.inputs
                              if self.tensors[t].shape != self.input_shape},
            ),
            self.onnx_int8,
        )

    def _input4(self, g: onnx.GraphProto) -> tuple[int, int, int, int]:
        """The 4-D shape of the graph input's tensor: :func:`_as4` of its shape (a rank-5
        volume ``(N, C, D, H, W)``: ``(N, C, D * H, W)``, the same row-major elements, which
        host segments reshape back), except for
        an ``(N, C, L)`` input whose dequantized value is only reshaped to the one-row map
        ``(N, C, 1, L)`` (how ``normalize`` holds a sequence input, so that 1-D ops run as
        ``1 x K`` ones): its tensor is that map (the same bytes as ``(N, C, L, 1)``)."""
        if len(self.input_shape) == 5:  # a volume, read by host segments only
            n, c, d, h, w = self.input_shape
            return (n, c, d * h, w)
        shape4 = _as4(self.input_shape)
        if len(self.input_shape) != 3:
            return shape4
        n, c, length = self.input_shape
        line = (n, c, 1, length)
        quant = {o for nd in g.node if nd.op_type == "QuantizeLinear"
                 and nd.input[0] == self.input_name for o in nd.output}
        deq = {o for nd in g.node if nd.op_type == "DequantizeLinear"
               and nd.input[0] in quant for o in nd.output}
        readers = [nd for nd in g.node if any(i in deq for i in nd.input)]
        if not readers or any(nd.op_type != "Reshape" for nd in readers):
            return shape4
        shapes = self.onnx_shapes()
        if all(shapes.get(nd.output[0]) == line for nd in readers):
            return line
        return shape4

    def _input_shape(self, vi: onnx.ValueInfoProto) -> tuple[int, ...]:
        tt = vi.type.tensor_type
        if tt.elem_type not in (onnx.TensorProto.FLOAT, INDEX_ONNX_TYPE):
            raise FrontendError(
                f"{self.source}: input '{vi.name}' has element type "
                f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; a float32 input (or int64 "
                "ids read by host nodes) is required"
            )
        dims: list[int] = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif i == 0:
                dims.append(1)
            else:
                raise FrontendError(
                    f"{self.source}: input '{vi.name}' dimension {i} is not fixed "
                    f"({d.dim_param or '?'}); only the batch dimension may be symbolic"
                )
        if not 2 <= len(dims) <= 5:
            raise FrontendError(
                f"{self.source}: input '{vi.name}' has shape {dims}; inputs of rank 2 to 5 "
                "are supported"
            )
        return tuple(dims)

    # ---- per node -------------------------------------------------------------------

    def lower_node(self, node: onnx.NodeProto) -> None:
        """Lower ``node`` onto the accelerator, or put it in a host segment when it has
        no accelerator lowering or reads a float value computed on the host."""
        if node.domain in ("", "ai.onnx") and node.op_type in _QDQ_GLUE:
            self.lower_accel(node)
            return
        if self.index_input and self.input_name in node.input:
            self.lower_on_host(node, f"reads the int64 ids of the graph input "
                                     f"'{self.input_name}' (an Embedding; the accelerator "
                                     "computes on int8 maps)")
            return
        if any(isinstance(v := self.values.get(i), _Pending) and v.segment is not None
               for i in node.input if i):
            why = "reads a float value computed on the host"
            if node.domain not in ("", "ai.onnx"):
                why = f"op domain '{node.domain}' is not supported (and it {why})"
            elif node.op_type not in SUPPORTED_OPS:
                why = f"{_unsupported_why(node.op_type)} (and it {why})"
            self.lower_on_host(node, why)
            return
        snap = (len(self.nodes), dict(self.tensors), dict(self.values), set(self.node_names),
                dict(self.onnx_int8), list(self.inputs))
        try:
            self.lower_accel(node)
        except FrontendError as exc:
            n, self.tensors, self.values, self.node_names, self.onnx_int8, self.inputs = snap
            del self.nodes[n:]
            self.lower_on_host(node, _reason(str(exc)))

    def float_input(self, node: onnx.NodeProto) -> QTensor:
        """The graph input as a float32 tensor (scale 1, zero point 0), for host node
        ``node`` that reads it without a ``QuantizeLinear`` (onnxruntime's quantizer
        leaves the inputs of ops it does not quantize, such as ``Pad`` or ``PRelu``,
        float): the runtime stores the input unquantized and the segment reads it as is."""
        if not self.float_input_ok and not self.index_input:
            self.val(self.input_name)  # the error: an fp32 model, not quantized
        if self.inputs:
            t = self.tensors[self.inputs[0]]
            if t.name not in self.float_inputs + self.index_inputs:
                raise self.err(f"node '{node.name}' ({node.op_type}) reads the graph input "
                               f"'{self.input_name}' unquantized, which a QuantizeLinear also "
                               "quantizes; an input is either quantized or float: quantize "
                               "it once before every reader", node)
            return t
        t = self.add_tensor(self.input_name, self.input4, 1.0, 0)
        self.inputs.append(t.name)
        (self.index_inputs if self.index_input else self.float_inputs).append(t.name)
        return t

    def lower_on_host(self, node: onnx.NodeProto, reason: str) -> None:
        """Put ``node`` in a host segment (merged with the segments of its host inputs)."""
        seg = HostSegment()
        for i in node.input:
            if not i:
                continue
            if i == self.input_name and i not in self.values:
                seg.inputs[i] = (self.float_input(node).name, self.input_shape)
                (seg.index_inputs if self.index_input else seg.float_inputs).add(i)
                continue
            v = self.val(i)
            if isinstance(v, _Const) and v.scale is not None:  # DQ of an integer constant
                seg.dq_consts[i] = (v.value, v.scale, v.zero_point, v.axis)
            elif isinstance(v, _Const):
                seg.consts[i] = v.value
            elif isinstance(v, _QVal):
                seg.inputs[i] = (v.tensor, v.shape)
            elif isinstance(v, _Pending) and v.segment is not None:
                seg.merge(v.segment)
            else:
                raise self.err(
                    f"{reason}, and it cannot run on the host either: input '{i}' is the "
                    f"float output of node '{v.name}' ({v.op_type}) with no QuantizeLinear "
                    "in between (quantize the model with every accelerator op quantized)"
                )
        if not node.name:
            named = onnx.NodeProto()
            named.CopyFrom(node)
            named.name = self.cur_name
            node = named
        seg.nodes.append(node)
        seg.reasons[node.name] = reason
        shapes = self.onnx_shapes()
        for o in node.output:
            if not o:
                continue
            shape = shapes.get(o)
            if shape is None:
                shape = self.dynamic_output(o, reason)
            self.values[o] = self._host_value(node, seg, o, shape, reason)

    def onnx_shapes(self) -> dict[str, tuple[int, ...]]:
        """Static shapes of the model's tensors (ONNX shape inference, computed once)."""
        if self._shapes is None:
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model).graph
            except Exception:  # an op shape inference rejects: fall back to declared shapes
                inferred = self.model.graph
            self._shapes = {}
            for vi in [*inferred.value_info, *inferred.output, *inferred.input]:
                dims = [d.dim_value if d.HasField("dim_value") else -1
                        for d in vi.type.tensor_type.shape.dim]
                if vi.type.tensor_type.HasField("shape") and all(d > 0 for d in dims):
                    self._shapes[vi.name] = tuple(dims)
            self._shapes[self.input_name] = self.input_shape
        return self._shapes

    def dynamic_output(self, o: str, reason: str) -> tuple[int, ...]:
        """The ONNX shape of ``o``, an output of a host node that shape inference cannot
        tell: allowed for a graph output (its declared dimensions, -1 for each one the
        data decides, such as NonMaxSuppression's number of boxes); recorded in
        ``self.dynamic`` (name -> element type, shape)."""
        vi = next((v for v in self.model.graph.output if v.name == o), None)
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            raise self.err(f"{reason}; to run it on the host its output '{o}' needs a "
                           "static shape, which shape inference cannot tell (only a graph "
                           "output may have a shape the data decides)")
        tt = vi.type.tensor_type
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else -1
                      for d in tt.shape.dim)
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        if dtype not in DYNAMIC_DTYPES:
            raise self.err(f"graph output '{o}' has a shape the data decides and element "
                           f"type {dtype}; such outputs may be {', '.join(DYNAMIC_DTYPES)}")
        self.dynamic[o] = (dtype, shape)
        return shape

    def _host_value(self, node: onnx.NodeProto, seg: HostSegment, o: str,
                    shape: tuple[int, ...], reason: str) -> _Pending:
        """The float output ``o`` of host node ``node``; a host op computing it is built
        when it is quantized (or is a graph output). Values inside a segment may have any
        shape. A segment output whose first dimension is not 1 (a constant of another batch
        broadcast into it: PoissonNLLLoss's ``exp(x) - target * x`` with a target of 10
        rows) is held flat, ``(1, elements, 1, 1)``, the same row-major elements: the
        segment runs once per batch item of the graph input and writes all its rows; only
        host segments (which reshape it back) and graph outputs read it, an accelerator
        layer refuses the view (:meth:`qin`)."""
        shape4 = ((1, 1, 1, 1) if o in self.dynamic else  # a placeholder: not in DDR
                  _as4(shape) if 1 <= len(shape) <= 4 and shape[0] == 1
                  else (1, math.prod(shape), 1, 1))

        def op(out: QTensor, as_float: bool) -> list[QNode]:
            if o in self.dynamic and not as_float:
                raise self.err(f"node '{node.name}' ({node.op_type}) decides the shape of its "
                               f"output '{o}' at run time ({list(shape)}, -1: data-dependent); "
                               "only a graph output may have such a shape, an accelerator "
                               "layer cannot read it. End the model there and run the rest "
                               "in post-processing")
            return [self.segment_op(seg, o, shape, out, as_float)]

        return _Pending(node.name, node.op_type, shape4, shape,
                        lambda out, act: op(out, False), supports_act=False, host=True,
                        build_float=lambda out: op(out, True), segment=seg)

    def segment_op(self, seg: HostSegment, o: str, shape: tuple[int, ...], out: QTensor,
                   as_float: bool) -> QHostOp:
        """The host op running the nodes of ``seg`` that the float value ``o`` (ONNX
        shape ``shape``) depends on, writing the QGraph tensor ``out`` (float32 if
        ``as_float``)."""
        dyn = self.dynamic.get(o)
        data, reads, nodes = segment_model(seg, o, shape, None if as_float else out,
                                           self.tensors, self.model, self.source,
                                           out_dtype=dyn[0] if dyn else "float32")
        shapes = self.onnx_shapes()
        weights = {**seg.consts, **{k: v[0] for k, v in seg.dq_consts.items()}}
        attrs: dict[str, object] = {
            "onnx": encode(data),
            "nodes": [n.name for n in nodes],
            "ops": [n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                    for n in nodes],
            "reasons": [seg.reasons[n.name] for n in nodes],
            "macs": sum(node_macs(n, shapes, weights) for n in nodes),
        }
        if dyn is not None:  # a graph output whose shape the data decides
            attrs[DYN_DTYPE], attrs[DYN_SHAPE] = dyn[0], list(dyn[1])
        return QHostOp(self.node_name(f"host:{o}"), SEGMENT_OP, reads, out.name, attrs,
                       as_float)

    def reshape_on_host(self, name: str, v: _QVal) -> _QVal:
        """The view ``v`` of input ``name``, whose 4-D form differs from its tensor's by
        more than unit dimensions (tokens ``(1, C, 1, T)`` read as an ``(1, C, H, W)`` map),
        copied into a tensor of that form by a host segment (``Reshape``; the accelerator
        has no reshape), so that the consuming op can stay on the accelerator."""
        t = self.tensors[v.tensor]
        shape4 = _as4(v.shape)
        src, dst, shp = f"{name}__view", f"{name}__reshaped", f"{name}__shape"
        seg = HostSegment()
        seg.inputs[src] = (t.name, t.shape)
        seg.consts[shp] = np.array(shape4, np.int64)
        node = onnx.helper.make_node("Reshape", [src, shp], [dst],
                                     name=self.node_name(f"{name}/reshape"))
        seg.nodes.append(node)
        seg.reasons[node.name] = (f"reshaping the {t.shape} tensor '{t.name}' to {shape4} "
                                  "moves elements between rows (no accelerator reshape)")
        out = self.add_tensor(f"{t.name}/reshaped", shape4, t.scale, t.zero_point)
        self.nodes.append(self.segment_op(seg, dst, shape4, out, False))
        qv = _QVal(out.name, v.shape)
        self.values[name] = qv
        return qv

    def lower_accel(self, node: onnx.NodeProto) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise self.unsupported(node, f"op domain '{node.domain}' is not supported")
        if op == "Constant":
            t = node.attribute[0]
            if t.name != "value":
                raise self.err(f"Constant with attribute '{t.name}' is not supported")
            self.values[node.output[0]] = _Const(numpy_helper.to_array(t.t))
            return
        if op == "QuantizeLinear":
            self.lower_q(node)
            return
        if op == "DequantizeLinear":
            self.lower_dq(node)
            return
        if op in _VIEW_OPS:
            self.lower_view(node)
            return
        if op in _ACT_OPS:
            self.lower_act(node)
            return
        handler = {
            "Conv": self.lower_conv,
            "ConvTranspose": self.lower_conv_transpose,
            "Resize": self.lower_resize,
            "MaxPool": self.lower_pool,
            "AveragePool": self.lower_pool,
            "GlobalAveragePool": self.lower_gap,
            "Add": self.lower_add,
            "Sub": self.lower_sub,
            "Concat": self.lower_concat,
            "Gather": self.lower_gather,
            "Slice": self.lower_slice,
            "Split": self.lower_split,
            "Softmax": self.lower_host,
            "LRN": self.lower_host,
            "Mul": self.lower_mul,
            **{u: self.lower_unary for u in UNARY_OPS},
        }.get(op)
        if handler is None:
            raise self.unsupported(node, _unsupported_why(op))
        if op == "Split":
            self.lower_split(node)
            return
        if any(o for o in node.output[1:]):
            raise self.err("only the first output of the node may be used")
        handler(node)

    # ---- Q / DQ ---------------------------------------------------------------------

    def _qparams(self, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray, int]:
        scale = self.const(node.input[1], "scale").as_float().astype(np.float32)
        if len(node.input) > 2 and node.input[2]:
            zc = self.const(node.input[2], "zero point")
            zp = zc.value
        else:
            zp = np.zeros(scale.shape, dtype=np.uint8)
        axis = int(_attrs(node).get("axis", 1))
        return scale, zp, axis

    def lower_q(self, node: onnx.NodeProto) -> None:
        scale, zp, _ = self._qparams(node)
        if scale.size != 1:
            raise self.err("per-axis quantization of an activation is not supported")
        if zp.dtype not in (np.int8, np.uint8):
            raise self.err(f"zero point type {zp.dtype} is not supported (int8 or uint8)")
        offset = -128 if zp.dtype == np.uint8 else 0
        s = float(scale.reshape(()))
        z = int(zp.reshape(())) + offset
        if not (s > 0 and math.isfinite(s)):
            raise self.err(f"scale {s} is not a positive finite number")
        src = node.input[0]
        out = node.output[0]
        if src == self.input_name and src not in self.values:
            if self.inputs:
                t = self.tensors[self.inputs[0]]
                if t.name in self.float_inputs:
                    raise self.err(f"the graph input '{src}' is read unquantized by a host "
                                   "node and quantized by this QuantizeLinear; an input is "
                                   "either quantized or float: quantize it once before every "
                                   "reader")
                if _f32(t.scale) != _f32(s) or t.zero_point != z:
                    raise self.err("the graph input is quantized twice with different parameters")
            else:
                t = self.add_tensor(src, self.input4, s, z)
                self.inputs.append(t.name)
                self.onnx_int8[t.name] = (out, offset)
            self.values[out] = _QVal(t.name, self.input_shape)
            return
        v = self.val(src)
        if isinstance(v, _Const):
            raise self.err(
                f"QuantizeLinear of the constant '{src}': constant activations are not "
                "supported (quantize weights with DequantizeLinear of an integer initializer)"
            )
        if isinstance(v, _QVal):
            t_in = self.tensors[v.tensor]
            if _f32(t_in.scale) == _f32(s) and t_in.zero_point == z:
                self.values[out] = _QVal(v.tensor, v.shape)
                self.onnx_int8.setdefault(v.tensor, (out, offset))
                return
            t_out = self.add_tensor(src, t_in.shape, s, z)
            self.nodes.append(self.requant_conv(self.node_name(self.cur_name), t_in, t_out, Act()))
            self.values[out] = _QVal(t_out.name, v.shape)
            self.onnx_int8[t_out.name] = (out, offset)
            return
        if isinstance(v, _Fn):
            self.quantize_fn(v, src, out, s, z, offset)
            return
        t = self.add_tensor(src, v.shape4, s, z)
        self.nodes.extend(self.materialize(v, t))
        self.values[out] = _QVal(t.name, v.shape)
        self.onnx_int8[t.name] = (out, offset)

    def materialize(self, p: _Pending, out: QTensor) -> list[QNode]:
        act = _make_act(p.lo, p.hi, out)
        if act.kind == "none" or p.supports_act:
            return p.build(out, act)
        pre = self.add_tensor(out.name + "/pre", out.shape, out.scale, out.zero_point)
        nodes = p.build(pre, Act())
        nodes.append(self.requant_conv(self.node_name(p.name + "/act"), pre, out, act))
        return nodes

    def lower_dq(self, node: onnx.NodeProto) -> None:
        src = node.input[0]
        v = self.val(src)
        out = node.output[0]
        if isinstance(v, _Const):
            scale, zp, axis = self._qparams(node)
            if zp.size == 1 and scale.size == 1:
                zp = zp.reshape(())
                scale = scale.reshape(())
            axis = axis if axis >= 0 else axis + v.value.ndim
            self.values[out] = _Const(v.value, scale, zp, axis)
            return
        if isinstance(v, _QVal):
            self.values[out] = v
            return
        raise self.err(f"DequantizeLinear of the float tensor '{src}'")

    # ---- views and activations ------------------------------------------------------

    def _view_shape(self, node: onnx.NodeProto, shape: tuple[int, ...]) -> tuple[int, ...]:
        op = node.op_type
        a = _attrs(node)
        n = int(np.prod(shape))
        if op == "Identity":
            return shape
        if op == "Flatten":
            axis = int(a.get("axis", 1))
            axis = axis + len(shape) if axis < 0 else axis
            left = int(np.prod(shape[:axis]))
            return (left, n // left if left else 0)
        if op == "Reshape":
            if len(node.input) < 2:
                target = [int(x) for x in a.get("shape", [])]
            else:
                target = self.int_list(node.input[1], "shape")
            allow_zero = int(a.get("allowzero", 0))
            out = [shape[i] if (d == 0 and not allow_zero) else d for i, d in enumerate(target)]
            if out.count(-1) > 1:
                raise self.err(f"Reshape to {target} has more than one -1")
            if -1 in out:
                known = int(np.prod([d for d in out if d != -1]))
                out[out.index(-1)] = n // known if known else 0
            if int(np.prod(out)) != n:
                raise self.err(f"Reshape of {shape} to {target}: the element count differs")
            return tuple(out)
        axes_attr = a.get("axes")
        if axes_attr is None and len(node.input) > 1 and node.input[1]:
            axes = self.int_list(node.input[1], "axes")
        else:
            axes = [int(x) for x in axes_attr] if axes_attr is not None else []
        if op == "Squeeze":
            r = len(shape)
            axes_n = (
                {x + r if x < 0 else x for x in axes}
                if axes
                else {i for i, d in enumerate(shape) if d == 1}
            )
            if any(shape[x] != 1 for x in axes_n):
                raise self.err(f"Squeeze of a non-unit axis of {shape}")
            return tuple(d for i, d in enumerate(shape) if i not in axes_n)
        # Unsqueeze
        r = len(shape) + len(axes)
        inserted = sorted(x + r if x < 0 else x for x in axes)
        out_l = list(shape)
        for x in inserted:
            out_l.insert(x, 1)
        return tuple(out_l)

    def lower_view(self, node: onnx.NodeProto) -> None:
        v = self.val(node.input[0])
        if isinstance(v, _Const):
            if node.op_type == "Identity":
                self.values[node.output[0]] = v
                return
            new = self._view_shape(node, tuple(v.value.shape))
            self.values[node.output[0]] = _Const(v.as_float().reshape(new))
            return
        shape = v.shape
        new = self._view_shape(node, shape)
        if len(new) > 4 or len(new) < 1:
            raise self.err(f"a view of rank {len(new)} ({new}) is not supported")
        if isinstance(v, _QVal):
            self.values[node.output[0]] = _QVal(v.tensor, new)
        else:
            self.values[node.output[0]] = replace(v, shape=new)

    def lower_act(self, node: onnx.NodeProto) -> None:
        if node.op_type == "Relu":
            lo: float | None = 0.0
            hi: float | None = None
        else:
            a = _attrs(node)
            if self.opset < 11:
                lo = float(a.get("min", -np.inf))
                hi = float(a.get("max", np.inf))
            else:
                lo = (
                    float(self.const(node.input[1], "Clip min").as_float().reshape(()))
                    if len(node.input) > 1 and node.input[1]
                    else None
                )
                hi = (
                    float(self.const(node.input[2], "Clip max").as_float().reshape(()))
                    if len(node.input) > 2 and node.input[2]
                    else None
                )
            lo = None if lo is not None and lo == -np.inf else lo
            hi = None if hi is not None and hi == np.inf else hi
        if node.input[0] == self.input_name and self.input_name not in self.values:
            if not any(q.op_type == "QuantizeLinear" and q.input[0] == node.output[0]
                       for q in self.model.graph.node):
                raise self.err(f"{node.op_type} of the float graph input whose result is "
                               "never quantized runs on the host")
            self.values[node.output[0]] = self.input_act(node, lo, hi)
            return
        v = self.val(node.input[0])
        if isinstance(v, _Fn):
            self.values[node.output[0]] = self.fn_apply(
                node, v, lambda x: np.clip(x, np.float32(-np.inf if lo is None else lo),
                                           np.float32(np.inf if hi is None else hi)))
            return
        if isinstance(v, _Pending):
            if v.host:
                raise self.err(
                    f"an activation directly on the host op '{v.name}' ({v.op_type}) output "
                    "is not supported; quantize the host op's output first"
                )
            nlo = lo if v.lo is None else (v.lo if lo is None else max(v.lo, lo))
            nhi = hi if v.hi is None else (v.hi if hi is None else min(v.hi, hi))
            self.values[node.output[0]] = replace(v, lo=nlo, hi=nhi)
            return
        qv = self.qin(node.input[0])
        t_in = self.tensors[qv.tensor]
        name = self.node_name(self.cur_name)

        def build(out: QTensor, act: Act) -> list[QNode]:
            return [self.requant_conv(name, t_in, out, act)]

        self.values[node.output[0]] = _Pending(
            name, node.op_type, t_in.shape, qv.shape, build, supports_act=True, lo=lo, hi=hi
        )

    def input_act(self, node: onnx.NodeProto, lo: float | None, hi: float | None) -> _Pending:
        """Relu/Clip on the float graph input, before its QuantizeLinear: ``Q(act(x)) ==
        act_q(Q(x))`` (quantization is monotonic), so the input is quantized with the
        QuantizeLinear's parameters and a unit-weight conv applies the clamp."""
        name = self.node_name(self.cur_name)
        shape4 = self.input4

        def build(out: QTensor, act: Act) -> list[QNode]:
            if self.inputs:
                t_in = self.tensors[self.inputs[0]]
            else:
                t_in = self.add_tensor(self.input_name, shape4, out.scale, out.zero_point)
                self.inputs.append(t_in.name)
            return [self.requant_conv(name, t_in, out, act)]

        return _Pending(
            name, node.op_type, shape4, self.input_shape, build, supports_act=True, lo=lo, hi=hi
        )

    # ---- requantizing identity conv -------------------------------------------------

    def requant_conv(self, name: str, t_in: QTensor, t_out: QTensor, act: Act) -> QConv:
        """A requantizing copy ``t_out = act(Q_out(DQ_in(t_in)))``: a depthwise 1x1 QConv
        with unit weights and zero bias, ``multiplier / 2**shift == float32(s_in)`` and
        ``divisor = float32(s_out)``, so that it computes ORT's
        ``rne(float32(float32(float32(q - in_zp) * s_in) / s_out))``. ``mult_shift`` is
        exact for every float32 scale of at least ``2**-38``; a smaller ``s_in`` (not seen
        in practice) is rounded to the nearest ``m / 2**62``, and the result can then
        differ from ORT's."""
        c = t_in.shape[1]
        try:
            m, s = mult_shift(exact_f32(t_in.scale))
        except ValueError as exc:
            raise self.err(f"input scale: {exc}") from None
        return QConv(
            name=name,
            input=t_in.name,
            output=t_out.name,
            weight=np.ones((c, 1, 1, 1), dtype=np.int8),
            bias=np.zeros(c, dtype=np.int32),
            multiplier=np.full(c, m, dtype=np.int32),
            shift=np.full(c, s, dtype=np.int32),
            groups=c,
            act=act,
            divisor=exact_f32(t_out.scale),
        )

    # ---- element-wise functions of one tensor: 256-entry tables ---------------------

    def source_of(self, tensor: str) -> tuple[str, np.ndarray]:
        """``(source, table)`` with ``tensor == table[source + 128]`` element-wise (the
        tensor itself and the identity table unless a table node computed it)."""
        return self.derived.get(tensor, (tensor, act_tables.CODES))

    def fn_of(self, name: str) -> _Fn:
        """The input ``name`` (a quantized tensor, or a pending float function) as a
        function of the codes of its source tensor."""
        v = self.val(name)
        if isinstance(v, _Fn):
            return v
        qv = self.qin(name)
        t = self.tensors[qv.tensor]
        src, table = self.source_of(t.name)
        vals = act_tables.dequantize(table, t.scale, t.zero_point)
        return _Fn(qv.tensor, "DequantizeLinear", src, qv.shape,
                   lambda sc, zp: act_tables.quantize(vals, sc, zp), vals)

    def fn_apply(self, node: onnx.NodeProto, v: _Fn,
                 f: Callable[[np.ndarray], np.ndarray]) -> _Fn:
        if v.values is None:
            raise self.err(f"'{v.name}' ({v.op_type}) must be quantized before {node.op_type}")
        vals = f(v.values).astype(np.float32)
        return _Fn(self.cur_name, node.op_type, v.src, v.shape,
                   lambda sc, zp: act_tables.quantize(vals, sc, zp), vals)

    def lower_unary(self, node: onnx.NodeProto) -> None:
        """``DQ -> f -> Q`` for an element-wise ``f`` of one input (:data:`UNARY_OPS`)."""
        a = _attrs(node)
        op = node.op_type
        fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "Sigmoid": act_tables.sigmoid,
            "Tanh": act_tables.tanh,
            "HardSwish": act_tables.hard_swish,
            "HardSigmoid": lambda x: act_tables.hard_sigmoid(
                x, float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))),
            "LeakyRelu": lambda x: act_tables.leaky_relu(x, float(a.get("alpha", 0.01))),
            "Elu": lambda x: act_tables.elu(x, float(a.get("alpha", 1.0))),
            "Erf": act_tables.erf,
            "Gelu": lambda x: act_tables.gelu(x, str(a.get("approximate", "none"))),
        }
        self.values[node.output[0]] = self.fn_apply(node, self.fn_of(node.input[0]), fns[op])

    def lower_mul(self, node: onnx.NodeProto) -> None:
        """``DQ(a), DQ(b) -> Mul -> Q``. Where ``a`` and ``b`` are functions of one source
        tensor (``x * sigmoid(x)``): a table of that source, computed with ORT's
        ``QLinearMul`` arithmetic (:func:`vfpga.frontend.act_tables.qlinear_mul`);
        otherwise an element-wise :class:`QAdd` with ``op = "mul"`` (:meth:`lower_binary`)."""
        fa, fb = self.fn_of(node.input[0]), self.fn_of(node.input[1])
        if fa.src != fb.src or fa.shape != fb.shape:
            self.lower_binary(node, "mul")
            return
        qa, qb = self.val(node.input[0]), self.val(node.input[1])
        if isinstance(qa, _QVal) and isinstance(qb, _QVal):
            ta, tb = self.tensors[qa.tensor], self.tensors[qb.tensor]
            ca, cb = self.source_of(ta.name)[1], self.source_of(tb.name)[1]

            def table_for(sc: float, zp: int) -> np.ndarray:
                return act_tables.qlinear_mul(ca, ta.scale, ta.zero_point,
                                              cb, tb.scale, tb.zero_point, sc, zp)

            self.values[node.output[0]] = _Fn(self.cur_name, "Mul", fa.src, fa.shape,
                                              table_for)
            return
        if fa.values is None or fb.values is None:
            raise self.err("Mul of an unquantized integer result")
        vals = (fa.values * fb.values).astype(np.float32)
        self.values[node.output[0]] = _Fn(self.cur_name, "Mul", fa.src, fa.shape,
                                          lambda sc, zp: act_tables.quantize(vals, sc, zp), vals)

    def quantize_fn(self, v: _Fn, src: str, out: str, s: float, z: int, offset: int) -> None:
        """The ``QuantizeLinear`` of a function of one tensor: a table node."""
        t_src = self.tensors[v.src]
        table = np.asarray(v.table_for(s, z), dtype=np.int8)
        t = self.add_tensor(src, t_src.shape, s, z)
        self.nodes.append(self.table_conv(self.node_name(v.name), t_src, t, table))
        self.derived[t.name] = (v.src, table)
        self.values[out] = _QVal(t.name, v.shape)
        self.onnx_int8[t.name] = (out, offset)

    def table_conv(self, name: str, t_in: QTensor, t_out: QTensor, table: np.ndarray) -> QConv:
        """``t_out = table[t_in + 128]``: a depthwise 1x1 unit-weight QConv that copies
        its input exactly (``acc = q - zp``, scale 1, divisor 1, added back to the same
        zero point) and looks the copy up in ``table``."""
        c = t_in.shape[1]
        m, s = mult_shift(1.0)
        zp = t_in.zero_point
        return QConv(
            name=name, input=t_in.name, output=t_out.name,
            weight=np.ones((c, 1, 1, 1), dtype=np.int8), bias=np.zeros(c, dtype=np.int32),
            multiplier=np.full(c, m, dtype=np.int32), shift=np.full(c, s, dtype=np.int32),
            groups=c, act=Act("table", zp, zp, tuple(int(v) for v in table)), divisor=1.0)

    # ---- Conv -----------------------------------------------------------------------

    def weight_const(self, node: onnx.NodeProto) -> tuple[_Const, np.ndarray]:
        """The weight input of a Conv-like node, a DequantizeLinear of an integer
        initializer, and its scale (else a FrontendError telling to quantize the
        model)."""
        wc = self.val(node.input[1])
        if not isinstance(wc, _Const) or wc.scale is None:
            raise self.err(
                f"the weight '{node.input[1]}' is not a DequantizeLinear of an integer "
                "initializer; quantize the model (per-channel int8 weights) first"
            )
        return wc, wc.scale

    def lower_conv(self, node: onnx.NodeProto) -> None:
        a = _attrs(node)
        x = self.qin(node.input[0])
        t_in = self.tensors[x.tensor]
        wc, wscale = self.weight_const(node)
        wv = wc.value
        if wv.dtype not in (np.int8, np.uint8):
            raise self.err(f"weight type {wv.dtype} is not supported (int8 weights)")
        rank_sp = wv.ndim - 2
        if rank_sp not in (1, 2) or len(x.shape) != rank_sp + 2:
            raise self.err(
                f"{wv.ndim}-D weights on a {len(x.shape)}-D input: only 1-D and 2-D "
                "convolutions are supported"
            )
        oc = int(wv.shape[0])
        w_scale = (
            np.broadcast_to(wscale.astype(np.float32).reshape(-1), (oc,))
            if (wscale.size in (1, oc))
            else None
        )
        if w_scale is None or (wscale.size > 1 and wc.axis != 0):
            raise self.err("weights must be quantized per tensor or per output channel (axis 0)")
        zp = wc.zero_point if wc.zero_point is not None else np.zeros(1, dtype=np.int64)
        zp_b = (
            zp.astype(np.int16).reshape((-1,) + (1,) * (wv.ndim - 1))
            if zp.size > 1
            else (zp.astype(np.int16).reshape(()))
        )
        # int16 holds any int8/uint8 weight minus its zero point; (a VGG-16 FC layer has
        # 10^8 weights: int64 temporaries here cost 1.6 GB)
        w_int = wv.astype(np.int16)
        if np.any(zp_b):
            w_int -= zp_b
        if w_int.min(initial=0) < -128 or w_int.max(initial=0) > 127:
            raise self.err(
                "weights minus their zero point leave the int8 range; use symmetric int8 "
                "weight quantization"
            )
        if rank_sp == 1:
            w_int = w_int[..., np.newaxis]
        kernel = (int(w_int.shape[2]), int(w_int.shape[3]))
        groups = int(a.get("group", 1))
        c_in = t_in.shape[1]
        if c_in % groups or oc % groups or w_int.shape[1] * groups != c_in:
            raise self.err(
                f"weights {tuple(wv.shape)} with group={groups} do not match {c_in} input channels"
            )
        ks = a.get("kernel_shape")
        if ks is not None and tuple(int(k) for k in ks) != tuple(wv.shape[2:]):
            raise self.err(f"kernel_shape {ks} differs from the weight shape {tuple(wv.shape)}")
        in_hw = (t_in.shape[2], t_in.shape[3])
        raw_dil = [int(v) for v in a.get("dilations", [1] * rank_sp)]
        raw_dil = raw_dil if rank_sp == 2 else [raw_dil[0], 1]
        ext = ((kernel[0] - 1) * raw_dil[0] + 1, (kernel[1] - 1) * raw_dil[1] + 1)
        dl: list[int] = []
        strides, pads = _spatial_attrs(
            self.cur_name, a, in_hw, ext, rank_sp, lambda m: self.err(m), dl
        )
        dilations = (dl[0], dl[1])
        oh, ow = _out_hw(in_hw, ext, strides, pads)
        if oh < 1 or ow < 1:
            raise self.err(f"the output would be {oh}x{ow}")
        # ratios and bias
        s_in = t_in.scale
        acc_scale = np.array([_f32(_f32(s_in) * w_scale[c]) for c in range(oc)], dtype=np.float32)
        bias = self.conv_bias(node, oc, acc_scale)
        weight = w_int.astype(np.int8)
        name = self.node_name(self.cur_name)
        shape4 = (t_in.shape[0], oc, oh, ow)
        view = (shape4[0], oc, oh) if rank_sp == 1 else shape4

        def build(out: QTensor, act: Act) -> list[QNode]:
            mults, shifts = self.conv_requant(node, acc_scale, out)
            return [
                QConv(
                    name=name,
                    input=t_in.name,
                    output=out.name,
                    weight=weight,
                    bias=bias,
                    multiplier=mults,
                    shift=shifts,
                    strides=strides,
                    pads=pads,
                    groups=groups,
                    act=act,
                    dilations=dilations,
                )
            ]

        self.values[node.output[0]] = _Pending(name, "Conv", shape4, view, build, supports_act=True)

    # ---- ConvTranspose --------------------------------------------------------------

    def lower_conv_transpose(self, node: onnx.NodeProto) -> None:
        """A 2-D ``ConvTranspose`` (weights ``[C, OC, KH, KW]`` per tensor or per output
        channel, ``group = 1``) as a stride-1 QConv over the input upsampled by zero
        insertion (``upsample = strides``) with the kernel flipped and its channels
        swapped, padded ``k - 1 - p`` before and ``k - 1 - p + output_padding`` after:
        the same sums, term by term."""
        a = _attrs(node)
        x = self.qin(node.input[0])
        t_in = self.tensors[x.tensor]
        wc, wscale = self.weight_const(node)
        wv = wc.value
        if wv.dtype not in (np.int8, np.uint8) or wv.ndim != 4 or len(x.shape) != 4:
            raise self.err("only 2-D ConvTranspose with int8 weights is supported")
        if int(a.get("group", 1)) != 1:
            raise self.err(f"group={a.get('group')}: only group=1 ConvTranspose is supported")
        if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
            raise self.err(f"dilations {list(a['dilations'])} of a ConvTranspose are not "
                           "supported")
        if "output_shape" in a or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.err("output_shape / auto_pad of a ConvTranspose are not supported "
                           "(normalize the fp32 model: it makes the pads explicit)")
        ic, oc, kh, kw = (int(v) for v in wv.shape)
        if ic != t_in.shape[1]:
            raise self.err(f"weights {tuple(wv.shape)} do not match {t_in.shape[1]} input "
                           "channels")
        scale = wscale.astype(np.float32).reshape(-1)
        if scale.size not in (1, oc) or (scale.size > 1 and wc.axis != 1):
            raise self.err("ConvTranspose weights must be quantized per tensor or per output "
                           "channel (axis 1)")
        w_scale = np.broadcast_to(scale, (oc,))
        zp = wc.zero_point if wc.zero_point is not None else np.zeros(1, dtype=np.int64)
        w_int = wv.astype(np.int16)
        if np.any(zp):
            w_int -= (zp.astype(np.int16).reshape(1, -1, 1, 1) if zp.size > 1
                      else zp.astype(np.int16).reshape(()))
        if w_int.min(initial=0) < -128 or w_int.max(initial=0) > 127:
            raise self.err("weights minus their zero point leave the int8 range; use "
                           "symmetric int8 weight quantization")
        strides = tuple(int(v) for v in a.get("strides", [1, 1]))
        p = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
        op = [int(v) for v in a.get("output_padding", [0, 0])]
        k = (kh, kw)
        for d in range(2):
            if not 1 <= strides[d] <= min(k[d], MAX_UPSAMPLE):
                raise self.err(f"strides {list(strides)} with kernel {kh}x{kw}: the "
                               "accelerator needs 1 <= stride <= kernel size")
            if not (0 <= p[d] <= k[d] - 1 and 0 <= p[d + 2] <= k[d] - 1 + op[d]
                    and 0 <= op[d] < max(strides[d], 1)):
                raise self.err(f"pads {p} / output_padding {op} with kernel {kh}x{kw} are not "
                               "supported (0 <= pad <= kernel - 1)")
        if max(k) > MAX_KERNEL:
            raise self.err(f"kernel {kh}x{kw} is larger than {MAX_KERNEL}x{MAX_KERNEL}")
        weight = np.ascontiguousarray(w_int.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]).astype(np.int8)
        pads = (kh - 1 - p[0], kw - 1 - p[1], kh - 1 - p[2] + op[0], kw - 1 - p[3] + op[1])
        h, w = t_in.shape[2], t_in.shape[3]
        oh = (h - 1) * strides[0] + kh - p[0] - p[2] + op[0]
        ow = (w - 1) * strides[1] + kw - p[1] - p[3] + op[1]
        if oh < 1 or ow < 1:
            raise self.err(f"the output would be {oh}x{ow}")
        s_in = t_in.scale
        acc_scale = np.array([_f32(_f32(s_in) * w_scale[c]) for c in range(oc)], np.float32)
        name = self.node_name(self.cur_name)
        shape4 = (t_in.shape[0], oc, oh, ow)
        ups = (strides[0], strides[1])
        fsum = self.fsum_operands(node, t_in.shape, acc_scale, w_scale)
        bias = self.conv_bias(node, oc, acc_scale) if fsum is None else fsum[0]

        def build(out: QTensor, act: Act) -> list[QNode]:
            if fsum is not None:  # onnxruntime's float32 ConvTranspose (ISA v5 fsum)
                return [QConv(name=name, input=t_in.name, output=out.name, weight=weight,
                              bias=bias, multiplier=fsum[1], shift=fsum[2], pads=pads,
                              act=act, upsample=ups, divisor=float(_f32(out.scale)),
                              fsum_in_scale=float(_f32(s_in)))]
            mults, shifts = self.conv_requant(node, acc_scale, out)
            return [QConv(name=name, input=t_in.name, output=out.name, weight=weight,
                          bias=bias, multiplier=mults, shift=shifts, pads=pads, act=act,
                          upsample=ups)]

        self.values[node.output[0]] = _Pending(name, "ConvTranspose", shape4, shape4, build,
                                               supports_act=True)

    # ---- Resize ---------------------------------------------------------------------

    def lower_resize(self, node: onnx.NodeProto) -> None:
        """``Resize`` of an NCHW map by integer factors ``(fh, fw)`` in nearest mode whose
        coordinate transformation and rounding pick input ``o // f`` for output ``o``
        (checked on every output coordinate: asymmetric + floor, half_pixel /
        pytorch_half_pixel with any rounding, ...): a depthwise QConv with an
        ``fh x fw`` kernel of ones over the input upsampled by zero insertion, each output
        window holding exactly one input element; the requantization is a requantizing
        copy's (``DequantizeLinear -> QuantizeLinear``, exact: nearest resize computes
        nothing in float); so is a ``linear`` resize of a 1x1 map (a broadcast). Other
        modes and factors run on the host."""
        a = _attrs(node)
        x = self.qin(node.input[0])
        t_in = self.tensors[x.tensor]
        if len(x.shape) != 4:
            raise self.err("only Resize of a 4-D NCHW map is supported")
        n, c, h, w = t_in.shape
        out_shape = self.onnx_shapes().get(node.output[0])
        if out_shape is None or len(out_shape) != 4 or tuple(out_shape[:2]) != (n, c):
            raise self.err(f"Resize to {out_shape}: only spatial resizing of a map with a "
                           "static output shape is supported")
        oh, ow = int(out_shape[2]), int(out_shape[3])
        mode = _text(a.get("mode", "nearest"))
        ctm = _text(a.get("coordinate_transformation_mode", "half_pixel"))
        nm = _text(a.get("nearest_mode", "round_prefer_floor"))
        scales = self.resize_scales(node, (h, w), (oh, ow))
        # from a 1x1 map (a global pooling branch) every mode copies the one element:
        # linear interpolation of equal values (weights summing to 1) quantizes back to it
        broadcast = mode == "linear" and h == w == 1
        if mode == "linear" and not broadcast:
            self.lower_bilinear(node, t_in, (oh, ow), ctm)
            return
        if mode != "nearest" and not broadcast:
            raise self.err(f"Resize mode '{mode}' is not supported on the accelerator: the "
                           "accelerator resizes by nearest copies and bilinear interpolation")
        fh, fw = oh // h, ow // w
        if oh != fh * h or ow != fw * w or not (1 <= fh <= MAX_KERNEL and 1 <= fw <= MAX_KERNEL):
            raise self.err(f"Resize from {h}x{w} to {oh}x{ow}: the accelerator resizes by "
                           f"integer factors 1..{MAX_KERNEL}")
        for axis, (i, o, f) in enumerate(((h, oh, fh), (w, ow, fw))):
            if broadcast:
                continue
            src = nearest_source(i, o, float(scales[axis]), ctm, nm)
            if src is None or not np.array_equal(src, np.arange(o) // f):
                raise self.err(f"Resize nearest with coordinate_transformation_mode '{ctm}' "
                               f"and nearest_mode '{nm}' does not repeat each input element "
                               f"{f} times along axis {axis + 2}")
        name = self.node_name(self.cur_name)
        shape4 = (n, c, oh, ow)

        def build(out: QTensor, act: Act) -> list[QNode]:
            copy = self.requant_conv(name, t_in, out, act)
            copy.weight = np.ones((c, 1, fh, fw), np.int8)
            copy.upsample = (fh, fw)
            copy.pads = (fh - 1, fw - 1, fh - 1, fw - 1)
            return [copy]

        self.values[node.output[0]] = _Pending(name, "Resize", shape4, shape4, build,
                                               supports_act=True)

    def lower_bilinear(self, node: onnx.NodeProto, t_in: QTensor, out_hw: tuple[int, int],
                       ctm: str) -> None:
        """``DequantizeLinear -> Resize(mode=linear) -> QuantizeLinear`` of an NCHW map: a
        :class:`QResize` (the RESIZE instruction, ISA version 4), which repeats
        onnxruntime's float32 steps (docs/isa.md, RESIZE). Supported: the coordinate
        transformations torchvision and PaddlePaddle export (``half_pixel``,
        ``pytorch_half_pixel``, ``align_corners``, ``asymmetric``), spatial scales only,
        no ``antialias``, output sizes the 16-bit tile fields hold; anything else runs on
        the host (the error says why)."""
        a = _attrs(node)
        if ctm not in COORD_MODE_NAMES:
            raise self.err(f"Resize linear with coordinate_transformation_mode '{ctm}' is not "
                           "supported on the accelerator (RESIZE computes "
                           f"{', '.join(COORD_MODE_NAMES)})")
        if int(a.get("antialias", 0)):
            raise self.err("Resize linear with antialias=1 is not supported on the accelerator "
                           "(RESIZE interpolates between the two nearest input elements)")
        if "axes" in a and [int(v) for v in a["axes"]] not in ([2, 3], [-2, -1]):
            raise self.err(f"Resize axes {list(a['axes'])}: the accelerator resizes H and W")
        n, c, h, w = t_in.shape
        oh, ow = out_hw
        if max(h, w, oh, ow) > 0xFFFF:
            raise self.err(f"Resize from {h}x{w} to {oh}x{ow}: RESIZE maps are at most "
                           "65535 rows and columns")
        # the scales onnxruntime interpolates with: the model's, or f32(out) / f32(in)
        if len(node.input) > 2 and node.input[2]:
            sv = self.const(node.input[2], "scales").value.astype(np.float32).reshape(-1)
            if sv.size == 4:
                if sv[0] != 1 or sv[1] != 1:
                    raise self.err(f"Resize scales {sv.tolist()} resize the batch or channels")
                scales = (float(sv[2]), float(sv[3]))
            else:
                scales = self._size_scales((h, w), (oh, ow))
        else:
            scales = self._size_scales((h, w), (oh, ow))
        if not all(np.isfinite(v) and v > 0 for v in scales):
            raise self.err(f"Resize scales {list(scales)} must be finite and positive")
        name = self.node_name(self.cur_name)
        shape4 = (n, c, oh, ow)

        def build(out: QTensor, act: Act) -> list[QNode]:
            return [QResize(name, t_in.name, out.name, ctm, scales)]

        self.values[node.output[0]] = _Pending(name, "Resize", shape4, shape4, build,
                                               supports_act=False)

    @staticmethod
    def _size_scales(hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[float, float]:
        """onnxruntime's scales of a Resize given ``sizes``: ``f32(out) / f32(in)``, one
        float32 division."""
        f = np.float32
        return (float(f(out_hw[0]) / f(hw[0])), float(f(out_hw[1]) / f(hw[1])))

    def resize_scales(self, node: onnx.NodeProto, hw: tuple[int, int],
                      out_hw: tuple[int, int]) -> tuple[float, float]:
        """The spatial scales of a Resize: its constant ``scales`` input, or from ``sizes``
        the output / input ratios ONNX derives; ``roi`` must be absent or unused."""
        if len(node.input) > 2 and node.input[2]:
            sv = self.const(node.input[2], "scales").value.astype(np.float32).reshape(-1)
            if sv.size == 4:
                if sv[0] != 1 or sv[1] != 1:
                    raise self.err(f"Resize scales {sv.tolist()} resize the batch or channels")
                return float(sv[2]), float(sv[3])
        return (float(np.float32(out_hw[0] / hw[0])), float(np.float32(out_hw[1] / hw[1])))

    def conv_bias(self, node: onnx.NodeProto, oc: int, acc_scale: np.ndarray) -> np.ndarray:
        """The int32 bias of a Conv-like node from its optional third input: the integers
        of an int32 ``DequantizeLinear`` with the accumulator scale, else the float bias
        divided by it and rounded (clamped to int32)."""
        bias = np.zeros(oc, dtype=np.int64)
        if len(node.input) > 2 and node.input[2]:
            bc = self.val(node.input[2])
            if not isinstance(bc, _Const):
                raise self.err(f"the bias '{node.input[2]}' must be a constant")
            if (
                bc.scale is not None
                and bc.value.dtype == np.int32
                and np.allclose(
                    np.broadcast_to(bc.scale.astype(np.float64).reshape(-1), (oc,)),
                    acc_scale.astype(np.float64),
                    rtol=1e-6,
                    atol=0.0,
                )
                and not np.any(bc.zero_point if bc.zero_point is not None else 0)
            ):
                bias = bc.value.astype(np.int64).reshape(oc)
            else:
                bf = bc.as_float().astype(np.float64).reshape(-1)
                if bf.size != oc:
                    raise self.err(f"bias has {bf.size} values for {oc} output channels")
                bias = np.rint(bf / acc_scale.astype(np.float64)).astype(np.int64)
            bias = np.clip(bias, -(1 << 31), (1 << 31) - 1)
        return bias.astype(np.int32)

    def fsum_operands(self, node: onnx.NodeProto, in_shape: tuple[int, ...],
                      acc_scale: np.ndarray, w_scale: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """For a ``ConvTranspose``, the int32 bias and the ``(multiplier, shift)`` pairs
        holding the weight scales exactly, when the CONV ``fsum`` mode (ISA version 5)
        reproduces onnxruntime's float32 ``DequantizeLinear -> ConvTranspose ->
        QuantizeLinear``: the input map has more than one pixel (on a 1x1 map MLAS runs
        its matrix-vector kernel, whose summation order differs), the bias is absent or
        an int32 ``DequantizeLinear`` with zero point 0 and the scale
        ``f32(s_in * s_w[oc])`` exactly (what the accelerator dequantizes it with), and
        every weight scale is a float32 value ``multiplier / 2**shift`` represents. Else
        None: the transposed convolution sums exact integers (ISA version 3)."""
        if int(np.prod(in_shape[2:])) <= 1:
            return None
        oc = acc_scale.size
        bias = np.zeros(oc, dtype=np.int32)
        if len(node.input) > 2 and node.input[2]:
            bc = self.val(node.input[2])
            if not (isinstance(bc, _Const) and bc.scale is not None
                    and bc.value.dtype == np.int32 and bc.value.size == oc
                    and not np.any(bc.zero_point if bc.zero_point is not None else 0)):
                return None
            bscale = np.broadcast_to(bc.scale.astype(np.float32).reshape(-1), (oc,))
            if not np.array_equal(bscale, acc_scale):
                return None
            bias = bc.value.astype(np.int32).reshape(oc)
        mults = np.zeros(oc, dtype=np.int32)
        shifts = np.zeros(oc, dtype=np.int32)
        for c in range(oc):
            try:
                m, sh = mult_shift(float(w_scale[c]))
            except ValueError:
                return None
            if requant_scale(m, sh) != float(_f32(w_scale[c])):
                return None
            mults[c], shifts[c] = m, sh
        return bias, mults, shifts

    def conv_requant(self, node: onnx.NodeProto, acc_scale: np.ndarray,
                     out: QTensor) -> tuple[np.ndarray, np.ndarray]:
        """Per output channel the ``(multiplier, shift)`` of ``f32(acc_scale / s_out)``."""
        oc = acc_scale.size
        mults = np.zeros(oc, dtype=np.int32)
        shifts = np.zeros(oc, dtype=np.int32)
        for c in range(oc):
            try:
                m, s = mult_shift(ratio_f32(float(acc_scale[c]), divisor=out.scale))
            except ValueError as exc:
                raise self.err(f"output channel {c}: {exc}", node) from None
            mults[c], shifts[c] = m, s
        return mults, shifts

    # ---- pools ----------------------------------------------------------------------

    def lower_pool(self, node: onnx.NodeProto) -> None:
        a = _attrs(node)
        x = self.qin(node.input[0])
        t_in = self.tensors[x.tensor]
        rank_sp = len(x.shape) - 2
        ks = [int(k) for k in a.get("kernel_shape", [])]
        if rank_sp not in (1, 2) or len(ks) != rank_sp:
            raise self.err(
                f"kernel_shape {ks} on a {len(x.shape)}-D input: only 1-D and 2-D pooling is "
                "supported"
            )
        kernel = (ks[0], ks[1] if rank_sp == 2 else 1)
        in_hw = (t_in.shape[2], t_in.shape[3])
        strides, pads = _spatial_attrs(
            self.cur_name, a, in_hw, kernel, rank_sp, lambda m: self.err(m)
        )
        if int(a.get("storage_order", 0)) != 0:
            raise self.err("storage_order=1 is not supported")
        is_max = node.op_type == "MaxPool"
        cip = bool(int(a.get("count_include_pad", 0)))
        oh, ow = _out_hw(in_hw, kernel, strides, pads)
        if int(a.get("ceil_mode", 0)):
            dims = []
            for d in range(2):
                span = in_hw[d] + pads[d] + pads[d + 2] - kernel[d]
                o = -(-span // strides[d]) + 1
                if (o - 1) * strides[d] >= in_hw[d] + pads[d]:
                    o -= 1
                dims.append(o)
            if (dims[0], dims[1]) != (oh, ow):
                if not is_max and cip:
                    raise self.err(
                        "ceil_mode=1 with count_include_pad=1 changes the output size; "
                        "not supported"
                    )
                extra = [
                    max(
                        (dims[d] - 1) * strides[d] + kernel[d] - (in_hw[d] + pads[d] + pads[d + 2]),
                        0,
                    )
                    for d in range(2)
                ]
                pads = (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1])
                oh, ow = _out_hw(in_hw, kernel, strides, pads)
        if oh < 1 or ow < 1:
            raise self.err(f"the output would be {oh}x{ow}")
        for d in range(2):
            if pads[d] >= kernel[d] or pads[d + 2] >= kernel[d]:
                raise self.err(
                    f"padding {pads} is not smaller than the kernel {kernel}: a window could "
                    "hold only padding"
                )
        name = self.node_name(self.cur_name)
        shape4 = (t_in.shape[0], t_in.shape[1], oh, ow)
        view = shape4[:3] if rank_sp == 1 else shape4

        if is_max:

            def build(out: QTensor, act: Act) -> list[QNode]:
                if _same_quant(t_in, out):
                    return [QPool(name, t_in.name, out.name, "max", kernel, strides, pads)]
                mid = self.add_tensor(out.name + "/max", out.shape, t_in.scale, t_in.zero_point)
                return [
                    QPool(name, t_in.name, mid.name, "max", kernel, strides, pads),
                    self.requant_conv(self.node_name(name + "/requant"), mid, out, act),
                ]

            self.values[node.output[0]] = _Pending(
                name, node.op_type, shape4, view, build, supports_act=False
            )
            return

        def build_avg(out: QTensor, act: Act) -> list[QNode]:
            return [
                QPool(
                    name,
                    t_in.name,
                    out.name,
                    "avg",
                    kernel,
                    strides,
                    pads,
                    count_include_pad=cip,
                )
            ]

        self.values[node.output[0]] = _Pending(
            name, node.op_type, shape4, view, build_avg, supports_act=False
        )

    def lower_gap(self, node: onnx.NodeProto) -> None:
        x = self.qin(node.input[0])
        t_in = self.tensors[x.tensor]
        name = self.node_name(self.cur_name)
        n, c, h, w = t_in.shape
        shape4 = (n, c, 1, 1)
        view = tuple([n, c] + [1] * (len(x.shape) - 2))

        def build(out: QTensor, act: Act) -> list[QNode]:
            return [QPool(name, t_in.name, out.name, "global_avg", (h, w))]

        self.values[node.output[0]] = _Pending(
            name, node.op_type, shape4, view, build, supports_act=False
        )

    # ---- Add / Concat ---------------------------------------------------------------

    def lower_add(self, node: onnx.NodeProto) -> None:
        self.lower_binary(node, "add")

    def lower_sub(self, node: onnx.NodeProto) -> None:
        self.lower_binary(node, "sub")

    def lower_binary(self, node: onnx.NodeProto, op: EltKind) -> None:
        """``DQ(a), DQ(b) -> Add | Mul | Sub [-> Relu | Clip]* -> Q``: a :class:`QAdd`.
        Same shapes, or one operand per-channel ``[N, C, 1, 1]``: it becomes ``b`` (Add
        and Mul commute; a swapped Sub gets a negative divisor, an exact negation).
        Add (``QLinearAdd``): ``mult_x / 2**shift == float32(s_x / s_out)``; Mul
        (``QLinearMul``) and Sub (float ``Sub`` between DQ and Q): ``mult_x / 2**shift ==
        s_x`` exactly (else the node goes to the host) and ``divisor = s_out``. For Mul,
        ``s_b`` and ``divisor`` are both multiplied by the power of two ``2**k`` that
        gives ``s_b`` the exponent of ``s_a`` (so one shift holds both exactly): the ratio
        ``f32(f32(s_a * s_b) / divisor)`` that ELTWISE mul scales the product by then
        scales by ``2**k`` and back, an exact rescaling of normal float32 values."""
        what = {"add": "Add", "mul": "Mul", "sub": "Sub"}[op]
        for i in node.input:
            if isinstance(self.val(i), _Const):
                raise self.err(
                    f"{what} of the constant '{i}': normalize the model first (a per-channel "
                    "constant operand becomes a depthwise 1x1 convolution)"
                )
        qa, qb = self.qin(node.input[0]), self.qin(node.input[1])
        ta, tb = self.tensors[qa.tensor], self.tensors[qb.tensor]
        sign = 1.0
        if ta.shape != tb.shape:
            if len(ta.shape) == 4 and ta.shape == (*tb.shape[:2], 1, 1):
                qa, qb, ta, tb = qb, qa, tb, ta
                sign = -1.0
            elif not (len(tb.shape) == 4 and tb.shape == (*ta.shape[:2], 1, 1)):
                raise self.unsupported(
                    node, f"{what} of shapes {ta.shape} and {tb.shape}: only the same shape "
                    "or a per-channel [N, C, 1, 1] operand broadcast over the other is "
                    "supported on the accelerator")
        name = self.node_name(self.cur_name)
        view = qa.shape if len(qa.shape) >= len(qb.shape) else qb.shape
        k = 0
        if op != "add":
            sa, sb = exact_f32(ta.scale), exact_f32(tb.scale)
            if op == "mul":  # scale_b and the divisor by 2**k: an exact rescaling
                k = math.frexp(sa)[1] - math.frexp(sb)[1]
                sb = math.ldexp(sb, k)
            ma, mb, sh = mult_shift_pair(sa, sb)
            if requant_scale(ma, sh) != sa or requant_scale(mb, sh) != sb:
                raise self.unsupported(
                    node, f"{what} of operands with scales {sa!r} and {sb!r}: too far apart "
                    "for one shared shift (their float32 exponents differ by more than 7)")

        def build(out: QTensor, act: Act) -> list[QNode]:
            if op != "add":
                div = math.ldexp(exact_f32(out.scale), k) * (sign if op == "sub" else 1.0)
                if exact_f32(div) != div:
                    raise self.err(f"{what}: output scale {out.scale!r} times 2**{k} is not "
                                   "a float32 value", node)
                return [QAdd(name, ta.name, tb.name, out.name, ma, mb, sh, act, op, div)]
            # exact for every pair of float32 ratios whose exponents differ by at most 7
            # (all the bundled models); otherwise mult_shift_pair rounds the smaller one
            # to the nearest m / 2**shift and the Add can differ from ORT's QLinearAdd.
            try:
                m_a, m_b, s = mult_shift_pair(
                    ratio_f32(ta.scale, divisor=out.scale), ratio_f32(tb.scale, divisor=out.scale)
                )
            except ValueError as exc:
                raise self.err(str(exc), node) from None
            return [QAdd(name, ta.name, tb.name, out.name, m_a, m_b, s, act)]

        self.values[node.output[0]] = _Pending(
            name, what, ta.shape, view, build, supports_act=True
        )

    def lower_concat(self, node: onnx.NodeProto) -> None:
        a = _attrs(node)
        ins = [self.qin(i) for i in node.input]
        rank = len(ins[0].shape)
        axis = int(a.get("axis", 1))
        axis = axis + rank if axis < 0 else axis
        if axis != 1:
            raise self.err(f"Concat along axis {axis}: only the channel axis (1) is supported")
        ts = [self.tensors[q.tensor] for q in ins]
        for t in ts[1:]:
            if (t.shape[0], *t.shape[2:]) != (ts[0].shape[0], *ts[0].shape[2:]):
                raise self.err(f"Concat of shapes {ts[0].shape} and {t.shape}")
        c = sum(t.shape[1] for t in ts)
        shape4 = (ts[0].shape[0], c, ts[0].shape[2], ts[0].shape[3])
        view = (shape4[0], c, *ins[0].shape[2:])
        name = self.node_name(self.cur_name)

        def build(out: QTensor, act: Act) -> list[QNode]:
            nodes: list[QNode] = []
            names: list[str] = []
            for i, t in enumerate(ts):
                if _same_quant(t, out):
                    names.append(t.name)
                    continue
                rq = self.add_tensor(f"{out.name}/in{i}", t.shape, out.scale, out.zero_point)
                nodes.append(self.requant_conv(self.node_name(f"{name}/requant{i}"), t, rq, Act()))
                names.append(rq.name)
            nodes.append(QConcat(name, names, out.name, 1))
            return nodes

        self.values[node.output[0]] = _Pending(
            name, "Concat", shape4, view, build, supports_act=False
        )

    def lower_gather(self, node: onnx.NodeProto) -> None:
        """``DQ -> Gather(axis=1, constant indices) -> Q`` whose indices are a channel
        shuffle (what the normalizer writes for ShuffleNet's Reshape-Transpose-Reshape):
        :class:`QShuffle`. The quantization passes through (a requantizing copy follows
        only if the ``QuantizeLinear`` after it differs)."""
        a = _attrs(node)
        x = self.qin(node.input[0])
        t_in = self.tensors[x.tensor]
        axis = int(a.get("axis", 0))
        rank = len(x.shape)
        axis = axis + rank if axis < 0 else axis
        if rank != 4 or axis != 1:
            raise self.err(f"Gather along axis {axis} of a rank-{rank} tensor is not "
                           "supported; only a channel shuffle (axis 1 of an NCHW map)")
        idx = np.asarray(self.const(node.input[1], "indices").value).astype(np.int64)
        c = t_in.shape[1]
        groups = shuffle_groups(idx) if idx.shape == (c,) else 0
        if not groups:
            raise self.err(f"Gather with indices {idx.tolist()[:8]}... is not a channel "
                           f"shuffle of the {c} channels; only channel shuffles "
                           "(Reshape-Transpose-Reshape) are supported")
        name = self.node_name(self.cur_name)

        def build(out: QTensor, act: Act) -> list[QNode]:
            if _same_quant(t_in, out):
                return [QShuffle(name, t_in.name, out.name, groups)]
            mid = self.add_tensor(f"{out.name}/shuffled", t_in.shape, t_in.scale,
                                  t_in.zero_point)
            return [QShuffle(name, t_in.name, mid.name, groups),
                    self.requant_conv(self.node_name(f"{name}/requant"), mid, out, Act())]

        self.values[node.output[0]] = _Pending(
            name, "Gather", t_in.shape, x.shape, build, supports_act=False
        )

    def lower_slice(self, node: onnx.NodeProto) -> None:
        """``DQ -> Slice -> Q`` taking a channel range (axis 1, step 1, constant bounds) of
        a map (what the normalizer writes for ``Split`` and ``Slice`` along channels):
        :class:`QSlice`, a view. The quantization passes through (a requantizing copy
        follows only if the ``QuantizeLinear`` after it differs)."""
        x = self.qin(node.input[0])
        t_in = self.tensors[x.tensor]
        rank = len(x.shape)
        if len(node.input) < 3 or self.opset < 10:
            raise self.err("Slice without starts/ends inputs (opset < 10) is not supported")
        starts = [int(v) for v in self.const(node.input[1], "starts").value.reshape(-1)]
        ends = [int(v) for v in self.const(node.input[2], "ends").value.reshape(-1)]
        axes = ([int(v) for v in self.const(node.input[3], "axes").value.reshape(-1)]
                if len(node.input) > 3 and node.input[3] else list(range(len(starts))))
        steps = ([int(v) for v in self.const(node.input[4], "steps").value.reshape(-1)]
                 if len(node.input) > 4 and node.input[4] else [1] * len(starts))
        lo, hi = 0, t_in.shape[1]
        for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
            a = a + rank if a < 0 else a
            dim = x.shape[a]
            s = min(max(s + dim if s < 0 else s, 0), dim)
            e = min(max(e + dim if e < 0 else e, 0), dim)
            if st != 1:
                raise self.err(f"Slice with step {st} is not supported; only step 1")
            if a == 1 and rank in (2, 4):
                lo, hi = s, e
            elif (s, e) != (0, dim):
                raise self.err(f"Slice of axis {a} of a rank-{rank} tensor is not supported; "
                               "only a channel range (axis 1) of a map")
        if hi <= lo:
            raise self.err(f"Slice of channels [{lo}, {hi}) is empty")
        self.values[node.output[0]] = self.channel_range(x, lo, hi, self.cur_name, "Slice")

    def lower_split(self, node: onnx.NodeProto) -> None:
        """``DQ -> Split(axis=1) -> Q`` (a QDQ model's channel split): one
        :class:`QSlice` view per output (see :meth:`lower_slice`)."""
        x = self.qin(node.input[0])
        rank = len(x.shape)
        axis = int(_attrs(node).get("axis", 0))
        axis = axis + rank if axis < 0 else axis
        if axis != 1 or rank not in (2, 4):
            raise self.err(f"Split along axis {axis} of a rank-{rank} tensor is not "
                           "supported; only along channels (axis 1) of a map")
        c, k = x.shape[1], len(node.output)
        split = _attrs(node).get("split")
        if split is None and len(node.input) > 1 and node.input[1]:
            split = self.const(node.input[1], "split").value.reshape(-1)
        per = -(-c // k)
        sizes = ([int(v) for v in split] if split is not None
                 else [min(per, c - i * per) for i in range(k)])
        if len(sizes) != k or sum(sizes) != c or min(sizes) < 1:
            raise self.err(f"split sizes {sizes} do not divide the {c} channels into {k} "
                           "non-empty outputs")
        lo = 0
        for i, (o, size) in enumerate(zip(node.output, sizes, strict=True)):
            if o:
                self.values[o] = self.channel_range(x, lo, lo + size,
                                                    f"{self.cur_name}/{i}", "Split")
            lo += size

    def channel_range(self, x: _QVal, lo: int, hi: int, base: str, op_type: str) -> _Pending:
        """The pending channel range ``[lo, hi)`` of ``x``: a :class:`QSlice` view, with a
        requantizing copy after it when its ``QuantizeLinear`` has another quantization."""
        t_in = self.tensors[x.tensor]
        shape4 = (t_in.shape[0], hi - lo, *t_in.shape[2:])
        view = (x.shape[0], hi - lo, *x.shape[2:])
        name = self.node_name(base)

        def build(out: QTensor, act: Act) -> list[QNode]:
            if _same_quant(t_in, out):
                return [QSlice(name, t_in.name, out.name, lo)]
            mid = self.add_tensor(f"{out.name}/slice", shape4, t_in.scale, t_in.zero_point)
            return [QSlice(name, t_in.name, mid.name, lo),
                    self.requant_conv(self.node_name(f"{name}/requant"), mid, out, Act())]

        return _Pending(name, op_type, shape4, view, build, supports_act=False)

    # ---- host ops -------------------------------------------------------------------

    def lower_host(self, node: onnx.NodeProto) -> None:
        a = _attrs(node)
        x = self.qin(node.input[0])
        t_in = self.tensors[x.tensor]
        name = self.node_name(self.cur_name)
        attrs: dict[str, object]
        if node.op_type == "Softmax":
            rank = len(x.shape)
            axis = int(a.get("axis", -1 if self.opset >= 13 else 1))
            axis = axis + rank if axis < 0 else axis
            if self.opset < 13 and int(np.prod(t_in.shape[axis + 1 :])) != 1:
                raise self.err(
                    f"Softmax (opset {self.opset}) over the flattened dims {axis}.. of "
                    f"{x.shape} is not supported; only softmax along one axis"
                )
            attrs = {"axis": axis}
        else:
            size = int(a["size"])
            attrs = {
                "size": size,
                "alpha": float(a.get("alpha", 1e-4)),
                "beta": float(a.get("beta", 0.75)),
                "bias": float(a.get("bias", 1.0)),
            }

        def build(out: QTensor, act: Act) -> list[QNode]:
            return [QHostOp(name, node.op_type, [t_in.name], out.name, dict(attrs))]

        def build_float(out: QTensor) -> list[QNode]:
            return [QHostOp(name, node.op_type, [t_in.name], out.name, dict(attrs), True)]

        self.values[node.output[0]] = _Pending(
            name,
            node.op_type,
            t_in.shape,
            x.shape,
            build,
            supports_act=False,
            host=True,
            build_float=build_float,
        )

    # ---- outputs --------------------------------------------------------------------

    def finish_outputs(self) -> list[str]:
        g = self.model.graph
        self.output_shapes: dict[str, tuple[int, ...]] = {}
        out_tensors: list[tuple[str, str, tuple[int, ...]]] = []
        for o in g.output:
            v = self.values.get(o.name)
            if v is None:
                raise FrontendError(f"{self.source}: graph output '{o.name}' is never produced")
            if isinstance(v, _Const):
                raise FrontendError(f"{self.source}: graph output '{o.name}' is a constant")
            if isinstance(v, _Pending):
                if v.build_float is None or v.lo is not None or v.hi is not None:
                    raise FrontendError(
                        f"{self.source}: graph output '{o.name}' is the float output of node "
                        f"'{v.name}' ({v.op_type}) with no QuantizeLinear; only host ops "
                        f"({', '.join(HOST_OPS)}) may produce a float output"
                    )
                t = self.add_tensor(o.name, v.shape4, 1.0, 0)
                self.nodes.extend(v.build_float(t))
                out_tensors.append((o.name, t.name, v.shape))
                continue
            if isinstance(v, _Fn):
                raise FrontendError(
                    f"{self.source}: graph output '{o.name}' is the float output of node "
                    f"'{v.name}' ({v.op_type}) with no QuantizeLinear; quantize it (vfpga "
                    "quantize) or end the graph with a QuantizeLinear/DequantizeLinear pair"
                )
            out_tensors.append((o.name, v.tensor, v.shape))
        # a channel range (QSlice) is a view of another tensor's storage: a graph output
        # gets its own tensor through an exact copy
        sliced = {n.output for n in self.nodes if isinstance(n, QSlice)}
        for k, (onnx_name, tname, shape) in enumerate(out_tensors):
            if tname in sliced:
                t = self.tensors[tname]
                cp = self.add_tensor(f"{tname}/copy", t.shape, t.scale, t.zero_point)
                self.nodes.append(self.requant_conv(self.node_name(f"{tname}/copy"), t, cp,
                                                    Act()))
                out_tensors[k] = (onnx_name, cp.name, shape)
        # rename the tensors of graph outputs after the ONNX outputs
        used = [t for _, t, _ in out_tensors]
        outputs: list[str] = []
        for onnx_name, tname, shape in out_tensors:
            final = tname
            if (
                onnx_name != tname
                and onnx_name not in self.tensors
                and used.count(tname) == 1
                and tname not in self.inputs
            ):
                self._rename(tname, onnx_name)
                final = onnx_name
            outputs.append(final)
            if tuple(shape) != self.tensors[final].shape and onnx_name not in self.dynamic:
                self.output_shapes[final] = tuple(int(d) for d in shape)
        return outputs

    def _rename(self, old: str, new: str) -> None:
        t = self.tensors.pop(old)
        t.name = new
        self.tensors[new] = t
        if old in self.onnx_int8:
            self.onnx_int8[new] = self.onnx_int8.pop(old)
        for n in self.nodes:
            if isinstance(n, QConv | QPool | QShuffle | QSlice | QResize):
                if n.input == old:
                    n.input = new
                if n.output == old:
                    n.output = new
            elif isinstance(n, QAdd):
                if n.a == old:
                    n.a = new
                if n.b == old:
                    n.b = new
                if n.output == old:
                    n.output = new
            else:
                n.inputs = [new if i == old else i for i in n.inputs]
                if n.output == old:
                    n.output = new


def _rename_reads(g: QGraph, old: str, new: str) -> None:
    for n in g.nodes:
        if isinstance(n, QConv | QPool | QShuffle | QSlice | QResize):
            if n.input == old:
                n.input = new
        elif isinstance(n, QAdd):
            n.a = new if n.a == old else n.a
            n.b = new if n.b == old else n.b
        else:
            n.inputs = [new if i == old else i for i in n.inputs]


def _is_identity_requant(n: QConv) -> bool:
    """Whether the requantization of a unit-weight copy ``n`` with the same input and
    output zero point returns every input unchanged: ``scale[c] == divisor`` for every
    channel. Then ``v = f32(f32(d * s) / s)`` for the integer ``d = q - zp`` (``|d| <=
    255``) is within a few float32 ulps of ``d``, far from a rounding boundary, so
    ``rne(v) == d`` (and ``scale = divisor = 1.0`` is exact). Scales below ``2**-100``
    (where ``d * s`` could be subnormal and lose that precision) are not recognised."""
    div = float(np.float32(n.divisor))
    if not (math.isfinite(div) and div >= 2.0**-100):
        return False
    pairs = set(zip(n.multiplier.tolist(), n.shift.tolist(), strict=True))
    return all(
        0 <= m < MAX_MULTIPLIER and 0 <= s <= MAX_SHIFT and requant_scale(m, s) == div
        for m, s in pairs
    )


def _fuse_activations(g: QGraph, onnx_int8: dict[str, tuple[str, int]]) -> None:
    """Remove unit-weight requantizing QConvs with the same input and output quantization:
    without activation they are no-ops (their readers read the input instead, unless the
    output is a graph output); with one, it is folded into the QConv/QAdd producing the
    input when that producer has no activation yet and nothing else reads its output (not
    a graph output either)."""
    readers = _reader_counts(g)
    producer = {n.output: n for n in g.nodes}
    drop: set[int] = set()
    for idx, n in enumerate(g.nodes):
        if not _is_unit_copy(n):
            continue
        assert isinstance(n, QConv)
        t_in, t_out = g.tensors[n.input], g.tensors[n.output]
        if not (_same_quant(t_in, t_out) and _is_identity_requant(n)):
            continue
        if n.act.kind == "none":
            if n.output not in g.outputs:  # a no-op: readers read the input instead
                _rename_reads(g, n.output, n.input)
                readers[n.input] = readers.get(n.input, 0) - 1 + readers.get(n.output, 0)
                del g.tensors[n.output]
                onnx_int8.pop(n.output, None)
                drop.add(idx)
            continue
        p = producer.get(n.input)
        if (
            not isinstance(p, QConv | QAdd)
            or p.act.kind != "none"
            or readers.get(n.input, 0) != 1
            or n.input in g.outputs
        ):
            continue
        p.act = n.act
        p.output = n.output
        producer[n.output] = p
        del g.tensors[n.input]
        onnx_int8.pop(n.input, None)
        drop.add(idx)
    g.nodes = [n for i, n in enumerate(g.nodes) if i not in drop]


def _reader_counts(g: QGraph) -> dict[str, int]:
    """How many node inputs read each tensor."""
    readers: dict[str, int] = {}
    for n in g.nodes:
        for i in node_inputs(n):
            readers[i] = readers.get(i, 0) + 1
    return readers


def _is_unit_copy(n: QNode) -> bool:
    """A depthwise 1x1 QConv with unit weights and zero bias (a requantizing copy)."""
    return (
        isinstance(n, QConv)
        and n.groups == n.weight.shape[0]
        and n.weight.shape[1:] == (1, 1, 1)
        and bool(np.all(n.weight == 1))
        and bool(np.all(n.bias == 0))
        and n.strides == (1, 1)
        and n.pads == (0, 0, 0, 0)
    )


def _is_table_copy(n: QNode) -> bool:
    """A table node of :meth:`_Lowering.table_conv`: unit copy with scale and divisor 1
    and a ``table`` activation."""
    return (
        _is_unit_copy(n)
        and isinstance(n, QConv)
        and n.act.kind == "table"
        and float(np.float32(n.divisor)) == 1.0
        and all(requant_scale(int(m), int(s)) == 1.0
                for m, s in zip(n.multiplier, n.shift, strict=True))
    )


def _fuse_tables(g: QGraph, onnx_int8: dict[str, tuple[str, int]]) -> None:
    """Drop table nodes nobody reads (``x * sigmoid(x)`` reads ``x`` through one table
    computed from ``x``, not the sigmoid's), then fold each table node into the QConv
    producing its input when nothing else reads that input: the producer's clamp
    (``relu``/``relu6``) or earlier table is composed into the table, and the producer
    requantizes to the intermediate zero point (:meth:`Act.stage_zp`)."""
    while True:
        read = {i for n in g.nodes for i in node_inputs(n)}
        dead = [n for n in g.nodes
                if _is_table_copy(n) and n.output not in read and n.output not in g.outputs]
        if not dead:
            break
        for n in dead:
            g.nodes.remove(n)
            del g.tensors[n.output]
            onnx_int8.pop(n.output, None)
    readers = _reader_counts(g)
    producer = {n.output: n for n in g.nodes}
    drop: set[int] = set()
    for idx, n in enumerate(g.nodes):
        if not _is_table_copy(n):
            continue
        assert isinstance(n, QConv)
        p = producer.get(n.input)
        if (
            not isinstance(p, QConv)
            or readers.get(n.input, 0) != 1
            or n.input in g.outputs
            or n.act.lo != g.tensors[n.input].zero_point
        ):
            continue
        outer = np.asarray(n.act.table, dtype=np.int8)
        if p.act.kind == "table":
            inner = np.asarray(p.act.table, dtype=np.int8)
        else:
            lo, hi = (-128, 127) if p.act.kind == "none" else (
                (p.act.lo, 127) if p.act.kind == "relu" else (min(p.act.lo, p.act.hi), p.act.hi))
            inner = np.clip(act_tables.CODES, lo, hi).astype(np.int8)
        zp = p.act.lo if p.act.kind == "table" else n.act.lo
        p.act = Act("table", zp, zp, tuple(int(v) for v in act_tables.compose(outer, inner)))
        p.output = n.output
        producer[n.output] = p
        del g.tensors[n.input]
        onnx_int8.pop(n.input, None)
        drop.add(idx)
    g.nodes = [n for i, n in enumerate(g.nodes) if i not in drop]


def lower_qdq_mapped(model: onnx.ModelProto, source: str = "<model>", *,
                     quantized: bool = False) -> LoweringResult:
    """Lower a QDQ model and keep the map from QGraph tensors to ONNX int8 tensors (for
    layer-by-layer comparison with ONNX Runtime). See :func:`lower_qdq`; ``quantized``:
    the model is the output of :func:`vfpga.quant.quantize_model`, so an input it left
    float (even with no QuantizeLinear anywhere: a model of host ops only) is read by
    host segments unquantized."""
    if not isinstance(model, onnx.ModelProto):
        raise TypeError("lower_qdq expects an onnx.ModelProto")
    res = _Lowerer(model, source, quantized).run()
    _fuse_activations(res.graph, res.onnx_int8)
    _fuse_tables(res.graph, res.onnx_int8)
    return res


def lower_qdq(model: onnx.ModelProto, source: str = "<model>") -> QGraph:
    """Lower the QDQ ONNX ``model`` (``source`` names it in error messages) to a QGraph.

    The model must have one float input and consist of ``QuantizeLinear`` /
    ``DequantizeLinear`` islands around the ops in :data:`SUPPORTED_OPS` (see the module
    docstring for the patterns and their integer parameters). Raises
    :class:`vfpga.errors.FrontendError` naming the offending node, its op type and the
    supported ops for anything else.
    """
    return lower_qdq_mapped(model, source).graph
