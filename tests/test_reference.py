"""The golden reference: float32 requantization steps against exact rational models
(``round_f32`` of every step), node semantics against naive loops over Python integers and
Fractions, and bit-exact agreement with ONNX Runtime on QDQ models."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qdq_models import classifier, normal_inputs, quantize_qdq

from vfpga.frontend.qdq_lower import lower_qdq, lower_qdq_mapped
from vfpga.frontend.qgraph import Act, QAdd, QConv, QGraph, QPool, QTensor
from vfpga.isa.float32 import requant_scale, round_f32
from vfpga.reference import ReferenceError, run_reference
from vfpga.reference.arith import (
    add_requant,
    conv_requant,
    global_avg_scale,
    quantize_input,
    requant_scales,
    round_sat8,
)
from vfpga.reference.compare import compare_layers, compare_with_ort, cosine
from vfpga.reference.executor import run_add, run_conv, run_pool

INF = math.inf


def _f(x: Fraction | int | float) -> Fraction | float:
    """``f32(x)`` of an exact value as a Fraction (or +-inf on overflow)."""
    r = round_f32(Fraction(x))
    return r if math.isinf(r) else Fraction(r)


def _sat_rne(v: Fraction | float, zp: int = 0) -> int:
    """``sat8(zp + rne(v))`` (Python rounds Fractions half to even)."""
    if isinstance(v, float) and math.isinf(v):
        return 127 if v > 0 else -128
    return min(max(zp + round(v), -128), 127)


def _act(v: int, act: Act) -> int:
    if act.kind in ("relu", "relu6"):
        v = max(v, act.lo)
    if act.kind == "relu6":
        v = min(v, act.hi)
    return v


def _conv_out(acc: int, m: int, s: int, divisor: float, out_zp: int) -> int:
    """``sat8(out_zp + rne(f32(f32(f32(acc) * f32(m / 2**s)) / divisor)))``, exactly."""
    p = _f(Fraction(_f(acc)) * Fraction(requant_scale(m, s)))
    v = p if isinstance(p, float) else _f(p / Fraction(divisor))
    return _sat_rne(v, out_zp)


def _fma(a: Fraction, b: Fraction, c: Fraction | float) -> Fraction | float:
    return _f(a * b + c)


# ---- arithmetic --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 62))
def test_requant_scales_is_requant_scale(m: int, s: int) -> None:
    got = requant_scales(np.array([m, m]), np.array([s, s]))
    assert got.dtype == np.float32 and float(got[0]) == requant_scale(m, s)


def test_requant_scales_rejects_out_of_range_operands() -> None:
    with pytest.raises(ValueError, match="multiplier"):
        requant_scales([1 << 31], [0])
    with pytest.raises(ValueError, match="shift"):
        requant_scales([1], [63])


def test_round_sat8_ties_to_even_and_saturates_infinities() -> None:
    v = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 200.0, -1e30, INF, -INF], np.float32)
    np.testing.assert_array_equal(round_sat8(v, 0), [0, 2, 2, 0, -2, 127, -128, 127, -128])
    np.testing.assert_array_equal(round_sat8(np.float32([126.5, -127.5]), 1), [127, -127])
    with pytest.raises(ValueError, match="NaN"):
        round_sat8(np.float32([np.nan]), 0)


_F32S = st.floats(
    min_value=2.0**-40, max_value=2.0**20, allow_nan=False, allow_infinity=False, width=32
)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(-(2**31) + 1, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    st.integers(0, 62),
    _F32S,
    st.integers(-128, 127),
)
def test_conv_requant_is_the_float32_steps(
    acc: int, m: int, s: int, divisor: float, zp: int
) -> None:
    scale = requant_scales([m], [s])
    got = int(conv_requant(np.array([acc]), scale, divisor, zp)[0])
    assert got == _conv_out(acc, m, s, divisor, zp)


def test_conv_requant_rounds_acc_to_float32_first() -> None:
    # 2**24 + 1 is not a float32: f32(acc) = 2**24, then * 2**-24 = 1.0 exactly
    acc = np.array([(1 << 24) + 1, (1 << 24) + 3], np.int64)
    got = conv_requant(acc, np.float32(2.0**-24), 1.0, 0)
    np.testing.assert_array_equal(got, [1, 1])  # (2**24 + 4) * 2**-24 = 1.0000002 -> 1


@settings(max_examples=400, deadline=None)
@given(
    st.integers(-128, 127),
    st.integers(-128, 127),
    st.floats(2.0**-14, 64.0, width=32),
    st.floats(2.0**-14, 64.0, width=32),
    st.integers(-128, 127),
    st.integers(-128, 127),
    st.integers(-128, 127),
)
def test_add_requant_is_the_fma_steps(
    a: int, b: int, sa: float, sb: float, a_zp: int, b_zp: int, out_zp: int
) -> None:
    got = int(add_requant(np.array([a]), np.array([b]), sa, sb, a_zp, b_zp, out_zp)[0])
    fa, fb = Fraction(sa), Fraction(sb)
    za, zb, zc = a_zp + 128, b_zp + 128, out_zp + 128
    offset = _f(zc - Fraction(_fma(fa, Fraction(za), _f(fb * zb))))
    v = _fma(Fraction(a + 128), fa, _fma(Fraction(b + 128), fb, offset))
    assert got == _sat_rne(v, -128)


def test_global_avg_scale_is_orts() -> None:
    s_in, s_out = float(np.float32(0.0731)), float(np.float32(0.0117))
    expect = _f(Fraction(s_in) / _f(Fraction(s_out) * 49))
    assert Fraction(float(global_avg_scale(s_in, s_out, 49))) == expect


def test_input_quantization_matches_quantize_linear() -> None:
    x = np.array([0.25, 0.75, -0.25, 100.0, -100.0, 0.5], dtype=np.float32)
    # x / 0.5: 0.5 -> 0 (even), 1.5 -> 2, -0.5 -> 0; saturation at the ends
    np.testing.assert_array_equal(quantize_input(x, 0.5, 1), [1, 3, 1, 127, -128, 2])


# ---- nodes against naive loops -----------------------------------------------------------


def _naive_conv(x: np.ndarray, zp: int, n: QConv) -> np.ndarray:
    oc, cig, kh, kw = n.weight.shape
    nb, _, h, w = x.shape
    t, left, b, r = n.pads
    oh = (h + t + b - kh) // n.strides[0] + 1
    ow = (w + left + r - kw) // n.strides[1] + 1
    out = np.zeros((nb, oc, oh, ow), dtype=object)
    ocg = oc // n.groups
    for bi in range(nb):
        for o in range(oc):
            g = o // ocg
            for y in range(oh):
                for xx in range(ow):
                    acc = int(n.bias[o])
                    for ci in range(cig):
                        for i in range(kh):
                            for j in range(kw):
                                iy = y * n.strides[0] + i - t
                                ix = xx * n.strides[1] + j - left
                                if 0 <= iy < h and 0 <= ix < w:
                                    v = int(x[bi, g * cig + ci, iy, ix]) - zp
                                    acc += v * int(n.weight[o, ci, i, j])
                    out[bi, o, y, xx] = acc
    return out


def _naive_requant(acc: np.ndarray, n: QConv, out_zp: int) -> np.ndarray:
    res = np.zeros(acc.shape, dtype=np.int64)
    for idx in np.ndindex(acc.shape):
        o = idx[1]
        v = _conv_out(int(acc[idx]), int(n.multiplier[o]), int(n.shift[o]), n.divisor, out_zp)
        res[idx] = _act(v, n.act)
    return res


@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "pads", "groups", "act", "divisor"),
    [
        (3, 5, 3, 1, (1, 1, 1, 1), 1, Act(), 1.0),
        (4, 6, 3, 2, (0, 1, 2, 1), 2, Act("relu", -7, 127), 1.0),
        (4, 8, 3, 2, (1, 1, 1, 1), 4, Act("relu6", -100, 40), 0.75),  # depthwise x2
        (6, 6, 5, 1, (2, 2, 2, 2), 6, Act(), float(np.float32(0.0117))),  # depthwise
        (70, 3, 3, 1, (1, 1, 1, 1), 1, Act(), 1.0),  # K = 630 > 512: chunked float32
        (2, 3, 1, 3, (0, 0, 0, 0), 1, Act(), 3.0),
    ],
)
def test_conv_matches_naive_loop(
    cin: int,
    cout: int,
    k: int,
    stride: int,
    pads: tuple[int, int, int, int],
    groups: int,
    act: Act,
    divisor: float,
) -> None:
    rng = np.random.default_rng(cin * 100 + cout)
    x = rng.integers(-128, 128, (2, cin, 7, 6)).astype(np.int8)
    node = QConv(
        name="c",
        input="x",
        output="y",
        weight=rng.integers(-128, 128, (cout, cin // groups, k, k)).astype(np.int8),
        bias=rng.integers(-(2**20), 2**20, cout).astype(np.int32),
        multiplier=rng.integers(2**20, 2**31, cout).astype(np.int32),
        shift=rng.integers(30, 45, cout).astype(np.int32),
        strides=(stride, stride),
        pads=pads,
        groups=groups,
        act=act,
        divisor=divisor,
    )
    acc = _naive_conv(x, -3, node)
    got = run_conv(x, -3, 5, node)
    np.testing.assert_array_equal(got, _naive_requant(acc, node, 5))


def test_conv_rejects_a_bad_divisor() -> None:
    node = QConv(
        "c",
        "x",
        "y",
        np.ones((1, 1, 1, 1), np.int8),
        np.zeros(1, np.int32),
        np.ones(1, np.int32),
        np.zeros(1, np.int32),
        divisor=0.0,
    )
    x = np.zeros((1, 1, 2, 2), np.int8)
    with pytest.raises(ReferenceError, match=r"c: divisor 0\.0 is not a finite positive"):
        run_conv(x, 0, 0, node)
    node.divisor = INF
    with pytest.raises(ReferenceError, match="divisor inf"):
        run_conv(x, 0, 0, node)


def test_conv_with_huge_kernel_uses_float64() -> None:
    x = np.full((1, 2, 24, 24), 127, dtype=np.int8)
    w = np.full((2, 2, 24, 24), -128, dtype=np.int8)  # 1152 taps of 255 * -128
    node = QConv(
        "c", "x", "y", w, np.zeros(2, np.int32), np.ones(2, np.int32), np.zeros(2, np.int32)
    )
    from vfpga.reference.executor import conv_acc

    acc = conv_acc(x, -128, node)
    assert int(acc[0, 0, 0, 0]) == 2 * 24 * 24 * 255 * -128


def _naive_pool(
    x: np.ndarray, s_in: float, in_zp: int, s_out: float, out_zp: int, n: QPool
) -> np.ndarray:
    """Every float32 step of docs/quantization.md with exact rationals."""
    nb, c, h, w = x.shape
    kh, kw = n.kernel
    t, left, b, r = n.pads
    oh = (h + t + b - kh) // n.strides[0] + 1
    ow = (w + left + r - kw) // n.strides[1] + 1
    out = np.zeros((nb, c, oh, ow), dtype=np.int64)
    si, so = Fraction(s_in), Fraction(s_out)
    for idx in np.ndindex(nb, c, oh, ow):
        bi, ci, y, xx = idx
        vals = [
            int(x[bi, ci, iy, ix])
            for i in range(kh)  # row by row, left to right
            for j in range(kw)
            if 0 <= (iy := y * n.strides[0] + i - t) < h
            and 0 <= (ix := xx * n.strides[1] + j - left) < w
        ]
        if n.kind == "max":
            out[idx] = max(vals)
            continue
        count = kh * kw if n.count_include_pad else len(vals)
        total: Fraction | float = Fraction(0)
        for v in vals:
            total = _f(total + _f(Fraction(v - in_zp) * si))
        m = _f(total / count)
        q = _f(_f(m / so) + (out_zp + 128))
        out[idx] = min(max(round(q) - 128, -128), 127)
    return out


@pytest.mark.parametrize(
    ("kind", "k", "s", "pads", "cip"),
    [
        ("max", (3, 3), (2, 2), (1, 1, 1, 1), False),
        ("max", (2, 2), (2, 2), (0, 0, 1, 1), False),
        ("avg", (3, 3), (1, 1), (1, 1, 1, 1), False),
        ("avg", (3, 3), (2, 2), (1, 1, 1, 1), True),
        ("avg", (2, 3), (1, 2), (0, 0, 0, 0), False),
        ("avg", (2, 2), (2, 2), (0, 0, 0, 0), False),  # ties: the zero point before rounding
    ],
)
def test_pool_matches_naive_loop(
    kind: str, k: tuple[int, int], s: tuple[int, int], pads: tuple[int, int, int, int], cip: bool
) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (2, 3, 7, 6)).astype(np.int8)
    node = QPool("p", "x", "y", kind, k, s, pads, cip)  # type: ignore[arg-type]
    s_in, s_out = float(np.float32(0.0713)), float(np.float32(0.0411))
    if kind == "max":
        s_out = s_in
    np.testing.assert_array_equal(
        run_pool(x, s_in, 4, s_out, -9, node), _naive_pool(x, s_in, 4, s_out, -9, node)
    )


def test_avg_pool_adds_the_zero_point_before_rounding() -> None:
    """With equal scales a 2x2 mean of ``1, 0, 0, 0`` is 0.25 and of ``1, 1, 0, 0`` is
    0.5: ``rne(0.5 + (zp + 128)) - 128`` rounds the tie to the even biased value."""
    x = np.array([[[[1, 0], [0, 0]]], [[[1, 1], [0, 0]]]], np.int8) + np.int8(-33)
    node = QPool("p", "x", "y", "avg", (2, 2), (2, 2))
    got = run_pool(x, 0.5, -33, 0.5, -33, node)  # biased zero point 95 (odd): 95.5 -> 96
    np.testing.assert_array_equal(got.ravel(), [-33, -32])
    got = run_pool(x + np.int8(1), 0.5, -32, 0.5, -32, node)  # 96.5 -> 96
    np.testing.assert_array_equal(got.ravel(), [-32, -32])


def test_global_avg_pool_and_add() -> None:
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, (2, 3, 5, 4)).astype(np.int8)
    node = QPool("g", "x", "y", "global_avg", (5, 4))
    s_in, s_out = float(np.float32(0.3)), float(np.float32(0.07))
    got = run_pool(x, s_in, 2, s_out, 1, node)
    sc = _f(Fraction(s_in) / _f(Fraction(s_out) * 20))
    for bi, ci in np.ndindex(2, 3):
        acc = int((x[bi, ci].astype(int) - 2).sum())
        assert got[bi, ci, 0, 0] == _sat_rne(_f(Fraction(acc) * sc), 1)
    a = rng.integers(-128, 128, (1, 2, 3, 3)).astype(np.int8)
    b = rng.integers(-128, 128, (1, 2, 3, 3)).astype(np.int8)
    add = QAdd("a", "a", "b", "y", 1 << 20, 3 << 19, 21, Act("relu", -5, 127))
    got = run_add(a, 1, b, -2, -5, add)
    ra, rb = Fraction(1, 2), Fraction(3, 4)
    offset = _f(123 - Fraction(_fma(ra, Fraction(129), _f(rb * 126))))
    for idx in np.ndindex(a.shape):
        v = _fma(Fraction(int(a[idx]) + 128), ra, _fma(Fraction(int(b[idx]) + 128), rb, offset))
        assert got[idx] == max(min(max(round(v) - 128, -128), 127), -5)


# ---- whole graphs ------------------------------------------------------------------------


def _tiny_graph() -> QGraph:
    t = {
        "x": QTensor("x", (1, 2, 4, 4), 0.1, 0),
        "y": QTensor("y", (1, 2, 2, 2), 0.1, 0),
    }
    return QGraph("g", ["x"], ["y"], t, [QPool("p", "x", "y", "max", (2, 2), (2, 2))])


def test_run_reference_outputs_and_batch() -> None:
    g = _tiny_graph()
    x = np.arange(64, dtype=np.float32).reshape(2, 2, 4, 4) / 10
    res = run_reference(g, x)
    assert set(res) == {"x", "y", "y:float"}
    assert res["y"].dtype == np.int8 and res["y"].shape == (2, 2, 2, 2)
    np.testing.assert_allclose(res["y:float"][0, 0], [[0.5, 0.7], [1.3, 1.5]], rtol=1e-6)
    one = run_reference(g, x[1:], keep_all=False)
    assert set(one) == {"y", "y:float"}
    np.testing.assert_array_equal(one["y"][0], res["y"][1])
    with pytest.raises(ReferenceError, match="does not match"):
        run_reference(g, np.zeros((1, 3, 4, 4), np.float32))


CALIB = normal_inputs((1, 3, 16, 16), 16, 0)


@pytest.mark.parametrize("variant", ["plain", "softmax", "lrn_softmax"])
def test_reference_agrees_with_onnxruntime(variant: str) -> None:
    """100 random inputs: the reference computes ORT's integer kernels' float32 steps, so
    every int8 output is identical (cosine 1, the same arg-max); every layer is
    identical to ORT end to end and on ORT's own inputs."""
    fp = classifier(seed=len(variant), softmax=variant != "plain", lrn=variant == "lrn_softmax")
    q = quantize_qdq(fp, CALIB)
    res = lower_qdq_mapped(q)
    inputs = normal_inputs((1, 3, 16, 16), 100, 1)
    c = compare_with_ort(res.graph, q, inputs, onnx_int8=res.onnx_int8, fp32_model=fp)
    assert c.num_inputs == 100
    assert c.identical_int8 == 1.0 and c.max_int8_diff == 0, c
    assert c.cosine_min >= 0.999999 and c.argmax_agreement == 1.0, c
    assert c.fp32_cosine_mean is not None and c.fp32_cosine_mean >= 0.99, c
    rep = compare_layers(res, q, inputs[0])
    assert len(rep.layers) >= 10 and rep.first_mismatch is None
    for layer in rep.layers:
        assert layer.identical == 1.0 and layer.isolated == 1.0, layer


