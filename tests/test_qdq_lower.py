"""QDQ ONNX -> QGraph lowering: one test per pattern, the integer parameters, errors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from qdq_models import GraphBuilder, QDQBuilder, classifier, normal_inputs, quantize_qdq

from vfpga.errors import FrontendError
from vfpga.frontend.pipeline import load_model, load_qgraph
from vfpga.frontend.qdq_lower import (
    lower_qdq,
    lower_qdq_mapped,
    mult_shift,
    mult_shift_pair,
    ratio_f32,
)
from vfpga.frontend.qgraph import SEGMENT_OP, QAdd, QConcat, QConv, QHostOp, QPool
from vfpga.isa.float32 import requant_scale
from vfpga.reference.compare import compare_layers, compare_with_ort

CALIB = normal_inputs((1, 3, 16, 16), 8, 0)


def _inits(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}


def _assert_matches_ort(q: onnx.ModelProto, shape: tuple[int, ...], n: int = 20) -> None:
    """The lowered graph's reference run reproduces ORT's int8 tensors exactly: the
    output on ``n`` inputs, every layer on one."""
    res = lower_qdq_mapped(q)
    c = compare_with_ort(res.graph, q, normal_inputs(shape, n, 5), onnx_int8=res.onnx_int8)
    assert c.identical_int8 == 1.0, c
    rep = compare_layers(res, q, normal_inputs(shape, 1, 6)[0])
    for layer in rep.layers:
        assert layer.identical == 1.0, layer
        if layer.isolated is not None:
            assert layer.isolated == 1.0, layer


# ---- multiplier / shift ------------------------------------------------------------------


def test_mult_shift_is_exact_for_float32_ratios() -> None:
    rng = np.random.default_rng(0)
    for r in rng.uniform(1e-9, 50.0, 2000).astype(np.float32):
        m, s = mult_shift(float(r))
        assert 0 <= m < 2**31 and 0 <= s <= 62
        assert Fraction(m, 2**s) == Fraction(float(r))
        assert m % 2 == 1  # smallest shift
    assert mult_shift(1.0) == (1, 0)
    assert mult_shift(0.0) == (0, 0)
    assert mult_shift(0.75) == (3, 2)


def test_mult_shift_rounds_tiny_ratios_and_rejects_bad_ones() -> None:
    m, s = mult_shift(float(np.float32(3e-15)))  # needs s > 62 for exactness
    assert s == 62 and abs(m - 3e-15 * 2**62) <= 0.5
    with pytest.raises(ValueError):
        mult_shift(-1.0)
    with pytest.raises(ValueError):
        mult_shift(float(2**32))


def test_mult_shift_pair_shares_one_exact_shift() -> None:
    rng = np.random.default_rng(1)
    for ra, rb in rng.uniform(0.05, 3.0, (500, 2)).astype(np.float32):
        ma, mb, s = mult_shift_pair(float(ra), float(rb))
        assert Fraction(ma, 2**s) == Fraction(float(ra))
        assert Fraction(mb, 2**s) == Fraction(float(rb))
        assert ma < 2**31 and mb < 2**31
    # exponents too far apart for exactness: the larger stays exact, the smaller rounds
    ma, mb, s = mult_shift_pair(1.5, float(np.float32(1.0000001e-12)))
    assert Fraction(ma, 2**s) == Fraction(1.5)
    assert abs(mb / 2**s - 1.0000001e-12) <= 2.0**-s


def test_ratio_is_computed_in_float32_like_ort() -> None:
    a, b, c = 0.1, 0.3, 0.7
    expect = np.float32(np.float32(np.float32(a) * np.float32(b)) / np.float32(c))
    assert ratio_f32(a, b, divisor=c) == float(expect)


# ---- patterns ----------------------------------------------------------------------------


def test_conv_relu_keeps_ort_integers() -> None:
    b = GraphBuilder((1, 3, 16, 16))
    out = b.relu(b.conv("x", 3, 8, 3, stride=2, pad=1))
    fp = b.model(out, (1, 8, 8, 8))
    q = quantize_qdq(fp, CALIB)
    g = lower_qdq(q)
    (conv,) = g.nodes
    assert isinstance(conv, QConv)
    inits = _inits(q)
    wq = next(v for k, v in inits.items() if v.dtype == np.int8 and v.ndim == 4)
    bq = next(v for k, v in inits.items() if v.dtype == np.int32 and v.ndim == 1)
    np.testing.assert_array_equal(conv.weight, wq)
    np.testing.assert_array_equal(conv.bias, bq)
    assert conv.strides == (2, 2) and conv.pads == (1, 1, 1, 1) and conv.groups == 1
    t_in, t_out = g.tensors[conv.input], g.tensors[conv.output]
    assert t_out.zero_point == -128  # the quantizer folded the Relu into the output range
    ws = next(v for k, v in inits.items() if k.endswith("_scale") and v.size == 8)
    for c in range(8):
        r = ratio_f32(t_in.scale, float(ws[c]), divisor=t_out.scale)
        assert Fraction(int(conv.multiplier[c]), 2 ** int(conv.shift[c])) == Fraction(r)
    assert g.outputs == [out] and g.inputs == ["x"]
    _assert_matches_ort(q, (1, 3, 16, 16))


def test_kept_relu_becomes_activation() -> None:
    """Symmetric activations keep the Relu as its own island (DQ -> Relu -> Q): it becomes a
    relu activation (on a requantizing conv, or fused into the producing conv)."""
    b = GraphBuilder((1, 3, 16, 16))
    c = b.conv("x", 3, 8)
    r = b.relu(c)
    out = b.conv(r, 8, 4, 1, pad=0)
    fp = b.model(out, (1, 4, 16, 16))
    q = quantize_qdq(fp, CALIB, extra_options={"ActivationSymmetric": True})
    assert any(n.op_type == "Relu" for n in q.graph.node)
    g = lower_qdq(q)
    acts = [n for n in g.nodes if isinstance(n, QConv) and n.act.kind == "relu"]
    assert len(acts) == 1
    act = acts[0]
    assert act.act.lo == g.tensors[act.output].zero_point == 0
    _assert_matches_ort(q, (1, 3, 16, 16))


def test_noop_relu_island_disappears() -> None:
    """A kept Relu whose input is already quantized to [0, max] (zero point -128) is a
    no-op and leaves no node."""
    b = GraphBuilder((1, 3, 16, 16))
    r = b.relu(b.conv("x", 3, 8))
    out = b.conv(r, 8, 4, 1, pad=0)
    fp = b.model(out, (1, 4, 16, 16))
    q = quantize_qdq(fp, CALIB, extra_options={"QDQKeepRemovableActivations": True})
    assert any(n.op_type == "Relu" for n in q.graph.node)
    g = lower_qdq(q)
    assert len(g.nodes) == 2 and g.nodes[1].input == g.nodes[0].output
    _assert_matches_ort(q, (1, 3, 16, 16))


def test_float_chain_conv_clip_fuses_relu6() -> None:
    """DQ -> Conv -> Clip(0, 6) -> Q (no Q between): the clamp goes into the conv's act."""
    qb = QDQBuilder((1, 4, 8, 8))
    x = qb.q("x", 0.05, 3)
    w, _ = qb.conv_w(4, 6, 3)
    c = qb.g.node("Conv", [x, w], pads=[1, 1, 1, 1])
    clip = qb.g.relu6(c)
    y = qb.q(clip, 0.01, -100)  # 6.0 -> 500: saturates; hi = 127
    y2 = qb.g.relu6(qb.g.node("Conv", [y, qb.conv_w(6, 6, 1)[0]]))
    out = qb.q(y2, 0.02, -128)  # 6.0 -> 172 -> 127 ... so also test a low max:
    m = qb.g.model(out, (1, 6, 8, 8))
    g = lower_qdq(m)
    convs = [n for n in g.nodes if isinstance(n, QConv)]
    assert len(convs) == 2
    assert convs[0].act.kind == "relu" and convs[0].act.lo == -100
    assert convs[1].act.kind == "none"  # zp -128: max(y, -128) and 6.0 saturates at 127
    assert not any(isinstance(n, QHostOp) for n in g.nodes)
    _assert_matches_ort(m, (1, 4, 8, 8))


