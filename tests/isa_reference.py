"""Independent reference of the CALC arithmetic of the ISA (version 3), for tests only.

Written deliberately differently from ``vfpga.emulator.kernels`` (which it must never
import): padding with ``np.pad``, convolution as a loop over kernel offsets with int64
``einsum``, windows enumerated one output position at a time (in-bound cells only),
int32 wrap-around by explicit modular arithmetic. Every float32 step is either done on
exact rationals (``fractions.Fraction``) and rounded once with
:func:`vfpga.isa.float32.round_f32` (the FMAs of ELTWISE too, never ``fma_f32``), or is a
single numpy float32 operation (the window sums of average pooling, one channel vector at
a time). ``rne`` is Python's ``round`` of a Fraction (ties to even).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from vfpga.isa.float32 import round_f32
from vfpga.isa.spec import Act, PoolMode


# ------------------------------------------------------------------ float32 steps
def f32(x: int | float | Fraction) -> float:
    """The float32 nearest to the exact value ``x`` (``x`` may be +-inf)."""
    if isinstance(x, float) and math.isinf(x):
        return x
    return round_f32(Fraction(x))


def mul(a: float, b: float) -> float:
    """``f32(a * b)``; an infinite operand gives the (infinite) float product."""
    if math.isinf(a) or math.isinf(b):
        return a * b
    return round_f32(Fraction(a) * Fraction(b))


def div(a: float, b: float) -> float:
    """``f32(a / b)`` for finite non-zero ``b``."""
    if math.isinf(a):
        return a / b
    return round_f32(Fraction(a) / Fraction(b))


def add(a: float, b: float) -> float:
    """``f32(a + b)``."""
    if math.isinf(a) or math.isinf(b):
        return a + b
    return round_f32(Fraction(a) + Fraction(b))


def fma(a: float, b: float, c: float) -> float:
    """``f32(a * b + c)`` with one rounding (finite ``a``, ``b``)."""
    if math.isinf(c):
        return c
    return round_f32(Fraction(a) * Fraction(b) + Fraction(c))


def rne(v: float) -> int | float:
    """Nearest integer, ties to even (infinities pass through)."""
    if math.isinf(v):
        return v
    return round(Fraction(v))


# ------------------------------------------------------------------ integers
def wrap32(v: np.ndarray) -> np.ndarray:
    """Two's-complement int32 value of each (Python or int64) integer."""
    return ((v.astype(object) + 2**31) % 2**32 - 2**31).astype(np.int64)


def sat8(v: int | float) -> int:
    return int(max(-128, min(127, v)))


def act_fn(y: int, act: int, lo: int, hi: int, table: np.ndarray | None = None) -> int:
    if act == Act.TABLE:  # the 256-entry table after the parameter records, index y + 128
        assert table is not None and table.shape == (256,)
        return int(table[y + 128])
    if act == Act.RELU:
        return max(y, lo)
    if act == Act.RELU6:
        return min(max(y, lo), hi)
    return y


def requant_conv(acc: int, scale: float, divisor: float) -> float:
    """``f32(f32(f32(acc) * scale) / divisor)``."""
    return div(mul(f32(int(acc)), float(scale)), float(divisor))


