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
from vfpga.isa.float32 import eltwise_offset
from vfpga.isa.spec import PARAM_RECORD_BYTES, PARAM_RECORD_DTYPE, Act, EltOp, PoolMode

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


def rand_scales(rng: np.random.Generator, n: int, peak: float) -> np.ndarray:
    """float32 scales (random 24-bit mantissas) mapping ``peak`` to roughly 2**5..2**9,
    with occasional special values: 0, negative, subnormal, and so large the product
    overflows to infinity (saturates)."""
    base = 2.0 ** rng.uniform(5, 9, n) / max(float(peak), 1.0)
    sc = (base * rng.uniform(1, 2, n)).astype(np.float32)
    if rng.random() < 0.3:
        special = np.array([0.0, -float(sc[0]), 1e-40, 3e38, 2.0**-20], np.float32)
        pick = rng.random(n) < 0.3
        sc[pick] = rng.choice(special, size=int(pick.sum()))
    return sc


def rand_divisors(rng: np.random.Generator, n: int) -> np.ndarray | float:
    """1.0 (the common case), else random float32 divisors (some below 1, some negative)."""
    if rng.random() < 0.5:
        return 1.0
    dv = (2.0 ** rng.uniform(-3, 3, n) * rng.uniform(1, 2, n)).astype(np.float32)
    dv[rng.random(n) < 0.1] *= -1
    return dv


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
        "path": draw(st.sampled_from(["auto", "float", "wide", "chunk", "wide+chunk"])),
        "k_chunk": draw(st.integers(1, 40)),
    }


#: ELTWISE's activations (``act = TABLE`` is CONV only).
ELTWISE_ACTS = [a for a in Act if a is not Act.TABLE]


@SETTINGS
@given(
    kind=st.sampled_from(["dense", "depthwise", "grouped"]),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    dilation=st.tuples(st.sampled_from([1, 2, 3, 6]), st.sampled_from([1, 2, 4])),
    ups=st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from([1, 2, 4])),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 2)),
    pads=st.tuples(*(st.integers(0, 4) for _ in range(4))),
    in_hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    path=st.sampled_from(["auto", "float"]),
    acc_out=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv_dilated_upsampled_matches_reference(
    kind: str, kernel: tuple[int, int], dilation: tuple[int, int], ups: tuple[int, int],
    stride: tuple[int, int], pads: tuple[int, int, int, int], in_hw: tuple[int, int],
    path: str, acc_out: bool, seed: int,
) -> None:
    """ISA v3 CONV fields ``dil_*`` (kernel dilation) and ``ups_*`` (zero insertion)
    against the independent reference, on the exact-integer and the float32 paths."""
    rng = np.random.default_rng(seed)
    g, cig, ocg = {"dense": (1, 5, 6), "depthwise": (7, 1, 1), "grouped": (3, 2, 3)}[kind]
    kh, kw = kernel
    vh = (in_hw[0] - 1) * ups[0] + 1 + pads[0] + pads[1]
    vw = (in_hw[1] - 1) * ups[1] + 1 + pads[2] + pads[3]
    if vh < (kh - 1) * dilation[0] + 1 or vw < (kw - 1) * dilation[1] + 1:
        return  # the window does not fit: a fault, covered by test_conv_rejects
    x = int8_tensor(rng, (*in_hw, g * cig), "uniform")
    w = int8_tensor(rng, (g * ocg, kh, kw, cig), "uniform")
    start = rng.integers(-1000, 1000, size=(g * ocg,)).astype(np.int32)
    args: dict[str, Any] = dict(
        start=start, stride=stride, pads=pads, pad_value=int(rng.integers(-128, 128)),
        groups=g, acc_out=acc_out, scale=np.float32(0.01), divisor=1.0, out_zp=3,
        act=Act.NONE, act_lo=-128, act_hi=127)
    expected = ref.conv(x, w, dilation=dilation, ups=ups, **args)
    overrides = {} if path == "auto" else {"_USE_INT_MATMUL": False, "_USE_JIT_DEPTHWISE": False}
    with patched(**overrides):
        got = kernels.conv(x, w, dilation=dilation, ups=ups, **args)
    np.testing.assert_array_equal(got, expected)


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
    peak = np.abs(acc).reshape(-1, oc).max(axis=0)
    scale = rand_scales(rng, oc, float(np.median(peak)))
    divisor = rand_divisors(rng, oc)
    args = {
        **geo,
        "start": start,
        "acc_out": case["acc_out"],
        "scale": scale,
        "divisor": divisor,
        "out_zp": case["out_zp"],
        "act": case["act"],
        "act_lo": case["act_lo"],
        "act_hi": case["act_hi"],
        "table": rng.integers(-128, 128, 256).astype(np.int8),
    }
    expected = ref.conv(x, w, **args)
    overrides: dict[str, Any] = {}
    if case["path"] != "auto":  # the float32 paths (auto: exact integer kernels if usable)
        overrides["_USE_INT_MATMUL"] = False
        overrides["_USE_JIT_DEPTHWISE"] = False
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