def test_clip_with_hi_inside_range_is_relu6() -> None:
    qb = QDQBuilder((1, 4, 8, 8))
    x = qb.q("x", 0.05, 0)
    clip = qb.g.relu6(x)
    out = qb.q(clip, 0.09, 0)
    m = qb.g.model(out, (1, 4, 8, 8))
    g = lower_qdq(m)
    (conv,) = g.nodes
    assert isinstance(conv, QConv) and conv.groups == 4
    assert conv.act.kind == "relu6" and (conv.act.lo, conv.act.hi) == (0, 67)
    # a requantizing copy: multiplier / 2**shift is s_in, the divisor s_out (float32)
    assert np.all(conv.weight == 1) and not np.any(conv.bias)
    for c in range(4):
        mu, sh = int(conv.multiplier[c]), int(conv.shift[c])
        assert Fraction(mu, 2**sh) == Fraction(float(np.float32(0.05)))
    assert conv.divisor == float(np.float32(0.09))
    _assert_matches_ort(m, (1, 4, 8, 8))


def test_maxpool_with_other_output_quantization_gets_requant_conv() -> None:
    qb = QDQBuilder((1, 4, 8, 8))
    x = qb.q("x", 0.05, 3)
    p = qb.g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    out = qb.q(p, 0.043, -5)
    m = qb.g.model(out, (1, 4, 4, 4))
    g = lower_qdq(m)
    pool, rq = g.nodes
    assert isinstance(pool, QPool) and pool.kind == "max"
    assert g.tensors[pool.output].scale == g.tensors[pool.input].scale
    assert isinstance(rq, QConv) and np.all(rq.weight == 1) and rq.groups == 4
    assert rq.output == g.outputs[0]
    assert Fraction(int(rq.multiplier[0]), 2 ** int(rq.shift[0])) == Fraction(
        float(np.float32(0.05))
    )
    assert rq.divisor == float(np.float32(0.043))
    _assert_matches_ort(m, (1, 4, 8, 8))


