"""``pin-tiling{layers="conv1","conv2" axis=w}``: keep only the width (``w``) or only the
output-channel (``c``) tiling candidates of the named layers.

Runs between ``dnn-tile`` (which lists every candidate of every layer as
``ifp.candidate`` ops) and ``ifp-package``. The later passes then package, lower,
estimate and select among the candidates that remain, so the binary's IFP table holds
only tilings along ``axis`` for those layers, and the dispatch runs the best of them.
Why: a layer whose halo loads are costly, or whose weights should stay resident per
core, can be kept to one split axis without touching the compiler.

Errors (one line, naming the layer): a layer name that is not an accelerator layer of
the module, an axis other than ``w`` / ``c``, or a layer left with no candidate (e.g. a
layer with a single output channel has no ``c`` split).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from vfpga.dialects import ifp
from vfpga.passes.dnn_plan_memory import StaticPassError
from vfpga.passes.dnn_tile import layers_of


@dataclass(frozen=True)
class PinTilingPass(ModulePass):
    """Drop the candidates of ``layers`` that do not split along ``axis`` (see the
    module docstring)."""

    name = "pin-tiling"

    layers: tuple[str, ...] = ()
    axis: str = "w"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.axis not in ifp.AXES:
            raise StaticPassError(f"pin-tiling: axis must be 'w' or 'c', not '{self.axis}'")
        by_name = {layer.node.data: layer for layer in layers_of(op)}
        for name in self.layers:
            layer = by_name.get(name)
            if layer is None:
                raise StaticPassError(
                    f"pin-tiling: '{name}' is not an accelerator layer of the module "
                    f"(layers: {', '.join(sorted(by_name))})"
                )
            if layer.selected is not None:
                raise StaticPassError(
                    f"pin-tiling: layer '{name}' already has a selected candidate: run "
                    "pin-tiling before ifp-select"
                )
            keep = [c for c in layer.candidates() if c.axis_name == self.axis]
            if not keep:
                raise StaticPassError(
                    f"pin-tiling: layer '{name}' has no '{self.axis}' tiling candidate"
                )
            for cand in layer.candidates():
                if cand.axis_name != self.axis:
                    cand.detach()
                    cand.erase()
