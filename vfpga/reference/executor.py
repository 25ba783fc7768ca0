"""The integer golden reference: runs a :class:`~vfpga.frontend.qgraph.QGraph` on whole
tensors with plain numpy, bit-exactly as docs/quantization.md specifies.

It shares no code with the emulator (``vfpga.emulator``): it is the independent model the
emulator's int8 outputs are checked against. Accumulators are exact: convolutions run as
float32 BLAS products while ``K * 255 * 128 < 2**24`` (``K`` = the number of products per
output, ``<= 512``), and as float64 products otherwise (``K * 255 * 128 < 2**53`` for any
real ``K``); depthwise convolutions accumulate in float64. Both are exact integers,
converted to int64 before requantization.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vfpga.errors import VfpgaError
from vfpga.frontend.qgraph import Act, QAdd, QConcat, QConv, QGraph, QHostOp, QPool
from vfpga.reference.arith import dequantize, quantize_input, requant, rhe_div, rhe_shift, sat8

#: the largest number of products per output summed in float32 (exact below 2**24).
F32_EXACT_K = 512
FLOAT_SUFFIX = ":float"


class ReferenceError(VfpgaError):
    """The reference cannot run a graph on the given input (bad shape, bad graph)."""


def _act(y: np.ndarray, act: Act) -> np.ndarray:
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
    xp: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], out_hw: tuple[int, int]
) -> np.ndarray:
    """``[N, C, OH, OW, KH, KW]`` view of the windows of the padded ``xp``."""
    w = sliding_window_view(xp, kernel, axis=(2, 3))
    return w[:, :, : out_hw[0] * strides[0] : strides[0], : out_hw[1] * strides[1] : strides[1]]


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


def _matmul_exact(cols: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """``cols [M, K] @ w2 [OC, K].T`` of integer-valued float arrays, exact."""
    k = cols.shape[1]
    dt = np.float32 if k <= F32_EXACT_K else np.float64
    return (cols.astype(dt, copy=False) @ w2.astype(dt, copy=False).T).astype(np.float64)


def conv_acc(x: np.ndarray, in_zp: int, node: QConv) -> np.ndarray:
    """The int64 accumulator ``[N, OC, OH, OW]`` of ``node`` on the int8 input ``x``:
    ``bias[oc] + sum((x - in_zp) * w)`` with zero padding after the subtraction."""
    w = node.weight
    oc, cig, kh, kw = w.shape
    n, c, h, wd = x.shape
    g = node.groups
    if c != cig * g or oc % g:
        raise ReferenceError(f"{node.name}: weights {w.shape} / groups {g} vs {c} input channels")
    kernel = (kh, kw)
    oh, ow = _out_hw((h, wd), kernel, node.strides, node.pads)
    ocg = oc // g
    if cig == 1 and g > 1:
        # depthwise (with multiplier): out channel oc reads input channel oc // ocg
        xc = x.astype(np.float64) - in_zp
        xp = _pad(xc, node.pads, 0.0)
        src = xp[:, np.arange(oc) // ocg] if ocg > 1 else xp
        acc = np.zeros((n, oc, oh, ow), dtype=np.float64)
        sh, sw = node.strides
        wf = w.astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                sl = src[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
                acc += sl * wf[:, 0, i, j][None, :, None, None]
    else:
        xc = x.astype(np.float32) - np.float32(in_zp)
        xp = _pad(xc, node.pads, 0.0)
        acc = np.empty((n, oc, oh, ow), dtype=np.float64)
        for gi in range(g):
            xs = xp[:, gi * cig : (gi + 1) * cig]
            if kernel == (1, 1) and node.strides == (1, 1):
                cols = xs.transpose(0, 2, 3, 1).reshape(n * oh * ow, cig)
            else:
                win = _windows(xs, kernel, node.strides, (oh, ow))
                cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, cig * kh * kw)
            w2 = w[gi * ocg : (gi + 1) * ocg].reshape(ocg, cig * kh * kw)
            res = _matmul_exact(cols, w2.astype(np.float32))
            acc[:, gi * ocg : (gi + 1) * ocg] = res.reshape(n, oh, ow, ocg).transpose(0, 3, 1, 2)
    out = np.rint(acc).astype(np.int64) + node.bias.astype(np.int64)[None, :, None, None]
    return out


def run_conv(x: np.ndarray, in_zp: int, out_zp: int, node: QConv) -> np.ndarray:
    """``act(sat8(out_zp + requant(acc, mult[oc], shift[oc])))`` as int8."""
    acc = conv_acc(x, in_zp, node)
    if np.any(np.abs(acc) >= (1 << 31)):
        raise ReferenceError(f"{node.name}: the accumulator overflows int32")
    m = node.multiplier.astype(np.int64)[None, :, None, None]
    s = node.shift.astype(np.int64)[None, :, None, None]
    y = sat8(out_zp + requant(acc, m, s))
    return _act(y, node.act).astype(np.int8)


def run_pool(x: np.ndarray, in_zp: int, out_zp: int, node: QPool) -> np.ndarray:
    """Max / average / global-average pooling (see :class:`QPool`)."""
    h, w = x.shape[2], x.shape[3]
    if node.kind == "global_avg":
        acc = (x.astype(np.int64) - in_zp).sum(axis=(2, 3), keepdims=True)
        count = h * w
        y = out_zp + rhe_div(acc * node.multiplier, count << node.shift)
        return sat8(y).astype(np.int8)
    oh, ow = _out_hw((h, w), node.kernel, node.strides, node.pads)
    if node.kind == "max":
        xp = _pad(x.astype(np.int16), node.pads, -129)
        y = _windows(xp, node.kernel, node.strides, (oh, ow)).max(axis=(4, 5))
        if np.any(y < -128):
            raise ReferenceError(f"{node.name}: a max-pool window holds only padding")
        return y.astype(np.int8)
    xp = _pad(x.astype(np.int64) - in_zp, node.pads, 0)
    acc = _windows(xp, node.kernel, node.strides, (oh, ow)).sum(axis=(4, 5))
    if node.count_include_pad:
        count = np.full((1, 1, oh, ow), node.kernel[0] * node.kernel[1], dtype=np.int64)
    else:
        ones = _pad(np.ones((1, 1, h, w), dtype=np.int64), node.pads, 0)
        count = _windows(ones, node.kernel, node.strides, (oh, ow)).sum(axis=(4, 5))
        if np.any(count == 0):
            raise ReferenceError(f"{node.name}: an average-pool window holds only padding")
    y = out_zp + rhe_div(acc * node.multiplier, count << node.shift)
    return sat8(y).astype(np.int8)


def run_add(
    a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, out_zp: int, node: QAdd
) -> np.ndarray:
    """``act(sat8(out_zp + rhe((a - a_zp) * mult_a + (b - b_zp) * mult_b, 2**shift)))``."""
    if a.shape != b.shape:
        raise ReferenceError(f"{node.name}: shapes {a.shape} and {b.shape} differ")
    v = (a.astype(np.int64) - a_zp) * node.mult_a + (b.astype(np.int64) - b_zp) * node.mult_b
    y = sat8(out_zp + rhe_shift(v, node.shift))
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
        return softmax(inputs[0], int(node.attrs.get("axis", 1)))  # type: ignore[call-overload]
    if node.op_type == "LRN":
        a = node.attrs
        return lrn(
            inputs[0],
            int(a["size"]),  # type: ignore[call-overload]
            float(a.get("alpha", 1e-4)),  # type: ignore[arg-type]
            float(a.get("beta", 0.75)),  # type: ignore[arg-type]
            float(a.get("bias", 1.0)),  # type: ignore[arg-type]
        )
    raise ReferenceError(f"{node.name}: host op {node.op_type} is not implemented")


def quantize_graph_input(g: QGraph, x: np.ndarray) -> np.ndarray:
    """Reshape the float input to ``[N, C, H, W]`` (``N = x.shape[0]``, the rest from the
    input tensor's shape) and quantize it like ``QuantizeLinear``."""
    t = g.tensors[g.inputs[0]]
    x = np.asarray(x, dtype=np.float32)
    per = int(np.prod(t.shape[1:]))
    if x.ndim == 0 or x.size % per or x.size // max(x.shape[0], 1) != per:
        raise ReferenceError(
            f"input of shape {x.shape} does not match the graph input '{t.name}' "
            f"{t.shape} (batch may differ)"
        )
    x4 = x.reshape((x.shape[0], *t.shape[1:]))
    return quantize_input(x4, t.scale, t.zero_point)


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
            for i in _node_inputs(node):
                readers[i] = readers.get(i, 0) + 1
    for node in g.nodes:
        try:
            if isinstance(node, QConv):
                y = run_conv(
                    vals[node.input], t[node.input].zero_point, t[node.output].zero_point, node
                )
            elif isinstance(node, QPool):
                y = run_pool(
                    vals[node.input], t[node.input].zero_point, t[node.output].zero_point, node
                )
            elif isinstance(node, QAdd):
                y = run_add(
                    vals[node.a],
                    t[node.a].zero_point,
                    vals[node.b],
                    t[node.b].zero_point,
                    t[node.output].zero_point,
                    node,
                )
            elif isinstance(node, QConcat):
                y = np.concatenate([vals[i] for i in node.inputs], axis=node.axis)
            else:
                fin = [dequantize(vals[i], t[i].scale, t[i].zero_point) for i in node.inputs]
                yf = run_host(fin, node)
                if node.output_float:
                    y = yf
                else:
                    out = t[node.output]
                    y = quantize_input(yf, out.scale, out.zero_point)
        except KeyError as exc:
            raise ReferenceError(
                f"node '{node.name}' reads tensor {exc} before it is computed"
            ) from None
        vals[node.output] = y
        if not keep_all:
            for i in _node_inputs(node):
                readers[i] -= 1
                if readers[i] == 0 and i not in g.outputs:
                    vals.pop(i, None)
    result: dict[str, np.ndarray] = dict(vals) if keep_all else {o: vals[o] for o in g.outputs}
    for o in g.outputs:
        v = vals[o]
        f = v if v.dtype == np.float32 else dequantize(v, t[o].scale, t[o].zero_point)
        if o in g.output_shapes:
            f = f.reshape((v.shape[0], *g.output_shapes[o][1:]))
        result[o + FLOAT_SUFFIX] = f
    return result


def float_outputs(g: QGraph, result: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The dequantized outputs of a :func:`run_reference` result, in ``g.outputs`` order."""
    return [result[o + FLOAT_SUFFIX] for o in g.outputs]


def _node_inputs(node: QConv | QPool | QAdd | QConcat | QHostOp) -> list[str]:
    if isinstance(node, QConv | QPool):
        return [node.input]
    if isinstance(node, QAdd):
        return [node.a, node.b]
    return list(node.inputs)
