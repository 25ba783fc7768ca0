"""Epoch plans of pooling layers: an epoch of several cores whose steps are LOADs, POOLs
and SAVEs only, computed as a few whole-layer pooling calls straight from DDR.

Split over 16 cores a pooling layer is 16 tiles (often 16 channel slices of a few
channels each), each a LOAD, a POOL and a SAVE; run core after core
(:class:`vfpga.emulator.plan.SegmentPlan`) the per-pixel cost of the compiled pooling
loop is paid once per tile instead of once per layer, and the pending buffer writes of
the epoch plans before it (:class:`vfpga.emulator.epoch.Deferred`) must all be made
first. :func:`build` analyses the per-core plans of the epoch once (no data touched),
with the rules of :mod:`vfpga.emulator.epoch`:

* **What qualifies.** Every step is a LOAD, a SAVE or a POOL; every POOL reads an input
  tile that one LOAD wrote, exactly that range, in the POOL's shape, and has static fields
  the interpreter accepts (:func:`vfpga.emulator.kernels.pool` on a tile of zeros) with a
  compiled kernel for them (max, average, global average). Every SAVE stores exactly the
  output range one POOL wrote. No LOAD of the epoch reads a DDR byte a SAVE of the epoch
  writes. Anything else: no plan (``None``), the cores run their own.
* **Values.** POOLs of the same fields (mode, window, strides, padding, scales, zero
  points) over tiles of one spatial shape, LOADed with the same padding, form one
  *group*: pooling treats every channel alone, so their tiles side by side along the
  channels (gathered from DDR by :func:`vfpga.emulator.jit_cols.cols`, channel slices of
  one map as one box) give each tile's result in its channel block of one call of the
  very kernel the cores' plans call.
* **Effects.** As :class:`vfpga.emulator.epoch.EpochPlan`: the SAVEs in program order,
  the surviving buffer writes deferred, each core's counters, sequence numbers and
  tokens (:meth:`SegmentPlan.finish`). The one data-dependent fault (a NaN average, only
  with scales beyond ~1e36) is detected before anything is written: the plan returns
  False and the cores run their own plans, which fault at the interpreter's point.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from vfpga.emulator import jit, jit_cols, jit_elt, kernels
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
    _saved,
    _side_by_side,
    _Tile,
    _uniform,
    _Write,
    _writer,
)
from vfpga.emulator.plan import SegmentPlan
from vfpga.isa.spec import Buffer

__all__ = ["PoolEpochPlan", "build", "qualifies"]

_log = logging.getLogger(__name__)
_OPS = frozenset({"LOAD", "POOL", "SAVE"})


def qualifies(work: Sequence[tuple[Core, ExecContext, SegmentPlan]]) -> bool:
    """Whether the epoch has several cores, every step is a LOAD, SAVE or POOL and one is
    a POOL (the epochs :func:`build` is for; one core has nothing to merge)."""
    ops = {op for _, _, plan in work for op in plan.ops}
    return len(work) > 1 and "POOL" in ops and ops <= _OPS


@dataclass
class _Pool:
    """One POOL of the epoch: its input tile's LOAD box and channels, and where its
    result is (group, first channel)."""

    tile: _Tile
    c: int
    oh: int
    ow: int
    at: tuple[int, int] = (-1, 0)


@dataclass
class _PoolGroup:
    """POOLs of one kind over tiles of one shape, side by side along the channels."""

    fields: dict[str, Any]
    shape: tuple[int, int]  # in_h, in_w
    out: tuple[int, int]  # oh, ow
    pools: list[int] = field(default_factory=list)
    n: int = 0  # channels
    gather: tuple[np.ndarray, int] | None = None
    x: np.ndarray | None = None  # uint8 [in_h][in_w][n]
    res: np.ndarray | None = None  # int8 [oh][ow][n]
    step: Callable[[], str | None] | None = None


def _pool_call(kw: dict[str, Any], x: np.ndarray, out: np.ndarray) -> Callable[[], str | None]:
    """The compiled POOL of ``kw`` (:func:`vfpga.emulator.kernels.pool`'s keywords) from
    the int8 tile ``x`` into ``out``: a step returning None or the message of the NaN
    average the interpreter would report; :class:`_NoEpoch` if no compiled kernel takes
    the fields (as the cores' plans choose: global average, max, then the others)."""
    gavg = jit_elt.global_avg_fields(kw)
    if gavg is not None:
        acc = np.empty(x.shape[2], np.int64)
        return partial(_done, partial(jit_elt.global_avg, x, *gavg, out.reshape(-1), acc))
    mx = jit_elt.max_pool_fields(kw, x.shape)
    if mx is not None:
        return partial(_done, partial(jit_elt.max_pool, x, *mx, out.reshape(-1)))
    fast = kernels.pool_compiled(x, out, **kw)
    if fast is None:
        raise _NoEpoch
    return fast


def _done(fn: Callable[[], None]) -> None:
    """Run ``fn`` (a kernel without data-dependent errors): no error message."""
    fn()


class PoolEpochPlan(EpochPlan):
    """The fused execution of a pooling epoch (see the module docstring)."""

    def __init__(self, region: Region, pools: list[_Pool], groups: list[_PoolGroup]) -> None:
        self._bare(region)
        self.pools = pools
        self.pool_groups = groups

    def result(self, p: int) -> np.ndarray:
        """POOL ``p``'s int8 result ``[oh * ow][c]`` (a view of its group's)."""
        pl = self.pools[p]
        g, c0 = pl.at
        res = self.pool_groups[g].res
        assert res is not None
        return res.reshape(pl.oh * pl.ow, -1)[:, c0 : c0 + pl.c]

    def run(self, counters: Sequence[CoreCounters] | None) -> bool:
        """Run the epoch (as :meth:`EpochPlan.run`): False, having written nothing, if an
        average is NaN (the cores' plans then report it) or a call failed in a way the
        plan was not written for (then on every later run too)."""
        if self.declined:
            return False
        mem = self.region.view()
        try:
            for g in self.pool_groups:
                assert g.gather is not None and g.x is not None and g.step is not None
                if g.gather[1] > mem.size:
                    raise ValueError("a LOAD box beyond the region")
                jit_cols.cols(mem, g.x.reshape(-1), g.gather[0])
                if g.step() is not None:
                    return False
        except Exception:
            _log.debug("pooling epoch plan declined at run time", exc_info=True)
            self.declined = True
            return False
        self._effects(counters)
        return True


def build(work: Sequence[tuple[Core, ExecContext, SegmentPlan]]) -> PoolEpochPlan:
    """The pooling epoch plan of ``work`` (as :func:`vfpga.emulator.epoch.build_epoch`
    takes it), or raise :class:`vfpga.emulator.epoch._NoEpoch`."""
    if jit.get() is None or not jit_cols.available() or not work:
        raise _NoEpoch
    region = work[0][1].region
    writes: list[_Write | None] = [None]  # write ids start at 1
    pools: list[_Pool] = []
    kinds: list[tuple[object, ...]] = []
    fields_of: list[dict[str, Any]] = []
    loads: list[_Box] = []
    saves: list[tuple[int, tuple[int, int, int, int, int, int]]] = []  # (pool, DDR box)
    per_core: list[tuple[list[int], dict[Buffer, np.ndarray]]] = []
    for k, (core, ctx, plan) in enumerate(work):
        ver, mine, write = _writer(core, writes)
        for pos, (i, op) in enumerate(zip(plan.order, plan.ops, strict=True)):
            f = ctx.fields[i]
            if op == "LOAD":
                write(_load_write(k, pos, f, loads))
            elif op == "POOL":
                h, w_, c = f["in_h"], f["in_w"], f["c"]
                src = writes[_uniform(ver[Buffer.IBUF], f["in_addr"], h * w_ * c)]
                assert src is not None
                if (
                    src.box is None
                    or src.addr != f["in_addr"]
                    or src.nbytes != h * w_ * c
                    or src.box.shape != (h, w_, c)
                ):
                    raise _NoEpoch
                kw = kernels.pool_fields(f)
                try:  # static checks: what the interpreter rejects, it reports
                    oh, ow, _ = kernels.pool(np.zeros((h, w_, 1), np.int8), **kw).shape
                except ValueError:
                    raise _NoEpoch from None
                one = kernels.ConvGeometry(h, w_, c, c, 1, 1, 1, (1, 1), (0, 0, 0, 0), 0, h, w_, "")
                pools.append(_Pool(_Tile(((src.box, one),), h * w_), c, oh, ow))
                box = src.box
                kinds.append(
                    (tuple(sorted((a, str(v)) for a, v in kw.items())), h, w_, box.n0, box.n1,
                     box.pads, box.pad_value)
                )  # fmt: skip
                fields_of.append(kw)
                write(_Write(k, pos, Buffer.OBUF, f["out_addr"], oh * ow * c, unit=len(pools) - 1))
            elif op == "SAVE":
                saves.append(_saved(writes, ver[Buffer.OBUF], f))
            else:
                raise _NoEpoch
        per_core.append((mine, ver))
    if not pools or not _disjoint(loads, [sb for _, sb in saves]):
        raise _NoEpoch
    groups: list[_PoolGroup] = []
    by_kind: dict[tuple[object, ...], int] = {}
    for p, (pl, kind) in enumerate(zip(pools, kinds, strict=True)):
        gi = by_kind.get(kind)
        if gi is None:
            gi = by_kind[kind] = len(groups)
            geo = pl.tile.links[0][1]
            groups.append(_PoolGroup(fields_of[p], (geo.in_h, geo.in_w), (pl.oh, pl.ow)))
        g = groups[gi]
        pl.at = (gi, g.n)
        g.pools.append(p)
        g.n += pl.c
    for g in groups:
        g.gather = _side_by_side([pools[p].tile for p in g.pools], g.n)
        if g.gather is None:
            raise _NoEpoch
        g.x = np.empty((*g.shape, g.n), np.uint8)
        g.res = np.empty((*g.out, g.n), np.int8)
        g.step = _pool_call(g.fields, g.x.view(np.int8), g.res)
    ep = PoolEpochPlan(region, pools, groups)
    ep.saves = [_copy_step(region.box_view(*sb), ep.result(p)) for p, sb in saves]
    ep.saved = _merged([_extent(*sb) for _, sb in saves])
    ep.cores = _core_works(work, writes, per_core, ep.result)
    return ep
