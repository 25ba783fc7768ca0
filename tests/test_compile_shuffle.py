"""A channel shuffle after a grouped convolution costs nothing on the accelerator: the
producer's SAVEs write channels at their shuffled positions (from the user's side: an
ONNX model with ShuffleNet's Reshape-Transpose-Reshape, compiled and emulated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from _norm_util import make_model
from onnx import helper

from vfpga.frontend.qgraph import QConv, QShuffle
from vfpga.hw import load_hw
from vfpga.isa.spec import Opcode

C, G, H, W = 32, 4, 10, 20
RNG = np.random.default_rng(5)


def _rnd(*shape: int) -> np.ndarray:
    return RNG.normal(0, 0.4, shape).astype(np.float32)


def _model(extra_reader: bool) -> onnx.ModelProto:
    """gconv(g=4) -> Relu -> shuffle(4) -> depthwise 3x3 -> gconv(g=4) (ShuffleNet unit)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y"], name="gconv1", group=G),
        helper.make_node("Relu", ["y"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "s5"], ["r5"], name="rs1"),
        helper.make_node("Transpose", ["r5"], ["t5"], name="shuffle", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t5", "s4"], ["sh"], name="rs2"),
        helper.make_node("Conv", ["sh", "wd", "bd"], ["d"], name="dw", group=C,
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "w2", "b2"], ["z"], name="gconv2", group=G),
    ]
    outs = {"z": (1, C, H, W)}
    if extra_reader:
        nodes.append(helper.make_node("MaxPool", ["r"], ["mp"], name="mp", kernel_shape=[2, 2],
                                      strides=[2, 2]))
        outs["mp"] = (1, C, H // 2, W // 2)
    inits = {"w1": _rnd(C, C // G, 1, 1), "b1": _rnd(C), "wd": _rnd(C, 1, 3, 3), "bd": _rnd(C),
             "w2": _rnd(C, C // G, 1, 1), "b2": _rnd(C),
             "s5": np.array([1, G, C // G, H, W], np.int64),
             "s4": np.array([1, C, H, W], np.int64)}
    return make_model(nodes, inits, (1, C, H, W), outs)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("shuffle") / "unit.onnx"
    onnx.save(_model(False), str(p))
    return p


@pytest.mark.parametrize("cores", [1, 2, 3, 5, 8])
def test_shuffle_is_free_and_bit_exact(model_path: Path, cores: int) -> None:
    from vfpga.flow import check_one, compile_file

    hw = load_hw("pool16")
    _, res = compile_file(model_path, hw, cores)
    g = res.plan.graph
    assert sum(isinstance(n, QShuffle) for n in g.nodes) == 1
    convs = [n for n in g.nodes if isinstance(n, QConv)]
    assert [n.groups for n in convs] == [G, C, G]  # nothing densified, no copy layer
    assert sum(lc.spec.macs for lc in res.layers) == H * W * C * (C // G * 2 + 9)
    stored = [p for p in res.plan.places.values() if p.shuffle]
    assert len(stored) == 1 and stored[0].shuffle == G
    # the producer's SAVEs scatter one byte per channel at stride g
    saves = res.vfb.program.by_op[Opcode.SAVE]
    assert np.any((saves["n2"] == 1) & (saves["stride1"] == G))
    x = np.random.default_rng(cores).standard_normal((1, C, H, W)).astype(np.float32)
    rep = check_one(res, hw, x)
    assert rep.outputs_equal and all(lc.ok for lc in rep.layers), rep.first_mismatch


def test_shuffle_input_read_elsewhere_gets_a_copy(tmp_path: Path) -> None:
    from vfpga.flow import check_one, compile_file

    p = tmp_path / "shared.onnx"
    onnx.save(_model(True), str(p))
    hw = load_hw("pool16")
    _, res = compile_file(p, hw, 3)
    assert any("channel shuffle" in n and "copy inserted" in n for n in res.plan.notes)
    x = np.random.default_rng(0).standard_normal((1, C, H, W)).astype(np.float32)
    rep = check_one(res, hw, x)
    assert rep.outputs_equal and all(lc.ok for lc in rep.layers)
