"""Parameter and multiply-accumulate counts of an ONNX model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from vfpga.errors import VfpgaError

#: ONNX element types counted as parameters (weights), as opposed to int64 shape tensors.
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


@dataclass(frozen=True)
class ModelStats:
    """``params``: number of floating-point initializer elements (weights, biases, BN
    parameters; int64 shape tensors excluded). ``macs``: multiply-accumulates of the
    Conv, Gemm and MatMul nodes for one inference (a Conv output element costs
    ``C_in / group * kh * kw`` MACs, a Gemm/MatMul output element costs K); element-wise
    ops, pooling and BN are not counted."""

    params: int
    macs: int

    @property
    def gmacs(self) -> float:
        """MACs in units of 10^9."""
        return self.macs / 1e9


def _shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = vi.type.tensor_type.shape.dim
    if any(not d.HasField("dim_value") for d in dims):
        return None
    return tuple(d.dim_value for d in dims)


def model_stats(model: onnx.ModelProto) -> ModelStats:
    """Count parameters and MACs of ``model`` (static shapes required for MACs: a node
    whose shapes cannot be inferred raises :class:`VfpgaError` naming it).

    Shape inference runs on a weightless copy of the graph (initializers as typed inputs),
    so this is cheap even for VGG."""
    g = model.graph
    params = sum(
        int(np.prod(t.dims, dtype=np.int64)) for t in g.initializer if t.data_type in _FLOAT_TYPES
    )
    init_names = {t.name for t in g.initializer}
    # shape operands keep their values: Reshape shapes (int64), Resize scales (float)
    shape_operands = {i for n in g.node if n.op_type == "Resize" for i in n.input[1:]}
    inputs = [vi for vi in g.input if vi.name not in init_names]
    inputs += [
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in g.initializer
        if t.data_type in _FLOAT_TYPES and t.name not in shape_operands
    ]
    small = [
        t for t in g.initializer
        if t.data_type not in _FLOAT_TYPES or t.name in shape_operands
    ]  # fmt: skip
    skeleton = helper.make_model(
        helper.make_graph(list(g.node), g.name, inputs, list(g.output), initializer=small),
        opset_imports=list(model.opset_import),
    )
    skeleton.ir_version = max(model.ir_version, 4)
    inferred = onnx.shape_inference.infer_shapes(skeleton).graph
    shapes: dict[str, tuple[int, ...] | None] = {}
    for vi in [*inferred.input, *inferred.value_info, *inferred.output]:
        shapes[vi.name] = _shape(vi)

    macs = 0
    for node in g.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        out = shapes.get(node.output[0])
        w = shapes.get(node.input[1])
        a = shapes.get(node.input[0])
        if out is None or w is None or a is None:
            raise VfpgaError(
                f"node {node.name or node.output[0]} ({node.op_type}): "
                "shapes not inferred; cannot count its MACs"
            )
        n_out = int(np.prod(out, dtype=np.int64))
        if node.op_type == "Conv":
            macs += n_out * int(np.prod(w[1:], dtype=np.int64))
        elif node.op_type == "Gemm":
            trans_a = next((a_.i for a_ in node.attribute if a_.name == "transA"), 0)
            macs += n_out * (a[0] if trans_a else a[1])
        else:
            macs += n_out * a[-1]
    return ModelStats(params=params, macs=macs)
