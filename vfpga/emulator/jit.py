"""Fused element-wise kernels of the emulator's fast path, compiled with numba.

numpy evaluates an expression such as a CONV's output stage one whole-array pass per
operation (add the start, convert and scale, clamp, round, add the zero point, narrow to
int8), each pass a separate call with its own overhead; on the emulator's small tiles
those passes cost several times the arithmetic. The kernels here do the same steps for one
element at a time in a single compiled loop; depthwise convolutions sum their windows in
int32 in one loop instead of ``kh * kw`` whole-tile float32 passes. They compute exactly
what the numpy code of :mod:`vfpga.emulator.kernels` computes (``docs/isa.md``,
*Arithmetic*): int32 additions wrap modulo ``2**32``; ``int32 -> float32`` conversion,
float32 ``*`` and ``/`` are the correctly rounded IEEE operations numpy uses (numba
compiles without fast-math, so nothing is reassociated or contracted into an FMA);
``rint`` rounds half to even. The tests compare every kernel with the numpy code on random
and edge-case operands (``tests/test_emulator_jit.py``, ``tests/test_kernels.py``).

:func:`get` returns the compiled kernels, or ``None`` (numba missing, disabled with
``VFPGA_EMULATOR_JIT=0``, or compilation failed: :func:`unavailable_reason` says which);
callers then use the numpy code. Compiled code is cached on disk by numba (``cache=True``),
so only the first process after an install pays the compilation (about a second).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

__all__ = ["ENV_DISABLE", "JitKernels", "get", "unavailable_reason"]

#: Set to ``0`` to never use the compiled kernels (the numpy code is used).
ENV_DISABLE = "VFPGA_EMULATOR_JIT"

_lock = threading.Lock()


class _State(TypedDict, total=False):
    """What :func:`get` decided: the kernels (None if unavailable) and why not."""

    kernels: JitKernels | None
    why: str | None


_state: _State = {}


@dataclass(frozen=True)
class JitKernels:
    """The compiled kernels (numba dispatchers; argument types are checked by numba).

    ``requant(prod, start, per_row, scale, divisor, has_div, lo, hi, zp, out)``:
    ``prod`` int32 ``[G][M][NG]`` (the sums of group ``g`` are the output channels
    ``[g * NG, (g + 1) * NG)``), ``start`` int32 ``[S][N]`` with ``N = G * NG`` (``S = M``
    and ``per_row`` true: a start value per element; ``S = 1``: one per channel),
    ``scale``/``divisor`` float32 ``[N]``, ``lo``/``hi`` float32, ``zp`` int, ``out`` int8
    ``[M][N]``: ``out[i, c] = int8(zp + rint(clip(f32(f32(f32(acc) * scale[c]) /
    divisor[c]), lo, hi)))`` with ``acc = int32(prod + start)`` (the division only if
    ``has_div``). ``lo``/``hi`` are the activation bounds minus ``zp``.

    ``accumulate(prod, start, per_row, out)``: the same ``acc`` into int32 ``out [M][N]``.

    ``lookup(table, a, b, out)``: ``out[k] = table[uint8(a[k]) << 8 | uint8(b[k])]`` for
    int8 ``a``, ``b``, ``out`` of one length and an int8 ``table`` of 65536 entries.

    ``act_lookup(table, x)``: ``x[k] = table[x[k] + 128]`` in place for int8 ``x`` (1-D)
    and an int8 ``table`` of 256 entries (CONV's ``TABLE`` activation).

    ``depthwise(x, pad, w, kh, kw, sh, sw, t, l, acc)``: the sums of a convolution with
    one input channel per group into int32 ``acc [oh][ow][oc]`` (modulo ``2**32``):
    ``acc[y, x, c] = sum_{i < kh, j < kw} X[y * sh + i - t, x * sw + j - l, c // m] *
    w[i * kw + j, c]`` with ``m = oc / in_c``, ``X`` the int8 tile ``x [in_h][in_w][in_c]``
    read as ``pad`` outside its bounds, and int32 weights ``w [kh * kw][oc]``.

    ``depthwise_requant(x, pad, w, kh, kw, sh, sw, t, l, bias, scale, divisor, has_div,
    lo, hi, zp, out)``: ``depthwise`` then ``requant`` with ``start = bias`` (int32 ``[1][oc]``)
    into int8 ``out [oh][ow][oc]``, one output pixel at a time (the int32 sums never leave
    the cache): the same values as the two kernels in turn.

    ``row_product(a, b, out)``: the exact product of one row, ``out[0, j] = sum_k
    (int32(a[0, k]) - 128) * b[k, j]`` modulo ``2**32`` for uint8 ``a [1][K]``, int8
    ``b [K][N]`` and int32 ``out [1][N]`` (int32 lanes wrap, as the CONV accumulator;
    :mod:`vfpga.emulator.int_matmul` uses it for one-row products, where onnxruntime's
    ``MatMulInteger`` spends most of its time packing ``b``).

    ``same(a, b)``: whether the uint64 arrays ``a`` and ``b`` (one length, either may be
    unaligned) are equal: one pass over both without a temporary (comparing ``tobytes()``
    copies first, ``np.array_equal`` writes a bool array; both several times slower on the
    megabytes of a layer's weights).

    ``pool_max(x, kh, kw, sh, sw, t, l, out)``: POOL ``MAX`` of the int8 tile
    ``x [in_h][in_w][c]`` into int8 ``out [oh][ow][c]``: the maximum of the in-bound
    elements of each window (the caller has checked that every window has one).

    ``pool_avg(x, in_zp, scale, count_pad, osc, add, kh, kw, sh, sw, t, l, out)``: POOL
    ``AVG_PAD`` (``count_pad``) / ``AVG`` into int8 ``out [oh][ow][c]``, with the float32
    scalars ``scale``, ``osc`` (the output scale) and ``add = f32(out_zp + 128)``:
    ``e = f32(f32(x - in_zp) * scale)`` per in-bound element, ``s`` their float32 running
    sum in window order (rows top to bottom, left to right; the numpy code also adds
    ``+0.0`` for padding positions, which never changes a sum that starts at ``+0.0``),
    ``out = int8(rne(clip(f32(f32(f32(s / f32(count)) / osc) + add), 0, 255)) - 128)``
    with ``count = kh * kw`` or the number of in-bound elements (the caller has checked
    it is not 0). Returns False, with ``out`` partly written, if a sum is NaN (the caller
    reports it)."""

    requant: Callable[..., None]
    accumulate: Callable[..., None]
    lookup: Callable[..., None]
    depthwise: Callable[..., None]
    act_lookup: Callable[..., None]
    same: Callable[..., bool]
    pool_max: Callable[..., None]
    pool_avg: Callable[..., bool]
    row_product: Callable[..., None]
    depthwise_requant: Callable[..., None]

    def output_stage(self, prod: np.ndarray, start: np.ndarray, per_row: bool,
                     out: np.ndarray, *, acc_out: bool, scale: np.ndarray | None,
                     divisor: np.ndarray | None, lo: np.float32, hi: np.float32,
                     zp: int) -> None:
        """A CONV's output stage into ``out``: :attr:`accumulate` if ``acc_out``, else
        :attr:`requant` (``divisor`` ``None``: no division; ``scale`` is then required)."""
        if acc_out:
            self.accumulate(prod, start, per_row, out)
            return
        assert scale is not None
        self.requant(prod, start, per_row, scale, scale if divisor is None else divisor,
                     divisor is not None, lo, hi, zp, out)


#: int32 sums per block of output columns of the depthwise kernels (a block's
#: accumulators and tiled weights stay in the L1 cache)
DW_BLOCK = 1024
#: the most channels for which the depthwise kernels work on blocks of output columns;
#: above it, one output pixel at a time (its channel loop is long enough to vectorize; a
#: 3x3 window inside the tile sums its nine products in registers), measured faster from
#: 32 channels (1.1-1.3x on 32-64, 1.2-1.8x on 88-1024), blocks 1.4x faster on 16.
#: Whatever the channels, a tile whose 3x3 windows all lie inside it (the CONV pads
#: nothing) runs whole rows on ``dw33_run`` instead (session 12, same process, old/new
#: kernels alternated: 17x56x16 stride 2 with the output stage 47 -> 20 us, 9x112x32
#: 44 -> 33 us, 9x56x64 41 -> 34 us; 256 channels and more unchanged)
DW_BLOCK_MAX_C = 16


def _compile() -> JitKernels:
    from numba import njit

    opts: dict[str, Any] = dict(
        cache=True, nogil=True, boundscheck=False, fastmath=False, error_model="numpy"
    )

    @njit(**opts)
    def requant_one(p, st, sc, dv, has_div, lo, hi, zp):
        # one element of ``requant`` (whose loop keeps its own copy, unchanged)
        acc = np.int32(np.int64(p) + np.int64(st))
        v = np.float32(acc) * sc
        if has_div:
            v = v / dv
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
        return np.int8(np.int32(np.rint(v)) + zp)

    @njit(**opts)
    def requant(prod, start, per_row, scale, divisor, has_div, lo, hi, zp, out):
        ng_groups, m, ng = prod.shape
        for g in range(ng_groups):
            base = g * ng
            for i in range(m):
                si = i if per_row else 0
                for j in range(ng):
                    c = base + j
                    acc = np.int32(np.int64(prod[g, i, j]) + np.int64(start[si, c]))
                    v = np.float32(acc) * scale[c]
                    if has_div:
                        v = v / divisor[c]
                    if v < lo:
                        v = lo
                    elif v > hi:
                        v = hi
                    out[i, c] = np.int8(np.int32(np.rint(v)) + zp)

    @njit(**opts)
    def accumulate(prod, start, per_row, out):
        ng_groups, m, ng = prod.shape
        for g in range(ng_groups):
            base = g * ng
            for i in range(m):
                si = i if per_row else 0
                for j in range(ng):
                    c = base + j
                    out[i, c] = np.int32(np.int64(prod[g, i, j]) + np.int64(start[si, c]))

    @njit(**opts)
    def lookup(table, a, b, out):
        for k in range(a.shape[0]):
            out[k] = table[(np.int32(a[k]) & 0xFF) << 8 | (np.int32(b[k]) & 0xFF)]

    @njit(**opts)
    def act_lookup(table, x):
        for k in range(x.shape[0]):
            x[k] = table[np.int32(x[k]) + 128]

    @njit(**opts)
    def depthwise_pixel(x, pad, w, kh, kw, oy, ox, sh, sw, t, l, mult, a):  # noqa: E741
        # the sums of output pixel (oy, ox) of ``depthwise`` into ``a [oc]``
        in_h, in_w, _ = x.shape
        oc = a.shape[0]
        for c in range(oc):
            a[c] = 0
        for ky in range(kh):
            iy = oy * sh + ky - t
            for kx in range(kw):
                ix = ox * sw + kx - l
                wk = w[ky * kw + kx]
                if 0 <= iy < in_h and 0 <= ix < in_w:
                    xr = x[iy, ix]
                    if mult == 1:  # the common case, vectorized over channels
                        for c in range(oc):
                            a[c] += np.int32(xr[c]) * wk[c]
                    else:
                        for c in range(oc):
                            a[c] += np.int32(xr[c // mult]) * wk[c]
                else:
                    for c in range(oc):
                        a[c] += pad * wk[c]

    @njit(**opts)
    def dw33_run(xf, wf, acc, oy, y0, sw, in_w, oc):
        # the sums of output row ``oy`` of ``acc`` whose 3x3 windows (top row ``y0``, left
        # column ``ox * sw``) all lie inside the tile, ``xf``/``wf`` the flat tile and
        # weights (channel multiplier 1): the nine products of a channel summed in
        # registers and stored once, read at uint64 offsets computed once (no
        # negative-index wraparound, so the channel loop vectorizes: 1.3-3x faster than
        # indexing the 3-D tile, the most on few channels)
        rs = in_w * oc
        x1, x2 = np.uint64(oc), np.uint64(2 * oc)
        x3, x4, x5 = np.uint64(rs), np.uint64(rs + oc), np.uint64(rs + 2 * oc)
        x6, x7, x8 = np.uint64(2 * rs), np.uint64(2 * rs + oc), np.uint64(2 * rs + 2 * oc)
        w1, w2, w3, w4 = np.uint64(oc), np.uint64(2 * oc), np.uint64(3 * oc), np.uint64(4 * oc)
        w5, w6, w7, w8 = (np.uint64(5 * oc), np.uint64(6 * oc), np.uint64(7 * oc),
                          np.uint64(8 * oc))
        for ox in range(acc.shape[1]):
            a = acc[oy, ox]
            b = np.uint64((y0 * in_w + ox * sw) * oc)
            for c in range(oc):
                k = np.uint64(c)
                p = b + k
                a[c] = (np.int32(xf[p]) * wf[k]
                        + np.int32(xf[p + x1]) * wf[w1 + k]
                        + np.int32(xf[p + x2]) * wf[w2 + k]
                        + np.int32(xf[p + x3]) * wf[w3 + k]
                        + np.int32(xf[p + x4]) * wf[w4 + k]
                        + np.int32(xf[p + x5]) * wf[w5 + k]
                        + np.int32(xf[p + x6]) * wf[w6 + k]
                        + np.int32(xf[p + x7]) * wf[w7 + k]
                        + np.int32(xf[p + x8]) * wf[w8 + k])

    @njit(**opts)
    def dw33_inside(in_h, in_w, c, oh, ow, oc, kh, kw, sh, sw, t, l):  # noqa: E741
        # whether every output pixel's window is a 3x3 window of one input channel per
        # output channel lying inside the tile (``t <= 0``: a caller's row offset)
        return (oc == c and kh == 3 and kw == 3 and t <= 0 and l == 0
                and (oh - 1) * sh - t + 3 <= in_h and (ow - 1) * sw + 3 <= in_w)

    @njit(**opts)
    def depthwise_pixels(x, pad, w, kh, kw, sh, sw, t, l, acc):  # noqa: E741
        # ``depthwise`` one output pixel at a time (any channel multiplier); a 3x3 window
        # inside the tile (the common case) sums the nine products of a channel in
        # registers and stores them once (the same int32 sum). When every window lies
        # inside the tile (the LOADs pad the tiles, so the CONVs rarely do), whole rows
        # run on ``dw33_run``; the test is made once per call (testing each pixel in the
        # loop measured 1.5-2x slower: the compiled row loop no longer vectorizes well)
        in_h, in_w, _ = x.shape
        oh, ow, oc = acc.shape
        mult = oc // x.shape[2]
        k33 = mult == 1 and kh == 3 and kw == 3
        if dw33_inside(in_h, in_w, x.shape[2], oh, ow, oc, kh, kw, sh, sw, t, l):
            xf = np.ascontiguousarray(x).reshape(-1)
            wf = np.ascontiguousarray(w).reshape(-1)
            for oy in range(oh):
                dw33_run(xf, wf, acc, oy, oy * sh - t, sw, in_w, oc)
            return
        for oy in range(oh):
            y0 = oy * sh - t
            for ox in range(ow):
                x0 = ox * sw - l
                a = acc[oy, ox]
                if k33 and y0 >= 0 and y0 + 3 <= in_h and x0 >= 0 and x0 + 3 <= in_w:
                    for c in range(oc):
                        a[c] = (np.int32(x[y0, x0, c]) * w[0, c]
                                + np.int32(x[y0, x0 + 1, c]) * w[1, c]
                                + np.int32(x[y0, x0 + 2, c]) * w[2, c]
                                + np.int32(x[y0 + 1, x0, c]) * w[3, c]
                                + np.int32(x[y0 + 1, x0 + 1, c]) * w[4, c]
                                + np.int32(x[y0 + 1, x0 + 2, c]) * w[5, c]
                                + np.int32(x[y0 + 2, x0, c]) * w[6, c]
                                + np.int32(x[y0 + 2, x0 + 1, c]) * w[7, c]
                                + np.int32(x[y0 + 2, x0 + 2, c]) * w[8, c])
                else:
                    depthwise_pixel(x, pad, w, kh, kw, oy, ox, sh, sw, t, l, mult, a)

    @njit(**opts)
    def row_tiled(v, ow):
        # ``v [r][oc]`` repeated along an output row: ``[r][ow * oc]``, element
        # ``[i, ox * oc + c] = v[i, c]``
        r, oc = v.shape
        out = np.empty((r, ow * oc), v.dtype)
        for i in range(r):
            for ox in range(ow):
                out[i, ox * oc : (ox + 1) * oc] = v[i]
        return out

    @njit(**opts)
    def dw_planes(x, sw):
        # the int8 tile ``x [in_h][in_w][c]`` as ``sw`` column phases ``[sw][in_h][nq * c]``:
        # phase ``p`` holds column ``q * sw + p`` at ``q * c`` (a stride-1 tile as it is)
        in_h, in_w, c = x.shape
        if sw == 1:
            return np.ascontiguousarray(x).reshape((1, in_h, in_w * c))
        nq = (in_w + sw - 1) // sw
        xd = np.zeros((sw, in_h, nq * c), np.int8)
        x1 = np.ascontiguousarray(x).reshape(-1)
        d1 = xd.reshape(-1)
        for p in range(sw):
            for iy in range(in_h):
                for q in range(nq):
                    ix = q * sw + p
                    if ix < in_w:
                        s0 = (iy * in_w + ix) * c
                        d0 = ((p * in_h + iy) * nq + q) * c
                        for k in range(c):
                            d1[np.uint64(d0 + k)] = x1[np.uint64(s0 + k)]
        return xd

    @njit(**opts)
    def dw_block(xd, in_h, in_w, c, pad, wt, wl, kh, kw, oy, sh, sw, t, l, ox0, nb,  # noqa: E741
                 acc, ao):
        # the sums of output columns ``ox0 .. ox0 + nb - 1`` of row ``oy`` of ``depthwise``
        # (channel multiplier 1) into ``acc[ao : ao + nb * c]``, from the phases of
        # ``dw_planes`` (``xd``, flat) and the weights tiled along a block (``wt``, flat,
        # ``wl`` per tap): per tap, one loop over the columns whose input column lies in
        # the tile (consecutive elements of one phase row); the others read ``pad``.
        # Flat arrays, no views, indices as uint64: no reference counting and no
        # negative-index wraparound in the loops, so they vectorize
        n = nb * c
        pd = np.int32(pad)
        nq = (in_w + sw - 1) // sw
        for j in range(n):
            acc[np.uint64(ao + j)] = 0
        for ky in range(kh):
            iy = oy * sh + ky - t
            for kx in range(kw):
                w0 = (ky * kw + kx) * wl
                d = kx - l
                lo = 0
                hi = 0
                if 0 <= iy < in_h:
                    lo = 0 if d >= 0 else (sw - 1 - d) // sw  # first column inside
                    lo = min(max(lo - ox0, 0), nb)
                    hi = min((in_w - 1 - d) // sw + 1 - ox0, nb)  # past the last one
                    hi = max(hi, lo)
                for j in range(lo * c):
                    acc[np.uint64(ao + j)] += pd * wt[np.uint64(w0 + j)]
                for j in range(hi * c, n):
                    acc[np.uint64(ao + j)] += pd * wt[np.uint64(w0 + j)]
                if hi > lo:
                    # phase d % sw, row iy, column (ox0 + lo + d // sw) * c
                    s0 = ((d % sw) * in_h + iy) * nq * c + (ox0 + lo + d // sw) * c - lo * c
                    for j in range(lo * c, hi * c):
                        acc[np.uint64(ao + j)] += (np.int32(xd[np.uint64(s0 + j)])
                                                   * wt[np.uint64(w0 + j)])

    @njit(**opts)
    def depthwise(x, pad, w, kh, kw, sh, sw, t, l, acc):  # noqa: E741
        oh, ow, oc = acc.shape
        in_h, in_w, c = x.shape
        if oc != c or c > DW_BLOCK_MAX_C or dw33_inside(in_h, in_w, c, oh, ow, oc, kh, kw, sh,
                                                         sw, t, l):
            depthwise_pixels(x, pad, w, kh, kw, sh, sw, t, l, acc)
            return
        xd = dw_planes(x, sw).reshape(-1)
        bw = max(1, min(ow, DW_BLOCK // c))  # columns per block
        wt = row_tiled(w, bw).reshape(-1)
        flat = acc.reshape(-1)
        for oy in range(oh):
            for ox0 in range(0, ow, bw):
                nb = min(bw, ow - ox0)
                dw_block(xd, in_h, in_w, c, pad, wt, bw * c, kh, kw, oy, sh, sw, t, l, ox0,
                         nb, flat, (oy * ow + ox0) * c)

    @njit(**opts)
    def depthwise_requant(x, pad, w, kh, kw, sh, sw, t, l, bias, scale, divisor,  # noqa: E741
                          has_div, lo, hi, zp, out):
        oh, ow, oc = out.shape
        in_h, in_w, c = x.shape
        mult = oc // c
        inside = dw33_inside(in_h, in_w, c, oh, ow, oc, kh, kw, sh, sw, t, l)
        if inside or mult != 1 or c > DW_BLOCK_MAX_C:
            # an output row at a time: its sums (windows inside the tile: ``dw33_run``;
            # else one pixel at a time) into a row of int32 that stays in the cache, then
            # its output stage
            xf = np.ascontiguousarray(x).reshape(-1)
            wf = np.ascontiguousarray(w).reshape(-1)
            a = np.empty((1, ow, oc), np.int32)
            for oy in range(oh):
                if inside:
                    dw33_run(xf, wf, a, 0, oy * sh - t, sw, in_w, oc)
                else:
                    depthwise_pixels(x, pad, w, kh, kw, sh, sw, t - oy * sh, l, a)
                for ox in range(ow):
                    o = out[oy, ox]
                    s = a[0, ox]
                    if has_div:  # the branch outside the loop: it vectorizes either way
                        for k in range(oc):
                            o[k] = requant_one(s[k], bias[0, k], scale[k], divisor[k], True,
                                               lo, hi, zp)
                    else:
                        for k in range(oc):
                            o[k] = requant_one(s[k], bias[0, k], scale[k], scale[k], False,
                                               lo, hi, zp)
            return
        # a block of output columns at a time: its int32 sums stay in the cache, then the
        # output stage over the block with the per-channel values tiled along it
        xd = dw_planes(x, sw).reshape(-1)
        bw = max(1, min(ow, DW_BLOCK // c))
        wt = row_tiled(w, bw).reshape(-1)
        n = bw * oc
        st = row_tiled(bias, bw)[0]
        sc = np.empty(n, np.float32)
        dv = np.empty(n, np.float32)
        for ox in range(bw):
            for k in range(oc):
                sc[ox * oc + k] = scale[k]
                dv[ox * oc + k] = divisor[k]
        flat = out.reshape(-1)
        a = np.empty(n, np.int32)
        for oy in range(oh):
            for ox0 in range(0, ow, bw):
                nb = min(bw, ow - ox0)
                dw_block(xd, in_h, in_w, c, pad, wt, n, kh, kw, oy, sh, sw, t, l, ox0, nb, a, 0)
                o0 = (oy * ow + ox0) * c
                if has_div:
                    for j in range(nb * c):
                        flat[np.uint64(o0 + j)] = requant_one(a[j], st[j], sc[j], dv[j], True,
                                                              lo, hi, zp)
                else:
                    for j in range(nb * c):
                        flat[np.uint64(o0 + j)] = requant_one(a[j], st[j], sc[j], sc[j], False,
                                                              lo, hi, zp)

    @njit(**opts)
    def row_product(a, b, out):
        # four rows of ``b`` per pass over the accumulators: a quarter of the int32 loads
        # and stores, and four streams of weights in flight (1.5-1.9x faster than one row
        # per pass, the weights in the cache or not); every sum wraps modulo 2**32
        k = a.shape[1]
        acc = out[0]
        n = acc.shape[0]
        acc[:] = 0
        i = 0
        while i + 4 <= k:
            x0 = np.int32(a[0, i]) - np.int32(128)
            x1 = np.int32(a[0, i + 1]) - np.int32(128)
            x2 = np.int32(a[0, i + 2]) - np.int32(128)
            x3 = np.int32(a[0, i + 3]) - np.int32(128)
            r0, r1, r2, r3 = b[i], b[i + 1], b[i + 2], b[i + 3]
            for j in range(n):  # vectorized int32 multiply-adds
                acc[j] += (x0 * np.int32(r0[j]) + x1 * np.int32(r1[j])
                           + x2 * np.int32(r2[j]) + x3 * np.int32(r3[j]))
            i += 4
        while i < k:
            x = np.int32(a[0, i]) - np.int32(128)
            row = b[i]
            for j in range(n):
                acc[j] += x * np.int32(row[j])
            i += 1

    @njit(**opts)
    def same(a, b):
        n = a.shape[0]
        s = 0
        while s < n:  # blocks of 2048 words: a vectorized OR of XORs, then one test
            e = min(s + 2048, n)
            d = np.uint64(0)
            for i in range(s, e):
                d |= a[i] ^ b[i]
            if d != 0:
                return False
            s = e
        return True

    @njit(**opts)
    def pool_max(x, kh, kw, sh, sw, t, l, out):  # noqa: E741
        in_h, in_w, c = x.shape
        oh, ow, _ = out.shape
        for oy in range(oh):
            for ox in range(ow):
                o = out[oy, ox]
                for k in range(c):
                    o[k] = -128
                for ky in range(kh):
                    iy = oy * sh + ky - t
                    if iy < 0 or iy >= in_h:
                        continue
                    for kx in range(kw):
                        ix = ox * sw + kx - l
                        if ix < 0 or ix >= in_w:
                            continue
                        xr = x[iy, ix]
                        for k in range(c):
                            if xr[k] > o[k]:
                                o[k] = xr[k]

    @njit(**opts)
    def pool_avg(x, in_zp, scale, count_pad, osc, add, kh, kw, sh, sw, t, l, out):  # noqa: E741
        in_h, in_w, c = x.shape
        oh, ow, _ = out.shape
        s = np.empty(c, np.float32)
        ok = True
        for oy in range(oh):
            for ox in range(ow):
                for k in range(c):
                    s[k] = np.float32(0.0)
                n = 0
                for ky in range(kh):
                    iy = oy * sh + ky - t
                    if iy < 0 or iy >= in_h:
                        continue
                    for kx in range(kw):
                        ix = ox * sw + kx - l
                        if ix < 0 or ix >= in_w:
                            continue
                        n += 1
                        xr = x[iy, ix]
                        for k in range(c):
                            e = np.float32(np.int32(xr[k]) - in_zp) * scale
                            s[k] = s[k] + e
                cnt = np.float32(kh * kw) if count_pad else np.float32(n)
                o = out[oy, ox]
                for k in range(c):
                    v = s[k]
                    if np.isnan(v):
                        ok = False
                    v = v / cnt
                    v = v / osc
                    v = v + add
                    if v < np.float32(0.0):
                        v = np.float32(0.0)
                    elif v > np.float32(255.0):
                        v = np.float32(255.0)
                    o[k] = np.int8(np.int32(np.rint(v)) - 128)
        return ok

    return JitKernels(requant=requant, accumulate=accumulate, lookup=lookup,
                      depthwise=depthwise, act_lookup=act_lookup, same=same,
                      pool_max=pool_max, pool_avg=pool_avg, row_product=row_product,
                      depthwise_requant=depthwise_requant)


def _warm(k: JitKernels) -> None:
    """Compile (or load from numba's cache) the signatures the emulator calls."""
    prod = np.zeros((1, 2, 3), np.int32)
    out8 = np.zeros((2, 3), np.int8)
    out32 = np.zeros((2, 3), np.int32)
    f = np.ones(3, np.float32)
    for start, per_row in ((np.zeros((1, 3), np.int32), False), (np.zeros((2, 3), np.int32), True)):
        k.requant(prod, start, per_row, f, f, False, np.float32(-128), np.float32(127), 0, out8)
        k.accumulate(prod, start, per_row, out32)
    a = np.zeros(4, np.int8)
    k.lookup(np.zeros(65536, np.int8), a, a, a.copy())
    k.act_lookup(np.zeros(256, np.int8), a)
    k.depthwise(np.zeros((2, 2, 3), np.int8), 0, np.zeros((1, 3), np.int32), 1, 1, 1, 1, 0, 0,
                np.zeros((2, 2, 3), np.int32))
    w = np.zeros(2, np.uint64)
    k.same(w, w)
    k.same(np.zeros(17, np.uint8)[1:].view(np.uint64), w)  # an unaligned DDR view
    x8 = np.zeros((3, 3, 2), np.int8)
    o8 = np.zeros((2, 2, 2), np.int8)
    k.pool_max(x8, 2, 2, 1, 1, 0, 0, o8)
    f1 = np.float32(1)
    k.pool_avg(x8, 0, f1, True, f1, f1, 2, 2, 1, 1, 0, 0, o8)
    k.row_product(np.zeros((1, 2), np.uint8), np.zeros((2, 3), np.int8), out32[:1])
    k.depthwise_requant(np.zeros((2, 2, 3), np.int8), 0, np.zeros((1, 3), np.int32), 1, 1, 1,
                        1, 0, 0, np.zeros((1, 3), np.int32), f, f, False, np.float32(-128),
                        np.float32(127), 0, np.zeros((2, 2, 3), np.int8))


def get() -> JitKernels | None:
    """The compiled kernels, or ``None`` (see :func:`unavailable_reason`). Decided once per
    process; the first call compiles or loads them."""
    if "kernels" in _state:  # decided: no lock on the emulator's hot paths
        return _state["kernels"]
    with _lock:
        if "kernels" not in _state:
            k: JitKernels | None = None
            why: str | None = None
            if os.environ.get(ENV_DISABLE, "1") == "0":
                why = f"disabled by {ENV_DISABLE}=0"
            else:
                try:
                    k = _compile()
                    _warm(k)
                except Exception as exc:  # ImportError, or a numba/numpy mismatch
                    k, why = None, f"numba kernels unavailable: {type(exc).__name__}: {exc}"
            _state["why"] = why
            _state["kernels"] = k  # last: its presence means decided (see above)
        return _state["kernels"]


def unavailable_reason() -> str | None:
    """Why :func:`get` is ``None`` (``None`` if the kernels are available or not yet
    decided)."""
    return _state.get("why")
