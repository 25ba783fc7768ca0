"""Test models with ops no accelerator lowering maps (host segments), built with onnx
helpers and seeded random weights (no torch, nothing downloaded)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def topk_model(seed: int = 0) -> onnx.ModelProto:
    """``Conv -> Relu -> TopK(channels, k=C) -> Abs -> Conv -> Relu -> GAP -> Flatten ->
    Gemm``: TopK sorts each pixel's channels (an op nobody maps), Abs follows on the host,
    so one host segment of two nodes sits between two accelerator layers."""
    rng = np.random.default_rng(seed)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    inits = [
        w("w1", 8, 3, 3, 3),
        w("b1", 8),
        w("w2", 8, 8, 1, 1),
        w("b2", 8),
        w("wf", 10, 8),
        w("bf", 10),
        numpy_helper.from_array(np.array([8], np.int64), "k"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("TopK", ["r1", "k"], ["top", "idx"], name="topk", axis=1),
        helper.make_node("Abs", ["top"], ["abs"], name="abs"),
        helper.make_node("Conv", ["abs", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "topk_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m
