"""Test models with ops no accelerator lowering maps (host segments), built with onnx
helpers and seeded random weights (no torch, nothing downloaded)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _net(
    name: str,
    middle: list[onnx.NodeProto],
    mid_out: str,
    *,
    seed: int = 0,
    consts: dict[str, np.ndarray] | None = None,
    extra_outputs: list[onnx.ValueInfoProto] | None = None,
    domains: dict[str, int] | None = None,
) -> onnx.ModelProto:
    """``Conv -> Relu -> <middle> -> Conv -> Relu -> GAP -> Flatten -> Gemm`` on a
    1x3x16x16 input: ``middle`` reads ``r1`` (the first Relu's 8-channel map) and ends in
    ``mid_out``, which the second Conv reads."""
    rng = np.random.default_rng(seed)

    def w(nm: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), nm)

    inits = [
        w("w1", 8, 3, 3, 3),
        w("b1", 8),
        w("w2", 8, 8, 1, 1),
        w("b2", 8),
        w("wf", 10, 8),
        w("bf", 10),
        *(numpy_helper.from_array(v, k) for k, v in (consts or {}).items()),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        *middle,
        helper.make_node("Conv", [mid_out, "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10]), *(extra_outputs or [])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)]
    opsets += [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def topk_model(seed: int = 0) -> onnx.ModelProto:
    """``Conv -> Relu -> TopK(channels, k=C) -> Abs -> Conv -> Relu -> GAP -> Flatten ->
    Gemm``: TopK sorts each pixel's channels (an op nobody maps), Abs follows on the host,
    so one host segment of two nodes sits between two accelerator layers."""
    return _net(
        "topk_net",
        [
            helper.make_node("TopK", ["r1", "k"], ["top", "idx"], name="topk", axis=1),
            helper.make_node("Abs", ["top"], ["abs"], name="abs"),
        ],
        "abs",
        seed=seed,
        consts={"k": np.array([8], np.int64)},
    )


def custom_domain_model(seed: int = 0, domain: str = "com.microsoft") -> onnx.ModelProto:
    """``... Relu -> QuickGelu (a custom-domain op: onnxruntime's com.microsoft contrib
    op, no ONNX schema) -> Conv ...``, and a TopK on the same map beside it (summed back
    in), so a model holds unsupported nodes of two kinds. With another ``domain`` the op
    is one nobody implements."""
    return _net(
        "custom_net",
        [
            helper.make_node(
                "QuickGelu", ["r1"], ["qg"], name="quick_gelu", domain=domain, alpha=1.702
            ),
            helper.make_node("TopK", ["r1", "k"], ["top", "idx"], name="topk", axis=1),
            helper.make_node("Add", ["qg", "top"], ["mid"], name="add"),
        ],
        "mid",
        seed=seed,
        consts={"k": np.array([8], np.int64)},
        domains={domain: 1},
    )


def nms_model(seed: int = 0) -> onnx.ModelProto:
    """A detector-like tail: the first map's channel means become two boxes and their
    scores, ``NonMaxSuppression`` selects boxes (an ``int64 [num_selected, 3]`` output whose
    length only the data decides), beside the classifier output."""
    return _net(
        "nms_net",
        [
            helper.make_node("GlobalAveragePool", ["r1"], ["g1"], name="gap0"),
            helper.make_node("Reshape", ["g1", "box_shape"], ["boxes"], name="to_boxes"),
            helper.make_node("Slice", ["g1", "s0", "s1", "s_axis"], ["g2"], name="take2"),
            helper.make_node("Reshape", ["g2", "score_shape"], ["scores"], name="to_scores"),
            helper.make_node(
                "NonMaxSuppression",
                ["boxes", "scores", "max_out", "iou", "thr"],
                ["selected"],
                name="nms",
            ),
        ],
        "r1",
        seed=seed,
        consts={
            "box_shape": np.array([1, 2, 4], np.int64),
            "s0": np.array([0], np.int64),
            "s1": np.array([2], np.int64),
            "s_axis": np.array([1], np.int64),
            "score_shape": np.array([1, 1, 2], np.int64),
            "max_out": np.array([2], np.int64),
            "iou": np.array([0.5], np.float32),
            "thr": np.array([0.0], np.float32),
        },
        extra_outputs=[helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
    )
