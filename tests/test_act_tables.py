"""Element-wise functions of one int8 map as 256-entry tables (the CONV ``table``
activation): the compile-time tables reproduce onnxruntime's kernels code for code, and a
model using every such function compiles, emulates bit-exactly on 1 and 16 cores, and
its reference equals onnxruntime's int8 outputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from qdq_models import activations_net, normal_inputs, quantize_qdq
from test_dnn_dialect import assert_same, parse, text_of

from vfpga.cli.main import cli
from vfpga.dialects.dnn_convert import module_to_qgraph, qgraph_to_module
from vfpga.frontend import act_tables as at
from vfpga.frontend.qdq_lower import lower_qdq_mapped
from vfpga.frontend.qgraph import QConv
from vfpga.reference.compare import compare_layers, compare_with_ort

CODES = np.arange(-128, 128, dtype=np.int8).reshape(1, 256, 1, 1)


def _session(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], opset: int):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 256, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 256, 1, 1])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _q(s: float, z: int, tag: str) -> dict[str, np.ndarray]:
    return {f"s{tag}": np.array(s, np.float32), f"z{tag}": np.array(z, np.int8)}


def ort_table(
    op: str, attrs: dict[str, object], s1: float, z1: int, s2: float, z2: int, opset: int = 20
) -> np.ndarray:
    """onnxruntime's output code for every input code of ``DQ -> op -> Q`` (ORT picks
    its kernel: QLinearSigmoid / QLinearLeakyRelu tables, or DQ, float op, Q)."""
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s1", "z1"], ["xf"]),
        helper.make_node(op, ["xf"], ["yf"], **attrs),
        helper.make_node("QuantizeLinear", ["yf", "s2", "z2"], ["y"]),
    ]
    sess = _session(nodes, {**_q(s1, z1, "1"), **_q(s2, z2, "2")}, opset)
    return sess.run(None, {"x": CODES})[0].reshape(-1)


OPS: dict[str, tuple[dict[str, object], Callable[[np.ndarray], np.ndarray]]] = {
    "Sigmoid": ({}, at.sigmoid),
    "Tanh": ({}, at.tanh),
    "HardSigmoid": ({"alpha": 0.2, "beta": 0.5}, at.hard_sigmoid),
    "HardSwish": ({}, at.hard_swish),
    "LeakyRelu": ({"alpha": 0.1}, lambda x: at.leaky_relu(x, 0.1)),
    "Elu": ({"alpha": 1.0}, at.elu),
    "Erf": ({}, at.erf),
    "Gelu": ({}, at.gelu),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_tables_equal_onnxruntime(op: str) -> None:
    attrs, fn = OPS[op]
    rng = np.random.default_rng(len(op))
    for _ in range(25):
        s1, z1 = float(rng.uniform(0.005, 0.12)), int(rng.integers(-60, 60))
        s2, z2 = float(rng.uniform(0.002, 0.06)), int(rng.integers(-128, 60))
        want = ort_table(op, attrs, s1, z1, s2, z2)
        got = at.build_table(fn, s1, z1, s2, z2)
        np.testing.assert_array_equal(got, want, err_msg=f"{op} {s1} {z1} {s2} {z2}")


def test_qlinear_mul_equals_onnxruntime() -> None:
    """x * sigmoid(x) with a quantized sigmoid: ORT's QLinearMul on the two codes."""
    rng = np.random.default_rng(3)
    for _ in range(25):
        s1, z1 = float(rng.uniform(0.01, 0.1)), int(rng.integers(-40, 40))
        sb = float(rng.uniform(0.002, 0.005))
        s2, z2 = float(rng.uniform(0.005, 0.1)), int(rng.integers(-60, 0))
        nodes = [
            helper.make_node("DequantizeLinear", ["x", "s1", "z1"], ["xf"]),
            helper.make_node("Sigmoid", ["xf"], ["bf"]),
            helper.make_node("QuantizeLinear", ["bf", "sb", "zb"], ["bq"]),
            helper.make_node("DequantizeLinear", ["bq", "sb", "zb"], ["bd"]),
            helper.make_node("Mul", ["xf", "bd"], ["yf"]),
            helper.make_node("QuantizeLinear", ["yf", "s2", "z2"], ["y"]),
        ]
        sess = _session(nodes, {**_q(s1, z1, "1"), **_q(sb, -128, "b"), **_q(s2, z2, "2")}, 20)
        want = sess.run(None, {"x": CODES})[0].reshape(-1)
        sig = at.build_table(at.sigmoid, s1, z1, sb, -128)
        got = at.qlinear_mul(at.CODES, s1, z1, sig, sb, -128, s2, z2)
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def qdq() -> onnx.ModelProto:
    return quantize_qdq(activations_net(0), normal_inputs((1, 3, 16, 16), 8, 1))


