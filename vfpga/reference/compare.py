"""Compare the golden reference with ONNX Runtime running the QDQ model.

ONNX Runtime is an independent implementation of the same QDQ model: with the project's
uint8 activations it fuses every ``DQ -> op -> Q`` island into an integer kernel
(``QLinearConv``, ``QLinearAdd``, ...) that requantizes in float32 steps. Since ISA
version 2 the reference (and the accelerator) requantizes with exactly those float32
steps, so on the lowered QDQ model the two are expected to agree bit for bit; the metrics
below measure it.

* :func:`compare_with_ort` — final outputs over many inputs: cosine similarity of the
  dequantized outputs, arg-max agreement, fraction of identical int8 values (read from the
  final ``QuantizeLinear`` of ORT, exposed as an extra graph output), optionally the
  reference's cosine against the fp32 model.
* :func:`compare_layers` — every QGraph tensor that exists in the QDQ model (a
  ``QuantizeLinear`` output) compared on one input, end to end and for each node alone on
  ORT's own inputs; the first layer that differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import onnx

from vfpga.frontend.qdq_lower import LoweringResult, lower_qdq_mapped
from vfpga.frontend.qgraph import (
    QAdd,
    QConcat,
    QConv,
    QGraph,
    QHostOp,
    QNode,
    QPool,
    QResize,
    QShuffle,
    QSlice,
)
from vfpga.quant.index_inputs import is_index_input, random_id_inputs
from vfpga.reference.executor import FLOAT_SUFFIX, node_inputs, run_node, run_reference

if TYPE_CHECKING:  # onnxruntime is imported where a session is made (it is slow to load)
    from onnxruntime import InferenceSession


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays (flattened, float64); 1.0 if both are zero."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 or ny == 0.0:
        return 1.0 if nx == ny else 0.0
    return float(np.dot(x, y) / (nx * ny))


def ort_session(model: onnx.ModelProto, extra_outputs: Sequence[str] = ()) -> InferenceSession:
    """An ONNX Runtime CPU session of ``model`` with ``extra_outputs`` (names of tensors
    inside the graph) added as graph outputs. ``model`` is left as it was, but holds the
    extra outputs while it is serialized: do not share it with another thread meanwhile."""
    import onnxruntime as ort

    # the outputs are appended to ``model`` itself for the serialization and removed again
    # (``model`` ends unchanged): a copy of the whole model would hold every weight once
    # more (VGG-16: 138 MB) while the session is built
    outputs = model.graph.output
    n_outputs = len(outputs)
    have = {o.name for o in outputs}
    try:
        for name in extra_outputs:
            if name not in have:
                outputs.append(onnx.helper.make_empty_tensor_value_info(name))
                have.add(name)
        data = model.SerializeToString()
    finally:
        del outputs[n_outputs:]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def _input_info(model: onnx.ModelProto) -> tuple[str, tuple[int, ...]]:
    inits = {i.name for i in model.graph.initializer}
    vi = next(i for i in model.graph.input if i.name not in inits)
    dims = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
        for d in vi.type.tensor_type.shape.dim
    ]
    return vi.name, tuple(dims)


def random_inputs(
    model: onnx.ModelProto, num: int, seed: int = 0, *, batch: int | None = None
) -> list[np.ndarray]:
    """``num`` standard-normal float32 inputs of the model's input shape (its batch, or
    ``batch``), from ``numpy.random.default_rng(seed)`` (an int64 id input: valid random
    ids, :func:`vfpga.quant.index_inputs.random_id_inputs`)."""
    name, shape = _input_info(model)
    if batch is not None:
        shape = (batch, *shape[1:])
    if is_index_input(model, name):  # int64 token ids: valid ids over the table's rows
        return random_id_inputs(model, name, shape, num, seed,
                                f"model '{model.graph.name or '<model>'}'")
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(num)]


@dataclass
class OrtComparison:
    """Final-output agreement of the reference with ORT over ``num_inputs`` inputs (first
    graph output). ``cosine_*``: cosine of the dequantized outputs per input (min and
    mean); ``argmax_agreement``: fraction of inputs (rows of a batch count separately)
    whose arg-max over the output's non-batch elements is the same; ``identical_int8``:
    fraction of identical int8 output values over all inputs, ``max_int8_diff`` the largest
    difference (``None`` for a float host-op output). ``fp32_*``: the reference against the
    fp32 model, ``ort_fp32_cosine_mean`` ORT's QDQ run against fp32 (when given).
    ``argmax_near_agreement``: fraction of inputs whose ORT arg-max class is, in the
    reference's int8 output, at most one quantization level below the reference's
    maximum (so a one-level difference explains any arg-max disagreement); ``None``
    without an int8 output. ``top5_agreement`` / ``fp32_top5_agreement``: fraction of
    inputs whose ORT (fp32 model) arg-max class is among the reference's five highest
    scores (ties with the fifth count as among them); ``None`` when the output is not a
    vector of class scores (:func:`is_class_vector`)."""

    num_inputs: int
    cosine_min: float
    cosine_mean: float
    argmax_agreement: float
    identical_int8: float | None
    max_int8_diff: int | None
    fp32_cosine_mean: float | None = None
    fp32_cosine_min: float | None = None
    fp32_argmax_agreement: float | None = None
    ort_fp32_cosine_mean: float | None = None
    argmax_near_agreement: float | None = None
    top5_agreement: float | None = None
    fp32_top5_agreement: float | None = None


def _argmax_rows(v: np.ndarray) -> np.ndarray:
    return np.asarray(v).reshape(v.shape[0], -1).argmax(axis=1)


TOP_K = 5
"""The k of the top-k agreement (:func:`in_top_k`)."""


def in_top_k(scores: np.ndarray, classes: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Per row of ``scores`` (``(N, ...)``, flattened per row): whether ``classes[row]``
    scores at least the row's ``k``-th highest score (ties with it count as in)."""
    rows = np.asarray(scores, dtype=np.float64).reshape(len(classes), -1)
    kth = np.sort(rows, axis=1)[:, -k]
    return rows[np.arange(len(classes)), classes] >= kth


