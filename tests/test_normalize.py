"""Tests of vfpga.frontend.normalize: every rewrite is checked for equivalence with
onnxruntime on random inputs, every error for its message."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from _norm_util import (
    ZOO_MODELS,
    assert_equivalent,
    make_model,
    randomize_zoo,
)
from onnx import helper, numpy_helper

from vfpga.errors import FrontendError
from vfpga.frontend import NORMALIZED_OPS, SUPPORTED_OPS, is_qdq, normalize, normalize_with_report

RNG = np.random.default_rng(1)


def rnd(*shape: int, lo: float | None = None) -> np.ndarray:
    if lo is not None:
        return RNG.uniform(lo, lo + 1.0, shape).astype(np.float32)
    return RNG.normal(0, 0.3, shape).astype(np.float32)


def conv(name: str, x: str, w: str, b: str | None, out: str, **attrs: object) -> onnx.NodeProto:
    ins = [x, w] if b is None else [x, w, b]
    return helper.make_node("Conv", ins, [out], name=name, **attrs)


def bn(name: str, x: str, c: str, out: str) -> tuple[onnx.NodeProto, dict[str, np.ndarray]]:
    inits = {f"{c}_s": rnd(8, lo=0.5), f"{c}_b": rnd(8), f"{c}_m": rnd(8),
             f"{c}_v": rnd(8, lo=0.5)}
    return helper.make_node("BatchNormalization", [x, *inits], [out], name=name), inits


def ops(m: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in m.graph.node)


def check(m: onnx.ModelProto, shape: tuple[int, ...] = (1, 3, 8, 8)) -> onnx.ModelProto:
    n = normalize(m, "test.onnx")
    assert set(ops(n)) <= set(NORMALIZED_OPS), ops(n)
    for node in n.graph.node:
        if node.op_type == "Conv":
            assert len(node.input) == 3, "every Conv has a bias"
    assert_equivalent(m, n, shape, rtol=1e-4)
    return n


def test_bn_folded_into_conv_and_bias_added() -> None:
    nb, inits = bn("bn1", "c1", "p", "y")
    m = make_model([conv("conv1", "x", "w", None, "c1", pads=[1, 1, 1, 1]), nb],
                   {"w": rnd(8, 3, 3, 3), **inits}, (1, 3, 8, 8), {"y": (1, 8, 8, 8)})
    n = check(m)
    assert ops(n) == Counter({"Conv": 1})
    assert n.graph.node[0].name == "conv1"


def test_bn_after_concat_becomes_depthwise_conv() -> None:
    nb, inits = bn("bn", "cat", "p", "y")
    nodes = [conv("ca", "x", "wa", "ba", "a"), conv("cb", "x", "wb", "bb", "b"),
             helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1), nb,
             helper.make_node("Relu", ["y"], ["z"], name="relu")]
    m = make_model(nodes, {"wa": rnd(4, 3, 1, 1), "ba": rnd(4), "wb": rnd(4, 3, 1, 1),
                           "bb": rnd(4), **inits}, (1, 3, 8, 8), {"z": (1, 8, 8, 8)})
    n = check(m)
    dw = [x for x in n.graph.node if x.op_type == "Conv" and x.name == "bn"]
    assert len(dw) == 1
    assert next(a.i for a in dw[0].attribute if a.name == "group") == 8


def test_unsqueeze_mul_add_constants_fold_into_conv() -> None:
    # DenseNet / Inception v2 style: BN written as Unsqueeze + Mul + Add (opset 9)
    nodes = [
        conv("c", "x", "w", "b", "y0"),
        helper.make_node("Unsqueeze", ["s"], ["s3"], name="u1", axes=[1, 2]),
        helper.make_node("Unsqueeze", ["t"], ["t3"], name="u2", axes=[1, 2]),
        helper.make_node("Mul", ["y0", "s3"], ["y1"], name="mul"),
        helper.make_node("Add", ["t3", "y1"], ["y2"], name="add"),
        helper.make_node("Div", ["y2", "d"], ["y3"], name="div"),
        helper.make_node("Sub", ["y3", "e"], ["y"], name="sub"),
    ]
    m = make_model(nodes, {"w": rnd(8, 3, 3, 3), "b": rnd(8), "s": rnd(8, lo=0.5),
                           "t": rnd(8), "d": np.array(2.0, np.float32), "e": rnd(8, 1, 1)},
                   (1, 3, 8, 8), {"y": (1, 8, 6, 6)}, opset=9)
    n = check(m)
    assert ops(n) == Counter({"Conv": 1})


def test_pad_folded_into_conv_and_avgpool() -> None:
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode="constant"),
        conv("c", "p", "w", "b", "y"),
        helper.make_node("Pad", ["x", "pads2"], ["p2"], name="pad2"),
        helper.make_node("AveragePool", ["p2"], ["z"], name="ap", kernel_shape=[3, 3]),
    ]
    m = make_model(nodes, {"pads": np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64),
                           "pads2": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
                           "w": rnd(4, 3, 3, 3), "b": rnd(4)},
                   (1, 3, 8, 8), {"y": (1, 4, 8, 7), "z": (1, 3, 8, 8)})
    n = check(m)
    assert "Pad" not in ops(n)
    c = next(x for x in n.graph.node if x.op_type == "Conv")
    assert list(next(a for a in c.attribute if a.name == "pads").ints) == [1, 2, 1, 0]


def test_pad_before_maxpool_is_an_error() -> None:
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
             helper.make_node("MaxPool", ["p"], ["y"], name="mp", kernel_shape=[2, 2])]
    m = make_model(nodes, {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)},
                   (1, 3, 8, 8), {"y": (1, 3, 9, 9)})
    with pytest.raises(FrontendError, match=r"node 'mp' \(MaxPool\).*Pad"):
        normalize(m)


def test_flatten_gemm_becomes_khxkw_conv_and_final_reshape() -> None:
    nodes = [
        conv("c", "x", "w", "b", "f"),
        helper.make_node("Relu", ["f"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu2"),
        helper.make_node("Dropout", ["hr"], ["hd"], name="drop"),
        helper.make_node("MatMul", ["hd", "w2"], ["g"], name="fc2"),
        helper.make_node("Identity", ["g"], ["gi"], name="id"),
        helper.make_node("Softmax", ["gi"], ["prob"], name="sm", axis=1),
    ]
    m = make_model(nodes, {"w": rnd(4, 3, 3, 3), "b": rnd(4), "w1": rnd(10, 4 * 6 * 6),
                           "b1": rnd(10), "w2": rnd(10, 5)}, (1, 3, 8, 8), {"prob": (1, 5)})
    n = check(m)
    assert ops(n) == Counter({"Conv": 3, "Relu": 2, "Softmax": 1, "Reshape": 1})
    fc1 = next(x for x in n.graph.node if x.name == "fc1")
    assert list(next(a for a in fc1.attribute if a.name == "kernel_shape").ints) == [6, 6]
    assert n.graph.node[-1].op_type == "Reshape"
    assert n.graph.output[0].name == "prob"


def test_sum_becomes_chain_of_adds() -> None:
    nodes = [conv(f"c{i}", "x", f"w{i}", f"b{i}", f"y{i}") for i in range(3)]
    nodes.append(helper.make_node("Sum", ["y0", "y1", "y2"], ["s"], name="sum"))
    nodes.append(helper.make_node("Relu", ["s"], ["r"], name="relu"))
    inits = {}
    for i in range(3):
        inits[f"w{i}"], inits[f"b{i}"] = rnd(4, 3, 1, 1), rnd(4)
    n = check(make_model(nodes, inits, (1, 3, 8, 8), {"r": (1, 4, 8, 8)}))
    assert ops(n)["Add"] == 2


def test_clip_relu6_and_relu() -> None:
    nodes = [conv("c", "x", "w", "b", "y"),
             helper.make_node("Clip", ["y", "lo", "hi"], ["z"], name="relu6"),
             helper.make_node("Clip", ["z", "lo"], ["r"], name="relu")]
    m = make_model(nodes, {"w": rnd(4, 3, 3, 3) * 10, "b": rnd(4), "lo": np.array(0, np.float32),
                           "hi": np.array(6, np.float32)}, (1, 3, 8, 8), {"r": (1, 4, 6, 6)})
    n = check(m)
    assert ops(n) == Counter({"Conv": 1, "Clip": 1, "Relu": 1})


def test_clip_other_bounds_is_an_error() -> None:
    m = make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip1")],
                   {"lo": np.array(-1, np.float32), "hi": np.array(1, np.float32)},
                   (1, 3, 8, 8), {"y": (1, 3, 8, 8)})
    out, rep = normalize_with_report(m, "test.onnx")  # kept as it is, for the host
    assert [n.op_type for n in out.graph.node] == ["Clip"]
    assert re.search(r"test.onnx: node 'clip1' \(Clip\).*ReLU6", rep.host_nodes["clip1"])


def _shuffle_model(groups: int, extra_consumer: bool) -> onnx.ModelProto:
    c = 12
    nodes = [conv("gconv", "x", "w", "b", "y", group=groups),
             helper.make_node("Relu", ["y"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "s5"], ["r5"], name="rs1"),
             helper.make_node("Transpose", ["r5"], ["t5"], name="shuffle", perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t5", "s4"], ["sh"], name="rs2"),
             conv("dw", "sh", "wd", "bd", "z", group=c, pads=[1, 1, 1, 1])]
    outs = {"z": (1, c, 8, 8)}
    if extra_consumer:
        nodes.append(helper.make_node("MaxPool", ["r"], ["mp"], name="mp", kernel_shape=[2, 2]))
        outs["mp"] = (1, c, 7, 7)
    inits = {"w": rnd(c, 12 // groups, 1, 1), "b": rnd(c), "wd": rnd(c, 1, 3, 3), "bd": rnd(c),
             "s5": np.array([1, 3, 4, 8, 8], np.int64), "s4": np.array([1, c, 8, 8], np.int64)}
    return make_model(nodes, inits, (1, 12, 8, 8), outs)


def test_channel_shuffle_folded_into_dense_producer() -> None:
    m = _shuffle_model(1, False)
    n, rep = normalize_with_report(m)
    assert ops(n) == Counter({"Conv": 2, "Relu": 1})
    assert rep.rewrites["shuffle_into_producer"] == 1 and not rep.notes
    assert_equivalent(m, n, (1, 12, 8, 8))


def test_channel_shuffle_grouped_producer_becomes_gather() -> None:
    """A shuffle after a grouped conv mixes its groups: no weight permutation absorbs it
    for free, so it stays a Gather along channels (free on the accelerator), no MACs added."""
    m = _shuffle_model(3, False)
    n, rep = normalize_with_report(m)
    assert ops(n) == Counter({"Conv": 2, "Relu": 1, "Gather": 1})
    assert rep.rewrites["shuffle_as_gather"] == 1 and not rep.notes
    gconv = next(x for x in n.graph.node if x.name == "gconv")
    assert next(a.i for a in gconv.attribute if a.name == "group") == 3  # not densified
    assert_equivalent(m, n, (1, 12, 8, 8))


def test_channel_shuffle_with_shared_producer_becomes_gather() -> None:
    m = _shuffle_model(1, True)
    n, rep = normalize_with_report(m)
    assert rep.rewrites["shuffle_as_gather"] == 1
    assert ops(n)["Gather"] == 1
    assert_equivalent(m, n, (1, 12, 8, 8))


def test_relu_after_concat_is_pushed_to_inputs() -> None:
    nodes = [conv("ca", "x", "wa", "ba", "a"),
             helper.make_node("AveragePool", ["x"], ["p"], name="ap", kernel_shape=[1, 1]),
             helper.make_node("Concat", ["a", "p"], ["cat"], name="cat", axis=1),
             helper.make_node("Relu", ["cat"], ["y"], name="relu")]
    m = make_model(nodes, {"wa": rnd(4, 3, 1, 1), "ba": rnd(4)}, (1, 3, 8, 8), {"y": (1, 7, 8, 8)})
    n = check(m)
    assert ops(n) == Counter({"Conv": 1, "AveragePool": 1, "Relu": 2, "Concat": 1})
    assert n.graph.node[-1].op_type == "Concat"


def test_ceil_mode_and_auto_pad_become_explicit_pads() -> None:
    nodes = [helper.make_node("MaxPool", ["x"], ["a"], name="mp", kernel_shape=[3, 3],
                              strides=[2, 2], ceil_mode=1),
             conv("c", "a", "w", "b", "y", auto_pad="SAME_UPPER", strides=[2, 2])]
    m = make_model(nodes, {"w": rnd(4, 3, 3, 3), "b": rnd(4)}, (1, 3, 8, 8), {"y": (1, 4, 2, 2)})
    n = check(m)
    for node in n.graph.node:
        assert all(a.name not in ("ceil_mode", "auto_pad") for a in node.attribute)


def test_unnamed_nodes_get_unique_names() -> None:
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"]),
             helper.make_node("Relu", ["y"], ["z"])]
    m = make_model(nodes, {"w": rnd(4, 3, 3, 3), "b": rnd(4)}, (1, 3, 8, 8), {"z": (1, 4, 6, 6)})
    n = check(m)
    assert [x.name for x in n.graph.node] == ["Conv_0", "Relu_1"]


# -- errors ---------------------------------------------------------------------------------
def _relu_model(in_shape: list[int | str], elem: int = onnx.TensorProto.FLOAT) -> onnx.ModelProto:
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g",
                          [helper.make_tensor_value_info("x", elem, in_shape)],
                          [helper.make_tensor_value_info("y", elem, in_shape)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_unsupported_op_lists_supported_ops() -> None:
    m = make_model([helper.make_node("Sin", ["x"], ["y"], name="sig7")], {}, (1, 3, 8, 8),
                   {"y": (1, 3, 8, 8)})
    out, rep = normalize_with_report(m, "model.onnx")
    assert [n.op_type for n in out.graph.node] == ["Sin"]
    msg = rep.host_nodes["sig7"]
    assert msg.startswith("model.onnx: node 'sig7' (Sin) is not supported; supported ops:")
    for op in ("Conv", "BatchNormalization", "Gemm", "Pad", "Sum", "Unsqueeze"):
        assert op in msg
    assert set(NORMALIZED_OPS) <= set(SUPPORTED_OPS)


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage\xff\xff")
    with pytest.raises(FrontendError, match=r"bad\.onnx: not"):
        normalize(bad)
    with pytest.raises(FrontendError, match=r"missing\.onnx: no such file"):
        normalize(tmp_path / "missing.onnx")


def test_input_checks() -> None:
    with pytest.raises(FrontendError,
                       match=r"the dynamic dimension 'N' at axis 0.*--input-shape x=1x3x8x8"):
        normalize(_relu_model(["N", 3, 8, 8]), "m.onnx")
    with pytest.raises(FrontendError, match="batch size 2"):
        normalize(_relu_model([2, 3, 8, 8]))
    # int64 ids are read by host nodes (tests/test_index_inputs.py); other types are refused
    with pytest.raises(FrontendError, match="element type INT32; only float32 inputs and int64"):
        normalize(_relu_model([1, 3, 8, 8], onnx.TensorProto.INT32))
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"], name="add")], "g",
                          [helper.make_tensor_value_info(k, onnx.TensorProto.FLOAT, [1, 3, 4, 4])
                           for k in "ab"],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT,
                                                         [1, 3, 4, 4])])
    with pytest.raises(FrontendError, match=r"exactly one graph input.*'a', 'b'"):
        normalize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


def test_qdq_model_is_refused() -> None:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")]
    m = make_model(nodes, {"s": np.array(0.1, np.float32), "z": np.array(0, np.int8)},
                   (1, 3, 4, 4), {"y": (1, 3, 4, 4)})
    assert is_qdq(m)
    with pytest.raises(FrontendError, match="already quantized"):
        normalize(m)
    assert not is_qdq(_relu_model([1, 3, 4, 4]))


def test_initializers_listed_as_inputs_are_ignored() -> None:
    m = make_model([conv("c", "x", "w", "b", "y")], {"w": rnd(4, 3, 1, 1), "b": rnd(4)},
                   (1, 3, 4, 4), {"y": (1, 4, 4, 4)})
    m.graph.input.extend(helper.make_tensor_value_info(i.name, i.data_type, list(i.dims))
                         for i in m.graph.initializer)
    n = check(m, (1, 3, 4, 4))
    assert [i.name for i in n.graph.input] == ["x"]


def test_weights_kept_exactly_when_nothing_folds() -> None:
    w = rnd(4, 3, 3, 3)
    n = normalize(make_model([conv("c", "x", "w", "b", "y")], {"w": w, "b": rnd(4)},
                             (1, 3, 8, 8), {"y": (1, 4, 6, 6)}))
    inits = {i.name: numpy_helper.to_array(i) for i in n.graph.initializer}
    assert any(np.array_equal(v, w) for v in inits.values())


# -- the onnx wheel's model-zoo graphs ------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_model_normalizes_equivalently(name: str) -> None:
    m = randomize_zoo(name, seed=3)
    n = normalize(m, name)
    assert set(ops(n)) <= set(NORMALIZED_OPS)
    assert_equivalent(m, n, (1, 3, 224, 224), rtol=1e-4)


@pytest.mark.slow
def test_zoo_unmodified_file_normalizes() -> None:
    # the file as shipped (ConstantOfShape weights, opset 9) goes through from its path
    from _norm_util import ZOO_DIR

    n, rep = normalize_with_report(ZOO_DIR / "light_densenet121.onnx")
    assert rep.rewrites["affine_as_depthwise_conv"] > 0
    assert set(ops(n)) <= set(NORMALIZED_OPS)


def test_normalizing_a_normalized_shuffle_is_stable() -> None:
    """The normalizer accepts its own output: a channel-shuffle Gather stays one."""
    m = _shuffle_model(3, False)
    n1 = normalize(m)
    n2, rep = normalize_with_report(n1)
    assert ops(n2) == ops(n1) and rep.rewrites["shuffle_as_gather"] == 1
    assert_equivalent(m, n2, (1, 12, 8, 8))


def test_gather_that_is_not_a_channel_permutation_is_a_clear_error() -> None:
    nodes = [helper.make_node("Gather", ["x", "idx"], ["y"], name="g7", axis=2)]
    m = make_model(nodes, {"idx": np.array([0, 1], np.int64)}, (1, 3, 8, 8), {"y": (1, 3, 2, 8)})
    _, rep = normalize_with_report(m, "model.onnx")
    assert re.search(r"node 'g7' \(Gather\).*permutation of the channels", rep.host_nodes["g7"])
