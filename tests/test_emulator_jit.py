"""The compiled kernels of ``vfpga.emulator.jit`` compute exactly what the numpy code
computes: the CONV output stage (start added with int32 wrap-around, float32 scale and
divisor, clamp, round half to even, zero point), the int32 accumulation, and the ELTWISE
table lookup; the numpy fallback is used when they are disabled or numba is missing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vfpga.emulator import jit, kernels

JK = jit.get()
pytestmark = pytest.mark.skipif(
    JK is None, reason=f"compiled kernels unavailable here: {jit.unavailable_reason()}")

#: scales that make ties (x.5), overflow to inf, underflow to 0, and ordinary values
_SCALES = [0.5, 0.25, 1.5, 1e-3, 3.0517578125e-05, 1e30, 1e-42, -0.5, -7.25e-4]


def _finish(geo: kernels.ConvGeometry, prod: np.ndarray, start: np.ndarray, *,
            acc_out: bool, scale: np.ndarray | None, divisor: np.ndarray | None, zp: int,
            bounds: tuple[int, int], use_jit: bool, monkeypatch: pytest.MonkeyPatch
            ) -> np.ndarray:
    out = np.zeros((geo.oh, geo.ow, geo.out_c), np.int32 if acc_out else np.int8)
    with monkeypatch.context() as m, np.errstate(over="ignore", under="ignore"):
        if not use_jit:
            m.setattr(jit, "get", lambda: None)
        kernels.conv_int8_finish(geo, prod.copy(), start, out, acc_out=acc_out, scale=scale,
                                 divisor=divisor, out_zp=zp, bounds=bounds)
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.sampled_from([1, 2, 3]), m=st.integers(1, 40), ng=st.integers(1, 12),
       per_row=st.booleans(), has_div=st.booleans(), acc_out=st.booleans(),
       zp=st.integers(-128, 127), lo=st.integers(-128, 127), hi=st.integers(-128, 127),
       scale_pick=st.lists(st.sampled_from(_SCALES), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_output_stage_equals_numpy(groups: int, m: int, ng: int, per_row: bool,
                                   has_div: bool, acc_out: bool, zp: int, lo: int, hi: int,
                                   scale_pick: list[float], seed: int,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    n = groups * ng
    geo = kernels.conv_geometry((1, m, 2 * groups), (n, 1, 1, 2), groups=groups)
    # full-range sums and starts: prod + start wraps modulo 2**32; small sums make ties
    prod = rng.integers(-2**31, 2**31, (groups, m, ng), dtype=np.int64).astype(np.int32)
    prod[..., ::2] = rng.integers(-300, 300, prod[..., ::2].shape)
    start = rng.integers(-2**31, 2**31, (geo.oh, geo.ow, n) if per_row else (n,),
                         dtype=np.int64).astype(np.int32)
    if not per_row:
        start[::3] = rng.integers(-3, 3, start[::3].shape)
    scale = np.array([scale_pick[i % len(scale_pick)] for i in range(n)], np.float32)
    divisor = (rng.choice(np.array([0.5, 3.0, 1e-30, -2.0, 7.0], np.float32), n)
               if has_div else None)
    bounds = (min(lo, hi), max(lo, hi))
    kw = dict(acc_out=acc_out, scale=None if acc_out else scale, divisor=divisor, zp=zp,
              bounds=bounds, monkeypatch=monkeypatch)
    want = _finish(geo, prod, start, use_jit=False, **kw)
    got = _finish(geo, prod, start, use_jit=True, **kw)
    np.testing.assert_array_equal(got, want)


def test_output_stage_rounds_half_to_even(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every accumulator in [-600, 600) times 0.5 and 0.25: all the ties of int8 rounding."""
    acc = np.arange(-600, 600, dtype=np.int32)
    geo = kernels.conv_geometry((1, acc.size, 1), (2, 1, 1, 1))
    prod = np.stack([acc, acc], axis=1).reshape(1, acc.size, 2)
    start = np.zeros(2, np.int32)
    scale = np.array([0.5, 0.25], np.float32)
    got = _finish(geo, prod, start, acc_out=False, scale=scale, divisor=None, zp=3,
                  bounds=(-128, 127), use_jit=True, monkeypatch=monkeypatch)
    want = np.clip(np.rint(acc[:, None].astype(np.float32) * scale) + 3, -128, 127)
    np.testing.assert_array_equal(got.reshape(-1, 2), want.astype(np.int8))
    assert got.reshape(-1, 2)[600 + 1, 0] == 3  # 0.5 -> 0 (even), not 1
    assert got.reshape(-1, 2)[600 + 3, 0] == 5  # 1.5 -> 2


