"""Host partitioning (issue 14 item 1): ops no accelerator lowering maps run on the host as
ONNX subgraphs (onnxruntime), in the binary, the emulator and the golden reference."""

from __future__ import annotations

import onnx
import pytest
from click.testing import CliRunner
from host_models import topk_model

from vfpga.cli.main import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def topk(tmp_path_factory):
    p = tmp_path_factory.mktemp("host") / "topk.onnx"
    onnx.save(topk_model(), p)
    return p


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


@pytest.mark.parametrize("cores", ["1", "16"])
def test_check_passes_with_a_host_segment(topk, cores):
    res = invoke("check", str(topk), "--cores", cores)
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
