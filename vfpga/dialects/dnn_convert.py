"""Conversion between :class:`vfpga.frontend.qgraph.QGraph` and a ``builtin.module``
holding one ``dnn.graph``.

The conversion is exact in both directions: ``module_to_qgraph(qgraph_to_module(g)) == g``
field by field, with weights and per-channel arrays byte-equal (int8 weights, int32
``bias``/``multiplier``/``shift``; ``QConv.divisor`` is a float32 value, stored as an
``f32`` property only when it is not 1.0). Arrays returned by :func:`module_to_qgraph` are
read-only numpy views of the IR's bytes (copy them to modify). Host-op attributes
round-trip for ``bool``, ``int``, ``float``, ``str``, lists of ints / floats / strings
(returned as lists) and numpy arrays.

Building is from raw bytes throughout (no per-element Python objects), so a
ResNet-50-sized graph (~200 ops, 25 MB of weights) converts in tens of milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, SSAValue

from vfpga.dialects import dnn
from vfpga.errors import VfpgaError
from vfpga.frontend.qgraph import (
    Act,
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
)

#: ``dnn.graph`` attribute listing the graph inputs fed as float32 (``QGraph.float_inputs``).
FLOAT_INPUTS_ATTR = "vfpga.float_inputs"
#: ``dnn.graph`` attribute listing the graph inputs of int64 ids (``QGraph.index_inputs``).
INDEX_INPUTS_ATTR = "vfpga.index_inputs"
#: ``dnn.graph`` attribute: the ONNX shape of each graph input held in another 4-D shape
#: (``QGraph.input_shapes``), a dictionary of name -> i64 array.
INPUT_SHAPES_ATTR = "vfpga.input_shapes"


class DnnConversionError(VfpgaError):
    """A QGraph cannot be expressed as a ``dnn`` module (or a module is not a dnn graph);
    the message names the node or tensor."""


# --------------------------------------------------------------------------------------
# Host-op attributes
# --------------------------------------------------------------------------------------

_NP_ELEM: dict[str, IntegerType | Float32Type | Float64Type] = {
    "int8": IntegerType(8),
    "int32": IntegerType(32),
    "int64": IntegerType(64),
    "float32": Float32Type(),
    "float64": Float64Type(),
}


def host_attr_to_ir(value: object, where: str) -> Attribute:
    """One ONNX attribute value of a host op as a builtin attribute.

    ``bool`` -> ``i1``; ``int`` -> ``i64``; ``float`` -> ``f64``; ``str`` -> string;
    list/tuple of ints -> ``array<i64>``, of floats -> ``array<f64>``, of strings ->
    ``[...]`` (empty -> ``[]``); numpy array (int8/32/64, float32/64) -> ``dense``.
    """
    if isinstance(value, bool | np.bool_):
        return IntegerAttr(int(bool(value)), IntegerType(1))
    if isinstance(value, int | np.integer):
        v = int(value)
        if not -(1 << 63) <= v < (1 << 63):
            raise DnnConversionError(f"{where}: integer {v} does not fit in i64")
        return IntegerAttr(v, IntegerType(64))
    if isinstance(value, float | np.floating):
        return FloatAttr(float(value), Float64Type())
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, np.ndarray):
        elem = _NP_ELEM.get(value.dtype.name)
        if elem is None or value.ndim == 0 or value.size == 0:
            raise DnnConversionError(
                f"{where}: numpy attribute of dtype {value.dtype} and shape {value.shape} is not "
                "supported (int8/int32/int64/float32/float64, rank >= 1, non-empty)"
            )
        data = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
        return DenseIntOrFPElementsAttr(TensorType(elem, value.shape), BytesAttr(data))
    if isinstance(value, list | tuple):
        seq = cast(Sequence[object], value)
        if not seq:
            return ArrayAttr([])
        if all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in seq):
            return DenseArrayBase(
                IntegerType(64), BytesAttr(np.asarray(seq, dtype="<i8").tobytes())
            )
        if all(isinstance(x, float | np.floating) for x in seq):
            return DenseArrayBase(Float64Type(), BytesAttr(np.asarray(seq, dtype="<f8").tobytes()))
        if all(isinstance(x, str) for x in seq):
            return ArrayAttr(StringAttr(cast(str, x)) for x in seq)
        raise DnnConversionError(
            f"{where}: list attribute must hold only ints, only floats or only strings"
        )
    raise DnnConversionError(f"{where}: attribute of type {type(value).__name__} is not supported")


def host_attr_from_ir(attr: Attribute, where: str) -> object:
    """Inverse of :func:`host_attr_to_ir`."""
    if isinstance(attr, IntegerAttr):
        v = attr.value.data
        return bool(v) if attr.type == IntegerType(1) else v
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DenseArrayBase):
        if isinstance(attr.elt_type, IntegerType):
            return [int(v) for v in dnn.array_values(attr)]
        return [float(v) for v in np.frombuffer(attr.data.data, dtype="<f8")]
    if isinstance(attr, ArrayAttr):
        items = cast(ArrayAttr[Attribute], attr).data
        if not all(isinstance(x, StringAttr) for x in items):
            raise DnnConversionError(f"{where}: only arrays of strings are supported")
        return [cast(StringAttr, x).data for x in items]
    if isinstance(attr, DenseIntOrFPElementsAttr):
        elem = attr.get_element_type()
        for name, t in _NP_ELEM.items():
            if t == elem:
                arr = np.frombuffer(attr.data.data, dtype=np.dtype(name).newbyteorder("<"))
                return arr.astype(name).reshape(attr.get_shape())
    raise DnnConversionError(f"{where}: attribute {attr} has no QGraph equivalent")


# --------------------------------------------------------------------------------------
# QGraph -> module
# --------------------------------------------------------------------------------------


def _qtype(t: QTensor) -> dnn.QTensorType:
    return dnn.QTensorType(t.shape, t.scale, t.zero_point)


def _act(a: Act) -> tuple[str, int, int]:
    return (a.kind, int(a.lo), int(a.hi))


def _name_hint(op_result: SSAValue, name: str) -> None:
    if SSAValue.is_valid_name(name):
        op_result.name_hint = name


def qgraph_to_module(g: QGraph) -> ModuleOp:
    """Build ``builtin.module { dnn.graph @<g.name> ... }`` from a QGraph.

    Raises :class:`DnnConversionError` when a node reads a tensor that is not yet defined
    (the node list must be topologically sorted), a tensor is missing from
    ``g.tensors``, a tensor is defined twice or never (every entry of ``g.tensors`` must be
    a graph input or a node output, so that the round trip is exact), or an array does
    not fit its type. The module is not verified here (call ``module.verify()``).
    """
    values: dict[str, SSAValue] = {}

    def tensor(name: str, where: str) -> QTensor:
        t = g.tensors.get(name)
        if t is None:
            raise DnnConversionError(f"{where}: tensor '{name}' is not in the graph's tensors")
        if t.name != name:
            raise DnnConversionError(
                f"tensors['{name}'] is named '{t.name}'; keys must equal the tensor names"
            )
        return t

    def use(name: str, where: str) -> SSAValue:
        v = values.get(name)
        if v is None:
            tensor(name, where)
            raise DnnConversionError(
                f"{where}: input tensor '{name}' is used before it is defined "
                "(nodes must be in topological order)"
            )
        return v

    in_types = [_qtype(tensor(n, f"graph '{g.name}' input")) for n in g.inputs]
    graph = dnn.GraphOp(g.name, in_types, list(g.inputs))
    if g.float_inputs:
        bad = [n for n in g.float_inputs if n not in g.inputs]
        if bad:
            raise DnnConversionError(f"graph '{g.name}': float inputs {bad} are not inputs")
        graph.attributes[FLOAT_INPUTS_ATTR] = ArrayAttr(StringAttr(n) for n in g.float_inputs)
    if g.index_inputs:
        bad = [n for n in g.index_inputs if n not in g.inputs]
        if bad:
            raise DnnConversionError(f"graph '{g.name}': int64 inputs {bad} are not inputs")
        graph.attributes[INDEX_INPUTS_ATTR] = ArrayAttr(StringAttr(n) for n in g.index_inputs)
    if g.input_shapes:
        bad = [n for n in g.input_shapes if n not in g.inputs]
        if bad:
            raise DnnConversionError(f"graph '{g.name}': input shapes of {bad}, not inputs")
        graph.attributes[INPUT_SHAPES_ATTR] = DictionaryAttr(
            {n: dnn.int_array(s) for n, s in g.input_shapes.items()})
    block = graph.block
    for name, arg in zip(g.inputs, block.args, strict=True):
        if name in values:
            raise DnnConversionError(f"graph '{g.name}': input '{name}' is listed twice")
        values[name] = arg
        _name_hint(arg, name)

    ops: list[dnn.DnnNodeOp] = []
    for node in g.nodes:
        where = f"node '{node.name}' ({type(node).__name__})"
        if node.output in values:
            raise DnnConversionError(f"{where}: tensor '{node.output}' is defined twice")
        out_t = _qtype(tensor(node.output, where))
        try:
            op = _node_to_op(node, out_t, use, where)
        except ValueError as exc:
            raise DnnConversionError(f"{where}: {exc}") from None
        values[node.output] = op.output
        _name_hint(op.output, node.output)
        ops.append(op)

    unreferenced = [n for n in g.tensors if n not in values]
    if unreferenced:
        raise DnnConversionError(
            f"graph '{g.name}': tensors {unreferenced[:5]} are neither graph inputs nor node "
            "outputs; remove them from QGraph.tensors"
        )
    outs = [use(n, f"graph '{g.name}' output") for n in g.outputs]
    bad = [n for n in g.output_shapes if n not in g.outputs]
    if bad:
        raise DnnConversionError(
            f"graph '{g.name}': output_shapes names {bad}, which are not graph outputs"
        )
    ret = dnn.ReturnOp(outs, [g.output_shapes.get(n) for n in g.outputs])
    block.add_ops([*ops, ret])
    return ModuleOp([graph])


def _node_to_op(
    node: QNode, out_t: dnn.QTensorType, get: Callable[[str, str], SSAValue], where: str
) -> dnn.DnnNodeOp:
    match node:
        case QConv():
            d = float(node.divisor)
            with np.errstate(over="ignore"):
                d32 = float(np.float32(d))
            if not (math.isfinite(d) and d > 0.0) or d32 != d:
                raise ValueError(
                    f"divisor {node.divisor!r} is not a finite positive float32 value "
                    "(round it with numpy.float32)"
                )
            return dnn.ConvOp(
                get(node.input, where),
                out_t,
                name=node.name,
                out=node.output,
                weight=node.weight,
                bias=node.bias,
                multiplier=node.multiplier,
                shift=node.shift,
                strides=node.strides,
                pads=node.pads,
                groups=node.groups,
                act=_act(node.act),
                divisor=d,
                act_table=node.act.table,
                dilations=node.dilations,
                upsample=node.upsample,
                fsum_in_scale=node.fsum_in_scale,
            )
        case QPool():
            return dnn.PoolOp(
                get(node.input, where),
                out_t,
                name=node.name,
                out=node.output,
                kind=node.kind,
                kernel=node.kernel,
                strides=node.strides,
                pads=node.pads,
                count_include_pad=node.count_include_pad,
            )
        case QResize():
            return dnn.ResizeOp(
                get(node.input, where),
                out_t,
                name=node.name,
                out=node.output,
                coord=node.coord,
                scales=node.scales,
            )
        case QAdd():
            return dnn.AddOp(
                get(node.a, where),
                get(node.b, where),
                out_t,
                name=node.name,
                out=node.output,
                mult_a=node.mult_a,
                mult_b=node.mult_b,
                shift=node.shift,
                act=_act(node.act),
                op=node.op,
                divisor=node.divisor,
            )
        case QConcat():
            return dnn.ConcatOp(
                [get(n, where) for n in node.inputs],
                out_t,
                name=node.name,
                out=node.output,
                axis=node.axis,
            )
        case QShuffle():
            return dnn.ShuffleOp(
                get(node.input, where), out_t, name=node.name, out=node.output, groups=node.groups
            )
        case QSlice():
            return dnn.SliceOp(
                get(node.input, where), out_t, name=node.name, out=node.output, start=node.start
            )
        case QHostOp():
            attrs = {
                k: host_attr_to_ir(v, f"{where} attribute '{k}'") for k, v in node.attrs.items()
            }
            return dnn.HostOp(
                [get(n, where) for n in node.inputs],
                out_t,
                name=node.name,
                out=node.output,
                op_type=node.op_type,
                attrs=attrs,
                output_float=node.output_float,
            )
    raise DnnConversionError(f"{where}: unknown node type")


# --------------------------------------------------------------------------------------
# module -> QGraph
# --------------------------------------------------------------------------------------


def find_graph(m: ModuleOp) -> dnn.GraphOp:
    """The single ``dnn.graph`` at the top level of ``m``."""
    graphs = [op for op in m.ops if isinstance(op, dnn.GraphOp)]
    if len(graphs) != 1:
        raise DnnConversionError(
            f"expected exactly one dnn.graph in the module, found {len(graphs)}"
        )
    return graphs[0]


def _qtensor(name: str, t: Attribute) -> QTensor:
    qt = cast(dnn.QTensorType, t)
    return QTensor(name, qt.get_shape(), qt.scale_value, qt.zp)


def module_to_qgraph(m: ModuleOp) -> QGraph:
    """Read the module's single ``dnn.graph`` back into a :class:`QGraph` (the inverse of
    :func:`qgraph_to_module`). The module should verify; the tensor name of every SSA value
    is its producer's ``out`` (or the graph input name)."""
    graph = find_graph(m)
    names: dict[SSAValue, str] = {}
    tensors: dict[str, QTensor] = {}
    inputs = [n.data for n in graph.input_names.data]
    for name, arg in zip(inputs, graph.block.args, strict=True):
        names[arg] = name
        tensors[name] = _qtensor(name, arg.type)

    nodes: list[QNode] = []
    for op in graph.node_ops():
        out = op.out_name.data
        nodes.append(_op_to_node(op, names))
        names[op.output] = out
        tensors[out] = _qtensor(out, op.output.type)

    ret = graph.return_op()
    outputs = [names[v] for v in ret.outputs]
    output_shapes: dict[str, tuple[int, ...]] = {}
    for i, n in enumerate(outputs):
        r = ret.reshape_of(i)
        if r is not None:
            output_shapes[n] = r
    floats = graph.attributes.get(FLOAT_INPUTS_ATTR)
    ids = graph.attributes.get(INDEX_INPUTS_ATTR)
    in_shapes = graph.attributes.get(INPUT_SHAPES_ATTR)
    return QGraph(
        name=graph.sym_name.data,
        inputs=inputs,
        outputs=outputs,
        tensors=tensors,
        nodes=nodes,
        output_shapes=output_shapes,
        float_inputs=[s.data for s in floats.data] if isinstance(floats, ArrayAttr) else [],
        index_inputs=[s.data for s in ids.data] if isinstance(ids, ArrayAttr) else [],
        input_shapes=({k: dnn.int_tuple(v) for k, v in in_shapes.data.items()
                       if isinstance(v, DenseArrayBase)}
                      if isinstance(in_shapes, DictionaryAttr) else {}),
    )