@pytest.mark.parametrize("path", ["int8", "im2col", "wide"])
def test_conv_large_k_odd_sums(path: str) -> None:
    # 127 * 127 is odd, so partial sums above 2**24 are not float32-representable: a kernel
    # that reduced more than 1024 products in float32 would round them.
    x = np.full((3, 3, 700), 127, np.int8)
    w = np.full((3, 3, 3, 700), 127, np.int8)
    w[1] = -127
    start = np.array([0, 3, -5], np.int32)
    geo = {"stride": (1, 1), "pads": (1, 1, 1, 1), "pad_value": 127, "groups": 1}
    force: dict[str, Any] = {
        "int8": {},
        "im2col": {"_WIDE_MIN_C": 10**9, "_USE_INT_MATMUL": False},
        "wide": {"_WIDE_MIN_C": 1, "_WIDE_MAX_WASTE": 1.0, "_USE_INT_MATMUL": False},
    }[path]
    with patched(**force):
        chosen = kernels.conv_geometry(x.shape, w.shape, **geo).path
        if path != "int8" or kernels.int_matmul.backend() is not None:
            assert chosen == path
        got = kernels.conv(x, w, start=start, acc_out=True, **geo)
    np.testing.assert_array_equal(got[..., 0], 9 * 700 * 16129)
    np.testing.assert_array_equal(got, ref.conv_acc(x, w, start, **geo))


@pytest.mark.parametrize("compiled", [True, False], ids=["int8-depthwise", "float32"])
def test_depthwise_many_taps_exact(compiled: bool) -> None:
    # 33 x 33 = 1089 taps of 127 * 127: 17_564_481 > 2**24 and odd.
    x = np.full((33, 33, 2), 127, np.int8)
    w = np.full((2, 33, 33, 1), 127, np.int8)
    with patched(_USE_JIT_DEPTHWISE=compiled):
        geo = kernels.conv_geometry(x.shape, w.shape, groups=2)
        got = kernels.conv(x, w, start=np.zeros(2, np.int32), groups=2, acc_out=True)
    assert geo.path == ("int8-depthwise" if compiled and kernels.jit.get() else "depthwise")
    assert got.ravel().tolist() == [1089 * 16129] * 2
    # start near the int32 limit: the int32 sums wrap modulo 2**32 as the ISA says
    with patched(_USE_JIT_DEPTHWISE=compiled):
        wrapped = kernels.conv(x, w, start=np.full(2, 2**31 - 5, np.int32), groups=2,
                               acc_out=True)
    assert wrapped.ravel().tolist() == [2**31 - 5 + 1089 * 16129 - 2**32] * 2


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
    for path in ({"_WIDE_MIN_C": 1, "_WIDE_MAX_WASTE": 1.0, "_USE_INT_MATMUL": False},
                 {"_WIDE_MIN_C": 10**9, "_USE_INT_MATMUL": False}):
        with patched(**path):
            got = kernels.conv(x, w, start=start, acc_out=True, **geo)
        np.testing.assert_array_equal(got, expected)


def _one_by_one(acc: list[int], **kw: Any) -> list[int]:
    """CONV of a 1x1 kernel with weight 0 whose accumulators are the biases ``acc``."""
    x = np.zeros((1, 1, 1), np.int8)
    w = np.zeros((len(acc), 1, 1, 1), np.int8)
    out = kernels.conv(x, w, start=np.array(acc, np.int32), **kw)
    return [int(v) for v in out.ravel()]


def test_conv_int32_wraps() -> None:
    x = np.full((1, 1, 4), 100, np.int8)
    w = np.full((1, 1, 1, 4), 100, np.int8)
    start = np.array([2**31 - 10], np.int32)
    got = kernels.conv(x, w, start=start, acc_out=True)
    assert int(got[0, 0, 0]) == 2**31 - 10 + 40000 - 2**32
    q = kernels.conv(x, w, start=start, scale=1.0)  # wrapped acc is very negative
    assert int(q[0, 0, 0]) == -128