def test_ort_runs_uint8_qdq_with_integer_kernels() -> None:
    """The reason for uint8 activations (docs/quantization.md): ORT fuses every quantized
    op of a uint8 QDQ model into an integer kernel; with int8 activations it runs most
    convolutions in float32 between DequantizeLinear and QuantizeLinear."""
    import tempfile
    from collections import Counter
    from pathlib import Path

    import onnx
    import onnxruntime as ort

    def optimized_ops(m: onnx.ModelProto) -> Counter[str]:
        with tempfile.TemporaryDirectory() as d:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            so.optimized_model_filepath = str(Path(d) / "opt.onnx")
            ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
            return Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)

    fp = classifier(3)
    u8 = optimized_ops(quantize_qdq(fp, CALIB))
    assert u8["Conv"] == 0 and u8["QLinearConv"] == 6, u8
    assert u8["Add"] == 0 and u8["QLinearAdd"] == 1, u8
    assert u8["DequantizeLinear"] == 1 and u8["QuantizeLinear"] == 1, u8  # graph edges only
    i8 = optimized_ops(quantize_qdq(fp, CALIB, activations="int8"))
    assert i8["Conv"] > 0, i8


def test_reference_batch_equals_single_runs() -> None:
    g = lower_qdq(quantize_qdq(classifier(4), CALIB))
    xs = normal_inputs((1, 3, 16, 16), 3, 9)
    batch = run_reference(g, np.concatenate(xs), keep_all=False)
    for i, x in enumerate(xs):
        single = run_reference(g, x, keep_all=False)
        np.testing.assert_array_equal(batch[g.outputs[0]][i], single[g.outputs[0]][0])
    assert batch[g.outputs[0] + ":float"].shape == (3, 10)


