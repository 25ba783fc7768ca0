"""Small fp32 ONNX graphs and their QDQ quantization by onnxruntime, for the lowering and
reference tests (tests/test_qdq_lower.py, tests/test_reference.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    """Builds an fp32 NCHW graph with seeded random weights."""

    def __init__(self, in_shape: Sequence[int], seed: int = 0, opset: int = 13) -> None:
        self.rng = np.random.default_rng(seed)
        self.in_shape = tuple(in_shape)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.opset = opset
        self._n = 0

    def _name(self, p: str) -> str:
        self._n += 1
        return f"{p}{self._n}"

    def init(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self._name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out + "_n", **attrs))
        return out

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        k: int = 3,
        *,
        stride: int = 1,
        pad: int = 1,
        group: int = 1,
        bias: bool = True,
        std: float | None = None,
    ) -> str:
        fan_in = cin // group * k * k
        w = self.rng.normal(0, std or np.sqrt(2.0 / fan_in), (cout, cin // group, k, k))
        ins = [x, self.init(w.astype(np.float32), "w")]
        if bias:
            ins.append(self.init(self.rng.normal(0, 0.1, cout).astype(np.float32), "b"))
        return self.node(
            "Conv",
            ins,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=group,
        )

    def relu(self, x: str) -> str:
        return self.node("Relu", [x])

    def relu6(self, x: str) -> str:
        lo = self.init(np.array(0.0, dtype=np.float32))
        hi = self.init(np.array(6.0, dtype=np.float32))
        return self.node("Clip", [x, lo, hi])

    def model(self, out: str, out_shape: Sequence[int]) -> onnx.ModelProto:
        g = helper.make_graph(
            self.nodes,
            "test",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(self.in_shape))],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, list(out_shape))],
            self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def quantize_qdq(
    model: onnx.ModelProto,
    calib: Sequence[np.ndarray],
    *,
    activations: Literal["uint8", "int8"] = "uint8",
    extra_options: dict[str, object] | None = None,
) -> onnx.ModelProto:
    """``quantize_static`` in QDQ format: per-channel int8 weights, uint8 (the project's
    setting, vfpga.quant, with its Softmax output scale 1/256) or int8 activations, MinMax
    calibration on ``calib``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name = model.graph.input[0].name

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{name: x} for x in calib])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "fp.onnx", Path(d) / "q.onnx"
        onnx.save(model, src)
        quantize_static(
            str(src),
            str(dst),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options=extra_options,
        )
        q = onnx.load(str(dst))
    if activations == "uint8":
        from vfpga.quant.quantize import set_softmax_scale

        set_softmax_scale(q)  # as vfpga.quant does: ORT's QLinearSoftmax needs 1/256
    return q


def normal_inputs(shape: Sequence[int], n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(shape)).astype(np.float32) for _ in range(n)]


def classifier(seed: int = 0, *, softmax: bool = False, lrn: bool = False) -> onnx.ModelProto:
    """A small CNN: conv-relu, conv-relu6, residual add, maxpool, concat of two branches
    with different quantization, avgpool, (LRN,) global average pool, 1x1 "fc",
    reshape to (1, 10) (, softmax)."""
    b = GraphBuilder((1, 3, 16, 16), seed)
    c1 = b.relu(b.conv("x", 3, 16))
    c2 = b.relu6(b.conv(c1, 16, 16))
    a = b.relu(b.node("Add", [c1, c2]))
    p = b.node("MaxPool", [a], kernel_shape=[2, 2], strides=[2, 2])
    br1 = b.relu(b.conv(p, 16, 8, 1, pad=0))
    br2 = b.conv(p, 16, 8, 3, stride=1, pad=1)
    cat = b.node("Concat", [br1, br2], axis=1)
    # count_include_pad: every window counts 9, so there are no exact rounding ties, on
    # which ORT's QLinearAveragePool differs (docs/conformance.md)
    ap = b.node(
        "AveragePool",
        [cat],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        count_include_pad=1,
    )
    if lrn:
        ap = b.node("LRN", [ap], size=5, alpha=1e-3, beta=0.75, bias=1.0)
    dw = b.relu(b.conv(ap, 16, 16, 3, group=16))
    gap = b.node("GlobalAveragePool", [dw])
    fc = b.conv(gap, 16, 10, 1, pad=0)
    shp = b.init(np.array([1, 10], dtype=np.int64))
    out = b.node("Reshape", [fc, shp])
    if softmax:
        out = b.node("Softmax", [out], axis=1)
    return b.model(out, (1, 10))


def activations_net(seed: int = 0, opset: int = 14) -> onnx.ModelProto:
    """A small CNN with every element-wise function of one map the accelerator runs as a
    256-entry table (HardSwish, HardSigmoid, Sigmoid, SiLU written ``x * sigmoid(x)``,
    Tanh, LeakyRelu, Elu), one of them on a map that a residual Add also reads (so it is a
    table node of its own, not fused into the conv)."""
    b = GraphBuilder((1, 3, 16, 16), seed, opset=opset)
    c1 = b.node("HardSwish", [b.conv("x", 3, 16)])
    c2 = b.conv(c1, 16, 16, 3, group=16)
    silu = b.node("Mul", [c2, b.node("Sigmoid", [c2])])
    c3 = b.node("HardSigmoid", [b.conv(silu, 16, 16, 1, pad=0)], alpha=0.2, beta=0.5)
    c4 = b.conv(c3, 16, 16, 3)
    t = b.node("Tanh", [c4])
    a = b.node("Add", [c4, t])
    lr = b.node("LeakyRelu", [b.conv(a, 16, 8, 1, pad=0)], alpha=0.1)
    e = b.node("Elu", [b.conv(lr, 8, 8, 3)], alpha=1.0)
    gap = b.node("GlobalAveragePool", [e])
    fc = b.node("Sigmoid", [b.conv(gap, 8, 10, 1, pad=0)])
    out = b.node("Reshape", [fc, b.init(np.array([1, 10], dtype=np.int64))])
    return b.model(out, (1, 10))


