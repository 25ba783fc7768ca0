"""Compiled kernels of the fast paths of MobileNetV3-style layers: the squeeze-excite
gate (ELTWISE with a per-channel operand, ``b_period``), the squeeze (POOL
``global_avg``) and table activations over a block of a whole layer's outputs.

Each kernel computes exactly what the numpy code of :mod:`vfpga.emulator.kernels`
computes for the same operands (``docs/isa.md``, *Arithmetic*), in one compiled pass
instead of several whole-array numpy passes (the gate's ``[n / p][p]`` broadcast lookup
took four passes and a uint16 index array; the global average eight small calls):

* :func:`lookup_period` is :func:`kernels.eltwise_lookup` of ``a`` as ``[n / p][p]`` rows
  against ``b [1][p]`` (the ELTWISE result table of every operand pair is built by
  :func:`kernels.eltwise_table`, from the specified float32 steps: nothing here
  recomputes the arithmetic);
* :func:`global_avg` is :func:`kernels.pool` with ``mode = global_avg``: the exact
  integer sum ``acc = sum(x - in_zp)`` (int64), ``f32(acc)`` (one rounding, through the
  exact float64), ``* scale`` in float32, clamped to the int8 range around ``out_zp``,
  rounded half to even, plus ``out_zp``;
* :func:`act_table_cols` is :func:`kernels.apply_act_table` on a ``[rows][cols]`` block
  whose rows are strided (a column block of an epoch plan's result).

The kernels are compiled with numba as :mod:`vfpga.emulator.jit` compiles its own (same
options: no fast-math, so nothing is reassociated or contracted), only when
:func:`vfpga.emulator.jit.get` has compiled those (numba present and not disabled);
otherwise each function runs the numpy code it replaces.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vfpga.emulator import jit, kernels
from vfpga.isa.spec import PoolMode

__all__ = [
    "act_table_cols",
    "global_avg",
    "global_avg_fields",
    "lookup_period",
    "max_pool",
    "max_pool_fields",
]

_lock = threading.Lock()
_state: dict[str, _Kernels | None] = {}


@dataclass(frozen=True)
class _Kernels:
    lookup_period: Callable[..., None]
    global_avg: Callable[..., None]
    act_table_2d: Callable[..., None]


def _compile() -> _Kernels:
    from numba import njit

    opts: dict[str, Any] = dict(
        cache=True, nogil=True, boundscheck=False, fastmath=False, error_model="numpy"
    )

    @njit(**opts)
    def lookup_period(table, a, b, out):
        p = b.shape[0]
        for i in range(a.shape[0] // p):
            base = i * p
            for j in range(p):
                k = base + j
                out[k] = table[(np.int32(a[k]) & 0xFF) << 8 | (np.int32(b[j]) & 0xFF)]

    @njit(**opts)
    def global_avg(x, in_zp, scale, lo, hi, out_zp, acc, out):
        h, w, c = x.shape
        for k in range(c):
            acc[k] = 0
        for i in range(h):
            for j in range(w):
                row = x[i, j]
                for k in range(c):
                    acc[k] += np.int64(row[k])
        bias = np.int64(in_zp) * np.int64(h * w)
        for k in range(c):
            v = np.float32(np.float64(acc[k] - bias)) * scale
            if v < lo:
                v = lo
            elif v > hi:
                v = hi
            out[k] = np.int8(np.int32(np.rint(v)) + out_zp)

    @njit(**opts)
    def act_table_2d(table, x):
        for i in range(x.shape[0]):
            row = x[i]
            for j in range(row.shape[0]):
                row[j] = table[np.int32(row[j]) + 128]

    k = _Kernels(lookup_period, global_avg, act_table_2d)
    # compile (or load from numba's cache) the signatures the emulator calls
    a = np.zeros(4, np.int8)
    k.lookup_period(np.zeros(65536, np.int8), a, a[:2], a.copy())
    k.global_avg(
        np.zeros((1, 2, 3), np.int8),
        0,
        np.float32(1),
        np.float32(-128),
        np.float32(127),
        0,
        np.zeros(3, np.int64),
        np.zeros(3, np.int8),
    )
    k.act_table_2d(np.zeros(256, np.int8), np.zeros((3, 4), np.int8)[:, 1:3])
    return k


def _kernels() -> _Kernels | None:
    """The compiled kernels, or ``None`` when :mod:`vfpga.emulator.jit` has none (or
    compiling these failed). Decided once per process."""
    if "k" in _state:
        return _state["k"]
    with _lock:
        if "k" not in _state:
            k: _Kernels | None = None
            if jit.get() is not None:
                try:
                    k = _compile()
                except Exception:  # a numba/numpy mismatch: the numpy code is exact too
                    k = None
            _state["k"] = k
        return _state["k"]


def lookup_period(table: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[k] = table[a[k].view(uint8) << 8 | b[k % p].view(uint8)]`` for int8 ``a`` and
    ``out`` of ``n`` elements (1-D, contiguous) and ``b`` of ``p`` elements, ``n`` a
    multiple of ``p`` (no checks): the ELTWISE of a ``b_period`` operand through its
    :func:`kernels.eltwise_table`."""
    k = _kernels()
    if k is not None:
        k.lookup_period(table, a, b, out)
        return
    p = b.shape[0]
    kernels.eltwise_lookup(table, a.reshape(-1, p), b.reshape(1, p), out.reshape(-1, p))


