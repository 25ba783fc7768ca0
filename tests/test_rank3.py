"""Rank-3 ``(N, C, L)`` inputs (issue 14): held as one-row ``(N, C, 1, L)`` maps, so 1-D
convolutions (groups, dilation, padding, stride), pools, batch norms, per-channel PRelu
and element-wise ops run on the accelerator as their ``1 x K`` 2-D equivalents, and the
graph output keeps its rank 3."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from vfpga.cli.main import cli
from vfpga.frontend.normalize import normalize_with_report


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


def line_model(seed: int = 0) -> onnx.ModelProto:
    """``[1, 4, 40]`` -> Conv1d(8, k3, pad 1) -> BatchNorm1d -> LeakyRelu -> Conv1d(groups 2,
    dilation 2, stride 2, pads 2/1) -> PRelu (per-channel) -> MaxPool1d(k3, s2, pad 1) ->
    AveragePool1d(k2) -> ``[1, 8, 5]``."""
    rng = np.random.default_rng(seed)

    def c(name: str, *shape: int, scale: float = 0.3, offset: float = 0.0) -> TensorProto:
        v = (rng.standard_normal(shape) * scale + offset).astype(np.float32)
        return numpy_helper.from_array(v, name)

    inits = [
        c("w1", 8, 4, 3), c("b1", 8),
        c("bn_s", 8, offset=1.0), c("bn_b", 8), c("bn_m", 8),
        numpy_helper.from_array(rng.uniform(0.5, 2.0, 8).astype(np.float32), "bn_v"),
        c("w2", 8, 4, 3), c("b2", 8),
        c("slope", 8, 1, scale=0.1, offset=0.2),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"],
                         name="bn"),
        helper.make_node("LeakyRelu", ["bn"], ["lr"], name="leaky", alpha=0.1),
        helper.make_node("Conv", ["lr", "w2", "b2"], ["c2"], name="conv2", group=2,
                         dilations=[2], strides=[2], pads=[2, 1]),
        helper.make_node("PRelu", ["c2", "slope"], ["pr"], name="prelu"),
        helper.make_node("MaxPool", ["pr"], ["mp"], name="maxpool", kernel_shape=[3],
                         strides=[2], pads=[1, 1]),
        helper.make_node("AveragePool", ["mp"], ["y"], name="avgpool", kernel_shape=[2],
                         strides=[2]),
    ]
    g = helper.make_graph(nodes, "line_net",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 40])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 5])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def test_normalize_keeps_every_1d_op_on_the_accelerator() -> None:
    out, report = normalize_with_report(line_model(), "line.onnx")
    assert not report.host_nodes
    convs = [n for n in out.graph.node if n.op_type == "Conv"]
    k = {n.name: helper.get_attribute_value(next(a for a in n.attribute
                                                 if a.name == "kernel_shape")) for n in convs}
    assert k["conv1"] == [1, 3] and k["conv2"] == [1, 3]
    (y,) = out.graph.output
    assert [d.dim_value for d in y.type.tensor_type.shape.dim] == [1, 8, 5]
    (x,) = out.graph.input
    assert [d.dim_value for d in x.type.tensor_type.shape.dim] == [1, 4, 40]


@pytest.mark.parametrize("cores", ["1", "16"])
def test_check_passes_on_a_1d_network(tmp_path, cores: str) -> None:
    src = tmp_path / "line.onnx"
    onnx.save(line_model(), src)
    res = invoke("check", str(src), "--cores", cores)
    assert res.exit_code == 0, res.output
    assert "check passed" in res.output
    assert "host CPU" not in res.output or "│ host CPU     │      0 │" in res.output


def test_compile_puts_every_node_on_the_accelerator_and_run(tmp_path) -> None:
    src = tmp_path / "line.onnx"
    onnx.save(line_model(), src)
    vfb = tmp_path / "line.vfb"
    res = invoke("compile", str(src), "-o", str(vfb))
    assert res.exit_code == 0, res.output
    assert "│ host CPU     │      0 │" in res.output
    # the binary's tensors are 4-D maps (the sequence is the one-row map (1, C, 1, L)),
    # users see the ONNX shapes (1, C, L); the 4-D form is accepted too (the same elements)
    x = np.random.default_rng(3).standard_normal((1, 4, 40)).astype(np.float32)
    outs = []
    for k, arr in enumerate((x, x.reshape(1, 4, 1, 40))):
        np.save(tmp_path / f"x{k}.npy", arr)
        res = invoke("run", str(vfb), "-i", str(tmp_path / f"x{k}.npy"), "-o",
                     str(tmp_path / f"y{k}.npy"), "--dequantize")
        assert res.exit_code == 0, res.output
        outs.append(np.load(tmp_path / f"y{k}.npy"))
    assert outs[0].shape == (1, 8, 5)
    assert np.array_equal(outs[0], outs[1])
