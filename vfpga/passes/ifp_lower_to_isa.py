"""``ifp-lower-to-isa``: give every ``ifp.package`` its instructions, as packed words.

Needs ``ifp-package``. The body of a package is the instruction sequence
:func:`vfpga.compiler.ifpgen.make_ifp` generates for its tile with the recorded loop nest
(``og``, ``rb``, ``chunk``, ``in_cols``; a package without them gets the nest
``choose_plan`` picks): loads of parameters, weights and input bands with halo,
CONV/POOL/ELTWISE per band and input-channel chunk, SAVE of each band, with the
dependency tokens that make the package self-contained. They are encoded (all packages of
the module in one :func:`vfpga.isa.codec.encode_batch`, header fields ``core``/``layer``
zero) into the package's ``code`` property; the generated fields stay attached to the
package in process (:mod:`vfpga.dialects.derived`; a patched package's are copied on
first use) for ``ifp-estimate-latency``. A
ResNet-50 has ~93k instructions over all candidates: one ``isa`` op per instruction would
cost seconds to build, verify and encode (docs/compiler.md), so ``isa`` ops are made only
on request, by ``ifp-materialize-isa``. The package's buffer usage (``ibuf`` ...
``abuf``) is set to the end of the highest byte its instructions write in each buffer,
and checked against the generator's own accounting (a mismatch is an internal error).
Existing instructions (code or ops) are replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from xdsl.context import Context
from xdsl.dialects.builtin import BytesAttr, IntegerAttr, ModuleOp
from xdsl.passes import ModulePass

from vfpga.compiler.ifpbatch import TileJob, generate_ifps
from vfpga.compiler.ifpgen import LoopNest, Tile
from vfpga.dialects import derived, ifp
from vfpga.dialects.isa import int_attr
from vfpga.hw.config import BUFFER_NAMES
from vfpga.passes.dnn_tile import hw_of, layer_specs_of, layers_of, spec_for


@dataclass(frozen=True)
class IfpLowerToIsaPass(ModulePass):
    """Generate the ``isa`` body and buffer usage of every package (see the module
    docstring)."""

    name = "ifp-lower-to-isa"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw = hw_of(op)
        specs = layer_specs_of(op)
        pkgs: list[ifp.PackageOp] = []
        jobs: list[TileJob] = []
        for layer in layers_of(op):
            spec = spec_for(layer, specs)
            for cand in layer.candidates():
                for pkg in cand.packages():
                    w0, w1, c0, c1, h0, h1 = pkg.tile
                    props = pkg.properties
                    og, rb, chunk, cols = (props.get(n) for n in ifp.NEST_PROPS)
                    plan = (None if og is None or rb is None or chunk is None or cols is None
                            else LoopNest(cast(IntegerAttr, og).value.data,
                                          cast(IntegerAttr, rb).value.data,
                                          cast(IntegerAttr, chunk).value.data,
                                          cast(IntegerAttr, cols).value.data))
                    pkgs.append(pkg)
                    jobs.append(TileJob(spec, Tile(w0, w1, c0, c1, h0, h1), plan, (h0, h1)))
        for pkg, code in zip(pkgs, generate_ifps(jobs, hw), strict=True):
            props = pkg.properties
            use = code.use
            for b in BUFFER_NAMES:  # (generated usage: >= 0 by construction)
                props[b] = int_attr(use[b])
            if pkg.body.first_block is not None:
                pkg.set_body(None)
            code_attr = BytesAttr(code.words)
            props["code"] = code_attr
            derived.attach_deferred(pkg, ifp.INSNS_KEY, code_attr, code.get_insns)
