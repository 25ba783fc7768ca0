"""Host partitioning of a QDQ model: the ONNX nodes the accelerator cannot run become
*host segments*, self-contained ONNX models run by onnxruntime between accelerator layers
(:data:`~vfpga.frontend.qgraph.SEGMENT_OP` host ops).

The QDQ lowering (:mod:`vfpga.frontend.qdq_lower`) walks the graph in order; a node goes
to the host when its op (or this use of it) has no accelerator lowering, or when it reads
a float value computed on the host. Host nodes connected by float edges form one segment:
a segment is cut where onnxruntime's quantizer put a ``QuantizeLinear`` (its int8 result
is an accelerator tensor), so its boundaries are exactly the QDQ model's. A segment that
feeds several ``QuantizeLinear`` nodes or float graph outputs becomes one host op per
output, each holding the nodes that output depends on.

Boundary contract (shared by the emulator and the reference through
:mod:`vfpga.reference.host_segment`): each segment input is an int8 accelerator tensor,
dequantized inside the segment model by ``DequantizeLinear`` with the tensor's scale and
int8 zero point, or the float32 graph input itself when the QDQ model reads it
unquantized (``QGraph.float_inputs``); the output is quantized inside the model by
``QuantizeLinear`` with the output tensor's scale and int8 zero point (uint8 QDQ tensors
map exactly: ``q - 128`` with zero point ``- 128``), or left float32 for a float graph
output.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vfpga.errors import FrontendError
from vfpga.frontend.qgraph import QTensor


@dataclass
class HostSegment:
    """The host nodes a float value depends on: ``nodes`` (in graph order), the int8
    accelerator tensors it reads (``inputs``: ONNX float name -> (QGraph tensor, ONNX
    shape)), its constants (``consts``) and why each node is on the host (``reasons``)."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inputs: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    #: dequantized integer constants (quantized weights): ONNX float name -> (integer
    #: values, scale, zero point, axis), kept as ``DequantizeLinear`` of the integers so
    #: onnxruntime can fuse the segment's ``DQ -> op -> Q`` like in the QDQ model
    dq_consts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None, int]] = field(
        default_factory=dict
    )
    #: the ``inputs`` that are the float32 graph input itself (read unquantized)
    float_inputs: set[str] = field(default_factory=set)
    #: the ``inputs`` that are the int64 graph input of ids (read as they are)
    index_inputs: set[str] = field(default_factory=set)

    def merge(self, other: HostSegment) -> None:
        """Add ``other``'s nodes, inputs, constants and reasons (keeping graph order)."""
        have = {id(n) for n in self.nodes}
        self.nodes.extend(n for n in other.nodes if id(n) not in have)
        self.inputs.update(other.inputs)
        self.consts.update(other.consts)
        self.dq_consts.update(other.dq_consts)
        self.reasons.update(other.reasons)
        self.float_inputs.update(other.float_inputs)
        self.index_inputs.update(other.index_inputs)


def node_macs(
    node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]], consts: dict[str, np.ndarray]
) -> int:
    """Multiply-accumulates of a Conv / ConvTranspose / MatMul / Gemm node (0 for other
    ops or unknown shapes)."""
    out = shapes.get(node.output[0]) if node.output else None
    if out is None or len(node.input) < 2:
        return 0
    w = consts.get(node.input[1]) if len(node.input) > 1 else None
    wshape = tuple(w.shape) if w is not None else shapes.get(node.input[1], ())
    if node.op_type == "Conv" and len(wshape) >= 3:
        return math.prod(out) * math.prod(wshape[1:])
    if node.op_type == "ConvTranspose" and len(wshape) >= 3:
        x = shapes.get(node.input[0])
        return math.prod(x) * math.prod(wshape[1:]) if x else 0
    if node.op_type in ("MatMul", "Gemm"):
        a = shapes.get(node.input[0])
        if a:
            k = a[-1] if not (node.op_type == "Gemm" and _attr_int(node, "transA")) else a[0]
            return math.prod(out) * k
    return 0


def _attr_int(node: onnx.NodeProto, name: str) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return 0


