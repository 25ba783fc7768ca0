"""A small seeded ONNX graph builder shared by the paper-network builders.

Conventions (every builder model follows them):

* opset 13 (default domain only), IR version 8, fp32, batch 1, NCHW, static shapes;
* one graph input ``input`` and one graph output ``output`` (the classifier logits, shape
  ``(1, 1000)``; no Softmax);
* weights are drawn from one ``numpy.random.Generator`` seeded by the caller, in
  construction order, so a model is a pure function of its seed;
* convolution and fully-connected weights are He-initialised: normal with mean 0 and
  ``std = sqrt(2 / fan_in)``, ``fan_in = in_channels / group * kh * kw`` (or the input width
  of a Gemm);
* every convolution is followed by ``BatchNormalization`` whose parameters are seeded and
  non-trivial (see :meth:`GraphBuilder.batch_norm`), so BN folding is exercised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

#: Opset of every builder model.
OPSET = 13
#: IR version of every builder model (onnx 1.13+ readers, onnxruntime >= 1.14).
IR_VERSION = 8


def bn_params(
    rng: np.random.Generator, channels: int, gain_scale: float = 1.0, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, non-trivial inference BatchNormalization parameters (gamma, beta, mean, var),
    float32, each of shape ``(channels,)``:

    * var ~ U(0.5, 1.5) and mean ~ N(0, 0.1²);
    * the per-channel gain ``g = gamma / sqrt(var + eps)`` is U(0.7, 1.3) / sqrt(1.03)
      (so E[g²] = 1) times ``gain_scale``; gamma is set from it;
    * beta ~ N(0, 0.1²).

    Because E[g²] = 1, a He-initialised Conv -> BN -> Relu stack keeps the second moment of
    its activations from layer to layer (drawing gamma and var independently would grow it
    by E[gamma²] E[1/var] ≈ 1.19 per layer); ``gain_scale`` < 1 damps the last BN of a
    residual branch so that identity shortcuts do not double the variance at every join.
    """
    var = rng.uniform(0.5, 1.5, channels)
    mean = rng.normal(0.0, 0.1, channels)
    gain = rng.uniform(0.7, 1.3, channels) / math.sqrt(1.03) * gain_scale
    gamma = gain * np.sqrt(var + eps)
    beta = rng.normal(0.0, 0.1, channels)
    return (
        gamma.astype(np.float32),
        beta.astype(np.float32),
        mean.astype(np.float32),
        var.astype(np.float32),
    )


def add_initializer(graph: onnx.GraphProto, name: str, value: np.ndarray) -> onnx.TensorProto:
    """Append ``value`` to ``graph.initializer`` as tensor ``name`` (raw little-endian data).

    Unlike ``numpy_helper.from_array`` followed by ``initializer.extend`` this copies the
    data once, which matters for the 100+ MB weights of VGG."""
    t = graph.initializer.add()
    t.name = name
    t.data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
    t.dims.extend(value.shape)
    t.raw_data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
    return t


