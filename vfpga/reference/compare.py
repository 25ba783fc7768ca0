"""Compare the integer reference with ONNX Runtime running the QDQ model.

ONNX Runtime is an independent implementation of the same QDQ model: with the project's
uint8 activations it fuses every ``DQ -> op -> Q`` island into an integer kernel
(``QLinearConv``, ``QLinearAdd``, ...), whose requantization rounds in float32. The reference
rounds exact rationals, so the two agree except where a value lies within float32 noise of
a rounding boundary; the metrics below measure that.

* :func:`compare_with_ort` — final outputs over many inputs: cosine similarity of the
  dequantized outputs, arg-max agreement, fraction of identical int8 values (read from the
  final ``QuantizeLinear`` of ORT, exposed as an extra graph output), optionally the
  reference's cosine against the fp32 model.
* :func:`compare_layers` — every QGraph tensor that exists in the QDQ model (a
  ``QuantizeLinear`` output) compared on one input; the first layer that differs.
* :func:`run_ort_emulation` — a model of ONNX Runtime's float32 requantization steps run on
  the QGraph's integer parameters (a measuring instrument for docs/quantization.md, not
  the accelerator's arithmetic): where it reproduces ORT exactly, every difference between
  the reference and ORT is float32 rounding in ORT.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from vfpga.frontend.qdq_lower import LoweringResult, lower_qdq_mapped
from vfpga.frontend.qgraph import QAdd, QConcat, QConv, QGraph, QHostOp, QNode, QPool
from vfpga.reference.executor import (
    FLOAT_SUFFIX,
    conv_acc,
    node_inputs,
    quantize_graph_input,
    run_node,
    run_reference,
)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays (flattened, float64); 1.0 if both are zero."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 or ny == 0.0:
        return 1.0 if nx == ny else 0.0
    return float(np.dot(x, y) / (nx * ny))


def ort_session(model: onnx.ModelProto, extra_outputs: Sequence[str] = ()) -> object:
    """An ONNX Runtime CPU session of ``model`` with ``extra_outputs`` (names of tensors
    inside the graph) added as graph outputs."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in extra_outputs:
        if name not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            have.add(name)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


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
    ``batch``), from ``numpy.random.default_rng(seed)``."""
    _, shape = _input_info(model)
    if batch is not None:
        shape = (batch, *shape[1:])
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
    ``emulated_identical_int8``: the fraction of identical int8 outputs of
    :func:`run_ort_emulation` and ORT over the first ``emulated_inputs`` inputs.
    ``argmax_near_agreement``: fraction of inputs whose ORT arg-max class is, in the
    reference's int8 output, at most one quantization level below the reference's
    maximum (so a one-level difference explains any arg-max disagreement); ``None``
    without an int8 output."""

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
    emulated_inputs: int = 0
    emulated_identical_int8: float | None = None
    argmax_near_agreement: float | None = None


def _argmax_rows(v: np.ndarray) -> np.ndarray:
    return np.asarray(v).reshape(v.shape[0], -1).argmax(axis=1)


