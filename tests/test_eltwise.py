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
from qdq_models import GraphBuilder, eltwise_net, normal_inputs, quantize_qdq
from test_dnn_dialect import assert_same, parse, text_of

from vfpga.cli.main import cli
from vfpga.dialects.dnn_convert import module_to_qgraph, qgraph_to_module
from vfpga.frontend.qdq_lower import lower_qdq_mapped
from vfpga.frontend.qgraph import QAdd
from vfpga.reference.compare import compare_layers, compare_with_ort

SHAPE = (1, 3, 16, 16)


@pytest.mark.parametrize("cores", ["1", "16"])
def test_vfpga_check_eltwise_net(tmp_path, cores: str) -> None:
    path = tmp_path / "elt.onnx"
    onnx.save(eltwise_net(0), path)
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
