"""The compiled im2col of the epoch plans: every input tile of a product, from DDR.

An epoch plan (:mod:`vfpga.emulator.epoch`) stacks the uint8 im2col rows of all its
tiles into one matrix. Built with numpy, each tile took three passes and about ten calls
(the LOAD's padded tile, the CONV's padded and biased copy, a sliding-window copy), and a
layer cut into many small tiles (16 cores, row and column splits) paid that fixed cost per
tile. :func:`cols` writes each matrix element once, straight from the DDR bytes the tile's
LOAD reads, for all tiles of a product in one compiled call.

Semantics (exactly those of :func:`vfpga.emulator.epoch._cols_into`, which the tests
compare with): for tile ``j`` with parameters ``p = params[j]`` (see :data:`FIELDS`), row
``oy * ow + ox`` of its block (at byte ``at`` of ``a``, rows ``rs`` bytes apart), column
``(ky * kw + kx) * c + k`` holds ``X[oy * sh + ky - gt, ox * sw + kx - gl, k] ^ flip``
where ``X`` is the CONV's input tile ``[in_h][in_w][c]`` read as ``gpad`` (the CONV's
pad byte) outside it; the tile is the LOAD's box ``[n0][n1][c]`` at DDR byte ``ddr``
(strides ``s0``, ``s1``, 1), ``bt`` rows and ``bl`` columns into the tile, and ``bpad``
(the LOAD's pad byte) around it. ``flip`` is :data:`vfpga.emulator.kernels.U8_BIAS`
for the uint8 im2col of the integer products, 0 for the bytes as they are (a depthwise
group's tiles side by side: a 1x1 window, ``rs`` the group's channels).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from vfpga.emulator import jit

__all__ = ["FIELDS", "cols"]

#: the columns of the parameter rows of :func:`cols`, in order
FIELDS = (
    "ddr",
    "n0",
    "n1",
    "s0",
    "s1",
    "bt",
    "bl",
    "bpad",
    "c",
    "in_h",
    "in_w",
    "kh",
    "kw",
    "sh",
    "sw",
    "gt",
    "gl",
    "gpad",
    "oh",
    "ow",
    "at",
    "rs",
    "flip",
)


def _compile() -> Callable[..., None]:
    from numba import njit

    opts: dict[str, Any] = dict(
        cache=True, nogil=True, boundscheck=False, fastmath=False, error_model="numpy"
    )

    @njit(**opts)
    def im2col(mem, a, params):
        for j in range(params.shape[0]):
            p = params[j]
            ddr, n0, n1, s0, s1, bt, bl = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
            flip = np.uint8(p[22])
            bpad = np.uint8(p[7] ^ p[22])
            c, in_h, in_w, kh, kw, sh, sw = p[8], p[9], p[10], p[11], p[12], p[13], p[14]
            gt, gl = p[15], p[16]
            gpad = np.uint8(p[17] ^ p[22])
            oh, ow, at, rs = p[18], p[19], p[20], p[21]
            row = kw * c  # bytes of one kernel row of an im2col row
            dense = s1 == c  # the box's pixels side by side: a kernel row is one run
            for oy in range(oh):
                for ox in range(ow):
                    d = at + (oy * ow + ox) * rs
                    ix0 = ox * sw - gl
                    tx0 = ix0 - bl
                    # the kernel row lies inside the tile and the box along the width
                    inner = dense and ix0 >= 0 and ix0 + kw <= in_w and tx0 >= 0
                    inner = inner and tx0 + kw <= n1
                    for ky in range(kh):
                        iy = oy * sh + ky - gt
                        ty = iy - bt
                        if inner and 0 <= iy < in_h and 0 <= ty < n0:
                            # slices: no negative-index wraparound in the inner loops,
                            # so they vectorize (6x faster than a[d + k])
                            dst = a[d : d + row]
                            src = mem[ddr + ty * s0 + tx0 * s1 : ddr + ty * s0 + tx0 * s1 + row]
                            for k in range(row):
                                dst[k] = src[k] ^ flip
                            d += row
                            continue
                        for kx in range(kw):
                            ix = ix0 + kx
                            tx = ix - bl
                            dst = a[d : d + c]
                            if iy < 0 or iy >= in_h or ix < 0 or ix >= in_w:
                                for k in range(c):
                                    dst[k] = gpad
                            elif ty < 0 or ty >= n0 or tx < 0 or tx >= n1:
                                for k in range(c):
                                    dst[k] = bpad
                            else:
                                s = ddr + ty * s0 + tx * s1
                                src = mem[s : s + c]
                                for k in range(c):
                                    dst[k] = src[k] ^ flip
                            d += c

    # compile (or load from numba's cache) the signature the epoch plans call
    im2col(np.zeros(4, np.uint8), np.zeros(4, np.uint8), np.zeros((0, len(FIELDS)), np.int64))
    return im2col


@functools.cache
def _kernel() -> Callable[..., None] | None:
    """The compiled kernel, or ``None`` when :mod:`vfpga.emulator.jit` has no kernels (or
    compiling this one failed). Decided once per process (two threads that race compile
    it twice, harmlessly)."""
    if jit.get() is None:
        return None
    try:
        return _compile()
    except Exception:  # a numba/numpy mismatch: the numpy code is exact too
        return None


def available() -> bool:
    """Whether :func:`cols` is compiled (else the caller builds the rows with numpy)."""
    return _kernel() is not None


def cols(mem: np.ndarray, a: np.ndarray, params: np.ndarray) -> None:
    """The im2col rows of every tile of ``params`` (int64 ``[T][len(FIELDS)]``) from the
    DDR bytes ``mem`` (uint8, 1-D) into ``a`` (uint8, 1-D): see the module docstring.
    The caller has checked that every tile's box lies in ``mem`` and every block in
    ``a`` (no bounds are checked here); only call when :func:`available`."""
    k = _kernel()
    assert k is not None
    k(mem, a, params)
