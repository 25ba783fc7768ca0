"""The arithmetic of the RESIZE instruction (ISA version 4): bilinear interpolation of an
int8 map, step by step as onnxruntime computes ``DequantizeLinear -> Resize(mode=linear)
-> QuantizeLinear`` (docs/isa.md, "RESIZE").

onnxruntime does not fuse that chain into an integer kernel for ``mode=linear`` (its QDQ
transformer drops the Q/DQ pair only around data-movement ops and nearest resizes): it
dequantizes, runs its float32 bilinear kernel and quantizes. Every step below is one
IEEE-754 binary32 operation rounded to nearest, ties to even, in this order:

* per output coordinate ``o`` of an axis (``L_in`` input, ``L_out`` output elements,
  ``s`` the float32 scale ``L_out / L_in`` or the model's ``scales`` value), the source
  coordinate ``u``: ``o`` when ``s == 1``, else ``half_pixel``: ``(o + 0.5) / s - 0.5``;
  ``pytorch_half_pixel``: the same, or 0 when ``L_out == 1``; ``align_corners``:
  ``o * (L_in - 1) / (L_out - 1)``, or 0 when ``L_out == 1``; ``asymmetric``: ``o / s``;
* ``u`` clamped to ``[0, L_in - 1]``; ``i1 = trunc(u)``, ``i2 = min(i1 + 1, L_in - 1)``,
  ``d1 = |u - i1|``, ``d2 = |u - i2|``, both 0.5 when ``i1 == i2``;
* each input element dequantized, ``X = (x - in_zp) * in_scale``;
* ``v = dx2*dy2*X11 + dx1*dy2*X21 + dx2*dy1*X12 + dx1*dy1*X22``, each weight product
  ``dx*dy`` rounded, then each term, then the sum left to right (``X11`` at row ``y1``,
  column ``x1``; ``X21`` at column ``x2``; ``X12`` at row ``y2``);
* ``y = sat8(out_zp + rne(v / out_scale))`` (QuantizeLinear; a NaN ``v / out_scale``,
  possible only with ``|in_scale|`` beyond about 1e36, counts as 0).

One home for these steps: the compiler (which input rows a tile reads), the emulator's
kernel and the golden reference all call this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vfpga.isa.spec import CoordMode

__all__ = [
    "COORD_MODE_NAMES",
    "AxisTaps",
    "CoordMode",
    "axis_taps",
    "bilinear_requant",
    "source_coords",
]


#: ONNX attribute value of each mode.
COORD_MODE_NAMES: dict[str, CoordMode] = {
    "half_pixel": CoordMode.HALF_PIXEL,
    "pytorch_half_pixel": CoordMode.PYTORCH_HALF_PIXEL,
    "align_corners": CoordMode.ALIGN_CORNERS,
    "asymmetric": CoordMode.ASYMMETRIC,
}

_F = np.float32


def source_coords(
    o: NDArray[np.integer], scale: float, n_in: int, n_out: int, mode: CoordMode
) -> NDArray[np.float32]:
    """Float32 source coordinates of the output coordinates ``o`` of an axis (before
    clamping), as onnxruntime's ``get_original_coordinate`` computes them."""
    x = np.asarray(o).astype(_F)
    s = _F(scale)
    if s == 1:
        return x
    if mode in (CoordMode.HALF_PIXEL, CoordMode.PYTORCH_HALF_PIXEL):
        if mode == CoordMode.PYTORCH_HALF_PIXEL and n_out <= 1:
            return np.zeros_like(x)
        return (x + _F(0.5)) / s - _F(0.5)
    if mode == CoordMode.ALIGN_CORNERS:
        if n_out == 1:
            return np.zeros_like(x)
        return x * _F(n_in - 1) / _F(n_out - 1)
    if mode == CoordMode.ASYMMETRIC:
        return x / s
    raise ValueError(f"unknown coordinate mode {mode}")


@dataclass(frozen=True)
class AxisTaps:
    """The two input indices and float32 weights of every output coordinate of an axis:
    output ``o`` is ``d2 * X[i1] + d1 * X[i2]``."""

    i1: NDArray[np.int64]
    i2: NDArray[np.int64]
    d1: NDArray[np.float32]
    d2: NDArray[np.float32]


def axis_taps(
    o: NDArray[np.integer], scale: float, n_in: int, n_out: int, mode: CoordMode
) -> AxisTaps:
    """:class:`AxisTaps` of output coordinates ``o`` (global indices of the map)."""
    with np.errstate(all="ignore"):  # a tiny scale gives +inf, clamped to the map
        u = source_coords(o, scale, n_in, n_out, mode)
    top = _F(n_in - 1)
    u = np.maximum(_F(0), np.minimum(u, top))  # NaN-free: the scales are finite and > 0
    i1 = np.minimum(u.astype(np.int64), n_in - 1)
    i2 = np.minimum(i1 + 1, n_in - 1)
    d1 = np.abs(u - i1.astype(_F))
    d2 = np.abs(u - i2.astype(_F))
    same = i1 == i2
    d1 = np.where(same, _F(0.5), d1).astype(_F)
    d2 = np.where(same, _F(0.5), d2).astype(_F)
    return AxisTaps(i1, i2, d1, d2)


def bilinear_requant(
    x: NDArray[np.int8],
    ty: AxisTaps,
    tx: AxisTaps,
    in_scale: float,
    in_zp: int,
    out_scale: float,
    out_zp: int,
) -> NDArray[np.int8]:
    """RESIZE of the int8 map ``x`` ``[h][w][c]`` whose rows and columns the taps index
    (relative to ``x``): the int8 output ``[len(ty)][len(tx)][c]``."""
    with np.errstate(all="ignore"):  # overflow to +-inf saturates below
        xf = ((x.astype(np.int32) - int(in_zp)).astype(_F) * _F(in_scale)).astype(_F)
        r1, r2 = xf[ty.i1], xf[ty.i2]  # [oh][w][c]
        x11, x21 = r1[:, tx.i1], r1[:, tx.i2]
        x12, x22 = r2[:, tx.i1], r2[:, tx.i2]
        dy1, dy2 = ty.d1[:, None, None], ty.d2[:, None, None]
        dx1, dx2 = tx.d1[None, :, None], tx.d2[None, :, None]
        v = (dx2 * dy2) * x11
        v = v + (dx1 * dy2) * x21
        v = v + (dx2 * dy1) * x12
        v = v + (dx1 * dy1) * x22
        q = np.rint(v / _F(out_scale))
    # a NaN (a zero weight times an infinite input: |in_scale| beyond about 1e36) counts
    # as 0, as ELTWISE sub's; +-inf saturates
    q = np.nan_to_num(q, nan=0.0, posinf=255.0, neginf=-255.0)
    q = np.clip(q, -128 - int(out_zp), 127 - int(out_zp))
    return (q.astype(np.int64) + int(out_zp)).astype(np.int8)
