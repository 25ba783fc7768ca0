"""What an instruction does to the on-chip buffers, from its fields alone (docs/isa.md).

The one home of two ISA formulas every layer needs:

* the output extent of a sliding window (CONV, and POOL other than ``GLOBAL_AVG``):
  ``(n + pad_lo + pad_hi - k) // stride + 1`` (:func:`window_out`, :func:`out_hw`); for
  CONV ``n`` is the upsampled input extent ``(n - 1) * ups + 1`` and ``k`` the dilated
  kernel extent ``(k - 1) * dil + 1`` (:func:`conv_extent`);
* the on-chip byte range an instruction writes (:func:`written_range`): LOAD its padded
  box in ``to``; CONV its int8 output in obuf, or with ``acc_out`` its int32 partial sums
  in abuf; POOL, ELTWISE and RESIZE their int8 output in obuf; SAVE, SYNC and END write no
  buffer;
* the geometry rules of a RESIZE word (:func:`resize_geometry_problem`).

The compiler (buffer footprints of a package), the ``isa`` dialect, the static latency
model and the emulator all call these, so they cannot disagree. Field dicts are those of
:mod:`vfpga.isa.codec` / :func:`vfpga.dialects.isa.op_to_fields` (ints, and floats for
the float32 fields, hence ``Mapping[str, Any]``; the fields read here are all ints): an
absent field is 0, as in an encoded word. No validation happens here: a caller that must
reject a window that does not fit checks ``out_hw(...)`` for values below 1 itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vfpga.isa.spec import Buffer, Opcode, PoolMode

__all__ = [
    "conv_extent",
    "out_hw",
    "resize_geometry_problem",
    "upsampled_taps",
    "window_out",
    "window_out_array",
    "written_range",
]


def window_out(n: int, k: int, stride: int, pad_lo: int, pad_hi: int) -> int:
    """Output length of a window of length ``k`` sliding with ``stride`` over ``n`` inputs
    padded by ``pad_lo`` / ``pad_hi``: ``(n + pad_lo + pad_hi - k) // stride + 1``. A
    kernel or stride below 1 (an invalid word) counts as 1, so the formula never divides
    by zero; the result is below 1 when the window does not fit."""
    return (n + pad_lo + pad_hi - max(k, 1)) // max(stride, 1) + 1


def window_out_array(n: np.ndarray, k: np.ndarray, stride: np.ndarray, pad_lo: np.ndarray,
                     pad_hi: np.ndarray) -> np.ndarray:
    """:func:`window_out` elementwise over int64 arrays of fields (a whole decoded program
    at once), with 0 where the window does not fit."""
    k1 = np.maximum(k, 1)
    total = n + pad_lo + pad_hi
    return np.where(total >= k1, (total - k1) // np.maximum(stride, 1) + 1, 0)


def conv_extent(n: Any, k: Any, dil: Any, ups: Any) -> tuple[Any, Any]:
    """The CONV window geometry along one axis: ``(virtual input extent, kernel extent)``
    for ``n`` input elements upsampled by ``ups`` (``ups - 1`` inserted elements between
    neighbours: ``(n - 1) * ups + 1``) and a kernel of ``k`` taps dilated by ``dil``
    (``(k - 1) * dil + 1``). ``dil``/``ups`` of 0 mean 1 (an unset field), and ``n < 1``
    stays ``n`` (an empty input stays empty). Works on ints and int64 arrays alike."""
    u = np.maximum(ups, 1)
    d = np.maximum(dil, 1)
    vn = np.where(np.asarray(n) >= 1, (np.asarray(n) - 1) * u + 1, n)
    vk = (np.maximum(k, 1) - 1) * d + 1
    if isinstance(n, int | np.integer) and isinstance(k, int | np.integer):
        return int(vn), int(vk)
    return vn, vk


def upsampled_taps(n: int, k: int, stride: int, pad_lo: int, dil: int, ups: int,
                   out: int) -> int:
    """Along one axis of a CONV with ``n`` input elements upsampled by ``ups``, a kernel of
    ``k`` taps dilated by ``dil``, ``stride`` and ``pad_lo`` leading padding: how many of
    the ``out * k`` (output, tap) pairs read an input element (not padding, not an
    inserted zero). The product over both axes times the channels is the useful
    multiply-accumulate count of a transposed convolution run as such a CONV."""
    o = np.arange(out, dtype=np.int64)[:, None]
    i = np.arange(k, dtype=np.int64)[None, :]
    v = o * stride - pad_lo + i * max(dil, 1)
    u = max(ups, 1)
    return int(np.count_nonzero((v >= 0) & (v <= (n - 1) * u) & (v % u == 0)))


def out_hw(f: Mapping[str, Any]) -> tuple[int, int]:
    """``(out_h, out_w)`` of a CONV or windowed POOL with fields ``f`` (absent fields 0);
    POOL words have no ``dil_*``/``ups_*`` fields, so they read as none."""
    g = f.get
    dil_h, dil_w, ups_h, ups_w = g("dil_h", 0), g("dil_w", 0), g("ups_h", 0), g("ups_w", 0)
    if not (dil_h > 1 or dil_w > 1 or ups_h > 1 or ups_w > 1):
        return (
            window_out(g("in_h", 0), g("kh", 0), g("stride_h", 0), g("pad_t", 0), g("pad_b", 0)),
            window_out(g("in_w", 0), g("kw", 0), g("stride_w", 0), g("pad_l", 0), g("pad_r", 0)),
        )
    nh, kh = conv_extent(g("in_h", 0), g("kh", 0), dil_h, ups_h)
    nw, kw = conv_extent(g("in_w", 0), g("kw", 0), dil_w, ups_w)
    return (
        window_out(nh, kh, g("stride_h", 0), g("pad_t", 0), g("pad_b", 0)),
        window_out(nw, kw, g("stride_w", 0), g("pad_l", 0), g("pad_r", 0)),
    )


def written_range(op: Opcode, f: Mapping[str, Any]) -> tuple[Buffer, int, int] | None:
    """The on-chip bytes instruction ``op`` with fields ``f`` writes, as ``(buffer, start,
    end)`` (``end`` exclusive), or None for SAVE, SYNC and END, which write no buffer.

    LOAD: its padded box ``(pad_t + n0 + pad_b) x (pad_l + n1 + pad_r) x n2`` at ``buf``
    in buffer ``to``. CONV: ``out_h x out_w x out_c`` int8 at ``out_addr`` in obuf, or
    with ``acc_out`` as many int32 (4 bytes each) in abuf. POOL: ``out_h x out_w x c`` at
    ``out_addr`` in obuf (``c`` for ``GLOBAL_AVG``). ELTWISE: ``n`` at ``out_addr``."""
    g = f.get
    if op is Opcode.LOAD:
        rows = g("pad_t", 0) + g("n0", 0) + g("pad_b", 0)
        cols = g("pad_l", 0) + g("n1", 0) + g("pad_r", 0)
        start = g("buf", 0)
        return Buffer(g("to", 0)), start, start + rows * cols * g("n2", 0)
    if op is Opcode.CONV:
        oh, ow = out_hw(f)
        n = oh * ow * g("out_c", 0)
        start = g("out_addr", 0)
        if g("acc_out", 0):
            return Buffer.ABUF, start, start + 4 * n
        return Buffer.OBUF, start, start + n
    if op is Opcode.POOL:
        if g("mode", 0) == PoolMode.GLOBAL_AVG:
            n = g("c", 0)
        else:
            oh, ow = out_hw(f)
            n = oh * ow * g("c", 0)
        start = g("out_addr", 0)
        return Buffer.OBUF, start, start + n
    if op is Opcode.ELTWISE:
        start = g("out_addr", 0)
        return Buffer.OBUF, start, start + g("n", 0)
    if op is Opcode.RESIZE:
        start = g("out_addr", 0)
        return Buffer.OBUF, start, start + g("out_h", 0) * g("out_w", 0) * g("c", 0)
    return None


def resize_geometry_problem(f: Mapping[str, Any]) -> str | None:
    """What is wrong with the geometry and scales of a RESIZE word with fields ``f``, or
    None: every extent >= 1, the input tile inside the input map and the output tile
    inside the resized map, ``scale_h``/``scale_w`` > 0, ``out_scale`` non-zero, the
    float fields finite. (Which input rows the output tile needs is checked when the
    instruction runs: it depends on the float32 source coordinates.)"""
    g = f.get
    for k in ("c", "in_h", "in_w", "out_h", "out_w", "map_in_h", "map_in_w", "map_out_h",
              "map_out_w"):
        if g(k, 0) < 1:
            return f"'{k}' = {g(k, 0)} must be >= 1"
    for lo, n, size in (("in_y0", "in_h", "map_in_h"), ("in_x0", "in_w", "map_in_w"),
                        ("out_y0", "out_h", "map_out_h"), ("out_x0", "out_w", "map_out_w")):
        if g(lo, 0) + g(n, 0) > g(size, 0):
            return (f"the tile {lo}={g(lo, 0)} + {n}={g(n, 0)} extends past {size}="
                    f"{g(size, 0)}")
    for k in ("in_scale", "out_scale", "scale_h", "scale_w"):
        v = float(g(k, 0.0))
        if not np.isfinite(v):
            return f"'{k}' = {v} is not finite"
    for k in ("scale_h", "scale_w"):
        if not float(g(k, 0.0)) > 0:
            return f"'{k}' = {g(k, 0.0)} must be > 0"
    if not float(g("out_scale", 0.0)):
        return "'out_scale' must be non-zero (it divides the interpolated value)"
    return None
