"""Loading, opset upgrade, constant folding and shape inference for :func:`normalize`.

The functions here take an fp32 ONNX model as exported (old opsets, initializers listed as
graph inputs, weights built at run time by ``Constant``/``ConstantOfShape``/``Unsqueeze``
chains) to a *folded graph*: a list of the remaining nodes, a dictionary of constant
tensors (numpy arrays) and the static shape of every remaining tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vfpga.errors import FrontendError

#: Opset every normalized model uses at least (per-channel QDQ needs opset >= 13).
TARGET_OPSET = 13

#: Op types never constant-folded (non-deterministic or with side effects).
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
            "Multinomial", "Bernoulli", "If", "Loop", "Scan"}

#: Above this many elements a constant is given to shape inference as a typed graph input
#: rather than as an initializer (shape inference never needs the values of weights).
_SMALL_CONST = 64


@dataclass
class FoldedGraph:
    """The graph after loading, opset upgrade and constant folding.

    ``nodes`` are the remaining nodes in topological order (every one has a unique,
    non-empty name); ``consts`` maps every constant tensor name to its value; ``inputs`` are
    the non-constant graph inputs (name -> ``ValueInfoProto``); ``outputs`` the graph
    outputs (name -> ``ValueInfoProto``); ``shapes`` maps tensor names to static shapes
    (where inference knows them); ``dtypes`` to ONNX element types.
    """

    source: str
    opset: int
    ir_version: int
    graph_name: str
    nodes: list[onnx.NodeProto]
    consts: dict[str, np.ndarray]
    inputs: dict[str, onnx.ValueInfoProto]
    outputs: dict[str, onnx.ValueInfoProto]
    shapes: dict[str, tuple[int | str, ...]] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)
    #: opset imports of domains other than the default one (custom-domain ops, e.g.
    #: onnxruntime's ``com.microsoft`` contrib ops): domain -> version
    domains: dict[str, int] = field(default_factory=dict)
    #: shapes of custom-domain node outputs that onnx shape inference cannot know, taken
    #: from one onnxruntime run (:func:`_ort_shapes`), given to every later inference
    ort_shapes: dict[str, tuple[tuple[int, ...], int]] = field(default_factory=dict)


def load_model(model: onnx.ModelProto | str | Path, source: str | None) -> tuple[
    onnx.ModelProto, str
]:
    """Load ``model`` (a path or a ``ModelProto``) and return it with the name used in
    error messages (``source``, else the file name, else the graph name)."""
    if isinstance(model, onnx.ModelProto):
        return model, source or (model.graph.name or "<model>")
    path = Path(model)
    name = source or str(path)
    if not path.is_file():
        raise FrontendError(f"{name}: no such file")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for bad files
        raise FrontendError(
            f"{name}: not a readable ONNX model ({type(exc).__name__}: {exc})"
        ) from None
    if len(proto.graph.node) == 0 and len(proto.graph.output) == 0:
        raise FrontendError(f"{name}: not an ONNX model (the file parses to an empty graph)")
    return proto, name


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default ONNX domain the model imports (1 if absent)."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def strip_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[onnx.TensorProto]]:
    """A copy of ``model`` without its large initializers (more than 64 elements), which
    become typed graph inputs instead, and the removed initializers. The checker, the
    version converter and shape inference never need weight values, and serializing
    hundreds of megabytes of weights for each of them dominates their run time."""
    g = model.graph
    big = [t for t in g.initializer if int(np.prod(t.dims)) > _SMALL_CONST
           and t.data_type not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)]
    big_names = {t.name for t in big}
    g2 = onnx.GraphProto()
    g2.name = g.name
    g2.node.extend(g.node)
    g2.output.extend(g.output)
    g2.value_info.extend(g.value_info)
    g2.initializer.extend(t for t in g.initializer if t.name not in big_names)
    g2.sparse_initializer.extend(g.sparse_initializer)
    listed = {vi.name for vi in g.input}
    g2.input.extend(g.input)
    g2.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                    for t in big if t.name not in listed)
    m2 = onnx.ModelProto()
    m2.ir_version = max(model.ir_version, 4)
    m2.opset_import.extend(model.opset_import)
    m2.graph.CopyFrom(g2)
    return m2, big


def check_and_upgrade(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """Run ``onnx.checker`` and upgrade models older than opset 13 to opset 13 with
    ``onnx.version_converter`` (both on a weight-free copy; see :func:`strip_weights`).
    Models at opset 13 or newer are kept at their opset. The result keeps the large
    initializers as initializers (and no longer lists them as graph inputs)."""
    try:
        onnx.checker.check_model(strip_weights(model)[0])
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise FrontendError(f"{name}: the ONNX checker rejects the model: {first}") from None
    opset = default_opset(model)
    if opset >= TARGET_OPSET:
        return model
    from onnx import version_converter

    stripped, big = strip_weights(model)
    try:
        converted = version_converter.convert_version(stripped, TARGET_OPSET)
    except Exception as exc:
        raise FrontendError(
            f"{name}: cannot upgrade the model from opset {opset} to opset {TARGET_OPSET} "
            f"with onnx.version_converter ({exc}); re-export the model with opset >= 13"
        ) from None
    big_names = {t.name for t in big}
    inputs = [vi for vi in converted.graph.input if vi.name not in big_names]
    del converted.graph.input[:]
    converted.graph.input.extend(inputs)
    converted.graph.initializer.extend(big)
    return converted


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _eval_constant(node: onnx.NodeProto) -> np.ndarray:
    """Value of a ``Constant`` node."""
    a = node.attribute[0]
    if a.name == "value":
        return numpy_helper.to_array(a.t)
    if a.name == "value_float":
        return np.array(a.f, dtype=np.float32)
    if a.name == "value_floats":
        return np.array(list(a.floats), dtype=np.float32)
    if a.name == "value_int":
        return np.array(a.i, dtype=np.int64)
    if a.name == "value_ints":
        return np.array(list(a.ints), dtype=np.int64)
    raise FrontendError(f"Constant node '{node.name}' uses unsupported attribute {a.name!r}")


def _eval_node(node: onnx.NodeProto, args: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    """Evaluate one node whose inputs are all constants."""
    op = node.op_type
    if op == "Constant":
        return [_eval_constant(node)]
    if op == "ConstantOfShape":
        t = _attr(node, "value")
        fill = numpy_helper.to_array(t) if t is not None else np.zeros(1, np.float32)
        shape = args[0]
        assert shape is not None
        return [np.full(tuple(int(d) for d in shape), fill.reshape(-1)[0], dtype=fill.dtype)]
    if op in ("Identity", "Dropout") and args[0] is not None:
        return [args[0], np.ones(args[0].shape, dtype=bool)][: len(node.output)]
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if a is not None else "" for i, a in enumerate(args)]
    outs = [f"out{i}" if o else "" for i, o in enumerate(node.output)]
    n2 = helper.make_node(op, names, outs, domain=node.domain)
    n2.attribute.extend(node.attribute)
    feeds = {nm: a for nm, a in zip(names, args, strict=True) if a is not None}
    g = helper.make_graph(
        [n2],
        "fold",
        [helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for nm, a in feeds.items()],
        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs if o],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    res = ReferenceEvaluator(m).run(None, feeds)
    return [np.asarray(r) for r in res]


def _skeleton(fg: FoldedGraph) -> onnx.ModelProto:
    """A weight-free copy of the folded graph for shape inference: small constants are
    initializers, large ones typed graph inputs."""
    inits = []
    ins = list(fg.inputs.values())
    used = {i for n in fg.nodes for i in n.input if i}
    for nm, v in fg.consts.items():
        if nm not in used:
            continue
        if v.size <= _SMALL_CONST or v.dtype.kind in "iub":
            inits.append(numpy_helper.from_array(np.asarray(v), nm))
        else:
            ins.append(helper.make_tensor_value_info(
                nm, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
    outs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in fg.outputs]
    known = [helper.make_tensor_value_info(t, dt, shape)
             for t, (shape, dt) in fg.ort_shapes.items()]
    g = helper.make_graph(fg.nodes, fg.graph_name or "g", ins, outs, inits, value_info=known)
    return helper.make_model(g, opset_imports=opset_imports(fg.opset, fg.domains),
                             ir_version=max(fg.ir_version, 7))


def opset_imports(opset: int, domains: dict[str, int]) -> list[onnx.OperatorSetIdProto]:
    """The opset imports of a model: the default domain at ``opset`` and each custom
    domain of ``domains`` (name -> version)."""
    return [helper.make_opsetid("", opset),
            *(helper.make_opsetid(d, v) for d, v in sorted(domains.items()))]


def _custom(n: onnx.NodeProto) -> bool:
    return n.domain not in ("", "ai.onnx")


def _ort_shapes(fg: FoldedGraph, names: list[str]) -> None:
    """Record in ``fg.ort_shapes`` the shapes and element types of ``names`` (outputs of
    custom-domain nodes, which onnx shape inference has no schema for), running the folded
    graph once in onnxruntime on a zero input. Custom-domain ops run on the host, by
    onnxruntime, so one onnxruntime cannot run is an error naming the node."""
    import onnxruntime as ort

    model = _skeleton(fg)
    del model.graph.output[:]
    model.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in names)
    del model.graph.value_info[:]
    feeds: dict[str, np.ndarray] = {}
    for vi in model.graph.input:
        if vi.name in fg.consts:
            feeds[vi.name] = np.asarray(fg.consts[vi.name])
        else:
            dims = [int(d.dim_value) for d in vi.type.tensor_type.shape.dim]
            dt = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
            feeds[vi.name] = np.zeros(dims, dt)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        values = sess.run(names, feeds)
    except Exception as exc:
        ops = sorted({f"'{n.name}' ({n.op_type} in domain '{n.domain}')"
                      for n in fg.nodes if _custom(n) and set(n.output) & set(names)})
        msg = str(exc).strip().splitlines()
        raise FrontendError(
            f"{fg.source}: custom-domain node(s) {', '.join(ops)}: onnx shape inference has "
            "no schema for them and onnxruntime cannot run them "
            f"({msg[0][:300] if msg else type(exc).__name__}); host segments run on "
            "onnxruntime, so only ops it implements (the default ONNX domain, "
            "com.microsoft contrib ops) can be compiled"
        ) from None
    for t, v in zip(names, values, strict=True):
        v = np.asarray(v)
        fg.ort_shapes[t] = (tuple(int(d) for d in v.shape),
                            helper.np_dtype_to_tensor_dtype(v.dtype))


def infer_shapes(fg: FoldedGraph) -> None:
    """Fill ``fg.shapes`` / ``fg.dtypes`` with onnx shape inference on the folded graph."""
    try:
        inferred = onnx.shape_inference.infer_shapes(_skeleton(fg), strict_mode=True,
                                                     data_prop=True)
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        raise FrontendError(
            f"{fg.source}: ONNX shape inference failed: {msg[-1] if msg else exc}"
        ) from None
    g = inferred.graph
    if not fg.ort_shapes:
        have = {vi.name for vi in [*g.value_info, *g.output]
                if vi.type.tensor_type.HasField("shape")}
        unknown = [o for n in fg.nodes if _custom(n) for o in n.output
                   if o and o not in have]
        if unknown:
            _ort_shapes(fg, unknown)
            infer_shapes(fg)
            return
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            if tt.elem_type:
                fg.dtypes[vi.name] = tt.elem_type
            continue
        dims: list[int | str] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or "?")
        fg.shapes[vi.name] = tuple(dims)
        fg.dtypes[vi.name] = tt.elem_type
    for nm, v in fg.consts.items():
        fg.shapes[nm] = tuple(int(d) for d in v.shape)


def _is_static(shape: tuple[int | str, ...] | None) -> TypeGuard[tuple[int, ...]]:
    return shape is not None and all(isinstance(d, int) and d >= 0 for d in shape)


def fold(model: onnx.ModelProto, name: str) -> FoldedGraph:
    """Name unnamed nodes, collect constants and fold every node whose inputs are all
    constants (and ``Shape``/``Size`` of tensors with static shapes), then infer shapes.

    Unnamed nodes are named ``<OpType>_<index>`` (index in the upgraded graph's node list),
    made unique."""
    g = model.graph
    taken = {n.name for n in g.node if n.name}
    nodes: list[onnx.NodeProto] = []
    for i, n in enumerate(g.node):
        n2 = onnx.NodeProto()
        n2.CopyFrom(n)
        if not n2.name or n2.name in {m.name for m in nodes}:
            base = f"{n.op_type}_{i}"
            cand, k = base, 1
            while cand in taken:
                cand, k = f"{base}_{k}", k + 1
            n2.name = cand
            taken.add(cand)
        nodes.append(n2)
    consts: dict[str, np.ndarray] = {}
    for init in g.initializer:
        consts[init.name] = numpy_helper.to_array(init)
    for sp in g.sparse_initializer:
        consts[sp.values.name] = numpy_helper.to_array(numpy_helper.to_dense(sp))  # type: ignore[attr-defined]
    inputs = {vi.name: vi for vi in g.input if vi.name not in consts}
    outputs = {vi.name: vi for vi in g.output}
    fg = FoldedGraph(name, default_opset(model), int(model.ir_version), g.name, nodes, consts,
                     inputs, outputs,
                     domains={imp.domain: int(imp.version) for imp in model.opset_import
                              if imp.domain not in ("", "ai.onnx")})
    infer_shapes(fg)
    for _ in range(32):
        if not _fold_pass(fg):
            break
        infer_shapes(fg)
    return fg


def _fold_pass(fg: FoldedGraph) -> bool:
    """One topological sweep of constant folding; returns whether anything folded."""
    keep: list[onnx.NodeProto] = []
    changed = False
    for n in fg.nodes:
        if n.domain not in ("", "ai.onnx") or n.op_type in _NO_FOLD:
            keep.append(n)
            continue
        ins = [i for i in n.input if i]
        shape = fg.shapes.get(n.input[0]) if n.op_type in ("Shape", "Size") else None
        if _is_static(shape) and n.input[0] not in fg.consts:
            if n.op_type == "Size":
                val = np.array(int(np.prod(shape)), dtype=np.int64)
            else:
                start = int(_attr(n, "start", 0))
                end = _attr(n, "end", None)
                val = np.array(shape, dtype=np.int64)[start:end]
            fg.consts[n.output[0]] = val
            changed = True
            continue
        if all(i in fg.consts for i in ins) and not any(o in fg.outputs for o in n.output):
            args = [fg.consts[i] if i else None for i in n.input]
            try:
                vals = _eval_node(n, args, fg.opset)
            except FrontendError:
                raise
            except Exception as exc:
                raise FrontendError(
                    f"{fg.source}: node '{n.name}' ({n.op_type}) has only constant inputs but "
                    f"evaluating it failed: {exc}"
                ) from None
            for o, v in zip(n.output, vals, strict=False):
                if o:
                    fg.consts[o] = v
            changed = True
            continue
        keep.append(n)
    fg.nodes = keep
    return changed