def test_lookup_equals_take() -> None:
    rng = np.random.default_rng(7)
    table = rng.integers(-128, 128, 65536, dtype=np.int8)
    a = np.repeat(np.arange(-128, 128, dtype=np.int8), 256)
    b = np.tile(np.arange(-128, 128, dtype=np.int8), 256)
    out = np.empty_like(a)
    JK.lookup(table, a, b, out)  # type: ignore[union-attr]
    want = table[(a.view(np.uint8).astype(np.int64) << 8) | b.view(np.uint8)]
    np.testing.assert_array_equal(out, want)
    assert sorted(set(zip(a.tolist(), b.tolist(), strict=True))) == sorted(
        (x, y) for x in range(-128, 128) for y in range(-128, 128))  # every pair once


def test_act_lookup_equals_take() -> None:
    """CONV's TABLE activation, compiled: every int8 code, on a contiguous tile and (numpy
    path) on a strided view."""
    from vfpga.emulator import kernels

    rng = np.random.default_rng(8)
    table = rng.integers(-128, 128, 256, dtype=np.int8)
    x = np.tile(np.arange(-128, 128, dtype=np.int8), 3).reshape(2, 3, 128)
    want = table[x.astype(np.int64) + 128]
    got = x.copy()
    JK.act_lookup(table, got.reshape(-1))  # type: ignore[union-attr]
    np.testing.assert_array_equal(got, want)
    got = x.copy()
    kernels.apply_act_table(got, table)
    np.testing.assert_array_equal(got, want)
    big = np.zeros((2, 3, 256), np.int8)
    big[:, :, ::2] = x
    kernels.apply_act_table(big[:, :, ::2], table)  # not contiguous: numpy's take
    np.testing.assert_array_equal(big[:, :, ::2], want)


def _probe(env: dict[str, str], prelude: str = "") -> str:
    code = (f"{prelude}from vfpga.emulator import jit\n"
            "k = jit.get()\nprint(k is None, jit.unavailable_reason())")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return res.stdout.strip()


def test_switch_and_missing_numba_fall_back_to_numpy() -> None:
    assert _probe({jit.ENV_DISABLE: "0"}) == f"True disabled by {jit.ENV_DISABLE}=0"
    out = _probe({}, "import sys\nsys.modules['numba'] = None\n")
    assert out.startswith("True numba kernels unavailable: ModuleNotFoundError"), out


def _f32(bits: int) -> np.float32:
    return np.array([bits], np.uint32).view(np.float32)[0]