def test_cosine() -> None:
    assert cosine(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.0)


def test_avg_pool_agrees_with_ort_on_exact_ties() -> None:
    """ORT's QLinearAveragePool adds the zero point before rounding to even; with an odd
    biased zero point (95) the exact ties of a 2x2 mean round up where rounding first
    would round to even. The reference does what ORT does, ties included."""
    from qdq_models import QDQBuilder

    from vfpga.reference.compare import ort_session

    qb = QDQBuilder((1, 4, 8, 8))

    def q_u8(x: str) -> str:  # uint8 activations: ORT runs its integer kernel
        s = qb.g.init(np.array(0.05, dtype=np.float32), "s")
        z = qb.g.init(np.array(95, dtype=np.uint8), "z")  # int8 zero point -33
        return qb.g.node("DequantizeLinear", [qb.g.node("QuantizeLinear", [x, s, z]), s, z])

    p = qb.g.node("AveragePool", [q_u8("x")], kernel_shape=[2, 2], strides=[2, 2])
    m = qb.g.model(q_u8(p), (1, 4, 4, 4))
    res = lower_qdq_mapped(m)
    g = res.graph
    (pool,) = g.nodes
    sess = ort_session(m, [res.onnx_int8[pool.output][0], res.onnx_int8["x"][0]])
    names = [o.name for o in sess.get_outputs()]  # type: ignore[attr-defined]
    ties = 0
    for xin in normal_inputs((1, 4, 8, 8), 10, 3):
        out = dict(zip(names, sess.run(None, {"x": xin}), strict=True))  # type: ignore[attr-defined]
        (xname, xoff), (oname, ooff) = res.onnx_int8["x"], res.onnx_int8[pool.output]
        xi = out[xname].astype(int) + xoff
        o = out[oname].astype(int) + ooff
        mine = run_reference(g, xin)
        np.testing.assert_array_equal(mine["x"], xi)
        np.testing.assert_array_equal(mine[pool.output], o)
        s = (xi + 33).reshape(1, 4, 4, 2, 4, 2).sum(axis=(3, 5))
        tie = s % 4 == 2
        ties += int(tie.sum())
        # a tie rounds to the even *biased* value: 95 + s/4 rounded half to even
        biased = np.round(95 + s / 4).astype(int)
        np.testing.assert_array_equal(o[tie], biased[tie] - 128)
        assert np.all(biased[tie] % 2 == 0)
    assert ties > 0