def is_class_vector(shape: Sequence[int]) -> bool:
    """Whether an output of ``shape`` (batch first) is a vector of class scores: one
    non-batch dimension above 1, of at least :data:`TOP_K` classes (``(1, 1000)``,
    ``(1, 1000, 1, 1)``), not a map."""
    big = [d for d in shape[1:] if d > 1]
    return len(big) == 1 and big[0] >= TOP_K


def compare_with_ort(
    g: QGraph,
    qdq_model: onnx.ModelProto,
    inputs: Iterable[np.ndarray],
    *,
    onnx_int8: dict[str, tuple[str, int]] | None = None,
    fp32_model: onnx.ModelProto | None = None,
) -> OrtComparison:
    """Run the reference and ORT (on ``qdq_model``) on each input and compare the first
    graph output. ``onnx_int8`` is the lowering's map of QGraph tensors to ORT int8
    tensors (recomputed by lowering ``qdq_model`` when not given); ``fp32_model`` adds the
    comparison with the fp32 model."""
    if onnx_int8 is None:
        onnx_int8 = lower_qdq_mapped(qdq_model, quantized=True).onnx_int8
    out = g.outputs[0]
    int8_name = onnx_int8.get(out)
    sess = ort_session(qdq_model, [int8_name[0]] if int8_name else [])
    in_name, _ = _input_info(qdq_model)
    fsess = ort_session(fp32_model) if fp32_model is not None else None
    cos: list[float] = []
    agree = rows = 0
    same = total = 0
    max_diff = 0
    fcos: list[float] = []
    fagree = 0
    ofcos: list[float] = []
    near = 0
    top5 = ftop5 = 0
    classes = False
    for x in inputs:
        res = sess.run(None, {in_name: x})
        ort_f = np.asarray(res[0], dtype=np.float32)
        ref = run_reference(g, x, keep_all=False)
        ref_f = ref[out + FLOAT_SUFFIX]
        cos.append(cosine(ref_f, ort_f))
        a, b = _argmax_rows(ref_f), _argmax_rows(ort_f.reshape(ref_f.shape))
        agree += int((a == b).sum())
        rows += a.size
        classes = is_class_vector(ref_f.shape)
        if classes:
            top5 += int(in_top_k(ref_f, b).sum())
        if int8_name is not None:
            names = [o.name for o in sess.get_outputs()]
            o_int = np.asarray(res[names.index(int8_name[0])]).astype(np.int64) + int8_name[1]
            r_int = ref[out].astype(np.int64).reshape(o_int.shape)
            same += int((o_int == r_int).sum())
            total += o_int.size
            max_diff = max(max_diff, int(np.abs(o_int - r_int).max(initial=0)))
            r_rows = r_int.reshape(a.size, -1)
            at_b = r_rows[np.arange(a.size), b]
            near += int((at_b >= r_rows.max(axis=1) - 1).sum())
        if fsess is not None:
            f = np.asarray(fsess.run(None, {in_name: x})[0], dtype=np.float32)
            fcos.append(cosine(ref_f, f))
            ofcos.append(cosine(ort_f, f))
            fb = _argmax_rows(f.reshape(ref_f.shape))
            fagree += int((_argmax_rows(ref_f) == fb).sum())
            if classes:
                ftop5 += int(in_top_k(ref_f, fb).sum())
    if not cos:
        raise ValueError("compare_with_ort: no inputs")
    return OrtComparison(
        num_inputs=len(cos),
        cosine_min=min(cos),
        cosine_mean=float(np.mean(cos)),
        argmax_agreement=agree / rows,
        identical_int8=(same / total) if total else None,
        max_int8_diff=max_diff if total else None,
        fp32_cosine_mean=float(np.mean(fcos)) if fcos else None,
        fp32_cosine_min=min(fcos) if fcos else None,
        fp32_argmax_agreement=(fagree / rows) if fcos else None,
        ort_fp32_cosine_mean=float(np.mean(ofcos)) if ofcos else None,
        argmax_near_agreement=(near / rows) if total else None,
        top5_agreement=(top5 / rows) if classes else None,
        fp32_top5_agreement=(ftop5 / rows) if fcos and classes else None,
    )