def segment_model(
    seg: HostSegment,
    output: str,
    out_shape: tuple[int, ...],
    out_tensor: QTensor | None,
    tensors: dict[str, QTensor],
    template: onnx.ModelProto,
    source: str,
    out_dtype: str = "float32",
) -> tuple[bytes, list[str], list[onnx.NodeProto]]:
    """The ONNX model computing ``output`` from ``seg``: returns its serialized bytes, the
    QGraph tensors it reads (in input order) and the nodes it holds. ``out_tensor``
    quantizes the output (``None``: a graph output of element type ``out_dtype``, whose
    -1 dimensions in ``out_shape`` the data decides). Opsets and IR version come from
    ``template``."""
    need = {output}
    nodes: list[onnx.NodeProto] = []
    for n in reversed(seg.nodes):
        if any(o in need for o in n.output):
            nodes.append(n)
            need.update(i for i in n.input if i)
    nodes.reverse()
    g_inputs: list[onnx.ValueInfoProto] = []
    pre: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    reads: list[str] = []
    for name, (tname, shape) in seg.inputs.items():
        if name not in need:
            continue
        reads.append(tname)
        if name in seg.float_inputs or name in seg.index_inputs:  # the graph input, as is
            elem = TensorProto.INT64 if name in seg.index_inputs else TensorProto.FLOAT
            g_inputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
            continue
        t = tensors[tname]
        qn = f"{name}__int8"
        g_inputs.append(helper.make_tensor_value_info(qn, TensorProto.INT8, list(shape)))
        pre.append(_qdq_node("DequantizeLinear", qn, name, t, inits))
    for name, value in seg.consts.items():
        if name in need:
            inits.append(numpy_helper.from_array(np.asarray(value), name))
    for name, (q, scale, zp, axis) in seg.dq_consts.items():
        if name in need:
            ins = [f"{name}__q", f"{name}__scale"]
            inits += [
                numpy_helper.from_array(np.asarray(q), ins[0]),
                numpy_helper.from_array(np.asarray(scale, np.float32), ins[1]),
            ]
            if zp is not None:
                ins.append(f"{name}__zp")
                inits.append(numpy_helper.from_array(np.asarray(zp), ins[2]))
            pre.append(
                helper.make_node("DequantizeLinear", ins, [name], name=f"{name}__dq", axis=axis)
            )
    post: list[onnx.NodeProto] = []
    if out_tensor is None:
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype))
        dims = [d if d > 0 else None for d in out_shape]
        outs = [helper.make_tensor_value_info(output, elem, dims)]
    else:
        qo = f"{output}__int8"
        post.append(_qdq_node("QuantizeLinear", output, qo, out_tensor, inits))
        outs = [helper.make_tensor_value_info(qo, TensorProto.INT8, list(out_shape))]
    if not reads:
        raise FrontendError(
            f"{source}: host segment computing '{output}' reads no "
            "accelerator tensor (a constant subgraph); fold it into constants"
        )
    graph = helper.make_graph([*pre, *nodes, *post], f"host:{output}", g_inputs, outs, inits)
    model = helper.make_model(
        graph, opset_imports=list(template.opset_import), ir_version=template.ir_version
    )
    return model.SerializeToString(), reads, nodes


def _qdq_node(op: str, src: str, dst: str, t: QTensor, inits: list[TensorProto]) -> onnx.NodeProto:
    """A ``QuantizeLinear``/``DequantizeLinear`` node ``src -> dst`` with ``t``'s scale and
    int8 zero point (appended to ``inits``)."""
    inits += [
        numpy_helper.from_array(np.array(t.scale, np.float32), f"{dst}__scale"),
        numpy_helper.from_array(np.array(t.zero_point, np.int8), f"{dst}__zp"),
    ]
    return helper.make_node(op, [src, f"{dst}__scale", f"{dst}__zp"], [dst], name=f"{dst}__node")


def encode(data: bytes) -> str:
    """The ``onnx`` attribute text of a serialized segment model (base64)."""
    return base64.b64encode(data).decode("ascii")
