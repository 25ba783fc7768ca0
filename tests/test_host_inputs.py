"""Graph inputs the accelerator does not read (issue 14, host partitioning): a float input
that the QDQ model never quantizes (a reflection Pad, a PRelu read it directly) and a
rank-5 volume go to host segments, fed with the input directly, instead of being refused;
the placement report says why."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.http as th
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from serve_util import HW, auth, put_model, solo, thread_server, write_repo

from vfpga.backend.binary import read_vfb
from vfpga.cli.main import cli
from vfpga.serve.repository import compile_onnx


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


def reflect_pad_model() -> onnx.ModelProto:
    """``ReflectionPad2d`` on the input, then ``Conv -> Relu``: onnxruntime's quantizer
    does not quantize Pad, so the Pad reads the float input (a host segment) and the conv
    runs on the accelerator."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64), "pads")
    g = helper.make_graph(
        [
            helper.make_node("Pad", ["x", "pads"], ["p"], name="reflect", mode="reflect"),
            helper.make_node("Conv", ["p", "w", "b"], ["c"], name="conv"),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        "reflect_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 10])],
        [w, b, pads],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def volume_model() -> onnx.ModelProto:
    """A rank-5 ``[1, 2, 4, 5, 6]`` input: BatchNorm3d -> Conv3d -> MaxPool3d (all host)."""
    rng = np.random.default_rng(1)

    def c(name: str, *shape: int, off: float = 0.0) -> TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3 + off)
                                       .astype(np.float32), name)

    g = helper.make_graph(
        [
            helper.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["n"], name="bn3d"),
            helper.make_node("Conv", ["n", "w", "b"], ["c"], name="conv3d", pads=[1] * 6),
            helper.make_node("MaxPool", ["c"], ["y"], name="pool3d", kernel_shape=[2, 2, 2],
                             strides=[2, 2, 2]),
        ],
        "volume_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2, 3])],
        [c("s", 2, off=1.0), c("bb", 2), c("m", 2), c("v", 2, off=2.0), c("w", 3, 2, 3, 3, 3),
         c("b", 3)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("cores", ["1", "16"])
@pytest.mark.parametrize("make", [reflect_pad_model, volume_model])
def test_check_passes(tmp_path, make, cores: str) -> None:
    src = tmp_path / "m.onnx"
    onnx.save(make(), src)
    res = invoke("check", str(src), "--cores", cores)
    assert res.exit_code == 0, res.output
    assert "check passed" in res.output


def test_float_input_feeds_the_host_segment_directly(tmp_path) -> None:
    src = tmp_path / "pad.onnx"
    onnx.save(reflect_pad_model(), src)
    out = tmp_path / "pad.vfb"
    res = invoke("compile", str(src), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "reflect" in res.output and "op type Pad is not supported" in res.output
    vfb = read_vfb(out)
    t_in = next(t for t in vfb.tensors if t.role == "input")
    assert t_in.dtype == "float32" and (t_in.scale, t_in.zero_point) == (1.0, 0)
    assert len(vfb.layers) >= 1  # the conv stays on the accelerator


def test_volume_segment_reports_the_rank(tmp_path) -> None:
    src = tmp_path / "vol.onnx"
    onnx.save(volume_model(), src)
    out = tmp_path / "vol.vfb"
    res = invoke("compile", str(src), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "rank-5 volumes go to the host" in res.output
    assert read_vfb(out).num_layers == 0


def test_all_host_float_model_matches_onnxruntime_exactly(tmp_path) -> None:
    """A lone Pad on the float input: the emulator's output is onnxruntime's fp32 result
    on the original model, bit for bit (nothing is quantized anywhere)."""
    pads = numpy_helper.from_array(np.array([0, 0, 2, 1, 0, 0, 0, 3], np.int64), "pads")
    g = helper.make_graph(
        [helper.make_node("Pad", ["x", "pads"], ["y"], name="edge_pad", mode="edge")],
        "edge_pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 6, 9])],
        [pads],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    src = tmp_path / "edge.onnx"
    onnx.save(m, src)
    vfb = tmp_path / "edge.vfb"
    assert invoke("compile", str(src), "-o", str(vfb)).exit_code == 0
    x = np.random.default_rng(2).standard_normal((1, 3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = invoke("run", str(vfb), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"))
    assert res.exit_code == 0, res.output
    want = ort.InferenceSession(str(src)).run(None, {"x": x})[0]
    got = np.load(tmp_path / "y.npy")
    assert got.dtype == np.float32 and np.array_equal(got, want)
    # the server takes the float input as it is, too
    repo = write_repo(tmp_path / "repo", {"alice": 2}, {})
    put_model(repo, "edge", "alice", src.read_bytes(), filename="model.onnx")
    with thread_server(repo, tmp_path / "state", request_timeout_s=20.0) as s:
        c = th.InferenceServerClient(s.url, network_timeout=60.0)
        inp = th.InferInput("x", [1, 3, 4, 5], "FP32")
        inp.set_data_from_numpy(x)
        r = c.infer("edge", [inp], headers=auth("alice"))
        assert np.array_equal(r.as_numpy("y"), want)
        assert np.array_equal(solo(compile_onnx(src, HW, {}), x)["y"], want)


def test_zero_pad_as_graph_output_runs_on_the_host(tmp_path) -> None:
    """``Conv -> Relu -> Pad(zeros)`` as the graph output: no Conv or AveragePool folds
    the Pad, so it is an explicit Pad on the host."""
    rng = np.random.default_rng(4)
    w = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64), "pads")
    g = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("Pad", ["r", "pads"], ["y"], name="zero_pad"),
        ],
        "zero_pad_out",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 10, 8])],
        [w, b, pads],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    src = tmp_path / "zp.onnx"
    onnx.save(m, src)
    res = invoke("check", str(src), "--cores", "4")
    assert res.exit_code == 0, res.output
    assert "check passed" in res.output
    res = invoke("compile", str(src), "-o", str(tmp_path / "zp.vfb"))
    assert res.exit_code == 0, res.output
    assert "1 OnnxSegment" in res.output and "op type Pad is not supported" in res.output


def test_an_input_both_quantized_and_read_float_is_one_clear_error(tmp_path) -> None:
    """A QDQ model whose input feeds a QuantizeLinear (for a MaxPool) and, unquantized, a
    reflection Pad: an input is either quantized or float, so this is refused naming the
    node; no output file. (onnxruntime's quantizer never writes this: once it quantizes
    an input, every reader reads the DequantizeLinear.)"""
    sc = numpy_helper.from_array(np.array(0.05, np.float32), "sc")
    zp = numpy_helper.from_array(np.array(0, np.int8), "zp")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    g = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["xq"], name="q_x"),
            helper.make_node("DequantizeLinear", ["xq", "sc", "zp"], ["xd"], name="dq_x"),
            helper.make_node("MaxPool", ["xd"], ["m"], name="pool", kernel_shape=[2, 2]),
            helper.make_node("QuantizeLinear", ["m", "sc", "zp"], ["mq"], name="q_m"),
            helper.make_node("DequantizeLinear", ["mq", "sc", "zp"], ["y1"], name="dq_m"),
            helper.make_node("Pad", ["x", "pads"], ["y2"], name="reflect", mode="reflect"),
        ],
        "both",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [1, 3, 5, 5]),
         helper.make_tensor_value_info("y2", TensorProto.FLOAT, [1, 3, 8, 8])],
        [sc, zp, pads],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    src = tmp_path / "both.onnx"
    onnx.save(m, src)
    out = tmp_path / "both.vfb"
    res = invoke("compile", str(src), "-o", str(out))
    assert res.exit_code == 2, res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert "'reflect' (Pad)" in line and "either quantized or float" in line
    assert "Traceback" not in res.output and not out.exists()
