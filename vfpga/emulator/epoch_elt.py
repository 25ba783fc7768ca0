"""Epoch plans of element-wise layers: an epoch whose steps are LOADs, ELTWISEs and SAVEs
only (an Add, Sub or Mul of two maps, the squeeze-excite gate's map times a per-channel
operand) as whole-layer table lookups straight from DDR.

Split over ``n`` cores such a layer is ``n`` tiles, each two LOADs, one ELTWISE and one
SAVE; run core after core (:class:`vfpga.emulator.plan.SegmentPlan`) that is ``4 n`` small
steps and ``n`` plan runs, and on 16 cores their per-step cost, not the arithmetic, is the
layer's time. :func:`build` analyses the per-core plans of the epoch once (no data
touched), with the rules of :mod:`vfpga.emulator.epoch`:

* **What qualifies.** Every step is a LOAD, a SAVE or an ELTWISE; every ELTWISE reads
  operands that one LOAD each wrote (any part of what it wrote), has valid static fields
  (the result table of :func:`vfpga.emulator.kernels.eltwise_table` exists: the
  interpreter would not fault) and, with ``b_period``, an ``n`` that is a multiple of it.
  Every SAVE stores exactly the output range one ELTWISE wrote. No LOAD of the epoch
  reads a DDR byte a SAVE of the epoch writes, so every operand is the DDR of the epoch's
  start whenever it is read. Anything else: no plan (``None``), the cores run their own.
* **Values.** ELTWISEs with one result table whose ``A`` operands lie back to back in DDR
  (and whose ``B`` operands do too, or are the same per-channel operand, each ``n`` a
  multiple of its period) form one *run*: one compiled lookup over the whole run
  (:func:`vfpga.emulator.jit_elt.lookup_period` or the ELTWISE table lookup of
  :mod:`vfpga.emulator.jit`), the very table the interpreter's ``kernels.eltwise``
  equals for every operand.
* **Effects.** As :class:`vfpga.emulator.epoch.EpochPlan`: the SAVEs in program order,
  then every buffer write of the epoch that is not entirely overwritten later in the
  epoch is redone in its core's order (the LOAD itself, or the ELTWISE's result copied
  into obuf), then each core's counters, sequence numbers and tokens
  (:meth:`SegmentPlan.finish`). ELTWISE has no data-dependent fault.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vfpga.emulator import jit, jit_elt, kernels
from vfpga.emulator.core import Core, CoreCounters, ExecContext
from vfpga.emulator.ddr import Region
from vfpga.emulator.epoch import (
    EpochPlan,
    _Box,
    _copy_step,
    _core_works,
    _disjoint,
    _extent,
    _load_write,
    _merged,
    _NoEpoch,
    _raw,
    _saved,
    _source,
    _Src,
    _Write,
    _writer,
)
from vfpga.emulator.plan import SegmentPlan
from vfpga.isa.spec import Buffer

__all__ = ["EltEpochPlan", "build", "qualifies"]

_log = logging.getLogger(__name__)
_OPS = frozenset({"LOAD", "SAVE", "ELTWISE"})


@dataclass
class _Elt:
    """One ELTWISE of the epoch: its operands' sources, sizes and result table; ``at``:
    its run (and 0), set by :func:`_runs`."""

    a_at: _Src
    b_at: _Src
    n: int
    period: int
    table: np.ndarray
    at: tuple[int, int] = (-1, 0)
    pos: tuple[int, int, int] = (0, 0, 0)  # its box's corner in its run's map


@dataclass
class _Run:
    """ELTWISEs computed by one lookup (see the module docstring, Values): the result of
    the ``n`` int8 of ``A`` at DDR offset ``a`` (or, for a lone ELTWISE whose operand is not
    contiguous, as its LOAD reads ``a_at``) and of ``B`` at ``b`` (``nb`` bytes; ``period``:
    ``B`` repeats every ``period`` elements, 0: ``nb == n``). A run of several tiles is the
    contiguous map ``[n / (w * c)][w][c]`` they cover."""

    n: int
    nb: int
    period: int
    table: np.ndarray
    a: int | None
    b: int | None
    a_at: _Src
    b_at: _Src
    w: int = 0  # the map's width and channels (0: a lone ELTWISE, results ``[n]``)
    c: int = 0


def qualifies(work: Sequence[tuple[Core, ExecContext, SegmentPlan]]) -> bool:
    """Whether the epoch has several cores, every step is a LOAD, SAVE or ELTWISE and one
    is an ELTWISE (the epochs :func:`build` is for)."""
    ops = {op for _, _, plan in work for op in plan.ops}
    # on one core the cores' own plans are as fast (nothing to merge; docs/runtime.md)
    return len(work) > 1 and "ELTWISE" in ops and ops <= _OPS


class EltEpochPlan(EpochPlan):
    """The fused execution of an element-wise epoch (see the module docstring)."""

    def __init__(self, region: Region, elts: list[_Elt], runs: list[_Run]) -> None:
        self._bare(region)
        self.elts = elts
        self.runs = runs
        self._res = [np.empty(r.n, np.int8) for r in runs]

    def result(self, e: int) -> np.ndarray:
        """ELTWISE ``e``'s int8 result: its run's, or its box ``[n0][n1][n2]`` of the
        run's map."""
        el = self.elts[e]
        run = self.runs[el.at[0]]
        res = self._res[el.at[0]]
        if not run.w:
            return res
        box = el.a_at[0]
        y, x, c = el.pos
        return res.reshape(-1, run.w, run.c)[y : y + box.n0, x : x + box.n1, c : c + box.n2]

    @staticmethod
    def _lookup(r: _Run, mem: np.ndarray, res: np.ndarray) -> None:
        """Run ``r``'s results into ``res`` from the DDR ``mem``."""
        a = _raw(mem, r.a_at, r.n) if r.a is None else mem[r.a : r.a + r.n]
        b = _raw(mem, r.b_at, r.nb) if r.b is None else mem[r.b : r.b + r.nb]
        a, b = a.view(np.int8), b.view(np.int8)
        if r.period:
            jit_elt.lookup_period(r.table, a, b, res)
        else:
            kernels.eltwise_lookup(r.table, a, b, res)

    def run(self, counters: Sequence[CoreCounters] | None) -> bool:
        """Run the epoch (as :meth:`EpochPlan.run`; False, having written nothing, if a
        lookup failed in a way the plan was not written for: the cores' plans decide)."""
        if self.declined:
            return False
        mem = self.region.view()  # reads only: not counted as a hand-out
        try:
            for r, res in zip(self.runs, self._res, strict=True):
                self._lookup(r, mem, res)
        except Exception:
            _log.debug("element-wise epoch plan declined at run time", exc_info=True)
            self.declined = True
            return False
        self._effects(counters)
        return True