def test_cli_reference(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import onnx
    from click.testing import CliRunner

    from vfpga.cli.main import cli

    q = quantize_qdq(classifier(5, softmax=True), CALIB)
    mp = tmp_path / "q.onnx"
    onnx.save(q, mp)
    x = normal_inputs((1, 3, 16, 16), 1, 4)[0]
    xp = tmp_path / "x.npy"
    np.save(xp, x)
    out = tmp_path / "y.npy"
    r = CliRunner().invoke(
        cli,
        [
            "reference",
            str(mp),
            "--input",
            str(xp),
            "-o",
            str(out),
            "--compare-ort",
            "--num-inputs",
            "5",
            "--per-layer",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "top-5" in r.output and "arg-max agreement" in r.output and "per layer" in r.output
    y = np.load(out)
    g = lower_qdq(q)
    np.testing.assert_array_equal(y, run_reference(g, x)[g.outputs[0] + ":float"])
    assert list(tmp_path.glob("*.tmp")) == []
    r = CliRunner().invoke(cli, ["reference", str(tmp_path / "missing.onnx")])
    assert r.exit_code != 0 and "error:" in r.output and "no such file" in r.output
    r = CliRunner().invoke(cli, ["reference", str(mp), "--input", str(mp)])
    assert r.exit_code != 0 and "not a readable .npy" in r.output
