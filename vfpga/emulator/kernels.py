"""Bit-exact compute kernels of a core's CALC module (CONV, POOL, ELTWISE), ISA version 3.

The functions here are pure numpy over on-chip tiles that the emulator core has already
sliced out of the buffers; they implement the arithmetic of ``docs/isa.md`` (section
*Arithmetic*) exactly. Notation: ``f32(x)`` is the binary32 value nearest to ``x`` (ties
to even), ``fma(a, b, c) = f32(a*b + c)`` rounded once, ``rne`` rounds to the nearest
integer with ties to even, ``sat8(v) = clip(v, -128, 127)``; activations act after
saturation (``NONE``: ``y``, ``RELU``: ``max(y, act_lo)``, ``RELU6``:
``min(max(y, act_lo), act_hi)``).

* CONV: ``acc`` is the exact int32 accumulator (bias or partial sums plus the dot
  product, with two's-complement wrap-around modulo ``2**32``);
  ``y = act(sat8(out_zp + rne(f32(f32(f32(acc) * scale) / divisor))))`` with the
  per-output-channel ``scale`` and ``divisor`` of the pbuf record ``(bias int32, scale
  float32, divisor float32)``.
* POOL ``AVG_PAD`` / ``AVG``: ``e = f32(f32(x - in_zp) * scale)`` per in-bound element, a
  float32 running sum over the window in row-major order, ``m = f32(s / f32(count))``,
  ``y = sat8(rne(f32(f32(m / out_scale) + f32(out_zp + 128))) - 128)``. ``GLOBAL_AVG``:
  ``y = sat8(out_zp + rne(f32(f32(acc) * scale)))`` with the exact integer
  ``acc = sum(x - in_zp)``. ``MAX``: the maximum of the in-bound elements.
* ELTWISE add: ``y = act(sat8(rne(fma(A+128, scale_a, fma(B+128, scale_b, offset))) -
  128))``; mul (ISA version 3): ``y = act(sat8(rne(f32(f32(f32((A - a_zp) * (B -
  b_zp)) * scale_a) + f32(out_zp + 128))) - 128))``; sub (ISA version 3): ``va =
  f32(f32(A - a_zp) * scale_a)``, ``vb`` likewise, ``y = act(sat8(out_zp +
  rne(f32(f32(va - vb) / out_scale))))``; with
  ``b_period = p > 0`` operand B holds ``p`` values, element ``i`` meeting ``B[i % p]``.

How numpy is made to do exactly these steps: numpy's float32 ``* / +`` are correctly
rounded IEEE operations; an int32 accumulator held exactly in float64 becomes ``f32(acc)``
with one ``astype(float32)`` (float64 -> float32 rounds to nearest even, and the float64
holds the integer exactly, so there is no double rounding); the FMA is
:func:`vfpga.isa.float32.fma_f32`. Since ``rne`` is monotonic and the clamps are
integers, clamping before rounding is exact, and the int8 conversion sees integers only.

Speed (no per-element Python loops):

* CONV sums of dense and grouped convolutions (path ``"int8"``) are exact integer matrix
  products on onnxruntime's ``MatMulInteger`` (:mod:`vfpga.emulator.int_matmul`: the
  input as uint8 ``x + 128`` with zero point 128, im2col in uint8), used only after a
  self-test proved the machine's kernel exact. Without it (or with
  ``VFPGA_EMULATOR_INT_MATMUL=0``) they are float32 BLAS matmuls (im2col; stride-1
  convolutions with long rows use one matmul per kernel offset over contiguous "wide rows"
  instead, saving the im2col copy). Depthwise convolutions (path ``"int8-depthwise"``)
  sum their windows in int32 in one compiled loop (:mod:`vfpga.emulator.jit`); without
  numba they accumulate shifted windows in float32. An int8 x int8 product has magnitude
  at most ``2**14``, so any partial sum of at most :data:`K_CHUNK` = 1024 products is an
  integer of magnitude at most ``2**24``, exact in float32 whatever order BLAS adds in.
  Longer reductions are split into chunks whose exact results are added in float64.
* Pooling (``MAX``, ``AVG``, ``AVG_PAD``) is one compiled pass over each window's
  in-bound elements (:mod:`vfpga.emulator.jit`) when numba is available; without it,
  average pooling adds ``kh * kw`` shifted whole-tile slices in window order.
* ELTWISE computes the inner FMA (add) or the dequantized operands (mul, sub) once per
  int8 value (256 entries); large tiles look results up in a cached table of all 65536
  operand pairs computed by the same formula.
* The CONV output stage of the fast entries (:func:`conv_int8_finish`) and the table
  lookups are single compiled passes (:mod:`vfpga.emulator.jit`) when numba is available,
  numpy passes otherwise.

Inconsistent arguments and invalid float parameters (non-finite values, a zero divisor
or output scale) raise :class:`ValueError` with a message describing the problem; the
emulator core turns it into a fault naming the instruction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from vfpga.emulator import int_matmul, jit, jit_cols
from vfpga.isa.effects import window_out
from vfpga.isa.float32 import U8_BIAS, fma_f32, mul_requant
from vfpga.isa.spec import (
    ACT_TABLE_BYTES,
    PARAM_RECORD_BYTES,
    PARAM_RECORD_DTYPE,
    Act,
    EltOp,
    PoolMode,
)

__all__ = [
    "ELTWISE_LUT_MIN",
    "INT8_MAX",
    "INT8_MIN",
    "K_CHUNK",
    "ConvGeometry",
    "EltParams",
    "Im2colU8",
    "act_bounds",
    "act_table",
    "apply_act_table",
    "conv",
    "conv_geometry",
    "conv_input",
    "conv_int8_finish",
    "conv_int8_into",
    "conv_macs",
    "conv_params",
    "conv_prepared",
    "conv_sums",
    "conv_weights",
    "eltwise",
    "eltwise_add",
    "eltwise_fields",
    "eltwise_lookup",
    "eltwise_params",
    "eltwise_table",
    "int8_product",
    "out_dims",
    "out_size",
    "pool",
    "pool_compiled",
    "requantize_int8",
    "unpack_params",
]

INT8_MIN = -128
INT8_MAX = 127
#: Longest reduction summed in one float32 matmul: 1024 * 128 * 128 == 2**24.
K_CHUNK = 1024

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_F32 = np.float32
#: the clip ufunc itself (``np.clip`` adds ~1.5 us of argument handling per call)
# (numpy's stubs do not list the ufunc)
try:
    from numpy._core.umath import clip as _umath_clip  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - numpy 1.26
    from numpy.core.umath import clip as _umath_clip  # type: ignore[no-redef]

I8 = NDArray[np.int8]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
F32 = NDArray[np.float32]


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


def _f32(name: str, v: Any) -> np.float32:
    """A float32 parameter from a Python/numpy number (rounded to the nearest float32);
    ValueError for a non-number, NaN, an infinity or a value beyond the float32 range."""
    try:
        fv = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {v!r}") from None
    with np.errstate(over="ignore"):
        f = _F32(fv)
    if not np.isfinite(f):
        raise ValueError(f"invalid parameter: {name} = {fv!r} is not a finite float32")
    return f


def _f32_channels(name: str, v: ArrayLike, n: int) -> F32:
    """A per-output-channel float32 parameter (scalar or shape ``(n,)``), finite."""
    arr = np.asarray(v)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype.name}")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got shape {arr.shape}")
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        k = int(np.flatnonzero(bad.ravel())[0])
        where = f" (output channel {k})" if out.ndim else ""
        raise ValueError(
            f"invalid parameter: {name} = {float(arr.ravel()[k])!r}{where} is not a finite "
            "float32"
        )
    return out


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
    return window_out(n, k, stride, pad_lo, pad_hi)


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


def unpack_params(raw: ArrayLike) -> tuple[I32, F32, F32]:
    """Split pbuf parameter records into ``(bias int32, scale float32, divisor float32)``
    arrays of shape ``(out_c,)``. ``raw`` is the pbuf bytes (``uint8``, ``out_c * 12``,
    little-endian records) or an array of :data:`~vfpga.isa.spec.PARAM_RECORD_DTYPE`."""
    arr = np.asarray(raw)
    if arr.dtype == np.uint8:
        if arr.ndim != 1 or arr.size % PARAM_RECORD_BYTES:
            raise ValueError(
                f"parameter bytes must be a flat multiple of {PARAM_RECORD_BYTES}, "
                f"got shape {arr.shape}"
            )
        arr = np.ascontiguousarray(arr).view(PARAM_RECORD_DTYPE)
    if arr.dtype != PARAM_RECORD_DTYPE or arr.ndim != 1:
        raise ValueError(
            f"parameter records must be a 1-D array of {PARAM_RECORD_DTYPE}, got {arr.dtype} "
            f"{arr.shape}"
        )
    return (
        arr["bias"].astype(np.int32),
        arr["scale"].astype(np.float32),
        arr["divisor"].astype(np.float32),
    )


# --------------------------------------------------------------------------- rounding


def act_bounds(act: Act | int, act_lo: int, act_hi: int) -> tuple[int, int]:
    """``(lo, hi)`` with ``lo <= hi`` such that ``act(sat8(v)) == clip(v, lo, hi)``.

    ``NONE`` and ``TABLE`` (the table is applied after the clamp, :func:`apply_act_table`):
    ``(-128, 127)``; ``RELU``: ``(act_lo, 127)``; ``RELU6``: ``(act_lo, act_hi)``,
    or ``(act_hi, act_hi)`` when ``act_lo > act_hi`` (``min(max(y, lo), hi)`` is then ``hi``).
    """
    try:
        a = Act(int(act))
    except ValueError:
        raise ValueError(f"unknown activation {act!r}") from None
    lo = _int("act_lo", act_lo, INT8_MIN, INT8_MAX)
    hi = _int("act_hi", act_hi, INT8_MIN, INT8_MAX)
    if a is Act.NONE or a is Act.TABLE:
        return INT8_MIN, INT8_MAX
    if a is Act.RELU:
        return lo, INT8_MAX
    return min(lo, hi), hi


def _clip_rint_i8(v: F32, lo: float, hi: float, add: int) -> I8:
    """``clip(v, lo, hi)`` rounded half to even, plus ``add``, as int8 (``v`` is
    overwritten; ``lo + add`` and ``hi + add`` must be int8). Exact: ``rne`` is monotonic
    and the bounds are integers, so clamping first does not change the result."""
    np.clip(v, lo, hi, out=v)
    np.rint(v, out=v)
    if add == 0:
        return v.astype(np.int8)
    out = v.astype(np.int16)
    out += add
    return out.astype(np.int8)


def _requant_act(
    acc: NDArray[np.float64], scale: F32, divisor: F32, out_zp: int, bounds: tuple[int, int]
) -> I8:
    """``clip(out_zp + rne(f32(f32(f32(acc) * scale) / divisor)), *bounds)`` as int8.

    ``acc`` holds exact int32 values in float64, so ``astype(float32)`` is the single
    rounding ``f32(acc)``; ``scale``/``divisor`` broadcast over its last axis. A divisor
    of exactly 1.0 is skipped (division by 1 is exact). Overflow to +-inf saturates.
    """
    v = acc.astype(np.float32)
    with np.errstate(over="ignore", under="ignore"):
        v *= scale
        if np.any(divisor != _F32(1.0)):
            v /= divisor
    return _clip_rint_i8(v, bounds[0] - out_zp, bounds[1] - out_zp, out_zp)


def _check_divisor(divisor: F32) -> None:
    zero = divisor == 0
    if np.any(zero):
        k = int(np.flatnonzero(np.atleast_1d(zero))[0])
        where = f" (output channel {k})" if divisor.ndim else ""
        raise ValueError(
            f"invalid parameter: divisor is 0{where} (a parameter record needs a non-zero "
            "divisor)"
        )


def requantize_int8(
    acc: ArrayLike,
    scale: ArrayLike,
    divisor: ArrayLike = 1.0,
    *,
    out_zp: int = 0,
    act: Act | int = Act.NONE,
    act_lo: int = INT8_MIN,
    act_hi: int = INT8_MAX,
) -> I8:
    """``act(sat8(out_zp + rne(f32(f32(f32(acc) * scale) / divisor))))`` as int8: the
    output stage of CONV.

    ``acc`` holds int32 values; ``scale``/``divisor`` are float32 scalars or per last-axis
    arrays (finite; ``divisor`` non-zero; other floats are rounded to float32 first).
    """
    a = np.asarray(acc)
    if a.dtype.kind not in "iu":
        raise ValueError(f"accumulator must be integer, got dtype {a.dtype.name}")
    if a.size and (int(a.min()) < _INT32_MIN or int(a.max()) > _INT32_MAX):
        raise ValueError("accumulator values exceed the int32 range")
    n = a.shape[-1] if a.ndim else 1
    sc = _f32_channels("scale", scale, n)
    dv = _f32_channels("divisor", divisor, n)
    _check_divisor(dv)
    zp = _int("out_zp", out_zp, INT8_MIN, INT8_MAX)
    return _requant_act(a.astype(np.float64), sc, dv, zp, act_bounds(act, act_lo, act_hi))


# --------------------------------------------------------------------------- CONV


def _padded(
    x: I8, pads: tuple[int, int, int, int], pad_value: int, dtype: Any, extra_rows: int = 0,
    ups: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """``x`` padded by ``pads = (t, b, l, r)`` with ``pad_value`` as ``dtype``, plus
    ``extra_rows`` rows of zeros at the bottom (never read by a valid output). With ``ups``
    the input is first upsampled by zero insertion: ``ups - 1`` rows / columns of
    ``pad_value`` between neighbours (the CONV ``ups_h`` / ``ups_w`` fields)."""
    t, b, lf, rt = pads
    if ups != (1, 1):
        uh, uw = ups
        h, w, c = x.shape
        vh, vw = (h - 1) * uh + 1, (w - 1) * uw + 1
        xu = np.full((vh + t + b + extra_rows, vw + lf + rt, c), pad_value, dtype)
        xu[vh + t + b :] = 0
        xu[t : t + vh : uh, lf : lf + vw : uw] = x
        return xu
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
    xp: NDArray[np.float32], wt: NDArray[np.float32], oh: int, ow: int,
    kernel: tuple[int, int], stride: tuple[int, int], groups: int,
    dil: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Grouped (or plain, groups == 1) convolution sums via im2col + float32 matmul with
    the weights ``wt`` as :func:`conv_weights` lays them out (``[g][kh*kw*cig][ocg]``):
    exact integer sums as float32/float64 ``[oh][ow][out_c]``."""
    hp, wp, c = xp.shape
    g, k, ocg = wt.shape
    kh, kw = kernel
    sh, sw = stride
    cig = c // g
    oc = g * ocg
    m = oh * ow
    x4 = xp.reshape(hp, wp, g, cig)
    if kh == 1 and kw == 1:
        win = x4[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]  # [oh][ow][g][cig]
        cols = win.transpose(2, 0, 1, 3).reshape(g, m, k)
    else:
        dh, dw = dil
        win = sliding_window_view(x4, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(0, 1))
        win = win[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :, :, ::dh, ::dw]
        cols = win.transpose(2, 0, 1, 4, 5, 3).reshape(g, m, k)  # K order (kh, kw, cig)
    s = _chunked_matmul(cols, wt)  # [g][m][ocg]
    if g == 1:
        return s.reshape(oh, ow, oc)
    return s.transpose(1, 0, 2).reshape(oh, ow, oc)