def test_conv_ties_to_even_and_relu6() -> None:
    acc = [5, 7, -5, -7, 1, 3, -1, -3]
    halves = [2, 4, -2, -4, 0, 2, 0, -2]  # 2.5, 3.5, -2.5, -3.5, 0.5, 1.5, -0.5, -1.5
    assert _one_by_one(acc, scale=0.5) == halves
    assert _one_by_one(acc, scale=1.0, divisor=2.0) == halves
    assert _one_by_one(acc, scale=2.0**-20, divisor=2.0**-19) == halves
    assert _one_by_one(acc, scale=0.5, out_zp=1) == [h + 1 for h in halves]
    # relu6 with zero point -10 and six = 50: clamps to [-10, 50].
    vals = [-128, -11, -10, 0, 50, 51, 127]
    kw: dict[str, Any] = {"scale": 1.0, "act": Act.RELU6, "act_lo": -10, "act_hi": 50}
    assert _one_by_one(vals, **kw) == [-10, -10, -10, 0, 50, 50, 50]
    kw |= {"act": Act.RELU}
    assert _one_by_one(vals, **kw) == [-10, -10, -10, 0, 50, 51, 127]


def test_conv_product_rounds_to_a_tie() -> None:
    # 3 * scale is 2.5000001192... exactly, which float32 rounds to 2.5, a tie: even 2.
    # Rounding the exact product once would give 3.
    scale = 0.8333333730697632
    assert float(np.float32(scale)) == scale
    assert Fraction(3) * Fraction(scale) > Fraction(5, 2)
    assert _one_by_one([3, -3], scale=scale) == [2, -2]


def test_conv_accumulator_beyond_2_24_rounds() -> None:
    # f32(2**24 + 1) = 2**24 (tie to even), f32(2**24 + 3) = 2**24 + 4; times 2**-25 this
    # gives 0.5 -> 0 and 0.5000001 -> 1 (the exact values would both round to 1).
    assert _one_by_one([2**24 + 1, 2**24 + 3, -(2**24) - 1], scale=2.0**-25) == [0, 1, 0]
    # 2**31 - 1 is float32 2**31: times 2**-24 exactly 128 -> saturates at 127 either way,
    # but with out_zp -1 the rounding shows: 128 - 1 = 127, not 127 - 1.
    assert _one_by_one([2**31 - 1, 2**31 - 65], scale=2.0**-24, out_zp=-1) == [127, 127]
    # 2**31 - 129 -> f32 2**31 - 128 (tie between ...-256 and 2**31 goes to even: 2**31 - 256
    # has an odd significand? check against the exact reference instead of by hand)
    acc = [2**31 - 129, 2**31 - 385, -(2**31) + 129]
    want = [ref.sat8(-100 + ref.rne(ref.requant_conv(a, 2.0**-24, 1.0))) for a in acc]
    assert _one_by_one(acc, scale=2.0**-24, out_zp=-100) == want


def test_conv_divisor_is_a_second_rounding() -> None:
    # v = f32(f32(acc * scale) / divisor): f32(9 * scale) = 7.5000005, / 3 = 2.5000002 -> 3.
    # Rounding the exact quotient once (2.50000012 -> float32 2.5 -> 2) or folding the
    # divisor into the scale (9 * f32(scale / 3) -> 2.5 -> 2) would give 2.
    s, d = 0.8333333730697632, 3.0
    exact_once = ref.rne(ref.f32(Fraction(9) * Fraction(s) / Fraction(d)))
    folded = ref.rne(ref.mul(ref.f32(9), ref.div(s, d)))
    two_steps = ref.rne(ref.requant_conv(9, s, d))
    assert two_steps != exact_once and two_steps != folded
    assert _one_by_one([9, -9], scale=s, divisor=d) == [two_steps, -two_steps]
    # A true division, not a multiplication by f32(1 / divisor): f32(150.97546 / 8.160835)
    # is 18.500002 -> 19, while 150.97546 * f32(1 / 8.160835) rounds to 18.5 -> 18.
    q, d2 = 150.9754638671875, 8.160835266113281
    recip = ref.rne(ref.mul(q, ref.div(1.0, d2)))
    want = ref.rne(ref.div(q, d2))
    assert want != recip
    assert _one_by_one([1], scale=q, divisor=d2) == [want]
    # and many accumulators against the reference
    rng = np.random.default_rng(11)
    acc = rng.integers(-3000, 3000, 2000).tolist()
    sc = np.full(len(acc), 0.01234567, np.float32)
    dv = np.full(len(acc), 0.0987654, np.float32)
    want = [ref.sat8(ref.rne(ref.requant_conv(a, float(sc[0]), float(dv[0])))) for a in acc]
    assert _one_by_one(acc, scale=sc, divisor=dv) == want


