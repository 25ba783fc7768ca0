"""The golden reference's arithmetic (docs/quantization.md, "Arithmetic"; ISA version 2).

Accumulators are exact integers; requantization is a fixed sequence of IEEE-754 binary32
operations, each rounded to nearest with ties to even: numpy's float32 ``+ - * /`` are
exactly such operations, and :func:`vfpga.isa.float32.fma_f32` is the single-rounding
fused multiply-add. Every function works on whole numpy arrays. Nothing here depends on the
emulator; it is the golden model (and, by construction, ONNX Runtime's integer kernels'
arithmetic).

Notation: ``f32(x)`` the binary32 value nearest to ``x``; ``rne`` round half to even to an
integer (``np.rint``); ``sat8(v) = clip(v, -128, 127)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vfpga.isa.float32 import U8_BIAS, eltwise_offset, fma_f32, mul_ratio, mul_requant
from vfpga.isa.limits import MAX_MULTIPLIER, MAX_SHIFT

__all__ = [
    "add_requant",
    "avg_pool_requant",
    "conv_requant",
    "dequantize",
    "global_avg_requant",
    "global_avg_scale",
    "quantize_input",
    "requant_scales",
    "round_sat8",
    "sat8",
]

_F32 = np.float32


def requant_scales(multiplier: ArrayLike, shift: ArrayLike) -> NDArray[np.float32]:
    """``f32(multiplier / 2**shift)`` elementwise (vectorised
    :func:`vfpga.isa.float32.requant_scale`), for ``multiplier`` in ``[0, 2**31)`` and
    ``shift`` in ``[0, 62]``: ``multiplier * 2**-shift`` is exact in float64 (31 significant
    bits, a normal exponent), so the one float64 -> float32 conversion is the only
    rounding. Raises ``ValueError`` for operands outside those ranges."""
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    if np.any(m < 0) or np.any(m >= MAX_MULTIPLIER):
        raise ValueError("requant_scales: multiplier out of range [0, 2**31)")
    if np.any(s < 0) or np.any(s > MAX_SHIFT):
        raise ValueError(f"requant_scales: shift out of range [0, {MAX_SHIFT}]")
    exact = m.astype(np.float64) * np.exp2(-s.astype(np.float64))
    return exact.astype(_F32)


def sat8(v: ArrayLike) -> NDArray[np.int64]:
    """``clip(v, -128, 127)`` as int64 (the caller narrows to int8)."""
    return np.clip(np.asarray(v, dtype=np.int64), -128, 127)


def round_sat8(v: ArrayLike, zero_point: int) -> NDArray[np.int64]:
    """``sat8(zero_point + rne(v))`` for float32 ``v`` (which may be ``+-inf``): the clip
    is computed in float before the conversion to integers, so infinities saturate.
    NaN (only from a non-finite parameter, which the callers reject) is an error."""
    r = np.rint(np.asarray(v, dtype=_F32)).astype(np.float64) + float(zero_point)
    if np.any(np.isnan(r)):
        raise ValueError("round_sat8: NaN in the requantized values")
    return np.clip(r, -128.0, 127.0).astype(np.int64)


def conv_requant(
    acc: ArrayLike, scale: ArrayLike, divisor: float, out_zp: int
) -> NDArray[np.int64]:
    """CONV's output stage before the activation: ``sat8(out_zp + rne(v))`` with
    ``v = f32(f32(f32(acc) * scale) / divisor)``; ``acc`` int32-valued, ``scale`` float32
    broadcastable against ``acc`` (per output channel), ``divisor`` a finite positive
    float32 value (``1.0`` makes the division exact)."""
    a = np.asarray(acc)
    if a.dtype != _F32:
        a = a.astype(np.int64).astype(_F32)  # one rounding (|acc| < 2**31)
    with np.errstate(over="ignore"):
        v = (a * np.asarray(scale, dtype=_F32)).astype(_F32)
        if _F32(divisor) != _F32(1.0):
            v = (v / _F32(divisor)).astype(_F32)
    return round_sat8(v, out_zp)


def add_requant(
    a: ArrayLike,
    b: ArrayLike,
    scale_a: float,
    scale_b: float,
    a_zp: int,
    b_zp: int,
    out_zp: int,
) -> NDArray[np.int64]:
    """ELTWISE add before the activation (ONNX Runtime's MLAS ``QLinearAdd``): with the
    biased operands ``ua = f32(a + 128)``, ``ub = f32(b + 128)`` (exact) and
    ``offset = eltwise_offset(scale_a, scale_b, a_zp, b_zp, out_zp)``,
    ``v = fma(ua, scale_a, fma(ub, scale_b, offset))`` and the result is
    ``sat8(rne(v) - 128)``. ``scale_a``, ``scale_b`` are float32 values."""
    offset = eltwise_offset(scale_a, scale_b, a_zp, b_zp, out_zp)
    ua = (np.asarray(a, dtype=np.int64) + U8_BIAS).astype(_F32)
    ub = (np.asarray(b, dtype=np.int64) + U8_BIAS).astype(_F32)
    sa, sb = _F32(scale_a), _F32(scale_b)
    with np.errstate(over="ignore"):
        v = fma_f32(ua, sa, fma_f32(ub, sb, _F32(offset)))
    return round_sat8(v, -U8_BIAS)


def mul_sub_requant(
    a: ArrayLike,
    b: ArrayLike,
    op: str,
    scale_a: float,
    scale_b: float,
    a_zp: int,
    b_zp: int,
    out_zp: int,
    divisor: float,
) -> NDArray[np.int64]:
    """ELTWISE mul / sub before the activation. ``"mul"`` (ONNX Runtime's vectorised
    ``QLinearMul``): the exact product ``(a - a_zp) * (b - b_zp)`` scaled by
    ``ratio = f32(f32(scale_a * scale_b) / divisor)`` with the output zero point added
    in float32 (:func:`vfpga.isa.float32.mul_requant`). ``"sub"`` (``DequantizeLinear ->
    Sub -> QuantizeLinear``): ``va = f32(f32(a - a_zp) * scale_a)``, ``vb`` likewise,
    ``v = f32(f32(va - vb) / divisor)``, result ``sat8(out_zp + rne(v))`` (a NaN ``v``
    counts as 0, as in MLAS). ``a`` and ``b`` broadcast like numpy arrays."""
    ia, ib = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if op == "mul":
        return mul_requant((ia - a_zp) * (ib - b_zp), mul_ratio(scale_a, scale_b, divisor),
                           out_zp)
    va = (ia - a_zp).astype(_F32) * _F32(scale_a)
    vb = (ib - b_zp).astype(_F32) * _F32(scale_b)
    with np.errstate(over="ignore", invalid="ignore"):
        v = (np.asarray(va - vb, _F32) / _F32(divisor)).astype(_F32)
    v = np.where(np.isnan(v), _F32(0.0), v)
    return round_sat8(v, out_zp)


def avg_pool_requant(
    window_sum: ArrayLike, count: ArrayLike, out_scale: float, out_zp: int
) -> NDArray[np.int64]:
    """AVG / AVG_PAD's output stage (ONNX Runtime's ``QLinearAveragePool``): ``window_sum``
    is the float32 sum ``s`` of the window's elements ``f32(f32(x - in_zp) * s_in)``,
    ``count`` the divisor (broadcastable); ``m = f32(s / f32(count))``,
    ``v = f32(f32(m / out_scale) + f32(out_zp + 128))``, result ``sat8(rne(v) - 128)``."""
    s = np.asarray(window_sum, dtype=_F32)
    cnt = np.asarray(count).astype(_F32)
    with np.errstate(over="ignore"):
        m = (s / cnt).astype(_F32)
        v = ((m / _F32(out_scale)).astype(_F32) + _F32(out_zp + U8_BIAS)).astype(_F32)
    return round_sat8(v, -U8_BIAS)


def global_avg_scale(in_scale: float, out_scale: float, count: int) -> np.float32:
    """GLOBAL_AVG's scale ``f32(s_in / f32(s_out * f32(count)))`` (ONNX Runtime's
    ``QLinearGlobalAveragePool``) for the float32 tensor scales."""
    with np.errstate(over="ignore", divide="ignore"):
        den = _F32(_F32(out_scale) * _F32(count))
        return _F32(_F32(in_scale) / den)


def global_avg_requant(acc: ArrayLike, scale: float, out_zp: int) -> NDArray[np.int64]:
    """GLOBAL_AVG's output stage: ``sat8(out_zp + rne(f32(f32(acc) * scale)))`` for the
    exact integer sums ``acc = sum(x - in_zp)``."""
    a = np.asarray(acc, dtype=np.int64).astype(_F32)
    with np.errstate(over="ignore"):
        v = (a * _F32(scale)).astype(_F32)
    return round_sat8(v, out_zp)


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Quantize a float tensor the way ONNX Runtime's ``QuantizeLinear`` does:
    ``clip(round_half_to_even(float32(x) / float32(scale)) + zp, -128, 127)`` with the
    division in float32."""
    xf = np.asarray(x, dtype=np.float32)
    q = np.rint(xf / np.float32(scale)).astype(np.float64) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``float32(q - zp) * float32(scale)`` (``DequantizeLinear``)."""
    return (np.asarray(q, dtype=np.int32) - np.int32(zero_point)).astype(np.float32) * np.float32(
        scale
    )