def _conv_wide(xp: NDArray[np.float32], wk: NDArray[np.float32], oh: int, ow: int) -> np.ndarray:
    """Stride-1, groups-1 convolution without im2col (weights ``wk`` as
    :func:`conv_weights` lays them out: ``[kh][kw][c][oc]``).

    With the padded input flattened to ``[rows * wp][c]``, output ``(y, x)`` at kernel offset
    ``(i, j)`` reads flat row ``(y + i) * wp + x + j``. Computing ``oh x wp`` "wide" outputs
    (columns ``x >= ow`` are garbage and dropped) turns every offset into one matmul of a
    contiguous slice. ``xp`` must carry one extra bottom row so the last slice stays in bounds.
    Offsets are summed in float32 while the reduction is at most :data:`K_CHUNK` long, then
    flushed into a float64 total.
    """
    _, wp, c = xp.shape
    kh, kw, _, oc = wk.shape
    flat = xp.reshape(-1, c)
    n = oh * wp
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


def _depthwise_sums(geo: ConvGeometry, x: I8, wt: I32) -> I32:
    """The exact sums ``[oh][ow][out_c]`` (int32 modulo ``2**32``) of an
    ``"int8-depthwise"`` CONV of the int8 tile ``x`` (padding read as ``geo.pad_value``)
    and int32 weights ``wt [kh * kw][out_c]``, a fresh array."""
    jk = jit.get()
    if jk is None:
        raise RuntimeError(f"compiled kernels are unavailable: {jit.unavailable_reason()}")
    acc = np.empty((geo.oh, geo.ow, geo.out_c), np.int32)
    t, _, lf, _ = geo.pads
    jk.depthwise(x, geo.pad_value, wt, geo.kh, geo.kw, geo.stride[0], geo.stride[1], t, lf,
                 acc)
    return acc


