"""The plugin's ``xdsl.universe`` entry (pyproject.toml): the pass, loaded lazily."""

from __future__ import annotations

from xdsl.passes import ModulePass
from xdsl.universe import Universe


def _pin_tiling() -> type[ModulePass]:
    from vfpga_pin_tiling import PinTilingPass

    return PinTilingPass


UNIVERSE = Universe(all_passes={"pin-tiling": _pin_tiling})