def build(work: Sequence[tuple[Core, ExecContext, SegmentPlan]]) -> EltEpochPlan:
    """The element-wise epoch plan of ``work`` (as :func:`vfpga.emulator.epoch.build_epoch`
    takes it), or raise :class:`vfpga.emulator.epoch._NoEpoch`."""
    if jit.get() is None or not work:
        raise _NoEpoch
    region = work[0][1].region
    writes: list[_Write | None] = [None]  # write ids start at 1
    elts: list[_Elt] = []
    loads: list[_Box] = []
    saves: list[tuple[int, tuple[int, int, int, int, int, int]]] = []  # (elt, DDR box)
    per_core: list[tuple[list[int], dict[Buffer, np.ndarray]]] = []
    for k, (core, ctx, plan) in enumerate(work):
        ver, mine, write = _writer(core, writes)
        for pos, (i, op) in enumerate(zip(plan.order, plan.ops, strict=True)):
            f = ctx.fields[i]
            if op == "LOAD":
                write(_load_write(k, pos, f, loads))
            elif op == "ELTWISE":
                n, period = f["n"], f["b_period"]
                if period and n % period:
                    raise _NoEpoch  # the interpreter faults: let it
                fields = kernels.eltwise_fields(f)
                del fields["b_period"]
                try:
                    table = kernels.eltwise_table(**fields)
                except ValueError:
                    raise _NoEpoch from None
                a_at = _source(writes, ver[Buffer.IBUF], f["a_addr"], n)
                b_at = _source(writes, ver[Buffer.IBUF], f["b_addr"], period or n)
                elts.append(_Elt(a_at, b_at, n, period, table))
                write(_Write(k, pos, Buffer.OBUF, f["out_addr"], n, unit=len(elts) - 1))
            elif op == "SAVE":
                saves.append(_saved(writes, ver[Buffer.OBUF], f))
            else:
                raise _NoEpoch
        per_core.append((mine, ver))
    if not _disjoint(loads, [sb for _, sb in saves]):
        raise _NoEpoch
    ep = EltEpochPlan(region, elts, _runs(elts))
    ep.saves = [_copy_step(region.box_view(*sb), ep.result(e)) for e, sb in saves]
    ep.saved = _merged([_extent(*sb) for _, sb in saves])
    ep.cores = _core_works(work, writes, per_core, ep.result)
    return ep


