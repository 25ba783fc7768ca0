"""Independent reference of the CALC arithmetic of the ISA semantics, for tests only.

Written deliberately differently from ``vfpga.emulator.kernels`` (which it must never
import): padding with ``np.pad``, convolution as a loop over kernel offsets with int64
``einsum``, windows enumerated one output position at a time, int32 wrap-around by explicit
modular arithmetic, and every rounding done on Python integers with
``fractions.Fraction`` and the built-in ``round`` (which rounds halves to even).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from vfpga.isa.spec import Act, PoolMode


def rhe(num: int, den: int) -> int:
    """Round-half-to-even of the exact rational ``num / den`` (``den > 0``)."""
    return round(Fraction(int(num), int(den)))


def wrap32(v: np.ndarray) -> np.ndarray:
    """Two's-complement int32 value of each (Python or int64) integer."""
    return ((v.astype(object) + 2**31) % 2**32 - 2**31).astype(np.int64)


def sat8(v: int) -> int:
    return max(-128, min(127, v))


def act_fn(y: int, act: int, lo: int, hi: int) -> int:
    if act == Act.RELU:
        return max(y, lo)
    if act == Act.RELU6:
        return min(max(y, lo), hi)
    return y


def requant(acc: int, m: int, s: int) -> int:
    return rhe(int(acc) * int(m), 2 ** int(s))


def conv_acc(
    x: np.ndarray,
    w: np.ndarray,
    start: np.ndarray,
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    pad_value: int,
    groups: int,
) -> np.ndarray:
    """int32 (as int64 values) accumulators ``[out_h][out_w][out_c]`` of CONV."""
    oc, kh, kw, cig = w.shape
    sh, sw = stride
    t, b, lf, rt = pads
    xp = np.pad(
        x.astype(np.int64), ((t, b), (lf, rt), (0, 0)), mode="constant", constant_values=pad_value
    )
    oh = (xp.shape[0] - kh) // sh + 1
    ow = (xp.shape[1] - kw) // sw + 1
    ocg = oc // groups
    wg = w.astype(np.int64).reshape(groups, ocg, kh, kw, cig)
    acc = np.zeros((oh, ow, groups, ocg), np.int64)
    for i in range(kh):
        for j in range(kw):
            rows = [y * sh + i for y in range(oh)]
            colz = [xx * sw + j for xx in range(ow)]
            patch = xp[np.ix_(rows, colz)].reshape(oh, ow, groups, cig)
            acc += np.einsum("yxgc,goc->yxgo", patch, wg[:, :, i, j, :])
    total = acc.reshape(oh, ow, oc) + np.broadcast_to(start.astype(np.int64), (oh, ow, oc))
    return wrap32(total)


def conv(
    x: np.ndarray,
    w: np.ndarray,
    *,
    start: np.ndarray,
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    pad_value: int,
    groups: int,
    acc_out: bool,
    mult: np.ndarray,
    shift: np.ndarray,
    out_zp: int,
    act: int,
    act_lo: int,
    act_hi: int,
) -> np.ndarray:
    """CONV per the semantics; int32 accumulators with ``acc_out``, else int8."""
    acc = conv_acc(x, w, start, stride, pads, pad_value, groups)
    if acc_out:
        return acc.astype(np.int32)
    oc = w.shape[0]
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), (oc,))
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), (oc,))
    out = np.empty(acc.shape, np.int8)
    for idx in np.ndindex(*acc.shape):
        o = idx[2]
        y = sat8(out_zp + requant(acc[idx], mult[o], shift[o]))
        out[idx] = act_fn(y, act, act_lo, act_hi)
    return out


def pool(
    x: np.ndarray,
    *,
    mode: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    mult: int,
    shift: int,
    in_zp: int,
    out_zp: int,
) -> np.ndarray:
    """POOL per the semantics; raises ValueError for an empty MAX/AVG window."""
    h, w_, c = x.shape
    xi = x.astype(np.int64)
    if mode == PoolMode.GLOBAL_AVG:
        out = np.empty((1, 1, c), np.int8)
        for ch in range(c):
            acc = sum(int(v) - in_zp for v in xi[:, :, ch].ravel())
            out[0, 0, ch] = sat8(out_zp + rhe(acc * mult, h * w_ * 2**shift))
        return out
    kh, kw = kernel
    sh, sw = stride
    t, b, lf, rt = pads
    oh = (h + t + b - kh) // sh + 1
    ow = (w_ + lf + rt - kw) // sw + 1
    out = np.empty((oh, ow, c), np.int8)
    for y in range(oh):
        for xx in range(ow):
            cells = [
                (yy, xc)
                for yy in range(y * sh - t, y * sh - t + kh)
                for xc in range(xx * sw - lf, xx * sw - lf + kw)
                if 0 <= yy < h and 0 <= xc < w_
            ]
            if not cells and mode != PoolMode.AVG_PAD:
                raise ValueError("empty window")
            for ch in range(c):
                vals = [int(xi[yy, xc, ch]) for yy, xc in cells]
                if mode == PoolMode.MAX:
                    out[y, xx, ch] = max(vals)
                    continue
                acc = sum(v - in_zp for v in vals)
                count = kh * kw if mode == PoolMode.AVG_PAD else len(cells)
                out[y, xx, ch] = sat8(out_zp + rhe(acc * mult, count * 2**shift))
    return out


def eltwise_add(
    a: np.ndarray,
    b: np.ndarray,
    *,
    mult_a: int,
    mult_b: int,
    shift: int,
    a_zp: int,
    b_zp: int,
    out_zp: int,
    act: int,
    act_lo: int,
    act_hi: int,
) -> np.ndarray:
    """ELTWISE add per the semantics."""
    out = np.empty(a.shape, np.int8)
    for idx in np.ndindex(*a.shape):
        num = (int(a[idx]) - a_zp) * mult_a + (int(b[idx]) - b_zp) * mult_b
        out[idx] = act_fn(sat8(out_zp + rhe(num, 2**shift)), act, act_lo, act_hi)
    return out