def node_label(node: QNode) -> str:
    """A short description of a QGraph node's operation (``conv``, ``dwconv``,
    ``pool:max``, ``add``, ``concat``, ``host:Softmax``)."""
    if isinstance(node, QConv):
        c = node.weight.shape[0]
        if node.groups > 1 and node.groups == c and node.weight.shape[1] == 1:
            return "dwconv"
        return "conv" if node.groups == 1 else f"conv(g={node.groups})"
    if isinstance(node, QPool):
        return f"pool:{node.kind}"
    if isinstance(node, QResize):
        return f"resize:{node.coord}"
    if isinstance(node, QAdd):
        return node.op
    if isinstance(node, QConcat):
        return "concat"
    if isinstance(node, QShuffle):
        return f"shuffle(g={node.groups})"
    if isinstance(node, QSlice):
        return f"slice(@{node.start})"
    assert isinstance(node, QHostOp)
    return f"host:{node.op_type}"


@dataclass
class LayerDiff:
    """One layer's agreement: the QGraph node, its output tensor, the ORT tensor compared,
    the fraction of identical int8 values and the largest difference (int8 units) of the
    reference run end to end (``identical``, ``max_abs_diff``: differences accumulate from
    earlier layers) and of the node alone run on ORT's own int8 inputs (``isolated``,
    ``isolated_max_diff``: this layer's own disagreement; ``None`` when an input has no
    ORT counterpart)."""

    node: str
    op: str
    tensor: str
    onnx_tensor: str
    shape: tuple[int, ...]
    identical: float
    max_abs_diff: int
    isolated: float | None = None
    isolated_max_diff: int | None = None


@dataclass
class LayerReport:
    """Per-layer comparison in QGraph node order (layers without an ORT counterpart —
    tensors the lowering inserted — are skipped). ``first_mismatch`` indexes ``layers``."""

    layers: list[LayerDiff] = field(default_factory=list)
    first_mismatch: int | None = None


def compare_layers(
    lowered: LoweringResult, qdq_model: onnx.ModelProto, x: np.ndarray
) -> LayerReport:
    """Expose every ``QuantizeLinear`` output of ``qdq_model`` in ORT, run ORT and the
    reference on ``x``, and compare every QGraph tensor that has an ORT counterpart."""
    g = lowered.graph
    pairs = [
        (node, lowered.onnx_int8[node.output])
        for node in g.nodes
        if node.output in lowered.onnx_int8
    ]
    sess = ort_session(qdq_model, [v[0] for v in lowered.onnx_int8.values()])
    in_name, _ = _input_info(qdq_model)
    names = [o.name for o in sess.get_outputs()]
    res = dict(zip(names, sess.run(None, {in_name: x}), strict=True))
    ref = run_reference(g, x)
    # ORT's int8 tensors in the QGraph's layout and offset
    ort_vals: dict[str, np.ndarray] = {}
    for t, (oname, off) in lowered.onnx_int8.items():
        if oname in res and t in ref:
            ort_vals[t] = (
                (np.asarray(res[oname]).astype(np.int16) + off)
                .astype(np.int8)
                .reshape(ref[t].shape)
            )
    iso_vals = dict(ort_vals)
    iso: dict[str, np.ndarray] = {}
    for node in g.nodes:
        if all(i in iso_vals for i in node_inputs(node)):
            y = run_node(g, node, iso_vals)
            iso[node.output] = y
            iso_vals.setdefault(node.output, y)
    report = LayerReport()
    for node, (oname, off) in pairs:
        r = ref[node.output].astype(np.int64)
        o = np.asarray(res[oname]).astype(np.int64).reshape(r.shape) + off
        d = np.abs(r - o)
        di = np.abs(iso[node.output].astype(np.int64) - o) if node.output in iso else None
        report.layers.append(
            LayerDiff(
                node=node.name,
                op=node_label(node),
                tensor=node.output,
                onnx_tensor=oname,
                shape=tuple(r.shape),
                identical=float((d == 0).mean()) if d.size else 1.0,
                max_abs_diff=int(d.max(initial=0)),
                isolated=None if di is None else (float((di == 0).mean()) if di.size else 1.0),
                isolated_max_diff=None if di is None else int(di.max(initial=0)),
            )
        )
        if report.first_mismatch is None and d.max(initial=0) > 0:
            report.first_mismatch = len(report.layers) - 1
    return report