def eltwise_net(seed: int = 0, opset: int = 14) -> onnx.ModelProto:
    """A small CNN with the element-wise operations of two maps (ISA v3 ELTWISE): two
    squeeze-excite gates (GlobalAveragePool -> 1x1 conv -> ReLU -> 1x1 conv -> HardSigmoid
    / Sigmoid -> Mul with the block's map, the gate first as torchvision writes it, and
    second), a Mul and a Sub of two same-shape maps, an Add and a Sub of a per-channel
    map broadcast over a map (the per-channel one first in the Sub: swapped, negated)."""
    b = GraphBuilder((1, 3, 16, 16), seed, opset=opset)
    c1 = b.relu(b.conv("x", 3, 24))
    g = b.node("HardSigmoid", [b.conv(b.relu(b.conv(b.node("GlobalAveragePool", [c1]),
                                                    24, 8, 1, pad=0)), 8, 24, 1, pad=0)],
               alpha=float(1 / 6), beta=0.5)
    se1 = b.node("Mul", [g, c1])
    c2 = b.conv(se1, 24, 24, 3, group=24)
    c3 = b.relu(b.conv(se1, 24, 24, 1, pad=0))
    m = b.node("Mul", [c2, c3])
    d = b.node("Sub", [c3, m])
    gap = b.node("GlobalAveragePool", [d])
    gate2 = b.node("Sigmoid", [b.conv(b.relu(b.conv(gap, 24, 8, 1, pad=0)), 8, 24, 1, pad=0)])
    se2 = b.node("Mul", [d, gate2])
    a = b.node("Add", [se2, b.conv(gap, 24, 24, 1, pad=0)])
    sb = b.node("Sub", [b.conv(gap, 24, 24, 1, pad=0), a])
    c4 = b.relu(b.conv(sb, 24, 16, 3))
    fc = b.conv(b.node("GlobalAveragePool", [c4]), 16, 10, 1, pad=0)
    out = b.node("Reshape", [fc, b.init(np.array([1, 10], dtype=np.int64))])
    return b.model(out, (1, 10))


def prelu_net(seed: int = 0) -> onnx.ModelProto:
    """A small CNN with per-channel PRelu (torch ``nn.PReLU(C)``: slope ``(C, 1, 1)``,
    seeded in [-0.3, 0.5], some negative) after a conv whose output is also read by a
    residual Add, and a PRelu with one slope for every channel (a LeakyRelu)."""
    b = GraphBuilder((1, 3, 16, 16), seed, opset=13)
    rng = np.random.default_rng(seed + 100)
    c1 = b.conv("x", 3, 16)
    p1 = b.node("PRelu", [c1, b.init(rng.uniform(-0.3, 0.5, (16, 1, 1)).astype(np.float32))])
    c2 = b.conv(p1, 16, 16, 3, group=16)
    a = b.node("Add", [c1, c2])
    p2 = b.node("PRelu", [a, b.init(np.full((16, 1, 1), 0.25, np.float32))])
    c3 = b.conv(p2, 16, 8, 1, pad=0)
    p3 = b.node("PRelu", [c3, b.init(rng.uniform(0.0, 0.3, (1, 8, 1, 1)).astype(np.float32))])
    fc = b.conv(b.node("GlobalAveragePool", [p3]), 8, 10, 1, pad=0)
    out = b.node("Reshape", [fc, b.init(np.array([1, 10], dtype=np.int64))])
    return b.model(out, (1, 10))


class QDQBuilder:
    """Writes a QDQ graph by hand (for patterns ``quantize_static`` does not produce):
    ``q(x, scale, zp)`` adds a QuantizeLinear + DequantizeLinear pair and returns the
    dequantized name; ``conv_w`` adds int8 per-channel weights with their DQ."""

    def __init__(self, in_shape: Sequence[int], seed: int = 0) -> None:
        self.g = GraphBuilder(in_shape, seed)
        self.rng = self.g.rng

    def q(self, x: str, scale: float, zp: int = 0) -> str:
        s = self.g.init(np.array(scale, dtype=np.float32), "s")
        z = self.g.init(np.array(zp, dtype=np.int8), "z")
        qn = self.g.node("QuantizeLinear", [x, s, z])
        return self.g.node("DequantizeLinear", [qn, s, z])

    def conv_w(self, cin: int, cout: int, k: int, group: int = 1) -> tuple[str, np.ndarray]:
        wq = self.rng.integers(-127, 128, (cout, cin // group, k, k)).astype(np.int8)
        ws = (self.rng.uniform(0.5, 1.5, cout) / 127 / np.sqrt(cin * k * k / group) * 2).astype(
            np.float32
        )
        w = self.g.init(wq, "wq")
        s = self.g.init(ws, "ws")
        z = self.g.init(np.zeros(cout, dtype=np.int8), "wz")
        return self.g.node("DequantizeLinear", [w, s, z], axis=0), ws
