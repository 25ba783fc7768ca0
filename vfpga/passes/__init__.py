"""vfpga's compiler passes (xDSL ``ModulePass`` subclasses, one module per pass).

:data:`PASSES` is the lazy registry read by :mod:`vfpga.universe` (the ``xdsl-opt``
plugin) and ``vfpga-opt``: kebab-case pass name -> (module, class name). Adding a pass is
one entry here; nothing is imported until a tool asks for the pass.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing this package must stay cheap (no xDSL import)
    from xdsl.passes import ModulePass

#: pass name -> (module, ModulePass subclass name)
PASSES: dict[str, tuple[str, str]] = {
    "dnn-annotate-placement": (
        "vfpga.passes.dnn_annotate_placement",
        "DnnAnnotatePlacementPass",
    ),
    "dnn-plan-memory": ("vfpga.passes.dnn_plan_memory", "DnnPlanMemoryPass"),
    "dnn-tile": ("vfpga.passes.dnn_tile", "DnnTilePass"),
    "ifp-package": ("vfpga.passes.ifp_package", "IfpPackagePass"),
    "ifp-lower-to-isa": ("vfpga.passes.ifp_lower_to_isa", "IfpLowerToIsaPass"),
    "ifp-materialize-isa": ("vfpga.passes.ifp_materialize_isa", "IfpMaterializeIsaPass"),
    "ifp-estimate-latency": ("vfpga.passes.ifp_estimate_latency", "IfpEstimateLatencyPass"),
    "ifp-select": ("vfpga.passes.ifp_select", "IfpSelectPass"),
    "ifp-allocate-cores": ("vfpga.passes.ifp_allocate_cores", "IfpAllocateCoresPass"),
}


def _loader(module: str, attr: str) -> Callable[[], type[ModulePass]]:
    def load() -> type[ModulePass]:
        cls: type[ModulePass] = getattr(importlib.import_module(module), attr)
        return cls

    return load


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass name -> zero-argument factory importing and returning the pass class."""
    return {name: _loader(mod, attr) for name, (mod, attr) in PASSES.items()}
