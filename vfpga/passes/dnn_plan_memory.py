"""``dnn-plan-memory``: place every tensor of the ``dnn.graph`` in tenant DDR and lay out
the constant (DATA) blob, with :func:`vfpga.compiler.plan.plan_memory`.

The plan is written into the IR so that the later passes (and a later process reading
the printed module) continue from it:

* every node op gets ``ddr_offset`` and ``c_stride`` (``i64``): its output tensor's
  element ``(h, w, c)`` lives at ``ddr_offset + (h * W + w) * c_stride + c`` (a view of a
  concatenation's storage has the concatenation's channel count as ``c_stride``; a
  ``dnn.slice`` result is a view of its operand's storage at ``start``, with the
  operand's ``c_stride``). The
  operand of a ``dnn.shuffle`` is a view of the shuffle's storage written shuffled: its
  channel ``c`` lives at ``(c % m) * groups + c // m`` (``m = C / groups``) instead of
  ``c`` (:meth:`Placement.channel_pos`; not an attribute: it follows from the graph);
* every ``dnn.conv`` also gets ``weights_offset`` and ``params_offset``: where its int8
  weights ``[OC][KH][KW][IC/groups]`` and its parameter records ``(bias - in_zp * sum(w),
  multiplier, shift)`` start in DDR (inside the DATA blob);
* the ``dnn.graph`` gets ``input_ddr_offsets`` and ``input_c_strides`` (one entry per
  graph input);
* the module gets ``vfpga.data_offset`` (where the DATA blob starts), ``vfpga.ddr_size``
  (the tenant DDR bytes needed) and, when the planner had to copy a tensor,
  ``vfpga.plan_notes``.

Where a tensor cannot be a view of a concatenation (a graph input or output, a host-op
operand, or a tensor feeding two concatenations), or cannot be written shuffled into a
channel shuffle's storage (a graph input or output, a host-op operand, a concatenation
member or output, a tensor with other consumers, or one not produced by an accelerator
layer), or is a ``dnn.slice`` result read by a concatenation or a host op, the planner
copies it with an identity depthwise 1x1 convolution: the pass inserts that ``dnn.conv``
(marked ``plan_copy``) just before the ``dnn.concat`` / ``dnn.shuffle`` / ``dnn.host`` and
makes it read the copy. The DATA bytes are
not stored in the IR: they are a function of the ``dnn.conv`` ops and the offsets
(:func:`plan_from_module` rebuilds them). Running the pass again re-plans the (already
copied) graph and overwrites the annotations.

In process, the pass also attaches the :class:`MemoryPlan` it computed (with the DATA
bytes) to the module (:mod:`vfpga.dialects.derived`, anchored on ``vfpga.ddr_size``);
:func:`planned` returns it, or rebuilds it from the IR for a module read from text. A
pass that changes the ``dnn.graph`` after planning must re-run ``dnn-plan-memory``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr, UnitAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import DiagnosticException

from vfpga.compiler.plan import ConstBlob, MemoryPlan, Placement, conv_constants, plan_memory
from vfpga.dialects import derived, dnn
from vfpga.dialects.dnn_convert import find_graph, module_to_qgraph
from vfpga.errors import CompileError
from vfpga.frontend.qgraph import QConcat, QConv, QGraph, QHostOp, QShuffle

DATA_OFFSET_ATTR = "vfpga.data_offset"
DDR_SIZE_ATTR = "vfpga.ddr_size"
NOTES_ATTR = "vfpga.plan_notes"
COPY_ATTR = "plan_copy"
PLAN_KEY = "plan"


class StaticPassError(CompileError, DiagnosticException):
    """A static pass cannot run on this module (a missing earlier pass, a layer that
    does not fit); the message says what to do."""


def _i64(v: int) -> IntegerAttr:
    return IntegerAttr(int(v), 64)


def _get_int(op: Operation, name: str) -> int | None:
    a = op.attributes.get(name)
    return a.value.data if isinstance(a, IntegerAttr) else None


@dataclass(frozen=True)
class DnnPlanMemoryPass(ModulePass):
    """Plan DDR (views for concatenations, liveness-based reuse, DATA layout) and annotate
    the module with the plan (see the module docstring)."""

    name = "dnn-plan-memory"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        graph = find_graph(op)
        plan = plan_memory(module_to_qgraph(op))
        _insert_copies(graph, plan.graph)
        for node in graph.node_ops():
            p = plan.places.get(node.out_name.data)
            if p is not None:
                node.attributes["ddr_offset"] = _i64(p.offset)
                node.attributes["c_stride"] = _i64(p.c_stride)
            if isinstance(node, dnn.ConvOp):
                cb = plan.consts[node.node_name.data]
                node.attributes["weights_offset"] = _i64(cb.weights)
                node.attributes["params_offset"] = _i64(cb.params)
        names = [n.data for n in graph.input_names.data]
        graph.attributes["input_ddr_offsets"] = dnn.int_array(plan.places[n].offset for n in names)
        graph.attributes["input_c_strides"] = dnn.int_array(plan.places[n].c_stride for n in names)
        op.attributes[DATA_OFFSET_ATTR] = _i64(plan.data_offset)
        op.attributes[DDR_SIZE_ATTR] = anchor = _i64(plan.ddr_size)
        derived.attach(op, PLAN_KEY, anchor, plan)
        if plan.notes:  # (a re-run inserts no new copies: earlier notes stay)
            old = op.attributes.get(NOTES_ATTR)
            notes = [cast(StringAttr, s).data for s in old.data] if isinstance(
                old, ArrayAttr) else []
            notes += [n for n in plan.notes if n not in notes]
            op.attributes[NOTES_ATTR] = ArrayAttr(StringAttr(n) for n in notes)


def _insert_copies(graph: dnn.GraphOp, planned: QGraph) -> None:
    """Insert the planner's copy layers (nodes of ``planned`` that the graph lacks) before
    the next existing node, and rewire the concatenations, channel shuffles and host ops
    to read them."""
    by_name = {n.node_name.data: n for n in graph.node_ops()}
    values: dict[str, SSAValue] = {
        n.data: a for n, a in zip(graph.input_names.data, graph.block.args, strict=True)
    }
    for n in graph.node_ops():
        values[n.out_name.data] = n.output
    pending: list[dnn.ConvOp] = []
    for node in planned.nodes:
        existing = by_name.get(node.name)
        if existing is None:
            assert isinstance(node, QConv)
            t = planned.tensors[node.output]
            conv = dnn.ConvOp(
                values[node.input], dnn.QTensorType(t.shape, t.scale, t.zero_point),
                name=node.name, out=node.output, weight=node.weight, bias=node.bias,
                multiplier=node.multiplier, shift=node.shift, strides=node.strides,
                pads=node.pads, groups=node.groups, act=(node.act.kind, node.act.lo,
                                                         node.act.hi))
            conv.attributes[COPY_ATTR] = UnitAttr()
            if SSAValue.is_valid_name(node.output):
                conv.output.name_hint = node.output
            values[node.output] = conv.output
            pending.append(conv)
            continue
        if pending:
            graph.block.insert_ops_before(pending, existing)
            pending = []
        if isinstance(existing, dnn.ConcatOp) and isinstance(node, QConcat):
            ins = [values[t] for t in node.inputs]
            if list(existing.operands) != ins:
                existing.operands = ins
        elif isinstance(existing, dnn.ShuffleOp) and isinstance(node, QShuffle):
            src = values[node.input]
            if existing.input != src:
                existing.operands = [src]
        elif isinstance(existing, dnn.HostOp) and isinstance(node, QHostOp):
            ins = [values[t] for t in node.inputs]
            if list(existing.operands) != ins:
                existing.operands = ins
    assert not pending, "copy layers must precede a node of the graph"


# ------------------------------------------------------------------------------ reading
def planned(module: ModuleOp) -> MemoryPlan:
    """The module's memory plan with its DATA bytes: the one ``dnn-plan-memory``
    attached in this process, else :func:`plan_from_module` (``with_data=True``, which is
    then attached). Raises :class:`StaticPassError` if the module was not planned."""
    anchor = module.attributes.get(DDR_SIZE_ATTR)
    plan = derived.lookup(module, PLAN_KEY, anchor)
    if plan is None:
        plan = plan_from_module(module, with_data=True)
        assert anchor is not None
        derived.attach(module, PLAN_KEY, anchor, plan)
    return plan


def plan_from_module(module: ModuleOp, with_data: bool = False) -> MemoryPlan:
    """The :class:`MemoryPlan` written into ``module`` by ``dnn-plan-memory``.

    ``graph`` is the module's graph with the planner's copy tensors listed last among the
    tensors (as :func:`plan_memory` lists them); ``storages`` is empty (the IR keeps the
    placements, not the storage blocks); ``data`` is rebuilt from the ``dnn.conv`` ops
    when ``with_data`` (else empty). Raises :class:`StaticPassError` if the module was
    not planned.
    """
    graph = find_graph(module)
    data_offset = module.attributes.get(DATA_OFFSET_ATTR)
    ddr_size = module.attributes.get(DDR_SIZE_ATTR)
    if not isinstance(data_offset, IntegerAttr) or not isinstance(ddr_size, IntegerAttr):
        raise StaticPassError(
            "the module has no memory plan (module attributes vfpga.data_offset / "
            "vfpga.ddr_size): run the dnn-plan-memory pass first"
        )
    g = module_to_qgraph(module)
    copies = {n.out_name.data for n in graph.node_ops() if COPY_ATTR in n.attributes}
    if copies:
        g.tensors = {**{k: v for k, v in g.tensors.items() if k not in copies},
                     **{k: v for k, v in g.tensors.items() if k in copies}}
    places: dict[str, Placement] = {}
    offs = dnn.int_tuple(cast(dnn.DenseArrayBase, graph.attributes["input_ddr_offsets"]))
    strides = dnn.int_tuple(cast(dnn.DenseArrayBase, graph.attributes["input_c_strides"]))
    for name, o, s in zip(g.inputs, offs, strides, strict=True):
        places[name] = Placement(o, s, -1)
    consts: dict[str, ConstBlob] = {}
    for node in graph.node_ops():
        off, stride = _get_int(node, "ddr_offset"), _get_int(node, "c_stride")
        if off is not None and stride is not None:
            places[node.out_name.data] = Placement(off, stride, -1)
        if isinstance(node, dnn.ConvOp):
            w, p = _get_int(node, "weights_offset"), _get_int(node, "params_offset")
            if w is None or p is None:
                raise StaticPassError(
                    f"{node.label} has no weights_offset/params_offset: run dnn-plan-memory"
                )
            consts[node.node_name.data] = ConstBlob(w, p)
    for n in g.nodes:  # a shuffle's input is stored shuffled (as plan_memory places it)
        if isinstance(n, QShuffle) and n.input in places:
            places[n.input].shuffle = n.groups
            places[n.input].shuffle_c = g.tensors[n.input].shape[1]
    d0, size = data_offset.value.data, ddr_size.value.data
    data = b""
    if with_data:
        blob = bytearray(size - d0)
        for n in g.nodes:
            if isinstance(n, QConv):
                wb, pb = conv_constants(n, g.tensors[n.input].zero_point)
                cb = consts[n.name]
                blob[cb.weights - d0 : cb.weights - d0 + len(wb)] = wb
                blob[cb.params - d0 : cb.params - d0 + len(pb)] = pb
        data = bytes(blob)
    notes_attr = module.attributes.get(NOTES_ATTR)
    notes = ([cast(StringAttr, s).data for s in notes_attr.data]
             if isinstance(notes_attr, ArrayAttr) else [])
    return MemoryPlan(graph=g, places=places, storages=[], consts=consts, data=data,
                      data_offset=d0, ddr_size=size, notes=notes)
