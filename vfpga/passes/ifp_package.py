"""``ifp-package``: one ``ifp.package`` per tile of every ``ifp.candidate``.

Needs ``dnn-tile``. A candidate's packages are its tiles in order (columns or output
channels ``[at[i], at[i+1])``, the other axis whole, all rows). Each package records the
loop nest :func:`vfpga.compiler.ifpgen.choose_plan` picks for its tile within the core's
buffers: ``og`` output channels per channel group, ``rb`` output rows per band (double
buffered), ``chunk`` input channels per weight chunk (0: the group's weights fit wbuf at
once) and ``in_cols`` input columns; ``ifp-lower-to-isa`` generates the code of that
nest and sets the bytes each buffer holds. Existing packages (and their instructions)
are replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block
from xdsl.passes import ModulePass

from vfpga.compiler.ifpgen import Tile, TileDoesNotFit, choose_plan
from vfpga.dialects import ifp
from vfpga.passes.dnn_plan_memory import StaticPassError
from vfpga.passes.dnn_tile import hw_of, layer_specs_of, layers_of, spec_for


@dataclass(frozen=True)
class IfpPackagePass(ModulePass):
    """Create the ``ifp.package`` ops of every candidate (see the module docstring)."""

    name = "ifp-package"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw = hw_of(op)
        specs = layer_specs_of(op)
        for layer in layers_of(op):
            spec = spec_for(layer, specs)
            for cand in layer.candidates():
                pkgs: list[ifp.PackageOp] = []
                for t in cand.tiles(layer.out_shape):
                    w0, w1, c0, c1, h0, h1 = t
                    try:
                        nest = choose_plan(spec, Tile(w0, w1, c0, c1, h0, h1), hw)
                    except TileDoesNotFit as exc:
                        raise StaticPassError(f"{exc} (candidate {cand.axis_name}/"
                                              f"{cand.num_tiles})") from None
                    pkgs.append(ifp.PackageOp.build(
                        t, (nest.og, nest.rb, nest.chunk, nest.in_cols)))
                for blk in list(cand.body.blocks):
                    cand.body.detach_block(blk).erase()
                cand.body.add_block(Block(pkgs))
