"""Candidate tilings of a layer (the ``dnn-tile`` pass's engine).

A candidate splits a layer's output along **width** into ``k`` column ranges, or along
**output channels** into ``k`` channel ranges (aligned to the hardware's output-channel
parallelism, or to whole groups for grouped convolutions). Height and input channels are
never split (see docs/compiler.md). A candidate is kept only if every one of its tiles
fits the core's buffers (:func:`vfpga.compiler.ifpgen.choose_plan` finds a loop nest).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from vfpga.compiler.ifpgen import LayerSpec, Tile, TileDoesNotFit, choose_plan
from vfpga.hw.config import HardwareConfig

#: numbers of parts tried along each axis
GRANULARITIES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16)


@dataclass(frozen=True)
class Candidate:
    """A tiling: ``axis`` is ``"w"`` or ``"c"`` (``"w"`` with one part = the whole layer)."""

    axis: str
    parts: int
    tiles: tuple[Tile, ...]

    @property
    def label(self) -> str:
        return "whole" if len(self.tiles) == 1 else f"{self.axis}/{len(self.tiles)}"


def _split(n: int, parts: int, unit: int) -> list[tuple[int, int]] | None:
    """Split ``[0, n)`` into ``parts`` near-equal ranges whose bounds are multiples of
    ``unit`` (the last may be shorter); None if that leaves an empty range."""
    units = -(-n // unit)
    if parts > units:
        return None
    bounds = [min(n, (units * i // parts) * unit) for i in range(parts + 1)]
    ranges = list(itertools.pairwise(bounds))
    if any(b <= a for a, b in ranges):
        return None
    return ranges


def candidates(
    spec: LayerSpec, hw: HardwareConfig, granularities: tuple[int, ...] = GRANULARITIES
) -> list[Candidate]:
    """All candidate tilings of ``spec`` that fit the buffers (at least one: the layer is
    split along width as finely as needed)."""
    co, oh, ow = spec.out_shape
    c_unit = max(spec.channel_unit, min(hw.out_channel_parallel, co))
    out: list[Candidate] = []
    seen: set[tuple[Tile, ...]] = set()
    for axis in ("w", "c"):
        for k in granularities:
            if axis == "w":
                r = _split(ow, k, 1)
                tiles = None if r is None else tuple(Tile(a, b, 0, co) for a, b in r)
            else:
                if k == 1:
                    continue
                r = _split(co, k, c_unit)
                tiles = None if r is None else tuple(Tile(0, ow, a, b) for a, b in r)
            if tiles is None or tiles in seen:
                continue
            try:
                for t in tiles:
                    choose_plan(spec, t, hw)
            except TileDoesNotFit:
                continue
            seen.add(tiles)
            out.append(Candidate(axis, k, tiles))
    if not out:  # the whole width does not fit: split width until it does
        for k in range(2, ow + 1):
            r = _split(ow, k, 1)
            if r is None:
                continue
            tiles = tuple(Tile(a, b, 0, co) for a, b in r)
            try:
                for t in tiles:
                    choose_plan(spec, t, hw)
            except TileDoesNotFit:
                continue
            out.append(Candidate("w", k, tiles))
            break
    if not out:
        raise TileDoesNotFit(
            f"layer {spec.index} ('{spec.node.name}'): no tiling fits the core's buffers "
            f"(output {co}x{oh}x{ow})"
        )
    return out
