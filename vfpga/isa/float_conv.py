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
:func:`fsum_conv`. The sums run in a numba-compiled loop whose multiply-adds are LLVM's
``llvm.fma.f32`` (a correctly rounded fused multiply-add, by definition) and whose float32
additions are IEEE ones (numba compiles without fast-math: nothing is reassociated); the
numpy path (:func:`vfpga.isa.float32.fma_f32`) computes the same values and is used when
numba is unavailable or ``VFPGA_EMULATOR_JIT=0`` (``tests/test_float_conv.py`` compares
both).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

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


_lock = threading.Lock()
_compiled: dict[str, Any] = {}


def _build() -> Callable[..., None]:
    """The compiled tap sums (see :func:`_sums_numpy` for what they compute)."""
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    @intrinsic
    def fma32(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
        sig = types.float32(types.float32, types.float32, types.float32)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            f32 = ir.FloatType()
            fn = builder.module.declare_intrinsic(
                "llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32])
            )
            return builder.call(fn, args)

        return sig, codegen

    @njit(cache=False, nogil=True)
    def sums(
        xf: Any, wt: Any, ridx: Any, rreal: Any, cidx: Any, creal: Any, kblock: int, p: Any
    ) -> None:
        kh, oh = ridx.shape
        kw, ow = cidx.shape
        nc, noc = xf.shape[2], wt.shape[3]
        t = np.zeros(noc, np.float32)
        tsum = np.zeros(noc, np.float32)
        for r in range(oh):
            for q in range(ow):
                for ii in range(kh):
                    i = kh - 1 - ii
                    if not rreal[i, r]:
                        continue
                    y = ridx[i, r]
                    for jj in range(kw):
                        j = kw - 1 - jj
                        if not creal[j, q]:
                            continue
                        x = cidx[j, q]
                        for k0 in range(0, nc, kblock):
                            for o in range(noc):
                                t[o] = np.float32(0.0)
                            for ch in range(k0, min(nc, k0 + kblock)):
                                xv = xf[y, x, ch]
                                for o in range(noc):
                                    t[o] = fma32(xv, wt[i, j, ch, o], t[o])  # type: ignore[call-arg]
                            if k0 == 0:
                                for o in range(noc):
                                    tsum[o] = t[o]
                            else:
                                for o in range(noc):
                                    tsum[o] = tsum[o] + t[o]
                        for o in range(noc):
                            p[r, q, o] = p[r, q, o] + tsum[o]

    return sums


def _kernel() -> Callable[..., None] | None:
    """The compiled tap sums, or None (numba unavailable or disabled)."""
    if os.environ.get("VFPGA_EMULATOR_JIT", "1") == "0":
        return None
    with _lock:
        if "sums" not in _compiled:
            try:
                sums = _build()
                # compile now (numba compiles at the first call) on a 1x1 tile
                one = np.ones((1, 1, 1), _F)
                idx, real = np.zeros((1, 1), np.int64), np.ones((1, 1), np.bool_)
                sums(
                    one,
                    np.ones((1, 1, 1, 1), _F),
                    idx,
                    real,
                    idx,
                    real,
                    K_BLOCK,
                    np.zeros((1, 1, 1), _F),
                )
                _compiled["sums"] = sums
            except Exception:  # numba missing or unable to compile here: the numpy path
                _compiled["sums"] = None
        return _compiled["sums"]


def _sums_numpy(
    xf: NDArray[np.float32],
    wt: NDArray[np.float32],
    ridx: NDArray[np.int64],
    rreal: NDArray[np.bool_],
    cidx: NDArray[np.int64],
    creal: NDArray[np.bool_],
    kblock: int,
    p: NDArray[np.float32],
) -> None:
    """``p[r, q, o] += T`` (each addition rounded) for every tap ``(i, j)`` in reverse
    row-major order whose source row ``ridx[i, r]`` and column ``cidx[j, q]`` are real
    input elements, ``T`` the tap's FMA chains over the input channels of ``xf`` with the
    weights ``wt [kh][kw][c][oc]``, in blocks of ``kblock`` channels."""
    kh, kw, in_c, oc = wt.shape
    for i in reversed(range(kh)):
        if not rreal[i].any():
            continue
        for j in reversed(range(kw)):
            if not creal[j].any():
                continue
            ry, cx = np.nonzero(rreal[i])[0], np.nonzero(creal[j])[0]
            xs = xf[ridx[i, ry]][:, cidx[j, cx]].reshape(-1, in_c)  # [n][c] real pixels
            t_sum = np.zeros((xs.shape[0], oc), _F)
            for k0 in range(0, in_c, kblock):
                t = np.zeros_like(t_sum)
                for c in range(k0, min(in_c, k0 + kblock)):
                    t = fma_f32(xs[:, c, None], wt[None, i, j, c, :], t)
                t_sum = t if k0 == 0 else (t_sum + t).astype(_F)
            blk = p[np.ix_(ry, cx)]
            p[np.ix_(ry, cx)] = (blk + t_sum.reshape(blk.shape)).astype(_F)


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
    use_compiled: bool = True,
) -> NDArray[np.int8]:
    """The int8 output ``[out_h][out_w][out_c]`` of a ``fsum`` CONV of the int8 tile ``x``
    ``[in_h][in_w][in_c]`` with the int8 weights ``w`` ``[out_c][kh][kw][in_c]`` (groups
    1), the parameter records' ``bias`` (int32), ``scale`` (the weight scales) and
    ``divisor`` (the output scale) per output channel, clamped to ``bounds`` (the
    activation's range; a table is looked up by the caller). ``pads`` are
    ``(top, bottom, left, right)`` around the input upsampled by ``ups``.
    ``use_compiled=False`` forces the numpy path (the tests compare the two)."""
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
        taps_r = [_tap_sources(oh, in_h, i, stride[0], pads[0], ups[0], dil[0]) for i in range(kh)]
        taps_c = [_tap_sources(ow, in_w, j, stride[1], pads[2], ups[1], dil[1]) for j in range(kw)]
        ridx = np.stack([t[0] for t in taps_r])
        rreal = np.stack([t[1] for t in taps_r])
        cidx = np.stack([t[0] for t in taps_c])
        creal = np.stack([t[1] for t in taps_c])
        wt = np.ascontiguousarray(wf.transpose(1, 2, 3, 0))  # [kh][kw][c][oc]
        sums = _kernel() if use_compiled else None
        (sums or _sums_numpy)(np.ascontiguousarray(xf), wt, ridx, rreal, cidx, creal, K_BLOCK, p)
        y = (p + bf).astype(_F)
        v = (y / np.asarray(divisor, _F).reshape(oc)).astype(_F)
        v = np.nan_to_num(v, nan=0.0, posinf=255.0, neginf=-255.0)
        q = np.rint(np.clip(v, bounds[0] - int(out_zp), bounds[1] - int(out_zp)))
    return (q.astype(np.int64) + int(out_zp)).astype(np.int8)