def _act_of(op: dnn.ConvOp | dnn.AddOp) -> Act:
    kind, lo, hi = op.act_spec()
    table = op.act_table_values() if isinstance(op, dnn.ConvOp) else ()
    return Act(kind, lo, hi, table)  # type: ignore[arg-type]


def _op_to_node(op: dnn.DnnNodeOp, names: dict[SSAValue, str]) -> QNode:
    name, out = op.node_name.data, op.out_name.data
    ins = [names[v] for v in op.operands]
    if isinstance(op, dnn.ConvOp):
        s, p = dnn.int_tuple(op.strides), dnn.int_tuple(op.pads)
        return QConv(
            name=name,
            input=ins[0],
            output=out,
            weight=op.weight_array(),
            bias=dnn.array_values(op.bias),
            multiplier=dnn.array_values(op.multiplier),
            shift=dnn.array_values(op.shift),
            strides=(s[0], s[1]),
            pads=(p[0], p[1], p[2], p[3]),
            groups=op.groups.value.data,
            act=_act_of(op),
            divisor=op.divisor_value,
            dilations=op.dilation_pair(),
            upsample=op.upsample_pair(),
            fsum_in_scale=op.fsum_value,
        )
    if isinstance(op, dnn.PoolOp):
        k, s, p = dnn.int_tuple(op.kernel), dnn.int_tuple(op.strides), dnn.int_tuple(op.pads)
        return QPool(
            name=name,
            input=ins[0],
            output=out,
            kind=op.kind.data,  # type: ignore[arg-type]
            kernel=(k[0], k[1]),
            strides=(s[0], s[1]),
            pads=(p[0], p[1], p[2], p[3]),
            count_include_pad=op.count_include_pad is not None,
        )
    if isinstance(op, dnn.ResizeOp):
        return QResize(name=name, input=ins[0], output=out, coord=op.coord.data,
                       scales=op.scale_pair())
    if isinstance(op, dnn.AddOp):
        return QAdd(
            name=name,
            a=ins[0],
            b=ins[1],
            output=out,
            mult_a=op.mult_a.value.data,
            mult_b=op.mult_b.value.data,
            shift=op.shift.value.data,
            act=_act_of(op),
            op=op.op.data,  # type: ignore[arg-type]
            divisor=op.divisor_value,
        )
    if isinstance(op, dnn.ConcatOp):
        return QConcat(name=name, inputs=ins, output=out, axis=op.axis.value.data)
    if isinstance(op, dnn.ShuffleOp):
        return QShuffle(name=name, input=ins[0], output=out, groups=op.groups_value)
    if isinstance(op, dnn.SliceOp):
        return QSlice(name=name, input=ins[0], output=out, start=op.start_value)
    if isinstance(op, dnn.HostOp):
        where = f"{op.label} attribute"
        return QHostOp(
            name=name,
            op_type=op.op_type.data,
            inputs=ins,
            output=out,
            attrs={k: host_attr_from_ir(v, f"{where} '{k}'") for k, v in op.attrs.data.items()},
            output_float=op.output_float is not None,
        )
    raise DnnConversionError(f"{op.name}: not a dnn node op")
