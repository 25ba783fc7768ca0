"""Property and unit tests of the emulator's compute kernels against the independent
reference in ``tests/isa_reference.py`` (exact equality, never tolerances)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import isa_reference as ref
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vfpga.emulator import kernels
from vfpga.isa.spec import Act, PoolMode

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@contextlib.contextmanager
def patched(**attrs: Any) -> Iterator[None]:
    """Temporarily override module constants of ``kernels`` (path selection, chunking)."""
    old = {k: getattr(kernels, k) for k in attrs}
    for k, v in attrs.items():
        setattr(kernels, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(kernels, k, v)


def int8_tensor(rng: np.random.Generator, shape: tuple[int, ...], fill: str) -> np.ndarray:
    if fill == "extreme":
        return rng.choice(np.array([-128, 127, -127], np.int8), size=shape)
    if fill == "small":
        return rng.integers(-3, 4, size=shape, dtype=np.int8)
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def pick_shift(rng: np.random.Generator, magnitude: int, mult: int) -> int:
    """A shift that maps ``magnitude * mult`` to roughly 2**5..2**9 (not all saturated)."""
    bits = (max(magnitude, 1) * max(mult, 1)).bit_length()
    return int(np.clip(bits - 7 + rng.integers(-2, 3), 0, kernels.MAX_SHIFT))


def random_mults(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.integers(0, 4)
    if kind == 0:
        return rng.integers(0, 2**31, size=n, dtype=np.int64)
    if kind == 1:  # normalised like gemmlowp / TFLite multipliers
        return rng.integers(2**30, 2**31, size=n, dtype=np.int64)
    if kind == 2:
        return rng.integers(0, 2**16, size=n, dtype=np.int64)
    return rng.choice(np.array([0, 1, 2**31 - 1, 2**30]), size=n)


# --------------------------------------------------------------------------- CONV


@st.composite
def conv_cases(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["dense", "depthwise", "grouped"]))
    if kind == "dense":
        g, cig, ocg = 1, draw(st.integers(1, 24)), draw(st.integers(1, 24))
    elif kind == "depthwise":
        g, cig, ocg = draw(st.integers(1, 24)), 1, draw(st.sampled_from([1, 1, 1, 2, 3]))
    else:
        g = draw(st.integers(2, 8))
        cig = draw(st.integers(1, max(1, 24 // g)))
        ocg = draw(st.integers(1, max(1, 24 // g)))
    kernel_pair = st.integers(1, 11)
    kh, kw = draw(
        st.one_of(
            st.tuples(kernel_pair, kernel_pair),
            st.sampled_from([(1, 7), (7, 1), (1, 3), (3, 1), (3, 3), (1, 1), (5, 5), (11, 11)]),
        )
    )
    pads = tuple(draw(st.integers(0, 5)) for _ in range(4))
    in_h = draw(st.integers(max(1, kh - pads[0] - pads[1]), max(1, kh - pads[0] - pads[1], 12)))
    in_w = draw(st.integers(max(1, kw - pads[2] - pads[3]), max(1, kw - pads[2] - pads[3], 12)))
    return {
        "groups": g,
        "in_c": g * cig,
        "out_c": g * ocg,
        "kernel": (kh, kw),
        "pads": pads,
        "in_hw": (in_h, in_w),
        "stride": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "pad_value": draw(st.integers(-128, 127)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "fill": draw(st.sampled_from(["uniform", "uniform", "extreme", "small"])),
        "acc_in": draw(st.booleans()),
        "acc_out": draw(st.booleans()),
        "start_bits": draw(st.sampled_from([0, 8, 20, 28, 31])),
        "act": draw(st.sampled_from(list(Act))),
        "out_zp": draw(st.integers(-128, 127)),
        "act_lo": draw(st.integers(-128, 127)),
        "act_hi": draw(st.integers(-128, 127)),
        "path": draw(st.sampled_from(["auto", "wide", "chunk", "wide+chunk"])),
        "k_chunk": draw(st.integers(1, 40)),
    }


@SETTINGS
@given(conv_cases())
def test_conv_matches_reference(case: dict[str, Any]) -> None:
    rng = np.random.default_rng(case["seed"])
    (in_h, in_w), in_c, oc, g = case["in_hw"], case["in_c"], case["out_c"], case["groups"]
    kh, kw = case["kernel"]
    x = int8_tensor(rng, (in_h, in_w, in_c), case["fill"])
    w = int8_tensor(rng, (oc, kh, kw, in_c // g), case["fill"])
    oh, ow = kernels.out_dims(in_h, in_w, (kh, kw), case["stride"], case["pads"])
    sb = case["start_bits"]
    shape = (oh, ow, oc) if case["acc_in"] else (oc,)
    if sb == 31:
        start = rng.integers(-(2**31), 2**31, size=shape, dtype=np.int64).astype(np.int32)
    else:
        start = rng.integers(-(2**sb), 2**sb + 1, size=shape, dtype=np.int64).astype(np.int32)
    geo = {
        "stride": case["stride"],
        "pads": case["pads"],
        "pad_value": case["pad_value"],
        "groups": g,
    }
    acc = ref.conv_acc(x, w, start, **geo)
    mult = random_mults(rng, oc)
    peak = np.abs(acc).reshape(-1, oc).max(axis=0)
    shift = np.array([pick_shift(rng, int(p), int(m)) for p, m in zip(peak, mult, strict=True)])
    if rng.random() < 0.1:
        shift = rng.integers(0, 63, size=oc)
    args = {
        **geo,
        "start": start,
        "acc_out": case["acc_out"],
        "mult": mult,
        "shift": shift,
        "out_zp": case["out_zp"],
        "act": case["act"],
        "act_lo": case["act_lo"],
        "act_hi": case["act_hi"],
    }
    expected = ref.conv(x, w, **args)
    overrides: dict[str, Any] = {}
    if "wide" in case["path"]:
        overrides |= {"_WIDE_MIN_C": 1, "_WIDE_MAX_WASTE": 1.0}
    if "chunk" in case["path"]:
        overrides |= {"K_CHUNK": case["k_chunk"]}
    with patched(**overrides):
        got = kernels.conv(x, w, **args)
    assert got.dtype == (np.int32 if case["acc_out"] else np.int8)
    assert got.shape == (oh, ow, oc)
    np.testing.assert_array_equal(got, expected)


def test_conv_large_k_exact() -> None:
    # K = 5000 products of -128 * -128: the sum 81_920_000 is far above 2**24.
    x = np.full((2, 3, 5000), -128, np.int8)
    w = np.full((2, 1, 1, 5000), -128, np.int8)
    start = np.array([1, -7], np.int32)
    got = kernels.conv(x, w, start=start, acc_out=True)
    np.testing.assert_array_equal(got[..., 0], 5000 * 16384 + 1)
    np.testing.assert_array_equal(got[..., 1], 5000 * 16384 - 7)


@pytest.mark.parametrize("path", ["im2col", "wide"])
def test_conv_large_k_odd_sums(path: str) -> None:
    # 127 * 127 is odd, so partial sums above 2**24 are not float32-representable: a kernel
    # that reduced more than 1024 products in float32 would round them.
    x = np.full((3, 3, 700), 127, np.int8)
    w = np.full((3, 3, 3, 700), 127, np.int8)
    w[1] = -127
    start = np.array([0, 3, -5], np.int32)
    geo = {"stride": (1, 1), "pads": (1, 1, 1, 1), "pad_value": 127, "groups": 1}
    force = {"_WIDE_MIN_C": 1, "_WIDE_MAX_WASTE": 1.0} if path == "wide" else {"_WIDE_MIN_C": 10**9}
    with patched(**force):
        got = kernels.conv(x, w, start=start, acc_out=True, **geo)
    np.testing.assert_array_equal(got[..., 0], 9 * 700 * 16129)
    np.testing.assert_array_equal(got, ref.conv_acc(x, w, start, **geo))


def test_depthwise_many_taps_exact() -> None:
    # 33 x 33 = 1089 taps of 127 * 127: 17_564_481 > 2**24 and odd.
    x = np.full((33, 33, 2), 127, np.int8)
    w = np.full((2, 33, 33, 1), 127, np.int8)
    got = kernels.conv(x, w, start=np.zeros(2, np.int32), groups=2, acc_out=True)
    assert got.ravel().tolist() == [1089 * 16129] * 2


def test_requant_beyond_float64() -> None:
    # acc * m = 2**61 + 8: exactly representable only with 62 bits. float64 would see 2**61
    # (a tie at 0.5 -> 0); the exact value is just above one half and rounds to 1.
    acc, m = 2147352580, 1073807362
    assert acc * m == 2**61 + 8
    vals = np.array([acc, -acc], np.int32)
    assert kernels.requantize(vals, m, 62).tolist() == [1, -1]
    assert kernels.requantize_int8(vals, m, 62).tolist() == [1, -1]
    x = np.zeros((1, 1, 1), np.int8)
    w = np.zeros((2, 1, 1, 1), np.int8)
    got = kernels.conv(x, w, start=vals, mult=m, shift=62, out_zp=3)
    assert got.ravel().tolist() == [4, 2]


@pytest.mark.parametrize(("kh", "c", "groups"), [(3, 600, 1), (1, 4500, 1), (3, 1200, 2)])
def test_conv_large_k_random(kh: int, c: int, groups: int) -> None:
    rng = np.random.default_rng(kh * c)
    x = rng.integers(-128, 128, (4, 5, c), dtype=np.int8)
    w = rng.integers(-128, 128, (6, kh, kh, c // groups), dtype=np.int8)
    start = rng.integers(-(2**20), 2**20, 6, dtype=np.int32)
    geo = {"stride": (1, 1), "pads": (1, 1, 1, 1), "pad_value": -3, "groups": groups}
    expected = ref.conv_acc(x, w, start, **geo)
    assert kh * kh * c // groups > 4096
    np.testing.assert_array_equal(kernels.conv(x, w, start=start, acc_out=True, **geo), expected)
    for path in ({"_WIDE_MIN_C": 1, "_WIDE_MAX_WASTE": 1.0}, {"_WIDE_MIN_C": 10**9}):
        with patched(**path):
            got = kernels.conv(x, w, start=start, acc_out=True, **geo)
        np.testing.assert_array_equal(got, expected)


def test_conv_int32_wraps() -> None:
    x = np.full((1, 1, 4), 100, np.int8)
    w = np.full((1, 1, 1, 4), 100, np.int8)
    start = np.array([2**31 - 10], np.int32)
    got = kernels.conv(x, w, start=start, acc_out=True)
    assert int(got[0, 0, 0]) == 2**31 - 10 + 40000 - 2**32
    q = kernels.conv(x, w, start=start, mult=1, shift=0)  # wrapped acc is very negative
    assert int(q[0, 0, 0]) == -128


def test_conv_ties_and_relu6() -> None:
    # 1x1 conv with weight 1: acc = x + bias; mult 1, shift 1 halves it.
    x = np.array([5, 7, -5, -7, 1, 3, -1, -3], np.int8).reshape(1, 8, 1)
    w = np.ones((1, 1, 1, 1), np.int8)
    got = kernels.conv(x, w, start=np.zeros(1, np.int32), mult=1, shift=1)
    assert got.ravel().tolist() == [2, 4, -2, -4, 0, 2, 0, -2]
    # Same ties through a large multiplier and shift: acc * 2**30 / 2**31.
    got = kernels.conv(x, w, start=np.zeros(1, np.int32), mult=2**30, shift=31)
    assert got.ravel().tolist() == [2, 4, -2, -4, 0, 2, 0, -2]
    # relu6 with zero point -10 and six = 50: clamps to [-10, 50].
    x = np.array([-128, -11, -10, 0, 50, 51, 127], np.int8).reshape(1, 7, 1)
    got = kernels.conv(
        x, w, start=np.zeros(1, np.int32), mult=1, shift=0, act=Act.RELU6, act_lo=-10, act_hi=50
    )
    assert got.ravel().tolist() == [-10, -10, -10, 0, 50, 50, 50]
    got = kernels.conv(x, w, start=np.zeros(1, np.int32), mult=1, shift=0, act=Act.RELU, act_lo=-10)
    assert got.ravel().tolist() == [-10, -10, -10, 0, 50, 51, 127]


def test_conv_saturates() -> None:
    x = np.array([127, -128], np.int8).reshape(1, 2, 1)
    w = np.full((1, 1, 1, 1), 127, np.int8)
    got = kernels.conv(x, w, start=np.zeros(1, np.int32), mult=2**31 - 1, shift=20, out_zp=5)
    assert got.ravel().tolist() == [127, -128]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"w": np.zeros((4, 3, 3, 3), np.int8)}, "input channels per group"),
        ({"groups": 3}, "divisible by groups"),
        ({"start": np.zeros(5, np.int32)}, "start must have shape"),
        ({"start": np.zeros(4, np.int64)}, "must be int32"),
        ({"x": np.zeros((5, 5, 2), np.int16)}, "must be int8"),
        ({"pads": (0, 0, 0)}, "4 entries"),
        ({"stride": (0, 1)}, "stride"),
        ({"x": np.zeros((1, 5, 2), np.int8)}, "larger than the padded input"),
        ({"mult": -1}, "outside"),
        ({"shift": np.full(4, 63)}, "outside"),
        ({"mult": np.ones(3, np.int32)}, "shape (4,)"),
        ({"mult": None}, "required"),
        ({"act": 3}, "unknown activation"),
    ],
)
def test_conv_rejects(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "x": np.zeros((5, 5, 2), np.int8),
        "w": np.zeros((4, 3, 3, 2), np.int8),
        "start": np.zeros(4, np.int32),
        "mult": 1,
        "shift": 0,
    }
    args.update(kwargs)
    x, w = args.pop("x"), args.pop("w")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kernels.conv(x, w, **args)


def test_out_dims_and_macs() -> None:
    assert kernels.out_dims(224, 224, (7, 7), (2, 2), (3, 3, 3, 3)) == (112, 112)
    assert kernels.out_dims(5, 4, (1, 7), (1, 1), (0, 0, 3, 0)) == (5, 1)
    with pytest.raises(ValueError, match="larger than the padded input"):
        kernels.out_dims(2, 2, (3, 3), (1, 1), (0, 0, 0, 0))
    assert kernels.conv_macs(56, 56, 64, 3, 3, 64, 1) == 56 * 56 * 64 * 9 * 64
    assert kernels.conv_macs(7, 7, 32, 3, 3, 32, 32) == 7 * 7 * 32 * 9


def test_unpack_params() -> None:
    recs = np.array([[5, 2**30, 31], [-9, 7, 0]], "<i4")
    bias, mult, shift = kernels.unpack_params(recs.view(np.uint8).ravel())
    assert bias.tolist() == [5, -9] and mult.tolist() == [2**30, 7] and shift.tolist() == [31, 0]
    with pytest.raises(ValueError, match="multiple of 12"):
        kernels.unpack_params(np.zeros(13, np.uint8))


# --------------------------------------------------------------------------- requantize


def test_requantize_ties_to_even() -> None:
    acc = np.array([5, 7, -5, -7, 1, 3, -1, -3, 4, -4], np.int32)
    assert kernels.requantize(acc, 1, 1).tolist() == [2, 4, -2, -4, 0, 2, 0, -2, 2, -2]
    assert kernels.requantize(acc, 3, 0).tolist() == (acc * 3).tolist()
    # Ties with shifts near the top: 2.5, 3.5, -2.5 at shift 59, 1.5 at 60, -0.5 at 62.
    big = np.array([5 * 2**28, 7 * 2**28, -5 * 2**28], np.int32)
    assert kernels.requantize(big, 2**30, 59).tolist() == [2, 4, -2]
    assert kernels.requantize(np.array([3 * 2**29], np.int32), 2**30, 60).tolist() == [2]
    assert kernels.requantize(np.array([-(2**31)], np.int32), 2**30, 62).tolist() == [0]
    assert kernels.requantize_int8(big, 2**30, 59, out_zp=1).tolist() == [3, 5, -1]
    extremes = np.array([-(2**31), 2**31 - 1], np.int32)
    assert kernels.requantize(extremes, 2**31 - 1, 62).tolist() == [-1, 1]
    assert kernels.requantize(extremes, 2**31 - 1, 0).tolist() == [
        -(2**31) * (2**31 - 1),
        (2**31 - 1) ** 2,
    ]


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 40),
    st.sampled_from(["full", "near"]),
    st.sampled_from(list(Act)),
    st.integers(-128, 127),
    st.integers(-128, 127),
    st.integers(-128, 127),
)
def test_requantize_matches_reference(
    seed: int, n: int, shifts: str, act: Act, zp: int, lo: int, hi: int
) -> None:
    rng = np.random.default_rng(seed)
    bits = int(rng.integers(1, 32))
    acc = rng.integers(-(2**bits), 2**bits, size=(3, n), dtype=np.int64)
    acc = np.clip(acc, -(2**31), 2**31 - 1).astype(np.int32)
    mult = random_mults(rng, n)
    if shifts == "full":
        shift = rng.integers(0, 63, size=n)
    else:
        shift = np.array([pick_shift(rng, 2**bits, int(m)) for m in mult])
    got = kernels.requantize(acc, mult, shift)
    exp = [[ref.requant(a, m, s) for a, m, s in zip(row, mult, shift, strict=True)] for row in acc]
    assert got.tolist() == exp
    got8 = kernels.requantize_int8(acc, mult, shift, out_zp=zp, act=act, act_lo=lo, act_hi=hi)
    exp8 = [[ref.act_fn(ref.sat8(zp + v), act, lo, hi) for v in row] for row in exp]
    assert got8.dtype == np.int8
    assert got8.tolist() == exp8


# --------------------------------------------------------------------------- POOL


@st.composite
def pool_cases(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(list(PoolMode)))
    c = draw(st.integers(1, 24))
    if mode is PoolMode.GLOBAL_AVG:
        kernel, stride, pads = (0, 0), (0, 0), (0, 0, 0, 0)
        in_h, in_w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    else:
        kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
        kernel = (kh, kw)
        stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        pads = (
            draw(st.integers(0, min(5, kh))),
            draw(st.integers(0, min(5, kh))),
            draw(st.integers(0, min(5, kw))),
            draw(st.integers(0, min(5, kw))),
        )
        in_h = draw(st.integers(max(1, kh - pads[0] - pads[1]), 12))
        in_w = draw(st.integers(max(1, kw - pads[2] - pads[3]), 12))
    return {
        "mode": mode,
        "shape": (in_h, in_w, c),
        "kernel": kernel,
        "stride": stride,
        "pads": pads,
        "seed": draw(st.integers(0, 2**32 - 1)),
        "fill": draw(st.sampled_from(["uniform", "extreme", "small"])),
        "in_zp": draw(st.integers(-128, 127)),
        "out_zp": draw(st.integers(-128, 127)),
        "negative_mult": draw(st.booleans()),
    }


@SETTINGS
@given(pool_cases())
def test_pool_matches_reference(case: dict[str, Any]) -> None:
    rng = np.random.default_rng(case["seed"])
    x = int8_tensor(rng, case["shape"], case["fill"])
    mult = int(random_mults(rng, 1)[0])
    shift = int(np.clip(mult.bit_length() + rng.integers(-2, 4), 0, 62))
    if case["negative_mult"]:
        mult = -mult
    args = {k: case[k] for k in ("mode", "kernel", "stride", "pads", "in_zp", "out_zp")}
    args |= {"mult": mult, "shift": shift}
    try:
        expected = ref.pool(x, **args)
    except ValueError:
        with pytest.raises(ValueError, match="entirely in the padding"):
            kernels.pool(x, **args)
        return
    got = kernels.pool(x, **args)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, expected)


def test_pool_padding_never_wins_and_rounding() -> None:
    x = np.full((2, 2, 1), -100, np.int8)
    got = kernels.pool(x, mode=PoolMode.MAX, kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1))
    assert (got == -100).all() and got.shape == (2, 2, 1)
    # AVG excludes padding from the count, AVG_PAD includes it: 4 * 5 / 4 = 5 vs 20 / 9.
    x = np.full((2, 2, 1), 5, np.int8)
    kw = {"kernel": (3, 3), "stride": (1, 1), "pads": (1, 1, 1, 1), "mult": 1, "shift": 0}
    assert (kernels.pool(x, mode=PoolMode.AVG, **kw) == 5).all()
    assert (kernels.pool(x, mode=PoolMode.AVG_PAD, **kw) == 2).all()  # 20/9 = 2.22
    # Global average with a tie: (1 + 2) / 2 = 1.5 -> 2, (1 + 0) / 2 = 0.5 -> 0.
    x = np.array([[[1, 1]], [[2, 0]]], np.int8)
    got = kernels.pool(x, mode=PoolMode.GLOBAL_AVG, mult=1, shift=0)
    assert got.ravel().tolist() == [2, 0]
    # mean 255 times (2**31 - 1) / 2**32 = 127.49999994 -> 127; out_zp -128 -> -1. The big
    # tile makes |acc * mult| exceed 2**62 (exact Python-integer path), the small one not.
    for side in (10, 3000):
        x = np.full((side, side, 1), 127, np.int8)
        got = kernels.pool(
            x, mode=PoolMode.GLOBAL_AVG, mult=2**31 - 1, shift=32, in_zp=-128, out_zp=-128
        )
        assert got.ravel().tolist() == [-1]


def test_pool_rejects() -> None:
    x = np.zeros((3, 3, 2), np.int8)
    with pytest.raises(ValueError, match="entirely in the padding"):
        kernels.pool(x, mode=PoolMode.MAX, kernel=(2, 2), stride=(1, 1), pads=(2, 0, 0, 0))
    with pytest.raises(ValueError, match="global_avg"):
        kernels.pool(x, mode=PoolMode.GLOBAL_AVG, kernel=(3, 3), stride=(1, 1))
    with pytest.raises(ValueError, match="unknown pool mode"):
        kernels.pool(x, mode=7, kernel=(2, 2), stride=(1, 1))
    with pytest.raises(ValueError, match="shift"):
        kernels.pool(x, mode=PoolMode.AVG, kernel=(2, 2), stride=(1, 1), shift=63)


# --------------------------------------------------------------------------- ELTWISE


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 300),
    st.sampled_from(list(Act)),
    st.tuples(*(st.integers(-128, 127) for _ in range(5))),
    st.booleans(),
    st.booleans(),
)
def test_eltwise_matches_reference(
    seed: int, n: int, act: Act, zps: tuple[int, ...], use_lut: bool, negative: bool
) -> None:
    rng = np.random.default_rng(seed)
    fill = ["uniform", "extreme", "small"][int(rng.integers(0, 3))]
    a = int8_tensor(rng, (n,), fill)
    b = int8_tensor(rng, (n,), fill)
    ma, mb = (int(v) for v in random_mults(rng, 2))
    if negative:
        mb = -mb
    shift = pick_shift(rng, 256, max(abs(ma), abs(mb)))
    a_zp, b_zp, out_zp, lo, hi = zps
    args = {
        "mult_a": ma, "mult_b": mb, "shift": shift, "a_zp": a_zp, "b_zp": b_zp,
        "out_zp": out_zp, "act": act, "act_lo": lo, "act_hi": hi,
    }
    with patched(ELTWISE_LUT_MIN=1 if use_lut else 10**9):
        got = kernels.eltwise_add(a, b, **args)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, ref.eltwise_add(a, b, **args))


def test_eltwise_lut_all_pairs() -> None:
    vals = np.arange(-128, 128, dtype=np.int8)
    a, b = np.repeat(vals, 256), np.tile(vals, 256)
    args = {
        "mult_a": 1_500_000_001, "mult_b": 1_073_741_824, "shift": 31, "a_zp": -3, "b_zp": 7,
        "out_zp": 2, "act": Act.RELU, "act_lo": 2, "act_hi": 127,
    }
    got = kernels.eltwise_add(a, b, **args)  # 65536 elements: table path
    for idx in np.random.default_rng(0).integers(0, a.size, 2000):
        num = (int(a[idx]) + 3) * args["mult_a"] + (int(b[idx]) - 7) * args["mult_b"]
        exp = max(2, min(127, 2 + round(Fraction(num, 2**31))))
        assert int(got[idx]) == exp
    with patched(ELTWISE_LUT_MIN=10**9):
        np.testing.assert_array_equal(kernels.eltwise_add(a, b, **args), got)


def test_eltwise_rejects() -> None:
    a = np.zeros(4, np.int8)
    with pytest.raises(ValueError, match="differ in shape"):
        kernels.eltwise_add(a, np.zeros(5, np.int8), mult_a=1, mult_b=1, shift=0)
    with pytest.raises(ValueError, match="int8"):
        kernels.eltwise_add(a, a.astype(np.int16), mult_a=1, mult_b=1, shift=0)
    with pytest.raises(ValueError, match="mult_a"):
        kernels.eltwise_add(a, a, mult_a=2**31, mult_b=1, shift=0)


def test_reference_is_independent() -> None:
    """The reference must not reuse the code under test."""
    import inspect

    imports = [
        line for line in inspect.getsource(ref).splitlines() if line.startswith(("import", "from"))
    ]
    assert imports and not any("emulator" in line for line in imports)