@pytest.mark.parametrize(("acc", "scale", "divisor"), [
    (357321957, 0x332244B5, None),  # f32 product 13.5, exact product 13.4999996
    (-1829467056, 0x33C6F6D7, None),  # -169.5 vs -169.4999974
    (2134598613, 0x33B36758, 0x3F38739E),  # quotient 247.5 vs 247.4999946
    (-1644231324, 0x339C427A, 0x3F656C85),  # -133.5 vs -133.4999939
])
def test_output_stage_rounds_in_float32(acc: int, scale: int, divisor: int | None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Operands whose float32 product (or quotient) is a tie that the exact (float64)
    value is not: a kernel computing in float64 would round the other way."""
    geo = kernels.conv_geometry((1, 1, 1), (1, 1, 1, 1))
    sc = np.array([_f32(scale)], np.float32)
    dv = None if divisor is None else np.array([_f32(divisor)], np.float32)
    v = np.float32(np.float32(acc) * sc[0])
    if dv is not None:
        v = np.float32(v / dv[0])
    assert v == np.floor(v) + np.float32(0.5)  # a float32 tie, rounded to even below
    exact = float(np.float32(acc)) * float(sc[0]) / (1.0 if dv is None else float(dv[0]))
    assert np.rint(exact) != np.rint(v)
    zp = int(np.clip(-np.trunc(v), -127, 127))  # brings the result into the int8 range
    want = int(np.rint(v)) + zp
    assert -128 < want < 127
    for use_jit in (True, False):
        got = _finish(geo, np.array([[[acc]]], np.int32), np.zeros(1, np.int32),
                      acc_out=False, scale=sc, divisor=dv, zp=zp, bounds=(-128, 127),
                      use_jit=use_jit, monkeypatch=monkeypatch)
        assert int(got.ravel()[0]) == want, use_jit


def _pool(x: np.ndarray, use_jit: bool, monkeypatch: pytest.MonkeyPatch,
          **kw: object) -> np.ndarray | str:
    """``kernels.pool`` with or without the compiled kernels: the int8 result, or the
    error message."""
    with monkeypatch.context() as m:
        if not use_jit:
            m.setattr(jit, "get", lambda: None)
        try:
            return kernels.pool(x, **kw)  # type: ignore[arg-type]
        except ValueError as exc:
            return str(exc)


#: pool scales: ordinary, ties, subnormal products, overflow to inf (NaN sums of mixed
#: signs), negative
_POOL_SCALES = [0.0625, 0.5, 0.037, 1e-3, 1e-44, 3e38, -0.25, 1.0]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from([0, 1, 2]), h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.integers(1, 7), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), pads=st.tuples(*[st.integers(0, 3)] * 4),
       scale=st.sampled_from(_POOL_SCALES), osc=st.sampled_from([0.5, 0.1, 1e-30, 7.0, -1.0]),
       in_zp=st.integers(-128, 127), out_zp=st.integers(-128, 127),
       seed=st.integers(0, 2**32 - 1))
def test_pool_equals_numpy(mode: int, h: int, w: int, c: int, kh: int, kw: int, sh: int,
                           sw: int, pads: tuple[int, int, int, int], scale: float, osc: float,
                           in_zp: int, out_zp: int, seed: int,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """POOL MAX / AVG_PAD / AVG, compiled and numpy: the same int8 outputs, or the same
    error (windows entirely in the padding, NaN sums), on random tiles and geometries."""
    from vfpga.isa.spec import PoolMode

    md = [PoolMode.MAX, PoolMode.AVG_PAD, PoolMode.AVG][mode]
    x = np.random.default_rng(seed).integers(-128, 128, (h, w, c), dtype=np.int8)
    x[0, 0, 0] = -128
    x[-1, -1, -1] = 127
    kw_: dict[str, object] = dict(mode=md, kernel=(kh, kw), stride=(sh, sw), pads=pads)
    if md is not PoolMode.MAX:
        kw_.update(scale=scale, out_scale=osc, in_zp=in_zp, out_zp=out_zp)
    if (h + pads[0] + pads[1] < kh) or (w + pads[2] + pads[3] < kw):
        return  # no output position: both reject the geometry
    want = _pool(x, False, monkeypatch, **kw_)
    got = _pool(x, True, monkeypatch, **kw_)
    if isinstance(want, str):
        assert got == want
    else:
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    c=st.integers(1, 20),
    mult=st.sampled_from([1, 2]),
    k=st.sampled_from([(1, 1), (3, 3), (5, 5), (3, 1)]),
    s=st.sampled_from([(1, 1), (2, 2)]),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    pad=st.integers(-128, 127),
    has_div=st.booleans(),
    zp=st.integers(-128, 127),
    scale_pick=st.lists(st.sampled_from(_SCALES), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_fused_depthwise_equals_depthwise_then_requant(
    h: int,
    w: int,
    c: int,
    mult: int,
    k: tuple[int, int],
    s: tuple[int, int],
    pads: tuple[int, int, int, int],
    pad: int,
    has_div: bool,
    zp: int,
    scale_pick: list[float],
    seed: int,
) -> None:
    """``depthwise_requant`` gives the bytes of ``depthwise`` followed by ``requant`` (start
    = the biases), ties, overflow to inf and wrapping biases included."""
    assert JK is not None
    t, b, lf, r = pads
    oh, ow = (h + t + b - k[0]) // s[0] + 1, (w + lf + r - k[1]) // s[1] + 1
    if oh < 1 or ow < 1:
        return
    rng = np.random.default_rng(seed)
    oc = c * mult
    x = rng.integers(-128, 128, (h, w, c), dtype=np.int8)
    wt = rng.integers(-128, 128, (k[0] * k[1], oc)).astype(np.int32)
    bias = rng.integers(-(2**31), 2**31, (1, oc)).astype(np.int32)
    scale = np.resize(np.array(scale_pick, np.float32), oc)
    div = rng.choice(np.array([1.0, 3.0, 0.5, 7.0], np.float32), oc) if has_div else scale
    lo, hi = np.float32(-128 - zp), np.float32(127 - zp)
    acc = np.empty((oh, ow, oc), np.int32)
    JK.depthwise(x, pad, wt, k[0], k[1], s[0], s[1], t, lf, acc)
    want = np.empty((oh * ow, oc), np.int8)
    with np.errstate(over="ignore", under="ignore"):
        JK.requant(acc.reshape(1, oh * ow, oc), bias, False, scale, div, has_div, lo, hi, zp, want)
        got = np.empty((oh, ow, oc), np.int8)
        JK.depthwise_requant(
            x, pad, wt, k[0], k[1], s[0], s[1], t, lf, bias, scale, div, has_div, lo, hi, zp, got
        )
    np.testing.assert_array_equal(got.reshape(oh * ow, oc), want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 7),
    w=st.integers(1, 140),
    c=st.sampled_from([2, 3, 8, 16, 24, 64, 65, 128]),
    k=st.sampled_from([(3, 3), (1, 1), (5, 5), (3, 1), (1, 4)]),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    pad=st.integers(-128, 127),
    seed=st.integers(0, 2**32 - 1),
)
def test_depthwise_blocks_equal_numpy(
    h: int, w: int, c: int, k: tuple[int, int], s: tuple[int, int],
    pads: tuple[int, int, int, int], pad: int, seed: int,
) -> None:
    """The compiled depthwise sums (blocks of output columns up to
    ``jit.DW_BLOCK_MAX_C`` channels, wide rows cut into several blocks; one pixel at a time
    above) equal the numpy float32 path's, exact, and ``depthwise_requant`` equals the
    numpy output stage over them (strides 1-3 with column phases, padding on every side)."""
    _check_depthwise(h, w, c, k, s, pads, pad, seed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(3, 12),
    w=st.integers(3, 120),
    c=st.sampled_from([2, 3, 8, 16, 17, 32, 64, 100, 256]),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad=st.integers(-128, 127),
    seed=st.integers(0, 2**32 - 1),
)
def test_depthwise_inside_windows_equal_numpy(
    h: int, w: int, c: int, s: tuple[int, int], pad: int, seed: int,
) -> None:
    """3x3 windows that all lie inside the tile (no padding: the CONVs of tiles the LOADs
    padded) run whole rows on the compiled row kernel (``dw33_run``), every channel count
    and stride: the same sums and output bytes as the numpy path."""
    _check_depthwise(h, w, c, (3, 3), s, (0, 0, 0, 0), pad, seed)


def _check_depthwise(h: int, w: int, c: int, k: tuple[int, int], s: tuple[int, int],
                     pads: tuple[int, int, int, int], pad: int, seed: int) -> None:
    assert JK is not None
    t, b, lf, r = pads
    if h + t + b < k[0] or w + lf + r < k[1]:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (h, w, c), dtype=np.int8)
    wts = rng.integers(-128, 128, (c, k[0], k[1], 1), dtype=np.int8)
    bias = rng.integers(-(2**20), 2**20, c).astype(np.int32)
    geo = dict(stride=s, pads=pads, pad_value=pad, groups=c)
    want = kernels.conv(x, wts, start=bias, acc_out=True, **geo)
    old = kernels._USE_JIT_DEPTHWISE
    kernels._USE_JIT_DEPTHWISE = False
    try:
        assert kernels.conv_geometry(x.shape, wts.shape, stride=s, pads=pads,
                                     groups=c).path == "depthwise"
        numpy_sums = kernels.conv(x, wts, start=bias, acc_out=True, **geo)
        numpy_out = kernels.conv(x, wts, start=bias, scale=np.float32(0.37), out_zp=5, **geo)
    finally:
        kernels._USE_JIT_DEPTHWISE = old
    np.testing.assert_array_equal(want, numpy_sums)
    oh, ow = want.shape[:2]
    wt = np.ascontiguousarray(wts.reshape(c, -1).T, dtype=np.int32)
    acc = np.empty((oh, ow, c), np.int32)
    JK.depthwise(x, pad, wt, k[0], k[1], s[0], s[1], t, lf, acc)
    np.testing.assert_array_equal(acc + bias, numpy_sums)
    got = np.empty((oh, ow, c), np.int8)
    sc = np.full(c, 0.37, np.float32)
    JK.depthwise_requant(x, pad, wt, k[0], k[1], s[0], s[1], t, lf, bias.reshape(1, -1), sc,
                         sc, False, np.float32(-128 - 5), np.float32(127 - 5), 5, got)
    np.testing.assert_array_equal(got, numpy_out)
