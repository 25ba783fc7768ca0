"""ISA v3 spatial CONV forms end to end (issue 14): dilated convolutions (``dil_h``,
``dil_w``) and convolutions over a zero-inserted input (``ups_h``, ``ups_w``: transposed
convolutions, nearest resize) compile, and the emulator equals the integer reference at
every layer on 1, 4 and 16 cores."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qgraph_builders import GraphBuilder

from vfpga import flow
from vfpga.driver import compile_graph
from vfpga.frontend.pipeline import load_model
from vfpga.frontend.qgraph import QConv, QHostOp, QResize
from vfpga.hw import load_hw
from vfpga.isa.codec import decode
from vfpga.isa.spec import Opcode
from vfpga.reference.compare import compare_with_ort, random_inputs

HW = load_hw("pool16")


def _graph():  # type: ignore[no-untyped-def]
    b = GraphBuilder((8, 20, 20), seed=1)
    x = b.conv(b.input, 16, (3, 3), dil=(2, 2))
    x = b.conv(x, 16, (3, 3), dil=(6, 6))  # a window wider than the map: mostly padding
    y = b.conv(x, 16, (2, 2), ups=(2, 2), pads=(1, 1, 1, 1))  # ConvTranspose k2 s2
    z = b.conv(y, 16, (4, 4), ups=(2, 2), pads=(2, 2, 2, 2))  # k4 s2 p1
    z2 = b.conv(z, 8, (3, 3), ups=(2, 2), pads=(1, 1, 2, 2))  # k3 s2 p1 output_padding 1
    # nearest 2x: depthwise 2x2 over the zero-inserted input
    u = b.conv(x, 16, (2, 2), ups=(2, 2), pads=(1, 1, 1, 1), groups=16, act="none")
    return b.build([z2, u], "spatial")


@pytest.mark.parametrize("cores", [1, 4, 16])
def test_dilated_and_upsampled_convs_emulator_equals_reference(cores: int) -> None:
    g = _graph()
    res = compile_graph(g, HW, cores)
    x = np.random.default_rng(0).standard_normal(g.tensors[g.inputs[0]].shape)
    rep = flow.check_one(res, HW, x.astype(np.float32))
    assert [lc.identical for lc in rep.layers] == [1.0] * 6
    assert rep.outputs_equal
    # the v3 fields are in the words, and only in the words of the layers that use them
    conv = decode(res.vfb.text).by_op[Opcode.CONV]
    assert set(np.unique(conv["dil_h"])) == {0, 2, 6}
    assert set(np.unique(conv["ups_h"])) == {0, 2}
    assert not np.any((conv["dil_h"] > 0) & (conv["ups_h"] > 0))

def test_upsampled_macs_count_input_products_only() -> None:
    g = _graph()
    res = compile_graph(g, HW, 1)
    spec = res.layers[2].spec  # ConvTranspose k2 s2 on 20x20 -> 40x40: 4 products per input
    assert spec.macs == 16 * 16 * 20 * 20 * 4


# ------------------------------------------------------------------ from ONNX


def _onnx(resize: dict[str, str] | None = None, ct: list[dict[str, object]] | None = None,
          dil: int = 2, size: int = 8) -> onnx.ModelProto:
    """fp32 ``Conv -> Relu -> Resize(2x) -> Conv(dilated) -> Relu -> ConvTranspose ...``
    with seeded random weights."""
    rng = np.random.default_rng(0)

    def init(name: str, shape: tuple[int, ...], s: float) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32),
                                       name)

    inits = [init("w1", (8, 3, 3, 3), 0.3), init("b1", (8,), 0.1),
             init("w2", (8, 8, 3, 3), 0.2), init("b2", (8,), 0.1),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Resize", ["r1", "", "sc"], ["u1"],
                              **(resize or {"mode": "nearest",
                                            "coordinate_transformation_mode": "asymmetric",
                                            "nearest_mode": "floor"})),
             helper.make_node("Conv", ["u1", "w2", "b2"], ["c2"], pads=[dil] * 4,
                              dilations=[dil, dil]),
             helper.make_node("Relu", ["c2"], ["t0"])]
    h = 2 * size
    for i, attrs in enumerate(ct or []):
        k = attrs["kernel_shape"][0]  # type: ignore[index]
        inits += [init(f"wt{i}", (8, 8, k, k), 0.2), init(f"bt{i}", (8,), 0.1)]
        nodes.append(helper.make_node("ConvTranspose", [f"t{i}", f"wt{i}", f"bt{i}"],
                                      [f"t{i + 1}"], **attrs))
        s, p, op = attrs["strides"][0], attrs.get("pads", [0] * 4)[0], (  # type: ignore[index]
            attrs.get("output_padding", [0, 0])[0])  # type: ignore[index]
        h = (h - 1) * s + k - 2 * p + op
    last = f"t{len(ct or [])}"
    g = helper.make_graph(
        nodes, "spatial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, 8, h, h])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m, full_check=True)
    return m


CT = [{"kernel_shape": [2, 2], "strides": [2, 2]},
      {"kernel_shape": [4, 4], "strides": [2, 2], "pads": [1, 1, 1, 1]},
      {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
       "output_padding": [1, 1]}]


@pytest.mark.parametrize("resize", [
    {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
    {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
     "nearest_mode": "round_prefer_ceil"},
])
def test_onnx_resize_dilated_conv_transpose_on_the_accelerator(resize: dict[str, str]) -> None:
    """Nearest 2x Resize (as torch exports it, and the half-pixel form), a dilated Conv
    and the three ConvTranspose shapes of U-Nets / FPNs (k2 s2, k4 s2 p1, k3 s2 p1 op1)
    all run on the accelerator; the reference equals onnxruntime on the QDQ model and the
    emulator equals the reference at every layer on 1 and 16 cores."""
    lm = load_model(_onnx(resize, CT, size=6), num_random=4)
    g = lm.graph
    assert not [n for n in g.nodes if isinstance(n, QHostOp)]
    convs = [n for n in g.nodes if isinstance(n, QConv)]
    assert [n.upsample for n in convs] == [(1, 1), (2, 2), (1, 1), (2, 2), (2, 2), (2, 2)]
    assert convs[2].dilations == (2, 2)
    cmp = compare_with_ort(g, lm.qdq, random_inputs(lm.qdq, 10, seed=3),
                           onnx_int8=lm.lowered.onnx_int8)
    assert cmp.identical_int8 == 1.0 and cmp.cosine_min > 0.9999
    x = random_inputs(lm.qdq, 1, seed=5)[0]
    for cores in (1, 16):
        rep = flow.check_one(compile_graph(g, HW, cores), HW, x)
        assert all(lc.identical == 1.0 for lc in rep.layers) and rep.outputs_equal


@pytest.mark.parametrize("ctm", ["half_pixel", "pytorch_half_pixel", "align_corners",
                                 "asymmetric"])
def test_onnx_bilinear_resize_between_convs_on_the_accelerator(ctm: str) -> None:
    """A bilinear 2x Resize between two convs (ISA version 4's RESIZE; onnxruntime runs it
    in float32 between its NHWC integer convs): on the accelerator, int8-identical to
    onnxruntime, and the emulator equals the reference at every layer on 1 and 16 cores
    (16 cores split the layer into tiles along width and channels)."""
    lm = load_model(_onnx({"mode": "linear", "coordinate_transformation_mode": ctm},
                          size=6), num_random=4)
    g = lm.graph
    assert not [n for n in g.nodes if isinstance(n, QHostOp)]
    (rs,) = [n for n in g.nodes if isinstance(n, QResize)]
    assert rs.coord == ctm and rs.scales == (2.0, 2.0)
    cmp = compare_with_ort(g, lm.qdq, random_inputs(lm.qdq, 10, seed=3),
                           onnx_int8=lm.lowered.onnx_int8)
    assert cmp.identical_int8 == 1.0 and cmp.cosine_min > 0.9999
    x = random_inputs(lm.qdq, 1, seed=5)[0]
    for cores in (1, 16):
        res = compile_graph(g, HW, cores)
        ops = decode(res.vfb.text).opcode
        assert int((ops == Opcode.RESIZE).sum()) >= (1 if cores == 1 else 2)
        rep = flow.check_one(res, HW, x)
        assert all(lc.identical == 1.0 for lc in rep.layers) and rep.outputs_equal


@pytest.mark.parametrize(("resize", "why"), [
    ({"mode": "linear", "coordinate_transformation_mode": "tf_half_pixel_for_nn"},
     "tf_half_pixel_for_nn"),
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
      "nearest_mode": "round_prefer_ceil"}, "does not repeat"),
    ({"mode": "cubic", "coordinate_transformation_mode": "half_pixel"}, "cubic"),
])
def test_onnx_resize_the_accelerator_cannot_run_goes_to_the_host(
        resize: dict[str, str], why: str) -> None:
    lm = load_model(_onnx(resize, size=6), num_random=4)
    (seg,) = [n for n in lm.graph.nodes if isinstance(n, QHostOp)]
    assert seg.attrs["ops"] == ["Resize"] and why in seg.attrs["reasons"][0]
    cmp = compare_with_ort(lm.graph, lm.qdq, random_inputs(lm.qdq, 4, seed=3),
                           onnx_int8=lm.lowered.onnx_int8)
    assert cmp.identical_int8 == 1.0


def test_dilation_wider_than_the_map_loads_no_padding() -> None:
    """DeepLab's ASPP: a 3x3 conv with dilation 18 on an 8x8 map of 96 channels. The
    window spans 37 rows; the CONV pads (its pad fields), so ibuf holds only the 8x8
    input, not the 44x44 padded one, and the layer fits one tile."""
    b = GraphBuilder((96, 8, 8), seed=4)
    y = b.conv(b.input, 64, (3, 3), dil=(18, 18))
    g = b.build([y], "aspp")
    res = compile_graph(g, HW, 1)
    assert int(res.vfb.ifps["ibuf"].max()) <= 2 * 8 * 8 * 96
    x = np.random.default_rng(2).standard_normal(g.tensors[g.inputs[0]].shape)
    rep = flow.check_one(res, HW, x.astype(np.float32))
    assert rep.layers[0].identical == 1.0 and rep.outputs_equal


@pytest.mark.parametrize("antialias", [0, 1])
def test_onnx_resize_with_axes_and_antialias_agrees_with_onnxruntime(antialias: int) -> None:
    """Opset 18's ``axes`` (scales naming only H and W) and ``antialias`` (a downscaling
    filter wider than bilinear's): the scales are expanded to the four axes, and an
    antialiased resize goes to the host with its attribute (the accelerator's RESIZE has
    no antialias), so the result still equals onnxruntime's."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * .3)
                                     .astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal((8, 8, 3, 3)) * .2)
                                     .astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([0.5, 0.5], np.float32), "sc")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Resize", ["r1", "", "sc"], ["d1"], mode="linear",
                              antialias=antialias, axes=[2, 3]),
             helper.make_node("Conv", ["d1", "w2"], ["y"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(
        nodes, "aa", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(m, full_check=True)
    lm = load_model(m, num_random=4)
    hosts = [n for n in lm.graph.nodes if isinstance(n, QHostOp)]
    if antialias:
        (seg,) = hosts
        assert seg.attrs["ops"] == ["Resize"] and "antialias" in seg.attrs["reasons"][0]
    else:
        assert not hosts
    cmp = compare_with_ort(lm.graph, lm.qdq, random_inputs(lm.qdq, 4, seed=3),
                           onnx_int8=lm.lowered.onnx_int8)
    assert cmp.identical_int8 == 1.0
    rep = flow.check_one(compile_graph(lm.graph, HW, 4), HW,
                         random_inputs(lm.qdq, 1, seed=5)[0])
    assert rep.outputs_equal