# ------------------------------------------------------------------ CONV
def conv_acc(
    x: np.ndarray,
    w: np.ndarray,
    start: np.ndarray,
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    pad_value: int,
    groups: int,
    dilation: tuple[int, int] = (1, 1),
    ups: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """int32 (as int64 values) accumulators ``[out_h][out_w][out_c]`` of CONV. ``ups``:
    the input is first spread out, element ``(r, c)`` at ``(r * uh, c * uw)`` of a grid of
    ``pad_value``; ``dilation``: kernel tap ``(i, j)`` reads offset ``(i * dh, j * dw)``."""
    oc, kh, kw, cig = w.shape
    sh, sw = stride
    dh, dw = dilation
    uh, uw = ups
    t, b, lf, rt = pads
    h, wd, c = x.shape
    spread = np.full(((h - 1) * uh + 1, (wd - 1) * uw + 1, c), pad_value, np.int64)
    for r in range(h):
        for q in range(wd):
            spread[r * uh, q * uw] = x[r, q]
    xp = np.pad(spread, ((t, b), (lf, rt), (0, 0)), mode="constant", constant_values=pad_value)
    oh = (xp.shape[0] - ((kh - 1) * dh + 1)) // sh + 1
    ow = (xp.shape[1] - ((kw - 1) * dw + 1)) // sw + 1
    ocg = oc // groups
    wg = w.astype(np.int64).reshape(groups, ocg, kh, kw, cig)
    acc = np.zeros((oh, ow, groups, ocg), np.int64)
    for i in range(kh):
        for j in range(kw):
            rows = [y * sh + i * dh for y in range(oh)]
            colz = [xx * sw + j * dw for xx in range(ow)]
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
    dilation: tuple[int, int] = (1, 1),
    ups: tuple[int, int] = (1, 1),
    scale: np.ndarray | float,
    divisor: np.ndarray | float,
    out_zp: int,
    act: int,
    act_lo: int,
    act_hi: int,
    table: np.ndarray | None = None,
) -> np.ndarray:
    """CONV per the semantics; int32 accumulators with ``acc_out``, else int8
    ``act(sat8(out_zp + rne(f32(f32(f32(acc) * scale) / divisor))))`` (``act = TABLE``:
    ``table[y + 128]``)."""
    acc = conv_acc(x, w, start, stride, pads, pad_value, groups, dilation, ups)
    if acc_out:
        return acc.astype(np.int32)
    oc = w.shape[0]
    sc = np.broadcast_to(np.asarray(scale, dtype=np.float32), (oc,)).tolist()
    dv = np.broadcast_to(np.asarray(divisor, dtype=np.float32), (oc,)).tolist()
    out = np.empty(acc.shape, np.int8)
    for idx in np.ndindex(*acc.shape):
        o = idx[2]
        y = sat8(out_zp + rne(requant_conv(int(acc[idx]), sc[o], dv[o])))
        out[idx] = act_fn(y, act, act_lo, act_hi, table)
    return out


# ------------------------------------------------------------------ POOL
def pool(
    x: np.ndarray,
    *,
    mode: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    scale: float,
    out_scale: float,
    in_zp: int,
    out_zp: int,
) -> np.ndarray:
    """POOL per the semantics; raises ValueError for an empty MAX/AVG window."""
    h, w_, c = x.shape
    xi = x.astype(np.int64)
    scale = float(np.float32(scale))
    out_scale = float(np.float32(out_scale))
    if mode == PoolMode.GLOBAL_AVG:
        out = np.empty((1, 1, c), np.int8)
        for ch in range(c):
            acc = sum(int(v) - in_zp for v in xi[:, :, ch].ravel())
            out[0, 0, ch] = sat8(out_zp + rne(mul(f32(acc), scale)))
        return out
    # e = f32(f32(x - in_zp) * scale), element by element on rationals
    e = np.array([mul(float(int(v) - in_zp), scale) for v in xi.ravel()],
                 np.float32).reshape(xi.shape)
    kh, kw = kernel
    sh, sw = stride
    t, b, lf, rt = pads
    oh = (h + t + b - kh) // sh + 1
    ow = (w_ + lf + rt - kw) // sw + 1
    out = np.empty((oh, ow, c), np.int8)
    zc = float(out_zp + 128)
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
            if mode == PoolMode.MAX:
                for ch in range(c):
                    out[y, xx, ch] = max(int(xi[yy, xc, ch]) for yy, xc in cells)
                continue
            s = np.zeros(c, np.float32)  # +0.0
            for yy, xc in cells:  # row by row, left to right: one float32 add each
                s = s + e[yy, xc]
            count = kh * kw if mode == PoolMode.AVG_PAD else len(cells)
            for ch in range(c):
                m = div(float(s[ch]), f32(count))
                v = add(div(m, out_scale), zc)
                out[y, xx, ch] = sat8(rne(v) - 128)
    return out


