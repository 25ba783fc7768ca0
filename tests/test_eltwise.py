"""Element-wise operations of two maps on the accelerator (issue 14, ISA version 3):
Mul of two maps (same shape, and the squeeze-excite gate's per-channel ``[1, C, 1, 1]``
operand broadcast over a map), Sub, Add with broadcast. From the user's side: `vfpga
check` on 1 and 16 cores and `vfpga compile --strict` (nothing on the host); then the
reference against onnxruntime, the lowering and the dialect."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from qdq_models import GraphBuilder, eltwise_net, normal_inputs, prelu_net, quantize_qdq
from test_dnn_dialect import assert_same, parse, text_of

from vfpga.cli.main import cli
from vfpga.dialects.dnn_convert import module_to_qgraph, qgraph_to_module
from vfpga.frontend.qdq_lower import lower_qdq_mapped
from vfpga.frontend.qgraph import QAdd
from vfpga.reference.compare import compare_layers, compare_with_ort

SHAPE = (1, 3, 16, 16)


@pytest.mark.parametrize("cores", ["1", "16"])
@pytest.mark.parametrize("net", [eltwise_net, prelu_net])
def test_vfpga_check_eltwise_net(tmp_path, cores: str, net) -> None:
    """Both nets, every element-wise op on the accelerator (prelu_net: per-channel PRelu
    as x + (1 - s) * max(-x, 0), two depthwise 1x1 convs and an Add), bit-exact against
    the reference and onnxruntime."""
    path = tmp_path / "elt.onnx"
    onnx.save(net(0), path)
    r = CliRunner().invoke(cli, ["check", str(path), "--cores", cores, "--num-inputs", "2"])
    assert r.exit_code == 0, r.output
    assert "check passed" in r.output
    assert "byte-identical" in r.output and "identical int8 outputs 100.00%" in r.output


def test_strict_compile_places_every_eltwise_op_on_the_accelerator(tmp_path) -> None:
    path = tmp_path / "elt.onnx"
    onnx.save(eltwise_net(0), path)
    out = tmp_path / "elt.vfb"
    r = CliRunner().invoke(
        cli, ["compile", str(path), "--strict", "-o", str(out)], env={"COLUMNS": "200"}
    )
    assert r.exit_code == 0, r.output
    assert out.exists()
    row = next(ln for ln in r.output.splitlines() if "accelerator" in ln)
    assert "1 add" in row and "3 mul" in row and "2 sub" in row, row
    host = next(ln for ln in r.output.splitlines() if "host CPU" in ln)
    assert "│ -" in host or host.rstrip(" │").endswith("-"), host


@pytest.fixture(scope="module")
def qdq() -> onnx.ModelProto:
    return quantize_qdq(eltwise_net(0), normal_inputs(SHAPE, 8, 1))


def test_eltwise_net_lowers_to_mul_sub_add_nodes(qdq: onnx.ModelProto) -> None:
    g = lower_qdq_mapped(qdq).graph
    elt = [n for n in g.nodes if isinstance(n, QAdd)]
    ops = sorted(n.op for n in elt)
    assert ops == ["add", "mul", "mul", "mul", "sub", "sub"]
    shapes = {n.name: (g.tensors[n.a].shape, g.tensors[n.b].shape) for n in elt}
    # the broadcast operand is always b (the gate written first is swapped)
    bcast = [n for n in elt if shapes[n.name][1][2:] == (1, 1)]
    assert len(bcast) == 4 and all(shapes[n.name][0][2:] == (16, 16) for n in bcast)
    # the Sub whose per-channel operand came first is swapped and negated
    assert sorted(np.sign(n.divisor) for n in elt if n.op == "sub") == [-1.0, 1.0]
    # the dnn dialect carries op and divisor, through its text form too
    m = qgraph_to_module(g)
    assert " op mul " in text_of(m) and " op sub " in text_of(m)
    assert_same(g, module_to_qgraph(parse(text_of(m))))


def test_eltwise_net_reference_equals_onnxruntime(qdq: onnx.ModelProto) -> None:
    """100 inputs: every final int8 output identical to onnxruntime (QLinearMul,
    QLinearAdd with broadcast, float Sub), and every layer on ORT's own inputs."""
    res = lower_qdq_mapped(qdq)
    c = compare_with_ort(res.graph, qdq, normal_inputs(SHAPE, 100, 5), onnx_int8=res.onnx_int8)
    assert c.identical_int8 == 1.0, c
    rep = compare_layers(res, qdq, normal_inputs(SHAPE, 1, 6)[0])
    assert rep.layers and all(la.identical == 1.0 for la in rep.layers)


def test_mul_of_maps_with_other_shapes_runs_on_the_host(tmp_path) -> None:
    """A broadcast the accelerator does not have (a [1, 1, H, W] operand) is not an
    error: normalize leaves the Mul for the host, with the reason in the report."""
    from vfpga.frontend.normalize import normalize_with_report

    b = GraphBuilder((1, 3, 8, 8), 3)
    x = b.conv("x", 3, 4)
    m = b.node("Mul", [x, b.conv(x, 4, 1, 1, pad=0)])
    fp = b.model(b.conv(m, 4, 4, 1, pad=0), (1, 4, 8, 8))
    _, rep = normalize_with_report(fp, "m.onnx")
    assert any("per-channel (N, C, 1, 1)" in why for why in rep.host_nodes.values())
    path = tmp_path / "m.onnx"
    onnx.save(fp, path)
    r = CliRunner().invoke(cli, ["compile", str(path), "--strict", "-o", str(tmp_path / "m.vfb")])
    assert r.exit_code == 2, r.output
    assert "Mul" in r.output and "per-channel" in r.output
    assert not (tmp_path / "m.vfb").exists()


