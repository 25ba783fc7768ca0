"""vfpga's xDSL targets (``-t NAME`` of ``xdsl-opt`` / ``vfpga-opt``): ``vfb`` writes the
binary, ``vfb-asm`` its assembly text (:mod:`vfpga.targets.vfb`).

:data:`TARGETS` is the lazy registry read by :mod:`vfpga.universe`: target name ->
(module, class name); nothing is imported until a tool asks for the target.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing this package must stay cheap (no xDSL import)
    from xdsl.utils.target import Target

#: target name -> (module, Target subclass name)
TARGETS: dict[str, tuple[str, str]] = {
    "vfb": ("vfpga.targets.vfb", "VfbTarget"),
    "vfb-asm": ("vfpga.targets.vfb", "VfbAsmTarget"),
}


def _loader(module: str, attr: str) -> Callable[[], type[Target]]:
    def load() -> type[Target]:
        cls: type[Target] = getattr(importlib.import_module(module), attr)
        return cls

    return load


def get_all_targets() -> dict[str, Callable[[], type[Target]]]:
    """Target name -> zero-argument factory importing and returning the target class."""
    return {name: _loader(mod, attr) for name, (mod, attr) in TARGETS.items()}
