"""Exact integer arithmetic of the accelerator (docs/quantization.md, "Integer arithmetic").

Every function here is exact: results are computed in ``int64`` where the operands are
known to fit (``|num| < 2**62``, ``den <= 2**62``) and in Python integers otherwise.
Nothing in this module depends on the emulator; it is the golden model.
"""

from __future__ import annotations

import numpy as np

_I64_SAFE = 1 << 62


def rhe_shift(v: np.ndarray, s: np.ndarray | int) -> np.ndarray:
    """``round_half_to_even(v / 2**s)`` for int64 ``v`` with ``|v| < 2**62`` and ``s`` in
    ``[0, 62]`` (scalar or broadcastable array), exact."""
    v = np.asarray(v, dtype=np.int64)
    s_arr = np.asarray(s, dtype=np.int64)
    if np.any(s_arr < 0) or np.any(s_arr > 62):
        raise ValueError(f"shift out of range [0, 62]: {s_arr.min()}..{s_arr.max()}")
    # v = q * 2**s + r: add 2**(s-1) - 1 plus the parity of q, then floor: the quotient
    # moves up exactly when r > 2**(s-1), or r == 2**(s-1) and q is odd (< 2**63 as
    # |v| < 2**62).
    pos = s_arr > 0
    bias = np.where(pos, np.left_shift(np.int64(1), np.maximum(s_arr - 1, 0)) - 1, 0)
    parity = np.where(pos, np.right_shift(v, s_arr) & 1, 0)
    return np.right_shift(v + bias + parity, s_arr)


def _as_int_array(v: object) -> np.ndarray:
    try:
        return np.asarray(v)
    except OverflowError:  # a Python int beyond int64
        return np.asarray(v, dtype=object)


def rhe_div(num: np.ndarray, den: np.ndarray | int) -> np.ndarray:
    """``round_half_to_even(num / den)`` for integer ``num`` and positive integer ``den``
    (broadcastable), exact. Falls back to Python integers when an operand does not fit
    the int64 fast path; the result is int64 (object only if a quotient exceeds int64)."""
    num_a = _as_int_array(num)
    den_a = _as_int_array(den)
    if np.any(den_a <= 0):
        raise ValueError("rhe_div: the denominator must be positive")
    fits = (
        num_a.dtype != object
        and den_a.dtype != object
        and int(np.max(np.abs(num_a), initial=0)) < _I64_SAFE
        and int(np.max(den_a, initial=1)) <= _I64_SAFE
    )
    if fits:
        n = num_a.astype(np.int64)
        d = den_a.astype(np.int64)
        q = np.floor_divide(n, d)
        r = n - q * d  # 0 <= r < d
        twice = 2 * r  # < 2**63 since d <= 2**62
        up = (twice > d) | ((twice == d) & ((q & 1) == 1))
        return q + up.astype(np.int64)
    a_b, d_b = np.broadcast_arrays(num_a.astype(object), den_a.astype(object))
    flat = [_rhe_int(int(a), int(b)) for a, b in zip(a_b.ravel(), d_b.ravel(), strict=True)]
    out = np.array(flat, dtype=object).reshape(a_b.shape)
    try:
        return out.astype(np.int64)
    except OverflowError:  # a quotient beyond int64 stays a Python-int array
        return out


def _rhe_int(a: int, b: int) -> int:
    """``round_half_to_even(a / b)`` for Python integers, ``b > 0``."""
    q, r = divmod(a, b)
    if 2 * r > b or (2 * r == b and q & 1):
        q += 1
    return q


def requant(acc: np.ndarray, m: np.ndarray | int, s: np.ndarray | int) -> np.ndarray:
    """``requant(acc, m, s) = round_half_to_even(acc * m / 2**s)``, exact.

    ``acc`` is int32-valued, ``m`` in ``[0, 2**31)``, ``s`` in ``[0, 62]``; the product fits
    int64 (``|acc * m| < 2**62``)."""
    acc64 = np.asarray(acc, dtype=np.int64)
    m64 = np.asarray(m, dtype=np.int64)
    if np.any(m64 < 0) or np.any(m64 >= (1 << 31)):
        raise ValueError("requant: multiplier out of range [0, 2**31)")
    if np.any(np.abs(acc64) >= (1 << 31)):
        raise ValueError("requant: accumulator does not fit int32")
    return rhe_shift(acc64 * m64, s)


def sat8(v: np.ndarray) -> np.ndarray:
    """``clip(v, -128, 127)`` as int64 (the caller narrows to int8)."""
    return np.clip(np.asarray(v, dtype=np.int64), -128, 127)


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
