"""The golden reference: runs a :class:`~vfpga.frontend.qgraph.QGraph` on whole tensors
with plain numpy, bit-exactly as docs/quantization.md specifies (ISA version 2: exact
integer accumulation, float32 requantization; :mod:`vfpga.reference.arith`).

It shares no code with the emulator (``vfpga.emulator``): it is the independent model the
emulator's int8 outputs are checked against. Its requantization is ONNX Runtime's
(``QLinearConv``, ``QLinearAdd``, ``QLinearAveragePool``, ``QLinearGlobalAveragePool``,
``QLinearConcat``), so on a lowered QDQ model it reproduces ORT's int8 tensors.
Accumulators are exact: convolutions run as float32 BLAS products while
``K * 255 * 128 < 2**24`` (``K`` = the number of products per output, ``<= 512``), and as
float64 products otherwise (``K * 255 * 128 < 2**53`` for any real ``K``); depthwise
convolutions accumulate in float64. Both are exact integers, converted to int64 before
requantization.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vfpga.errors import VfpgaError
from vfpga.frontend.qgraph import (
    DYN_DTYPE,
    Act,
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
    conv_kernel_extent,
    dynamic_outputs,
    node_inputs,
    shuffle_perm,
)
from vfpga.isa.float_conv import fsum_conv
from vfpga.isa.resize import COORD_MODE_NAMES, axis_taps, bilinear_requant
from vfpga.reference.arith import (
    add_requant,
    avg_pool_requant,
    conv_requant,
    dequantize,
    global_avg_requant,
    global_avg_scale,
    mul_sub_requant,
    quantize_input,
    requant_scales,
)
from vfpga.reference.host_segment import SEGMENT_OP, SegmentError, run_segment

#: the largest number of products per output summed in float32 (exact below 2**24).
F32_EXACT_K = 512
FLOAT_SUFFIX = ":float"


class ReferenceError(VfpgaError):
    """The reference cannot run a graph on the given input (bad shape, bad graph)."""


def _act(y: np.ndarray, act: Act) -> np.ndarray:
    if act.kind == "table":  # y is saturated int8: index y + 128
        return np.asarray(act.table, dtype=np.int64)[y.astype(np.int64) + 128]
    if act.kind == "relu":
        y = np.maximum(y, act.lo)
    elif act.kind == "relu6":
        y = np.minimum(np.maximum(y, act.lo), act.hi)
    return y


def _pad(x: np.ndarray, pads: tuple[int, int, int, int], value: float | int) -> np.ndarray:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _windows(
    xp: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], out_hw: tuple[int, int],
    dil: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """``[N, C, OH, OW, KH, KW]`` view of the windows of the padded ``xp`` (kernel taps
    ``dil`` apart)."""
    dh, dw = dil
    w = sliding_window_view(xp, ((kernel[0] - 1) * dh + 1, (kernel[1] - 1) * dw + 1),
                            axis=(2, 3))
    return w[:, :, : out_hw[0] * strides[0] : strides[0], : out_hw[1] * strides[1] : strides[1],
             ::dh, ::dw]


def _out_hw(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
) -> tuple[int, int]:
    oh = (hw[0] + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (hw[1] + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    if oh < 1 or ow < 1:
        raise ReferenceError(f"output size {oh}x{ow} < 1")
    return oh, ow


def _cols(xs: np.ndarray, node: QConv, out_hw: tuple[int, int]) -> np.ndarray:
    """im2col of the padded float input slice ``xs [N, C, Hp, Wp]``: ``[N, C*KH*KW, OH*OW]``
    (row index ``(c, i, j)`` in C order, like the weights' ``[C, KH, KW]``)."""
    n, c = xs.shape[:2]
    kh, kw = node.weight.shape[2:]
    if (kh, kw) == (1, 1) and node.strides == (1, 1):
        return xs.reshape(n, c, out_hw[0] * out_hw[1])
    win = _windows(xs, (kh, kw), node.strides, out_hw, node.dilations)  # [N,C,OH,OW,KH,KW]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, out_hw[0] * out_hw[1])


def _group_acc(xp: np.ndarray, w: np.ndarray, node: QConv, out_hw: tuple[int, int]) -> np.ndarray:
    """Exact ``sum`` of one group: ``xp [N, Cg, Hp, Wp]`` float32 integer-valued (zero point
    already subtracted, padded), ``w [OCg, Cg, KH, KW]`` int8 -> float64 ``[N, OCg, OH*OW]``.

    Input channels are taken in chunks of at most ``F32_EXACT_K // (KH*KW)`` so that every
    float32 product-sum stays below ``2**24`` (exact whatever the summation order); chunk
    sums are added in float64 (exact below ``2**53``). Kernels with more than
    ``F32_EXACT_K`` taps run in float64."""
    ocg, cg, kh, kw = w.shape
    taps = kh * kw
    if taps > F32_EXACT_K:
        cols = _cols(xp.astype(np.float64), node, out_hw)
        return w.reshape(ocg, cg * taps).astype(np.float64) @ cols
    step = max(1, F32_EXACT_K // taps)
    acc: np.ndarray | None = None
    for c0 in range(0, cg, step):
        c1 = min(cg, c0 + step)
        cols = _cols(xp[:, c0:c1], node, out_hw)
        w2 = w[:, c0:c1].reshape(ocg, (c1 - c0) * taps).astype(np.float32)
        part = w2 @ cols
        acc = part.astype(np.float64) if acc is None else acc + part
    assert acc is not None
    return acc


def conv_acc(x: np.ndarray, in_zp: int, node: QConv) -> np.ndarray:
    """The int64 accumulator ``[N, OC, OH, OW]`` of ``node`` on the int8 input ``x``:
    ``bias[oc] + sum((x - in_zp) * w)`` with zero padding (and zero insertion, with
    ``node.upsample``) after the subtraction, kernel taps ``node.dilations`` apart."""
    w = node.weight
    oc, cig, kh, kw = w.shape
    n, c, h, wd = x.shape
    g = node.groups
    if c != cig * g or oc % g:
        raise ReferenceError(f"{node.name}: weights {w.shape} / groups {g} vs {c} input channels")
    if node.upsample != (1, 1):
        uh, uw = node.upsample
        spread = np.full((n, c, (h - 1) * uh + 1, (wd - 1) * uw + 1), in_zp, np.int16)
        spread[:, :, ::uh, ::uw] = x
        x = spread
        h, wd = x.shape[2:]
    oh, ow = _out_hw((h, wd), conv_kernel_extent(node), node.strides, node.pads)
    dh, dw = node.dilations
    ocg = oc // g
    if cig == 1 and g > 1:
        # depthwise (with multiplier): out channel oc reads input channel oc // ocg
        xc: np.ndarray = x.astype(np.float64) - in_zp
        xp = _pad(xc, node.pads, 0.0)
        src = xp[:, np.arange(oc) // ocg] if ocg > 1 else xp
        acc = np.zeros((n, oc, oh, ow), dtype=np.float64)
        sh, sw = node.strides
        wf = w.astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dh, j * dw
                sl = src[:, :, y0 : y0 + sh * (oh - 1) + 1 : sh, x0 : x0 + sw * (ow - 1) + 1 : sw]
                acc += sl * wf[:, 0, i, j][None, :, None, None]
    else:
        xc = x.astype(np.float32) - np.float32(in_zp)
        xp = _pad(xc, node.pads, 0.0)
        parts = [
            _group_acc(
                xp[:, gi * cig : (gi + 1) * cig], w[gi * ocg : (gi + 1) * ocg], node, (oh, ow)
            )
            for gi in range(g)
        ]
        acc = (parts[0] if g == 1 else np.concatenate(parts, axis=1)).reshape(n, oc, oh, ow)
    return acc.astype(np.int64) + node.bias.astype(np.int64)[None, :, None, None]


def _check_scale(node_name: str, what: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ReferenceError(f"{node_name}: {what} {value!r} is not a finite positive number")


def run_conv(x: np.ndarray, in_zp: int, out_zp: int, node: QConv) -> np.ndarray:
    """``act(sat8(out_zp + rne(f32(f32(f32(acc) * scale[oc]) / divisor))))`` as int8, with
    ``scale = requant_scale(multiplier, shift)`` (see :class:`QConv`)."""
    _check_scale(node.name, "divisor", float(np.float32(node.divisor)))
    if node.fsum_in_scale is not None:
        return run_fsum_conv(x, in_zp, out_zp, node)
    acc = conv_acc(x, in_zp, node)
    if np.any(np.abs(acc) >= (1 << 31)):
        raise ReferenceError(f"{node.name}: the accumulator overflows int32")
    try:
        scale = requant_scales(node.multiplier, node.shift)
    except ValueError as exc:
        raise ReferenceError(f"{node.name}: {exc}") from None
    y = conv_requant(acc, scale[None, :, None, None], node.divisor, out_zp)
    return _act(y, node.act).astype(np.int8)


def run_fsum_conv(x: np.ndarray, in_zp: int, out_zp: int, node: QConv) -> np.ndarray:
    """A float32-summing transposed convolution (``node.fsum_in_scale`` set; ISA version
    5 CONV ``fsum``, one home of the arithmetic: :mod:`vfpga.isa.float_conv`) of the
    whole ``[N, C, H, W]`` map."""
    if node.groups != 1:
        raise ReferenceError(f"{node.name}: a float32-summing conv needs groups=1")
    try:
        scale = requant_scales(node.multiplier, node.shift)
    except ValueError as exc:
        raise ReferenceError(f"{node.name}: {exc}") from None
    oc = node.weight.shape[0]
    w = np.ascontiguousarray(node.weight.transpose(0, 2, 3, 1))  # [oc][kh][kw][c]
    top, left, bottom, right = node.pads
    outs = []
    for b in range(x.shape[0]):
        hwc = np.ascontiguousarray(x[b].transpose(1, 2, 0))
        y = fsum_conv(hwc, w, in_scale=float(node.fsum_in_scale or 0.0), scale=scale,
                      bias=node.bias.astype(np.int32),
                      divisor=np.full(oc, np.float32(node.divisor)), pad_value=in_zp,
                      out_zp=out_zp, stride=node.strides, pads=(top, bottom, left, right),
                      ups=node.upsample, dil=node.dilations)
        outs.append(y.transpose(2, 0, 1))
    return _act(np.stack(outs).astype(np.int64), node.act).astype(np.int8)


def run_resize(x: np.ndarray, in_scale: float, in_zp: int, out_scale: float, out_zp: int,
               out_hw: tuple[int, int], node: QResize) -> np.ndarray:
    """Bilinear resize of the whole ``[N, C, H, W]`` map to ``out_hw`` in onnxruntime's
    float32 steps (see :class:`QResize`; the one home of the arithmetic is
    :mod:`vfpga.isa.resize`, which the RESIZE instruction also follows)."""
    _check_scale(node.name, "output scale", float(np.float32(out_scale)))
    h, w = x.shape[2], x.shape[3]
    mode = COORD_MODE_NAMES[node.coord]
    ty = axis_taps(np.arange(out_hw[0]), node.scales[0], h, out_hw[0], mode)
    tx = axis_taps(np.arange(out_hw[1]), node.scales[1], w, out_hw[1], mode)
    out = np.empty((x.shape[0], x.shape[1], *out_hw), np.int8)
    for b in range(x.shape[0]):
        hwc = np.ascontiguousarray(x[b].transpose(1, 2, 0))
        y = bilinear_requant(hwc, ty, tx, in_scale, in_zp, out_scale, out_zp)
        out[b] = y.transpose(2, 0, 1)
    return out


def run_pool(
    x: np.ndarray, in_scale: float, in_zp: int, out_scale: float, out_zp: int, node: QPool
) -> np.ndarray:
    """Max / average / global-average pooling with the input's and output's scale and zero
    point (see :class:`QPool`)."""
    h, w = x.shape[2], x.shape[3]
    if node.kind != "max":
        _check_scale(node.name, "input scale", float(np.float32(in_scale)))
        _check_scale(node.name, "output scale", float(np.float32(out_scale)))
    if node.kind == "global_avg":
        acc = (x.astype(np.int64) - in_zp).sum(axis=(2, 3), keepdims=True)
        scale = global_avg_scale(in_scale, out_scale, h * w)
        return global_avg_requant(acc, float(scale), out_zp).astype(np.int8)
    oh, ow = _out_hw((h, w), node.kernel, node.strides, node.pads)
    if node.kind == "max":
        xp = _pad(x.astype(np.int16), node.pads, -129)
        y = _windows(xp, node.kernel, node.strides, (oh, ow)).max(axis=(4, 5))
        if np.any(y < -128):
            raise ReferenceError(f"{node.name}: a max-pool window holds only padding")
        return y.astype(np.int8)
    # average: elements f32(f32(x - in_zp) * s_in), summed in float32 in window order (row
    # by row, left to right). Padding adds +0.0, which leaves a float32 sum unchanged
    # (up to the sign of a zero sum, which the division and rounding ignore).
    e = (x.astype(np.int64) - in_zp).astype(np.float32) * np.float32(in_scale)
    ep = _pad(e.astype(np.float32), node.pads, 0.0)
    kh, kw = node.kernel
    sh, sw = node.strides
    n, c = x.shape[:2]
    total = np.zeros((n, c, oh, ow), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            sl = ep[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            total = (total + sl).astype(np.float32)
    if node.count_include_pad:
        count = np.full((1, 1, oh, ow), kh * kw, dtype=np.int64)
    else:
        ones = _pad(np.ones((1, 1, h, w), dtype=np.int64), node.pads, 0)
        count = _windows(ones, node.kernel, node.strides, (oh, ow)).sum(axis=(4, 5))
        if np.any(count == 0):
            raise ReferenceError(f"{node.name}: an average-pool window holds only padding")
    return avg_pool_requant(total, count, out_scale, out_zp).astype(np.int8)


def run_add(
    a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, out_zp: int, node: QAdd
) -> np.ndarray:
    """The element-wise ``node.op`` of ``a`` and ``b`` (``b`` of ``a``'s shape or
    per-channel ``[N, C, 1, 1]``) as int8: ``add`` is
    ``act(sat8(rne(fma(f32(a + 128), scale_a, fma(f32(b + 128), scale_b, offset))) -
    128))``, ``mul`` and ``sub`` as :func:`vfpga.reference.arith.mul_sub_requant`, with
    ``scale_x = requant_scale(mult_x, shift)`` (see :class:`QAdd`)."""
    if a.shape != b.shape and b.shape != (*a.shape[:2], 1, 1):
        raise ReferenceError(f"{node.name}: shapes {a.shape} and {b.shape} do not match "
                             "(b must have a's shape or be per-channel [N, C, 1, 1])")
    try:
        sa, sb = requant_scales([node.mult_a, node.mult_b], [node.shift, node.shift])
    except ValueError as exc:
        raise ReferenceError(f"{node.name}: {exc}") from None
    if node.op == "add":
        y = add_requant(a, b, float(sa), float(sb), a_zp, b_zp, out_zp)
    else:
        d = float(np.float32(node.divisor))
        if not (math.isfinite(d) and d != 0.0):
            raise ReferenceError(f"{node.name}: divisor {node.divisor!r} is not a finite "
                                 "non-zero number")
        y = mul_sub_requant(a, b, node.op, float(sa), float(sb), a_zp, b_zp, out_zp, d)
    return _act(y, node.act).astype(np.int8)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """ONNX Softmax (opset 13: along one axis) in float32."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def lrn(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX LRN across channels (axis 1) in float32:
    ``x / (bias + alpha / size * sum_{c' in window(c)} x[c']**2) ** beta`` with the window
    ``[c - (size-1)//2, c + ceil((size-1)/2)]`` clipped to the channels."""
    c = x.shape[1]
    sq = (x.astype(np.float32) ** 2).astype(np.float32)
    lo_off = (size - 1) // 2
    hi_off = size - 1 - lo_off
    csum = np.concatenate(
        [np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1, dtype=np.float32)], axis=1
    )
    idx = np.arange(c)
    lo = np.clip(idx - lo_off, 0, c)
    hi = np.clip(idx + hi_off + 1, 0, c)
    square_sum = csum[:, hi] - csum[:, lo]
    den = (np.float32(bias) + np.float32(alpha) / np.float32(size) * square_sum) ** np.float32(beta)
    return (x / den).astype(np.float32)


def run_host(inputs: list[np.ndarray], node: QHostOp) -> np.ndarray:
    """Run a host op on dequantized float32 inputs; returns float32."""
    if node.op_type == "Softmax":
        return softmax(inputs[0], int(node.attrs.get("axis", 1)))
    if node.op_type == "LRN":
        a = node.attrs
        return lrn(
            inputs[0],
            int(a["size"]),
            float(a.get("alpha", 1e-4)),
            float(a.get("beta", 0.75)),
            float(a.get("bias", 1.0)),
        )
    raise ReferenceError(f"{node.name}: host op {node.op_type} is not implemented")


def run_segment_node(g: QGraph, node: QHostOp, vals: dict[str, np.ndarray]) -> np.ndarray:
    """Run host segment ``node`` (:mod:`vfpga.reference.host_segment`) on the int8
    tensors in ``vals``, one batch item at a time; int8 (float32 for ``output_float``)
    ``[N, C, H, W]`` result."""
    xs = [vals[i] for i in node.inputs]
    shape = g.tensors[node.output].shape
    if DYN_DTYPE in node.attrs:  # a graph output whose shape the data decides
        if xs and xs[0].shape[0] != 1:
            raise ReferenceError(f"host segment '{node.name}': its output's shape is "
                                 "data-dependent, so it runs on batch 1 only")
        try:
            return run_segment(node.name, node.attrs.get("onnx"), [x[0] for x in xs],
                               flat=False)
        except SegmentError as exc:
            raise ReferenceError(str(exc)) from None
    try:
        ys = [run_segment(node.name, node.attrs.get("onnx"), [x[b] for x in xs])
              for b in range(xs[0].shape[0] if xs else 1)]
        dtype = np.float32 if node.output_float else np.int8
        if any(y.dtype != dtype or y.size != math.prod(shape[1:]) for y in ys):
            raise SegmentError(f"host segment '{node.name}': its output is not {len(ys)} x "
                               f"{math.prod(shape[1:])} {np.dtype(dtype).name} values")
    except SegmentError as exc:
        raise ReferenceError(str(exc)) from None
    return np.stack([y.reshape(shape[1:]) for y in ys])


def quantize_graph_input(g: QGraph, x: np.ndarray) -> np.ndarray:
    """Reshape the float input to ``[N, C, H, W]`` (``N = x.shape[0]``, the rest from the
    input tensor's shape) and quantize it like ``QuantizeLinear`` (a float input,
    ``QGraph.float_inputs``: returned as float32; int64 ids, ``QGraph.index_inputs``: as
    int64)."""
    t = g.tensors[g.inputs[0]]
    x = np.asarray(x, dtype=np.int64 if t.name in g.index_inputs else np.float32)
    per = int(np.prod(t.shape[1:]))
    if x.ndim == 0 or x.size % per or x.size // max(x.shape[0], 1) != per:
        raise ReferenceError(
            f"input of shape {x.shape} does not match the graph input '{t.name}' "
            f"{t.shape} (batch may differ)"
        )
    x4 = x.reshape((x.shape[0], *t.shape[1:]))
    if t.name in g.float_inputs or t.name in g.index_inputs:  # read as is by host segments
        return np.ascontiguousarray(x4)
    return quantize_input(x4, t.scale, t.zero_point)


def run_node(g: QGraph, node: QNode, vals: dict[str, np.ndarray]) -> np.ndarray:
    """Run one node of ``g`` on the int8 input tensors in ``vals`` (by tensor name) and
    return its output (int8, or float32 for an ``output_float`` host op)."""
    t = g.tensors
    try:
        if isinstance(node, QConv):
            return run_conv(
                vals[node.input], t[node.input].zero_point,
                node.act.stage_zp(t[node.output].zero_point), node
            )
        if isinstance(node, QPool):
            ti, to = t[node.input], t[node.output]
            x = vals[node.input]
            return run_pool(x, ti.scale, ti.zero_point, to.scale, to.zero_point, node)
        if isinstance(node, QResize):
            ti, to = t[node.input], t[node.output]
            return run_resize(vals[node.input], ti.scale, ti.zero_point, to.scale,
                              to.zero_point, (to.shape[2], to.shape[3]), node)
        if isinstance(node, QAdd):
            return run_add(
                vals[node.a],
                t[node.a].zero_point,
                vals[node.b],
                t[node.b].zero_point,
                t[node.output].zero_point,
                node,
            )
        if isinstance(node, QConcat):
            return np.concatenate([vals[i] for i in node.inputs], axis=node.axis)
        if isinstance(node, QShuffle):
            x = vals[node.input]
            return np.ascontiguousarray(x[:, shuffle_perm(x.shape[1], node.groups)])
        if isinstance(node, QSlice):
            c = t[node.output].shape[1]
            return np.ascontiguousarray(vals[node.input][:, node.start : node.start + c])
        if isinstance(node, QHostOp) and node.op_type == SEGMENT_OP:
            return run_segment_node(g, node, vals)
        fin = [dequantize(vals[i], t[i].scale, t[i].zero_point) for i in node.inputs]
        yf = run_host(fin, node)
        if node.output_float:
            return yf
        out = t[node.output]
        return quantize_input(yf, out.scale, out.zero_point)
    except KeyError as exc:
        raise ReferenceError(
            f"node '{node.name}' reads tensor {exc} before it is computed"
        ) from None


def run_reference(g: QGraph, x: np.ndarray, *, keep_all: bool = True) -> dict[str, np.ndarray]:
    """Run ``g`` on the float32 input ``x`` (NCHW, or any shape with the input tensor's
    element count per batch item).

    Returns a dict: for every graph tensor (only the outputs if ``keep_all`` is false) its
    int8 value ``[N, C, H, W]``; for every graph output ``o`` also ``o + ":float"``, the
    dequantized float32 output reshaped to ``g.output_shapes[o]`` (with the batch of ``x``)
    when given. A host op with ``output_float`` stores float32 under both keys.
    """
    vals: dict[str, np.ndarray] = {g.inputs[0]: quantize_graph_input(g, x)}
    t = g.tensors
    readers: dict[str, int] = {}
    if not keep_all:
        for node in g.nodes:
            for i in node_inputs(node):
                readers[i] = readers.get(i, 0) + 1
    for node in g.nodes:
        vals[node.output] = run_node(g, node, vals)
        if not keep_all:
            for i in node_inputs(node):
                readers[i] -= 1
                if readers[i] == 0 and i not in g.outputs:
                    vals.pop(i, None)
    result: dict[str, np.ndarray] = dict(vals) if keep_all else {o: vals[o] for o in g.outputs}
    dyn = dynamic_outputs(g)
    for o in g.outputs:
        v = vals[o]
        if o in dyn:  # onnxruntime's result as it is (boxes of NMS: int64)
            result[o + FLOAT_SUFFIX] = v
            continue
        f = v if v.dtype == np.float32 else dequantize(v, t[o].scale, t[o].zero_point)
        if o in g.output_shapes:  # rows broadcast from a constant: each item's rows stacked
            shape = g.output_shapes[o]
            f = f.reshape((v.shape[0] * shape[0], *shape[1:]))
        result[o + FLOAT_SUFFIX] = f
    return result


def float_outputs(g: QGraph, result: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The dequantized outputs of a :func:`run_reference` result, in ``g.outputs`` order."""
    return [result[o + FLOAT_SUFFIX] for o in g.outputs]
