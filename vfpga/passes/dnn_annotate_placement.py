"""``dnn-annotate-placement``: mark where every ``dnn`` node runs and how many MACs it does.

For people reading the IR (``vfpga-opt -p dnn-annotate-placement m.mlir``): every node
op gets ``placement`` ("accel" / "host") and ``macs`` (no silent CPU fallback). The
compile report of ``vfpga compile`` states the same facts for the compiled module itself:
accelerator layers and MACs from its ``ifp.layer`` ops, host ops from its ``dnn.host``
ops (``vfpga.driver.CompileResult``).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr
from xdsl.passes import ModulePass

from vfpga.dialects import dnn


def placement_of(op: dnn.DnnNodeOp) -> str:
    """``"host"`` for ``dnn.host`` (run on the CPU in float32), ``"accel"`` for every other
    node op (conv, pool and add have accelerator kernels; concat and shuffle cost nothing
    there: producers write at offsets / at shuffled channel positions)."""
    return "host" if isinstance(op, dnn.HostOp) else "accel"


def macs_of(op: dnn.DnnNodeOp) -> int:
    """Exact multiply-accumulates of ``op``: ``N*OC*OH*OW*(C/groups)*KH*KW`` for
    ``dnn.conv``, ``batch*M*K*N`` for a host ``MatMul``/``Gemm``, 0 otherwise."""
    if isinstance(op, dnn.ConvOp | dnn.HostOp):
        return op.macs()
    return 0


@dataclass(frozen=True)
class DnnAnnotatePlacementPass(ModulePass):
    """Set two discardable attributes on every ``dnn`` node op, in place:
    ``placement = "accel" | "host"`` (see :func:`placement_of`) and ``macs`` (``i64``, see
    :func:`macs_of`). Existing values are overwritten, so the pass is idempotent."""

    name = "dnn-annotate-placement"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        accel = StringAttr("accel")
        host = StringAttr("host")
        for node in op.walk():
            if isinstance(node, dnn.DnnNodeOp):
                node.attributes["placement"] = host if placement_of(node) == "host" else accel
                node.attributes["macs"] = IntegerAttr(macs_of(node), 64)


@dataclass(frozen=True)
class PlacementSummary:
    """Layer and MAC counts per placement, read from an annotated module."""

    accel_ops: int
    host_ops: int
    accel_macs: int
    host_macs: int
    host_op_names: tuple[str, ...]


def summarize_placement(module: ModuleOp) -> PlacementSummary:
    """Totals of the ``placement``/``macs`` annotations (ops without them are annotated on
    the fly with the same rules as the pass, without modifying the module)."""
    counts = {"accel": [0, 0], "host": [0, 0]}
    host_names: list[str] = []
    for node in module.walk():
        if not isinstance(node, dnn.DnnNodeOp):
            continue
        p = node.attributes.get("placement")
        m = node.attributes.get("macs")
        where = p.data if isinstance(p, StringAttr) else placement_of(node)
        macs = m.value.data if isinstance(m, IntegerAttr) else macs_of(node)
        counts[where][0] += 1
        counts[where][1] += macs
        if where == "host":
            host_names.append(node.node_name.data)
    return PlacementSummary(
        counts["accel"][0],
        counts["host"][0],
        counts["accel"][1],
        counts["host"][1],
        tuple(host_names),
    )