def _int8_sums(geo: ConvGeometry, prod: I32) -> I32:
    """The product ``[g][oh * ow][out_c / g]`` of an ``"int8"`` path CONV as ``[oh][ow][out_c]``
    (a fresh array, the channels of group ``g`` at ``[g * out_c / g, ...)``); the sums of an
    ``"int8-depthwise"`` CONV are already in that layout."""
    if geo.groups == 1 or geo.path == "int8-depthwise":
        return prod.reshape(geo.oh, geo.ow, geo.out_c)
    return np.ascontiguousarray(prod.transpose(1, 0, 2)).reshape(geo.oh, geo.ow, geo.out_c)


class Im2colU8:
    """The uint8 im2col matrix ``[g][oh * ow][kh * kw * cig]`` (``x + 128``, padding
    ``pad_value + 128``) of int8 input tiles of geometry ``geo`` (an ``"int8"`` path), built
    in buffers allocated on the first call and reused: one XOR pass into the padded tile
    (its borders filled once) and one strided copy. The returned array is overwritten by
    the next call."""

    def __init__(self, geo: ConvGeometry) -> None:
        self.geo = geo
        self._ready = False
        #: if set before the first call: a ``[oh * ow][K]`` uint8 view (rows may be strided,
        #: e.g. a column block of a wider matrix) to build the matrix in instead (groups 1)
        self.target: NDArray[np.uint8] | None = None
        #: the parameter row of :func:`vfpga.emulator.jit_cols.cols` building the matrix
        #: from a contiguous tile in one compiled pass (None: numpy), and the flat matrix
        self._prm: NDArray[np.int64] | None = None
        self._flat: NDArray[np.uint8] | None = None

    def _setup(self) -> None:
        geo = self.geo
        t, b, lf, rt = geo.pads
        h, w, c = geo.in_h, geo.in_w, geo.in_c
        g, kh, kw = geo.groups, geo.kh, geo.kw
        sh, sw = geo.stride
        (dh, dw), (uh, uw) = geo.dil, geo.ups
        oh, ow = geo.oh, geo.ow
        cig = c // g
        m, k = oh * ow, kh * kw * cig
        vh, vw = (h - 1) * uh + 1, (w - 1) * uw + 1  # upsampled by zero insertion
        xpad = np.full((vh + t + b, vw + lf + rt, c), geo.pad_value + U8_BIAS, np.uint8)
        self._inner = xpad[t : t + vh : uh, lf : lf + vw : uw]
        tgt = self.target
        if tgt is not None and (g != 1 or tgt.shape != (m, k)):
            raise ValueError(f"im2col target must be a ({m}, {k}) view, got {tgt.shape}")
        if (kh == kw == sh == sw == g == uh == uw == 1 and oh == h + t + b
                and ow == w + lf + rt):
            self._win = None  # the padded tile is the matrix
            if tgt is None:
                self.cols = xpad.reshape(1, m, k)
            else:  # no padding here: XOR straight into the target
                self._inner = tgt.reshape(h, w, c)
                self.cols = tgt.reshape(1, m, k)
            return
        if (tgt is None and g == dh == dw == uh == uw == 1 and _USE_JIT_IM2COL
                and jit_cols.available()):
            # one compiled pass from the tile straight into the matrix (flipped, padded)
            self.cols = np.empty((1, m, k), np.uint8)
            self._flat = self.cols.reshape(-1)
            self._prm = np.array([[0, h, w, w * c, c, 0, 0, 0, c, h, w, kh, kw, sh, sw, t, lf,
                                   geo.pad_value & 0xFF, oh, ow, 0, k, U8_BIAS]], np.int64)
        x4 = xpad.reshape(vh + t + b, vw + lf + rt, g, cig)
        win = sliding_window_view(x4, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(0, 1))
        win = win[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :, :, ::dh, ::dw]
        self._win = win.transpose(2, 0, 1, 4, 5, 3)  # [g][oh][ow][kh][kw][cig]
        if self._prm is None:
            self.cols = np.empty((g, m, k), np.uint8) if tgt is None else tgt.reshape(1, m, k)
        self._dst = self.cols.reshape(g, oh, ow, kh, kw, cig)

    def __call__(self, x: I8) -> NDArray[np.uint8]:
        """The matrix of the int8 tile ``x [in_h][in_w][in_c]``."""
        if not self._ready:
            self._setup()
            self._ready = True
        if self._prm is not None and self._flat is not None and x.flags.c_contiguous:
            # :func:`vfpga.emulator.jit_cols.cols` with the tile as its memory and one
            # box, the whole tile (the same bytes as the two numpy passes below)
            jit_cols.cols(x.view(np.uint8).reshape(-1), self._flat, self._prm)
            return self.cols
        np.bitwise_xor(x.view(np.uint8), np.uint8(U8_BIAS), out=self._inner)
        if self._win is not None:
            np.copyto(self._dst, self._win)
        return self.cols


def int8_product(geo: ConvGeometry) -> Callable[[np.ndarray, np.ndarray], I32]:
    """The function computing the exact sums of an ``"int8"`` or ``"int8-depthwise"``
    CONV from its :func:`conv_input` and :func:`conv_weights`: int32 ``[g][oh * ow][out_c
    / g]`` (onnxruntime products), or ``[oh][ow][out_c]`` (the compiled depthwise kernel)."""
    if geo.path == "int8-depthwise":
        return functools.partial(_depthwise_sums, geo)
    return int_matmul.require()


def conv_int8_into(
    geo: ConvGeometry,
    cols: NDArray[np.uint8],
    wt: I8,
    start: I32,
    out: np.ndarray,
    *,
    acc_out: bool,
    scale: F32 | None,
    divisor: F32 | None,
    out_zp: int,
    bounds: tuple[int, int],
) -> None:
    """:func:`conv_prepared` of an ``"int8"`` path CONV from its :class:`Im2colU8` matrix,
    writing the result into ``out`` (int32 ``[oh][ow][out_c]`` if ``acc_out``, else int8):
    the same values, in fewer passes. Equals :func:`conv_int8_finish` of the product of
    ``cols`` and the weights ``wt`` (:func:`conv_weights`). On the ``"int8-depthwise"``
    path ``cols`` is the int8 input tile itself (:func:`conv_input`)."""
    prod = int8_product(geo)(cols, wt)
    conv_int8_finish(geo, prod, start, out, acc_out=acc_out,
                     scale=scale, divisor=divisor, out_zp=out_zp, bounds=bounds)


