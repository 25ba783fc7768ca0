"""The RESIZE instruction's kernel (ISA version 4, docs/isa.md section 5, RESIZE): the
bilinear interpolation of one tile in onnxruntime's float32 steps, whose one home is
:mod:`vfpga.isa.resize`; this module binds it to a decoded word's fields and checks that
the tile's input rows and columns hold every element the output tile reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vfpga.isa.effects import resize_geometry_problem
from vfpga.isa.resize import AxisTaps, axis_taps, bilinear_requant
from vfpga.isa.spec import CoordMode

__all__ = ["resize"]


def _local_taps(taps: AxisTaps, lo: int, n: int, axis: str) -> AxisTaps:
    """``taps`` relative to a tile whose first element is map index ``lo`` and which has
    ``n`` elements; ValueError when an index falls outside the tile."""
    first = int(min(taps.i1.min(), taps.i2.min()))
    last = int(max(taps.i1.max(), taps.i2.max()))
    if first < lo or last >= lo + n:
        raise ValueError(
            f"the output tile reads input {axis} {first}..{last}, the input tile "
            f"holds {axis} {lo}..{lo + n - 1}"
        )
    return AxisTaps(taps.i1 - lo, taps.i2 - lo, taps.d1, taps.d2)


def resize(x: np.ndarray, f: Mapping[str, Any]) -> np.ndarray:
    """RESIZE of the int8 tile ``x`` ``[in_h][in_w][c]`` with the word's fields ``f``: the
    int8 output tile ``[out_h][out_w][c]``. ValueError (the caller names the instruction)
    for invalid fields or an input tile that lacks a row or column the output reads."""
    problem = resize_geometry_problem(f)
    if problem:
        raise ValueError(problem)
    mode = CoordMode(f["coord"])
    ty = axis_taps(
        np.arange(f["out_y0"], f["out_y0"] + f["out_h"]),
        f["scale_h"],
        f["map_in_h"],
        f["map_out_h"],
        mode,
    )
    tx = axis_taps(
        np.arange(f["out_x0"], f["out_x0"] + f["out_w"]),
        f["scale_w"],
        f["map_in_w"],
        f["map_out_w"],
        mode,
    )
    ty = _local_taps(ty, f["in_y0"], f["in_h"], "rows")
    tx = _local_taps(tx, f["in_x0"], f["in_w"], "columns")
    return bilinear_requant(x, ty, tx, f["in_scale"], f["in_zp"], f["out_scale"], f["out_zp"])
