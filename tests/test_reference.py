"""The integer golden reference: exact arithmetic, node semantics against naive loops over
Python integers, and agreement with ONNX Runtime on QDQ models."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qdq_models import classifier, normal_inputs, quantize_qdq

from vfpga.frontend.qdq_lower import lower_qdq, lower_qdq_mapped
from vfpga.frontend.qgraph import Act, QAdd, QConv, QGraph, QPool, QTensor
from vfpga.reference import ReferenceError, run_reference
from vfpga.reference.arith import quantize_input, requant, rhe_div, rhe_shift
from vfpga.reference.compare import compare_layers, compare_with_ort, cosine
from vfpga.reference.executor import run_add, run_conv, run_pool


def _rhe(a: int, b: int) -> int:
    return round(Fraction(a, b))  # Python rounds Fractions half to even


# ---- arithmetic --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**31) + 1, 2**31 - 1), st.integers(0, 2**31 - 1), st.integers(0, 62))
def test_requant_is_exact(acc: int, m: int, s: int) -> None:
    got = int(requant(np.array([acc]), m, s)[0])
    assert got == _rhe(acc * m, 2**s)


def test_requant_ties_round_to_even() -> None:
    acc = np.array([1, 3, 5, -1, -3, -5, 2, 6, -2], dtype=np.int64)
    # acc * 1 / 2: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2, -2.5 -> -2
    np.testing.assert_array_equal(requant(acc, 1, 1), [0, 2, 2, 0, -2, -2, 1, 3, -1])
    # per-channel shifts broadcast
    np.testing.assert_array_equal(
        rhe_shift(np.array([[6, 6, 6]]), np.array([0, 1, 2])), [[6, 3, 2]]
    )


def test_requant_rejects_out_of_range_operands() -> None:
    with pytest.raises(ValueError):
        requant(np.array([2**31]), 1, 0)
    with pytest.raises(ValueError):
        requant(np.array([1]), 2**31, 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**70), 2**70), st.integers(1, 2**70))
def test_rhe_div_is_exact_beyond_int64(num: int, den: int) -> None:
    assert int(rhe_div(np.array([num], dtype=object), den)[0]) == _rhe(num, den)


def test_input_quantization_matches_quantize_linear() -> None:
    x = np.array([0.25, 0.75, -0.25, 100.0, -100.0, 0.5], dtype=np.float32)
    # x / 0.5: 0.5 -> 0 (even), 1.5 -> 2, -0.5 -> 0; saturation at the ends
    np.testing.assert_array_equal(quantize_input(x, 0.5, 1), [1, 3, 1, 127, -128, 2])


# ---- nodes against naive integer loops ---------------------------------------------------


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
        v = out_zp + _rhe(int(acc[idx]) * int(n.multiplier[o]), 2 ** int(n.shift[o]))
        v = min(max(v, -128), 127)
        if n.act.kind in ("relu", "relu6"):
            v = max(v, n.act.lo)
        if n.act.kind == "relu6":
            v = min(v, n.act.hi)
        res[idx] = v
    return res


@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "pads", "groups", "act"),
    [
        (3, 5, 3, 1, (1, 1, 1, 1), 1, Act()),
        (4, 6, 3, 2, (0, 1, 2, 1), 2, Act("relu", -7, 127)),
        (4, 8, 3, 2, (1, 1, 1, 1), 4, Act("relu6", -100, 40)),  # depthwise x2
        (6, 6, 5, 1, (2, 2, 2, 2), 6, Act()),  # depthwise
        (70, 3, 3, 1, (1, 1, 1, 1), 1, Act()),  # K = 630 > 512: chunked float32
        (2, 3, 1, 3, (0, 0, 0, 0), 1, Act()),
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
    )
    acc = _naive_conv(x, -3, node)
    got = run_conv(x, -3, 5, node)
    np.testing.assert_array_equal(got, _naive_requant(acc, node, 5))


def test_conv_with_huge_kernel_uses_float64() -> None:
    rng = np.random.default_rng(3)
    x = np.full((1, 2, 24, 24), 127, dtype=np.int8)
    w = np.full((2, 2, 24, 24), -128, dtype=np.int8)  # 1152 taps of 255 * -128
    node = QConv(
        "c", "x", "y", w, np.zeros(2, np.int32), np.ones(2, np.int32), np.zeros(2, np.int32)
    )
    from vfpga.reference.executor import conv_acc

    acc = conv_acc(x, -128, node)
    assert int(acc[0, 0, 0, 0]) == 2 * 24 * 24 * 255 * -128
    del rng


def _naive_pool(x: np.ndarray, in_zp: int, out_zp: int, n: QPool) -> np.ndarray:
    nb, c, h, w = x.shape
    kh, kw = n.kernel
    t, left, b, r = n.pads
    oh = (h + t + b - kh) // n.strides[0] + 1
    ow = (w + left + r - kw) // n.strides[1] + 1
    out = np.zeros((nb, c, oh, ow), dtype=np.int64)
    for idx in np.ndindex(nb, c, oh, ow):
        bi, ci, y, xx = idx
        vals = [
            int(x[bi, ci, iy, ix])
            for i in range(kh)
            for j in range(kw)
            if 0 <= (iy := y * n.strides[0] + i - t) < h
            and 0 <= (ix := xx * n.strides[1] + j - left) < w
        ]
        if n.kind == "max":
            out[idx] = max(vals)
        else:
            count = kh * kw if n.count_include_pad else len(vals)
            acc = sum(v - in_zp for v in vals)
            v = out_zp + _rhe(acc * n.multiplier, count * 2**n.shift)
            out[idx] = min(max(v, -128), 127)
    return out


@pytest.mark.parametrize(
    ("kind", "k", "s", "pads", "cip"),
    [
        ("max", (3, 3), (2, 2), (1, 1, 1, 1), False),
        ("max", (2, 2), (2, 2), (0, 0, 1, 1), False),
        ("avg", (3, 3), (1, 1), (1, 1, 1, 1), False),
        ("avg", (3, 3), (2, 2), (1, 1, 1, 1), True),
        ("avg", (2, 3), (1, 2), (0, 0, 0, 0), False),
    ],
)
def test_pool_matches_naive_loop(
    kind: str, k: tuple[int, int], s: tuple[int, int], pads: tuple[int, int, int, int], cip: bool
) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (2, 3, 7, 6)).astype(np.int8)
    node = QPool("p", "x", "y", kind, k, s, pads, cip, 1234567, 21)  # type: ignore[arg-type]
    np.testing.assert_array_equal(run_pool(x, 4, -9, node), _naive_pool(x, 4, -9, node))


def test_global_avg_pool_and_add() -> None:
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, (2, 3, 5, 4)).astype(np.int8)
    node = QPool("g", "x", "y", "global_avg", (5, 4), multiplier=3, shift=1)
    got = run_pool(x, 2, 1, node)
    for bi, ci in np.ndindex(2, 3):
        acc = int((x[bi, ci].astype(int) - 2).sum())
        assert got[bi, ci, 0, 0] == min(max(1 + _rhe(acc * 3, 20 * 2), -128), 127)
    a = rng.integers(-128, 128, (1, 2, 3, 3)).astype(np.int8)
    b = rng.integers(-128, 128, (1, 2, 3, 3)).astype(np.int8)
    add = QAdd("a", "a", "b", "y", 1 << 20, 3 << 19, 21, Act("relu", -5, 127))
    got = run_add(a, 1, b, -2, -5, add)
    for idx in np.ndindex(a.shape):
        v = (int(a[idx]) - 1) * (1 << 20) + (int(b[idx]) + 2) * (3 << 19)
        assert got[idx] == max(min(max(-5 + _rhe(v, 2**21), -128), 127), -5)


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
    """100 random inputs: cosine >= 0.999, the same arg-max on >= 99, >= 99 % identical
    int8 outputs; every layer on ORT's own inputs >= 99.9 % identical. ORT's rounding
    model (run_ort_emulation) reproduces ORT's integer kernels exactly, layer by layer and
    end to end: the only differences are ORT's float32 rounding (and its Softmax table)."""
    fp = classifier(seed=len(variant), softmax=variant != "plain", lrn=variant == "lrn_softmax")
    q = quantize_qdq(fp, CALIB)
    res = lower_qdq_mapped(q)
    inputs = normal_inputs((1, 3, 16, 16), 100, 1)
    c = compare_with_ort(
        res.graph, q, inputs, onnx_int8=res.onnx_int8, fp32_model=fp, emulate_ort=20
    )
    assert c.num_inputs == 100
    assert c.cosine_min >= 0.999, c
    assert c.argmax_agreement >= 0.99 and c.argmax_near_agreement == 1.0, c
    assert c.identical_int8 is not None and c.identical_int8 >= 0.99, c
    assert c.fp32_cosine_mean is not None and c.fp32_cosine_mean >= 0.99, c
    assert c.emulated_inputs == 20 and c.emulated_identical_int8 is not None
    # the Softmax output (lookup table in ORT) may differ by one level
    assert c.emulated_identical_int8 >= (1.0 if variant == "plain" else 0.99), c
    rep = compare_layers(res, q, inputs[0])
    assert len(rep.layers) >= 10
    for layer in rep.layers:
        assert layer.isolated is not None and layer.isolated >= 0.999, layer
        if not layer.op.startswith("host:"):
            assert layer.emulated == 1.0, layer


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


