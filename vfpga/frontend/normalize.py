"""Normalization of fp32 ONNX models to the small op set the quantizer and importer handle.

:func:`normalize` turns an fp32 ONNX model as exported by a framework (any opset from 7,
initializers listed as graph inputs, weights computed at run time by constant subgraphs)
into an equivalent fp32 ONNX model (opset >= 13, the same single input and outputs) whose
nodes are only the **normalized op set** :data:`NORMALIZED_OPS`:

* ``Conv`` — always with a bias input, 2-D, no dilation; ``BatchNormalization`` and
  per-channel ``Mul``/``Add``/``Sub``/``Div`` by constants are folded into the producing
  ``Conv`` when that conv's output has no other consumer, otherwise they become a
  depthwise 1x1 ``Conv`` (``group`` = channels); a ``Pad`` of constant zeros is folded into
  the consuming ``Conv`` (or ``AveragePool`` with ``count_include_pad=1``); ``Gemm`` and
  ``MatMul`` with a constant weight become a ``Conv``: 1x1 on ``(N, K, 1, 1)``, or KHxKW
  over the feature map when their input is a ``Flatten``/``Reshape`` of an ``(N, C, KH, KW)``
  map; a channel shuffle (``Reshape``-``Transpose``-``Reshape``) is folded into weights
  where that is free (into the consuming group-1 ``Conv``'s input channels, or the
  producing ``Conv``'s output channels when it does not mix conv groups), otherwise it
  becomes ``Gather`` along channels with constant indices (free on the accelerator: the
  producer writes its channels at their shuffled positions).
* ``Relu``; ``Clip`` only as ReLU6 (inputs min 0, max 6; ``Clip`` with min 0 and no max
  becomes ``Relu``).
* ``MaxPool``, ``AveragePool`` (``count_include_pad`` kept; ``ceil_mode`` and ``auto_pad``
  made explicit pads), ``GlobalAveragePool`` (also from ``ReduceMean`` over H, W).
* ``Add``, ``Mul``, ``Sub`` of two feature maps of the same shape, or of a map and a
  per-channel ``(N, C, 1, 1)`` map broadcast over its pixels (``Sum`` becomes a chain of
  ``Add``).
* ``Concat`` along channels (axis 1); ``Softmax`` (axis 1), ``LRN``.
* a final ``Reshape`` to the original 2-D shape for each graph output that was 2-D (or
  3-D), and a first ``Reshape`` of a 2-D ``(N, C)`` graph input to ``(N, C, 1, 1)``, of a
  3-D ``(N, C, L)`` one to the one-row map ``(N, C, 1, L)``: 1-D ``Conv``, ``MaxPool``,
  ``AveragePool`` (and ``BatchNormalization``, per-channel ``PRelu``) over it become
  their ``1 x K`` 2-D equivalents.

* ``Gelu`` (opset 20) for GELU written in its Erf form; ``MatMul``/``Gemm`` with a
  constant weight over the last (channel) axis of a token tensor ``(N, T, C)`` or an NHWC
  map become 1x1 ``Conv`` on a channels-last view (:class:`_Val`, docs/quantization.md).

Every tensor before the final ``Reshape`` is 4-D NCHW; a 2-D ``(N, K)`` tensor of the
source is carried as ``(N, K, 1, 1)``, a token tensor ``(N, T, C)`` as ``(N, C, 1, T)``.
``Dropout`` and ``Identity`` are removed. ONNX node names are kept (unnamed nodes are
named ``<OpType>_<index>``); a folded node's name is lost, a node that replaces a source
node takes its name.

Anything else raises :class:`vfpga.errors.FrontendError` naming the file, node and op.
QDQ models (with ``QuantizeLinear``/``DequantizeLinear``) are not normalized: see
:func:`is_qdq`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from vfpga.errors import FrontendError
from vfpga.frontend.model_checks import check_model, dynamic_dim_error
from vfpga.frontend.norm_fold import (
    TARGET_OPSET,
    FoldedGraph,
    check_and_upgrade,
    default_opset,
    fold,
    load_model,
    strip_weights,
)
from vfpga.frontend.norm_graph import NGraph, NNode
from vfpga.frontend.qgraph import shuffle_groups
from vfpga.isa.limits import MAX_DILATION
from vfpga.quant.index_inputs import INDEX_ONNX_TYPE

#: ONNX op types :func:`normalize` accepts in its input (after constant folding; ops whose
#: inputs are all constants are evaluated whatever their type).
SUPPORTED_OPS: tuple[str, ...] = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "Div", "Dropout", "Elu", "Flatten", "Gather", "Gelu", "Gemm",
    "GlobalAveragePool", "HardSigmoid", "HardSwish",
    "Identity", "LRN", "LeakyRelu", "MatMul", "MaxPool", "Mul", "PRelu", "Pad", "ReduceMean",
    "Relu",
    "Reshape", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Sub", "Sum",
    "Tanh", "Transpose", "Unsqueeze",
    "ConvTranspose", "Resize",
)

#: ONNX op types of a normalized model.
NORMALIZED_OPS: tuple[str, ...] = (
    "Add", "AveragePool", "Clip", "Concat", "Conv", "Elu", "Gather", "Gelu",
    "GlobalAveragePool", "HardSigmoid", "HardSwish", "LRN", "LeakyRelu", "MaxPool", "Mul",
    "Relu", "Reshape", "Sigmoid", "Slice", "Softmax", "Sub", "Tanh",
    "ConvTranspose", "Resize",
)

_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "QLinearAdd", "ConvInteger", "MatMulInteger",
                  "QLinearConcat", "QLinearGlobalAveragePool", "QLinearAveragePool"}


@dataclass
class NormalizeReport:
    """What :func:`normalize_with_report` did: ``rewrites`` counts each kind of rewrite,
    ``ops`` the op types of the result, ``notes`` lists rewrites that cost run time (for
    example a channel shuffle that had to become a permutation convolution)."""

    source: str
    rewrites: Counter[str] = field(default_factory=Counter)
    ops: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    #: nodes kept as they are for the host (no accelerator normalization), with why
    host_nodes: dict[str, str] = field(default_factory=dict)


def is_qdq(model: onnx.ModelProto) -> bool:
    """Whether ``model`` is already quantized in QDQ form (has ``QuantizeLinear`` or
    ``DequantizeLinear`` nodes in its main graph)."""
    return any(n.op_type in _QDQ_OPS for n in model.graph.node)


def normalize(model: onnx.ModelProto | str | Path, source: str | None = None) -> onnx.ModelProto:
    """Normalize an fp32 ONNX model (a ``ModelProto`` or a path) to :data:`NORMALIZED_OPS`.

    ``source`` names the model in error messages (default: the path, else the graph name).
    The result computes the same function (up to float rounding) with the same input and
    output names and shapes. Raises :class:`~vfpga.errors.FrontendError` for unreadable or
    invalid models, QDQ models, more than one input, non-float32 input, dynamic or
    non-batch-1 shapes, and unsupported ops or op uses.
    """
    return normalize_with_report(model, source)[0]


def normalize_with_report(
    model: onnx.ModelProto | str | Path, source: str | None = None
) -> tuple[onnx.ModelProto, NormalizeReport]:
    """:func:`normalize`, also returning a :class:`NormalizeReport`."""
    proto, name = load_model(model, source)
    if is_qdq(proto):
        raise FrontendError(
            f"{name}: the model is already quantized (QDQ: it has QuantizeLinear/"
            "DequantizeLinear nodes); normalize() takes fp32 models only. Import QDQ models "
            "directly (vfpga.frontend lowering), without 'vfpga quantize'."
        )
    qop = sorted({n.op_type for n in proto.graph.node} & _QOPERATOR_OPS)
    if qop:
        raise FrontendError(
            f"{name}: the model is quantized in QOperator format ({', '.join(qop)}); only fp32 "
            "models (for 'vfpga quantize') and QDQ models are supported"
        )
    check_model(proto, name)
    proto = check_and_upgrade(proto, name)
    _check_input(proto, name)
    fg = fold(proto, name)
    report = NormalizeReport(name)
    tr = _Translator(fg, report)
    g, out_shapes = tr.run()
    _fold_affine(g, report)
    _resolve_perms(g, report)
    _push_act_above_concat(g, report)
    g.remove_dead()
    # HardSwish (from its written-out form too) exists from opset 14 on, Gelu from 20 on
    hard_swish = 14 if any(n.op_type == "HardSwish" for n in g.nodes) else 0
    gelu = _gelu_opset(g, fg.opset, report)
    opset = max(TARGET_OPSET, fg.opset, hard_swish, gelu)
    ir = min(max(fg.ir_version, 7), onnx.IR_VERSION)
    out = g.to_onnx(out_shapes, opset, ir, fg.domains, tr.output_types)
    _type_custom_outputs(out, fg)
    try:
        onnx.checker.check_model(strip_weights(out)[0])
    except onnx.checker.ValidationError as exc:  # a bug, but say which model triggered it
        raise AssertionError(f"normalize produced an invalid model for {name}: {exc}") from exc
    report.ops = Counter(n.op_type for n in out.graph.node)
    return out, report


def _is_static_shape(s: tuple[int | str, ...] | None) -> bool:
    return s is not None and all(isinstance(d, int) and d >= 0 for d in s)


def _type_custom_outputs(model: onnx.ModelProto, fg: FoldedGraph) -> None:
    """Declare (``value_info``) the type and shape of every custom-domain node's outputs,
    which onnx shape inference has no schema for: onnxruntime's quantizer quantizes only
    tensors of a known float type, so without them nothing after such a node would be
    quantized."""
    outs = set(model.graph.output[i].name for i in range(len(model.graph.output)))
    for n in model.graph.node:
        if n.domain in ("", "ai.onnx"):
            continue
        for o in n.output:
            s = fg.shapes.get(o)
            if o and o not in outs and s is not None and all(isinstance(d, int) for d in s):
                model.graph.value_info.append(helper.make_tensor_value_info(
                    o, fg.dtypes.get(o, onnx.TensorProto.FLOAT), list(s)))


# -- input checks ---------------------------------------------------------------------------
def _check_input(model: onnx.ModelProto, name: str) -> None:
    g = model.graph
    inits = {i.name for i in g.initializer} | {s.values.name for s in g.sparse_initializer}
    real = [vi for vi in g.input if vi.name not in inits]
    if len(real) != 1:
        names = ", ".join(f"'{v.name}'" for v in real) or "none"
        raise FrontendError(
            f"{name}: the model must have exactly one graph input (an NCHW image batch); it "
            f"has {len(real)}: {names}"
        )
    vi = real[0]
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise FrontendError(f"{name}: input '{vi.name}' is not a tensor")
    if tt.elem_type not in (onnx.TensorProto.FLOAT, INDEX_ONNX_TYPE):
        tname = onnx.TensorProto.DataType.Name(tt.elem_type)
        raise FrontendError(
            f"{name}: input '{vi.name}' has element type {tname}; only float32 inputs and "
            "int64 ids (token ids read by Gather) are supported (quantization happens "
            "inside 'vfpga quantize')"
        )
    if not tt.HasField("shape"):
        raise FrontendError(f"{name}: input '{vi.name}' has no shape; re-export with a static "
                            "shape such as [1, 3, 224, 224]")
    shape_txt = "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else
                                (d.dim_param or "?") for d in tt.shape.dim) + "]"
    dims_txt = [str(d.dim_value) for d in tt.shape.dim]
    err = dynamic_dim_error(name, vi.name, tt)
    if err is not None:
        raise err
    if len(tt.shape.dim) not in (2, 3, 4, 5):
        raise FrontendError(
            f"{name}: input '{vi.name}' has shape {shape_txt}; an NCHW image input of rank 4, "
            "an (N, C, L) sequence of rank 3, an (N, C) vector input of rank 2 or a rank-5 "
            "volume (on the host) is required"
        )
    if tt.shape.dim[0].dim_value != 1:
        raise FrontendError(
            f"{name}: input '{vi.name}' has batch size {tt.shape.dim[0].dim_value} (shape "
            f"{shape_txt}); the accelerator runs batch 1: re-export with batch 1 or pass "
            f"--input-shape {vi.name}=1x{'x'.join(dims_txt[1:])}"
        )


#: Host ops whose rank-4 result is taken for an NCHW map even when they read host values
#: only (a channel shuffle or layout change written with reshapes).
_HOST_MAP_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


# -- translation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Val:
    """How a source tensor is held in the new graph: the 4-D tensor ``name``; ``rank`` is
    the source rank (4, or 2 for ``(N, K)`` held as ``(N, K, 1, 1)``); ``flat`` means the
    source tensor is the ``(N, C*H*W)`` flattening of the ``(N, C, H, W)`` map ``name``;
    ``pad`` is a pending zero padding ``(top, left, bottom, right)`` not yet applied.

    ``cl`` (channels last) means the source tensor is ``name`` transposed to
    ``(N, H, W, C)`` and reshaped to the source shape, whose last axis is the channel
    axis: a token sequence ``(N, T, C)`` (held as ``(N, C, 1, T)``, or as the map it was
    flattened from) or an NHWC map ``(N, H, W, C)``; token-wise ``MatMul``/``Gemm``
    become 1x1 ``Conv`` on ``name``. A rank-3 source without ``cl`` is ``name`` reshaped
    to ``(N, C, H*W)``. Layout changes between the two forms (``Transpose``) are free."""

    name: str
    rank: int
    flat: bool = False
    pad: tuple[int, int, int, int] | None = None
    cl: bool = False

    @property
    def seq(self) -> bool:
        """Whether the source is not an NCHW map or (N, K) vector (a channels-last view
        or a rank-3 sequence): only element-wise ops, views, transposes and token-wise
        linear layers read it on the accelerator."""
        return self.cl or self.rank == 3


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _auto_pads(auto_pad: str, in_hw: tuple[int, int], k: tuple[int, int],
               s: tuple[int, int], d: tuple[int, int] = (1, 1)) -> list[int]:
    """Explicit ``(top, left, bottom, right)`` pads of ``auto_pad`` SAME_UPPER/SAME_LOWER."""
    begin, end = [0, 0], [0, 0]
    for i in range(2):
        out = -(-in_hw[i] // s[i])
        total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0)
        small, big = total // 2, total - total // 2
        begin[i], end[i] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    return [begin[0], begin[1], end[0], end[1]]


class _Translator:
    """Walks the folded source graph in order and emits normalized nodes."""

    def __init__(self, fg: FoldedGraph, report: NormalizeReport) -> None:
        self.fg = fg
        self.report = report
        (inp,) = fg.inputs
        shape = tuple(int(d) for d in fg.shapes[inp])
        self.g = NGraph(fg.graph_name or "model", inp, shape)
        for n in fg.nodes:
            self.g.reserve(n.name)
            for t in [*n.input, *n.output]:
                self.g.reserve(t)
        for t in [*fg.consts, *fg.inputs, *fg.outputs]:
            self.g.reserve(t)
        self.g.shapes[inp] = shape
        self.host_only: set[str] = set()
        #: an int64 input (token ids, ``vfpga.quant.index_inputs``): host nodes read it
        self.index_input = fg.dtypes.get(inp, onnx.TensorProto.FLOAT) == INDEX_ONNX_TYPE
        if self.index_input:
            self.g.input_type = INDEX_ONNX_TYPE
            self.host_only.add(inp)
        # a rank-5 input (a volume) is read by host nodes only (:meth:`act`)
        self.env: dict[str, _Val] = {inp: _Val(inp, 5 if len(shape) == 5 else 4)}
        if len(shape) in (2, 3) and not self.index_input:
            # an (N, C) input is held as (N, C, 1, 1) from the first node on, an (N, C, L)
            # one as the one-row map (N, C, 1, L) (1-D ops become 1 x K 2-D ones)
            shape4 = (shape[0], shape[1], 1, shape[2] if len(shape) == 3 else 1)
            name4 = self.g.fresh(f"{inp}_4d")
            shp = self.g.add_const(f"{inp}_shape4", np.array(shape4, dtype=np.int64))
            self.emit(self.g.fresh(f"Reshape_{inp}"), "Reshape", [inp, shp], name4)
            self.g.shapes[name4] = shape4
            self.env[inp] = _Val(name4, len(shape))
        self.cons: dict[str, list[onnx.NodeProto]] = {}
        for n in fg.nodes:
            for i in n.input:
                self.cons.setdefault(i, []).append(n)
        self.skip: set[str] = set()
        #: outputs of host nodes that are not feature maps (only host nodes read them),
        #: and an int64 input
        #: channels-last host outputs, kept under their own name for later host nodes
        self.host_src: set[str] = set()
        #: rank-4 host outputs taken for NCHW maps (never reshaped to a sequence)
        self.host_maps: set[str] = set()

    # -- helpers --------------------------------------------------------------------------
    def err(self, n: onnx.NodeProto, msg: str) -> FrontendError:
        return FrontendError(f"{self.fg.source}: node '{n.name}' ({n.op_type}): {msg}")

    def unsupported(self, n: onnx.NodeProto) -> FrontendError:
        dom = f" in domain '{n.domain}'" if n.domain not in ("", "ai.onnx") else ""
        return FrontendError(
            f"{self.fg.source}: node '{n.name}' ({n.op_type}{dom}) is not supported; supported "
            f"ops: {', '.join(SUPPORTED_OPS)}"
        )

    def shape(self, n: onnx.NodeProto, t: str) -> tuple[int, ...]:
        s = self.fg.shapes.get(t)
        if s is None or not all(isinstance(d, int) for d in s):
            raise self.err(n, f"the shape of tensor '{t}' is unknown or not static ({s})")
        return tuple(int(d) for d in s)

    def is_const(self, t: str) -> bool:
        return t in self.fg.consts

    def const(self, n: onnx.NodeProto, i: int, what: str) -> np.ndarray:
        if i >= len(n.input) or not n.input[i]:
            raise self.err(n, f"the {what} input is missing")
        t = n.input[i]
        if t not in self.fg.consts:
            raise self.err(n, f"the {what} ('{t}') must be a constant (initializer)")
        return self.fg.consts[t]

    def opt_const(self, n: onnx.NodeProto, i: int) -> np.ndarray | None:
        if i >= len(n.input) or not n.input[i]:
            return None
        return self.const(n, i, f"input {i}")

    def act(self, n: onnx.NodeProto, i: int | str, *, allow_flat: bool = False,
            allow_pad: bool = False, allow_seq: bool = False, host: bool = False) -> _Val:
        """The feature map read as input ``i`` (an index, or a tensor name) of ``n``;
        ``allow_seq`` admits channels-last and rank-3 views (:attr:`_Val.seq`); ``host``
        (a host node's read) also a rank-5 graph input."""
        t = n.input[i] if isinstance(i, int) else i
        if t in self.fg.consts:
            raise self.err(n, f"input '{t}' is a constant where a feature map is expected")
        v = self.env.get(t)
        if v is None:
            raise self.err(n, f"input '{t}' is not produced by any supported node")
        if v.rank > 4 and not host:
            raise self.err(n, f"input '{t}' of shape {list(self.shape(n, t))} has rank "
                              f"{v.rank}; the accelerator runs 1-D and 2-D ops, rank-5 "
                              "volumes go to the host")
        if v.seq and not allow_seq:
            raise self.err(n, f"input '{t}' of shape {list(self.shape(n, t))} is a token "
                              "sequence or channels-last map; on the accelerator only "
                              "element-wise ops, reshapes, Transpose and MatMul/Gemm with a "
                              "constant weight read it")
        if v.flat and not allow_flat:
            raise self.err(n, f"input '{t}' is a flattened feature map; only Gemm/MatMul (fully "
                              "connected layers) may consume a Flatten/Reshape to 2-D of a "
                              "map with spatial size > 1")
        if v.pad is not None and not allow_pad:
            raise self.err(n, f"input '{t}' comes from a zero Pad that can only be folded into "
                              "a Conv or an AveragePool")
        return v

    def define(self, t: str, v: _Val, phys: tuple[int, ...] | None = None) -> None:
        self.env[t] = v
        if phys is not None:
            self.g.shapes[v.name] = phys

    def phys(self, n: onnx.NodeProto, t: str) -> tuple[int, ...]:
        s = self.shape(n, t)
        if len(s) == 4:
            return s
        if len(s) == 2:
            return (s[0], s[1], 1, 1)
        if len(s) == 3:  # an (N, C, L) sequence: the one-row map (N, C, 1, L)
            return (s[0], s[1], 1, s[2])
        raise self.err(n, f"tensor '{t}' has rank {len(s)}; only 4-D NCHW maps, 3-D (N, C, L) "
                          "sequences and 2-D (N, K) vectors are supported")

    def is_line(self, x: _Val) -> bool:
        """Whether ``x`` is an ``(N, C, L)`` sequence held as the one-row map
        ``(N, C, 1, L)`` (channels first, not flattened): 1-D convolutions, pools and
        per-channel ops read it as that map."""
        return (x.rank == 3 and not x.cl and not x.flat and x.pad is None
                and self.g.shapes[x.name][2] == 1)

    def line_attrs(self, n: onnx.NodeProto, *attrs: list[int]) -> list[list[int]]:
        """The 2-D ``(1, a)`` form of each 1-D attribute ``[a]`` (strides, dilations,
        kernel) of a 1-D op over a line (:meth:`is_line`); the defaults ``[1, 1]`` stay."""
        out = []
        for a in attrs:
            if len(a) == 1:
                out.append([1, int(a[0])])
            elif a == [1, 1]:
                out.append(a)
            else:
                raise self.err(n, f"attribute {a} of a 1-D op must have one value")
        return out

    def emit(self, n: onnx.NodeProto | str, op: str, inputs: list[str], out: str,
             **attrs: Any) -> NNode:
        name = n if isinstance(n, str) else n.name
        node = NNode(name, op, inputs, [out], attrs)
        self.g.nodes.append(node)
        return node

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> tuple[NGraph, dict[str, tuple[int | None, ...]]]:
        for n in self.fg.nodes:
            if n.name in self.skip:
                continue
            handler = getattr(self, f"op_{n.op_type}", None)
            if n.domain not in ("", "ai.onnx") or handler is None:
                self.on_host(n, str(self.unsupported(n)))
                continue
            if self.index_input and self.g.input in n.input:
                self.on_host(n, f"reads the int64 ids of the graph input '{self.g.input}' "
                                "(an Embedding; the accelerator computes on int8 maps)")
                continue
            if any(i in self.host_only for i in n.input):
                self.on_host(n, "reads a host node's output that is not a feature map")
                continue
            snap = (len(self.g.nodes), dict(self.env), dict(self.g.shapes), set(self.skip))
            try:
                handler(n)
            except FrontendError as exc:
                k, self.env, self.g.shapes, self.skip = snap
                del self.g.nodes[k:]
                self.on_host(n, str(exc))
        return self.g, self.finish_outputs()

    def on_host(self, n: onnx.NodeProto, why: str) -> None:
        """Keep ``n`` as it is, for the host (the QDQ lowering partitions it into a host
        segment): its feature-map inputs are reshaped back to their ONNX shapes, its rank-4
        and rank-2 outputs become feature maps again, other outputs stay host-only. ``why``
        (the error the accelerator normalization gave) goes to the report."""
        self.report.host_nodes[n.name] = why
        ins: list[str] = []
        first_cl: tuple[int, ...] | None = None
        # a rank-4 result computed from host values only (an attention score, a head's
        # slice) is not an NCHW map, unless a reshape-like op made it one
        only_host = all(not t or t in self.host_only or t in self.fg.consts for t in n.input)
        for t in n.input:
            if not t or t in self.host_only or t in self.host_src:
                ins.append(t)
            elif t in self.fg.consts:
                ins.append(self.g.add_const(t, self.fg.consts[t]))
            else:
                v = self.act(n, t, allow_flat=True, allow_seq=True, host=True)
                want = self.shape(n, t)
                if v.cl:
                    if first_cl is None:
                        first_cl = want
                    ins.append(self.to_source(v, want, t))
                    continue
                if self.g.shapes.get(v.name) == want:
                    ins.append(v.name)
                    continue
                shp = self.g.add_const(f"{t}_shape", np.array(want, dtype=np.int64))
                view = self.g.fresh(f"{t}_view")
                self.emit(self.g.fresh(f"Reshape_{t}"), "Reshape", [v.name, shp], view)
                self.g.shapes[view] = want
                ins.append(view)
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.domain not in ("", "ai.onnx"):
            attrs["domain"] = n.domain
        outs = [self.g.fresh(f"{o}_host") if o in self.fg.outputs else o for o in n.output]
        self.g.nodes.append(NNode(n.name, n.op_type, ins, outs, attrs))
        self.report.rewrites["host_node"] += 1
        for o, mine in zip(n.output, outs, strict=True):
            if not o:
                continue
            s = self.fg.shapes.get(o)
            shape = tuple(int(d) for d in s) if s and all(
                isinstance(d, int) and d > 0 for d in s) else None
            if o != mine:  # a graph output: finish_outputs reshapes it to its ONNX name
                self.define(o, _Val(mine, len(shape) if shape else 4),
                            shape if shape and len(shape) == 4 else None)
                if shape is not None:
                    self.g.shapes[mine] = shape
            elif shape is not None and (len(shape) == 3 or (len(shape) == 4
                                                           and shape == first_cl)):
                self.from_source(o, shape)
            elif shape is not None and len(shape) == 4 and (
                    not only_host or n.op_type in _HOST_MAP_OPS):
                self.define(o, _Val(o, 4), shape)
                self.host_maps.add(o)
            elif shape is not None and len(shape) == 2:
                shp = self.g.add_const(f"{o}_shape4", np.array((*shape, 1, 1), dtype=np.int64))
                name4 = self.g.fresh(f"{o}_4d")
                self.emit(self.g.fresh(f"Reshape_{o}"), "Reshape", [o, shp], name4)
                self.g.shapes[o] = shape
                self.define(o, _Val(name4, 2), (*shape, 1, 1))
            else:
                self.host_only.add(o)
                if shape is not None:
                    self.g.shapes[o] = shape

    def to_source(self, v: _Val, want: tuple[int, ...], t: str, out: str | None = None) -> str:
        """A tensor holding the channels-last source ``t`` of shape ``want`` (named
        ``out`` if given), computed from its NCHW map ``v.name``: ``Transpose`` for an
        NHWC map, else ``Reshape`` to ``(N, C, H*W)`` (a free view) and ``Transpose`` to
        ``(N, T, C)``, then ``Reshape`` to ``want`` if that differs."""
        n_, c, h, w = self.g.shapes[v.name]
        dst = out or self.g.fresh(f"{t}_src")
        if len(want) == 4 and want == (n_, h, w, c):
            self.emit(self.g.fresh(f"Transpose_{t}"), "Transpose", [v.name], dst,
                      perm=[0, 2, 3, 1])
            self.g.shapes[dst] = want
            return dst
        seq = self.g.fresh(f"{t}_seq")
        shp = self.g.add_const(f"{t}_seq_shape", np.array((n_, c, h * w), dtype=np.int64))
        self.emit(self.g.fresh(f"Reshape_{t}"), "Reshape", [v.name, shp], seq)
        self.g.shapes[seq] = (n_, c, h * w)
        tok = dst if want == (n_, h * w, c) else self.g.fresh(f"{t}_tokens")
        self.emit(self.g.fresh(f"Transpose_{t}"), "Transpose", [seq], tok, perm=[0, 2, 1])
        self.g.shapes[tok] = (n_, h * w, c)
        if tok != dst:
            shp2 = self.g.add_const(f"{t}_shape", np.array(want, dtype=np.int64))
            self.emit(self.g.fresh(f"Reshape_{t}"), "Reshape", [tok, shp2], dst)
            self.g.shapes[dst] = want
        return dst

    def from_source(self, o: str, shape: tuple[int, ...]) -> None:
        """Hold the host output ``o`` (a token sequence ``(N, T, C)`` or an NHWC map) as a
        channels-last view of an NCHW map: ``Transpose`` (and ``Unsqueeze`` to
        ``(N, C, 1, T)``). Both are float ops next to the host node, so the QDQ lowering
        keeps them in its host segment."""
        self.host_src.add(o)
        self.g.shapes[o] = shape
        if len(shape) == 4:
            phys = (shape[0], shape[3], shape[1], shape[2])
            name4 = self.g.fresh(f"{o}_nchw")
            self.emit(self.g.fresh(f"Transpose_{o}"), "Transpose", [o], name4,
                      perm=[0, 3, 1, 2])
            self.define(o, _Val(name4, 4, cl=True), phys)
            return
        n_, t, c = shape
        ct = self.g.fresh(f"{o}_ct")
        self.emit(self.g.fresh(f"Transpose_{o}"), "Transpose", [o], ct, perm=[0, 2, 1])
        self.g.shapes[ct] = (n_, c, t)
        axes = self.g.add_const(f"{o}_axes", np.array([2], dtype=np.int64))
        name4 = self.g.fresh(f"{o}_nchw")
        self.emit(self.g.fresh(f"Unsqueeze_{o}"), "Unsqueeze", [ct, axes], name4)
        self.define(o, _Val(name4, 3, cl=True), (n_, c, 1, t))

    def finish_outputs(self) -> dict[str, tuple[int | None, ...]]:
        out_shapes: dict[str, tuple[int | None, ...]] = {}
        #: graph outputs that are not float32 (data-dependent host outputs)
        self.output_types: dict[str, int] = {}
        for o in self.fg.outputs:
            if o in self.fg.consts:
                raise FrontendError(f"{self.fg.source}: graph output '{o}' is a constant")
            v = self.env.get(o)
            if v is None:
                raise FrontendError(f"{self.fg.source}: graph output '{o}' is not computed")
            shape = self.fg.shapes.get(o)
            if shape is None or not all(isinstance(d, int) for d in shape):
                out_shapes[o] = self.dynamic_host_output(o, v, shape)
                continue
            oshape = tuple(int(d) for d in shape)
            out_shapes[o] = oshape
            if v.pad is not None:  # nothing folds it: an explicit Pad (on the host)
                v = self.output_pad(o, v)
            if v.name == self.g.input:
                raise FrontendError(f"{self.fg.source}: graph output '{o}' is the graph input")
            if len(oshape) == 4 and not v.flat and not v.cl:
                if v.name != o:
                    if v.name in self.g.outputs:
                        raise FrontendError(
                            f"{self.fg.source}: graph outputs '{o}' and '{v.name}' are the "
                            "same tensor, which is not supported")
                    self.g.rename_tensor(v.name, o)
                    for k, w in list(self.env.items()):
                        if w.name == v.name:
                            self.env[k] = _Val(o, w.rank, w.flat, w.pad)
                self.g.outputs.append(o)
            else:
                if v.name == o:
                    phys_name = self.g.fresh(f"{o}_4d")
                    self.g.rename_tensor(o, phys_name)
                    for k, w in list(self.env.items()):
                        if w.name == o:
                            self.env[k] = replace(w, name=phys_name)
                    v = self.env[o]
                if v.cl:
                    self.to_source(v, oshape, o, out=o)
                else:
                    shp = self.g.add_const(f"{o}_shape", np.array(oshape, dtype=np.int64))
                    self.emit(self.g.fresh(f"Reshape_{o}"), "Reshape", [v.name, shp], o)
                self.g.shapes[o] = oshape
                self.g.outputs.append(o)
        return out_shapes

    def dynamic_host_output(self, o: str, v: _Val,
                            shape: tuple[int | str, ...] | None) -> tuple[int | None, ...]:
        """Graph output ``o`` whose shape the data decides (NonMaxSuppression, NonZero):
        kept as the host node computes it (its rank and element type, ``None`` for each
        data-dependent dimension) when a host node produces it; the QDQ lowering makes it
        a dynamic output of a host segment. Otherwise the :meth:`dynamic_output` error."""
        prod = next((n for n in self.fg.nodes if o in n.output), None)
        if prod is None or prod.name not in self.report.host_nodes or shape is None:
            raise FrontendError(self.dynamic_output(o, shape))
        self.g.rename_tensor(v.name, o)
        self.g.outputs.append(o)
        self.output_types[o] = self.fg.dtypes.get(o, onnx.TensorProto.FLOAT)
        self.report.rewrites["dynamic_host_output"] += 1
        return tuple(d if isinstance(d, int) else None for d in shape)

    def output_pad(self, o: str, v: _Val) -> _Val:
        """Graph output ``o``, a zero Pad ``v.pad`` of the map ``v.name`` that no Conv or
        AveragePool folds: an explicit ``Pad`` node (which the QDQ lowering runs on the
        host, the accelerator has no padding copy)."""
        assert v.pad is not None
        t, left, b, r = v.pad
        pads = self.g.add_const(f"{o}_pads", np.array([0, 0, t, left, 0, 0, b, r], np.int64))
        out = self.g.fresh(f"{o}_padded")
        self.emit(self.g.fresh(f"Pad_{o}"), "Pad", [v.name, pads], out, mode="constant")
        n_, c, h, w = self.g.shapes[v.name]
        self.define(o, _Val(out, v.rank), (n_, c, h + t + b, w + left + r))
        self.report.rewrites["output_pad"] += 1
        return self.env[o]

    def dynamic_output(self, o: str, shape: tuple[int | str, ...] | None) -> str:
        """The error for graph output ``o`` whose shape is not static: naming the host
        node that makes it data-dependent (NonMaxSuppression, NonZero, ...) if any."""
        src = self.fg.source
        prod = {t: n for n in self.fg.nodes for t in n.output}
        seen: set[str] = set()
        todo = [o]
        while todo:
            t = todo.pop()
            n = prod.get(t)
            if n is None or n.name in seen:
                continue
            seen.add(n.name)
            if n.name in self.report.host_nodes and all(
                    _is_static_shape(self.fg.shapes.get(i)) for i in n.input if i):
                dims = [d if isinstance(d, int) else "?" for d in shape or ()]
                return (f"{src}: graph output '{o}' has a data-dependent shape "
                        f"({dims}): node '{n.name}' "
                        f"({n.op_type}) decides its size at run time, and the runtime's "
                        "tensors have static shapes. End the model before that node (export "
                        "it without it) and run it in post-processing")
            todo.extend(i for i in n.input if i)
        return f"{src}: graph output '{o}' has unknown shape"

    # -- per-op handlers -------------------------------------------------------------------
    def op_Conv(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_pad=True, allow_seq=True)
        one_d = self.is_line(x)
        if x.rank != 4 and not one_d:
            raise self.err(n, "only 2-D convolutions over NCHW maps and 1-D ones over "
                              "(N, C, L) sequences are supported")
        w = self.const(n, 1, "weight")
        if one_d and w.ndim == 3:
            w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
        elif w.ndim != 4 or one_d:
            raise self.err(n, f"weight has rank {w.ndim}; only 2-D convolutions (and 1-D ones "
                              "over an (N, C, L) sequence) are supported")
        oc = w.shape[0]
        b = self.opt_const(n, 2)
        b = np.zeros(oc, np.float32) if b is None else b.astype(np.float32).reshape(oc)
        group = int(_attr(n, "group", 1))
        strides = [int(s) for s in _attr(n, "strides", [1, 1])]
        dil = [int(s) for s in _attr(n, "dilations", [1, 1])]
        if one_d:
            strides, dil = self.line_attrs(n, strides, dil)
        if len(dil) != 2 or not all(1 <= d <= MAX_DILATION for d in dil):
            raise self.err(n, f"dilations {dil} are not supported by the accelerator "
                              f"(1..{MAX_DILATION})")
        k = (int(w.shape[2]), int(w.shape[3]))
        pads = self.resolve_pads(n, x, k, (strides[0], strides[1]), (dil[0], dil[1]))
        if x.pad is not None:
            pads = [p + q for p, q in zip(pads, x.pad, strict=True)]
            self.report.rewrites["pad_folded"] += 1
        wn = self.g.add_const(f"{n.name}_W", w.astype(np.float32, copy=False))
        bn = self.g.add_const(f"{n.name}_B", b)
        out = n.output[0]
        extra = {"dilations": dil} if dil != [1, 1] else {}
        self.emit(n, "Conv", [x.name, wn, bn], out, kernel_shape=list(k), strides=strides,
                  pads=pads, group=group, **extra)
        self.define(out, _Val(out, x.rank), self.phys(n, out))

    def op_ConvTranspose(self, n: onnx.NodeProto) -> None:
        """A 2-D transposed convolution with constant weights ``[C, OC/group, KH, KW]``,
        kept as it is with explicit pads and output padding (``output_shape`` and
        ``auto_pad`` resolved against the inferred output shape); the QDQ lowering makes
        it a CONV over the zero-inserted input (docs/isa.md)."""
        x = self.act(n, 0)
        w = self.const(n, 1, "weight")
        if x.rank != 4 or w.ndim != 4:
            raise self.err(n, "only 2-D transposed convolutions over NCHW maps are supported")
        group = int(_attr(n, "group", 1))
        oc = int(w.shape[1]) * group
        b = self.opt_const(n, 2)
        b = np.zeros(oc, np.float32) if b is None else b.astype(np.float32).reshape(oc)
        strides = [int(v) for v in _attr(n, "strides", [1, 1])]
        dil = [int(v) for v in _attr(n, "dilations", [1, 1])]
        if dil != [1, 1]:
            raise self.err(n, f"dilations {dil} of a transposed convolution are not supported")
        k = (int(w.shape[2]), int(w.shape[3]))
        ih, iw = self.g.shapes[x.name][2:]
        oh, ow = self.shape(n, n.output[0])[2:]
        pads = [int(v) for v in _attr(n, "pads", [0, 0, 0, 0])]
        outpad = [int(v) for v in _attr(n, "output_padding", [0, 0])]
        if _attr(n, "output_shape") is not None or _attr(n, "auto_pad", "NOTSET") != "NOTSET":
            # total padding from the inferred output size; ONNX puts the odd one at the end
            # (SAME_UPPER, output_shape) or the beginning (SAME_LOWER)
            lower = _attr(n, "auto_pad", "NOTSET") == "SAME_LOWER"
            pads, outpad = [0, 0, 0, 0], [0, 0]
            for d, (i, o) in enumerate(((ih, oh), (iw, ow))):
                total = strides[d] * (i - 1) + k[d] - o
                if total < 0:
                    outpad[d] = -total
                    total = 0
                first = total - total // 2 if lower else total // 2
                pads[d], pads[d + 2] = first, total - first
        for d, (i, o) in enumerate(((ih, oh), (iw, ow))):
            if strides[d] * (i - 1) + k[d] - pads[d] - pads[d + 2] + outpad[d] != o:
                raise self.err(n, f"pads {pads} and output_padding {outpad} do not give the "
                                  f"inferred output size {oh}x{ow}")
        wn = self.g.add_const(f"{n.name}_W", w.astype(np.float32, copy=False))
        bn = self.g.add_const(f"{n.name}_B", b)
        out = n.output[0]
        self.emit(n, "ConvTranspose", [x.name, wn, bn], out, kernel_shape=list(k),
                  strides=strides, pads=pads, output_padding=outpad, group=group)
        self.define(out, _Val(out, 4), self.phys(n, out))

    def op_Resize(self, n: onnx.NodeProto) -> None:
        """A spatial ``Resize`` of a feature map (batch and channels unchanged), kept with
        its attributes and its scales as one constant; the QDQ lowering decides whether the
        accelerator runs it (nearest by integer factors, bilinear) or the host does."""
        x = self.act(n, 0)
        if x.rank != 4:
            raise self.err(n, "only Resize of an NCHW feature map is supported")
        ins = self.g.shapes[x.name]
        outs = self.shape(n, n.output[0])
        if len(outs) != 4 or tuple(outs[:2]) != tuple(ins[:2]):
            raise self.err(n, f"Resize from {list(ins)} to {list(outs)} changes the batch or "
                              "channels; only spatial resizing is supported")
        mode = _attr(n, "mode", "nearest")
        ctm = _attr(n, "coordinate_transformation_mode", "half_pixel")
        scales = self.opt_const(n, 2) if len(n.input) > 2 and n.input[2] else None
        if scales is not None and scales.size == 0:
            scales = None
        axes = _attr(n, "axes")
        if axes is not None and scales is not None:
            # opset 18: scales/sizes name only these axes; the others keep their size
            full = np.ones(4, np.float32)
            scales = scales.astype(np.float32).reshape(-1)
            if len(axes) != scales.size or any(not -4 <= int(a) < 4 for a in axes):
                raise self.err(n, f"Resize axes {list(axes)} do not match its "
                                  f"{scales.size} scales")
            for a, v in zip(axes, scales, strict=True):
                full[int(a) % 4] = v
            scales = full
        if scales is None or ctm == "tf_crop_and_resize":
            # sizes given (or a crop): the scales ONNX derives from them
            if ctm == "tf_crop_and_resize":
                raise self.err(n, "coordinate_transformation_mode tf_crop_and_resize is not "
                                  "supported")
            scales = np.array([o / i for o, i in zip(outs, ins, strict=True)], np.float32)
        scales = scales.astype(np.float32).reshape(-1)
        policy = _attr(n, "keep_aspect_ratio_policy", "stretch")
        if policy != "stretch" and len(n.input) > 3 and n.input[3]:
            raise self.err(n, f"Resize keep_aspect_ratio_policy={policy} is not supported; "
                              "export the resize with explicit scales or sizes (policy "
                              "'stretch')")
        if scales.size != 4 or scales[0] != 1 or scales[1] != 1:
            raise self.err(n, f"Resize scales {scales.tolist()} must be [1, 1, sh, sw]")
        attrs: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": ctm,
                                 "nearest_mode": _attr(n, "nearest_mode", "round_prefer_floor")}
        for key in ("cubic_coeff_a", "exclude_outside", "extrapolation_value", "antialias"):
            if (v := _attr(n, key)) is not None:
                attrs[key] = v
        sn = self.g.add_const(f"{n.name}_scales", scales)
        out = n.output[0]
        self.emit(n, "Resize", [x.name, "", sn], out, **attrs)
        self.define(out, _Val(out, 4), self.phys(n, out))

    def resolve_pads(self, n: onnx.NodeProto, x: _Val, k: tuple[int, int],
                     s: tuple[int, int], d: tuple[int, int] = (1, 1)) -> list[int]:
        auto = _attr(n, "auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            shp = self.g.shapes[x.name]
            return _auto_pads(auto, (shp[2], shp[3]), k, s, d)
        if auto == "VALID":
            return [0, 0, 0, 0]
        line = self.is_line(x)
        pads = [int(p) for p in _attr(n, "pads", [0, 0] if line else [0, 0, 0, 0])]
        if any(p < 0 for p in pads):
            raise self.err(n, f"negative pads {pads} are not supported")
        if line:
            if len(pads) != 2:
                raise self.err(n, f"pads {pads} of a 1-D op must have 2 values")
            return [0, pads[0], 0, pads[1]]
        return pads

    def affine(self, n: onnx.NodeProto, x: _Val, a: np.ndarray, b: np.ndarray, kind: str) -> None:
        """Emit ``out = a[c] * x + b[c]`` as a depthwise 1x1 Conv (folded later)."""
        out = n.output[0]
        c = self.g.shapes[x.name][1]
        w = np.broadcast_to(np.asarray(a, np.float32), (c,)).reshape(c, 1, 1, 1).copy()
        bias = np.broadcast_to(np.asarray(b, np.float32), (c,)).copy()
        wn = self.g.add_const(f"{n.name}_W", w)
        bn = self.g.add_const(f"{n.name}_B", bias)
        self.emit(n, "Conv", [x.name, wn, bn], out, kernel_shape=[1, 1], strides=[1, 1],
                  pads=[0, 0, 0, 0], group=c)
        self.define(out, _Val(out, x.rank, cl=x.cl), self.g.shapes[x.name])
        self.report.rewrites[kind] += 1

    def op_BatchNormalization(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_seq=True)
        if x.seq and not self.is_line(x):
            raise self.err(n, "BatchNormalization over a channels-last tensor is not supported")
        if int(_attr(n, "training_mode", 0)) != 0 or any(o for o in n.output[1:]
                                                           if o in self.cons):
            raise self.err(n, "training-mode BatchNormalization is not supported")
        scale = self.const(n, 1, "scale").astype(np.float64)
        bias = self.const(n, 2, "bias").astype(np.float64)
        mean = self.const(n, 3, "mean").astype(np.float64)
        var = self.const(n, 4, "variance").astype(np.float64)
        eps = float(_attr(n, "epsilon", 1e-5))
        a = scale / np.sqrt(var + eps)
        self.affine(n, x, a, bias - mean * a, "batchnorm")

    def per_channel(self, n: onnx.NodeProto, x: _Val, c: np.ndarray) -> np.ndarray:
        """The constant ``c`` as a per-channel vector for the source tensor ``x``, or error."""
        rank = x.rank
        chans = self.g.shapes[x.name][1]
        if c.ndim > rank:
            raise self.err(n, f"the constant operand has shape {c.shape}, more dims than input")
        c4 = c.reshape((1,) * (rank - c.ndim) + c.shape)
        axis = rank - 1 if x.cl else 1
        ok = c4.shape[axis] in (1, chans) and all(
            d == 1 for i, d in enumerate(c4.shape) if i != axis)
        if not ok or x.flat:
            where = "(C,) on the last axis" if x.cl else "(C,1,1), (1,C,1,1)"
            raise self.err(n, f"the constant operand has shape {c.shape}; only per-channel "
                              f"constants (shape {where} or a scalar) are supported")
        return np.broadcast_to(c4.reshape(-1).astype(np.float64), (chans,))

    def binary_const(self, n: onnx.NodeProto) -> tuple[_Val, np.ndarray, bool] | None:
        """(feature-map operand, per-channel constant, constant-is-first) or None."""
        c0, c1 = self.is_const(n.input[0]), self.is_const(n.input[1])
        if c0 == c1:
            return None
        x = self.act(n, 1 if c0 else 0, allow_seq=True)
        c = self.fg.consts[n.input[0] if c0 else n.input[1]]
        if self.shape(n, n.output[0]) != self.shape(n, n.input[1 if c0 else 0]):
            raise self.err(n, "broadcasting a constant that changes the tensor's shape is not "
                              "supported")
        return x, self.per_channel(n, x, c), c0

    def op_Mul(self, n: onnx.NodeProto) -> None:
        if self.gelu_spelled(n):
            return
        r = self.binary_const(n)
        if r is None:
            self.two_maps(n, "Mul", n.input[0], n.input[1], n.output[0], n.name)
            return
        x, c, _ = r
        self.affine(n, x, c, np.zeros_like(c), "mul_const")

    def two_maps(self, n: onnx.NodeProto, op: str, a: str, b: str, out: str,
                 name: str) -> None:
        """``op`` (Add, Mul, Sub) of two feature maps of the same shape, or of a map and a
        per-channel ``(N, C, 1, 1)`` one broadcast over its pixels (the squeeze-excite
        gate); the output has the larger shape."""
        va, vb = self.act(n, a, allow_seq=True), self.act(n, b, allow_seq=True)
        sa, sb = self.g.shapes[va.name], self.g.shapes[vb.name]
        if va.cl != vb.cl:
            raise self.err(n, f"{op} of feature maps in two layouts (channels first and "
                              "last) is not supported")
        if sa != sb or va.rank != vb.rank:
            big, small = (sa, sb) if len(sa) == 4 and sb == (*sa[:2], 1, 1) else (sb, sa)
            if not (len(big) == 4 and small == (*big[:2], 1, 1) and va.rank == vb.rank == 4
                    and not va.seq):
                raise self.err(n, f"{op} of feature maps of shapes {sa} and {sb}: only the same "
                                  "shape or a per-channel (N, C, 1, 1) operand broadcast over "
                                  "the other is supported")
            sa = big
        self.emit(name, op, [va.name, vb.name], out)
        self.define(out, _Val(out, va.rank, cl=va.cl), sa)

    def _unary(self, n: onnx.NodeProto, **attrs: Any) -> None:
        """An element-wise function of one map, kept as is (the lowering makes it a
        256-entry table: vfpga/frontend/act_tables.py)."""
        x = self.act(n, 0, allow_seq=True)
        out = n.output[0]
        self.emit(n, n.op_type, [x.name], out, **attrs)
        self.define(out, _Val(out, x.rank, cl=x.cl), self.g.shapes[x.name])

    def op_Sigmoid(self, n: onnx.NodeProto) -> None:
        self._unary(n)

    def op_Tanh(self, n: onnx.NodeProto) -> None:
        self._unary(n)

    def op_HardSwish(self, n: onnx.NodeProto) -> None:
        self._unary(n)

    def op_HardSigmoid(self, n: onnx.NodeProto) -> None:
        self._unary(n, alpha=float(_attr(n, "alpha", 0.2)), beta=float(_attr(n, "beta", 0.5)))

    def op_LeakyRelu(self, n: onnx.NodeProto) -> None:
        self._unary(n, alpha=float(_attr(n, "alpha", 0.01)))

    def op_PRelu(self, n: onnx.NodeProto) -> None:
        """PRelu. One slope for every channel: LeakyRelu(alpha = slope), a 256-entry table.
        Per-channel slopes ``s[c]`` (an NCHW map): ``x + (1 - s[c]) * max(-x, 0)`` (``x``
        where ``x >= 0``, ``s[c] * x`` below), as a depthwise 1x1 Conv by -1 with Relu,
        a depthwise 1x1 Conv by ``1 - s[c]`` and an Add with ``x``: three accelerator
        layers, whose two extra int8 roundings the quantized model (and so onnxruntime's
        run of it) has too."""
        slope = self.legacy_slope(n, self.const(n, 1, "slope"))
        flat = slope.reshape(-1)
        if flat.size == 0:
            raise self.err(n, "the slope is empty")
        if np.all(flat == flat[0]):
            x = self.act(n, 0, allow_seq=True)
            out = n.output[0]
            self.emit(n, "LeakyRelu", [x.name], out, alpha=float(flat[0]))
            self.define(out, _Val(out, x.rank, cl=x.cl), self.g.shapes[x.name])
            return
        x = self.act(n, 0, allow_seq=True)
        if (x.rank != 4 or x.cl) and not self.is_line(x):
            raise self.err(n, "PRelu with per-channel slopes needs an NCHW feature map or an "
                              "(N, C, L) sequence")
        s = self.per_channel(n, x, slope)
        c = self.g.shapes[x.name][1]
        neg = self.g.fresh(f"{n.output[0]}_neg")
        scaled = self.g.fresh(f"{n.output[0]}_negscaled")
        for base, src, dst, w, relu in ((f"{n.name}_neg", x.name, neg, -np.ones(c), True),
                                        (f"{n.name}_scale", neg, scaled, 1.0 - s, False)):
            name = self.g.fresh(base)
            conv_out = self.g.fresh(f"{dst}_conv") if relu else dst
            wn = self.g.add_const(f"{name}_W", np.asarray(w, np.float32).reshape(c, 1, 1, 1))
            bn = self.g.add_const(f"{name}_B", np.zeros(c, np.float32))
            self.emit(name, "Conv", [src, wn, bn], conv_out, kernel_shape=[1, 1],
                      strides=[1, 1], pads=[0, 0, 0, 0], group=c)
            self.define(conv_out, _Val(conv_out, x.rank), self.g.shapes[x.name])
            if relu:
                self.emit(self.g.fresh(f"{name}_relu"), "Relu", [conv_out], dst)
                self.define(dst, _Val(dst, x.rank), self.g.shapes[x.name])
        self.env.setdefault(x.name, x)  # the map itself (a graph input's is a fresh name)
        self.two_maps(n, "Add", x.name, scaled, n.output[0], n.name)
        self.report.rewrites["prelu_per_channel"] += 1

    def legacy_slope(self, n: onnx.NodeProto, slope: np.ndarray) -> np.ndarray:
        """PRelu's ``slope`` as the model means it: a 1-D slope of one value per channel
        that does not broadcast against the input's last axis (opset 6 PRelu, as old
        PyTorch exports write it, broadcast it from the channel axis; the opset >= 7 that
        normalize writes would reject it) is reshaped to ``(C, 1, ..., 1)``, also for the
        host (the constant is rewritten when only this node reads it)."""
        shape = self.shape(n, n.input[0])
        c = shape[1] if len(shape) > 2 else 0
        if slope.ndim != 1 or slope.size in (1, shape[-1]) or slope.size != c:
            return slope
        fixed = slope.reshape((c,) + (1,) * (len(shape) - 2))
        if len(self.cons.get(n.input[1], [])) == 1:
            self.fg.consts[n.input[1]] = fixed
            self.report.rewrites["prelu_legacy_slope"] += 1
        return fixed

    def op_Gelu(self, n: onnx.NodeProto) -> None:
        self._unary(n, approximate=str(_attr(n, "approximate", "none")))

    def op_Elu(self, n: onnx.NodeProto) -> None:
        self._unary(n, alpha=float(_attr(n, "alpha", 1.0)))

    def gelu_spelled(self, n: onnx.NodeProto) -> bool:
        """GELU in its Erf form, as PyTorch exports it: ``x * 0.5 * (1 + erf(x / sqrt 2))``
        (``n`` is the ``x / sqrt 2`` ``Div`` or ``x * (1 / sqrt 2)`` ``Mul``; the ``0.5``
        may multiply ``x`` first or the product last): one ``Gelu`` node (opset 20), which
        the lowering makes a 256-entry table fused into the producing conv."""
        c0, c1 = self.is_const(n.input[0]), self.is_const(n.input[1])
        if c0 == c1 or (n.op_type == "Div" and c0):
            return False
        x = n.input[1] if c0 else n.input[0]
        k = self._scalar(n.input[0] if c0 else n.input[1])
        want = math.sqrt(2.0) if n.op_type == "Div" else 1.0 / math.sqrt(2.0)
        if k is None or abs(k - want) > 1e-6 * want:
            return False
        erf = self._only_user(n.output[0], "Erf")
        add = self._only_user(erf.output[0], "Add") if erf is not None else None
        if erf is None or add is None or sorted(
                self._scalar(i) or 0.0 for i in add.input) != [0.0, 1.0]:
            return False
        mul = self._only_user(add.output[0], "Mul")
        if mul is None:
            return False
        other = mul.input[1] if mul.input[0] == add.output[0] else mul.input[0]
        chain = [erf, add, mul]
        if other == x:
            half = self._only_user(mul.output[0], "Mul")
            if half is None or 0.5 not in (self._scalar(i) for i in half.input):
                return False
            chain.append(half)
        else:
            pre = next((m for m in self.cons.get(x, []) if m.output[0] == other), None)
            if pre is None or pre.op_type != "Mul" or sorted(
                    (i == x, self._scalar(i)) for i in pre.input) != [(False, 0.5), (True, None)]:
                return False
        self.spelled_unary(n, x, "Gelu", chain, "gelu_erf_form")
        return True

    def op_Div(self, n: onnx.NodeProto) -> None:
        if self.gelu_spelled(n):
            return
        r = self.binary_const(n)
        if r is None or r[2]:
            raise self.err(n, "only division of a feature map by a per-channel constant is "
                              "supported")
        x, c, _ = r
        self.affine(n, x, 1.0 / c, np.zeros_like(c), "div_const")

    def op_Sub(self, n: onnx.NodeProto) -> None:
        r = self.binary_const(n)
        if r is None:
            self.two_maps(n, "Sub", n.input[0], n.input[1], n.output[0], n.name)
            return
        x, c, first = r
        if first:
            self.affine(n, x, -np.ones_like(c), c, "sub_const")
        else:
            self.affine(n, x, np.ones_like(c), -c, "sub_const")

    def _scalar(self, t: str) -> float | None:
        c = self.fg.consts.get(t)
        return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None

    def _only_user(self, t: str, op: str) -> onnx.NodeProto | None:
        users = self.cons.get(t, [])
        if len(users) == 1 and users[0].op_type == op and t not in self.fg.outputs:
            return users[0]
        return None

    def _times_sixth(self, t: str) -> onnx.NodeProto | None:
        """The single user of ``t`` computing ``t / 6`` or ``t * (1/6)``."""
        d = self._only_user(t, "Div")
        if d is not None and d.input[0] == t and self._scalar(d.input[1]) == 6.0:
            return d
        m = self._only_user(t, "Mul")
        if m is not None:
            other = m.input[1] if m.input[0] == t else m.input[0]
            v = self._scalar(other)
            if v is not None and abs(v * 6.0 - 1.0) < 1e-6:
                return m
        return None

    def hard_swish_spelled(self, n: onnx.NodeProto) -> bool:
        """``x * clip(x + 3, 0, 6) / 6`` (also with ``/ 6`` before the product, or
        ``* (1/6)``) written out, as PaddleOCR and older exporters do: HardSwish(x)."""
        if len(n.input) != 2 or self._scalar(n.input[1]) != 3.0 or self.is_const(n.input[0]):
            return False
        x = n.input[0]
        clip = self._only_user(n.output[0], "Clip")
        if clip is None:
            return False
        lo = self._scalar(clip.input[1]) if len(clip.input) > 1 and clip.input[1] else None
        hi = self._scalar(clip.input[2]) if len(clip.input) > 2 and clip.input[2] else None
        lo = float(_attr(clip, "min", -np.inf)) if lo is None else lo
        hi = float(_attr(clip, "max", np.inf)) if hi is None else hi
        if (lo, hi) != (0.0, 6.0):
            return False
        chain: list[onnx.NodeProto] = [clip]
        t = clip.output[0]
        six = self._times_sixth(t)
        if six is not None:  # x * (clip / 6)
            chain.append(six)
            t = six.output[0]
        users = self.cons.get(t, [])
        if len(users) != 1 or users[0].op_type != "Mul" or t in self.fg.outputs:
            return False
        mul = users[0]
        if sorted(mul.input) != sorted([x, t]):
            return False
        chain.append(mul)
        if six is None:  # (x * clip) / 6
            six = self._times_sixth(mul.output[0])
            if six is None:
                return False
            chain.append(six)
        self.spelled_unary(n, x, "HardSwish", chain, "hard_swish_spelled")
        return True

    def spelled_unary(self, n: onnx.NodeProto, x: str, op: str, chain: list[onnx.NodeProto],
                      kind: str) -> None:
        """Emit the element-wise ``op`` of ``x`` (named after ``n``) computing the output of
        the written-out ``n -> chain``, whose other nodes are skipped."""
        xv = self.act(n, x, allow_seq=True)
        out = chain[-1].output[0]
        self.emit(n, op, [xv.name], out)
        self.define(out, _Val(out, xv.rank, cl=xv.cl), self.g.shapes[xv.name])
        self.skip.update(c.name for c in chain)
        self.report.rewrites[kind] += 1

    def op_Add(self, n: onnx.NodeProto) -> None:
        if self.hard_swish_spelled(n):
            return
        r = self.binary_const(n)
        if r is not None:
            x, c, _ = r
            self.affine(n, x, np.ones_like(c), c, "add_const")
            return
        self.add_two(n, n.input[0], n.input[1], n.output[0], n.name)

    def add_two(self, n: onnx.NodeProto, a: str, b: str, out: str, name: str) -> None:
        self.two_maps(n, "Add", a, b, out, name)

    def op_Sum(self, n: onnx.NodeProto) -> None:
        ins = list(n.input)
        if any(self.is_const(t) for t in ins):
            raise self.err(n, "Sum with a constant operand is not supported")
        if len(ins) == 1:
            self.define(n.output[0], self.act(n, 0, allow_flat=True, allow_pad=True))
            return
        acc = ins[0]
        for i, t in enumerate(ins[1:], start=1):
            last = i == len(ins) - 1
            out = n.output[0] if last else self.g.fresh(f"{n.output[0]}_part{i}")
            name = n.name if last else self.g.fresh(f"{n.name}_add{i}")
            self.add_two(n, acc, t, out, name)
            acc = out
        self.report.rewrites["sum_to_add"] += 1

    def op_Relu(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_flat=True, allow_pad=True, allow_seq=True)
        out = n.output[0]
        self.emit(n, "Relu", [x.name], out)
        self.define(out, replace(x, name=out), self.g.shapes[x.name])

    def op_Clip(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_flat=True, allow_pad=True, allow_seq=True)
        lo = self.opt_const(n, 1)
        hi = self.opt_const(n, 2)
        lo_v = float(lo.reshape(-1)[0]) if lo is not None else float(_attr(n, "min", -np.inf))
        hi_v = float(hi.reshape(-1)[0]) if hi is not None else float(_attr(n, "max", np.inf))
        out = n.output[0]
        if lo_v != 0.0 or not (hi_v == 6.0 or np.isinf(hi_v)):
            raise self.err(n, f"Clip(min={lo_v}, max={hi_v}) is supported only as ReLU "
                              "(min 0, no max) or ReLU6 (min 0, max 6)")
        if np.isinf(hi_v):
            self.emit(n, "Relu", [x.name], out)
            self.report.rewrites["clip_to_relu"] += 1
        else:
            lo_n = self.g.add_const(f"{n.name}_min", np.array(0.0, np.float32))
            hi_n = self.g.add_const(f"{n.name}_max", np.array(6.0, np.float32))
            self.emit(n, "Clip", [x.name, lo_n, hi_n], out)
        self.define(out, replace(x, name=out), self.g.shapes[x.name])

    def pool_common(self, n: onnx.NodeProto, x: _Val) -> tuple[list[int], list[int], list[int]]:
        k = [int(v) for v in _attr(n, "kernel_shape", [])]
        s = [int(v) for v in _attr(n, "strides", [1, 1])]
        dil = [int(v) for v in _attr(n, "dilations", [1, 1])]
        if self.is_line(x) and len(k) == 1:
            k, s, dil = self.line_attrs(n, k, s, dil)
        elif len(k) != 2 or x.rank != 4:
            raise self.err(n, "only 2-D pooling over NCHW maps (and 1-D over (N, C, L) "
                              "sequences) is supported")
        if any(d != 1 for d in dil):
            raise self.err(n, f"dilations {dil} are not supported")
        pads = self.resolve_pads(n, x, (k[0], k[1]), (s[0], s[1]))
        if int(_attr(n, "ceil_mode", 0)):
            ih, iw = self.g.shapes[x.name][2:]
            oh, ow = self.phys(n, n.output[0])[2:]
            extra_h = max((oh - 1) * s[0] + k[0] - (ih + pads[0] + pads[2]), 0)
            extra_w = max((ow - 1) * s[1] + k[1] - (iw + pads[1] + pads[3]), 0)
            if (extra_h or extra_w) and n.op_type == "AveragePool" \
                    and int(_attr(n, "count_include_pad", 0)):
                raise self.err(n, "ceil_mode=1 with count_include_pad=1 is not supported")
            pads = [pads[0], pads[1], pads[2] + extra_h, pads[3] + extra_w]
            self.report.rewrites["ceil_mode_to_pads"] += 1
        return k, s, pads

    def op_MaxPool(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_seq=True)
        if len(n.output) > 1 and n.output[1] and n.output[1] in self.cons:
            raise self.err(n, "the Indices output of MaxPool is not supported")
        k, s, pads = self.pool_common(n, x)
        out = n.output[0]
        self.emit(n, "MaxPool", [x.name], out, kernel_shape=k, strides=s, pads=pads)
        self.define(out, _Val(out, x.rank), self.phys(n, out))

    def op_AveragePool(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_pad=True, allow_seq=True)
        k, s, pads = self.pool_common(n, x)
        cip = int(_attr(n, "count_include_pad", 0))
        if x.pad is not None:
            if cip or not any(pads):
                pads = [p + q for p, q in zip(pads, x.pad, strict=True)]
                cip = 1
                self.report.rewrites["pad_folded"] += 1
            else:
                raise self.err(n, "a zero Pad before an AveragePool that has its own pads and "
                                  "count_include_pad=0 cannot be folded")
        out = n.output[0]
        self.emit(n, "AveragePool", [x.name], out, kernel_shape=k, strides=s, pads=pads,
                  count_include_pad=cip)
        self.define(out, _Val(out, x.rank), self.phys(n, out))

    def op_GlobalAveragePool(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0)
        out = n.output[0]
        self.emit(n, "GlobalAveragePool", [x.name], out)
        self.define(out, _Val(out, 4), self.phys(n, out))

    def op_ReduceMean(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0)
        axes = _attr(n, "axes", None)
        if axes is None and len(n.input) > 1 and n.input[1]:
            axes = [int(a) for a in self.const(n, 1, "axes").reshape(-1)]
        if x.rank != 4 or axes is None or sorted(int(a) % 4 for a in axes) != [2, 3]:
            raise self.err(n, "ReduceMean is supported only over the spatial axes [2, 3] of an "
                              "NCHW map (global average pooling)")
        out = n.output[0]
        keep = int(_attr(n, "keepdims", 1))
        self.emit(n, "GlobalAveragePool", [x.name], out)
        self.define(out, _Val(out, 4 if keep else 2), self.phys(n, out))
        self.report.rewrites["reducemean_to_gap"] += 1

    def op_Concat(self, n: onnx.NodeProto) -> None:
        vals = [self.act(n, i) for i in range(len(n.input))]
        rank = vals[0].rank
        axis = int(_attr(n, "axis", 1))
        if any(v.rank != rank for v in vals) or axis % rank != 1:
            raise self.err(n, f"only concatenation along channels (axis 1) is supported "
                              f"(axis {axis})")
        out = n.output[0]
        self.emit(n, "Concat", [v.name for v in vals], out, axis=1)
        self.define(out, _Val(out, rank), self.phys(n, out))

    def op_Softmax(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_flat=True)
        axis = int(_attr(n, "axis", -1))
        if x.flat:
            raise self.err(n, "Softmax over a flattened feature map with spatial size > 1 is not "
                              "supported (apply it to a (N, K) classifier output)")
        if axis % x.rank != 1:
            raise self.err(n, f"Softmax is supported only along the channel axis 1 (axis {axis}"
                              f" of a rank-{x.rank} tensor)")
        out = n.output[0]
        self.emit(n, "Softmax", [x.name], out, axis=1)
        self.define(out, _Val(out, x.rank), self.g.shapes[x.name])

    def op_LRN(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0)
        if x.rank != 4:
            raise self.err(n, "LRN is supported on NCHW maps only")
        out = n.output[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        self.emit(n, "LRN", [x.name], out, **attrs)
        self.define(out, _Val(out, 4), self.g.shapes[x.name])

    def op_Dropout(self, n: onnx.NodeProto) -> None:
        if len(n.output) > 1 and n.output[1] and n.output[1] in self.cons:
            raise self.err(n, "the mask output of Dropout is not supported")
        self.define(n.output[0], self.act(n, 0, allow_flat=True, allow_pad=True,
                                          allow_seq=True))
        self.report.rewrites["dropout_removed"] += 1

    def op_Identity(self, n: onnx.NodeProto) -> None:
        self.define(n.output[0], self.act(n, 0, allow_flat=True, allow_pad=True,
                                          allow_seq=True))
        self.report.rewrites["identity_removed"] += 1

    def op_Pad(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_pad=True)
        mode = _attr(n, "mode", "constant")
        if mode != "constant":
            raise self.err(n, f"Pad mode '{mode}' is not supported (only constant zeros)")
        pads = [int(p) for p in self.const(n, 1, "pads").reshape(-1)]
        val = self.opt_const(n, 2)
        if val is not None and val.size and float(val.reshape(-1)[0]) != 0.0:
            raise self.err(n, f"Pad with value {float(val.reshape(-1)[0])} is not supported "
                              "(only zeros)")
        axes_c = self.opt_const(n, 3)
        rank = x.rank
        if axes_c is not None:
            full = [0] * (2 * rank)
            axes = [int(a) % rank for a in axes_c.reshape(-1)]
            for j, a in enumerate(axes):
                full[a], full[a + rank] = pads[j], pads[j + len(axes)]
            pads = full
        if rank != 4 or len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5] \
                or any(p < 0 for p in pads):
            raise self.err(n, f"only non-negative zero padding of the spatial axes of an NCHW "
                              f"map is supported (pads {pads})")
        p = (pads[2], pads[3], pads[6], pads[7])
        if x.pad is not None:
            p = tuple(a + b for a, b in zip(p, x.pad, strict=True))  # type: ignore[assignment]
        self.define(n.output[0], _Val(x.name, 4, False, p))

    # reshape-like ops ----------------------------------------------------------------------
    def view(self, n: onnx.NodeProto) -> None:
        x = self.act(n, 0, allow_flat=True, allow_seq=True)
        out = n.output[0]
        ins = self.shape(n, n.input[0])
        outs = self.shape(n, out)
        mshape = self.g.shapes[x.name]
        if outs == ins:
            self.define(out, x)
            return
        if x.cl:
            # any reshape keeping the channel axis last (and its size): the same map
            batch1 = len(outs) > 2 or mshape[0] == 1
            if outs[-1] == mshape[1] and 2 <= len(outs) <= 4 and batch1:
                self.define(out, _Val(x.name, len(outs), cl=True))
                self.report.rewrites["token_view"] += 1
                return
            raise self.err(n, f"reshaping the channels-last tensor {list(ins)} to {list(outs)} "
                              "changes its channel axis")
        if not x.flat and len(ins) == 4 and outs == (ins[0], ins[1], ins[2] * ins[3]) and (
                x.name not in self.host_maps):
            self.define(out, _Val(x.name, 3))
            self.report.rewrites["token_view"] += 1
            return
        if x.rank == 3 and outs == mshape:
            self.define(out, _Val(x.name, 4))
            return
        if self.is_line(x) and outs == (*mshape[:2], mshape[3], 1):
            # (N, C, L) -> (N, C, L, 1): the one-row map as a one-column one (the same
            # bytes in NCHW and NHWC order, a free view)
            shp = self.g.add_const(f"{out}_shape", np.array(outs, dtype=np.int64))
            self.emit(n, "Reshape", [x.name, shp], out)
            self.define(out, _Val(out, 4), outs)
            self.report.rewrites["line_as_column"] += 1
            return
        if x.rank == 3:
            raise self.err(n, f"reshaping the sequence {list(ins)} to {list(outs)} is not "
                              "supported")
        if len(ins) == 4 and len(outs) == 2 and outs == (ins[0], int(np.prod(ins[1:]))):
            self.define(out, _Val(x.name, 2, flat=ins[2] * ins[3] != 1))
            self.report.rewrites["flatten_removed"] += 1
            return
        if len(ins) == 2 and not x.flat and outs == (ins[0], ins[1], 1, 1):
            self.define(out, _Val(x.name, 4))
            return
        if len(ins) == 2 and x.flat and outs == mshape:
            self.define(out, _Val(x.name, 4))
            return
        if len(outs) == 5 and self.try_shuffle(n, x, ins, outs):
            return
        raise self.err(n, f"reshaping {list(ins)} to {list(outs)} is not supported; supported: "
                          "flattening a map before a Gemm/MatMul, (N, K) <-> (N, K, 1, 1), and "
                          "a channel shuffle (Reshape-Transpose-Reshape)")

    op_Reshape = view
    op_Flatten = view
    op_Squeeze = view
    op_Unsqueeze = view

    def op_Transpose(self, n: onnx.NodeProto) -> None:
        """A change between the NCHW (or ``(N, C, L)``) and the channels-last
        (``(N, H, W, C)``, ``(N, L, C)``) form of one map: free, only the view changes."""
        x = self.act(n, 0, allow_seq=True)
        ins = self.shape(n, n.input[0])
        outs = self.shape(n, n.output[0])
        perm = tuple(int(p) for p in _attr(n, "perm", list(range(len(ins)))[::-1]))
        mshape = self.g.shapes[x.name]
        c = mshape[1]
        to_cl = {3: (0, 2, 1), 4: (0, 2, 3, 1)}.get(len(ins))
        to_cf = {3: (0, 2, 1), 4: (0, 3, 1, 2)}.get(len(ins))
        if not x.cl and not x.flat and perm == to_cl and ins[1] == c and (
                len(ins) == 3 or ins == mshape):
            self.define(n.output[0], _Val(x.name, len(ins), cl=True))
        elif x.cl and perm == to_cf and ins[-1] == c and (len(outs) == 3 or outs == mshape):
            self.define(n.output[0], _Val(x.name, len(outs)))
        else:
            raise self.err(n, f"Transpose perm {list(perm)} of {list(ins)} is not a change "
                              "between the channels-first and channels-last forms of a map")
        self.report.rewrites["transpose_view"] += 1

    def try_shuffle(self, n: onnx.NodeProto, x: _Val, ins: tuple[int, ...],
                    outs: tuple[int, ...]) -> bool:
        """Recognize Reshape(5-D) -> Transpose -> Reshape(back) permuting channels only."""
        if len(ins) != 4 or x.rank != 4 or x.flat:
            return False
        c1 = self.cons.get(n.output[0], [])
        if len(c1) != 1 or c1[0].op_type != "Transpose" or n.output[0] in self.fg.outputs:
            return False
        t = c1[0]
        c2 = self.cons.get(t.output[0], [])
        if len(c2) != 1 or c2[0].op_type != "Reshape" or t.output[0] in self.fg.outputs:
            return False
        r2 = c2[0]
        if self.fg.shapes.get(r2.output[0]) != ins:
            return False
        perm = [int(p) for p in _attr(t, "perm", list(range(5))[::-1])]
        idx = np.arange(int(np.prod(ins))).reshape(ins)
        y = idx.reshape(outs).transpose(perm).reshape(ins)
        hw = ins[2] * ins[3]
        p = (y[0, :, 0, 0] - idx[0, 0, 0, 0]) // hw
        if not np.array_equal(y, idx[:, p]):
            return False
        out = r2.output[0]
        self.emit(t, "_ChannelPerm", [x.name], out, perm=p.astype(np.int64))
        self.define(out, _Val(out, 4), ins)
        self.skip.update({t.name, r2.name})
        return True

    def channel_slice(self, n: onnx.NodeProto, x: _Val, lo: int, hi: int, out: str,
                      name: str) -> None:
        """Emit ``out = x[:, lo:hi]`` as a normalized ``Slice`` (axis 1, constant bounds)."""
        c = self.g.shapes[x.name][1]
        if not 0 <= lo < hi <= c:
            raise self.err(n, f"the channel range [{lo}, {hi}) of output '{out}' is empty or "
                              f"outside the {c} channels")
        starts = self.g.add_const(f"{name}_starts", np.array([lo], np.int64))
        ends = self.g.add_const(f"{name}_ends", np.array([hi], np.int64))
        axes = self.g.add_const(f"{name}_axes", np.array([1], np.int64))
        self.emit(name, "Slice", [x.name, starts, ends, axes], out)
        phys = self.g.shapes[x.name]
        self.define(out, _Val(out, x.rank), (phys[0], hi - lo, *phys[2:]))

    def channel_map(self, n: onnx.NodeProto, what: str) -> _Val:
        """The map ``n`` reads, which must be an NCHW map or an (N, C) vector."""
        x = self.act(n, 0)
        if x.rank not in (2, 4):
            raise self.err(n, f"{what} is supported on NCHW maps and (N, C) vectors only")
        return x

    def op_Split(self, n: onnx.NodeProto) -> None:
        """``Split`` along channels (axis 1): one channel-range ``Slice`` per used output
        (a view on the accelerator, nothing copied)."""
        x = self.channel_map(n, "Split")
        axis = int(_attr(n, "axis", 0))
        if axis % x.rank != 1:
            raise self.err(n, f"Split along axis {axis} is not supported; only along channels "
                              "(axis 1)")
        c = self.g.shapes[x.name][1]
        k = len(n.output)
        split = _attr(n, "split")
        if split is None and len(n.input) > 1 and n.input[1]:
            split = self.const(n, 1, "split").reshape(-1)
        if split is not None:
            sizes = [int(v) for v in split]
        elif _attr(n, "num_outputs") is not None or k:
            per = -(-c // k)  # opset 18's num_outputs: ceil, the last one smaller
            sizes = [min(per, c - i * per) for i in range(k)]
        if len(sizes) != k or sum(sizes) != c or min(sizes) < 1:
            raise self.err(n, f"split sizes {sizes} do not divide the {c} channels into "
                              f"{k} non-empty outputs")
        lo = 0
        for i, (o, size) in enumerate(zip(n.output, sizes, strict=True)):
            if o and (o in self.cons or o in self.fg.outputs):
                name = n.name if i == 0 else self.g.fresh(f"{n.name}_{i}")
                self.channel_slice(n, x, lo, lo + size, o, name)
            lo += size
        self.report.rewrites["split_as_slices"] += 1

    def op_Slice(self, n: onnx.NodeProto) -> None:
        """``Slice`` of a channel range (axis 1, step 1, constant bounds; other axes whole):
        a view on the accelerator."""
        x = self.channel_map(n, "Slice")
        ins = self.shape(n, n.input[0])
        if len(n.input) < 3:
            raise self.err(n, "Slice needs constant starts and ends inputs (opset >= 10)")
        starts = [int(v) for v in self.const(n, 1, "starts").reshape(-1)]
        ends = [int(v) for v in self.const(n, 2, "ends").reshape(-1)]
        axes_c, steps_c = self.opt_const(n, 3), self.opt_const(n, 4)
        axes = [int(v) for v in axes_c.reshape(-1)] if axes_c is not None \
            else list(range(len(starts)))
        steps = [int(v) for v in steps_c.reshape(-1)] if steps_c is not None \
            else [1] * len(starts)
        rank = len(ins)
        lo, hi = 0, ins[1] if rank > 1 else 0
        for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
            a = a + rank if a < 0 else a
            dim = ins[a]
            s = min(max(s + dim if s < 0 else s, 0), dim)
            e = min(max(e + dim if e < 0 else e, 0), dim)
            if st != 1:
                raise self.err(n, f"Slice with step {st} is not supported; only step 1")
            if a == 1:
                lo, hi = s, e
            elif (s, e) != (0, dim):
                raise self.err(n, f"Slice of axis {a} is not supported; only a channel "
                                  "range (axis 1) of a map")
        self.channel_slice(n, x, lo, hi, n.output[0], n.name)
        self.report.rewrites["slice_channels"] += 1

    def op_Gather(self, n: onnx.NodeProto) -> None:
        """``Gather`` along channels with constant indices that permute them (what this
        normalizer writes for a channel shuffle it cannot fold for free): a channel
        permutation, handled like a Reshape-Transpose-Reshape shuffle."""
        x = self.act(n, 0)
        idx = np.asarray(self.const(n, 1, "indices"))
        axis = int(_attr(n, "axis", 0))
        axis = axis + x.rank if axis < 0 else axis
        ins = self.g.shapes[x.name]
        c = ins[1] if len(ins) == 4 else -1
        if (x.rank != 4 or x.flat or axis != 1 or idx.ndim != 1 or idx.shape[0] != c
                or not np.array_equal(np.sort(idx.astype(np.int64)), np.arange(c))):
            raise self.err(n, "Gather is supported only as a permutation of the channels "
                              "(axis 1) of a 4-D feature map with constant indices")
        out = n.output[0]
        self.emit(n, "_ChannelPerm", [x.name], out, perm=idx.astype(np.int64))
        self.define(out, _Val(out, 4), ins)

    def fully_connected(self, n: onnx.NodeProto, w2: np.ndarray, bias: np.ndarray) -> None:
        """``out = x @ w2 + bias`` with ``w2`` of shape (K, M), as a Conv."""
        x = self.act(n, 0, allow_flat=True)
        if x.rank != 2:
            raise self.err(n, "the input must be a 2-D (N, K) tensor (a flattened map)")
        mshape = self.g.shapes[x.name]
        c, h, w = mshape[1], mshape[2], mshape[3]
        k, m = w2.shape
        if k != c * h * w:
            raise self.err(n, f"weight has {k} rows but the input has {c * h * w} features")
        weight = np.ascontiguousarray(w2.T.astype(np.float32, copy=False)).reshape(m, c, h, w)
        wn = self.g.add_const(f"{n.name}_W", weight)
        bn = self.g.add_const(f"{n.name}_B", np.broadcast_to(bias, (1, m)).reshape(m)
                              .astype(np.float32).copy())
        out = n.output[0]
        self.emit(n, "Conv", [x.name, wn, bn], out, kernel_shape=[h, w], strides=[1, 1],
                  pads=[0, 0, 0, 0], group=1)
        self.define(out, _Val(out, 2), self.phys(n, out))
        self.report.rewrites[f"{n.op_type.lower()}_to_conv"] += 1

    def token_linear(self, n: onnx.NodeProto, x: _Val, w2: np.ndarray,
                     bias: np.ndarray) -> None:
        """``out = x @ w2 + bias`` over the channel (last) axis of a channels-last ``x``
        (tokens ``(N, T, C)`` or an NHWC map): a 1x1 ``Conv`` on its NCHW map, the
        result channels-last too."""
        mshape = self.g.shapes[x.name]
        k, m = w2.shape
        if k != mshape[1]:
            raise self.err(n, f"weight has {k} rows but the input has {mshape[1]} channels")
        weight = np.ascontiguousarray(w2.T.astype(np.float32, copy=False)).reshape(m, k, 1, 1)
        wn = self.g.add_const(f"{n.name}_W", weight)
        bn = self.g.add_const(f"{n.name}_B", np.broadcast_to(bias, (1, m)).reshape(m)
                              .astype(np.float32).copy())
        out = n.output[0]
        self.emit(n, "Conv", [x.name, wn, bn], out, kernel_shape=[1, 1], strides=[1, 1],
                  pads=[0, 0, 0, 0], group=1)
        self.define(out, _Val(out, len(self.shape(n, out)), cl=True),
                    (mshape[0], m, mshape[2], mshape[3]))
        self.report.rewrites["token_linear_to_conv"] += 1

    def op_Gemm(self, n: onnx.NodeProto) -> None:
        if int(_attr(n, "transA", 0)):
            raise self.err(n, "Gemm with transA=1 is not supported")
        b = self.const(n, 1, "weight B")
        if b.ndim != 2:
            raise self.err(n, "the weight B must be 2-D")
        alpha = float(_attr(n, "alpha", 1.0))
        beta = float(_attr(n, "beta", 1.0))
        w2 = b.T if int(_attr(n, "transB", 0)) else b
        if alpha != 1.0:
            w2 = w2 * np.float32(alpha)
        c = self.opt_const(n, 2)
        m = w2.shape[1]
        bias = np.zeros(m) if c is None else beta * c.astype(np.float64)
        try:
            bias = np.broadcast_to(bias, (1, m))
        except ValueError:
            raise self.err(n, f"the bias C of shape {c.shape if c is not None else ()} is not "
                              f"broadcastable to (1, {m})") from None
        x = self.act(n, 0, allow_flat=True, allow_seq=True)
        if x.cl:
            self.token_linear(n, x, w2, bias)
            return
        self.fully_connected(n, w2, bias)

    def op_MatMul(self, n: onnx.NodeProto) -> None:
        if not self.is_const(n.input[1]) or self.fg.consts[n.input[1]].ndim != 2:
            raise self.err(n, "MatMul is supported only as a fully connected layer: a 2-D "
                              "input times a constant 2-D weight")
        w2 = self.fg.consts[n.input[1]]
        x = self.act(n, 0, allow_flat=True, allow_seq=True)
        if x.cl:
            self.token_linear(n, x, w2, np.zeros(w2.shape[1]))
            return
        self.fully_connected(n, w2, np.zeros(w2.shape[1]))


# -- post passes ----------------------------------------------------------------------------
#: Ops whose meaning changes between opsets 13..19 and 20 (``axes`` from attribute to
#: input, renamed modes): a host node of one of them keeps the model below opset 20.
_OPSET20_CHANGED = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                    "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
                    "GridSample", "DFT", "Upsample")


def _gelu_opset(g: NGraph, opset: int, report: NormalizeReport) -> int:
    """20 when the graph has ``Gelu`` nodes (ONNX has Gelu from opset 20 on) and raising
    its opset keeps every host node's meaning; 0 when it has none. Otherwise each Gelu
    is written back in its Erf form (which then runs on the host) and the report says
    why."""
    gelus = [n for n in g.nodes if n.op_type == "Gelu"]
    if not gelus or opset >= 20:
        return 0
    blockers = sorted({n.op_type for n in g.nodes if n.op_type in _OPSET20_CHANGED})
    if not blockers:
        return 20
    for n in gelus:
        x, out = n.inputs[0], n.outputs[0]
        at = g.nodes.index(n)
        t = [g.fresh(f"{n.name}_{s}") for s in ("div", "erf", "add", "mul")]
        c = [g.add_const(f"{n.name}_{s}", np.array(v, np.float32))
             for s, v in (("sqrt2", math.sqrt(2.0)), ("one", 1.0), ("half", 0.5))]
        new = [NNode(g.fresh(f"{n.name}_div"), "Div", [x, c[0]], [t[0]], {}),
               NNode(g.fresh(f"{n.name}_erf"), "Erf", [t[0]], [t[1]], {}),
               NNode(g.fresh(f"{n.name}_add"), "Add", [t[1], c[1]], [t[2]], {}),
               NNode(g.fresh(f"{n.name}_mul"), "Mul", [x, t[2]], [t[3]], {}),
               NNode(n.name, "Mul", [t[3], c[2]], [out], {})]
        for tt in t:
            g.shapes[tt] = g.shapes[x]
        g.nodes[at:at + 1] = new
    report.notes.append(
        f"GELU left in its Erf form (on the host): the model's opset {opset} is below 20 "
        f"(ONNX Gelu) and its host nodes {', '.join(blockers)} change meaning at opset 20")
    return 0


def _is_affine(g: NGraph, n: NNode) -> bool:
    """A depthwise 1x1 stride-1 unpadded Conv (per-channel ``a * x + b``)."""
    if n.op_type != "Conv":
        return False
    w = g.consts[n.inputs[1]]
    c = g.shapes[n.inputs[0]][1]
    return (w.shape[1:] == (1, 1, 1) and w.shape[0] == c and int(n.attrs.get("group", 1)) == c
            and list(n.attrs.get("strides", [1, 1])) == [1, 1]
            and not any(n.attrs.get("pads", [0, 0, 0, 0])))


def _fold_affine(g: NGraph, report: NormalizeReport) -> None:
    """Fold per-channel affine convs into the Conv producing their input when that conv's
    output has no other consumer (and is not a graph output)."""
    changed = True
    while changed:
        changed = False
        prods = g.producers()
        cons = g.consumers()
        for n in g.nodes:
            if not _is_affine(g, n):
                continue
            x = n.inputs[0]
            p = prods.get(x)
            if p is None or p.op_type != "Conv" or len(cons.get(x, [])) != 1 or x in g.outputs:
                continue
            a = g.consts[n.inputs[1]].reshape(-1).astype(np.float32)
            b = g.consts[n.inputs[2]].astype(np.float64)
            wp = g.consts[p.inputs[1]]
            bp = g.consts[p.inputs[2]].astype(np.float64)
            p.inputs[1] = g.add_const(f"{p.name}_W", wp * a[:, None, None, None])
            p.inputs[2] = g.add_const(f"{p.name}_B", (bp * a + b).astype(np.float32))
            g.nodes.remove(n)
            g.rename_tensor(x, n.outputs[0])
            report.rewrites["affine_folded_into_conv"] += 1
            changed = True
            break
    report.rewrites["affine_as_depthwise_conv"] = sum(1 for n in g.nodes if _is_affine(g, n))


def _push_act_above_concat(g: NGraph, report: NormalizeReport) -> None:
    """``Relu(Concat(a, b, ...))`` -> ``Concat(Relu(a), Relu(b), ...)`` (same for a ReLU6
    ``Clip``) when the Concat's output has no other use, so that each activation can be
    fused into the producer of its input and the Concat stays a free channel-offset write."""
    prods = g.producers()
    cons = g.consumers()
    for r in [n for n in g.nodes if n.op_type in ("Relu", "Clip")]:
        c = prods.get(r.inputs[0])
        if c is None or c.op_type != "Concat" or len(cons.get(c.outputs[0], [])) != 1 \
                or c.outputs[0] in g.outputs:
            continue
        new_inputs = []
        at = g.nodes.index(c)
        for k, t in enumerate(c.inputs):
            out = g.fresh(f"{r.outputs[0]}_in{k}")
            g.shapes[out] = g.shapes[t]
            g.nodes.insert(at, NNode(g.fresh(f"{r.name}_in{k}"), r.op_type, [t, *r.inputs[1:]],
                                     [out], dict(r.attrs)))
            at += 1
            new_inputs.append(out)
        c.inputs = new_inputs
        g.nodes.remove(r)
        g.rename_tensor(c.outputs[0], r.outputs[0])
        report.rewrites["activation_pushed_above_concat"] += 1


def _resolve_perms(g: NGraph, report: NormalizeReport) -> None:
    """Replace every ``_ChannelPerm`` (``y[:, k] = x[:, p[k]]``) by weight permutations:
    into consuming group-1 Convs (their input channels), else into the Conv producing ``x``
    (through Relu/Clip; its output channels), else by an explicit permutation Conv."""
    while True:
        perm_nodes = [n for n in g.nodes if n.op_type == "_ChannelPerm"]
        if not perm_nodes:
            return
        n = perm_nodes[0]
        x, y = n.inputs[0], n.outputs[0]
        p = np.asarray(n.attrs["perm"], dtype=np.int64)
        pinv = np.argsort(p)
        cons = g.consumers()
        prods = g.producers()
        users = cons.get(y, [])
        if y not in g.outputs and users and all(
                u.op_type == "Conv" and int(u.attrs.get("group", 1)) == 1 for u in users):
            for u in users:
                w = g.consts[u.inputs[1]]
                u.inputs[1] = g.add_const(f"{u.name}_W", np.ascontiguousarray(w[:, pinv]))
                u.inputs[0] = x
            g.nodes.remove(n)
            report.rewrites["shuffle_into_consumer"] += 1
            continue
        # walk back through elementwise ops to a producing Conv
        t, prod = x, None
        while True:
            q = prods.get(t)
            if q is None or len(cons.get(t, [])) != 1 or t in g.outputs:
                break
            if q.op_type in ("Relu", "Clip"):
                t = q.inputs[0]
                continue
            if q.op_type == "Conv":
                prod = q
            break
        c = len(p)
        hw = g.shapes[y][2] * g.shapes[y][3]
        shuffle_g = shuffle_groups(p)
        if prod is not None:
            w = g.consts[prod.inputs[1]]
            b = g.consts[prod.inputs[2]]
            groups = int(prod.attrs.get("group", 1))
            m = w.shape[0] // groups
            if groups == 1 or np.array_equal(p // m, np.arange(c) // m):
                new_w, extra = w[p], 0
            elif shuffle_g:
                new_w, extra = w, -1  # a channel shuffle: free on the accelerator (Gather)
            else:
                cin_g = w.shape[1]
                dense = np.zeros((w.shape[0], cin_g * groups, *w.shape[2:]), w.dtype)
                for oc in range(w.shape[0]):
                    grp = oc // m
                    dense[oc, grp * cin_g:(grp + 1) * cin_g] = w[oc]
                new_w = dense[p]
                extra = (dense.size - w.size) * hw
            if 0 <= extra <= c * c * hw:
                prod.inputs[1] = g.add_const(f"{prod.name}_W", np.ascontiguousarray(new_w))
                prod.inputs[2] = g.add_const(f"{prod.name}_B", np.ascontiguousarray(b[p]))
                if extra:
                    prod.attrs["group"] = 1
                    report.notes.append(
                        f"channel shuffle '{n.name}' folded into conv '{prod.name}' by "
                        f"permuting its output channels; its {groups} groups were merged into "
                        f"one because the shuffle mixes groups (+{extra} MACs)")
                    report.rewrites["shuffle_into_producer_densified"] += 1
                else:
                    report.rewrites["shuffle_into_producer"] += 1
                g.nodes.remove(n)
                if y in g.outputs:
                    g.rename_tensor(x, y)
                else:
                    g.rename_tensor(y, x)
                continue
        if shuffle_g:
            # a channel shuffle that no weight permutation absorbs for free: a Gather along
            # channels, which the quantizer passes through and the lowering turns into a
            # QShuffle (the producer's SAVEs write the channels at shuffled positions)
            n.op_type = "Gather"
            n.inputs = [x, g.add_const(f"{n.name}_indices", p.astype(np.int64))]
            n.attrs = {"axis": 1}
            report.rewrites["shuffle_as_gather"] += 1
            continue
        # explicit permutation conv
        wperm = np.zeros((c, c, 1, 1), np.float32)
        wperm[np.arange(c), p, 0, 0] = 1.0
        n.op_type = "Conv"
        n.inputs = [x, g.add_const(f"{n.name}_W", wperm),
                    g.add_const(f"{n.name}_B", np.zeros(c, np.float32))]
        n.attrs = {"kernel_shape": [1, 1], "strides": [1, 1], "pads": [0, 0, 0, 0], "group": 1}
        report.notes.append(f"channel shuffle '{n.name}' became a 1x1 permutation Conv "
                            f"({c * c * hw} MACs)")
        report.rewrites["shuffle_as_conv"] += 1


__all__ = [
    "NORMALIZED_OPS",
    "SUPPORTED_OPS",
    "NormalizeReport",
    "default_opset",
    "is_qdq",
    "normalize",
    "normalize_with_report",
]