def compare_with_ort(
    g: QGraph,
    qdq_model: onnx.ModelProto,
    inputs: Iterable[np.ndarray],
    *,
    onnx_int8: dict[str, tuple[str, int]] | None = None,
    fp32_model: onnx.ModelProto | None = None,
    emulate_ort: int = 0,
) -> OrtComparison:
    """Run the reference and ORT (on ``qdq_model``) on each input and compare the first
    graph output. ``onnx_int8`` is the lowering's map of QGraph tensors to ORT int8
    tensors (recomputed by lowering ``qdq_model`` when not given); ``fp32_model`` adds the
    comparison with the fp32 model; ``emulate_ort`` > 0 also runs
    :func:`run_ort_emulation` on the first ``emulate_ort`` inputs."""
    if onnx_int8 is None:
        onnx_int8 = lower_qdq_mapped(qdq_model).onnx_int8
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
    emu_same = emu_total = emu_n = 0
    near = 0
    for x in inputs:
        res = sess.run(None, {in_name: x})  # type: ignore[attr-defined]
        ort_f = np.asarray(res[0], dtype=np.float32)
        ref = run_reference(g, x, keep_all=False)
        ref_f = ref[out + FLOAT_SUFFIX]
        cos.append(cosine(ref_f, ort_f))
        a, b = _argmax_rows(ref_f), _argmax_rows(ort_f.reshape(ref_f.shape))
        agree += int((a == b).sum())
        rows += a.size
        if int8_name is not None:
            names = [o.name for o in sess.get_outputs()]  # type: ignore[attr-defined]
            o_int = np.asarray(res[names.index(int8_name[0])]).astype(np.int64) + int8_name[1]
            r_int = ref[out].astype(np.int64).reshape(o_int.shape)
            same += int((o_int == r_int).sum())
            total += o_int.size
            max_diff = max(max_diff, int(np.abs(o_int - r_int).max(initial=0)))
            r_rows = r_int.reshape(a.size, -1)
            at_b = r_rows[np.arange(a.size), b]
            near += int((at_b >= r_rows.max(axis=1) - 1).sum())
            if emu_n < emulate_ort:
                e_int = run_ort_emulation(g, x)[out].astype(np.int64).reshape(o_int.shape)
                emu_same += int((o_int == e_int).sum())
                emu_total += o_int.size
                emu_n += 1
        if fsess is not None:
            f = np.asarray(fsess.run(None, {in_name: x})[0], dtype=np.float32)  # type: ignore[attr-defined]
            fcos.append(cosine(ref_f, f))
            ofcos.append(cosine(ort_f, f))
            fagree += int((_argmax_rows(ref_f) == _argmax_rows(f.reshape(ref_f.shape))).sum())
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
        emulated_inputs=emu_n,
        emulated_identical_int8=(emu_same / emu_total) if emu_total else None,
        argmax_near_agreement=(near / rows) if total else None,
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
    if isinstance(node, QAdd):
        return "add"
    if isinstance(node, QConcat):
        return "concat"
    assert isinstance(node, QHostOp)
    return f"host:{node.op_type}"


@dataclass
class LayerDiff:
    """One layer's agreement: the QGraph node, its output tensor, the ORT tensor compared,
    the fraction of identical int8 values and the largest difference (int8 units) of the
    reference run end to end (``identical``, ``max_abs_diff``: differences accumulate from
    earlier layers) and of the node alone run on ORT's own int8 inputs (``isolated``,
    ``isolated_max_diff``: this layer's own disagreement; ``None`` when an input has no
    ORT counterpart). ``emulated``: the fraction of identical values of
    :func:`emulate_ort_node` on the same inputs (ORT's own rounding modelled)."""

    node: str
    op: str
    tensor: str
    onnx_tensor: str
    shape: tuple[int, ...]
    identical: float
    max_abs_diff: int
    isolated: float | None = None
    isolated_max_diff: int | None = None
    emulated: float | None = None


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
    names = [o.name for o in sess.get_outputs()]  # type: ignore[attr-defined]
    res = dict(zip(names, sess.run(None, {in_name: x}), strict=True))  # type: ignore[attr-defined]
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
    emu: dict[str, np.ndarray] = {}
    for node in g.nodes:
        if all(i in iso_vals for i in node_inputs(node)):
            y = run_node(g, node, iso_vals)
            iso[node.output] = y
            emu[node.output] = emulate_ort_node(g, node, iso_vals)
            iso_vals.setdefault(node.output, y)
    report = LayerReport()
    for node, (oname, off) in pairs:
        r = ref[node.output].astype(np.int64)
        o = np.asarray(res[oname]).astype(np.int64).reshape(r.shape) + off
        d = np.abs(r - o)
        di = np.abs(iso[node.output].astype(np.int64) - o) if node.output in iso else None
        de = (emu[node.output].astype(np.int64) != o) if node.output in emu else None
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
                emulated=None if de is None else (float(1 - de.mean()) if de.size else 1.0),
            )
        )
        if report.first_mismatch is None and d.max(initial=0) > 0:
            report.first_mismatch = len(report.layers) - 1
    return report