def test_avg_pool_differs_from_ort_only_on_exact_ties() -> None:
    """ORT's fused QLinearAveragePool adds the zero point before rounding to even, the QDQ
    semantics (and ours) round first; they differ by one exactly on ties with an odd zero
    point. Everything else is identical."""
    from qdq_models import QDQBuilder

    from vfpga.reference.compare import ort_session

    qb = QDQBuilder((1, 4, 8, 8))
    x = qb.q("x", 0.05, -33)
    p = qb.g.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    m = qb.g.model(qb.q(p, 0.05, -33), (1, 4, 4, 4))
    res = lower_qdq_mapped(m)
    g = res.graph
    (pool,) = g.nodes
    sess = ort_session(m, [res.onnx_int8[pool.output][0], res.onnx_int8["x"][0]])
    names = [o.name for o in sess.get_outputs()]  # type: ignore[attr-defined]
    ties = mismatches = 0
    for xin in normal_inputs((1, 4, 8, 8), 10, 3):
        out = dict(zip(names, sess.run(None, {"x": xin}), strict=True))  # type: ignore[attr-defined]
        xi = out[res.onnx_int8["x"][0]]
        o = out[res.onnx_int8[pool.output][0]].astype(int)
        mine = run_reference(g, xin)[pool.output].astype(int)
        np.testing.assert_array_equal(run_reference(g, xin)["x"], xi)
        s = (xi.astype(int) + 33).reshape(1, 4, 4, 2, 4, 2).sum(axis=(3, 5))
        tie = s % 4 == 2
        ties += int(tie.sum())
        assert np.all(mine[~tie] == o[~tie])
        assert np.all(np.abs(mine[tie] - o[tie]) <= 1)
        mismatches += int((mine != o).sum())
        # ours is the exact QDQ value: round_half_even(s / 4) - 33
        np.testing.assert_array_equal(mine, np.round(s / 4).astype(int) - 33)
    assert ties > 0 and mismatches > 0


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