def test_conv_saturates_and_overflows() -> None:
    assert _one_by_one([127 * 127, -127 * 128], scale=1.0, out_zp=5) == [127, -128]
    # float32 overflow to +-inf saturates (and so does a huge quotient).
    assert _one_by_one([16129, -16384, 0], scale=3e38) == [127, -128, 0]
    assert _one_by_one([1000, -1000], scale=1.0, divisor=1e-40) == [127, -128]
    assert _one_by_one([3, -3], scale=-1.0) == [-3, 3]


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
        ({"scale": float("nan")}, "invalid parameter: scale = nan is not a finite"),
        ({"scale": np.array([1, 1, np.inf, 1])}, "scale = inf (output channel 2)"),
        ({"divisor": 0.0}, "invalid parameter: divisor is 0"),
        ({"divisor": np.array([1, 2, 0, 1], np.float32)}, "divisor is 0 (output channel 2)"),
        ({"divisor": float("-inf")}, "not a finite float32"),
        ({"scale": 1e39}, "not a finite float32"),
        ({"scale": np.ones(3, np.float32)}, "shape (4,)"),
        ({"scale": None}, "required"),
        ({"act": 4}, "unknown activation"),
        ({"act": Act.TABLE}, "needs the activation table"),
        ({"act": Act.TABLE, "table": np.zeros(255, np.int8)}, "256 entries"),
    ],
)
def test_conv_rejects(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "x": np.zeros((5, 5, 2), np.int8),
        "w": np.zeros((4, 3, 3, 2), np.int8),
        "start": np.zeros(4, np.int32),
        "scale": 1.0,
    }
    args.update(kwargs)
    x, w = args.pop("x"), args.pop("w")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kernels.conv(x, w, **args)


def test_conv_acc_out_ignores_scale() -> None:
    x = np.ones((1, 1, 1), np.int8)
    w = np.ones((1, 1, 1, 1), np.int8)
    got = kernels.conv(x, w, start=np.array([5], np.int32), acc_out=True, divisor=0.0)
    assert got.ravel().tolist() == [6]


def test_out_dims_and_macs() -> None:
    assert kernels.out_dims(224, 224, (7, 7), (2, 2), (3, 3, 3, 3)) == (112, 112)
    assert kernels.out_dims(5, 4, (1, 7), (1, 1), (0, 0, 3, 0)) == (5, 1)
    with pytest.raises(ValueError, match="larger than the padded input"):
        kernels.out_dims(2, 2, (3, 3), (1, 1), (0, 0, 0, 0))
    assert kernels.conv_macs(56, 56, 64, 3, 3, 64, 1) == 56 * 56 * 64 * 9 * 64
    assert kernels.conv_macs(7, 7, 32, 3, 3, 32, 32) == 7 * 7 * 32 * 9


def test_unpack_params() -> None:
    recs = np.zeros(2, PARAM_RECORD_DTYPE)
    recs["bias"] = [5, -9]
    recs["scale"] = [0.1, 2.0**-30]
    recs["divisor"] = [1.0, 0.25]
    raw = recs.view(np.uint8).ravel()
    assert raw.size == 2 * PARAM_RECORD_BYTES
    assert raw[4:8].tobytes() == np.float32(0.1).tobytes()  # little-endian float32 @4
    for src in (raw, recs):
        bias, scale, divisor = kernels.unpack_params(src)
        assert bias.dtype == np.int32 and scale.dtype == np.float32
        assert bias.tolist() == [5, -9]
        assert scale.tolist() == [float(np.float32(0.1)), 2.0**-30]
        assert divisor.tolist() == [1.0, 0.25]
    with pytest.raises(ValueError, match="multiple of 12"):
        kernels.unpack_params(np.zeros(13, np.uint8))
    with pytest.raises(ValueError, match="1-D array"):
        kernels.unpack_params(np.zeros((2, 3), np.int32))


# --------------------------------------------------------------------------- requantize


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 40),
    st.sampled_from(ELTWISE_ACTS),
    st.integers(-128, 127),
    st.integers(-128, 127),
    st.integers(-128, 127),
)
def test_requantize_matches_reference(
    seed: int, n: int, act: Act, zp: int, lo: int, hi: int
) -> None:
    rng = np.random.default_rng(seed)
    bits = int(rng.integers(1, 32))
    acc = rng.integers(-(2**bits), 2**bits, size=(3, n), dtype=np.int64)
    acc = np.clip(acc, -(2**31), 2**31 - 1).astype(np.int32)
    scale = rand_scales(rng, n, 2.0**bits)
    divisor = rand_divisors(rng, n)
    dv = np.broadcast_to(np.asarray(divisor, np.float32), (n,))
    got = kernels.requantize_int8(acc, scale, divisor, out_zp=zp, act=act, act_lo=lo, act_hi=hi)
    exp = [
        [
            ref.act_fn(ref.sat8(zp + ref.rne(ref.requant_conv(a, float(s), float(d)))), act, lo,
                       hi)
            for a, s, d in zip(row.tolist(), scale, dv, strict=True)
        ]
        for row in acc
    ]
    assert got.dtype == np.int8
    assert got.tolist() == exp