def _runs(elts: list[_Elt]) -> list[_Run]:
    """The lookups of ``elts`` (see the module docstring, Values); sets each
    :attr:`_Elt.at` and :attr:`_Elt.pos`. Consecutive ELTWISEs with one result table whose
    ``A`` operands are whole unpadded LOAD boxes with the same strides form a candidate:
    if their boxes tile one contiguous map ``[h][w][c]`` of DDR exactly (the layer split
    along its height, width or channels), and their ``B`` operands tile the same map of
    other bytes (or, with ``b_period`` equal to the box's channels, the map's per-channel
    operand), they are one lookup over the map; otherwise each is its own."""
    runs: list[_Run] = []
    k = 0
    while k < len(elts):
        j = k + 1
        while j < len(elts) and _similar(elts[k], elts[j]):
            j += 1
        cand = elts[k:j]
        run = _map_run(cand) if len(cand) > 1 else None
        if run is not None:
            for e in cand:
                e.at = (len(runs), 0)
            runs.append(run)
        else:
            for e in cand:
                e.at = (len(runs), 0)
                a, b = e.a_at[0].flat(), e.b_at[0].flat()
                runs.append(
                    _Run(
                        e.n,
                        e.period or e.n,
                        e.period,
                        e.table,
                        None if a is None else a + e.a_at[1],
                        None if b is None else b + e.b_at[1],
                        e.a_at,
                        e.b_at,
                    )
                )
        k = j
    return runs


def _whole(src: _Src, n: int) -> bool:
    """Whether ``src`` is a whole unpadded LOAD box of ``n`` bytes."""
    box, off = src
    return off == 0 and not any(box.pads) and box.n0 * box.n1 * box.n2 == n


def _similar(e: _Elt, f: _Elt) -> bool:
    """Whether ``f`` may join ``e`` in a map run (checked as a whole by :func:`_map_run`)."""
    a, b = e.a_at[0], f.a_at[0]
    return (
        e.table is f.table
        and bool(e.period) == bool(f.period)
        and (a.s0, a.s1) == (b.s0, b.s1)
        and _whole(e.a_at, e.n)
        and _whole(f.a_at, f.n)
    )


def _map_run(cand: list[_Elt]) -> _Run | None:
    """The run of ``cand`` over the map their ``A`` boxes tile (see :func:`_runs`), or
    None."""
    s0, s1 = cand[0].a_at[0].s0, cand[0].a_at[0].s1
    lo = min(e.a_at[0].ddr for e in cand)
    n = sum(e.n for e in cand)
    if s1 < 1 or s0 % s1 or n % s0:
        return None
    w, c = s0 // s1, s1
    cover = np.zeros(n, np.int32)
    for e in cand:
        box = e.a_at[0]
        rel = box.ddr - lo
        y, x, ch = rel // s0, rel % s0 // s1, rel % s1
        if x + box.n1 > w or ch + box.n2 > c or (y + box.n0) * s0 > n:
            return None
        e.pos = (y, x, ch)
        cover.reshape(-1, w, c)[y : y + box.n0, x : x + box.n1, ch : ch + box.n2] += 1
    if not bool((cover == 1).all()):
        return None  # gaps or overlaps: not one map
    e0 = cand[0]
    if e0.period:  # the per-channel operand: the box's channels of one [c] vector
        b = _flat_at(e0.b_at) - e0.pos[2]
        for e in cand:
            if e.period != e.a_at[0].n2 or _flat_at(e.b_at) != b + e.pos[2]:
                return None
        return _Run(n, c, c, e0.table, lo, b, e0.a_at, e0.b_at, w, c)
    b = e0.b_at[0].ddr - (e0.a_at[0].ddr - lo)
    for e in cand:
        ba, bb = e.a_at[0], e.b_at[0]
        if not _whole(e.b_at, e.n) or (bb.n0, bb.n1, bb.n2, bb.s0, bb.s1) != (
            ba.n0,
            ba.n1,
            ba.n2,
            ba.s0,
            ba.s1,
        ):
            return None
        if bb.ddr - b != ba.ddr - lo:
            return None
    return _Run(n, n, 0, e0.table, lo, b, e0.a_at, e0.b_at, w, c)


def _flat_at(src: _Src) -> int:
    """The DDR offset of the contiguous bytes of ``src`` (a large negative number if they
    are not: no run matches it)."""
    at = src[0].flat()
    return -(1 << 62) if at is None else at + src[1]