def _ort_qlinear_mul(sa: float, za: int, sb: float, zb: int, so: float, zo: int,
                     a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """onnxruntime's uint8 ``DQ, DQ -> Mul -> Q`` (its ``QLinearMul``) on uint8 codes."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(v, t), k) for k, v, t in (
        ("sa", sa, np.float32), ("za", za, np.uint8), ("sb", sb, np.float32),
        ("zb", zb, np.uint8), ("so", so, np.float32), ("zo", zo, np.uint8))]
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bf"]),
             helper.make_node("Mul", ["af", "bf"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "so", "zo"], ["y"])]
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, list(a.shape)),
         helper.make_tensor_value_info("b", TensorProto.UINT8, list(b.shape))],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, list(a.shape))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    so_ = ort.SessionOptions()
    so_.intra_op_num_threads = 1
    so_.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so_, providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": a, "b": b})[0]


@pytest.mark.parametrize("broadcast", [False, True])
def test_mul_arithmetic_equals_onnxruntime_qlinearmul_on_every_code_pair(broadcast) -> None:
    """ELTWISE mul (the golden reference's, the emulator's and the act-table
    ``qlinear_mul``) equals onnxruntime's ``QLinearMul`` on all 65536 uint8 code pairs for
    random scales and zero points, same shape and with a per-channel ``[1, C, 1, 1]``
    operand. (Dequantizing each operand and dividing the float product by the output
    scale, the scalar form of MLAS, differs from ORT's vectorised kernel on about one
    value in 10**5: that was the squeeze-excite gate's last difference.)"""
    from vfpga.emulator import kernels
    from vfpga.frontend import act_tables as at
    from vfpga.isa.float32 import mul_ratio
    from vfpga.isa.spec import EltOp
    from vfpga.reference.arith import mul_sub_requant

    rng = np.random.default_rng(11 + broadcast)
    ua = np.repeat(np.arange(256, dtype=np.uint8), 256).reshape(1, 256, 16, 16)
    ub = np.tile(np.arange(256, dtype=np.uint8), 256).reshape(1, 256, 16, 16)
    if broadcast:  # B per channel: channel c of A (256 codes a) meets the one code c of B
        ua = np.tile(np.arange(256, dtype=np.uint8), 256).reshape(1, 256, 16, 16)
        ub = np.arange(256, dtype=np.uint8).reshape(1, 256, 1, 1)
    for _ in range(12):
        sa, sb = (float(np.float32(v)) for v in rng.uniform(0.002, 0.1, 2))
        so = float(np.float32(rng.uniform(0.1, 1.0) * sa * sb * 128))
        za, zb, zo = (int(v) for v in rng.integers(0, 256, 3))
        want = _ort_qlinear_mul(sa, za, sb, zb, so, zo, ua, ub).astype(np.int64) - 128
        a8 = (ua.astype(np.int16) - 128).astype(np.int8)
        b8 = (ub.astype(np.int16) - 128).astype(np.int8)
        ref = mul_sub_requant(a8, b8, "mul", sa, sb, za - 128, zb - 128, zo - 128, so)
        np.testing.assert_array_equal(ref, want)
        # the emulator's kernel: channels last, B one value per channel (b_period = C)
        a_hwc = a8[0].transpose(1, 2, 0).reshape(-1)
        b_hwc = b8[0].transpose(1, 2, 0).reshape(-1)
        got = kernels.eltwise(a_hwc, b_hwc, op=EltOp.MUL,
                              scale_a=mul_ratio(sa, sb, so), a_zp=za - 128, b_zp=zb - 128,
                              out_zp=zo - 128, b_period=256 if broadcast else 0)
        np.testing.assert_array_equal(got, want[0].transpose(1, 2, 0).reshape(-1))
        if not broadcast:
            tab = at.qlinear_mul(a8, sa, za - 128, b8, sb, zb - 128, so, zo - 128)
            np.testing.assert_array_equal(tab, want)


def test_per_channel_prelu_normalizes_to_accelerator_layers() -> None:
    from vfpga.frontend.normalize import normalize_with_report

    g, rep = normalize_with_report(prelu_net(0), "prelu.onnx")
    assert rep.rewrites["prelu_per_channel"] == 2
    assert not rep.host_nodes
    ops = [n.op_type for n in g.graph.node]
    assert "PRelu" not in ops and ops.count("LeakyRelu") == 1  # the one-slope PRelu
    assert ops.count("Add") == 3  # the residual Add and one per per-channel PRelu


def test_per_channel_prelu_equals_onnxruntime_and_fp32() -> None:
    """100 inputs: every final int8 output identical to onnxruntime on the same QDQ
    model; the decomposition stays close to the fp32 PRelu model."""
    from vfpga.frontend.pipeline import load_model

    loaded = load_model(prelu_net(0), seed=0)
    inputs = normal_inputs((1, 3, 16, 16), 100, 9)
    c = compare_with_ort(loaded.graph, loaded.qdq, inputs, onnx_int8=loaded.lowered.onnx_int8,
                         fp32_model=loaded.fp32)
    assert c.identical_int8 == 1.0 and c.cosine_min == pytest.approx(1.0)
    assert c.fp32_cosine_mean is not None and c.fp32_cosine_mean >= 0.999
