"""Host partitioning (issue 14 item 1): ops no accelerator lowering maps run on the host as
ONNX subgraphs (onnxruntime), in the binary, the emulator and the golden reference."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from host_models import custom_domain_model, nms_model, topk_model

from vfpga.backend.binary import read_vfb
from vfpga.cli.main import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


def _saved(tmp_path_factory, name: str, model: onnx.ModelProto):
    p = tmp_path_factory.mktemp("host") / name
    onnx.save(model, p)
    return p


@pytest.fixture(scope="module")
def topk(tmp_path_factory):
    return _saved(tmp_path_factory, "topk.onnx", topk_model())


def test_compile_reports_the_host_segment(topk, tmp_path):
    out = tmp_path / "t.vfb"
    res = invoke("compile", str(topk), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.exists()
    text = res.output
    assert "host segments" in text
    # TopK and the Abs it feeds form ONE segment (a maximal float-connected run)
    assert "1 OnnxSegment" in text
    assert "topk" in text and "abs" in text and "TopK" in text and "Abs" in text
    assert "op type TopK is not supported" in text
    assert "reads a float value computed on the host" in text


def test_strict_lists_every_unsupported_node_in_one_error(topk, tmp_path):
    out = tmp_path / "t.vfb"
    res = invoke("compile", str(topk), "-o", str(out), "--strict")
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1
    assert "'topk' (TopK)" in res.output and "'abs' (Abs)" in res.output
    assert "2 node(s)" in res.output
    assert not out.exists()


@pytest.mark.parametrize("model", ["topk", "custom"])
@pytest.mark.parametrize("cores", ["1", "16"])
def test_check_passes_with_a_host_segment(model, cores, request):
    """Bit-exact with host segments: TopK + Abs, and a custom-domain op (QuickGelu)."""
    res = invoke("check", str(request.getfixturevalue(model)), "--cores", cores)
    assert res.exit_code == 0, res.output
    assert "byte-identical" in res.output
    assert "identical int8 outputs 100.00%" in res.output


def test_a_broken_segment_faults_that_task_only(topk, tmp_path):
    """A segment whose ONNX model onnxruntime rejects is a fault of the task, naming it."""
    import base64

    from vfpga.backend.binary import read_vfb, write_vfb
    from vfpga.errors import VfpgaError

    out = tmp_path / "t.vfb"
    assert invoke("compile", str(topk), "-o", str(out)).exit_code == 0
    vfb = read_vfb(out)
    (seg,) = [h for h in vfb.host_ops if h.op_type == "OnnxSegment"]
    seg.attrs["onnx"] = base64.b64encode(b"\x08\x07garbage").decode()
    bad = tmp_path / "bad.vfb"
    write_vfb(bad, vfb)
    res = CliRunner().invoke(cli, ["run", str(bad)])
    assert res.exit_code != 0
    assert "host segment" in res.output and "onnxruntime" in res.output
    assert "Traceback" not in res.output
    from vfpga.emulator.host_ops import HostOpFault, check_host_op

    with pytest.raises(VfpgaError if not issubclass(HostOpFault, VfpgaError) else HostOpFault):
        check_host_op(seg, vfb.tensors)


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    return _saved(tmp_path_factory, "custom.onnx", custom_domain_model())


def test_a_custom_domain_op_runs_in_a_host_segment(custom, tmp_path):
    """onnxruntime's com.microsoft QuickGelu (no ONNX schema: its shape comes from one
    onnxruntime run) and a TopK beside it form one host segment; the layers after it are
    quantized and on the accelerator (check: test_check_passes_with_a_host_segment)."""
    out = tmp_path / "c.vfb"
    res = invoke("compile", str(custom), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "1 OnnxSegment" in res.output
    assert "com.microsoft.QuickGelu" in res.output and "TopK" in res.output
    assert "op domain 'com.microsoft' is not supported" in res.output
    assert "3 conv" in res.output  # conv1, conv2 and the classifier stay on the accelerator


def test_strict_lists_unsupported_nodes_of_every_kind(custom, tmp_path):
    out = tmp_path / "c.vfb"
    res = invoke("compile", str(custom), "-o", str(out), "--strict")
    assert res.exit_code == 2
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert "3 node(s)" in line
    for node in ("'quick_gelu' (com.microsoft.QuickGelu)", "'topk' (TopK)", "'add' (Add)"):
        assert node in line, node
    assert "Traceback" not in res.output
    assert not out.exists()


def test_an_op_nobody_implements_is_one_clear_error(tmp_path):
    """A custom-domain op onnxruntime does not know cannot run on the host either."""
    src = tmp_path / "unknown.onnx"
    onnx.save(custom_domain_model(domain="org.example"), src)
    out = tmp_path / "u.vfb"
    res = invoke("compile", str(src), "-o", str(out))
    assert res.exit_code == 2
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert str(src) in line
    assert "'quick_gelu' (QuickGelu in domain 'org.example')" in line
    assert "onnxruntime cannot run" in line
    assert not out.exists()


def test_nms_output_of_data_dependent_length_runs_on_the_host(tmp_path):
    """NonMaxSuppression's output length is decided by the data: a dynamic output of its
    host segment (not in DDR); run, check (1 and 16 cores) return onnxruntime's shape."""
    src = tmp_path / "nms.onnx"
    onnx.save(nms_model(), src)
    out = tmp_path / "n.vfb"
    res = invoke("compile", str(src), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "NonMaxSuppression" in res.output and "host:selected" in res.output
    vfb = read_vfb(out)
    t = vfb.tensors[vfb.tensor_index("selected")]
    assert (t.dtype, t.layout, t.shape, t.size, t.dynamic) == ("int64", "raw", (0, 3), 0, True)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = invoke("run", str(out), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.npz"))
    assert res.exit_code == 0, res.output
    got = np.load(tmp_path / "o.npz")["selected"]
    fp32 = ort.InferenceSession(str(src)).run(["selected"], {"x": x})[0]
    assert got.dtype == np.int64 and got.ndim == 2 and got.shape[1] == 3
    assert 1 <= got.shape[0] <= 2 and got.shape == fp32.shape
    for cores in ("1", "16"):
        res = invoke("check", str(src), "--cores", cores)
        assert res.exit_code == 0, res.output
        assert "check passed" in res.output


def test_nms_model_through_the_pool_and_the_server(tmp_path):
    """The pool returns the dynamic output with its run-time shape; the server's metadata
    shows -1 for the data-dependent dimension and its response the actual shape."""
    import tritonclient.http as th
    from serve_util import HW, auth, put_model, solo, thread_server, write_repo

    from vfpga.serve.repository import compile_onnx

    src = tmp_path / "nms.onnx"
    onnx.save(nms_model(), src)
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    want = solo(compile_onnx(src, HW, {}), x)["selected"]
    assert want.dtype == np.int64 and want.shape[1] == 3
    repo = write_repo(tmp_path / "repo", {"alice": 2}, {})
    put_model(repo, "det", "alice", src.read_bytes(), filename="model.onnx")
    with thread_server(repo, tmp_path / "state", request_timeout_s=20.0) as s:
        c = th.InferenceServerClient(s.url, network_timeout=60.0)
        m = c.get_model_metadata("det", headers=auth("alice"))
        sel = next(o for o in m["outputs"] if o["name"] == "selected")
        assert sel == {"name": "selected", "datatype": "INT64", "shape": [-1, 3]}
        inp = th.InferInput("x", [1, 3, 16, 16], "FP32")
        inp.set_data_from_numpy(x)
        r = c.infer("det", [inp], headers=auth("alice"))
        assert np.array_equal(r.as_numpy("selected"), want)


def test_a_data_dependent_shape_an_accelerator_tensor_would_hold_is_refused(tmp_path):
    """A QDQ model that quantizes NonZero's result (of data-dependent length) for the
    accelerator: refused with one error naming the node; no output file."""
    from onnx import TensorProto, helper, numpy_helper

    sc = numpy_helper.from_array(np.array(0.05, np.float32), "sc")
    zp = numpy_helper.from_array(np.array(0, np.int8), "zp")
    g = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["xq"], name="q_x"),
            helper.make_node("DequantizeLinear", ["xq", "sc", "zp"], ["xd"], name="dq_x"),
            helper.make_node("NonZero", ["xd"], ["nz"], name="nonzero"),
            helper.make_node("Cast", ["nz"], ["nzf"], name="to_float", to=TensorProto.FLOAT),
            helper.make_node("QuantizeLinear", ["nzf", "sc", "zp"], ["nq"], name="q_nz"),
            helper.make_node("DequantizeLinear", ["nq", "sc", "zp"], ["y"], name="dq_nz"),
        ],
        "nonzero_q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, None])],
        [sc, zp],
    )
    src = tmp_path / "nz.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), src)
    out = tmp_path / "nz.vfb"
    res = invoke("compile", str(src), "-o", str(out))
    assert res.exit_code == 2, res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert "'nonzero' (NonZero)" in line and "static shape" in line
    assert "Traceback" not in res.output and not out.exists()