# ------------------------------------------------------------------ ELTWISE
def eltwise_add(
    a: np.ndarray,
    b: np.ndarray,
    *,
    scale_a: float,
    scale_b: float,
    offset: float,
    act: int,
    act_lo: int,
    act_hi: int,
) -> np.ndarray:
    """ELTWISE add per the semantics:
    ``act(sat8(rne(fma(A+128, scale_a, fma(B+128, scale_b, offset))) - 128))``."""
    sa, sb, off = (float(np.float32(v)) for v in (scale_a, scale_b, offset))
    out = np.empty(a.shape, np.int8)
    for idx in np.ndindex(*a.shape):
        ua, ub = float(int(a[idx]) + 128), float(int(b[idx]) + 128)
        v = fma(ua, sa, fma(ub, sb, off))
        out[idx] = act_fn(sat8(rne(v) - 128), act, act_lo, act_hi)
    return out


def eltwise_mul_sub(
    a: np.ndarray,
    b: np.ndarray,
    *,
    op: int,
    scale_a: float,
    scale_b: float,
    a_zp: int,
    b_zp: int,
    out_zp: int,
    out_scale: float,
    b_period: int = 0,
    act: int = 0,
    act_lo: int = -128,
    act_hi: int = 127,
) -> np.ndarray:
    """ELTWISE mul (op 1) / sub (op 2) per the semantics, one element at a time on exact
    rationals, with ``B[i % b_period]`` when ``b_period > 0``. mul: ``y = act(sat8(rne(
    f32(f32(f32((A - a_zp) * (B - b_zp)) * scale_a) + f32(out_zp + 128))) - 128))``
    (``scale_b``, ``out_scale`` unused); sub: ``va = f32(f32(A - a_zp) * scale_a)``,
    ``vb`` likewise, ``y = act(sat8(out_zp + rne(f32(f32(va - vb) / out_scale))))``."""
    sa, sb, so = (float(np.float32(v)) for v in (scale_a, scale_b, out_scale))
    out = np.empty(a.shape, np.int8)
    flat_b = b.reshape(-1)
    for i, x in enumerate(a.reshape(-1)):
        y = int(flat_b[i % b_period] if b_period else flat_b[i])
        if op == 1:
            v = add(mul(f32((int(x) - a_zp) * (y - b_zp)), sa), float(out_zp + 128))
            r = sat8(rne(v) - 128)
        else:
            va = mul(f32(int(x) - a_zp), sa)
            vb = mul(f32(y - b_zp), sb)
            r = sat8(out_zp + rne(div(add(va, -vb), so)))
        out.reshape(-1)[i] = act_fn(r, act, act_lo, act_hi)
    return out


def _resize_source(o: int, scale: float, n_in: int, n_out: int, coord: int) -> float:
    """The clamped float32 source coordinate of output ``o`` (docs/isa.md, RESIZE), one
    exact-rational step at a time."""
    s = f32(scale)
    if s == 1:
        u = float(o)
    elif coord in (0, 1):  # half_pixel, pytorch_half_pixel
        u = 0.0 if coord == 1 and n_out <= 1 else add(div(add(float(o), 0.5), s), -0.5)
    elif coord == 2:  # align_corners
        u = 0.0 if n_out == 1 else div(mul(float(o), float(n_in - 1)), float(n_out - 1))
    else:  # asymmetric
        u = div(float(o), s)
    return min(max(u, 0.0), float(n_in - 1))


def _resize_axis(o: int, scale: float, n_in: int, n_out: int,
                 coord: int) -> tuple[int, int, float, float]:
    u = _resize_source(o, scale, n_in, n_out, coord)
    i1 = min(int(u), n_in - 1)
    i2 = min(i1 + 1, n_in - 1)
    if i1 == i2:
        return i1, i2, 0.5, 0.5
    return i1, i2, abs(add(u, -float(i1))), abs(add(u, -float(i2)))