# --------------------------------------------------------------------------------------
# a model of ONNX Runtime's integer kernels (measurement only)
# --------------------------------------------------------------------------------------

_F32 = np.float32
#: ORT's uint8 values are the QGraph's int8 values plus this.
_U8 = 128


def _ratio(m: int | np.ndarray, s: int | np.ndarray) -> np.ndarray:
    """``m / 2**s`` as float32 (exact: the lowering's ratios are float32 values)."""
    return (np.asarray(m, np.float64) * np.exp2(-np.asarray(s, np.float64))).astype(_F32)


def _fma32(a: np.ndarray, b: np.floating | np.ndarray, c: np.floating | np.ndarray) -> np.ndarray:
    """``float32(a * b + c)`` with one rounding (a fused multiply-add) for float32 ``a``,
    ``b``, ``c``: the product is exact in float64; the float64 sum's own rounding makes a
    double rounding possible in rare cases, which is good enough for measuring."""
    return (np.asarray(a, np.float64) * np.float64(b) + np.asarray(c, np.float64)).astype(_F32)


def _act_clamp(y: np.ndarray, node: QConv | QAdd) -> np.ndarray:
    a = node.act
    if a.kind == "relu":
        y = np.maximum(y, a.lo)
    elif a.kind == "relu6":
        y = np.minimum(np.maximum(y, a.lo), a.hi)
    return y


def _is_requant(node: QConv) -> bool:
    """A unit-weight depthwise 1x1 QConv with zero bias: the lowering's requantization of
    a ``DQ -> Q`` pair, a Concat input or an activation island."""
    c = node.weight.shape[0]
    return (
        node.groups == c
        and node.weight.shape[1:] == (1, 1, 1)
        and bool(np.all(node.weight == 1))
        and not np.any(node.bias)
        and node.strides == (1, 1)
        and node.pads == (0, 0, 0, 0)
    )