class GraphBuilder:
    """Accumulates nodes and initializers of one ONNX graph.

    Tensor names are generated from a prefix given by the caller (``"layer1.0.conv1"``) so
    that node names are readable in importer error messages. Each method returns the name
    of the tensor it produced.
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.weights: dict[str, np.ndarray] = {}
        self._names: set[str] = {"input"}

    # -- primitives -------------------------------------------------------------------
    def _fresh(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"duplicate tensor name {name!r} in builder graph")
        self._names.add(name)
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        """Add an initializer ``name`` holding ``value`` (copied as is)."""
        self._fresh(name)
        self.weights[name] = value
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, **attrs: Any) -> str:
        """Add one node ``name`` of type ``op`` with a single output also called ``name``."""
        out = self._fresh(name)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        return out

    def node_outputs(self, op: str, inputs: Sequence[str], name: str, outputs: Sequence[str],
                     **attrs: Any) -> list[str]:
        """Add one node ``name`` of type ``op`` with several named ``outputs``."""
        outs = [self._fresh(o) for o in outputs]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, **attrs))
        return outs

    def he_normal(self, shape: Sequence[int], fan_in: int) -> np.ndarray:
        """He (Kaiming) normal weights: N(0, 2 / fan_in), float32."""
        w = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        w *= np.float32(math.sqrt(2.0 / fan_in))
        return w

    # -- layers -----------------------------------------------------------------------
    def conv(
        self,
        x: str,
        name: str,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        pad: int | tuple[int, int] = 0,
        group: int = 1,
        bias: bool = False,
    ) -> str:
        """``Conv`` with He-normal weights ``[cout, cin/group, kh, kw]``; symmetric padding
        ``pad`` (an int, or ``(pad_h, pad_w)``); optional bias ~ N(0, 0.05²)."""
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        ph, pw = (pad, pad) if isinstance(pad, int) else pad
        w = self.he_normal((cout, cin // group, kh, kw), fan_in=cin // group * kh * kw)
        inputs = [x, self.const(f"{name}.weight", w)]
        if bias:
            b = self.rng.normal(0.0, 0.05, size=cout).astype(np.float32)
            inputs.append(self.const(f"{name}.bias", b))
        return self.node(
            "Conv",
            inputs,
            name,
            kernel_shape=[kh, kw],
            strides=[stride, stride],
            pads=[ph, pw, ph, pw],
            group=group,
            dilations=[1, 1],
        )

    def batch_norm(
        self, x: str, name: str, channels: int, gain_scale: float = 1.0, eps: float = 1e-5
    ) -> str:
        """Inference ``BatchNormalization`` with seeded parameters (see :func:`bn_params`)."""
        gamma, beta, mean, var = bn_params(self.rng, channels, gain_scale, eps)
        params = [
            self.const(f"{name}.{suffix}", v)
            for suffix, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var))
        ]
        return self.node("BatchNormalization", [x, *params], name, epsilon=eps)

    def relu(self, x: str, name: str) -> str:
        """``Relu``."""
        return self.node("Relu", [x], name)

    def relu6(self, x: str, name: str) -> str:
        """ReLU6 as opset-13 ``Clip`` with scalar ``min`` = 0 and ``max`` = 6 inputs (shared
        initializers ``relu6.min`` / ``relu6.max``)."""
        if "relu6.min" not in self._names:
            self.const("relu6.min", np.array(0.0, dtype=np.float32))
            self.const("relu6.max", np.array(6.0, dtype=np.float32))
        return self.node("Clip", [x, "relu6.min", "relu6.max"], name)

    def conv_bn_act(
        self,
        x: str,
        name: str,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        pad: int | tuple[int, int] = 0,
        group: int = 1,
        act: str | None = "relu",
        bias: bool = False,
        gain_scale: float = 1.0,
        eps: float = 1e-5,
    ) -> str:
        """Conv -> BatchNormalization -> activation (``"relu"``, ``"relu6"`` or None)."""
        y = self.conv(x, f"{name}.conv", cin, cout, kernel, stride, pad, group, bias)
        y = self.batch_norm(y, f"{name}.bn", cout, gain_scale=gain_scale, eps=eps)
        if act == "relu":
            y = self.relu(y, f"{name}.relu")
        elif act == "relu6":
            y = self.relu6(y, f"{name}.relu6")
        elif act is not None:
            raise ValueError(f"unknown activation {act!r}")
        return y

    def max_pool(self, x: str, name: str, kernel: int, stride: int, pad: int = 0) -> str:
        """``MaxPool`` with square kernel and symmetric padding (floor mode)."""
        return self.node(
            "MaxPool",
            [x],
            name,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
        )

    def avg_pool(self, x: str, name: str, kernel: int, stride: int, pad: int = 0) -> str:
        """``AveragePool`` with ``count_include_pad=1`` — the padded zeros count in the
        divisor, as in PyTorch's ``F.avg_pool2d`` default (torchvision Inception v3)."""
        return self.node(
            "AveragePool",
            [x],
            name,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
            count_include_pad=1,
        )

    def global_avg_pool(self, x: str, name: str) -> str:
        """``GlobalAveragePool`` (N, C, H, W) -> (N, C, 1, 1)."""
        return self.node("GlobalAveragePool", [x], name)

    def flatten(self, x: str, name: str) -> str:
        """``Flatten`` with axis 1: (N, ...) -> (N, prod(...))."""
        return self.node("Flatten", [x], name, axis=1)

    def concat(self, xs: Sequence[str], name: str) -> str:
        """``Concat`` along channels (axis 1)."""
        return self.node("Concat", xs, name, axis=1)

    def add(self, a: str, b: str, name: str) -> str:
        """Element-wise ``Add``."""
        return self.node("Add", [a, b], name)

    def gemm(self, x: str, name: str, fin: int, fout: int, out_name: str | None = None) -> str:
        """Fully connected layer ``Gemm(x, W, b, transB=1)`` with W ``[fout, fin]``
        He-normal and b ~ N(0, 0.05²). ``out_name`` overrides the output tensor name (the
        node keeps ``name``)."""
        w = self.he_normal((fout, fin), fan_in=fin)
        b = self.rng.normal(0.0, 0.05, fout).astype(np.float32)
        inputs = [x, self.const(f"{name}.weight", w), self.const(f"{name}.bias", b)]
        out = self._fresh(out_name or name)
        self.nodes.append(
            helper.make_node("Gemm", inputs, [out], name=name, transB=1, alpha=1.0, beta=1.0)
        )
        return out

    # -- model ------------------------------------------------------------------------
    def finish(
        self,
        graph_name: str,
        input_shape: Sequence[int],
        output: str,
        output_shape: Sequence[int],
        doc: str,
        opset: int = OPSET,
    ) -> onnx.ModelProto:
        """Wrap the accumulated nodes into a model with input ``input`` and the given
        output, and record the shape of every intermediate tensor as ``value_info``.
        ``opset`` is the default-domain opset (:data:`OPSET` unless a model needs a newer
        op, such as ``LayerNormalization`` from opset 17).

        Shape inference (strict) runs on a weightless skeleton in which the initializers
        are typed graph inputs, so it does not serialise hundreds of MB of weights."""
        x_info = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))
        y_info = helper.make_tensor_value_info(output, TensorProto.FLOAT, list(output_shape))
        opsets = [helper.make_opsetid("", opset)]
        weight_infos = [
            helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)
            )
            for name, v in self.weights.items()
        ]
        skeleton = helper.make_model(
            helper.make_graph(self.nodes, graph_name, [x_info, *weight_infos], [y_info]),
            opset_imports=opsets,
        )
        skeleton.ir_version = IR_VERSION
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=True)
        graph = helper.make_graph(
            self.nodes,
            graph_name,
            [x_info],
            [y_info],
            value_info=list(inferred.graph.value_info),
        )
        model = helper.make_model(
            graph, opset_imports=opsets, producer_name="vfpga.models", doc_string=doc
        )
        model.ir_version = IR_VERSION
        for name, value in self.weights.items():  # after make_model, which copies the graph
            add_initializer(model.graph, name, value)
        return model