def test_dq_q_requantization_and_same_quant_alias() -> None:
    qb = QDQBuilder((1, 2, 4, 4))
    x = qb.q("x", 0.05, 3)
    y = qb.q(x, 0.05, 3)  # same parameters: an alias, no node
    z = qb.q(y, 0.07, -2)  # requantization
    m = qb.g.model(z, (1, 2, 4, 4))
    g = lower_qdq(m)
    (rq,) = g.nodes
    assert isinstance(rq, QConv) and rq.input == "x"
    # ORT's DequantizeLinear -> QuantizeLinear: f32(f32(f32(q - 3) * 0.05) / 0.07)
    assert requant_scale(int(rq.multiplier[0]), int(rq.shift[0])) == float(np.float32(0.05))
    assert rq.divisor == float(np.float32(0.07))
    _assert_matches_ort(m, (1, 2, 4, 4))


def test_classifier_patterns() -> None:
    fp = classifier(0, softmax=True, lrn=True)
    q = quantize_qdq(fp, CALIB)
    g = lower_qdq(q)
    kinds = [type(n).__name__ for n in g.nodes]
    assert {"QConv", "QAdd", "QPool", "QConcat", "QHostOp"} <= set(kinds)
    pools = {n.kind: n for n in g.nodes if isinstance(n, QPool)}
    assert set(pools) == {"max", "avg", "global_avg"}
    assert pools["avg"].kernel == (3, 3) and pools["avg"].pads == (1, 1, 1, 1)
    assert pools["avg"].count_include_pad
    hosts = {n.op_type: n for n in g.nodes if isinstance(n, QHostOp)}
    assert hosts["Softmax"].attrs == {"axis": 1}
    assert hosts["LRN"].attrs == {
        "size": 5,
        "alpha": pytest.approx(1e-3),
        "beta": 0.75,
        "bias": 1.0,
    }
    assert not hosts["Softmax"].output_float  # the quantizer quantized its output
    # the final Reshape to 2-D is an output shape, the output is named after ONNX's
    assert g.outputs == [fp.graph.output[0].name]
    assert g.output_shapes == {g.outputs[0]: (1, 10)}
    assert g.tensors[g.outputs[0]].shape == (1, 10, 1, 1)
    # QConcat's precondition: every input has the output's quantization
    for n in g.nodes:
        if isinstance(n, QConcat):
            out = g.tensors[n.output]
            for i in n.inputs:
                assert (g.tensors[i].scale, g.tensors[i].zero_point) == (
                    out.scale,
                    out.zero_point,
                )
        if isinstance(n, QAdd):
            ta, tb, to = g.tensors[n.a], g.tensors[n.b], g.tensors[n.output]
            assert Fraction(n.mult_a, 2**n.shift) == Fraction(ratio_f32(ta.scale, divisor=to.scale))
            assert Fraction(n.mult_b, 2**n.shift) == Fraction(ratio_f32(tb.scale, divisor=to.scale))
    dw = [n for n in g.nodes if isinstance(n, QConv) and n.groups == 16]
    assert dw and dw[0].weight.shape == (16, 1, 3, 3)
    # topological order
    seen = set(g.inputs)
    for n in g.nodes:
        ins = (
            [n.input]
            if isinstance(n, QConv | QPool)
            else ([n.a, n.b] if isinstance(n, QAdd) else n.inputs)
        )
        assert all(i in seen for i in ins), n.name
        seen.add(n.output)


