"""``ifp-lower-to-isa``: give every ``ifp.package`` its instructions, as packed words.

Needs ``ifp-package``. The body of a package is the instruction sequence
:func:`vfpga.compiler.ifpgen.make_ifp` generates for its tile with the recorded loop nest
(``og``, ``rb``, ``chunk``, ``in_cols``; a package without them gets the nest
``choose_plan`` picks): loads of parameters, weights and input bands with halo,
CONV/POOL/ELTWISE per band and input-channel chunk, SAVE of each band, with the
dependency tokens that make the package self-contained. They are encoded (all packages of
the module in one :func:`vfpga.isa.codec.encode_batch`, header fields ``core``/``layer``
zero) into the package's ``code`` property; the generated fields stay attached to the
package in process (:mod:`vfpga.dialects.derived`) for ``ifp-estimate-latency``. A
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
from xdsl.dialects.builtin import BytesAttr, ModuleOp
from xdsl.passes import ModulePass

from vfpga.compiler.ifpgen import Insn, LoopNest, Tile, make_ifp
from vfpga.dialects import derived, ifp
from vfpga.hw.config import BUFFER_NAMES
from vfpga.isa.codec import encode_batch
from vfpga.isa.effects import written_range
from vfpga.isa.spec import INSN_BYTES
from vfpga.passes.dnn_tile import hw_of, layer_specs_of, layers_of, spec_for


def insn_footprint(insns: list[Insn]) -> dict[str, int]:
    """Per buffer, the end of the highest byte written by ``insns``
    (:func:`vfpga.isa.effects.written_range` of each; 0 where nothing is written)."""
    end = dict.fromkeys(BUFFER_NAMES, 0)
    for op, f in insns:
        written = written_range(op, f)
        if written is None:
            continue
        b = BUFFER_NAMES[written[0]]
        if written[2] > end[b]:
            end[b] = written[2]
    return end


@dataclass(frozen=True)
class IfpLowerToIsaPass(ModulePass):
    """Generate the ``isa`` body and buffer usage of every package (see the module
    docstring)."""

    name = "ifp-lower-to-isa"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw = hw_of(op)
        specs = layer_specs_of(op)
        done: list[tuple[ifp.PackageOp, list[Insn]]] = []
        for layer in layers_of(op):
            spec = spec_for(layer, specs)
            for cand in layer.candidates():
                for pkg in cand.packages():
                    w0, w1, c0, c1, h0, h1 = pkg.tile
                    nest = [pkg.get(n) for n in ("og", "rb", "chunk", "in_cols")]
                    plan = None if None in nest else LoopNest(*cast(list[int], nest))
                    code = make_ifp(spec, Tile(w0, w1, c0, c1, h0, h1), hw, plan)
                    use = insn_footprint(code.insns)
                    if (use != {b: code.use.get(b, 0) for b in BUFFER_NAMES}
                            or (h0, h1) != code.rows):
                        raise AssertionError(
                            f"layer {spec.index} tile w={w0}:{w1} c={c0}:{c1}: the generator's "
                            f"buffer usage {code.use} / rows {code.rows} disagree with its "
                            f"instructions {use} / h={h0}:{h1}"
                        )
                    for b in BUFFER_NAMES:
                        pkg.set_int(b, use[b])
                    pkg.set_body(None)
                    done.append((pkg, code.insns))
        blob = encode_batch([i for _, insns in done for i in insns])
        at = 0
        for pkg, insns in done:
            end = at + INSN_BYTES * len(insns)
            code_attr = BytesAttr(blob[at:end])
            pkg.properties["code"] = code_attr
            derived.attach(pkg, ifp.INSNS_KEY, code_attr, insns)
            at = end
