"""Bit-exact compute kernels of a core's CALC module (CONV, POOL, ELTWISE).

The functions here are pure numpy over on-chip tiles that the emulator core has already
sliced out of the buffers; they implement the arithmetic of the normative ISA semantics
(``/work/briefs/semantics.md``, section *Arithmetic* and *Instructions*) exactly:

* ``rhe(num, den)`` is round-half-to-even of the exact rational ``num / den``;
* ``requant(acc, m, s) = rhe(acc * m, 2**s)`` with ``acc`` int32, ``0 <= m < 2**31`` and
  ``0 <= s <= 62``, so ``|acc * m| <= 2**62`` and every step is exact in int64;
* ``sat8(v) = clip(v, -128, 127)``; activations act after saturation: ``NONE``: ``y``,
  ``RELU``: ``max(y, act_lo)``, ``RELU6``: ``min(max(y, act_lo), act_hi)``.

Convolution accumulators are int32 with two's-complement wrap-around (the semantics say
"int32" and a hardware adder wraps; both the bias/partial-sum addition and the dot product
are taken modulo ``2**32``).

Speed (no per-element Python loops):

* CONV sums are float32 BLAS matmuls (im2col; stride-1 convolutions with long rows use one
  matmul per kernel offset over contiguous "wide rows" instead, saving the im2col copy;
  depthwise convolutions accumulate shifted windows). An int8 x int8 product has magnitude
  at most ``2**14``, so any partial sum of at most :data:`K_CHUNK` = 1024 products is an
  integer of magnitude at most ``2**24``, exact in float32 whatever order BLAS adds in.
  Longer reductions are split into chunks whose exact results are added in float64.
* Requantization runs in float64 when that is provably exact: ``acc * (m * 2**-s)`` is
  exact while ``|acc * m| < 2**53``, and when it is not but ``s <= 43`` the value is at
  least 1024 in magnitude and saturates anyway; ``rint`` rounds halves to even. Any other
  tile takes the exact int64 path (:func:`rhe_pow2`).
* ELTWISE on large tiles looks results up in a cached table of all 65536 operand pairs.

Inconsistent arguments raise :class:`ValueError` with a message describing the problem;
the emulator core turns it into a fault naming the instruction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from vfpga.isa.spec import PARAM_RECORD_BYTES, Act, PoolMode

__all__ = [
    "ELTWISE_LUT_MIN",
    "INT8_MAX",
    "INT8_MIN",
    "K_CHUNK",
    "MAX_SHIFT",
    "act_bounds",
    "conv",
    "conv_macs",
    "eltwise_add",
    "out_dims",
    "out_size",
    "pool",
    "requantize",
    "requantize_int8",
    "rhe_pow2",
    "unpack_params",
]

INT8_MIN = -128
INT8_MAX = 127
#: Largest requantization shift.
MAX_SHIFT = 62
#: Longest reduction summed in one float32 matmul: 1024 * 128 * 128 == 2**24.
K_CHUNK = 1024

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_I64_SAFE = 1 << 62

I8 = NDArray[np.int8]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]


# --------------------------------------------------------------------------- helpers


def _int(name: str, v: Any, lo: int, hi: int) -> int:
    """``v`` as a Python int in ``[lo, hi]``, else ValueError."""
    try:
        iv = int(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {v!r}") from None
    if iv != v or not lo <= iv <= hi:
        raise ValueError(f"{name} = {v!r} is outside [{lo}, {hi}]")
    return iv


def _pair(name: str, v: Sequence[int], lo: int, hi: int) -> tuple[int, int]:
    if len(v) != 2:
        raise ValueError(f"{name} must have 2 entries (h, w), got {tuple(v)!r}")
    return _int(f"{name}[0]", v[0], lo, hi), _int(f"{name}[1]", v[1], lo, hi)


def _pads(v: Sequence[int]) -> tuple[int, int, int, int]:
    if len(v) != 4:
        raise ValueError(f"pads must have 4 entries (t, b, l, r), got {tuple(v)!r}")
    t, b, lf, rt = (_int(f"pads[{k}]", p, 0, 1 << 30) for k, p in enumerate(v))
    return t, b, lf, rt


def _tile(name: str, a: ArrayLike, dtype: type[np.generic], ndim: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != np.dtype(dtype):
        raise ValueError(f"{name} must be {np.dtype(dtype).name}, got {arr.dtype.name}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def _param(name: str, v: ArrayLike, n: int, lo: int, hi: int) -> I64:
    """A per-channel parameter (scalar or shape ``(n,)``) as int64, range-checked."""
    arr = np.asarray(v)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must be integer, got dtype {arr.dtype.name}")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got shape {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        bad = arr[(arr < lo) | (arr > hi)].ravel()[0]
        raise ValueError(f"{name} value {int(bad)} is outside [{lo}, {hi}]")
    return arr


def out_size(n: int, k: int, stride: int, pad_lo: int, pad_hi: int) -> int:
    """Output length of a window of length ``k`` sliding with ``stride`` over ``n`` inputs
    padded by ``pad_lo``/``pad_hi``: ``(n + pad_lo + pad_hi - k) // stride + 1``.

    Raises ValueError if ``n < 1``, ``k < 1``, ``stride < 1`` or the window does not fit.
    """
    if n < 1:
        raise ValueError(f"input extent {n} must be >= 1")
    if k < 1 or stride < 1:
        raise ValueError(f"kernel {k} and stride {stride} must be >= 1")
    padded = n + pad_lo + pad_hi
    if padded < k:
        raise ValueError(f"kernel {k} is larger than the padded input {padded}")
    return (padded - k) // stride + 1


def out_dims(
    in_h: int, in_w: int, kernel: Sequence[int], stride: Sequence[int], pads: Sequence[int]
) -> tuple[int, int]:
    """``(out_h, out_w)`` of a CONV/POOL window ``kernel=(kh, kw)``, ``stride=(sh, sw)``,
    ``pads=(t, b, l, r)``; ValueError if an output dimension would be < 1."""
    t, b, lf, rt = _pads(pads)
    return (
        out_size(in_h, int(kernel[0]), int(stride[0]), t, b),
        out_size(in_w, int(kernel[1]), int(stride[1]), lf, rt),
    )


def conv_macs(out_h: int, out_w: int, out_c: int, kh: int, kw: int, in_c: int, groups: int) -> int:
    """MACs a CONV counts: ``out_h * out_w * out_c * kh * kw * (in_c // groups)``."""
    return out_h * out_w * out_c * kh * kw * (in_c // groups)


def unpack_params(raw: ArrayLike) -> tuple[I32, I32, I32]:
    """Split pbuf bytes (``uint8``, ``out_c * 12`` bytes) or an int32 ``[out_c][3]`` array
    into ``(bias, mult, shift)`` int32 arrays of shape ``(out_c,)`` (little-endian records)."""
    arr = np.asarray(raw)
    if arr.dtype == np.uint8:
        if arr.ndim != 1 or arr.size % PARAM_RECORD_BYTES:
            raise ValueError(
                f"parameter bytes must be a flat multiple of {PARAM_RECORD_BYTES}, "
                f"got shape {arr.shape}"
            )
        arr = np.ascontiguousarray(arr).view("<i4").reshape(-1, 3)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind != "i" or arr.dtype.itemsize != 4:
        raise ValueError(f"parameter records must be int32 [out_c][3], got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int32)
    return arr[:, 0], arr[:, 1], arr[:, 2]


# --------------------------------------------------------------------------- rounding


def rhe_pow2(num: ArrayLike, shift: ArrayLike) -> I64:
    """``rhe(num, 2**shift)`` elementwise: round-half-to-even of ``num / 2**shift``.

    ``num`` is an int64 array (``|num| < 2**62``), ``shift`` an int in 0..62 or an int64
    array broadcasting against ``num``. Exact: ``(num + half) >> shift`` rounds half up
    (arithmetic shift is floor), and a tie that landed on an odd value is moved down by one.
    """
    p = np.asarray(num, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    one = np.int64(1)
    half = (one << s) >> one  # 2**(s-1), or 0 when s == 0
    q = (p + half) >> s
    tie = (p & ((one << s) - one)) == half
    tie &= s > 0
    tie &= (q & one).astype(bool)
    q -= tie
    return q


def requantize(acc: ArrayLike, mult: ArrayLike, shift: ArrayLike) -> I64:
    """``requant(acc, mult, shift) = rhe(acc * mult, 2**shift)``, exact, as int64.

    ``acc``: integer array with int32 values. ``mult`` (``0 <= mult < 2**31``) and ``shift``
    (0..62) are scalars or arrays of the length of ``acc``'s last axis (per output channel).
    """
    a = np.asarray(acc)
    if a.dtype.kind not in "iu":
        raise ValueError(f"accumulator must be integer, got dtype {a.dtype.name}")
    if a.dtype.itemsize > 4 and a.size and (
        int(a.min()) < _INT32_MIN or int(a.max()) > _INT32_MAX
    ):
        raise ValueError("accumulator values exceed the int32 range")
    n = a.shape[-1] if a.ndim else 1
    m = _param("multiplier", mult, n, 0, _INT32_MAX)
    s = _param("shift", shift, n, 0, MAX_SHIFT)
    return rhe_pow2(a.astype(np.int64) * m, s)


def _rhe_div(num: np.ndarray, count: np.ndarray | int, shift: int) -> np.ndarray:
    """``rhe(num, count * 2**shift)`` for ``count >= 1`` without forming the denominator.

    Works on int64 or object (Python int) arrays. With ``num = q1 * 2**s + r1`` and
    ``q1 = q * count + r2`` (floor divisions), ``q = floor(num / den)`` and the fraction
    compares with 1/2 as ``(2*r2 - count) * 2**s + 2*r1`` compares with 0.
    """
    q1 = num >> shift
    r1 = num - (q1 << shift)
    q = q1 // count
    r2 = q1 - q * count
    d = 2 * r2 - count
    r1x2 = 2 * r1
    pw = 1 << shift
    up = (d > 0) | ((d == 0) & (r1 > 0)) | ((d == -1) & (r1x2 > pw))
    tie = ((d == 0) & (r1 == 0)) | ((d == -1) & (r1x2 == pw))
    odd = (q % 2) == 1
    return q + (up | (tie & odd)).astype(np.int64)


def _sat8(v: np.ndarray) -> np.ndarray:
    return np.clip(v, INT8_MIN, INT8_MAX)


def act_bounds(act: Act | int, act_lo: int, act_hi: int) -> tuple[int, int]:
    """``(lo, hi)`` with ``lo <= hi`` such that ``act(sat8(v)) == clip(v, lo, hi)``.

    ``NONE``: ``(-128, 127)``; ``RELU``: ``(act_lo, 127)``; ``RELU6``: ``(act_lo, act_hi)``,
    or ``(act_hi, act_hi)`` when ``act_lo > act_hi`` (``min(max(y, lo), hi)`` is then ``hi``).
    """
    try:
        a = Act(int(act))
    except ValueError:
        raise ValueError(f"unknown activation {act!r}") from None
    lo = _int("act_lo", act_lo, INT8_MIN, INT8_MAX)
    hi = _int("act_hi", act_hi, INT8_MIN, INT8_MAX)
    if a is Act.NONE:
        return INT8_MIN, INT8_MAX
    if a is Act.RELU:
        return lo, INT8_MAX
    return min(lo, hi), hi


def _finish(q: I64, out_zp: int, bounds: tuple[int, int]) -> I8:
    """``clip(out_zp + q, *bounds)`` (that is ``act(sat8(out_zp + q))``) as int8."""
    q += out_zp
    np.clip(q, bounds[0], bounds[1], out=q)
    return q.astype(np.int8)


#: float64 products ``acc * (mult * 2**-shift)`` are exact while ``|acc * mult| < 2**53``.
_F64_EXACT = float(1 << 52)  # conservative: the product is formed in floating point
#: With ``shift <= 43`` an inexact product has magnitude >= 2**53 / 2**43 = 1024 and
#: saturates whatever its rounding, so only larger shifts need the exactness bound.
_SAT_SHIFT = 43


def _requant_act(
    acc: NDArray[np.float64], m: I64, s: I64, out_zp: int, bounds: tuple[int, int]
) -> I8:
    """``clip(out_zp + requant(acc, m, s), *bounds)`` as int8; ``acc`` holds exact int32
    values as float64 (it is overwritten); ``m``/``s`` broadcast over its last axis.

    Fast path: ``acc * (m * 2**-s)`` in float64 is exact (``|acc*m| < 2**53``) or saturates,
    and ``rint`` rounds halves to even. ``clip`` commutes with rounding for integer bounds, so
    clipping before ``rint`` is exact. Otherwise the exact int64 path is taken.
    """
    lo, hi = bounds
    if acc.size:
        amax = max(float(acc.max()), -float(acc.min()))
        risky = (s > _SAT_SHIFT) & (m.astype(np.float64) * amax >= _F64_EXACT)
        fast = not bool(np.any(risky))
    else:
        fast = True
    if not fast:
        q = rhe_pow2(acc.astype(np.int64) * m, s)
        return _finish(q, out_zp, bounds)
    scale = m.astype(np.float64) * np.ldexp(1.0, -s.astype(np.int32))  # exact
    acc *= scale
    np.clip(acc, lo - out_zp, hi - out_zp, out=acc)
    np.rint(acc, out=acc)
    out = acc.astype(np.int8)  # integers in [lo - out_zp, hi - out_zp]
    if out_zp:
        out += np.int8(out_zp)  # lands in [lo, hi]: no int8 overflow
    return out


def requantize_int8(
    acc: ArrayLike,
    mult: ArrayLike,
    shift: ArrayLike,
    *,
    out_zp: int = 0,
    act: Act | int = Act.NONE,
    act_lo: int = INT8_MIN,
    act_hi: int = INT8_MAX,
) -> I8:
    """``act(sat8(out_zp + requant(acc, mult, shift)))`` as int8: the output stage of CONV.

    ``acc`` holds int32 values; ``mult``/``shift`` are scalars or per last-axis arrays.
    """
    a = np.asarray(acc)
    if a.dtype.kind not in "iu":
        raise ValueError(f"accumulator must be integer, got dtype {a.dtype.name}")
    if a.size and (int(a.min()) < _INT32_MIN or int(a.max()) > _INT32_MAX):
        raise ValueError("accumulator values exceed the int32 range")
    n = a.shape[-1] if a.ndim else 1
    m = _param("multiplier", mult, n, 0, _INT32_MAX)
    s = _param("shift", shift, n, 0, MAX_SHIFT)
    zp = _int("out_zp", out_zp, INT8_MIN, INT8_MAX)
    return _requant_act(a.astype(np.float64), m, s, zp, act_bounds(act, act_lo, act_hi))


# --------------------------------------------------------------------------- CONV


def _padded(
    x: I8, pads: tuple[int, int, int, int], pad_value: int, dtype: Any, extra_rows: int = 0
) -> np.ndarray:
    """``x`` padded by ``pads = (t, b, l, r)`` with ``pad_value`` as ``dtype``, plus
    ``extra_rows`` rows of zeros at the bottom (never read by a valid output)."""
    t, b, lf, rt = pads
    h, w, c = x.shape
    if not (t or b or lf or rt or extra_rows):
        return x.astype(dtype)
    hp = h + t + b
    xp = np.empty((hp + extra_rows, w + lf + rt, c), dtype)
    xp[:t] = pad_value
    xp[t + h : hp] = pad_value
    xp[hp:] = 0
    xp[t : t + h, :lf] = pad_value
    xp[t : t + h, lf + w :] = pad_value
    xp[t : t + h, lf : lf + w] = x
    return xp


def _chunked_matmul(cols: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """``cols @ wt`` over the last axis of ``cols`` (int8 values held as float32), exact:
    float32 while the reduction is at most :data:`K_CHUNK` long, else float32 chunks of
    :data:`K_CHUNK` added in float64."""
    k = cols.shape[-1]
    if k <= K_CHUNK:
        return np.matmul(cols, wt)
    acc = np.matmul(cols[..., :K_CHUNK], wt[..., :K_CHUNK, :]).astype(np.float64)
    for k0 in range(K_CHUNK, k, K_CHUNK):
        acc += np.matmul(cols[..., k0 : k0 + K_CHUNK], wt[..., k0 : k0 + K_CHUNK, :])
    return acc


def _conv_im2col(
    xp: NDArray[np.float32], w: I8, oh: int, ow: int, stride: tuple[int, int], groups: int
) -> np.ndarray:
    """Grouped (or plain, groups == 1) convolution sums via im2col + float32 matmul:
    exact integer sums as float32/float64 ``[oh][ow][out_c]``."""
    hp, wp, _ = xp.shape
    oc, kh, kw, cig = w.shape
    sh, sw = stride
    g = groups
    ocg = oc // g
    k = kh * kw * cig
    m = oh * ow
    x4 = xp.reshape(hp, wp, g, cig)
    if kh == 1 and kw == 1:
        win = x4[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]  # [oh][ow][g][cig]
        cols = win.transpose(2, 0, 1, 3).reshape(g, m, k)
    else:
        win = sliding_window_view(x4, (kh, kw), axis=(0, 1))  # [.][.][g][cig][kh][kw]
        win = win[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
        cols = win.transpose(2, 0, 1, 4, 5, 3).reshape(g, m, k)  # K order (kh, kw, cig)
    wt = w.reshape(g, ocg, k).astype(np.float32).transpose(0, 2, 1)  # [g][K][ocg]
    s = _chunked_matmul(cols, wt)  # [g][m][ocg]
    if g == 1:
        return s.reshape(oh, ow, oc)
    return s.transpose(1, 0, 2).reshape(oh, ow, oc)


def _conv_wide(xp: NDArray[np.float32], w: I8, oh: int, ow: int) -> np.ndarray:
    """Stride-1, groups-1 convolution without im2col.

    With the padded input flattened to ``[rows * wp][c]``, output ``(y, x)`` at kernel offset
    ``(i, j)`` reads flat row ``(y + i) * wp + x + j``. Computing ``oh x wp`` "wide" outputs
    (columns ``x >= ow`` are garbage and dropped) turns every offset into one matmul of a
    contiguous slice. ``xp`` must carry one extra bottom row so the last slice stays in bounds.
    Offsets are summed in float32 while the reduction is at most :data:`K_CHUNK` long, then
    flushed into a float64 total.
    """
    _, wp, c = xp.shape
    oc, kh, kw, _ = w.shape
    flat = xp.reshape(-1, c)
    n = oh * wp
    wk = np.ascontiguousarray(w.transpose(1, 2, 3, 0), dtype=np.float32)  # [kh][kw][c][oc]
    total: np.ndarray | None = None
    part = np.empty((n, oc), np.float32)
    tmp = np.empty((n, oc), np.float32)
    in_part = 0  # reduction length accumulated in `part`
    for i in range(kh):
        for j in range(kw):
            off = i * wp + j
            for c0 in range(0, c, K_CHUNK):
                c1 = min(c, c0 + K_CHUNK)
                a = flat[off : off + n, c0:c1]
                b = wk[i, j, c0:c1]
                if in_part and in_part + (c1 - c0) > K_CHUNK:
                    if total is None:
                        total = part.astype(np.float64)
                    else:
                        total += part
                    in_part = 0
                if in_part == 0:
                    np.matmul(a, b, out=part)
                else:
                    np.matmul(a, b, out=tmp)
                    part += tmp
                in_part += c1 - c0
    if total is None:
        res: np.ndarray = part
    else:
        total += part
        res = total
    return res.reshape(oh, wp, oc)[:, :ow]


def _conv_depthwise(
    xp: NDArray[np.float32], w: I8, oh: int, ow: int, stride: tuple[int, int]
) -> np.ndarray:
    """Convolution with one input channel per group (``groups == in_c``, ``out_c`` a
    multiple of it): accumulate ``kh * kw`` shifted windows times per-channel weights.
    Exact integer sums as float32 (float64 beyond :data:`K_CHUNK` taps) ``[oh][ow][oc]``."""
    _, _, c = xp.shape
    oc, kh, kw, _ = w.shape
    sh, sw = stride
    mult = oc // c
    xs = xp if mult == 1 else np.repeat(xp, mult, axis=2)  # channel oc reads oc // mult
    wd = w.reshape(oc, kh * kw).T.astype(np.float32)  # [kh*kw][oc]
    acc = np.zeros((oh, ow, oc), np.float32 if kh * kw <= K_CHUNK else np.float64)
    tmp = np.empty((oh, ow, oc), np.float32)
    for i in range(kh):
        for j in range(kw):
            win = xs[i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw]
            np.multiply(win, wd[i * kw + j], out=tmp)
            acc += tmp
    return acc


def _wrap_f64(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exact integers (|v| < 2**53) reduced to the int32 two's-complement range."""
    return v.astype(np.int64).astype(np.int32).astype(np.float64)


def conv(
    x: I8,
    w: I8,
    *,
    start: I32,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    pad_value: int = 0,
    groups: int = 1,
    acc_out: bool = False,
    mult: ArrayLike | None = None,
    shift: ArrayLike | None = None,
    out_zp: int = 0,
    act: Act | int = Act.NONE,
    act_lo: int = INT8_MIN,
    act_hi: int = INT8_MAX,
) -> np.ndarray:
    """The CONV instruction on extracted tiles.

    * ``x``: int8 ``[in_h][in_w][in_c]``, implicitly padded by ``pads = (t, b, l, r)`` rows /
      columns of ``pad_value`` (int8).
    * ``w``: int8 ``[out_c][kh][kw][in_c // groups]``; output channel ``oc`` is in group
      ``g = oc // (out_c // groups)`` and reads input channels ``[g*cig, (g+1)*cig)``.
    * ``start``: int32, either shape ``(out_c,)`` (the bias of each pbuf record) or
      ``(out_h, out_w, out_c)`` (the abuf partial sums of ``acc_in``).
    * ``acc[y][x][oc] = start + sum_{i,j,ci} Xpad[y*sh+i][x*sw+j][g*cig+ci] * w[oc][i][j][ci]``
      in int32 (wrapping modulo 2**32), ``out_h = (in_h + t + b - kh) // sh + 1`` and
      likewise ``out_w``.
    * ``acc_out``: return ``acc`` (int32 ``[out_h][out_w][out_c]``). Otherwise return int8
      ``act(sat8(out_zp + requant(acc, mult[oc], shift[oc])))``; ``mult``/``shift`` are
      scalars or shape ``(out_c,)`` (multipliers in ``[0, 2**31)``, shifts 0..62).

    Raises ValueError for inconsistent shapes, dtypes or out-of-range parameters.
    """
    x = _tile("conv input", x, np.int8, 3)
    w = _tile("conv weights", w, np.int8, 4)
    in_h, in_w, in_c = x.shape
    oc, kh, kw, cig = w.shape
    g = _int("groups", groups, 1, 1 << 16)
    if in_c < 1 or oc < 1:
        raise ValueError(f"conv needs in_c >= 1 and out_c >= 1, got in_c={in_c}, out_c={oc}")
    if in_c % g or oc % g:
        raise ValueError(f"in_c={in_c} and out_c={oc} must be divisible by groups={g}")
    if cig * g != in_c:
        raise ValueError(
            f"weights have {cig} input channels per group but in_c/groups = {in_c}/{g} "
            f"= {in_c // g}"
        )
    sh, sw = _pair("stride", stride, 1, 1 << 16)
    p = _pads(pads)
    pv = _int("pad_value", pad_value, INT8_MIN, INT8_MAX)
    oh, ow = out_dims(in_h, in_w, (kh, kw), (sh, sw), p)
    start = np.asarray(start)
    if start.dtype != np.int32:
        raise ValueError(f"start (bias or partial sums) must be int32, got {start.dtype.name}")
    if start.shape not in ((oc,), (oh, ow, oc)):
        raise ValueError(
            f"start must have shape ({oc},) (bias) or ({oh}, {ow}, {oc}) (partial sums), "
            f"got {start.shape}"
        )
    if not acc_out:
        if mult is None or shift is None:
            raise ValueError("mult and shift are required unless acc_out is set")
        m = _param("multiplier", mult, oc, 0, _INT32_MAX)
        s = _param("shift", shift, oc, 0, MAX_SHIFT)
        ozp = _int("out_zp", out_zp, INT8_MIN, INT8_MAX)
        bounds = act_bounds(act, act_lo, act_hi)

    if g > 1 and cig == 1:
        sums = _conv_depthwise(_padded(x, p, pv, np.float32), w, oh, ow, (sh, sw))
    elif g == 1 and sh == sw == 1 and kh * kw > 1 and _use_wide(in_c, ow, ow + kw - 1):
        sums = _conv_wide(_padded(x, p, pv, np.float32, extra_rows=1), w, oh, ow)
    else:
        sums = _conv_im2col(_padded(x, p, pv, np.float32), w, oh, ow, (sh, sw), g)
    if acc_out and sums.dtype == np.float32:  # |sums| <= 2**24: int32 arithmetic wraps
        acc32 = sums.astype(np.int32)
        acc32 += start
        return acc32
    acc = sums if sums.dtype == np.float64 else sums.astype(np.float64)
    acc += start.astype(np.float64)  # exact: |acc| < 2**53
    if acc.size and (float(acc.max()) > _INT32_MAX or float(acc.min()) < _INT32_MIN):
        acc = _wrap_f64(acc)
    if acc_out:
        return acc.astype(np.int32)
    return _requant_act(acc, m, s, ozp, bounds)


#: Smallest input channel count for which :func:`_conv_wide` is used instead of im2col.
_WIDE_MIN_C = 32
#: Largest fraction of garbage columns (``wp - ow``) / ``wp`` :func:`_conv_wide` accepts.
_WIDE_MAX_WASTE = 0.1


def _use_wide(in_c: int, ow: int, wp: int) -> bool:
    """Whether the stride-1 "wide rows" path is cheaper than im2col (measured: it saves the
    im2col copy when rows are long and the per-offset matmuls are not too thin)."""
    return in_c >= _WIDE_MIN_C and (wp - ow) <= _WIDE_MAX_WASTE * wp


# --------------------------------------------------------------------------- POOL


def _inbound(n: int, k: int, stride: int, pad_lo: int, count: int) -> NDArray[np.int64]:
    """Number of in-bound positions of each of ``count`` windows along one axis."""
    lo = np.arange(count, dtype=np.int64) * stride - pad_lo
    return np.clip(np.minimum(lo + k, n) - np.maximum(lo, 0), 0, None)


def _box_sum(a: NDArray[np.int64], k: int, stride: int, count: int, axis: int) -> np.ndarray:
    """Sums of windows of length ``k`` at ``stride`` along ``axis`` via a prefix sum."""
    cs = np.cumsum(a, axis=axis, dtype=np.int64)
    pad = [(0, 0)] * a.ndim
    pad[axis] = (1, 0)
    cs = np.pad(cs, pad)
    idx = np.arange(count) * stride
    return np.take(cs, idx + k, axis=axis) - np.take(cs, idx, axis=axis)


def _box_max(a: I8, k: int, stride: int, count: int, axis: int) -> I8:
    """Maxima of windows of length ``k`` at ``stride`` along ``axis``."""
    span = (count - 1) * stride + 1
    sl: list[slice] = [slice(None)] * a.ndim
    sl[axis] = slice(0, span, stride)
    out = a[tuple(sl)].copy()
    for i in range(1, k):
        sl[axis] = slice(i, i + span, stride)
        np.maximum(out, a[tuple(sl)], out=out)
    return out


def _avg_out(
    acc: NDArray[np.int64], count: NDArray[np.int64] | int, mult: int, shift: int, out_zp: int
) -> I8:
    """``sat8(out_zp + rhe(acc * mult, count * 2**shift))`` as int8."""
    peak = int(np.abs(acc).max()) if acc.size else 0
    if peak * abs(mult) >= _I64_SAFE:  # exceedingly large tiles: exact Python integers
        num: np.ndarray = acc.astype(object) * mult
        cnt: Any = count.astype(object) if isinstance(count, np.ndarray) else count
        q = np.asarray(_rhe_div(num, cnt, shift) + out_zp)
        return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)
    q = _rhe_div(acc * np.int64(mult), count, shift)
    q += out_zp
    return _sat8(q).astype(np.int8)


def pool(
    x: I8,
    *,
    mode: PoolMode | int,
    kernel: Sequence[int] = (0, 0),
    stride: Sequence[int] = (0, 0),
    pads: Sequence[int] = (0, 0, 0, 0),
    mult: int = 1,
    shift: int = 0,
    in_zp: int = 0,
    out_zp: int = 0,
) -> I8:
    """The POOL instruction on an extracted int8 tile ``x [in_h][in_w][c]``.

    * ``MAX``: maximum of the in-bound elements of each ``kh x kw`` window (padding never
      wins); a window with no in-bound element is an error. Zero points and ``mult``/``shift``
      are not used.
    * ``AVG_PAD`` / ``AVG``: ``acc`` = sum over in-bound elements of ``x - in_zp``;
      ``count = kh*kw`` (AVG_PAD) or the number of in-bound elements (AVG, an error if 0);
      ``y = sat8(out_zp + rhe(acc * mult, count * 2**shift))``.
    * ``GLOBAL_AVG``: ``kernel``, ``stride`` and ``pads`` must be all zero; the window is the
      whole tile, the output ``[1][1][c]``, ``count = in_h * in_w``, same formula.

    Output ``[out_h][out_w][c]`` int8 with out dims as for CONV. ``mult`` is an int32,
    ``shift`` 0..62.
    """
    x = _tile("pool input", x, np.int8, 3)
    try:
        md = PoolMode(int(mode))
    except ValueError:
        raise ValueError(f"unknown pool mode {mode!r}") from None
    in_h, in_w, c = x.shape
    if in_h < 1 or in_w < 1 or c < 1:
        raise ValueError(f"pool input must be non-empty, got shape {x.shape}")
    mul = _int("mult", mult, _INT32_MIN, _INT32_MAX)
    sft = _int("shift", shift, 0, MAX_SHIFT)
    izp = _int("in_zp", in_zp, INT8_MIN, INT8_MAX)
    ozp = _int("out_zp", out_zp, INT8_MIN, INT8_MAX)
    if md is PoolMode.GLOBAL_AVG:
        if tuple(kernel) != (0, 0) or tuple(stride) != (0, 0) or tuple(pads) != (0, 0, 0, 0):
            raise ValueError(
                "global_avg pooling requires kernel, stride and pads to be 0, got "
                f"kernel={tuple(kernel)}, stride={tuple(stride)}, pads={tuple(pads)}"
            )
        n = in_h * in_w
        acc = x.sum(axis=(0, 1), dtype=np.int64) - np.int64(izp) * n
        return _avg_out(acc.reshape(1, 1, c), n, mul, sft, ozp)

    kh, kw = _pair("kernel", kernel, 1, 1 << 16)
    sh, sw = _pair("stride", stride, 1, 1 << 16)
    t, b, lf, rt = _pads(pads)
    oh, ow = out_dims(in_h, in_w, (kh, kw), (sh, sw), (t, b, lf, rt))
    rows = _inbound(in_h, kh, sh, t, oh)
    cols = _inbound(in_w, kw, sw, lf, ow)
    empty = not (rows.all() and cols.all())
    if md is PoolMode.MAX:
        if empty:
            raise ValueError("max pooling window lies entirely in the padding")
        # -128 padding cannot change the maximum of a window with an in-bound element.
        xp = _padded(x, (t, b, lf, rt), INT8_MIN, np.int8)
        return _box_max(_box_max(xp, kh, sh, oh, 0), kw, sw, ow, 1)
    if md is PoolMode.AVG and empty:
        raise ValueError("average pooling window lies entirely in the padding (count 0)")
    xz = x.astype(np.int64) - izp
    xz = np.pad(xz, ((t, b), (lf, rt), (0, 0)))
    acc = _box_sum(_box_sum(xz, kh, sh, oh, 0), kw, sw, ow, 1)
    if md is PoolMode.AVG_PAD:
        return _avg_out(acc, kh * kw, mul, sft, ozp)
    return _avg_out(acc, (rows[:, None] * cols[None, :])[:, :, None], mul, sft, ozp)


# --------------------------------------------------------------------------- ELTWISE


#: Operand count from which ELTWISE uses a 64K-entry table of all (a, b) results.
ELTWISE_LUT_MIN = 1 << 15


def _eltwise_direct(
    a: I8, b: I8, ma: int, mb: int, sft: int, azp: int, bzp: int, ozp: int,
    bounds: tuple[int, int],
) -> I8:
    """``clip(ozp + rhe((a-azp)*ma + (b-bzp)*mb, 2**sft), *bounds)`` in float64.

    Exact: both terms and the constant are integers below ``2**41`` times ``2**-sft``, so
    every partial sum is representable, and ``rint`` rounds halves to even.
    """
    ca = float(ma) * 2.0**-sft
    cb = float(mb) * 2.0**-sft
    v = np.multiply(a, ca, dtype=np.float64)
    v += np.multiply(b, cb, dtype=np.float64)
    v += float(-(azp * ma + bzp * mb)) * 2.0**-sft
    np.clip(v, bounds[0] - ozp, bounds[1] - ozp, out=v)
    np.rint(v, out=v)
    out = np.empty(v.shape, np.int8)
    np.add(v, ozp, out=out, casting="unsafe")
    return out


@functools.lru_cache(maxsize=128)
def _eltwise_lut(
    ma: int, mb: int, sft: int, azp: int, bzp: int, ozp: int, bounds: tuple[int, int]
) -> I8:
    """Results for every operand pair, indexed by ``a.view(uint8) << 8 | b.view(uint8)``."""
    vals = np.arange(256, dtype=np.uint8).view(np.int8)
    a = np.repeat(vals, 256)
    b = np.tile(vals, 256)
    lut = _eltwise_direct(a, b, ma, mb, sft, azp, bzp, ozp, bounds)
    lut.flags.writeable = False
    return lut


def eltwise_add(
    a: I8,
    b: I8,
    *,
    mult_a: int,
    mult_b: int,
    shift: int,
    a_zp: int = 0,
    b_zp: int = 0,
    out_zp: int = 0,
    act: Act | int = Act.NONE,
    act_lo: int = INT8_MIN,
    act_hi: int = INT8_MAX,
) -> I8:
    """The ELTWISE add instruction on two int8 tiles of equal shape:
    ``act(sat8(out_zp + rhe((a - a_zp)*mult_a + (b - b_zp)*mult_b, 2**shift)))`` as int8.

    ``mult_a``/``mult_b`` are int32 (any sign; the formula is exact for both), ``shift`` 0..62.
    From :data:`ELTWISE_LUT_MIN` elements on, results come from a cached table of all
    65536 operand pairs computed by the same formula.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != np.int8 or b.dtype != np.int8:
        raise ValueError(f"eltwise operands must be int8, got {a.dtype.name} and {b.dtype.name}")
    if a.shape != b.shape:
        raise ValueError(f"eltwise operands differ in shape: {a.shape} vs {b.shape}")
    ma = _int("mult_a", mult_a, _INT32_MIN, _INT32_MAX)
    mb = _int("mult_b", mult_b, _INT32_MIN, _INT32_MAX)
    sft = _int("shift", shift, 0, MAX_SHIFT)
    azp = _int("a_zp", a_zp, INT8_MIN, INT8_MAX)
    bzp = _int("b_zp", b_zp, INT8_MIN, INT8_MAX)
    ozp = _int("out_zp", out_zp, INT8_MIN, INT8_MAX)
    bounds = act_bounds(act, act_lo, act_hi)
    if a.size < ELTWISE_LUT_MIN:
        return _eltwise_direct(a, b, ma, mb, sft, azp, bzp, ozp, bounds)
    lut = _eltwise_lut(ma, mb, sft, azp, bzp, ozp, bounds)
    idx = a.view(np.uint8).astype(np.uint16)
    idx <<= 8
    idx |= b.view(np.uint8)
    return lut[idx]