def test_requantize_rejects() -> None:
    with pytest.raises(ValueError, match="int32 range"):
        kernels.requantize_int8(np.array([2**31]), 1.0)
    with pytest.raises(ValueError, match="must be integer"):
        kernels.requantize_int8(np.array([1.0]), 1.0)
    with pytest.raises(ValueError, match="divisor is 0"):
        kernels.requantize_int8(np.array([1], np.int32), 1.0, 0.0)


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
        "negative_scale": draw(st.booleans()),
    }


def pool_params(rng: np.random.Generator, case: dict[str, Any]) -> dict[str, Any]:
    """Float32 scales the compiler would emit for ``case``'s mode (random mantissas)."""
    mode = case["mode"]
    if mode is PoolMode.MAX:
        return {"scale": 0.0, "out_scale": 0.0, "in_zp": 0, "out_zp": 0}
    s_in = float(np.float32(2.0 ** rng.uniform(-9, -1) * rng.uniform(1, 2)))
    s_out = float(np.float32(s_in * rng.uniform(0.3, 3)))
    if case["negative_scale"]:
        s_in = -s_in
    zps = {"in_zp": case["in_zp"], "out_zp": case["out_zp"]}
    if mode is PoolMode.GLOBAL_AVG:
        h, w, _ = case["shape"]
        f32 = np.float32
        return {"scale": float(f32(s_in) / f32(f32(s_out) * f32(h * w))), "out_scale": 0.0,
                **zps}
    return {"scale": s_in, "out_scale": s_out, **zps}


@SETTINGS
@given(pool_cases())
def test_pool_matches_reference(case: dict[str, Any]) -> None:
    rng = np.random.default_rng(case["seed"])
    x = int8_tensor(rng, case["shape"], case["fill"])
    args = {k: case[k] for k in ("mode", "kernel", "stride", "pads")}
    args |= pool_params(rng, case)
    try:
        expected = ref.pool(x, **args)
    except ValueError:
        with pytest.raises(ValueError, match="entirely in the padding"):
            kernels.pool(x, **args)
        return
    got = kernels.pool(x, **args)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, expected)


def test_pool_summation_order_is_row_major() -> None:
    # One 3x3 AVG window whose float32 sum taken row by row gives 160 - 128 = 32, but
    # column by column (or exactly, rounded once) 33.
    x = np.array([127, -51, 30, 8, -48, -2, 105, -74, 52], np.int8).reshape(3, 3, 1)
    args: dict[str, Any] = {"mode": PoolMode.AVG, "kernel": (3, 3), "stride": (1, 1),
                            "scale": 0.06510535627603531, "out_scale": 0.08954840153455734,
                            "in_zp": -49, "out_zp": -15}
    got = kernels.pool(x, **args)
    assert got.ravel().tolist() == [32]
    np.testing.assert_array_equal(got, ref.pool(x, pads=(0, 0, 0, 0), **args))
    f32 = np.float32
    e = [f32(f32(int(v) + 49) * f32(args["scale"])) for v in x.ravel()]
    s = f32(0.0)
    for k in (0, 3, 6, 1, 4, 7, 2, 5, 8):  # column-major
        s = f32(s + e[k])
    v = f32(f32(f32(s / f32(9)) / f32(args["out_scale"])) + f32(-15 + 128))
    assert int(np.rint(v)) - 128 == 33


def test_pool_mean_then_output_scale() -> None:
    # m = f32(s / 3), then f32(m / out_scale): 157 - 128 = 29. Dividing once by
    # f32(3 * out_scale) gives 158 - 128 = 30.
    x = np.array([-30, 109, 67], np.int8).reshape(1, 3, 1)
    args: dict[str, Any] = {"mode": PoolMode.AVG, "kernel": (1, 3), "stride": (1, 1),
                            "scale": 0.40514519810676575, "out_scale": 0.16499638557434082,
                            "out_zp": -90}
    got = kernels.pool(x, **args)
    assert got.ravel().tolist() == [29]
    np.testing.assert_array_equal(got, ref.pool(x, pads=(0, 0, 0, 0), in_zp=0, **args))
    f32 = np.float32
    e = [f32(f32(int(v)) * f32(args["scale"])) for v in x.ravel()]
    s = f32(f32(e[0] + e[1]) + e[2])
    folded = f32(f32(s / f32(f32(3) * f32(args["out_scale"]))) + f32(-90 + 128))
    assert int(np.rint(folded)) - 128 == 30