def global_avg_fields(kw: dict[str, Any]) -> tuple[int, np.float32, int] | None:
    """``(in_zp, scale, out_zp)`` of a POOL whose :func:`kernels.pool` keywords are ``kw``
    if it is a valid ``global_avg`` (its static fields pass :func:`kernels.pool`'s checks),
    else ``None`` (the caller then runs the general path, which reports what is wrong)."""
    if kw["mode"] != PoolMode.GLOBAL_AVG:
        return None
    try:
        kernels.pool(np.zeros((1, 1, 1), np.int8), **kw)
    except ValueError:
        return None
    return int(kw["in_zp"]), np.float32(float(kw["scale"])), int(kw["out_zp"])


def max_pool_fields(
    kw: dict[str, Any], shape: tuple[int, int, int]
) -> tuple[int, int, int, int, tuple[int, int, int, int], int, int] | None:
    """``(kh, kw, sh, sw, pads, out_h, out_w)`` of a POOL whose
    :func:`kernels.pool` keywords are ``kw``, on an int8 tile of ``shape``, if it is a valid
    ``max`` pooling (every check of :func:`kernels.pool` is static for it: none depends on
    the data), else ``None`` (the caller then runs the general path, which reports what
    is wrong)."""
    if kw["mode"] != PoolMode.MAX:
        return None
    try:
        out = kernels.pool(np.zeros(shape, np.int8), **kw)
    except ValueError:
        return None
    (kh, kwd), (sh, sw) = kw["kernel"], kw["stride"]
    t, b, lf, r = (int(v) for v in kw["pads"])
    return int(kh), int(kwd), int(sh), int(sw), (t, b, lf, r), out.shape[0], out.shape[1]


def max_pool(
    x: np.ndarray,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pads: tuple[int, int, int, int],
    oh: int,
    ow: int,
    out: np.ndarray,
) -> None:
    """POOL ``max`` of the int8 tile ``x [h][w][c]`` into int8 ``out`` (``oh * ow * c``
    elements) with fields validated by :func:`max_pool_fields`: the maximum of each
    window's in-bound elements (padding never wins: every window has one, and it is the
    ``-128`` padding's least value), exactly :func:`kernels.pool`."""
    o3 = out.reshape(oh, ow, x.shape[2])
    k = jit.get()  # the compiled kernel kernels.pool uses too
    if k is not None:
        k.pool_max(x, kh, kw, sh, sw, pads[0], pads[2], o3)
        return
    o3[...] = kernels.pool(x, mode=PoolMode.MAX, kernel=(kh, kw), stride=(sh, sw), pads=pads)


def global_avg(
    x: np.ndarray, in_zp: int, scale: np.float32, out_zp: int, out: np.ndarray, acc: np.ndarray
) -> None:
    """POOL ``global_avg`` of the int8 tile ``x [h][w][c]`` into int8 ``out [c]`` with
    fields validated by :func:`global_avg_fields` (``acc``: an int64 ``[c]`` scratch
    array), exactly :func:`kernels.pool`."""
    k = _kernels()
    if k is not None:
        k.global_avg(
            x, in_zp, scale, np.float32(-128 - out_zp), np.float32(127 - out_zp), out_zp, acc, out
        )
        return
    out[...] = kernels.pool(
        x, mode=PoolMode.GLOBAL_AVG, scale=float(scale), in_zp=in_zp, out_zp=out_zp
    ).reshape(-1)


def act_table_cols(table: np.ndarray, x: np.ndarray) -> None:
    """``x[...] = table[x + 128]`` in place for an int8 ``[rows][cols]`` block ``x`` (rows
    at any stride, columns contiguous) and an int8 ``table`` of 256 entries: the CONV
    ``TABLE`` activation (:func:`kernels.apply_act_table`) of a column block."""
    k = _kernels()
    if k is not None:
        k.act_table_2d(table, x)
        return
    np.take(table, x.view(np.uint8) ^ np.uint8(0x80), out=x)