def test_concat_requantizes_mismatched_inputs() -> None:
    qb = QDQBuilder((1, 2, 4, 4))
    x = qb.q("x", 0.05, 3)
    a = qb.q(qb.g.relu(x), 0.03, -128)
    bb = qb.q(x, 0.05, 3)
    cat = qb.g.node("Concat", [a, bb], axis=1)
    out = qb.q(cat, 0.05, 3)
    m = qb.g.model(out, (1, 4, 4, 4))
    g = lower_qdq(m)
    (concat,) = [n for n in g.nodes if isinstance(n, QConcat)]
    assert concat.inputs[1] == "x"  # same quantization: used directly
    rq = next(n for n in g.nodes if isinstance(n, QConv) and n.output == concat.inputs[0])
    assert np.all(rq.weight == 1) and rq.groups == 2
    _assert_matches_ort(m, (1, 2, 4, 4))


def test_uint8_concat_requantization_is_orts_qlinearconcat() -> None:
    """With uint8 activations ORT fuses the Concat into QLinearConcat, whose table
    requantizes an input of another quantization as ``rne(f32(f32(f32(q - zp) * s_in) /
    s_out))``, and a ``DequantizeLinear -> QuantizeLinear`` pair alike: the requantizing
    copies (multiplier / 2**shift = s_in, divisor = s_out) reproduce both for all 256
    input codes, including those where the float32 steps differ from rounding the exact
    ratio and from one float32 ratio ``f32(s_in / s_out)`` (the scales make such codes)."""
    qb = QDQBuilder((1, 2, 16, 8))
    s_in, s_out = float(np.float32(0.04343079775571823)), float(np.float32(0.02895386517047882))

    def q_u8(x: str, scale: float, zp: int) -> str:
        s = qb.g.init(np.array(scale, dtype=np.float32), "s")
        z = qb.g.init(np.array(zp, dtype=np.uint8), "z")
        return qb.g.node("DequantizeLinear", [qb.g.node("QuantizeLinear", [x, s, z]), s, z])

    x = q_u8("x", s_in, 109)
    y = q_u8(x, s_out, 97)  # DequantizeLinear -> QuantizeLinear
    cat = qb.g.node("Concat", [x, y], axis=1)
    m = qb.g.model(q_u8(cat, s_out, 117), (1, 4, 16, 8))
    res = lower_qdq_mapped(m)
    rqs = [n for n in res.graph.nodes if isinstance(n, QConv)]
    assert len(rqs) == 3 and all(np.all(n.weight == 1) and not np.any(n.bias) for n in rqs)
    for n in rqs:
        assert (
            requant_scale(int(n.multiplier[0]), int(n.shift[0])) == res.graph.tensors[n.input].scale
        )
        assert n.divisor == res.graph.tensors[n.output].scale
    codes = np.arange(256, dtype=np.float32).reshape(1, 1, 16, 16).reshape(1, 2, 16, 8)
    every_code = ((codes - 109) * np.float32(s_in)).astype(np.float32)
    d = np.arange(256) - 109
    steps = np.rint((d.astype(np.float32) * np.float32(s_in)) / np.float32(s_out))
    assert np.any(steps != np.round(d * s_in / s_out))  # not the exact rational rounding
    assert np.any(steps != np.rint(d.astype(np.float32) * np.float32(s_in / s_out)))
    c = compare_with_ort(
        res.graph, m, [every_code, *normal_inputs((1, 2, 16, 8), 5, 5)], onnx_int8=res.onnx_int8
    )
    assert c.identical_int8 == 1.0, c
    rep = compare_layers(res, m, every_code)
    assert rep.first_mismatch is None and all(la.isolated == 1.0 for la in rep.layers)