def test_pool_padding_never_wins_and_rounding() -> None:
    x = np.full((2, 2, 1), -100, np.int8)
    got = kernels.pool(x, mode=PoolMode.MAX, kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1))
    assert (got == -100).all() and got.shape == (2, 2, 1)
    # AVG excludes padding from the count, AVG_PAD includes it: 4 * 5 / 4 = 5 vs 20 / 9.
    x = np.full((2, 2, 1), 5, np.int8)
    kw: dict[str, Any] = {"kernel": (3, 3), "stride": (1, 1), "pads": (1, 1, 1, 1),
                          "scale": 1.0, "out_scale": 1.0}
    assert (kernels.pool(x, mode=PoolMode.AVG, **kw) == 5).all()
    assert (kernels.pool(x, mode=PoolMode.AVG_PAD, **kw) == 2).all()  # 20/9 = 2.22
    # The output zero point is added before rounding (biased): m / out_scale = 2.5 with
    # out_zp -128 gives rne(2.5) - 128 = -126, with out_zp -127: rne(3.5) - 128 = -124.
    x = np.full((1, 2, 1), 5, np.int8)
    kw = {"kernel": (1, 2), "stride": (1, 1), "scale": 1.0, "out_scale": 2.0}
    assert kernels.pool(x, mode=PoolMode.AVG, out_zp=-128, **kw).ravel().tolist() == [-126]
    assert kernels.pool(x, mode=PoolMode.AVG, out_zp=-127, **kw).ravel().tolist() == [-124]
    # Global average with a tie: (1 + 2) * 0.5 = 1.5 -> 2, (1 + 0) * 0.5 = 0.5 -> 0.
    x = np.array([[[1, 1]], [[2, 0]]], np.int8)
    got = kernels.pool(x, mode=PoolMode.GLOBAL_AVG, scale=0.5)
    assert got.ravel().tolist() == [2, 0]


def test_global_avg_large_tile_rounds_the_sum_once() -> None:
    # 3000 x 3000 elements of 255 (x = 127, in_zp = -128): acc = 2_295_000_000 is exact
    # in the kernel; f32(acc) = 2_295_000_064. scale = 2**-24 makes 136.79 -> 137 - 128.
    x = np.full((3000, 3000, 1), 127, np.int8)
    acc = 3000 * 3000 * 255
    got = kernels.pool(x, mode=PoolMode.GLOBAL_AVG, scale=2.0**-24, in_zp=-128, out_zp=-128)
    want = ref.sat8(-128 + ref.rne(ref.mul(ref.f32(acc), 2.0**-24)))
    assert got.ravel().tolist() == [want] == [9]
    # With a scale that puts the exact and the float32 product on opposite sides of a
    # half: f32(acc) * s == 137.5 exactly (tie -> 138), acc * s < 137.5 (-> 137).
    s = float(np.float32(137.5 / 2_295_000_064))
    v = ref.mul(ref.f32(acc), s)
    got = kernels.pool(x, mode=PoolMode.GLOBAL_AVG, scale=s, in_zp=-128, out_zp=-128)
    assert got.ravel().tolist() == [ref.sat8(-128 + ref.rne(v))]


def test_pool_rejects() -> None:
    x = np.zeros((3, 3, 2), np.int8)
    win: dict[str, Any] = {"kernel": (2, 2), "stride": (1, 1)}
    with pytest.raises(ValueError, match="entirely in the padding"):
        kernels.pool(x, mode=PoolMode.MAX, pads=(2, 0, 0, 0), **win)
    with pytest.raises(ValueError, match="global_avg"):
        kernels.pool(x, mode=PoolMode.GLOBAL_AVG, kernel=(3, 3), stride=(1, 1))
    with pytest.raises(ValueError, match="unknown pool mode"):
        kernels.pool(x, mode=7, **win)
    with pytest.raises(ValueError, match="max pooling uses no scale"):
        kernels.pool(x, mode=PoolMode.MAX, scale=0.5, **win)
    with pytest.raises(ValueError, match="max pooling uses no scale"):
        kernels.pool(x, mode=PoolMode.MAX, in_zp=3, **win)
    with pytest.raises(ValueError, match="non-zero out_scale"):
        kernels.pool(x, mode=PoolMode.AVG, scale=0.5, **win)
    with pytest.raises(ValueError, match="uses no out_scale"):
        kernels.pool(x, mode=PoolMode.GLOBAL_AVG, scale=0.5, out_scale=1.0)
    with pytest.raises(ValueError, match="scale = nan"):
        kernels.pool(x, mode=PoolMode.AVG, scale=float("nan"), out_scale=1.0, **win)
    with pytest.raises(ValueError, match="out_scale = inf"):
        kernels.pool(x, mode=PoolMode.AVG, scale=1.0, out_scale=float("inf"), **win)
    mixed = np.array([[[-100], [100]]], np.int8)
    with pytest.raises(ValueError, match="NaN"):
        kernels.pool(mixed, mode=PoolMode.AVG, kernel=(1, 2), stride=(1, 1), scale=3e38,
                     out_scale=1.0)


