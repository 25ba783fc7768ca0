"""``ifp-select{cores=N}``: choose every layer's tiling candidate for ``N`` cores.

Needs ``ifp-estimate-latency``. For each candidate the packages' latencies are assigned
to ``N`` logical cores by longest-processing-time first
(:func:`vfpga.compiler.assign.lpt`): each package's ``core`` is set to its default core
and the candidate's ``makespan`` to the LPT makespan. The layer's ``selected`` candidate
is the one with the least makespan (ties: fewer packages, then the earlier candidate),
as the re-targeter chooses (:mod:`vfpga.backend.retarget`). The module attribute
``vfpga.cores`` records ``N``; ``N`` must be within the hardware's core count.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.passes import ModulePass

from vfpga.compiler.assign import lpt
from vfpga.dialects.isa import int_attr
from vfpga.passes.dnn_plan_memory import StaticPassError
from vfpga.passes.dnn_tile import hw_of, layers_of

CORES_ATTR = "vfpga.cores"


@dataclass(frozen=True)
class IfpSelectPass(ModulePass):
    """Assign packages to cores by LPT and select each layer's candidate (see the module
    docstring)."""

    name = "ifp-select"

    cores: int = 1

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw = hw_of(op)
        if not 1 <= self.cores <= hw.num_cores:
            raise StaticPassError(
                f"ifp-select: cores must be 1..{hw.num_cores} for {hw.name}, got {self.cores}"
            )
        for layer in layers_of(op):
            spans: list[tuple[int, int, int]] = []
            for ci, cand in enumerate(layer.candidates()):
                pkgs = cand.packages()
                lat: list[int] = []
                for p in pkgs:
                    v = p.get("latency")
                    if v is None:
                        raise StaticPassError(
                            f'ifp.layer {layer.index_value} "{layer.node.data}": a package '
                            "has no latency: run ifp-estimate-latency first"
                        )
                    lat.append(v)
                if not pkgs:
                    raise StaticPassError(
                        f'ifp.layer {layer.index_value} "{layer.node.data}": candidate {ci} '
                        "has no packages: run ifp-package first"
                    )
                core_of, span = lpt(lat, self.cores)
                for p, c in zip(pkgs, core_of, strict=True):
                    p.set_int("core", c)
                cand.makespan = int_attr(span)
                spans.append((span, len(pkgs), ci))
            layer.selected = int_attr(min(spans)[2])
        op.attributes[CORES_ATTR] = IntegerAttr(self.cores, 64)
