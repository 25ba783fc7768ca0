"""The binary32 helpers of the ISA's requantization (vfpga/isa/float32.py) against exact
rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vfpga.isa.float32 import eltwise_offset, fma_f32, requant_scale, requant_scales, round_f32

f32s = st.floats(
    width=32, allow_nan=False, allow_infinity=False, min_value=-(2.0**100), max_value=2.0**100
)


def test_round_f32_matches_numpy_on_float64_values() -> None:
    rng = np.random.default_rng(1)
    v = rng.standard_normal(2000) * np.exp2(rng.integers(-140, 100, 2000))
    for x in v:
        assert round_f32(Fraction(float(x))) == float(np.float32(x))


def test_round_f32_ties_to_even_and_overflow() -> None:
    one_ulp = Fraction(1, 1 << 23)
    assert round_f32(1 + one_ulp / 2) == 1.0  # tie -> even (1.0)
    assert round_f32(1 + 3 * one_ulp / 2) == float(1 + 2 * one_ulp)  # tie -> even (up)
    assert round_f32(1 + one_ulp / 2 + Fraction(1, 1 << 80)) == float(1 + one_ulp)
    assert round_f32(Fraction(2) ** 200) == float("inf")
    assert round_f32(-Fraction(2) ** 200) == float("-inf")
    tiny = Fraction(1, 1 << 149)  # the smallest subnormal
    assert round_f32(tiny) == float(tiny)
    assert round_f32(tiny / 2) == 0.0  # tie with 0 -> even
    assert round_f32(0) == 0.0


@settings(max_examples=400)
@given(f32s, f32s, f32s)
def test_fma_f32_is_one_rounding(a: float, b: float, c: float) -> None:
    got = fma_f32(np.float32(a), np.float32(b), np.float32(c))
    want = round_f32(Fraction(a) * Fraction(b) + Fraction(c))
    assert float(got) == want


def test_fma_f32_double_rounding_cases() -> None:
    """``a*b`` is exactly the binary32 midpoint ``1 + 2**-24`` (2**24 + 1 = 97 * 172961)
    and ``c`` is tiny: float64 evaluation rounds to the midpoint and then to even, which
    is wrong whenever ``c != 0``; the FMA must follow ``c``'s sign."""
    a = np.float32(97 / 128)
    b = np.float32(172961 / 131072)
    c = np.array([2.0**-80, -(2.0**-80), 2.0**-60, -(2.0**-70), 0.0], np.float32)
    naive = (np.float64(a) * np.float64(b) + c.astype(np.float64)).astype(np.float32)
    got = fma_f32(a, b, c)
    want = [round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(z))) for z in c]
    assert [float(g) for g in got] == want
    assert float(got[0]) == 1 + 2.0**-23 and float(got[1]) == 1.0
    assert np.count_nonzero(naive != got) >= 2  # the case is real


def test_fma_f32_biased_operands_vectorised() -> None:
    rng = np.random.default_rng(7)
    ua = np.arange(256, dtype=np.float32)
    for _ in range(20):
        sa, sb, off = (np.float32(v) for v in rng.uniform(-3, 3, 3))
        ub = rng.integers(0, 256, 256).astype(np.float32)
        got = fma_f32(ua, sa, fma_f32(ub, sb, off))
        for x, y, g in zip(ua, ub, got, strict=True):
            inner = round_f32(Fraction(float(y)) * Fraction(float(sb)) + Fraction(float(off)))
            assert float(g) == round_f32(Fraction(float(x)) * Fraction(float(sa)) + Fraction(inner))


def test_requant_scale_and_offset() -> None:
    assert requant_scale(3, 2) == 0.75
    assert requant_scale((1 << 24) + 1, 24) == 1.0  # nearest binary32 (tie -> even)
    sa, sb = float(np.float32(0.37)), float(np.float32(1.9))
    za, zb, zc = 128 - 3 + 0, 128 + 10, 128 - 7
    t = np.float32(np.float32(sb) * np.float32(zb))
    inner = fma_f32(np.float32(sa), np.float32(za), t)
    want = float(np.float32(np.float32(zc) - inner))
    assert eltwise_offset(sa, sb, -3, 10, -7) == want


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, (1 << 53) - 1), st.integers(0, 1100))
def test_requant_scales_equals_the_exact_rounding(multiplier: int, shift: int) -> None:
    """The vectorized float64 path gives round_f32's bits for every pair, the rational
    fallback included (shift > 1000), subnormals and zero too."""

    got = requant_scales([multiplier, multiplier >> 20], [shift, shift])
    for m, g in zip((multiplier, multiplier >> 20), got, strict=True):
        assert g.tobytes() == np.float32(requant_scale(m, shift)).tobytes()
