"""The arithmetic of a CONV with the ``fsum`` flag (ISA version 5): a transposed
convolution summed in float32 the way onnxruntime computes ``DequantizeLinear ->
ConvTranspose -> QuantizeLinear`` (docs/isa.md, "CONV fsum").

onnxruntime has no integer ConvTranspose kernel: it dequantizes the input, the weights and
the int32 bias, runs its float32 ConvTranspose (an MLAS SGEMM of the weights with the
input, one column per input pixel, then col2im adding each kernel tap's column into the
output map, then the bias) and quantizes. Measured on onnxruntime 1.32 (x86-64 with FMA,
1 and 2 threads): this module reproduces its float32 output bit for bit on every element
of unet's four ConvTransposes over 20 inputs and on kernels 2/3/4, strides 1/2, pads,
output padding and 9..300 input channels (tests/test_float_conv.py). Every step below is
one IEEE-754 binary32 operation rounded to nearest, ties to even:

* ``X = f32(f32(x - pad_value) * in_scale)`` for each input element (``pad_value`` is the
  input zero point), ``W = f32(f32(w) * scale[oc])`` for each weight,
  ``B = f32(f32(bias[oc]) * f32(in_scale * scale[oc]))``;
* for each output element and each kernel tap ``(i, j)`` that reads an input element
  (not padding, not an element inserted by ``ups``), the tap's sum ``T`` over the
  instruction's input channels ``0 .. in_c - 1`` in blocks of :data:`K_BLOCK`: within a
  block a chain of fused multiply-adds ``t = fma(X[c], W[c], t)`` from ``t = +0.0`` in
  increasing ``c``; ``T`` is the first block's ``t``, then ``T = f32(T + t)`` for each
  further block (MLAS's SGEMM: FMA kernels, K blocks of 128, never split across threads);
* ``P``: ``+0.0``, then ``P = f32(P + T)`` for the reading taps in **reverse row-major
  order** (``i`` from ``kh - 1`` down to 0, ``j`` from ``kw - 1`` down to 0): col2im adds
  the taps of the original, unflipped kernel in row-major order, and the CONV's kernel is
  the flipped one;
* ``y = f32(P + B)``, ``v = f32(y / divisor[oc])`` (``divisor`` is the output scale),
  ``out = sat8(out_zp + rne(v))`` (a NaN ``v`` counts as 0), then the activation.

One home for these steps: the emulator's kernel and the golden reference call
:func:`fsum_conv`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from vfpga.isa.float32 import fma_f32

__all__ = ["K_BLOCK", "fsum_conv", "fsum_out_dims"]

#: Input channels summed in one FMA chain before the chains are added (MLAS's SGEMM K
#: stride for a transposed A operand).
K_BLOCK = 128

_F = np.float32


def fsum_out_dims(
    in_h: int,
    in_w: int,
    kh: int,
    kw: int,
    stride: Sequence[int],
    pads: Sequence[int],
    ups: Sequence[int],
    dil: Sequence[int],
) -> tuple[int, int]:
    """Output rows and columns of a CONV (``pads`` ``(top, bottom, left, right)``)."""
    vh, vw = (in_h - 1) * ups[0] + 1, (in_w - 1) * ups[1] + 1
    ekh, ekw = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
    return (
        (vh + pads[0] + pads[1] - ekh) // stride[0] + 1,
        (vw + pads[2] + pads[3] - ekw) // stride[1] + 1,
    )


def _tap_sources(
    n_out: int, n_in: int, k: int, stride: int, pad_lo: int, ups: int, dil: int
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Along one axis, for output ``o`` and tap ``k``: the input element the tap reads
    (clamped index) and whether it is a real input element."""
    pos = np.arange(n_out, dtype=np.int64) * stride + k * dil - pad_lo  # upsampled grid
    real = (pos >= 0) & (pos % ups == 0) & (pos // ups < n_in)
    return np.clip(pos // ups, 0, n_in - 1), real


def fsum_conv(
    x: NDArray[np.int8],
    w: NDArray[np.int8],
    *,
    in_scale: float,
    scale: NDArray[np.float32],
    bias: NDArray[np.int32],
    divisor: NDArray[np.float32],
    pad_value: int,
    out_zp: int,
    bounds: tuple[int, int] = (-128, 127),
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    ups: Sequence[int] = (1, 1),
    dil: Sequence[int] = (1, 1),
) -> NDArray[np.int8]:
    """The int8 output ``[out_h][out_w][out_c]`` of a ``fsum`` CONV of the int8 tile ``x``
    ``[in_h][in_w][in_c]`` with the int8 weights ``w`` ``[out_c][kh][kw][in_c]`` (groups
    1), the parameter records' ``bias`` (int32), ``scale`` (the weight scales) and
    ``divisor`` (the output scale) per output channel, clamped to ``bounds`` (the
    activation's range; a table is looked up by the caller). ``pads`` are
    ``(top, bottom, left, right)`` around the input upsampled by ``ups``."""
    in_h, in_w, in_c = x.shape
    oc, kh, kw, cig = w.shape
    assert cig == in_c, (w.shape, x.shape)
    oh, ow = fsum_out_dims(in_h, in_w, kh, kw, stride, pads, ups, dil)
    s_in = _F(in_scale)
    sc = np.asarray(scale, _F).reshape(oc)
    with np.errstate(all="ignore"):  # non-finite operands propagate into NaN / inf
        xf = ((x.astype(np.int32) - int(pad_value)).astype(_F) * s_in).astype(_F)
        wf = (w.astype(_F) * sc[:, None, None, None]).astype(_F)  # [oc][kh][kw][c]
        bf = (np.asarray(bias, np.int32).reshape(oc).astype(_F) * (s_in * sc)).astype(_F)
        p = np.zeros((oh, ow, oc), _F)
        for i in reversed(range(kh)):
            rows, rreal = _tap_sources(oh, in_h, i, stride[0], pads[0], ups[0], dil[0])
            if not rreal.any():
                continue
            for j in reversed(range(kw)):
                cols, creal = _tap_sources(ow, in_w, j, stride[1], pads[2], ups[1], dil[1])
                if not creal.any():
                    continue
                ry, cx = np.nonzero(rreal)[0], np.nonzero(creal)[0]
                xs = xf[rows[ry]][:, cols[cx]].reshape(-1, in_c)  # [n][c] real pixels
                wt = wf[:, i, j, :]  # [oc][c]
                t_sum = np.zeros((xs.shape[0], oc), _F)
                for k0 in range(0, in_c, K_BLOCK):
                    t = np.zeros_like(t_sum)
                    for c in range(k0, min(in_c, k0 + K_BLOCK)):
                        t = fma_f32(xs[:, c, None], wt[None, :, c], t)
                    t_sum = t if k0 == 0 else (t_sum + t).astype(_F)
                blk = p[np.ix_(ry, cx)]
                p[np.ix_(ry, cx)] = (blk + t_sum.reshape(blk.shape)).astype(_F)
        y = (p + bf).astype(_F)
        v = (y / np.asarray(divisor, _F).reshape(oc)).astype(_F)
        v = np.nan_to_num(v, nan=0.0, posinf=255.0, neginf=-255.0)
        q = np.rint(np.clip(v, bounds[0] - int(out_zp), bounds[1] - int(out_zp)))
    return (q.astype(np.int64) + int(out_zp)).astype(np.int8)