def test_activations_net_lowers_to_fused_tables(qdq: onnx.ModelProto) -> None:
    res = lower_qdq_mapped(qdq)
    g = res.graph
    tables = [n for n in g.nodes if isinstance(n, QConv) and n.act.kind == "table"]
    # every function is fused into the conv producing its input, except the Tanh whose
    # input the residual Add also reads (a table node of its own); x * sigmoid(x) is one
    # table of x, fused into the depthwise conv
    assert len(tables) == 7
    own = [
        n
        for n in tables
        if n.weight.shape[1:] == (1, 1, 1)
        and np.all(n.weight == 1)
        and n.groups == n.weight.shape[0]
    ]
    assert [n.name for n in own] == ["tanh17_n"]
    assert all(len(n.act.table) == 256 and n.act.lo == n.act.hi for n in tables)
    # the dnn dialect carries the tables, through its text form too
    m = qgraph_to_module(g)
    assert "act table(" in text_of(m) and ' table "0x' in text_of(m)
    assert_same(g, module_to_qgraph(parse(text_of(m))))


def test_activations_net_reference_equals_onnxruntime(qdq: onnx.ModelProto) -> None:
    res = lower_qdq_mapped(qdq)
    c = compare_with_ort(
        res.graph, qdq, normal_inputs((1, 3, 16, 16), 100, 5), onnx_int8=res.onnx_int8
    )
    assert c.identical_int8 == 1.0, c
    rep = compare_layers(res, qdq, normal_inputs((1, 3, 16, 16), 1, 6)[0])
    assert rep.layers and all(la.identical == 1.0 for la in rep.layers)


@pytest.mark.parametrize("cores", ["1", "16"])
def test_vfpga_check_activations_net(tmp_path, cores: str) -> None:
    path = tmp_path / "act.onnx"
    onnx.save(activations_net(0), path)
    r = CliRunner().invoke(cli, ["check", str(path), "--cores", cores, "--num-inputs", "2"])
    assert r.exit_code == 0, r.output
    assert "check passed" in r.output
    assert "byte-identical" in r.output and "identical int8 outputs 100.00%" in r.output


@pytest.mark.parametrize("sixth_first", [False, True])
def test_written_out_hard_swish_becomes_one_table(tmp_path, sixth_first: bool) -> None:
    """``x * clip(x + 3, 0, 6) / 6`` (PaddleOCR's spelling; also ``x * (clip / 6)``) is
    recognised as HardSwish(x): one table fused into the conv producing ``x``, checked
    bit-exact on the emulator and against onnxruntime."""
    from qdq_models import GraphBuilder

    from vfpga.frontend.normalize import normalize

    b = GraphBuilder((1, 3, 8, 8), 2)
    x = b.conv("x", 3, 8)
    f32 = np.float32
    clip = b.node(
        "Clip",
        [
            b.node("Add", [x, b.init(np.array(3, f32))]),
            b.init(np.array(0, f32)),
            b.init(np.array(6, f32)),
        ],
    )
    if sixth_first:
        y = b.node("Mul", [x, b.node("Div", [clip, b.init(np.array(6, f32))])])
    else:
        y = b.node("Div", [b.node("Mul", [x, clip]), b.init(np.array(6, f32))])
    fp = b.model(b.conv(y, 8, 4, 1, pad=0), (1, 4, 8, 8))
    ops = [n.op_type for n in normalize(fp, "m.onnx").graph.node]
    assert ops.count("HardSwish") == 1 and "Mul" not in ops and "Clip" not in ops
    path = tmp_path / "hs.onnx"
    onnx.save(fp, path)
    r = CliRunner().invoke(cli, ["check", str(path), "--ort-inputs", "20"])
    assert r.exit_code == 0, r.output
    assert "identical int8 outputs 100.00%" in r.output


def test_prelu_with_one_slope_is_a_leaky_relu_and_per_channel_is_rewritten(tmp_path) -> None:
    from qdq_models import GraphBuilder

    from vfpga.frontend.normalize import normalize, normalize_with_report

    def model(slope: np.ndarray) -> onnx.ModelProto:
        b = GraphBuilder((1, 3, 8, 8), 4)
        y = b.node("PRelu", [b.conv("x", 3, 4), b.init(slope)])
        return b.model(b.conv(y, 4, 4, 1, pad=0), (1, 4, 8, 8))

    ok = model(np.full((4, 1, 1), 0.25, np.float32))
    ops = [n.op_type for n in normalize(ok, "m.onnx").graph.node]
    assert "LeakyRelu" in ops and "PRelu" not in ops
    path = tmp_path / "prelu.onnx"
    onnx.save(ok, path)
    r = CliRunner().invoke(cli, ["check", str(path), "--ort-inputs", "20"])
    assert r.exit_code == 0, r.output
    assert "identical int8 outputs 100.00%" in r.output
    per_channel = model(np.array([0.1, 0.2, 0.3, 0.4], np.float32).reshape(4, 1, 1))
    # per-channel slopes are not one table: x + (1 - s) * max(-x, 0) on the accelerator
    # (tests/test_eltwise.py checks it end to end)
    _, rep = normalize_with_report(per_channel, "m.onnx")
    assert rep.rewrites["prelu_per_channel"] == 1 and not rep.host_nodes
