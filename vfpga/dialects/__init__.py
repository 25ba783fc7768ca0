"""vfpga's xDSL dialects (``dnn``; later ``ifp`` and ``isa``).

:data:`DIALECTS` is the lazy registry read by :mod:`vfpga.universe` (the ``xdsl-opt``
plugin) and ``vfpga-opt``: dialect name -> (module, attribute). Adding a dialect is one
entry here; nothing is imported until a tool asks for the dialect.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing this package must stay cheap (no xDSL import)
    from xdsl.ir import Dialect

#: dialect name -> (module, attribute holding the ``xdsl.ir.Dialect``)
DIALECTS: dict[str, tuple[str, str]] = {
    "dnn": ("vfpga.dialects.dnn", "Dnn"),
    "ifp": ("vfpga.dialects.ifp", "Ifp"),
    "isa": ("vfpga.dialects.isa", "Isa"),
}


def _loader(module: str, attr: str) -> Callable[[], Dialect]:
    def load() -> Dialect:
        dialect: Dialect = getattr(importlib.import_module(module), attr)
        return dialect

    return load


def get_all_dialects() -> dict[str, Callable[[], Dialect]]:
    """Dialect name -> zero-argument factory importing and returning the dialect."""
    return {name: _loader(mod, attr) for name, (mod, attr) in DIALECTS.items()}
