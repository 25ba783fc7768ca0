"""The small mutable graph :func:`vfpga.frontend.normalize.normalize` builds and rewrites.

Every tensor of a :class:`NGraph` is a 4-D NCHW float32 tensor (a 2-D ``(N, K)`` tensor of
the source model is held as ``(N, K, 1, 1)``); weights live in :attr:`NGraph.consts` as
numpy arrays and are emitted as initializers by :meth:`NGraph.to_onnx`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper

from vfpga.frontend.norm_fold import opset_imports


@dataclass
class NNode:
    """One node: ONNX ``op_type`` with ``attrs`` as plain Python values. ``_ChannelPerm``
    (attribute ``perm``: ``out[:, c] = in[:, perm[c]]``) is internal and never emitted."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class NGraph:
    """Nodes in topological order, constants, the single input and the outputs.

    ``shapes`` holds the 4-D shape of every activation tensor. ``output_shapes`` the ONNX
    shape of each graph output (2-D outputs get a final ``Reshape``)."""

    name: str
    input: str
    input_shape: tuple[int, ...]
    #: the input's ONNX element type: float32, or int64 for token ids (only host nodes
    #: read them, ``vfpga.quant.index_inputs``)
    input_type: int = onnx.TensorProto.FLOAT
    nodes: list[NNode] = field(default_factory=list)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    # -- naming -------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A name not used yet by any node or tensor, derived from ``base``."""
        cand, k = base, 1
        while cand in self._names:
            cand, k = f"{base}_{k}", k + 1
        self._names.add(cand)
        return cand

    def reserve(self, name: str) -> None:
        """Mark ``name`` as used."""
        self._names.add(name)

    def add_const(self, base: str, value: np.ndarray) -> str:
        """Store ``value`` under a fresh name and return it."""
        nm = self.fresh(base)
        self.consts[nm] = value
        return nm

    # -- structure ----------------------------------------------------------------------
    def producers(self) -> dict[str, NNode]:
        """Tensor name -> the node producing it."""
        return {o: n for n in self.nodes for o in n.outputs}

    def consumers(self) -> dict[str, list[NNode]]:
        """Tensor name -> the nodes reading it (a node reading it twice appears twice)."""
        res: dict[str, list[NNode]] = {}
        for n in self.nodes:
            for i in n.inputs:
                res.setdefault(i, []).append(n)
        return res

    def rename_tensor(self, old: str, new: str) -> None:
        """Replace every use and definition of tensor ``old`` by ``new``."""
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
            n.outputs = [new if o == old else o for o in n.outputs]
        self.outputs = [new if o == old else o for o in self.outputs]
        if old in self.shapes:
            self.shapes[new] = self.shapes.pop(old)

    def remove_dead(self) -> None:
        """Drop nodes none of whose outputs is used, and unused constants."""
        while True:
            used = {i for n in self.nodes for i in n.inputs} | set(self.outputs)
            keep = [n for n in self.nodes if any(o in used for o in n.outputs)]
            if len(keep) == len(self.nodes):
                break
            self.nodes = keep
        used = {i for n in self.nodes for i in n.inputs}
        self.consts = {k: v for k, v in self.consts.items() if k in used}

    # -- emission -----------------------------------------------------------------------
    def to_onnx(self, output_shapes: dict[str, tuple[int | None, ...]], opset: int,
                ir_version: int, domains: dict[str, int] | None = None,
                output_types: dict[str, int] | None = None) -> onnx.ModelProto:
        """Emit an ONNX model (float32, static shapes, the given opset; ``domains``: the
        versions of the custom domains host nodes use; ``output_types``: the element type
        of a graph output that is not float32, and a ``None`` dimension in
        ``output_shapes`` is data-dependent: outputs of host nodes such as
        NonMaxSuppression)."""
        nodes = []
        for n in self.nodes:
            if n.op_type.startswith("_"):
                raise AssertionError(f"internal node {n.name} ({n.op_type}) left in graph")
            nodes.append(helper.make_node(n.op_type, n.inputs, n.outputs, name=n.name,
                                          **n.attrs))
        f32 = onnx.TensorProto.FLOAT
        m = helper.make_model(
            helper.make_graph(
                nodes, self.name,
                [helper.make_tensor_value_info(self.input, self.input_type, self.input_shape)],
                [helper.make_tensor_value_info(o, (output_types or {}).get(o, f32),
                                               list(output_shapes[o])) for o in self.outputs],
            ),
            opset_imports=opset_imports(opset, domains or {}), ir_version=ir_version,
            producer_name="vfpga.normalize")
        for k, v in self.consts.items():  # filled in place: one copy of the weight bytes
            arr = np.ascontiguousarray(v).reshape(np.shape(v))  # keeps a 0-d shape
            t = m.graph.initializer.add()
            t.name = k
            t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
            t.dims.extend(arr.shape)
            t.raw_data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        return m
