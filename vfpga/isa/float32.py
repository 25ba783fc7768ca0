"""IEEE-754 binary32 arithmetic the ISA's requantization is defined with.

Since ISA version 2 the accelerator requantizes in float32 steps, each rounded to the
nearest binary32 value with ties to even (the way ONNX Runtime's integer kernels do;
docs/isa.md section *Arithmetic*). numpy's float32 ``+ - * /`` are such correctly rounded
operations; two things numpy does not offer are provided here:

* :func:`round_f32` — the binary32 value nearest to an exact rational (ties to even), for
  constants the compiler derives and for exact test references;
* :func:`fma_f32` — the fused multiply-add ``float32(a * b + c)`` with a single rounding,
  vectorised and exact (no double rounding), used by ELTWISE.

Also the derived constants both the compiler and the golden reference need:
:func:`requant_scale` (a ``multiplier / 2**shift`` pair as float32) and
:func:`eltwise_offset` (the constant term of ELTWISE add).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "F32_MAX",
    "U8_BIAS",
    "eltwise_offset",
    "fma_f32",
    "format_f32",
    "mul_ratio",
    "mul_requant",
    "requant_scale",
    "requant_scales",
    "round_f32",
]

#: Largest finite binary32 value.
F32_MAX = float(np.finfo(np.float32).max)
#: ELTWISE and average pooling work on biased operands ``x + 128`` (0..255).
U8_BIAS = 128

_MANT_BITS = 24  # binary32 significand, including the hidden bit
_MIN_EXP = -126  # exponent of the smallest normal binary32


def round_f32(x: Fraction | int | float) -> float:
    """The binary32 value nearest to the exact rational ``x`` (ties to even), as a Python
    float; ``inf`` with ``x``'s sign beyond the binary32 range (round-to-nearest
    overflow). Exact for any rational: no intermediate float64 rounding."""
    q = Fraction(x)
    if q == 0:
        return 0.0
    sign = -1.0 if q < 0 else 1.0
    q = abs(q)
    # e = floor(log2(q)), from the bit lengths, corrected by one comparison.
    e = q.numerator.bit_length() - q.denominator.bit_length()
    if q < Fraction(2) ** e:
        e -= 1
    e = max(e, _MIN_EXP)  # subnormals share the smallest normal exponent
    ulp_exp = e - (_MANT_BITS - 1)
    scaled = q / Fraction(2) ** ulp_exp  # in [2**23, 2**24) for normals
    n = scaled.numerator // scaled.denominator
    rem = scaled - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2 == 1):
        n += 1
    value = Fraction(n) * Fraction(2) ** ulp_exp
    if value > Fraction(F32_MAX):
        return sign * float("inf")
    return sign * float(value)  # exact: value is a binary32 number


def requant_scale(multiplier: int, shift: int) -> float:
    """``round_f32(multiplier / 2**shift)``: the float32 scale a (multiplier, shift) pair
    of the quantized graph stands for (exact when the multiplier's odd part has at most
    24 bits, which the ONNX lowering guarantees for every float32 ratio >= 2**-38)."""
    return round_f32(Fraction(int(multiplier), 1 << int(shift)))


def requant_scales(multipliers: ArrayLike, shifts: ArrayLike) -> NDArray[np.float32]:
    """:func:`requant_scale` of each ``(multiplier, shift)`` pair, vectorized. For
    ``0 <= multiplier < 2**53`` and ``0 <= shift <= 1000`` the quotient
    ``multiplier / 2**shift`` is exact in float64 (a power-of-two division of an integer
    float64 holds exactly, and stays above float64's smallest subnormal), so the one
    correctly rounded float64 -> float32 conversion gives the binary32 value nearest to
    the exact rational, ties to even, overflow to inf: the same value as
    :func:`round_f32`. Other pairs take the exact rational path one by one."""
    m = np.asarray(multipliers, dtype=np.int64)
    s = np.asarray(shifts, dtype=np.int64)
    m, s = np.broadcast_arrays(m, s)
    fast = (m >= 0) & (m < (1 << 53)) & (s >= 0) & (s <= 1000)
    out = np.empty(m.shape, dtype=np.float32)
    with np.errstate(over="ignore"):
        out[fast] = np.ldexp(m[fast].astype(np.float64), -s[fast]).astype(np.float32)
    for idx in zip(*np.nonzero(~fast), strict=True):
        out[idx] = requant_scale(int(m[idx]), int(s[idx]))
    return out


def fma_f32(a: ArrayLike, b: ArrayLike, c: ArrayLike) -> NDArray[np.float32]:
    """``float32(a * b + c)`` rounded once (ties to even), elementwise with broadcasting,
    for binary32 ``a``, ``b``, ``c``.

    The product of two binary32 values is exact in float64; the float64 sum ``s`` and its
    exact error ``err`` (Knuth's TwoSum) give ``a*b + c == s + err``. Rounding ``s`` to
    binary32 is correct unless ``s`` is exactly halfway between two binary32 neighbours
    while ``err != 0``; there the result is the neighbour on ``err``'s side. (Rounding to
    float64 is monotonic, so ``s`` can reach but never cross a binary32 midpoint.)
    """
    a64 = np.asarray(a, np.float32).astype(np.float64)
    b64 = np.asarray(b, np.float32).astype(np.float64)
    c64 = np.asarray(c, np.float32).astype(np.float64)
    p = a64 * b64
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    with np.errstate(over="ignore"):
        r = s.astype(np.float32)
    if not np.any(err):
        return r
    r64 = r.astype(np.float64)
    toward = np.where(s > r64, np.float32(np.inf), np.float32(-np.inf))
    other = np.nextafter(r, toward)
    o64 = other.astype(np.float64)
    with np.errstate(invalid="ignore"):
        mid = (s != r64) & (np.abs(s - r64) == np.abs(o64 - s)) & (err != 0)
    if not np.any(mid):
        return r
    hi = np.maximum(r, other)
    lo = np.minimum(r, other)
    fixed = np.where(err > 0, hi, lo)
    return np.where(mid, fixed, r).astype(np.float32)


def eltwise_offset(scale_a: float, scale_b: float, a_zp: int, b_zp: int, out_zp: int) -> float:
    """The constant term of ELTWISE add: ``float32(zc - fma(scale_a, za, float32(scale_b *
    zb)))`` with the biased zero points ``za = a_zp + 128``, ``zb = b_zp + 128``, ``zc =
    out_zp + 128`` (int8 zero points in, as in the instruction word's operands); how ONNX
    Runtime's ``QLinearAdd`` folds the zero points. Computed exactly with rationals."""
    ra = Fraction(round_f32(scale_a))
    rb = Fraction(round_f32(scale_b))
    za, zb, zc = a_zp + U8_BIAS, b_zp + U8_BIAS, out_zp + U8_BIAS
    t = Fraction(round_f32(rb * zb))
    inner = Fraction(round_f32(ra * za + t))
    return round_f32(zc - inner)


def mul_ratio(scale_a: float, scale_b: float, scale_out: float) -> float:
    """The one float32 multiplier of ELTWISE mul: ``f32(f32(scale_a * scale_b) /
    scale_out)``, as ONNX Runtime's vectorised ``QLinearMul`` (MLAS, SSE2 and NEON) forms
    it from the two input scales and the output scale."""
    f = np.float32
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        return float(f(f(f(scale_a) * f(scale_b)) / f(scale_out)))


def mul_requant(product: ArrayLike, ratio: float, out_zp: int) -> NDArray[np.int64]:
    """ELTWISE mul's output stage before the activation (ONNX Runtime's vectorised
    ``QLinearMul``): the exact integer ``product = (a - a_zp) * (b - b_zp)``
    (``|product| <= 255**2``, exact in float32), ``v = f32(f32(f32(product) * ratio) +
    f32(out_zp + 128))`` and the result ``clip(rne(v), 0, 255) - 128`` (int8 codes;
    the zero point is added in float32 before rounding, in the uint8 domain, as MLAS
    does). A NaN ``v`` (an infinite ``ratio`` times 0) gives -128, as both MLAS kernels
    (their float-to-int conversion of NaN ends at uint8 0); ``v`` beyond the int32 range
    saturates (x86's conversion gives ``INT32_MIN``, i.e. -128, for a positive overflow
    there: only with ``ratio > 33000``, which no calibrated model has)."""
    f = np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        v = (np.asarray(product, dtype=np.int64).astype(f) * f(ratio)).astype(f)
        v = (v + f(out_zp + U8_BIAS)).astype(f)
    v = np.where(np.isnan(v), f(0.0), v)
    return np.clip(np.rint(np.clip(v, -1.0, 256.0)), 0, 255).astype(np.int64) - U8_BIAS


def format_f32(value: float) -> str:
    """``value`` rounded to float32, as the text the ``dnn`` and ``isa`` dialects print.

    A finite value prints as an MLIR float literal (always with a ``.``): the shortest
    decimal that reads back to the same float32, positional for ``1e-4 <= |v| < 1e16`` or
    zero and scientific otherwise (``1.0e-05``). The parsers read a literal as a float64
    and round it to float32, which for a few decimals is a double rounding; where that
    does not give the value back, the exact float64 repr of the float32 is printed instead.
    A non-finite value prints as its bits in hexadecimal (``0x7FC00000``).
    """
    v = np.float32(value)
    if not np.isfinite(v):
        return f"0x{int(np.array([v]).view(np.uint32)[0]):08X}"
    if v == 0 or 1e-4 <= abs(v) < 1e16:
        s = np.format_float_positional(v, unique=True, trim="0")
    else:
        s = np.format_float_scientific(v, unique=True, trim="0")
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant if '.' in mant else mant + '.0'}e{exp}"
    elif "." not in s:
        s += ".0"
    elif s.endswith("."):
        s += "0"
    if np.float32(float(s)) != v:
        s = repr(float(v))  # exact: every float32 is a float64
        if "." not in s and "e" in s:
            mant, exp = s.split("e")
            s = f"{mant}.0e{exp}"
        elif "." not in s:
            s += ".0"
    return s
