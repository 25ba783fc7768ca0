"""Split and Slice along channels are free views (issue 14): the consumer's LOADs read a
channel range of the producer's output in place. From the user's side: ONNX models with
ShuffleNetV2's unit (Split, branch, Concat, channel shuffle, Split again), compiled,
emulated bit-exact on several core counts and compared with onnxruntime; then the views
in the memory plan and the fallbacks to the host."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from _norm_util import make_model
from onnx import helper
from test_cli_compile import invoke

from vfpga.frontend.qgraph import QSlice
from vfpga.hw import load_hw
from vfpga.isa.spec import Opcode

C, H, W = 16, 10, 12
HALF = C // 2
RNG = np.random.default_rng(7)


def _rnd(*shape: int) -> np.ndarray:
    return RNG.normal(0, 0.4, shape).astype(np.float32)


def _unit_model(opset: int = 13) -> onnx.ModelProto:
    """stem -> Split -> (x1, branch(x2)) -> Concat -> shuffle(2) -> Slice lo/hi -> ...;
    outputs: an Add of the two halves, a MaxPool of the low half, the high half itself."""
    split_in = ["a", "sp"] if opset < 18 else ["a"]
    split_kw = {} if opset < 18 else {"num_outputs": 2}
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["a0"], name="stem"),
        helper.make_node("Relu", ["a0"], ["a"], name="stem_relu"),
        helper.make_node("Split", split_in, ["x1", "x2"], name="split", axis=1, **split_kw),
        helper.make_node("Conv", ["x2", "w1", "b1"], ["p0"], name="pw1"),
        helper.make_node("Relu", ["p0"], ["p"], name="pw1_relu"),
        helper.make_node("Conv", ["p", "wd", "bd"], ["d"], name="dw", group=HALF,
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "w2", "b2"], ["q0"], name="pw2"),
        helper.make_node("Relu", ["q0"], ["q"], name="pw2_relu"),
        helper.make_node("Concat", ["x1", "q"], ["c"], name="cat", axis=1),
        helper.make_node("Reshape", ["c", "s5"], ["c5"], name="rs1"),
        helper.make_node("Transpose", ["c5"], ["t5"], name="shuffle", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t5", "s4"], ["s"], name="rs2"),
        helper.make_node("Slice", ["s", "zero", "half", "one"], ["y1"], name="slice_lo"),
        helper.make_node("Slice", ["s", "half", "big", "one"], ["y2"], name="slice_hi"),
        helper.make_node("Conv", ["y2", "w3", "b3"], ["z0"], name="pw3"),
        helper.make_node("Relu", ["z0"], ["z"], name="pw3_relu"),
        helper.make_node("MaxPool", ["y1"], ["m"], name="mp", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Add", ["y1", "z"], ["sum"], name="add"),
    ]
    inits = {"w0": _rnd(C, 3, 1, 1), "b0": _rnd(C), "w1": _rnd(HALF, HALF, 1, 1),
             "b1": _rnd(HALF), "wd": _rnd(HALF, 1, 3, 3), "bd": _rnd(HALF),
             "w2": _rnd(HALF, HALF, 1, 1), "b2": _rnd(HALF), "w3": _rnd(HALF, HALF, 1, 1),
             "b3": _rnd(HALF), "s5": np.array([1, 2, HALF, H, W], np.int64),
             "s4": np.array([1, C, H, W], np.int64), "zero": np.array([0], np.int64),
             "half": np.array([HALF], np.int64), "big": np.array([2**62], np.int64),
             "one": np.array([1], np.int64)}
    if opset < 18:
        inits["sp"] = np.array([HALF, HALF], np.int64)
    return make_model(nodes, inits, (1, 3, H, W),
                      {"sum": (1, HALF, H, W), "m": (1, HALF, H // 2, W // 2),
                       "y2": (1, HALF, H, W)}, opset=opset)


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("slice") / "unit.onnx"
    onnx.save(_unit_model(), str(p))
    return p


@pytest.mark.parametrize("cores", [1, 2, 5])
def test_split_and_slice_are_free_views_and_bit_exact(unit: Path, cores: int) -> None:
    from vfpga.flow import check_one, compile_file

    hw = load_hw("pool16")
    _, res = compile_file(unit, hw, cores)
    g = res.plan.graph
    slices = [n for n in g.nodes if isinstance(n, QSlice)]
    assert [(n.name, n.start) for n in slices] == [("split", 0), ("split_1", HALF),
                                                   ("slice_lo", 0), ("slice_hi", HALF)]
    # every slice is a view of its input's storage at its channel offset
    for n in slices:
        src, view = res.plan.places[n.input], res.plan.places[n.output]
        assert view.offset == src.offset + n.start and view.c_stride == src.c_stride == C
    # no layer computes a slice; the branch conv, the pool and the add read them in place
    layer_names = {lc.spec.node.name for lc in res.layers}
    assert not layer_names & {n.name for n in slices}
    assert any(n.startswith("y2") and n.endswith("/copy") for n in layer_names)  # output
    loads = res.vfb.program.by_op[Opcode.LOAD]
    assert np.any(loads["n2"] < loads["stride1"])  # a LOAD of a channel range
    x = np.random.default_rng(cores).standard_normal((1, 3, H, W)).astype(np.float32)
    rep = check_one(res, hw, x)
    assert rep.outputs_equal and all(lc.ok for lc in rep.layers), rep.first_mismatch


@pytest.mark.parametrize("opset", [13, 18])
def test_vfpga_check_split_slice(tmp_path: Path, opset: int) -> None:
    p = tmp_path / "unit.onnx"
    onnx.save(_unit_model(opset), str(p))
    r = invoke("check", str(p), "--cores", "3", "--ort-inputs", "20")
    out = " ".join(r.output.split())
    assert r.exit_code == 0, out
    assert "identical int8 outputs 100.00%" in out and "check passed" in out
    r = invoke("compile", str(p), "-o", str(tmp_path / "u.vfb"), "--strict")
    out = " ".join(r.output.split())
    assert r.exit_code == 0, out
    assert "4 channel ranges read in place" in out and "host CPU │ 0" in out


def test_other_splits_and_slices_run_on_the_host(tmp_path: Path) -> None:
    """A Split along H and a Slice with step 2 have no view: host segments, with the
    reason; --strict lists both."""
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["a"], name="stem"),
        helper.make_node("Split", ["a", "sp"], ["h1", "h2"], name="split_h", axis=2),
        helper.make_node("Slice", ["a", "zero", "big", "one", "two"], ["ev"],
                         name="slice_step2"),
        helper.make_node("Conv", ["ev", "w1", "b1"], ["e"], name="after_step2"),
    ]
    inits = {"w0": _rnd(C, 3, 1, 1), "b0": _rnd(C), "sp": np.array([4, 6], np.int64),
             "zero": np.array([0], np.int64), "big": np.array([C], np.int64),
             "one": np.array([1], np.int64), "two": np.array([2], np.int64),
             "w1": _rnd(4, HALF, 1, 1), "b1": _rnd(4)}
    m = make_model(nodes, inits, (1, 3, H, W),
                   {"h1": (1, C, 4, W), "h2": (1, C, 6, W), "e": (1, 4, H, W)})
    p = tmp_path / "other.onnx"
    onnx.save(m, str(p))
    r = invoke("compile", str(p), "-o", str(tmp_path / "o.vfb"))
    out = " ".join(r.output.split())
    assert r.exit_code == 0, out
    assert "host segments" in out and "split_h" in out and "slice_step2" in out
    r = invoke("compile", str(p), "-o", str(tmp_path / "o2.vfb"), "--strict")
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "--strict: 2 node(s) cannot run on the accelerator" in out
    assert "'slice_step2' (Slice): Slice with step 2 is not supported; only step 1" in out
    assert "'split_h' (Split): Split along axis 2 of a rank-4 tensor is not supported" in out
    assert not (tmp_path / "o2.vfb").exists()


def test_qdq_model_with_split_is_lowered_to_views(tmp_path: Path) -> None:
    """A QDQ model from another tool (onnxruntime's quantize_static on the raw graph, so
    ``DQ -> Split -> Q``) gets the same views, bit-exact against onnxruntime."""
    from qdq_models import quantize_qdq

    from vfpga.flow import check_one, compile_file
    from vfpga.reference.compare import compare_with_ort, random_inputs

    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["a0"], name="stem"),
        helper.make_node("Relu", ["a0"], ["a"], name="stem_relu"),
        helper.make_node("Split", ["a", "sp"], ["l", "r"], name="split", axis=1),
        helper.make_node("Conv", ["r", "w1", "b1"], ["r2"], name="right"),
        helper.make_node("Add", ["l", "r2"], ["y"], name="add"),
    ]
    inits = {"w0": _rnd(C, 3, 3, 3), "b0": _rnd(C), "sp": np.array([6, C - 6], np.int64),
             "w1": _rnd(6, C - 6, 1, 1), "b1": _rnd(6)}
    fp = make_model(nodes, inits, (1, 3, H, W), {"y": (1, 6, H - 2, W - 2)})
    calib = [np.random.default_rng(i).standard_normal((1, 3, H, W)).astype(np.float32)
             for i in range(8)]
    qdq = quantize_qdq(fp, calib)
    assert "Split" in {n.op_type for n in qdq.graph.node}
    p = tmp_path / "split.qdq.onnx"
    onnx.save(qdq, str(p))
    hw = load_hw("pool16")
    loaded, res = compile_file(p, hw, 2)
    assert not res.host_ops
    slices = [n for n in res.plan.graph.nodes if isinstance(n, QSlice)]
    assert [n.start for n in slices] == [0, 6]
    rep = check_one(res, hw, calib[0])
    assert rep.ok, rep.first_mismatch
    cmp = compare_with_ort(loaded.graph, loaded.qdq, random_inputs(loaded.qdq, 10, seed=3),
                           onnx_int8=loaded.lowered.onnx_int8)
    assert cmp.identical_int8 == 1.0


def test_shufflenet_v2_runs_every_mac_on_the_accelerator(tmp_path: Path) -> None:
    """The bundled ShuffleNetV2-style net: no host segment (``--strict`` passes), its four
    Splits are channel-range views, its shuffles and concats are free."""
    from vfpga.models import save_model

    m = save_model("shufflenet_v2", tmp_path / "snv2.onnx")
    r = invoke("compile", str(m), "-o", str(tmp_path / "snv2.vfb"), "--cores", "16",
               "--strict", "--calib-random", "2")
    out = " ".join(r.output.split())
    assert r.exit_code == 0, out
    assert "host CPU │ 0 │ 0 │ -" in out
    assert "free (views) │ 21 │ 0 │ 7 concatenations" in out  # + 6 shuffles, 8 ranges