# --------------------------------------------------------------------------- ELTWISE


def eltwise_params(rng: np.random.Generator, zps: tuple[int, ...], raw_offset: bool
                   ) -> dict[str, float]:
    """scale_a/scale_b as the compiler derives them (random float32 ratios, one sometimes
    negative or zero) and the folded offset, or an arbitrary offset."""
    s_a, s_b = (float(np.float32(2.0 ** rng.uniform(-2, 1) * rng.uniform(1, 2)))
                for _ in range(2))
    if rng.random() < 0.2:
        s_b = -s_b if rng.random() < 0.5 else 0.0
    off = (float(np.float32(rng.uniform(-400, 400))) if raw_offset
           else eltwise_offset(s_a, s_b, zps[0], zps[1], zps[2]))
    return {"scale_a": s_a, "scale_b": s_b, "offset": off}


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 300),
    st.sampled_from(ELTWISE_ACTS),
    st.tuples(*(st.integers(-128, 127) for _ in range(5))),
    st.booleans(),
    st.booleans(),
)
def test_eltwise_matches_reference(
    seed: int, n: int, act: Act, zps: tuple[int, ...], use_lut: bool, raw_offset: bool
) -> None:
    rng = np.random.default_rng(seed)
    fill = ["uniform", "extreme", "small"][int(rng.integers(0, 3))]
    a = int8_tensor(rng, (n,), fill)
    b = int8_tensor(rng, (n,), fill)
    args: dict[str, Any] = eltwise_params(rng, zps, raw_offset)
    args |= {"act": act, "act_lo": zps[3], "act_hi": zps[4]}
    with patched(ELTWISE_LUT_MIN=1 if use_lut else 10**9):
        got = kernels.eltwise_add(a, b, **args)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, ref.eltwise_add(a, b, **args))


def test_eltwise_fma_rounds_once() -> None:
    # fma(a+128, sa, fma(b+128, sb, off)) = 148.50001525878906 -> 149 - 128 = 21; rounding
    # the products separately gives exactly 148.5 -> 148 - 128 = 20.
    sa, sb, off = 0.9141859412193298, 1.4405564069747925, -163.96009826660156
    a, b = np.array([31], np.int8), np.array([-12], np.int8)
    args = {"scale_a": sa, "scale_b": sb, "offset": off}
    assert kernels.eltwise_add(a, b, **args).tolist() == [21]
    assert ref.eltwise_add(a, b, act=0, act_lo=-128, act_hi=127, **args).tolist() == [21]
    f32 = np.float32
    inner = f32(f32(f32(116) * f32(sb)) + f32(off))
    two = f32(f32(f32(159) * f32(sa)) + inner)
    assert int(np.rint(two)) - 128 == 20


def test_eltwise_lut_all_pairs() -> None:
    vals = np.arange(-128, 128, dtype=np.int8)
    a, b = np.repeat(vals, 256), np.tile(vals, 256)
    sa, sb = 0.7071067690849304, 0.30000001192092896
    args: dict[str, Any] = {"scale_a": sa, "scale_b": sb,
                            "offset": eltwise_offset(sa, sb, -3, 7, 2), "act": Act.RELU,
                            "act_lo": 2, "act_hi": 127}
    got = kernels.eltwise_add(a, b, **args)  # 65536 elements: table path
    idx = np.random.default_rng(0).integers(0, a.size, 2000)
    np.testing.assert_array_equal(got[idx], ref.eltwise_add(a[idx], b[idx], **args))
    with patched(ELTWISE_LUT_MIN=10**9):
        np.testing.assert_array_equal(kernels.eltwise_add(a, b, **args), got)


