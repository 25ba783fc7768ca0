"""``vfpga compile`` / ``run`` / ``check`` from the command line: a small fp32 model end to
end, and clear errors without tracebacks for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from vfpga.cli.main import cli


def invoke(*args: str):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in res.output
    return res


def tiny_model(path: Path, extra_op: str | None = None) -> Path:
    """conv3x3+relu -> maxpool -> conv1x1 -> global avg -> flatten -> gemm (fp32)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((16, 8, 1, 1)).astype(np.float32) * 0.3,
                                "w2"),
        numpy_helper.from_array(rng.standard_normal((10, 16)).astype(np.float32), "wf"),
        numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "bf"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2"),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    if extra_op:
        nodes[-1].output[0] = "y0"
        nodes.append(helper.make_node(extra_op, ["y0"], ["y"], name="weird_node"))
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 16, 16])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


def test_compile_run_check(tiny, tmp_path):
    vfb = tmp_path / "tiny.vfb"
    res = invoke("compile", str(tiny), "-o", str(vfb), "--cores", "4", "--calib-random", "4")
    assert res.exit_code == 0, res.output
    assert "placement" in res.output and "accelerator" in res.output
    assert "predicted latency on 4 core(s)" in res.output
    assert vfb.is_file()
    dump = invoke("objdump", str(vfb))
    assert dump.exit_code == 0 and ".ifp layer=" in dump.output and "latency=" in dump.output
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32))
    outs = []
    for cores in ("0-3", "12,7,3,9"):
        o = tmp_path / f"y{len(outs)}.npy"
        r = invoke("run", str(vfb), "--input", str(x), "--cores", cores, "-o", str(o))
        assert r.exit_code == 0, r.output
        outs.append(np.load(o))
    assert outs[0].shape == (1, 10) and outs[0].dtype == np.int8
    assert outs[0].tobytes() == outs[1].tobytes()
    chk = invoke("check", str(tiny), "--cores", "3", "--calib-random", "4", "--all-layers")
    assert chk.exit_code == 0, chk.output
    text = " ".join(chk.output.split())  # rich wraps lines at 80 columns
    assert "byte-identical to the integer reference" in text
    assert "reference vs onnxruntime" in text


def test_compile_errors(tiny, tmp_path):
    out = tmp_path / "o.vfb"
    res = invoke("compile", str(tmp_path / "missing.onnx"), "-o", str(out))
    assert res.exit_code != 0 and "no such file" in res.output
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file at all")
    res = invoke("compile", str(bad), "-o", str(out))
    assert res.exit_code != 0 and "bad.onnx" in res.output
    res = invoke("compile", str(tiny), "-o", str(out), "--cores", "17")
    assert res.exit_code != 0 and "--cores 17" in res.output
    weird = tiny_model(tmp_path / "weird.onnx", extra_op="Sin")
    res = invoke("compile", str(weird), "-o", str(out), "--strict")
    assert res.exit_code != 0
    assert "weird_node" in res.output and "Sin" in res.output
    assert not out.exists()
    res = invoke("compile", str(weird), "-o", str(out))  # Sin runs on the host
    assert res.exit_code == 0, res.output
    assert "host segments" in res.output and "weird_node" in res.output


def test_onnx_mlir_and_vfpga_opt_give_the_same_binary(tiny, tmp_path):
    """The acceptance of one compiler: `vfpga import m.onnx -o m.mlir; vfpga compile
    m.mlir`, `vfpga compile m.onnx` and `vfpga-opt m.mlir -p "$(vfpga compile
    --print-pipeline)" -t vfb` write the same bytes."""
    from vfpga.cli.opt import main as opt_main

    mlir = tmp_path / "m.mlir"
    assert invoke("import", str(tiny), "-o", str(mlir)).exit_code == 0
    a, b, c = (tmp_path / f"{n}.vfb" for n in "abc")
    r = invoke("compile", str(mlir), "-o", str(a), "--cores", "3")
    assert r.exit_code == 0, r.output
    r = invoke("compile", str(tiny), "-o", str(b), "--cores", "3")
    assert r.exit_code == 0, r.output
    spec = invoke("compile", "--print-pipeline", "--cores", "3").output.strip()
    assert spec.endswith("ifp-select{cores=3}")
    with pytest.raises(SystemExit) as exc:  # xdsl-opt's main exits 0 at the end
        opt_main([str(mlir), "-p", spec, "-t", "vfb", "-o", str(c)])
        raise SystemExit(0)
    assert exc.value.code in (0, None)
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()
    # the calibration options are refused for .mlir input; a bad pipeline is one error
    r = invoke("compile", str(mlir), "-o", str(tmp_path / "x.vfb"), "-p", "ifp-nothing")
    assert r.exit_code == 2 and "Unrecognized passes: ['ifp-nothing']" in r.output
    assert not (tmp_path / "x.vfb").exists()


def test_check_and_compile_take_a_pipeline(tiny, tmp_path):
    """-p replaces the pipeline in compile and check: a pipeline tiling for 2 cores
    writes a 2-core dispatch whatever --cores says, and check emulates it."""
    spec = ("dnn-plan-memory,dnn-tile{hw=pool16},ifp-package,ifp-lower-to-isa,"
            "ifp-estimate-latency,ifp-select{cores=2}")
    out = tmp_path / "p.vfb"
    r = invoke("compile", str(tiny), "-o", str(out), "-p", spec, "--calib-random", "4")
    assert r.exit_code == 0, r.output
    assert "predicted latency on 2 core(s)" in r.output
    chk = invoke("check", str(tiny), "-p", spec, "--calib-random", "4")
    assert chk.exit_code == 0, chk.output
    assert "compiled in" in chk.output and "for 2 core(s)" in chk.output