def test_uint8_activations_are_shifted_to_int8() -> None:
    """uint8 tensors (the project's quantizer setting) become int8 ``q - 128`` with zero
    point ``z - 128`` and the same scale; the ORT map carries the offset -128."""
    fp = classifier(1)
    q = quantize_qdq(fp, CALIB)
    inits = _inits(q)
    x_q = next(n for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    assert inits[x_q.input[2]].dtype == np.uint8
    res = lower_qdq_mapped(q)
    g = res.graph
    t = g.tensors["x"]
    assert t.zero_point == int(inits[x_q.input[2]]) - 128
    assert t.scale == pytest.approx(float(inits[x_q.input[1]]), rel=0, abs=0)
    assert res.onnx_int8["x"] == (x_q.output[0], -128)
    assert all(off == -128 for _, off in res.onnx_int8.values())
    assert all(-128 <= t.zero_point <= 127 for t in g.tensors.values())
    _assert_matches_ort(q, (1, 3, 16, 16))


def test_int8_activation_models_still_lower() -> None:
    """QDQ models with int8 activations (from other quantizers) lower as they are, with
    offset 0 in the ORT map."""
    fp = classifier(1)
    q = quantize_qdq(fp, CALIB, activations="int8")
    res = lower_qdq_mapped(q)
    assert all(off == 0 for _, off in res.onnx_int8.values())
    _assert_matches_ort(q, (1, 3, 16, 16))


def test_rank2_model_and_float_softmax_output() -> None:
    """A (N, K) input is carried as (N, K, 1, 1); a Softmax producing the float graph
    output directly becomes a host op with ``output_float``."""
    qb = QDQBuilder((1, 8))
    x = qb.q("x", 0.05, 0)
    x4 = qb.g.node("Reshape", [x, qb.g.init(np.array([1, 8, 1, 1], dtype=np.int64))])
    w, _ = qb.conv_w(8, 5, 1)
    c = qb.g.node("Conv", [x4, w])
    cq = qb.q(c, 0.1, 0)
    flat = qb.g.node("Reshape", [cq, qb.g.init(np.array([1, 5], dtype=np.int64))])
    sm = qb.g.node("Softmax", [flat], axis=1)
    m = qb.g.model(sm, (1, 5))
    g = lower_qdq(m)
    assert g.tensors["x"].shape == (1, 8, 1, 1)
    host = g.nodes[-1]
    assert isinstance(host, QHostOp) and host.output_float and host.attrs == {"axis": 1}
    assert g.output_shapes[g.outputs[0]] == (1, 5)


# ---- errors ------------------------------------------------------------------------------


def test_unsupported_op_names_node_and_supported_list() -> None:
    qb = QDQBuilder((1, 2, 4, 4))
    x = qb.q("x", 0.05, 3)
    s = qb.g.node("Sin", [x])
    out = qb.q(s, 0.01, -128)
    m = qb.g.model(out, (1, 2, 4, 4))
    (seg,) = _segments(lower_qdq(m, "net.onnx"))  # an unmapped op runs on the host
    assert seg.attrs["ops"] == ["Sin"] and "sin" in seg.attrs["nodes"][0]
    assert "op type Sin is not supported" in seg.attrs["reasons"][0]


def _segments(g):
    return [n for n in g.nodes if isinstance(n, QHostOp) and n.op_type == SEGMENT_OP]


def test_dilated_conv_runs_on_the_accelerator() -> None:
    qb = QDQBuilder((1, 2, 8, 8))
    x = qb.q("x", 0.05, 3)
    w, _ = qb.conv_w(2, 2, 3)
    c = qb.g.node("Conv", [x, w], dilations=[2, 2])
    m = qb.g.model(qb.q(c, 0.1, 0), (1, 2, 4, 4))
    g = lower_qdq(m)
    assert not _segments(g)
    (conv,) = [n for n in g.nodes if isinstance(n, QConv)]
    assert conv.dilations == (2, 2) and conv.upsample == (1, 1)


def test_conv_transpose_with_dilation_runs_on_the_host() -> None:
    qb = QDQBuilder((1, 2, 8, 8))
    x = qb.q("x", 0.05, 3)
    w = qb.g.init(np.ones((2, 2, 3, 3), dtype=np.int8))
    wd = qb.g.node("DequantizeLinear", [w, qb.g.init(np.float32(0.01))])
    c = qb.g.node("ConvTranspose", [x, wd], strides=[2, 2], dilations=[2, 2])
    m = qb.g.model(qb.q(c, 0.1, 0), (1, 2, 19, 19))
    (seg,) = _segments(lower_qdq(m))
    assert seg.attrs["ops"] == ["ConvTranspose"] and "dilations" in seg.attrs["reasons"][0]


def test_float_weights_are_rejected() -> None:
    qb = QDQBuilder((1, 2, 8, 8))
    x = qb.q("x", 0.05, 3)
    w = qb.g.init(np.ones((2, 2, 1, 1), dtype=np.float32))
    c = qb.g.node("Conv", [x, w])
    m = qb.g.model(qb.q(c, 0.1, 0), (1, 2, 8, 8))
    (seg,) = _segments(lower_qdq(m))  # a float-weight Conv runs on the host
    assert "quantize" in seg.attrs["reasons"][0]


def test_float_model_is_rejected_by_lowering() -> None:
    b = GraphBuilder((1, 3, 8, 8))
    m = b.model(b.relu(b.conv("x", 3, 4)), (1, 4, 8, 8))
    with pytest.raises(FrontendError, match="QuantizeLinear"):
        lower_qdq(m)


def test_unquantized_island_output_is_rejected() -> None:
    qb = QDQBuilder((1, 2, 8, 8))
    x = qb.q("x", 0.05, 3)
    w, _ = qb.conv_w(2, 2, 1)
    c = qb.g.node("Conv", [x, w])
    r = qb.g.node("MaxPool", [c], kernel_shape=[2, 2])  # reads the float conv output
    m = qb.g.model(qb.q(r, 0.1, 0), (1, 2, 7, 7))
    with pytest.raises(FrontendError, match="no QuantizeLinear"):
        lower_qdq(m)


# ---- pipeline ----------------------------------------------------------------------------


def test_pipeline_lowers_qdq_files_as_they_are(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = quantize_qdq(classifier(2), CALIB)
    p = tmp_path / "q.onnx"
    onnx.save(q, p)
    g, qdq = load_qgraph(p)
    assert qdq.graph.node[0].op_type == q.graph.node[0].op_type
    assert [n.name for n in g.nodes] == [n.name for n in lower_qdq(q).nodes]
    assert load_model(p).fp32 is None
    with pytest.raises(FrontendError, match="no such file"):
        load_qgraph(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(FrontendError, match="not a readable ONNX model"):
        load_qgraph(bad)


def test_relu_on_the_float_input_before_its_quantization() -> None:
    """x -> Relu -> Q: the input is quantized with Q's parameters, then clamped."""
    qb = QDQBuilder((1, 2, 4, 4))
    r = qb.g.relu("x")
    y = qb.q(r, 0.05, -20)
    m = qb.g.model(y, (1, 2, 4, 4))
    g = lower_qdq(m)
    (conv,) = g.nodes
    assert isinstance(conv, QConv) and conv.input == "x"
    assert conv.act.kind == "relu" and conv.act.lo == -20
    assert (g.tensors["x"].scale, g.tensors["x"].zero_point) == (
        g.tensors[conv.output].scale,
        -20,
    )
    _assert_matches_ort(m, (1, 2, 4, 4))


def test_pipeline_normalizes_and_quantizes_fp32_models() -> None:
    fp = classifier(3)
    loaded = load_model(fp, num_random=4, seed=1)
    assert loaded.fp32 is not None
    assert any(n.op_type == "QuantizeLinear" for n in loaded.qdq.graph.node)
    g, qdq = load_qgraph(fp, num_random=4, seed=1)
    assert [type(n).__name__ for n in g.nodes] == [type(n).__name__ for n in loaded.graph.nodes]
    assert g.output_shapes == {g.outputs[0]: (1, 10)}
    c = compare_with_ort(g, qdq, normal_inputs((1, 3, 16, 16), 10, 2))
    assert c.cosine_min >= 0.999


def test_pipeline_takes_a_2d_input() -> None:
    """An fp32 model with an (N, C) input (a multilayer perceptron) is normalized with a
    first Reshape to (N, C, 1, 1) and runs as 1x1 convolutions."""
    rng = np.random.default_rng(11)
    b = GraphBuilder((1, 12), seed=11)
    w1 = b.init(rng.normal(0, 0.4, (12, 16)).astype(np.float32))
    b1 = b.init(rng.normal(0, 0.1, 16).astype(np.float32))
    h = b.relu(b.node("Gemm", ["x", w1, b1]))
    w2 = b.init(rng.normal(0, 0.3, (16, 5)).astype(np.float32))
    y = b.node("Softmax", [b.node("MatMul", [h, w2])], axis=1)
    fp = b.model(y, (1, 5))
    loaded = load_model(fp, num_random=16, seed=0)
    g = loaded.graph
    assert g.tensors[g.inputs[0]].shape == (1, 12, 1, 1)
    assert [type(n).__name__ for n in g.nodes] == ["QConv", "QConv", "QHostOp"]
    assert g.output_shapes == {g.outputs[0]: (1, 5)}
    c = compare_with_ort(g, loaded.qdq, normal_inputs((1, 12), 20, 3), fp32_model=loaded.fp32)
    assert c.cosine_min >= 0.999 and c.identical_int8 == 1.0, c
    assert c.fp32_cosine_mean is not None and c.fp32_cosine_mean >= 0.99, c