def test_eltwise_rejects() -> None:
    a = np.zeros(4, np.int8)
    ok = {"scale_a": 1.0, "scale_b": 1.0, "offset": 0.0}
    with pytest.raises(ValueError, match="differ in shape"):
        kernels.eltwise_add(a, np.zeros(5, np.int8), **ok)
    with pytest.raises(ValueError, match="int8"):
        kernels.eltwise_add(a, a.astype(np.int16), **ok)
    with pytest.raises(ValueError, match="invalid parameter: offset = nan"):
        kernels.eltwise_add(a, a, **(ok | {"offset": float("nan")}))
    with pytest.raises(ValueError, match="scale_a = inf"):
        kernels.eltwise_add(a, a, **(ok | {"scale_a": float("inf")}))


def test_reference_is_independent() -> None:
    """The reference must not reuse the code under test (nor the vectorised FMA)."""
    import inspect

    imports = [
        line for line in inspect.getsource(ref).splitlines() if line.startswith(("import", "from"))
    ]
    assert imports and not any("emulator" in line or "fma_f32" in line for line in imports)


def test_eltwise_rejects_act_table() -> None:
    a = np.zeros(4, np.int8)
    with pytest.raises(ValueError, match="CONV only"):
        kernels.eltwise_add(a, a, scale_a=1.0, scale_b=1.0, offset=0.0, act=Act.TABLE)
    with pytest.raises(ValueError, match="CONV only"):
        kernels.eltwise_table(scale_a=1.0, scale_b=1.0, offset=0.0, act=Act.TABLE)


@pytest.mark.parametrize("op", [EltOp.MUL, EltOp.SUB])
@pytest.mark.parametrize("period", [0, 8])
@pytest.mark.parametrize("use_lut", [False, True])
def test_eltwise_mul_sub_match_reference(op: EltOp, period: int, use_lut: bool) -> None:
    """ISA v3 ELTWISE mul / sub, same shape and per-channel broadcast (``b_period``),
    direct and table paths, against the independent reference."""
    rng = np.random.default_rng(int(op) * 10 + period)
    for _ in range(6):
        n = 8 * int(rng.integers(1, 40))
        a = rng.integers(-128, 128, n).astype(np.int8)
        b = rng.integers(-128, 128, period or n).astype(np.int8)
        sa, sb, so = (float(np.float32(v)) for v in rng.uniform(0.001, 0.2, 3))
        a_zp, b_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 3))
        act = int(rng.integers(0, 3))
        args: dict[str, Any] = dict(op=op, scale_a=sa, scale_b=sb, a_zp=a_zp, b_zp=b_zp,
                                    out_zp=out_zp, out_scale=so * (-1 if rng.random() < 0.2
                                                                    else 1),
                                    b_period=period, act=act, act_lo=out_zp, act_hi=127)
        if op == EltOp.MUL:  # one ratio f32(f32(s_a * s_b) / s_out) in scale_a
            args |= dict(scale_a=float(np.float32(sa * sb / so) * 50), scale_b=0.0,
                         out_scale=0.0)
        with patched(ELTWISE_LUT_MIN=1 if use_lut else 10**9):
            got = kernels.eltwise(a, b, offset=0.0, **args)
        np.testing.assert_array_equal(got, ref.eltwise_mul_sub(a, b, **args))


def test_eltwise_mul_sub_rejects() -> None:
    a = np.zeros(8, np.int8)
    ok: dict[str, Any] = dict(op=EltOp.SUB, scale_a=1.0, scale_b=1.0, out_scale=1.0)
    kernels.eltwise(a, a, **ok)
    with pytest.raises(ValueError, match="non-zero out_scale"):
        kernels.eltwise(a, a, **(ok | {"out_scale": 0.0}))
    with pytest.raises(ValueError, match="needs offset = 0"):
        kernels.eltwise(a, a, **(ok | {"offset": 1.0}))
    mul: dict[str, Any] = dict(op=EltOp.MUL, scale_a=0.5)
    kernels.eltwise(a, a, **mul)
    for k in ("scale_b", "offset", "out_scale"):
        with pytest.raises(ValueError, match="op=mul scales the product by scale_a alone"):
            kernels.eltwise(a, a, **(mul | {k: 1.0}))
    with pytest.raises(ValueError, match="must be 0"):
        kernels.eltwise(a, a, op=EltOp.ADD, scale_a=1.0, scale_b=1.0, offset=0.0, out_zp=3)
    with pytest.raises(ValueError, match="b_period = 3"):
        kernels.eltwise(a, np.zeros(3, np.int8), b_period=3, **ok)
    with pytest.raises(ValueError, match="unknown eltwise op"):
        kernels.eltwise(a, a, **(ok | {"op": 3}))
