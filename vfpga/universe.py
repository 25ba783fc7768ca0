"""The xDSL plugin of vfpga: ``xdsl-opt`` (and every other xDSL tool) discovers our
dialects, passes and targets through the ``xdsl.universe`` entry point declared in
pyproject.toml (``vfpga = "vfpga.universe:VFPGA_UNIVERSE"``).

The values are zero-argument callables, so listing the universe imports nothing heavy;
the registries themselves live in :mod:`vfpga.dialects` and :mod:`vfpga.passes`.
"""

from __future__ import annotations

from xdsl.universe import Universe

from vfpga.dialects import get_all_dialects
from vfpga.passes import get_all_passes
from vfpga.targets import get_all_targets

VFPGA_UNIVERSE = Universe(
    all_dialects=get_all_dialects(),
    all_passes=get_all_passes(),
    all_targets=get_all_targets(),
)
"""vfpga's dialects (``dnn``, ...), passes (``dnn-plan-memory``, ...) and targets
(``vfb``, ``vfb-asm``)."""