def emulate_ort_node(g: QGraph, node: QNode, vals: dict[str, np.ndarray]) -> np.ndarray:
    """One node the way ONNX Runtime 1.31's CPU kernels compute it for uint8 activations
    (values ``q + 128``), from the QGraph's parameters:

    * QConv (``QLinearConv``, MLAS requantization): the exact int32 accumulator ``acc``,
      then ``rint(float32(float32(acc) * scale[c])) + zp`` with ``scale[c] = m[c] /
      2**s[c]`` (the float32 ``s_in * s_w[c] / s_out``); a requantizing unit-weight conv
      (a ``DequantizeLinear -> QuantizeLinear`` pair or a ``QLinearConcat`` lookup table):
      ``rint(float32(float32(q - zp_in) * s_in) / s_out) + zp_out``;
    * QAdd (MLAS ``QLinearAdd``, AVX2 kernel): ``rint(fma(a_u8, r_a, fma(b_u8, r_b,
      fixed)))`` with ``fixed = float32(zp_c - fma(r_a, zp_a, float32(r_b * zp_b)))`` in
      uint8 terms;
    * global average pool: ``rint(float32(float32(acc) * float32(s_in / float32(s_out *
      count)))) + zp``; average pool (``QLinearAveragePool``): the float32 sum of
      ``float32(s_in * (q - zp))`` over the window, divided by the count, then
      ``rint(y / s_out + zp_u8)`` (zero point added before rounding);
    * max pool, concat and host ops: as the reference (ORT's ``QLinearSoftmax`` uses a
      lookup table that this model does not reproduce).

    Saturation to the 8-bit range and the activation clamp follow."""
    t = g.tensors
    if isinstance(node, QConv):
        x = vals[node.input]
        ti, to = t[node.input], t[node.output]
        if _is_requant(node):
            v = (x.astype(np.int64) - ti.zero_point).astype(_F32) * _F32(ti.scale)
            y = np.rint((v / _F32(to.scale)).astype(_F32)).astype(np.int64) + to.zero_point
        else:
            acc = conv_acc(x, ti.zero_point, node)
            sc = _ratio(node.multiplier, node.shift)[None, :, None, None]
            y = np.rint((acc.astype(_F32) * sc).astype(_F32)).astype(np.int64) + to.zero_point
        return _act_clamp(np.clip(y, -128, 127), node).astype(np.int8)
    if isinstance(node, QAdd):
        ra, rb = _ratio(node.mult_a, node.shift), _ratio(node.mult_b, node.shift)
        za = _F32(t[node.a].zero_point + _U8)
        zb = _F32(t[node.b].zero_point + _U8)
        zc = _F32(t[node.output].zero_point + _U8)
        fixed = _F32(zc - _fma32(np.asarray(ra), za, _F32(rb * zb)))
        a = (vals[node.a].astype(np.int64) + _U8).astype(_F32)
        b = (vals[node.b].astype(np.int64) + _U8).astype(_F32)
        v = _fma32(a, ra, _fma32(b, rb, fixed))
        y = np.clip(np.rint(v).astype(np.int64), 0, 255) - _U8
        return _act_clamp(y, node).astype(np.int8)
    if isinstance(node, QPool) and node.kind != "max":
        x = vals[node.input]
        ti, to = t[node.input], t[node.output]
        if node.kind == "global_avg":
            count = x.shape[2] * x.shape[3]
            acc = (x.astype(np.int64) - ti.zero_point).sum(axis=(2, 3), keepdims=True)
            sc = _F32(_F32(ti.scale) / _F32(_F32(to.scale) * _F32(count)))
            y = np.rint((acc.astype(_F32) * sc).astype(_F32)).astype(np.int64) + to.zero_point
            return np.clip(y, -128, 127).astype(np.int8)
        return _emulate_avg_pool(x, ti.scale, ti.zero_point, to.scale, to.zero_point, node)
    return run_node(g, node, vals)


def _emulate_avg_pool(
    x: np.ndarray, s_in: float, zp_in: int, s_out: float, zp_out: int, node: QPool
) -> np.ndarray:
    n, c, h, w = x.shape
    kh, kw = node.kernel
    top, left, bottom, right = node.pads
    oh = (h + top + bottom - kh) // node.strides[0] + 1
    ow = (w + left + right - kw) // node.strides[1] + 1
    deq = (x.astype(np.int64) - zp_in).astype(_F32) * _F32(s_in)
    xp = np.pad(deq, ((0, 0), (0, 0), (top, bottom), (left, right)))
    inb = np.pad(np.ones((h, w), bool), ((top, bottom), (left, right)))
    acc = np.zeros((n, c, oh, ow), _F32)
    cnt = np.zeros((oh, ow), np.int64)
    sh, sw = node.strides
    for i in range(kh):  # window rows, then columns: ORT's summation order
        for j in range(kw):
            sl = (slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
            acc = (acc + xp[:, :, sl[0], sl[1]]).astype(_F32)
            cnt += inb[sl[0], sl[1]]
    count = np.full((oh, ow), kh * kw) if node.count_include_pad else cnt
    y = (acc / count.astype(_F32)).astype(_F32)
    q = np.rint((y / _F32(s_out) + _F32(zp_out + _U8)).astype(_F32)).astype(np.int64)
    return (np.clip(q, 0, 255) - _U8).astype(np.int8)


def run_ort_emulation(g: QGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``g`` on ``x`` with :func:`emulate_ort_node` for every node; returns every
    tensor's int8 value (as :func:`~vfpga.reference.executor.run_reference` with
    ``keep_all``, without the float outputs)."""
    vals: dict[str, np.ndarray] = {g.inputs[0]: quantize_graph_input(g, x)}
    for node in g.nodes:
        vals[node.output] = emulate_ort_node(g, node, vals)
    return vals
