"""Which input rows and columns a bilinear resize tile reads (the RESIZE instruction,
ISA version 4): the compiler's view of :mod:`vfpga.isa.resize`'s source coordinates.

Output rows ``[o0, o1)`` read input rows ``i1(o0) .. i2(o1 - 1)`` (the two neighbours of
each source coordinate, clamped to the map); source coordinates never decrease along an
axis (every coordinate transformation is monotone and the scale is positive), so the
range of a run of outputs is given by its ends. The same holds for columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vfpga.isa.resize import COORD_MODE_NAMES, AxisTaps, axis_taps
from vfpga.isa.spec import CoordMode

__all__ = ["ResizeGeometry"]


@dataclass
class ResizeGeometry:
    """The taps of every output row and column of a resize from ``in_hw`` to ``out_hw``
    with coordinate transformation ``coord`` (an ONNX name) and float32 ``scales``."""

    coord: str
    scales: tuple[float, float]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    rows: AxisTaps = field(init=False, repr=False)
    cols: AxisTaps = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mode = self.mode
        self.rows = axis_taps(np.arange(self.out_hw[0]), self.scales[0], self.in_hw[0],
                              self.out_hw[0], mode)
        self.cols = axis_taps(np.arange(self.out_hw[1]), self.scales[1], self.in_hw[1],
                              self.out_hw[1], mode)

    @property
    def mode(self) -> CoordMode:
        """The RESIZE word's ``coord`` value."""
        return COORD_MODE_NAMES[self.coord]

    @staticmethod
    def _span(t: AxisTaps, o0: int, o1: int) -> tuple[int, int]:
        return int(t.i1[o0]), int(t.i2[o1 - 1]) + 1

    def in_rows(self, o0: int, o1: int) -> tuple[int, int]:
        """Input rows ``[lo, hi)`` that output rows ``[o0, o1)`` read."""
        return self._span(self.rows, o0, o1)

    def in_cols(self, o0: int, o1: int) -> tuple[int, int]:
        """Input columns ``[lo, hi)`` that output columns ``[o0, o1)`` read."""
        return self._span(self.cols, o0, o1)

    def band_rows(self, rb: int) -> np.ndarray:
        """Input rows read by each band of ``rb`` output rows (bands start at 0, rb, ...)."""
        oh = self.out_hw[0]
        starts = np.arange(0, oh, rb)
        ends = np.minimum(starts + rb, oh) - 1
        return self.rows.i2[ends] - self.rows.i1[starts] + 1

    def max_cols(self, wt: int) -> int:
        """Most input columns any ``wt`` consecutive output columns read."""
        ow = self.out_hw[1]
        starts = np.arange(0, ow - wt + 1)
        return int((self.cols.i2[starts + wt - 1] - self.cols.i1[starts] + 1).max())
