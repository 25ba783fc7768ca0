"""Helpers for the normalization tests: random-weight versions of the onnx wheel's zoo
graphs and an onnxruntime equivalence check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

ZOO_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
ZOO_MODELS = sorted(p.stem.removeprefix("light_") for p in ZOO_DIR.glob("light_*.onnx"))


def randomize_zoo(name: str, seed: int = 0, strip_softmax: bool = True) -> onnx.ModelProto:
    """The zoo graph ``light_<name>.onnx`` with every ``ConstantOfShape`` weight replaced by
    a seeded random initializer (He-scaled weights, BN variances and scales in [0.5, 1.5]).
    With ``strip_softmax`` a final Softmax producing a graph output is removed, so that the
    logits are compared."""
    m = onnx.load(str(ZOO_DIR / f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    g = m.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    bn_pos = {n.input[k] for n in g.node if n.op_type == "BatchNormalization" for k in (1, 4)}
    keep = []
    new_inits = []
    for n in g.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(d) for d in inits[n.input[0]])
            out = n.output[0]
            if len(shape) >= 2:
                fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
                v = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
            elif out in bn_pos:
                v = rng.uniform(0.5, 1.5, shape)
            else:
                v = rng.uniform(-0.2, 0.5, shape)
            new_inits.append(numpy_helper.from_array(v.astype(np.float32), out))
            continue
        keep.append(n)
    outs = {o.name for o in g.output}
    if strip_softmax:
        for n in list(keep):
            if n.op_type == "Softmax" and n.output[0] in outs:
                keep.remove(n)
                for k in keep:
                    k.output[:] = [n.output[0] if o == n.input[0] else o for o in k.output]
                    k.input[:] = [n.output[0] if i == n.input[0] else i for i in k.input]
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(new_inits)
    if m.ir_version < 4:  # old IR: every initializer must also be a graph input
        g.input.extend(helper.make_tensor_value_info(
            t.name, onnx.TensorProto.FLOAT, list(t.dims)) for t in new_inits)
    return m


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    """Run ``model`` on onnxruntime (CPU, graph optimizations off) with input ``x``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    inits = {i.name for i in model.graph.initializer}
    (inp,) = [i for i in sess.get_inputs() if i.name not in inits]
    return [np.asarray(r) for r in sess.run(None, {inp.name: x})]


def assert_equivalent(orig: onnx.ModelProto, norm: onnx.ModelProto, shape: tuple[int, ...],
                      seed: int = 0, rtol: float = 1e-4) -> float:
    """Run both models on the same random input; assert every output has the same shape and
    ``max|a - b| <= rtol * max|a|``; return the worst relative difference."""
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    ra, rb = run_ort(orig, x), run_ort(norm, x)
    assert len(ra) == len(rb)
    worst = 0.0
    for a, b in zip(ra, rb, strict=True):
        assert a.shape == b.shape, (a.shape, b.shape)
        scale = float(np.max(np.abs(a))) or 1.0
        rel = float(np.max(np.abs(a - b))) / scale
        worst = max(worst, rel)
        assert rel <= rtol, f"max abs diff {rel * scale} vs output scale {scale}"
    return worst


def make_model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray],
               in_shape: tuple[int, ...], outputs: dict[str, tuple[int, ...]],
               opset: int = 13, in_name: str = "x") -> onnx.ModelProto:
    """A float32 model from nodes and numpy initializers."""
    f32 = onnx.TensorProto.FLOAT
    g = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(in_name, f32, in_shape)],
        [helper.make_tensor_value_info(k, f32, v) for k, v in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
