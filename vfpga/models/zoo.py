"""The ONNX model-zoo graphs shipped in the ``onnx`` wheel, with seeded random weights.

``onnx/backend/test/data/light/light_<name>.onnx`` are real Caffe2 exports (IR version 3,
opset 9, producer ``onnx-caffe2``) whose large weights were replaced by
``ConstantOfShape(value=0.02)`` nodes fed by int64 ``<weight>__SHAPE`` initializers; small
trained tensors (some biases and BN parameters) are kept as float initializers. With every
weight 0.02 the outputs mean nothing, so :func:`export_zoo_model` rewrites the *weights
only*:

* each ``ConstantOfShape`` node becomes a float32 initializer of the target shape (read
  from its shape input: an initializer or a ``Constant`` node) holding seeded random
  values; its ``__SHAPE`` initializer (and graph input) is dropped when nothing else uses
  it; a ``Constant`` shape node likewise;
* each float initializer that is a weight, bias or BN parameter is redrawn the same way
  (other initializers — Reshape shapes, the unused ``imagenet1k_blobs_queue`` tensor — are
  kept as they are);
* new initializers keep the IR-3 convention of these files: every initializer is also
  listed as a graph input, at the position of the tensor it replaces.

Values depend on the role of the tensor, found from its consumer (through a ``Reshape`` or
``Unsqueeze`` if the tensor feeds one):

======================================  ================================================
role                                    values
======================================  ================================================
Conv weight ``[M, C/g, kh, kw]``        N(0, 2 / (C/g kh kw))  (He), see below
Gemm weight                             N(0, 2 / K), K the reduced dimension (He)
Conv / Gemm bias                        N(0, 0.05²)
BatchNormalization scale/B/mean/var     :func:`vfpga.models._builder.bn_params`
Mul by an Unsqueeze'd vector (scale)    U(0.7, 1.3) / sqrt(1.03)
Add of an Unsqueeze'd vector (shift)    N(0, 0.1²)
======================================  ================================================

He's factor 2 assumes the layer reads Relu outputs; a Conv/Gemm whose input is not
rectified (the image, or the linear depthwise-conv output in ShuffleNet) gets
N(0, 1 / fan_in) instead, so the second moment of activations is preserved either way.

Residual joins: when a ``Sum``/``Add`` of activations has BatchNormalization outputs among
its inputs, their gain is damped — by 0.3 if some input is not a BN output (an identity
shortcut), by 1/sqrt(k) if all k inputs are BN outputs (a projection) — so that the
16 joins of ResNet-50 and 13 of ShuffleNet do not double the activation variance each.

Everything else — node order and names, opset 9, Dropout, LRN, Softmax, the IR-3 graph
inputs, the Reshape of a weight in Inception v1, the Unsqueeze/Mul/Add scale layers of
DenseNet and Inception v2, ShuffleNet's Reshape/Transpose channel shuffle — is kept as it
is: these graphs are meant to be imported as the messy exports they are.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vfpga.errors import VfpgaError
from vfpga.models._builder import add_initializer, bn_params

#: vfpga model name -> (file stem under ``light/``, description)
ZOO_MODELS: dict[str, tuple[str, str]] = {
    "zoo-alexnet": ("light_bvlc_alexnet", "BVLC AlexNet (Caffe): 5 conv, LRN, 3 FC, softmax"),
    "zoo-zfnet512": ("light_zfnet512", "ZFNet-512 (Caffe2): 5 conv, LRN, 3 FC, softmax"),
    "zoo-vgg19": ("light_vgg19", "VGG-19 (Caffe): 16 conv, 3 FC with dropout, softmax"),
    "zoo-resnet50": ("light_resnet50", "ResNet-50 (Caffe2; stride on the 3x3 conv): Sum joins"),
    "zoo-inception_v1": ("light_inception_v1", "GoogLeNet / Inception v1 (Caffe), LRN"),
    "zoo-inception_v2": ("light_inception_v2", "Inception v2 / BN-Inception (Caffe2)"),
    "zoo-squeezenet": ("light_squeezenet", "SqueezeNet 1.0 (Caffe): fire modules"),
    "zoo-shufflenet": ("light_shufflenet", "ShuffleNet v1 g=4 (Caffe2): channel shuffle"),
    "zoo-densenet121": ("light_densenet121", "DenseNet-121 (Caffe): BN + scale layers"),
}

#: Ops through which "reads Relu output" is traced back (data input 0).
_PASS_THROUGH = frozenset(
    {
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Reshape",
        "Flatten",
        "Transpose",
        "Dropout",
        "LRN",
        "Squeeze",
        "Unsqueeze",
    }
)

#: Gain factor of a BN that joins an identity shortcut (see module docstring).
RESIDUAL_GAIN = 0.3


def zoo_dir() -> Path:
    """The ``light`` model folder of the installed onnx wheel."""
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def zoo_path(name: str) -> Path:
    """Path of the original zoo file of model ``name`` (``zoo-resnet50``...)."""
    stem, _ = ZOO_MODELS[name]
    path = zoo_dir() / f"{stem}.onnx"
    if not path.is_file():
        raise VfpgaError(
            f"zoo model {name!r}: {path} is missing from the installed onnx wheel "
            f"(onnx {onnx.__version__}); reinstall onnx >= 1.17"
        )
    return path


@cache
def _load_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class _Use:
    """One consumer of a tensor: ``node`` reads it as input number ``index``."""

    node: onnx.NodeProto
    index: int


class _Graph:
    """Producer/consumer index of a graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.producer: dict[str, onnx.NodeProto] = {}
        self.users: dict[str, list[_Use]] = defaultdict(list)
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            for i, name in enumerate(node.input):
                if name:
                    self.users[name].append(_Use(node, i))
        self.inits = {t.name: t for t in graph.initializer}

    def const_value(self, name: str, context: str) -> np.ndarray:
        """Value of a constant tensor (initializer or ``Constant`` node output)."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        raise VfpgaError(f"{context}: input {name!r} is not a constant; cannot fold it")


def _node_label(node: onnx.NodeProto) -> str:
    return f"node {node.name or '<unnamed>'} ({node.op_type} -> {', '.join(node.output)})"


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(helper.get_attribute_value(a))
    return default


def _bn_output(g: _Graph, bn: onnx.NodeProto) -> str:
    """The tensor carrying a BN's normalised output after an optional Mul/Add scale layer
    (DenseNet, Inception v2: BN -> Mul(Unsqueeze(w)) -> Add(Unsqueeze(b)))."""
    out = bn.output[0]
    for op in ("Mul", "Add"):
        uses = g.users.get(out, [])
        if len(uses) == 1 and uses[0].node.op_type == op:
            other = uses[0].node.input[1 - uses[0].index]
            src = g.producer.get(other)
            if src is not None and src.op_type == "Unsqueeze":
                out = uses[0].node.output[0]
    return out


def _residual_gains(g: _Graph) -> dict[str, float]:
    """BN node output name -> gain factor, for BNs feeding a residual join."""
    end_of = {_bn_output(g, n): n for n in g.graph.node if n.op_type == "BatchNormalization"}
    gains: dict[str, float] = {}
    for node in g.graph.node:
        if node.op_type not in ("Sum", "Add") or len(node.input) < 2:
            continue
        if any(x in g.inits or x not in g.producer for x in node.input):
            continue  # a bias/shift add, not a join of two activations
        if any(g.producer[x].op_type == "Unsqueeze" for x in node.input):
            continue
        bns = [end_of[x] for x in node.input if x in end_of]
        if not bns:
            continue
        factor = 1 / math.sqrt(len(bns)) if len(bns) == len(node.input) else RESIDUAL_GAIN
        for bn in bns:
            gains[bn.output[0]] = factor
    return gains


def _weight_tensors(g: _Graph) -> Iterator[tuple[str, tuple[int, ...], onnx.NodeProto | None]]:
    """(name, shape, ConstantOfShape-or-Constant node or None) of every weight candidate:
    ConstantOfShape outputs, float Constant outputs and float initializers."""
    for node in g.graph.node:
        if node.op_type == "ConstantOfShape":
            shape = g.const_value(node.input[0], _node_label(node)).astype(np.int64)
            if shape.ndim != 1 or (shape < 0).any():
                raise VfpgaError(f"{_node_label(node)}: bad shape {shape.tolist()}")
            for a in node.attribute:
                if a.name == "value" and a.t.data_type != TensorProto.FLOAT:
                    raise VfpgaError(f"{_node_label(node)}: value is not float32")
            yield node.output[0], tuple(int(d) for d in shape), node
        elif node.op_type == "Constant":
            value = g.const_value(node.output[0], _node_label(node))
            if value.dtype == np.float32 and g.users.get(node.output[0]):
                yield node.output[0], value.shape, node
    for t in g.graph.initializer:
        if t.data_type == TensorProto.FLOAT and g.users.get(t.name):
            yield t.name, tuple(int(d) for d in t.dims), None


class _Reweighter:
    """Draws the random value of each weight tensor from its role."""

    def __init__(self, g: _Graph, seed: int, model_name: str) -> None:
        self.g = g
        self.rng = np.random.default_rng(seed)
        self.model = model_name
        self.gains = _residual_gains(g)
        self._bn_cache: dict[str, tuple[np.ndarray, ...]] = {}

    def value(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """Random value for tensor ``name`` of ``shape``, or None if it is not a weight."""
        uses = self.g.users.get(name, [])
        if len(uses) != 1:
            return None
        use = uses[0]
        node = use.node
        if node.op_type == "Reshape" and use.index == 0:
            # weight stored flat and reshaped in the graph (Inception v1's classifier)
            target = self.g.const_value(node.input[1], _node_label(node)).astype(np.int64)
            tshape = _reshape_target(shape, target, node)
            v = self.value(node.output[0], tshape)
            return None if v is None else v.reshape(shape)
        if node.op_type == "Unsqueeze" and use.index == 0:
            next_ops = [u.node.op_type for u in self.g.users.get(node.output[0], [])]
            if len(next_ops) != 1 or next_ops[0] not in ("Mul", "Add"):
                return None
            if next_ops[0] == "Mul":
                return (self.rng.uniform(0.7, 1.3, shape) / math.sqrt(1.03)).astype(np.float32)
            return self.rng.normal(0.0, 0.1, shape).astype(np.float32)
        if node.op_type == "Conv":
            if use.index == 1:
                return _he(self.rng, shape, int(np.prod(shape[1:])), self._rectified(node))
            if use.index == 2:
                return self.rng.normal(0.0, 0.05, shape).astype(np.float32)
        if node.op_type == "Gemm":
            if use.index == 1:
                if len(shape) != 2:
                    raise VfpgaError(
                        f"{self.model}: {_node_label(node)}: weight {name!r} "
                        f"has shape {list(shape)}, expected 2-D"
                    )
                k = shape[1] if _attr(node, "transB", 0) else shape[0]
                return _he(self.rng, shape, k, self._rectified(node))
            if use.index == 2:
                return self.rng.normal(0.0, 0.05, shape).astype(np.float32)
        if node.op_type == "BatchNormalization" and 1 <= use.index <= 4:
            return self._bn(node)[use.index - 1].reshape(shape)
        return None

    def _rectified(self, node: onnx.NodeProto) -> bool:
        """Whether the data input of ``node`` comes from a Relu, looking back through
        shape-only and pooling ops (Concat: all of its inputs)."""
        todo, seen = [node.input[0]], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            prod = self.g.producer.get(name)
            if prod is None:
                return False  # graph input
            if prod.op_type == "Relu":
                continue
            if prod.op_type in _PASS_THROUGH:
                todo.append(prod.input[0])
            elif prod.op_type == "Concat":
                todo.extend(prod.input)
            else:
                return False
        return True

    def _bn(self, node: onnx.NodeProto) -> tuple[np.ndarray, ...]:
        key = node.output[0]
        if key not in self._bn_cache:
            channels = self._bn_channels(node)
            eps = 1e-5
            for a in node.attribute:
                if a.name == "epsilon":
                    eps = float(helper.get_attribute_value(a))
            self._bn_cache[key] = bn_params(self.rng, channels, self.gains.get(key, 1.0), eps)
        return self._bn_cache[key]

    def _bn_channels(self, node: onnx.NodeProto) -> int:
        for x in node.input[1:5]:
            for t in self.g.graph.initializer:
                if t.name == x:
                    return int(t.dims[0])
            prod = self.g.producer.get(x)
            if prod is not None and prod.op_type == "ConstantOfShape":
                return int(self.g.const_value(prod.input[0], _node_label(prod))[0])
        raise VfpgaError(f"{self.model}: {_node_label(node)}: cannot tell its channel count")


def _reshape_target(
    shape: tuple[int, ...], target: np.ndarray, node: onnx.NodeProto
) -> tuple[int, ...]:
    """Shape produced by ``Reshape(data of shape, target)`` (opset 5+ rules for 0 and -1)."""
    out = [shape[i] if d == 0 else int(d) for i, d in enumerate(target)]
    size = int(np.prod(shape))
    if out.count(-1) == 1:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = size // known
    if int(np.prod(out)) != size:
        raise VfpgaError(f"{_node_label(node)}: cannot reshape {list(shape)} to {target.tolist()}")
    return tuple(out)


def _he(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, rectified: bool
) -> np.ndarray:
    """N(0, 2 / fan_in) (He) when the layer reads rectified (Relu) activations, else
    N(0, 1 / fan_in): the factor 2 of He et al. compensates the Relu halving the second
    moment, and over-amplifies a layer that reads a linear Conv/BN output."""
    w = rng.standard_normal(shape, dtype=np.float32)
    w *= np.float32(math.sqrt((2.0 if rectified else 1.0) / fan_in))
    return w


def export_zoo_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """Load zoo model ``name`` and return it with seeded random weights (module docstring).

    Raises :class:`VfpgaError` if ``name`` is not a zoo model, its file is missing, or a
    weight cannot be re-drawn (see :func:`reweight`)."""
    if name not in ZOO_MODELS:
        raise VfpgaError(f"unknown zoo model {name!r}; valid: {', '.join(ZOO_MODELS)}")
    model = onnx.load_from_string(_load_bytes(str(zoo_path(name))))
    reweight(model, seed, name)
    model.doc_string = (
        f"{name}: {ZOO_MODELS[name][1]}. From onnx {onnx.__version__} "
        f"backend/test/data/light/{ZOO_MODELS[name][0]}.onnx with seeded random weights "
        f"(seed {seed}) by vfpga.models; graph otherwise unchanged."
    )
    return model


def reweight(model: onnx.ModelProto, seed: int, label: str = "model") -> None:
    """Fold every ``ConstantOfShape`` weight of ``model`` into a seeded random initializer
    and redraw every float weight/bias/BN initializer, in place (module docstring).
    ``label`` names the model in error messages.

    Raises :class:`VfpgaError` naming the node if a ConstantOfShape's shape input is not
    constant, or its output feeds something that is not a recognised weight slot (so it
    could not be given a meaningful value)."""
    name = label
    graph = model.graph
    g = _Graph(graph)
    rw = _Reweighter(g, seed, name)

    new_values: dict[str, np.ndarray] = {}
    folded_nodes: list[onnx.NodeProto] = []
    for tname, shape, node in _weight_tensors(g):
        value = rw.value(tname, shape)
        if value is None:
            if node is not None and node.op_type == "ConstantOfShape":
                uses = ", ".join(_node_label(u.node) for u in g.users.get(tname, []))
                raise VfpgaError(
                    f"{name}: ConstantOfShape output {tname!r} feeds {uses or 'nothing'}, "
                    "which is not a weight/bias/BN slot this exporter knows"
                )
            continue
        new_values[tname] = value
        if node is not None:
            folded_nodes.append(node)

    # drop folded ConstantOfShape/Constant nodes, then shape tensors nothing else reads
    folded = {id(n) for n in folded_nodes}
    keep_nodes = [n for n in graph.node if id(n) not in folded]
    still_read = {x for n in keep_nodes for x in n.input} | {o.name for o in graph.output}
    dead_shapes = {
        n.input[0]
        for n in folded_nodes
        if n.op_type == "ConstantOfShape" and n.input[0] not in still_read
    }
    shape_consts = [n for n in keep_nodes if n.op_type == "Constant" and n.output[0] in dead_shapes]
    keep_nodes = [n for n in keep_nodes if n not in shape_consts]
    del graph.node[:]
    graph.node.extend(keep_nodes)

    # initializers: redrawn ones keep their place; a folded ConstantOfShape takes the place
    # of its shape tensor; the rest are kept (copied: they are small int64 shapes)
    cos_by_shape = {n.input[0]: n.output[0] for n in folded_nodes if n.op_type == "ConstantOfShape"}
    plan: list[tuple[str, onnx.TensorProto | None]] = []
    placed: set[str] = set()
    for t in graph.initializer:
        if t.name in new_values:
            plan.append((t.name, None))
            placed.add(t.name)
        elif t.name in dead_shapes:
            plan.append((cos_by_shape[t.name], None))
            placed.add(cos_by_shape[t.name])
        else:
            keep = onnx.TensorProto()
            keep.CopyFrom(t)
            plan.append((t.name, keep))
    plan += [(w, None) for w in new_values if w not in placed]  # from Constant nodes
    del graph.initializer[:]
    for tname, kept in plan:
        if kept is None:
            add_initializer(graph, tname, new_values[tname])
        else:
            graph.initializer.add().CopyFrom(kept)

    # graph inputs: IR 3 lists every initializer; keep that, in the same order
    new_inputs: list[onnx.ValueInfoProto] = []
    listed: set[str] = set()
    for vi in graph.input:
        if vi.name in dead_shapes:
            w = cos_by_shape[vi.name]
            new_inputs.append(_value_info(w, new_values[w]))
            listed.add(w)
        else:
            new_inputs.append(vi)
            listed.add(vi.name)
    if model.ir_version < 4:
        new_inputs += [_value_info(w, v) for w, v in new_values.items() if w not in listed]
    del graph.input[:]
    graph.input.extend(new_inputs)


def _value_info(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