def resize(x: np.ndarray, f: dict) -> np.ndarray:
    """RESIZE (ISA version 4) of the int8 tile ``x`` ``[in_h][in_w][c]`` with word fields
    ``f``, one output element and one float32 step at a time."""
    oh, ow, c = f["out_h"], f["out_w"], x.shape[2]
    out = np.zeros((oh, ow, c), np.int8)
    ys = [_resize_axis(f["out_y0"] + r, f["scale_h"], f["map_in_h"], f["map_out_h"], f["coord"])
          for r in range(oh)]
    xs = [_resize_axis(f["out_x0"] + q, f["scale_w"], f["map_in_w"], f["map_out_w"], f["coord"])
          for q in range(ow)]

    def deq(r: int, q: int, k: int) -> float:
        return mul(float(int(x[r - f["in_y0"], q - f["in_x0"], k]) - f["in_zp"]), f["in_scale"])

    for r, (y1, y2, dy1, dy2) in enumerate(ys):
        for q, (x1, x2, dx1, dx2) in enumerate(xs):
            for k in range(c):
                v = mul(mul(dx2, dy2), deq(y1, x1, k))
                v = add(v, mul(mul(dx1, dy2), deq(y1, x2, k)))
                v = add(v, mul(mul(dx2, dy1), deq(y2, x1, k)))
                v = add(v, mul(mul(dx1, dy1), deq(y2, x2, k)))
                out[r, q, k] = sat8(f["out_zp"] + rne(div(v, f["out_scale"])))
    return out


# ------------------------------------------------------------------ CONV fsum (v5)
def fsum_conv(x: np.ndarray, w: np.ndarray, records: np.ndarray, f: dict,
              table: np.ndarray | None = None) -> np.ndarray:
    """CONV with ``fsum`` (ISA version 5) of the int8 tile ``x`` ``[in_h][in_w][in_c]``,
    weights ``w`` ``[out_c][kh][kw][in_c]`` and parameter records (bias, weight scale,
    output scale) with word fields ``f``, one output element and one float32 step at a
    time: the upsampled, padded grid is walked tap by tap in reverse row-major order,
    skipping taps on padding or inserted elements; per tap an FMA chain over input
    channels in blocks of 128, the blocks added; the taps added from +0.0; the bias
    dequantized with ``f32(in_scale * scale)``; ``y / divisor`` rounded half to even."""
    in_h, in_w, in_c = x.shape
    out_c, kh, kw, _ = w.shape
    uh, uw = max(f["ups_h"], 1), max(f["ups_w"], 1)
    dh, dw = max(f["dil_h"], 1), max(f["dil_w"], 1)
    sh, sw = f["stride_h"], f["stride_w"]
    pt, pb, pl, pr = f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"]
    vh, vw = (in_h - 1) * uh + 1, (in_w - 1) * uw + 1
    oh = (vh + pt + pb - ((kh - 1) * dh + 1)) // sh + 1
    ow = (vw + pl + pr - ((kw - 1) * dw + 1)) // sw + 1
    s_in = float(f["in_scale"])

    def source(pos: int, ups: int, n: int) -> int | None:
        if pos < 0 or pos % ups or pos // ups >= n:
            return None
        return pos // ups

    out = np.zeros((oh, ow, out_c), np.int8)
    for o in range(out_c):
        bias, sc, div_ = (int(records["bias"][o]), float(records["scale"][o]),
                          float(records["divisor"][o]))
        wq = [[[mul(float(int(w[o, i, j, c])), sc) for c in range(in_c)] for j in range(kw)]
              for i in range(kh)]
        b = mul(f32(bias), mul(s_in, sc))
        for r in range(oh):
            for q in range(ow):
                p = 0.0
                for i in reversed(range(kh)):
                    yy = source(r * sh + i * dh - pt, uh, in_h)
                    for j in reversed(range(kw)):
                        xx = source(q * sw + j * dw - pl, uw, in_w)
                        if yy is None or xx is None:
                            continue
                        t_sum = 0.0
                        for k0 in range(0, in_c, 128):
                            t = 0.0
                            for c in range(k0, min(in_c, k0 + 128)):
                                xv = mul(float(int(x[yy, xx, c]) - f["pad_value"]), s_in)
                                t = fma(xv, wq[i][j][c], t)
                            t_sum = t if k0 == 0 else add(t_sum, t)
                        p = add(p, t_sum)
                v = div(add(p, b), div_)
                y = sat8(f["out_zp"] + rne(v))
                out[r, q, o] = act_fn(y, f["act"], f["act_lo"], f["act_hi"], table)
    return out
