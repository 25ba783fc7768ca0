"""``ifp-materialize-isa``: unpack every package's ``code`` into ``isa`` ops.

Needs ``ifp-lower-to-isa``. The static pipeline keeps instructions as packed words (the
``code`` property of ``ifp.package``: fast to build, verify and link). For ISA-level
rewrites, this pass replaces each package's ``code`` by a body of ``isa.load``,
``isa.conv``, ``isa.pool``, ``isa.eltwise`` and ``isa.save`` ops (fields as decoded,
without ``core``/``layer``). Every later pass and the ``.vfb`` / ``vfpga-asm`` targets
accept either form, so a pipeline such as
``...,ifp-lower-to-isa,ifp-materialize-isa,my-isa-rewrite,ifp-estimate-latency,...``
writes the rewritten instructions into the binary. Packages that already hold ops are
left as they are. (On ResNet-50 the ~93k ops cost ~2 s to build and as much again to
verify and encode: docs/compiler.md.)
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from vfpga.dialects import ifp
from vfpga.dialects.isa import fields_to_op


@dataclass(frozen=True)
class IfpMaterializeIsaPass(ModulePass):
    """Replace every package's packed ``code`` by ``isa`` ops (see the module
    docstring)."""

    name = "ifp-materialize-isa"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for layer in op.ops:
            if not isinstance(layer, ifp.LayerOp):
                continue
            for cand in layer.candidates():
                for pkg in cand.packages():
                    if pkg.code_bytes is None:
                        continue
                    ops = [fields_to_op(o, f) for o, f in pkg.insn_fields()]
                    pkg.set_code(None)
                    pkg.set_body(ops)