def conv_int8_finish(
    geo: ConvGeometry,
    prod: I32,
    start: I32,
    out: np.ndarray,
    *,
    acc_out: bool,
    scale: F32 | None,
    divisor: F32 | None,
    out_zp: int,
    bounds: tuple[int, int],
) -> None:
    """The rest of :func:`conv_int8_into` once the exact sums ``prod`` (int32 ``[g][oh *
    ow][out_c / g]``, a fresh array that is consumed) are known: adds ``start`` (int32,
    wrapping) and writes ``acc`` or its requantization into ``out``.

    ``start`` is per channel (``[out_c]``) or per element (``[oh][ow][out_c]``, or any
    shape broadcasting to it); ``scale``/``divisor`` are per channel and may also be given
    repeated to ``[oh][ow][out_c]``. With the compiled kernels of :mod:`.jit` (and a
    contiguous ``out``) this is one fused pass; else numpy passes."""
    jk = jit.get()
    n = geo.out_c
    if jk is not None and out.flags.c_contiguous and start.shape[-1:] == (n,):
        m = geo.oh * geo.ow
        st = start.reshape(-1, n)
        if st.shape[0] in (1, m):
            g = 1 if geo.path == "int8-depthwise" else geo.groups
            jk.output_stage(
                prod.reshape(g, m, n // g), st, st.shape[0] != 1, out.reshape(m, n),
                acc_out=acc_out, scale=None if scale is None else scale.reshape(-1, n)[0],
                divisor=None if divisor is None else divisor.reshape(-1, n)[0],
                lo=_F32(bounds[0] - out_zp), hi=_F32(bounds[1] - out_zp), zp=out_zp)
            return
    s = _int8_sums(geo, prod)
    s += start  # int32, wraps modulo 2**32
    if acc_out:
        out[...] = s
        return
    assert scale is not None
    v = np.empty(s.shape, np.float32)
    # int32 -> float32 inside the ufunc rounds to nearest even: f32(acc), then * scale
    # (overflow to +-inf saturates below; callers silence numpy's overflow warning:
    # the emulator runs under np.errstate(over="ignore", under="ignore"))
    np.multiply(s, scale, out=v, dtype=np.float32, casting="unsafe")
    if divisor is not None:
        v /= divisor
    _umath_clip(v, _F32(bounds[0] - out_zp), _F32(bounds[1] - out_zp), out=v)
    np.rint(v, out=v)
    # + out_zp on integers of magnitude <= 255 (exact), cast to int8 on the way out (exact)
    np.add(v, _F32(out_zp), out=out, casting="unsafe")


def _conv_depthwise(
    xp: NDArray[np.float32], wd: NDArray[np.float32], oh: int, ow: int,
    kernel: tuple[int, int], stride: tuple[int, int], dil: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Convolution with one input channel per group (``groups == in_c``, ``out_c`` a
    multiple of it; weights ``wd`` as :func:`conv_weights` lays them out: ``[kh*kw][oc]``):
    accumulate ``kh * kw`` shifted windows times per-channel weights.
    Exact integer sums as float32 (float64 beyond :data:`K_CHUNK` taps) ``[oh][ow][oc]``."""
    _, _, c = xp.shape
    kh, kw = kernel
    oc = wd.shape[1]
    sh, sw = stride
    mult = oc // c
    xs = xp if mult == 1 else np.repeat(xp, mult, axis=2)  # channel oc reads oc // mult
    acc = np.zeros((oh, ow, oc), np.float32 if kh * kw <= K_CHUNK else np.float64)
    tmp = np.empty((oh, ow, oc), np.float32)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dil[0], j * dil[1]
            win = xs[y0 : y0 + (oh - 1) * sh + 1 : sh, x0 : x0 + (ow - 1) * sw + 1 : sw]
            np.multiply(win, wd[i * kw + j], out=tmp)
            acc += tmp
    return acc


@dataclass(frozen=True)
class ConvGeometry:
    """The static shape parameters of a CONV, validated by :func:`conv_geometry`: input
    ``[in_h][in_w][in_c]``, weights ``[out_c][kh][kw][in_c // groups]``, ``stride = (sh,
    sw)``, ``pads = (t, b, l, r)``, ``pad_value`` (int8), output ``[oh][ow][out_c]``, and
    ``path``, the way the sums are computed (``"int8"``: integer products of a uint8
    im2col, ``"int8-depthwise"``: the compiled int32 depthwise kernel, or the float32 paths
    ``"depthwise"``, ``"wide"`` and ``"im2col"``; every path yields the same exact
    integers), ``dil = (dh, dw)`` the kernel dilation and ``ups = (uh, uw)`` the input
    upsampling by zero insertion (the input is ``[(in_h - 1) * uh + 1][...]`` with
    ``pad_value`` between the ``x`` elements before padding; ``"wide"`` and
    ``"int8-depthwise"`` are only used without them)."""

    in_h: int
    in_w: int
    in_c: int
    out_c: int
    kh: int
    kw: int
    groups: int
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    pad_value: int
    oh: int
    ow: int
    path: str
    dil: tuple[int, int] = (1, 1)
    ups: tuple[int, int] = (1, 1)


def conv_geometry(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    *,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    pad_value: int = 0,
    groups: int = 1,
    dilation: Sequence[int] = (1, 1),
    ups: Sequence[int] = (1, 1),
) -> ConvGeometry:
    """Validate a CONV's shapes (input ``x_shape = (in_h, in_w, in_c)``, weights ``w_shape
    = (out_c, kh, kw, in_c // groups)``) and parameters as :func:`conv` does; ValueError
    with the same messages if they are inconsistent. ``dilation`` / ``ups`` values of 0
    mean 1 (unset instruction fields)."""
    in_h, in_w, in_c = (int(v) for v in x_shape)
    oc, kh, kw, cig = (int(v) for v in w_shape)
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
    dh, dw = (max(int(v), 1) for v in _pair("dilation", dilation, 0, 255))
    uh, uw = (max(int(v), 1) for v in _pair("ups", ups, 0, 255))
    plain = dh == dw == uh == uw == 1
    if in_h < 1 or in_w < 1:
        raise ValueError(f"input extent {min(in_h, in_w)} must be >= 1")
    oh, ow = out_dims((in_h - 1) * uh + 1, (in_w - 1) * uw + 1,
                      ((kh - 1) * dh + 1, (kw - 1) * dw + 1), (sh, sw), p)
    if g > 1 and cig == 1:
        path = ("int8-depthwise" if plain and _USE_JIT_DEPTHWISE and jit.get() is not None
                else "depthwise")
    elif _USE_INT_MATMUL and int_matmul.backend() is not None:
        path = "int8"
    elif (plain and g == 1 and sh == sw == 1 and kh * kw > 1
          and _use_wide(in_c, ow, ow + kw - 1)):
        path = "wide"
    else:
        path = "im2col"
    return ConvGeometry(in_h, in_w, in_c, oc, kh, kw, g, (sh, sw), p, pv, oh, ow, path,
                        (dh, dw), (uh, uw))


def conv_weights(geo: ConvGeometry, w: I8) -> Any:
    """The int8 weights ``w [out_c][kh][kw][in_c // groups]`` in the layout ``geo.path``
    multiplies with: float32 (exact), or int8 ``[g][K][ocg]`` on the ``"int8"`` path;
    depends on nothing but ``w`` and the geometry, so it can be computed once and reused
    while the weight bytes stay the same."""
    oc, kh, kw, g = geo.out_c, geo.kh, geo.kw, geo.groups
    if geo.path == "depthwise":
        return w.reshape(oc, kh * kw).T.astype(np.float32)  # [kh*kw][oc]
    if geo.path == "int8-depthwise":
        return np.ascontiguousarray(w.reshape(oc, kh * kw).T, dtype=np.int32)  # [kh*kw][oc]
    if geo.path == "wide":
        return np.ascontiguousarray(w.transpose(1, 2, 3, 0), dtype=np.float32)  # [kh][kw][c][oc]
    k = kh * kw * (geo.in_c // g)
    if geo.path == "int8":  # [g][K][ocg] int8, contiguous
        return np.ascontiguousarray(w.reshape(g, oc // g, k).transpose(0, 2, 1))
    return w.reshape(g, oc // g, k).astype(np.float32).transpose(0, 2, 1)  # [g][K][ocg]


def conv_input(geo: ConvGeometry, x: I8) -> np.ndarray:
    """The int8 input tile ``x [in_h][in_w][in_c]`` padded as ``geo`` says, as
    :func:`conv_sums` reads it: float32 (exact), or on the ``"int8"`` path its uint8 im2col
    matrix (:class:`Im2colU8`)."""
    if geo.path == "int8":
        return Im2colU8(geo)(x)
    if geo.path == "int8-depthwise":
        return x  # read in place, padding included, by the compiled kernel
    extra = 1 if geo.path == "wide" else 0
    return _padded(x, geo.pads, geo.pad_value, np.float32, extra_rows=extra, ups=geo.ups)


def conv_sums(geo: ConvGeometry, xp: np.ndarray, wt: Any) -> np.ndarray:
    """The exact integer sums ``sum Xpad * w`` ``[oh][ow][out_c]`` of the input ``xp`` as
    :func:`conv_input` prepares it and weights ``wt`` (:func:`conv_weights`): on the
    ``"int8"`` path int32 reduced modulo ``2**32``; else float32 when every reduction is at
    most :data:`K_CHUNK` long (then ``|sums| <= 2**24``), else float64 (``|sums| <
    2**53``)."""
    if geo.path == "depthwise":
        return _conv_depthwise(xp, wt, geo.oh, geo.ow, (geo.kh, geo.kw), geo.stride, geo.dil)
    if geo.path == "wide":
        return _conv_wide(xp, wt, geo.oh, geo.ow)
    if geo.path == "int8":
        return _int8_sums(geo, int_matmul.require()(xp, wt))
    if geo.path == "int8-depthwise":
        return _depthwise_sums(geo, xp, wt)
    return _conv_im2col(xp, wt, geo.oh, geo.ow, (geo.kh, geo.kw), geo.stride, geo.groups,
                        geo.dil)


def _conv_output(
    sums: np.ndarray,
    start: I32,
    acc_out: bool,
    scale: F32 | None,
    divisor: F32 | None,
    out_zp: int,
    bounds: tuple[int, int],
) -> np.ndarray:
    """``acc = start + sums`` in int32 with two's-complement wrap-around (``sums`` exact
    integers: float32 ones are at most ``2**24`` in magnitude, float64 ones below
    ``2**53`` are reduced modulo ``2**32`` first); ``acc`` itself if ``acc_out``, else
    ``clip(out_zp + rne(f32(f32(f32(acc) * scale) / divisor)), *bounds)`` as int8
    (``divisor`` ``None``: all ones, the division is skipped as it is exact).
    ``int32 -> float32`` conversion rounds to nearest even: the single rounding ``f32(acc)``."""
    if sums.dtype == np.int32:
        acc = sums  # a fresh array from _int8_sums
    elif sums.dtype == np.float32:
        acc = sums.astype(np.int32)
    else:
        acc = sums.astype(np.int64).astype(np.int32)  # wraps modulo 2**32
    acc += start  # int32 arithmetic wraps modulo 2**32
    if acc_out:
        return acc
    assert scale is not None
    v = acc.astype(np.float32)
    with np.errstate(over="ignore", under="ignore"):
        v *= scale
        if divisor is not None:
            v /= divisor
    return _clip_rint_i8(v, bounds[0] - out_zp, bounds[1] - out_zp, out_zp)


def conv_params(
    records: ArrayLike, out_c: int, validate: bool = True
) -> tuple[I32, F32, F32 | None]:
    """The pbuf parameter records of a CONV (``out_c`` records, bytes or
    :data:`~vfpga.isa.spec.PARAM_RECORD_DTYPE`) as ``(bias, scale, divisor)``, with
    ``divisor`` ``None`` when every divisor is exactly 1.0. With ``validate`` (a CONV that
    requantizes, i.e. not ``acc_out``), a non-finite scale or divisor, or a zero divisor,
    raises ValueError with the message :func:`conv` gives."""
    bias, scale, divisor = unpack_params(records)
    if bias.shape != (out_c,):
        raise ValueError(f"expected {out_c} parameter records, got {bias.shape[0]}")
    if validate:
        scale = _f32_channels("scale", scale, out_c)
        divisor = _f32_channels("divisor", divisor, out_c)
        _check_divisor(divisor)
    return bias, scale, (divisor if bool(np.any(divisor != _F32(1.0))) else None)


def conv_prepared(
    geo: ConvGeometry,
    xp: NDArray[np.float32],
    wt: NDArray[np.float32],
    start: I32,
    *,
    acc_out: bool,
    scale: F32 | None,
    divisor: F32 | None,
    out_zp: int,
    bounds: tuple[int, int],
) -> np.ndarray:
    """:func:`conv` without argument checks, for callers that validated everything
    static once: ``geo`` from :func:`conv_geometry`, ``xp`` from :func:`conv_input`,
    ``wt`` from :func:`conv_weights`, ``scale``/``divisor`` from :func:`conv_params`
    (validated), ``start`` int32 ``(out_c,)`` or ``(oh, ow, out_c)``, ``out_zp`` an int8
    and ``bounds`` from :func:`act_bounds`. Returns exactly what :func:`conv` returns."""
    return _conv_output(conv_sums(geo, xp, wt), start, acc_out, scale, divisor, out_zp, bounds)


def conv(
    x: I8,
    w: I8,
    *,
    start: I32,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    pad_value: int = 0,
    groups: int = 1,
    dilation: Sequence[int] = (1, 1),
    ups: Sequence[int] = (1, 1),
    acc_out: bool = False,
    scale: ArrayLike | None = None,
    divisor: ArrayLike = 1.0,
    out_zp: int = 0,
    act: Act | int = Act.NONE,
    act_lo: int = INT8_MIN,
    act_hi: int = INT8_MAX,
    table: ArrayLike | None = None,
) -> np.ndarray:
    """The CONV instruction on extracted tiles.

    * ``x``: int8 ``[in_h][in_w][in_c]``, implicitly padded by ``pads = (t, b, l, r)`` rows /
      columns of ``pad_value`` (int8).
    * ``w``: int8 ``[out_c][kh][kw][in_c // groups]``; output channel ``oc`` is in group
      ``g = oc // (out_c // groups)`` and reads input channels ``[g*cig, (g+1)*cig)``.
    * ``start``: int32, either shape ``(out_c,)`` (the bias of each pbuf record) or
      ``(out_h, out_w, out_c)`` (the abuf partial sums of ``acc_in``).
    * ``acc[y][x][oc] = start + sum_{i,j,ci} Xpad[y*sh+i*dh][x*sw+j*dw][g*cig+ci] *
      w[oc][i][j][ci]`` in int32 (wrapping modulo 2**32), ``out_h = (vh + t + b - ekh) //
      sh + 1`` and likewise ``out_w``, where ``Xpad`` is ``x`` upsampled by ``ups = (uh,
      uw)`` (``uh - 1`` rows of ``pad_value`` inserted between neighbours: ``vh = (in_h -
      1) * uh + 1``) and then padded, and ``ekh = (kh - 1) * dh + 1`` with ``dilation =
      (dh, dw)``.
    * ``acc_out``: return ``acc`` (int32 ``[out_h][out_w][out_c]``; ``scale``/``divisor``
      are not used). Otherwise return int8
      ``act(sat8(out_zp + rne(f32(f32(f32(acc) * scale[oc]) / divisor[oc]))))``;
      ``scale``/``divisor`` are float32 scalars or shape ``(out_c,)``, finite, the divisor
      non-zero. With ``act = TABLE``, ``table`` (256 int8 entries) maps each saturated
      value ``y`` to ``table[y + 128]``.

    Raises ValueError for inconsistent shapes, dtypes or invalid parameters.
    """
    x = _tile("conv input", x, np.int8, 3)
    w = _tile("conv weights", w, np.int8, 4)
    geo = conv_geometry(x.shape, w.shape, stride=stride, pads=pads, pad_value=pad_value,
                        groups=groups, dilation=dilation, ups=ups)
    oc, oh, ow = geo.out_c, geo.oh, geo.ow
    start = np.asarray(start)
    if start.dtype != np.int32:
        raise ValueError(f"start (bias or partial sums) must be int32, got {start.dtype.name}")
    if start.shape not in ((oc,), (oh, ow, oc)):
        raise ValueError(
            f"start must have shape ({oc},) (bias) or ({oh}, {ow}, {oc}) (partial sums), "
            f"got {start.shape}"
        )
    sc: F32 | None = None
    dv: F32 | None = None
    ozp = 0
    bounds = (INT8_MIN, INT8_MAX)
    tab: I8 | None = None
    if not acc_out:
        if scale is None:
            raise ValueError("scale is required unless acc_out is set")
        sc = _f32_channels("scale", scale, oc)
        dv = _f32_channels("divisor", divisor, oc)
        _check_divisor(dv)
        if not np.any(dv != _F32(1.0)):
            dv = None  # division by 1 is exact
        ozp = _int("out_zp", out_zp, INT8_MIN, INT8_MAX)
        bounds = act_bounds(act, act_lo, act_hi)
        if int(act) == Act.TABLE:
            if table is None:
                raise ValueError("act=table needs the activation table")
            tab = act_table(table)
    out = conv_prepared(geo, conv_input(geo, x), conv_weights(geo, w), start,
                        acc_out=bool(acc_out), scale=sc, divisor=dv, out_zp=ozp, bounds=bounds)
    if tab is not None:
        apply_act_table(out, tab)
    return out


#: Whether non-depthwise CONV sums use exact integer products (:mod:`.int_matmul`) when
#: its backend passed its self-test (tests switch it off to cover the float32 paths).
_USE_INT_MATMUL = True
#: Whether depthwise CONV sums use the compiled int32 kernel of :mod:`.jit` when it is
#: available (tests switch it off to cover the float32 path).
_USE_JIT_DEPTHWISE = True
#: Whether :class:`Im2colU8` builds a padded or windowed matrix of one group with the
#: compiled :func:`vfpga.emulator.jit_cols.cols` when it is available (tests switch it off
#: to cover the numpy passes).
_USE_JIT_IM2COL = True
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


def _window_sum_f32(
    e: F32, kernel: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int],
    oh: int, ow: int,
) -> F32:
    """Per output position, the float32 running sum of the in-bound elements of its
    window, starting at +0.0 and adding row by row (top to bottom), left to right within
    a row, each addition rounded to float32. Padding positions add +0.0, which leaves the
    sum unchanged (the sum is never -0.0: +0.0 + -0.0 and exact cancellations are +0.0)."""
    kh, kw = kernel
    sh, sw = stride
    t, b, lf, rt = pads
    ep = np.pad(e, ((t, b), (lf, rt), (0, 0)))
    s = np.zeros((oh, ow, e.shape[2]), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(kh):
            for j in range(kw):
                s += ep[i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw]
    return s


_AVG_NAN = (
    "invalid parameter: average pooling sum is NaN (infinite terms of both signs): "
    "scale={sc!r} is too large"
)


def pool(
    x: I8,
    *,
    mode: PoolMode | int,
    kernel: Sequence[int] = (0, 0),
    stride: Sequence[int] = (0, 0),
    pads: Sequence[int] = (0, 0, 0, 0),
    scale: float = 0.0,
    out_scale: float = 0.0,
    in_zp: int = 0,
    out_zp: int = 0,
) -> I8:
    """The POOL instruction on an extracted int8 tile ``x [in_h][in_w][c]``.

    * ``MAX``: maximum of the in-bound elements of each ``kh x kw`` window (padding never
      wins); a window with no in-bound element is an error. ``scale``, ``out_scale`` and
      the zero points must be 0.
    * ``AVG_PAD`` / ``AVG``: ``e = f32(f32(x - in_zp) * scale)`` per in-bound element;
      ``s`` = their float32 running sum in window order (rows top to bottom, left to
      right); ``count = kh*kw`` (AVG_PAD) or the number of in-bound elements (AVG, an error
      if 0); ``m = f32(s / f32(count))``;
      ``y = sat8(rne(f32(f32(m / out_scale) + f32(out_zp + 128))) - 128)``. ``out_scale``
      must be non-zero; a NaN sum (an infinite ``e`` of each sign, only possible with a
      ``scale`` beyond ~1e36) is an error.
    * ``GLOBAL_AVG``: ``kernel``, ``stride`` and ``pads`` must be all zero; the window is the
      whole tile, the output ``[1][1][c]``: ``acc = sum(x - in_zp)`` (exact integer),
      ``y = sat8(out_zp + rne(f32(f32(acc) * scale)))``; ``out_scale`` must be 0.

    Output ``[out_h][out_w][c]`` int8 with out dims as for CONV. ``scale``/``out_scale``
    are float32 values (other floats are rounded to float32); non-finite ones are errors.
    """
    x = _tile("pool input", x, np.int8, 3)
    try:
        md = PoolMode(int(mode))
    except ValueError:
        raise ValueError(f"unknown pool mode {mode!r}") from None
    in_h, in_w, c = x.shape
    if in_h < 1 or in_w < 1 or c < 1:
        raise ValueError(f"pool input must be non-empty, got shape {x.shape}")
    sc = _f32("scale", scale)
    osc = _f32("out_scale", out_scale)
    izp = _int("in_zp", in_zp, INT8_MIN, INT8_MAX)
    ozp = _int("out_zp", out_zp, INT8_MIN, INT8_MAX)
    if md is PoolMode.GLOBAL_AVG:
        if tuple(kernel) != (0, 0) or tuple(stride) != (0, 0) or tuple(pads) != (0, 0, 0, 0):
            raise ValueError(
                "global_avg pooling requires kernel, stride and pads to be 0, got "
                f"kernel={tuple(kernel)}, stride={tuple(stride)}, pads={tuple(pads)}"
            )
        if osc != 0:
            raise ValueError(
                f"invalid parameter: global_avg pooling uses no out_scale (must be 0), got "
                f"{osc!r}"
            )
        n = in_h * in_w
        acc = x.sum(axis=(0, 1), dtype=np.int64) - np.int64(izp) * n  # |acc| < 2**41
        v = acc.astype(np.float64).astype(np.float32).reshape(1, 1, c)  # f32(acc), exact
        with np.errstate(over="ignore", under="ignore"):
            v *= sc
        return _clip_rint_i8(v, INT8_MIN - ozp, INT8_MAX - ozp, ozp)

    kh, kw = _pair("kernel", kernel, 1, 1 << 16)
    sh, sw = _pair("stride", stride, 1, 1 << 16)
    t, b, lf, rt = _pads(pads)
    oh, ow = out_dims(in_h, in_w, (kh, kw), (sh, sw), (t, b, lf, rt))
    rows = _inbound(in_h, kh, sh, t, oh)
    cols = _inbound(in_w, kw, sw, lf, ow)
    empty = not (rows.all() and cols.all())
    if md is PoolMode.MAX:
        if sc != 0 or osc != 0 or izp or ozp:
            raise ValueError(
                "invalid parameter: max pooling uses no scale, out_scale or zero points (all "
                "must be 0), got "
                f"scale={sc!r}, out_scale={osc!r}, in_zp={izp}, out_zp={ozp}"
            )
        if empty:
            raise ValueError("max pooling window lies entirely in the padding")
        jk = jit.get()
        if jk is not None:  # one compiled pass over the in-bound elements
            out = np.empty((oh, ow, c), np.int8)
            jk.pool_max(np.ascontiguousarray(x), kh, kw, sh, sw, t, lf, out)
            return out
        # -128 padding cannot change the maximum of a window with an in-bound element.
        xp = _padded(x, (t, b, lf, rt), INT8_MIN, np.int8)
        return _box_max(_box_max(xp, kh, sh, oh, 0), kw, sw, ow, 1)
    if osc == 0:
        raise ValueError("invalid parameter: average pooling needs a non-zero out_scale")
    if md is PoolMode.AVG and empty:
        raise ValueError("average pooling window lies entirely in the padding (count 0)")
    jk = jit.get()
    if jk is not None:  # the same float32 steps in one compiled pass
        out = np.empty((oh, ow, c), np.int8)
        if not jk.pool_avg(np.ascontiguousarray(x), izp, sc, md is PoolMode.AVG_PAD, osc,
                           _F32(ozp + U8_BIAS), kh, kw, sh, sw, t, lf, out):
            raise ValueError(_AVG_NAN.format(sc=sc))
        return out
    e = (x.astype(np.int16) - np.int16(izp)).astype(np.float32)  # exact
    with np.errstate(over="ignore", under="ignore"):
        e *= sc
    s = _window_sum_f32(e, (kh, kw), (sh, sw), (t, b, lf, rt), oh, ow)
    if np.isnan(s).any():
        raise ValueError(_AVG_NAN.format(sc=sc))
    if md is PoolMode.AVG_PAD:
        count: F32 | np.float32 = _F32(kh * kw)  # exact: at most 255 * 255
    else:
        count = (rows[:, None] * cols[None, :]).astype(np.float32)[:, :, None]
    with np.errstate(over="ignore", under="ignore"):
        s /= count
        s /= osc
        s += _F32(ozp + U8_BIAS)
    return _clip_rint_i8(s, 0, 255, -U8_BIAS)


def pool_compiled(x: I8, out: I8, **fields: Any) -> Callable[[], str | None] | None:
    """:func:`pool` of the int8 tile ``x [in_h][in_w][c]`` into ``out`` (the result's
    elements, contiguous, in any shape) as a prepared step, for ``fields`` (the keyword
    arguments of :func:`pool`, ``mode``, ``kernel``, ``stride`` and ``pads`` given) that
    are all static: every check :func:`pool` makes before it reads ``x`` is made here, once. The
    step returns ``None``, or the message :func:`pool` raises (a NaN average, the only
    data-dependent error; ``out`` is then unchanged). ``None`` (no step) if the
    compiled kernels are unavailable, ``mode`` is ``GLOBAL_AVG``, ``out`` is not
    contiguous, or :func:`pool` rejects the fields (it then says why when run)."""
    jk = jit.get()
    if jk is None or not out.flags.c_contiguous or x.ndim != 3 or x.dtype != np.int8:
        return None
    try:
        md = PoolMode(int(fields["mode"]))
        if md is PoolMode.GLOBAL_AVG:
            return None
        # every static check, on a tile of zeros (a NaN sum needs terms of both signs)
        ref = pool(np.zeros(x.shape, np.int8), **fields)
    except (ValueError, KeyError):
        return None
    if ref.size != out.size:
        return None
    o = out.reshape(ref.shape)
    kh, kw = (int(v) for v in fields["kernel"])
    sh, sw = (int(v) for v in fields["stride"])
    t, _, lf, _ = (int(v) for v in fields["pads"])
    if md is PoolMode.MAX:

        def step_max() -> str | None:
            jk.pool_max(x, kh, kw, sh, sw, t, lf, o)
            return None

        return step_max
    sc = _f32("scale", fields.get("scale", 0.0))
    osc = _f32("out_scale", fields.get("out_scale", 0.0))
    tmp = np.empty(ref.shape, np.int8)  # ``out`` is written only when no sum is NaN
    args = (int(fields.get("in_zp", 0)), sc, md is PoolMode.AVG_PAD, osc,
            _F32(int(fields.get("out_zp", 0)) + U8_BIAS), kh, kw, sh, sw, t, lf, tmp)
    nan = _AVG_NAN.format(sc=sc)

    def step_avg() -> str | None:
        if not jk.pool_avg(x, *args):
            return nan
        o[...] = tmp
        return None

    return step_avg


# --------------------------------------------------------------------------- ELTWISE


def act_table(raw: ArrayLike) -> I8:
    """The int8 activation table of a CONV with ``act = TABLE`` from its
    :data:`~vfpga.isa.spec.ACT_TABLE_BYTES` pbuf bytes (ValueError for another size)."""
    t = np.asarray(raw)
    if t.size != ACT_TABLE_BYTES:
        raise ValueError(f"activation table must have {ACT_TABLE_BYTES} entries, got {t.size}")
    return np.ascontiguousarray(t).reshape(-1).view(np.int8)


def apply_act_table(out: I8, table: I8) -> None:
    """``out[...] = table[out + 128]`` in place (the ``TABLE`` activation of CONV; one
    compiled pass with :mod:`.jit` on a contiguous ``out``)."""
    jk = jit.get()
    if jk is not None and out.flags.c_contiguous:
        jk.act_lookup(table, out.reshape(-1))
        return
    np.take(table, out.view(np.uint8) ^ np.uint8(0x80), out=out)


def _no_table(act: Act | int) -> None:
    if int(act) == Act.TABLE:
        raise ValueError("act=table is defined for CONV only, not ELTWISE")


#: Operand count from which ELTWISE uses a 64K-entry table of all (a, b) results.
ELTWISE_LUT_MIN = 1 << 15

#: The 256 int8 values in ``uint8`` index order (0..127, then -128..-1).
_I8_BY_U8 = np.arange(256, dtype=np.uint8).view(np.int8)


def _biased(v: I8) -> F32:
    """``f32(v + 128)`` (exact: 0..255)."""
    return (v.astype(np.int16) + U8_BIAS).astype(np.float32)


@functools.lru_cache(maxsize=256)
def _eltwise_inner(sb: float, off: float) -> F32:
    """``fma(B + 128, scale_b, offset)`` for every int8 ``B``, indexed by ``B.view(uint8)``."""
    with np.errstate(over="ignore", invalid="ignore"):
        inner = fma_f32(_biased(_I8_BY_U8), _F32(sb), _F32(off))
    inner.flags.writeable = False
    return inner


@functools.lru_cache(maxsize=512)
def _dequant_codes(scale: float, zp: int) -> F32:
    """``f32(f32(x - zp) * scale)`` for every int8 ``x``, indexed by ``x.view(uint8)``."""
    with np.errstate(over="ignore"):
        v = ((_I8_BY_U8.astype(np.int16) - zp).astype(np.float32) * _F32(scale)).astype(_F32)
    v.flags.writeable = False
    return v


@dataclass(frozen=True)
class EltParams:
    """The validated arithmetic fields of one ELTWISE word (hashable: tables are cached
    per parameter set). ``op``: 0 add, 1 mul, 2 sub (:class:`~vfpga.isa.spec.EltOp`);
    ``bounds``: :func:`act_bounds` of the activation."""

    op: int
    sa: float
    sb: float
    off: float
    a_zp: int
    b_zp: int
    out_zp: int
    out_scale: float
    bounds: tuple[int, int]


def eltwise_params(
    *,
    op: EltOp | int = EltOp.ADD,
    scale_a: float,
    scale_b: float = 0.0,
    offset: float = 0.0,
    act: Act | int = Act.NONE,
    act_lo: int = INT8_MIN,
    act_hi: int = INT8_MAX,
    a_zp: int = 0,
    b_zp: int = 0,
    out_zp: int = 0,
    out_scale: float = 0.0,
) -> EltParams:
    """Check an ELTWISE word's arithmetic fields (ValueError naming the bad one): the
    float fields finite; ``add`` with zero ``a_zp``, ``b_zp``, ``out_zp`` and
    ``out_scale``; ``mul`` with zero ``scale_b``, ``offset`` and ``out_scale``; ``sub``
    with ``offset == 0`` and a non-zero ``out_scale``; no ``table`` activation."""
    try:
        o = EltOp(int(op))
    except ValueError:
        raise ValueError(f"unknown eltwise op {op!r}") from None
    sa = float(_f32("scale_a", scale_a))
    sb = float(_f32("scale_b", scale_b))
    off = float(_f32("offset", offset))
    osc = float(_f32("out_scale", out_scale))
    zps = tuple(_int(k, v, INT8_MIN, INT8_MAX)
                for k, v in (("a_zp", a_zp), ("b_zp", b_zp), ("out_zp", out_zp)))
    _no_table(act)
    if o is EltOp.ADD:
        if any(zps) or osc != 0.0:
            raise ValueError("invalid parameter: op=add folds the zero points into offset; "
                             "a_zp, b_zp, out_zp and out_scale must be 0")
    elif o is EltOp.MUL:
        if sb != 0.0 or off != 0.0 or osc != 0.0:
            raise ValueError("invalid parameter: op=mul scales the product by scale_a "
                             "alone; scale_b, offset and out_scale must be 0")
    else:
        if off != 0.0:
            raise ValueError(f"invalid parameter: op=sub needs offset = 0, got {off!r}")
        if osc == 0.0:
            raise ValueError("invalid parameter: op=sub needs a non-zero out_scale")
    return EltParams(int(o), sa, sb, off, zps[0], zps[1], zps[2], osc,
                     act_bounds(act, act_lo, act_hi))


def _eltwise_direct(a: I8, b: I8, p: EltParams) -> I8:
    """The ELTWISE result of int8 operands ``a``, ``b`` (equal or broadcastable shapes),
    computed element by element (module docstring)."""
    lo, hi = p.bounds
    if p.op == EltOp.ADD:
        inner = _eltwise_inner(p.sb, p.off)[b.view(np.uint8)]
        with np.errstate(over="ignore", invalid="ignore"):
            v = fma_f32(_biased(a), _F32(p.sa), inner)
        return _clip_rint_i8(v, lo + U8_BIAS, hi + U8_BIAS, -U8_BIAS)
    if p.op == EltOp.MUL:
        prod = (a.astype(np.int32) - p.a_zp) * (b.astype(np.int32) - p.b_zp)
        y = mul_requant(prod, p.sa, p.out_zp)
        return np.clip(y, lo, hi).astype(np.int8)
    va = _dequant_codes(p.sa, p.a_zp)[a.view(np.uint8)]
    vb = _dequant_codes(p.sb, p.b_zp)[b.view(np.uint8)]
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.subtract(va, vb)
        v = np.divide(v, _F32(p.out_scale), dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    # MLAS converts NaN (inf * 0 with scales beyond ~1e36) to 0 before adding out_zp
    v[np.isnan(v)] = 0.0
    return _clip_rint_i8(v, lo - p.out_zp, hi - p.out_zp, p.out_zp)


@functools.lru_cache(maxsize=128)
def _eltwise_lut(p: EltParams) -> I8:
    """Results for every operand pair, indexed by ``a.view(uint8) << 8 | b.view(uint8)``."""
    a = np.repeat(_I8_BY_U8, 256)
    b = np.tile(_I8_BY_U8, 256)
    lut = _eltwise_direct(a, b, p)
    lut.flags.writeable = False
    return lut


def _operands(a: I8, b: I8, b_period: int) -> tuple[I8, I8]:
    """``a`` and ``b`` shaped for one element-wise pass: equal shapes for ``b_period ==
    0``, else ``a`` as ``[n / p, p]`` rows against ``b`` ``[1, p]`` (ValueError when the
    sizes do not fit)."""
    if a.dtype != np.int8 or b.dtype != np.int8:
        raise ValueError(f"eltwise operands must be int8, got {a.dtype.name} and {b.dtype.name}")
    p = _int("b_period", b_period, 0, 1 << 32)
    if p == 0:
        if a.shape != b.shape:
            raise ValueError(f"eltwise operands differ in shape: {a.shape} vs {b.shape}")
        return a, b
    if b.size != p or a.size % p:
        raise ValueError(f"invalid parameter: b_period = {p} needs B of {p} elements and n a "
                         f"multiple of {p}, got B of {b.size} and n = {a.size}")
    return a.reshape(-1, p), b.reshape(1, p)


def eltwise(a: I8, b: I8, *, b_period: int = 0, **fields: Any) -> I8:
    """The ELTWISE instruction (docs/isa.md section *Arithmetic*) on int8 ``a`` ``[n]``
    and ``b`` (``[n]``, or ``[b_period]`` repeated along ``a``), result int8 shaped as
    ``a``:

    * ``add``: ``act(sat8(rne(fma(A + 128, scale_a, fma(B + 128, scale_b, offset))) -
      128))``, each ``fma`` rounded once to float32;
    * ``mul``: ``act(sat8(rne(f32(f32(f32((A - a_zp) * (B - b_zp)) * scale_a) +
      f32(out_zp + 128))) - 128))`` (:func:`vfpga.isa.float32.mul_requant`);
    * ``sub``: ``va = f32(f32(A - a_zp) * scale_a)``, ``vb`` likewise,
      ``act(sat8(out_zp + rne(f32(f32(va - vb) / out_scale))))``.

    ``fields``: the arithmetic fields of :func:`eltwise_params` (``op``, ``scale_a``,
    ``scale_b``, ``offset``, ``act``, ``act_lo``, ``act_hi``, ``a_zp``, ``b_zp``,
    ``out_zp``, ``out_scale``). From :data:`ELTWISE_LUT_MIN` elements on, results come
    from a cached table of all 65536 operand pairs computed by the same formula.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    a2, b2 = _operands(a, b, b_period)
    p = eltwise_params(**fields)
    if a.size < ELTWISE_LUT_MIN:
        return _eltwise_direct(a2, b2, p).reshape(a.shape)
    idx = a2.view(np.uint8).astype(np.uint16)
    idx <<= 8
    idx |= b2.view(np.uint8)
    return _eltwise_lut(p)[idx].reshape(a.shape)


#: The ELTWISE word fields :func:`eltwise` takes as keywords.
ELTWISE_FIELDS = ("op", "scale_a", "scale_b", "offset", "act", "act_lo", "act_hi", "a_zp",
                  "b_zp", "out_zp", "out_scale", "b_period")


def pool_fields(f: Any) -> dict[str, Any]:
    """The keywords of :func:`pool` from a decoded POOL word's fields ``f``."""
    return dict(
        mode=PoolMode(f["mode"]),
        kernel=(f["kh"], f["kw"]),
        stride=(f["stride_h"], f["stride_w"]),
        pads=(f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"]),
        scale=f["scale"],
        out_scale=f["out_scale"],
        in_zp=f["in_zp"],
        out_zp=f["out_zp"],
    )


def eltwise_fields(f: Any) -> dict[str, Any]:
    """The keywords of :func:`eltwise` from a decoded ELTWISE word's fields ``f``."""
    return {k: f[k] for k in ELTWISE_FIELDS}


def eltwise_add(
    a: I8,
    b: I8,
    *,
    scale_a: float,
    scale_b: float,
    offset: float,
    act: Act | int = Act.NONE,
    act_lo: int = INT8_MIN,
    act_hi: int = INT8_MAX,
) -> I8:
    """The ELTWISE add instruction on two int8 tiles of equal shape (:func:`eltwise` with
    ``op = add``)."""
    return eltwise(a, b, op=EltOp.ADD, scale_a=scale_a, scale_b=scale_b, offset=offset,
                   act=act, act_lo=act_lo, act_hi=act_hi)


def eltwise_table(**fields: Any) -> I8:
    """The (cached, read-only) table of :func:`eltwise` results for every operand pair,
    indexed by ``A.view(uint8) << 8 | B.view(uint8)``, for the arithmetic fields of
    :func:`eltwise_params`; ValueError for the parameters :func:`eltwise` rejects, with
    its messages. :func:`eltwise` with these parameters equals ``table[index]`` for every
    operand size."""
    return _eltwise_lut(eltwise_params(**fields))


def eltwise_lookup(table: I8, a: I8, b: I8, out: I8,
                   idx: NDArray[np.uint16] | None = None) -> None:
    """``out[...] = table[a.view(uint8) << 8 | b.view(uint8)]`` for int8 ``a``, ``b``,
    ``out`` of one shape (no checks): :func:`eltwise_add` through an
    :func:`eltwise_table`. ``idx``: a uint16 scratch array of that shape to reuse (numpy
    path only: with the compiled kernels of :mod:`.jit` and 1-D operands, one fused pass)."""
    jk = jit.get()
    if jk is not None and a.ndim == 1:
        jk.lookup(table, a, b, out)
        return
    if idx is None:
        idx = np.empty(a.shape, np.uint16)
    np.left_shift(a.view(np.uint8), np.uint16(8), out=idx, dtype=np.uint16)
    np.bitwise_or(idx, b.view(np.uint8), out=idx)
    np.take(table, idx, out=out)
