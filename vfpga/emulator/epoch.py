"""Epoch plans: one barrier epoch of a task, over all its cores, as whole-layer products.

A task's cores run a layer in parallel, each on its own buffers: split along the width,
every core multiplies its own input tiles by the same weights; split along the output
channels, every core loads the *same* input tiles and multiplies them by its own slice of
the weights. Run core after core (:class:`vfpga.emulator.plan.SegmentPlan`), that is one
im2col build and one integer product per tile per core: on 16 cores 4x more, smaller calls
than on 1 core for the same layer, and 16 copies of the same input and the same im2col.

:func:`build_epoch` analyses the per-core plans of one epoch once (no data touched) and,
where the analysis below proves it exact, replaces them by an :class:`EpochPlan` that
computes every distinct product of the epoch once, in as few calls as possible:

* **What qualifies.** Every step of every core is a LOAD, a SAVE, or a CONV on the
  ``"int8"`` path with one group and any activation, a table too (its output stage compiled,
  :mod:`vfpga.emulator.jit`). Every CONV reads an input tile written, exactly that range,
  by one LOAD, and weights and parameter records that one LOAD each wrote from contiguous
  DDR bytes. Partial sums (``acc_out``, ``acc_in``) form *chains* ``c_1 .. c_n`` over one
  abuf range, each link reading exactly the range the previous one wrote, the last one
  requantizing (as :class:`vfpga.emulator.plan._Chain`). Every SAVE stores exactly the
  output range one CONV wrote. No LOAD of the epoch reads a DDR byte that a SAVE of the epoch
  writes, so every LOAD sees the DDR of the epoch's start whenever it runs, and a CONV's
  result is a function of that DDR alone. Anything else: no epoch plan (``None``), and the
  cores run their own plans, as before.
* **Values.** A chain (a lone CONV is a chain of one) is named by the inputs of its links
  (the LOADs' DDR boxes, padding and geometry), their weights (DDR ranges), the
  parameters of its first link (the biases) and of its last (scales, divisors),
  activation bounds and output zero point. Equal names are the same computation, done
  once whichever cores and tiles repeat it.
* **Products.** The input tiles whose chains use the same ordered list of (weights,
  parameters) form one *group*: their uint8 im2col matrices are stacked along the rows
  (built straight from DDR; a chain's links side by side), the weights side by side along
  the columns, and one exact product ``[sum m][K] x [K][sum N]`` (int32 modulo ``2**32``,
  the same sums as one product per tile: integer addition is associative) feeds one
  compiled output stage per run of equal bounds and zero point. A chain of ``n > 1``
  links takes two products, links ``1 .. n-1`` and link ``n``: the first gives the
  partial sums abuf holds before ``c_n``, as the interpreter leaves them.
* **Effects.** The SAVEs store their CONV's block of the result in program order (core
  after core, as the task runs them). Every buffer write of the epoch that is not
  entirely overwritten later in the epoch (the last LOAD of a buffer range, the last
  output tile of an obuf range) is redone, in its core's order, so every buffer ends
  with the interpreter's bytes. The task makes these writes later (:meth:`EpochPlan.run`):
  when the next epoch also runs as an epoch plan, just before that one's SAVEs, skipping
  those its own surviving writes on the same core entirely overwrite (on 16 cores a
  layer's tiles mostly overwrite the previous layer's); otherwise before anything else
  touches the cores' buffers or the task's DDR (the cores' own plans, host ops, barrier
  hooks, the end or fault of the run, a restart, reload or context switch). Counters,
  sequence numbers and tokens are each core's plan's (:meth:`SegmentPlan.finish`), MACs
  those of every CONV instruction.
* **Faults.** The only data-dependent fault of these steps is an invalid parameter record
  (non-finite scale or divisor, zero divisor). :meth:`EpochPlan.run` validates every
  parameter record before it writes anything and, on an invalid one, returns ``False``:
  the cores then run their own plans, which fault at the interpreter's point with its
  side effects.

Prepared (stacked) weights are kept between runs while the DDR bytes they came from are
exactly the same, within the accelerator's :class:`~vfpga.emulator.plan.PreparedBudget`;
so are the unpacked parameter records. They are compared with DDR on every run, unless
no SAVE instruction of the loaded program and no tensor of its memory map can reach their
DDR bytes (:func:`save_extents`, decided once per group) and nobody took the region's
bytes since the last comparison (:attr:`vfpga.emulator.ddr.Region.handed_out`): then
nothing can have written them, and the comparison is skipped.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vfpga.emulator import int_matmul, jit, jit_cols, jit_elt, kernels
from vfpga.emulator.core import Core, CoreCounters, ExecContext
from vfpga.emulator.ddr import Region
from vfpga.emulator.plan import (
    PreparedBudget,
    SegmentPlan,
    _ConvStep,
    _load_step,
    _row_views,
    outside,
)
from vfpga.isa.codec import Program
from vfpga.isa.spec import ACT_TABLE_BYTES, PARAM_RECORD_BYTES, Buffer, Opcode

#: The most bytes of DDR the build-time disjointness test of LOADs and SAVEs marks at
#: once; an epoch whose LOAD and SAVE boxes interleave over a wider span gets no plan.
_MASK_MAX = 256 << 20
#: The most bytes of uint8 im2col rows one product of an epoch plan stacks; a group over
#: it is cut into several products (rows of whole tiles).
_COLS_MAX = 32 << 20

_log = logging.getLogger(__name__)


class _NoEpoch(Exception):
    """The epoch does not qualify: its cores run their own plans."""


@dataclass(frozen=True)
class _Box:
    """A LOAD's source: a DDR box (region-relative) and the padding around it."""

    ddr: int
    n0: int
    n1: int
    n2: int
    s0: int
    s1: int
    pads: tuple[int, int, int, int]
    pad_value: int  # uint8

    @property
    def shape(self) -> tuple[int, int, int]:
        t, b, lf, r = self.pads
        return (t + self.n0 + b, lf + self.n1 + r, self.n2)

    def flat(self) -> int | None:
        """The DDR offset of the box's bytes if they are contiguous and unpadded, in the
        order the LOAD writes them (else ``None``)."""
        if any(self.pads):
            return None
        if self.n1 > 1 and self.s1 != self.n2:
            return None
        if self.n0 > 1 and self.s0 != self.n1 * self.n2:
            return None
        return self.ddr


@dataclass
class _Write:
    """A write to one core's buffer range during the epoch: a LOAD (``box``), a CONV's
    output tile (``unit``, with ``partial`` the partial sums of a chain's links so far:
    (links, weights, first parameters), else ``None``); ``pos`` is the step's index in
    its core's plan."""

    core: int  # index of the core in the epoch
    pos: int
    buf: Buffer
    addr: int
    nbytes: int
    box: _Box | None = None
    unit: int = -1
    partial: tuple[tuple[_Link, ...], tuple[_Src, ...], _Src] | None = None


#: one link's input: the LOAD's box and the CONV's geometry
_Link = tuple[_Box, kernels.ConvGeometry]
#: where a CONV's weights or parameter records come from: the LOAD that wrote them and
#: their offset in what it wrote
_Src = tuple[_Box, int]


@dataclass
class _Unit:
    """One distinct chain of the epoch (see the module docstring, Values)."""

    links: tuple[_Link, ...]
    ws: tuple[_Src, ...]  # each link's weights ([out_c][kh][kw][in_c], int8)
    p1_at: _Src  # the first link's parameter records (the biases)
    pn_at: _Src  # the last link's parameter records (scales, divisors)
    bounds: tuple[int, int]
    zp: int
    #: where the result is, set by :func:`_groups`: (group, row offset, column offset)
    at: tuple[int, int, int] = (-1, 0, 0)
    #: the last link's activation table (``act = table``), else None
    table_at: _Src | None = None

    @property
    def geo(self) -> kernels.ConvGeometry:
        return self.links[-1][1]


@dataclass(frozen=True)
class _Block:
    """A column block of a group's product: one chain's weights and parameters of ``n``
    channels."""

    ws: tuple[_Src, ...]
    p1_at: _Src
    pn_at: _Src
    n: int
    bounds: tuple[int, int]
    zp: int
    table_at: _Src | None = None  # the activation table (``act = table``)


@dataclass
class _Tile:
    """A row block of a group's product: one input tile per link."""

    links: tuple[_Link, ...]
    rows: int


@dataclass
class _Group:
    """One product of the epoch (two for chains): stacked tiles x side-by-side blocks,
    see :func:`_groups`. ``ks`` are the links' reduction lengths."""

    ks: tuple[int, ...]
    tiles: list[_Tile]
    blocks: list[_Block]
    #: stacked int8 weights kept between runs ([K_head][N] or None, [K_last][N]), and the
    #: DDR bytes they came from
    weights: tuple[np.ndarray | None, np.ndarray] | None = None
    key: list[np.ndarray] = field(default_factory=list)
    #: the DDR spans ``key`` holds (see :func:`_spans`; None: one key per source)
    spans: list[tuple[int, int]] | None = None
    retain: bool = True
    budgeted: bool = False
    #: the parameter records' bytes and what :meth:`EpochPlan._params` made of them
    params: tuple[bytes, tuple[np.ndarray, np.ndarray, np.ndarray | None]] | None = None
    #: whether no SAVE of the program can write the DDR bytes the weights / parameters
    #: come from (None: not decided yet), and the region's :attr:`Region.handed_out`
    #: when they were last known to equal :attr:`key` / ``params[0]`` (see
    #: :meth:`EpochPlan._unchanged`)
    w_fixed: bool | None = None
    w_gen: int = -1
    p_fixed: bool | None = None
    p_gen: int = -1
    #: per (first link, links): the parameter rows of :func:`vfpga.emulator.jit_cols.cols`
    #: for the tiles' im2col and the DDR bytes they need (None: built with numpy)
    cols_params: dict[tuple[int, int], tuple[np.ndarray, int] | None] = field(
        default_factory=dict
    )

    #: (m, n, depthwise, column runs) once the group is complete (:meth:`freeze`)
    frozen: tuple[int, int, bool, list[tuple[int, tuple[int, int], int]]] | None = field(
        default=None, repr=False
    )

    @property
    def m(self) -> int:
        if self.frozen is not None:
            return self.frozen[0]
        if self.depthwise:  # the tiles side by side along the channels
            return self.tiles[0].rows
        return sum(t.rows for t in self.tiles)

    @property
    def depthwise(self) -> bool:
        """Depthwise CONVs of one spatial geometry: tile ``j`` is column block ``j`` (its
        channels side by side with the other tiles'), one compiled depthwise call."""
        if self.frozen is not None:
            return self.frozen[2]
        return bool(self.tiles) and self.tiles[0].links[0][1].path == "int8-depthwise"

    @property
    def n(self) -> int:
        if self.frozen is not None:
            return self.frozen[1]
        return sum(b.n for b in self.blocks)

    @property
    def runs(self) -> list[tuple[int, tuple[int, int], int]]:
        """:func:`_runs` of the blocks."""
        if self.frozen is not None:
            return self.frozen[3]
        return _runs(self.blocks)

    def freeze(self) -> None:
        """Keep :attr:`m`, :attr:`n`, :attr:`depthwise` and :attr:`runs`, computed once
        (they depend on the tiles and blocks only, which a built group never changes)."""
        self.frozen = None
        self.frozen = (self.m, self.n, self.depthwise, self.runs)


def _box_of(f: dict[str, int]) -> _Box:
    return _Box(
        f["ddr"],
        f["n0"],
        f["n1"],
        f["n2"],
        f["stride0"],
        f["stride1"],
        (f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"]),
        f["pad_value"] & 0xFF,
    )


def _extent(ddr: int, n0: int, n1: int, n2: int, s0: int, s1: int) -> tuple[int, int]:
    """The byte range ``[lo, hi)`` a DDR box spans (empty for an empty box)."""
    if not (n0 and n1 and n2):
        return ddr, ddr
    return ddr, ddr + (n0 - 1) * s0 + (n1 - 1) * s1 + n2


def _box_extent(box: _Box) -> tuple[int, int]:
    """The byte range ``[lo, hi)`` of DDR the LOAD ``box`` reads."""
    return _extent(box.ddr, box.n0, box.n1, box.n2, box.s0, box.s1)


def _strided(mem: np.ndarray, ddr: int, n0: int, n1: int, n2: int, s0: int, s1: int) -> np.ndarray:
    """The ``(n0, n1, n2)`` box at byte ``ddr`` of the contiguous array ``mem`` (the
    caller has checked its extent)."""
    return _at(mem, ddr, (n0, n1, n2), (s0, s1, 1))


def _at(
    base: np.ndarray, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]
) -> np.ndarray:
    """A writeable view of the contiguous array ``base`` (1-byte items) at byte
    ``offset`` (about 20 times cheaper than ``as_strided``)."""
    return np.ndarray(shape, base.dtype, buffer=base, offset=offset, strides=strides)


def _disjoint(loads: list[_Box], saves: list[tuple[int, int, int, int, int, int]]) -> bool:
    """Whether no byte a LOAD box reads is written by a SAVE box (region offsets)."""

    if not loads or not saves:
        return True
    sx = [_extent(*s) for s in saves]
    lx = [_box_extent(b) for b in loads]
    s_lo, s_hi = min(a for a, _ in sx), max(b for _, b in sx)
    near = [
        (b, e)
        for b, e in zip(loads, lx, strict=True)
        if e[0] < s_hi and s_lo < e[1] and e[0] < e[1]
    ]
    if not near:
        return True
    base = min(s_lo, min(e[0] for _, e in near))
    span = max(s_hi, max(e[1] for _, e in near)) - base
    if span > _MASK_MAX:
        return False
    mask = np.zeros(span, np.bool_)
    for s in saves:
        ddr, n0, n1, n2, s0, s1 = s
        if n0 and n1 and n2:
            _strided(mask, ddr - base, n0, n1, n2, s0, s1)[...] = True
    for b, _ in near:
        if bool(_strided(mask, b.ddr - base, b.n0, b.n1, b.n2, b.s0, b.s1).any()):
            return False
    return True


def _uniform(ver: np.ndarray, addr: int, nbytes: int) -> int:
    """The one write id of all bytes ``[addr, addr + nbytes)``, or raise :class:`_NoEpoch`."""
    v = ver[addr : addr + nbytes]
    if not nbytes:
        raise _NoEpoch
    w = int(v[0])
    if w == 0 or int(v.min()) != w or int(v.max()) != w:
        raise _NoEpoch
    return w


@dataclass
class _CoreWork:
    """One core's part of an epoch plan."""

    core: Core
    plan: SegmentPlan
    macs: int
    #: the surviving buffer writes of the core, in its order (see the module docstring)
    redo: list[Callable[[], None]]
    #: the (buffer, address, bytes) each step of :attr:`redo` writes
    spans: list[tuple[Buffer, int, int]] = field(default_factory=list)
    #: per step of :attr:`redo`: the DDR byte range ``[lo, hi)`` (region offset) it reads
    #: if it is a LOAD, else None (the list None: not recorded; then every step is taken
    #: to read all of DDR, see :class:`Deferred`)
    reads: list[tuple[int, int] | None] | None = None
    #: per step of :attr:`redo`: the LOAD's box if it is a LOAD (None: not recorded)
    boxes: list[_Box | None] | None = None


class EpochPlan:
    """The fused execution of one epoch of a task (see the module docstring)."""

    # defaults for subclasses that set their own fields (see :meth:`run_after`)
    save_ext: tuple[np.ndarray, np.ndarray] | None = None
    #: the DDR byte ranges this epoch's SAVEs write, merged (None: not recorded; then
    #: every deferred write is made before them, see :class:`Deferred`)
    saved: tuple[np.ndarray, np.ndarray] | None = None
    _prev: Deferred | None = None
    _chain: Deferred | None = None
    #: during :meth:`run_after`: what the epochs after this one write (see
    #: :meth:`Deferred.then`), None: not known
    _future: Covers | None = None
    _alone: Deferred | None = None
    #: the surviving writes as pending writes (see :func:`_pending_of`)
    _pending: list[_Pending] | None = None

    def __init__(
        self,
        region: Region,
        units: list[_Unit],
        groups: list[_Group],
        budget: PreparedBudget | None,
        saves: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.region = region
        #: the DDR ranges any SAVE of the loaded program may write (see
        #: :func:`save_extents`; None: unknown, prepared values are always compared)
        self.save_ext = saves
        self.cores: list[_CoreWork] = []
        self.units = units
        self.groups = groups
        for g in groups:
            g.freeze()
        #: the SAVEs: copies of result blocks to DDR, in program order or, when no two
        #: SAVEs of the epoch overlap, merged where adjacent (see :func:`_save_steps`)
        self.saves: list[Callable[[], None]] = []
        self.budget = budget
        #: set when computing the products raised: the cores run their own plans
        self.declined = False
        jk = jit.get()
        assert jk is not None
        self._jit = jk
        self._mm = int_matmul.require()
        #: per group: the int8 outputs and the chains' partial sums (int32), [M][N]
        self._out = [np.empty((g.m, g.n), np.int8) for g in groups]
        self._acc = [np.empty((g.m, g.n), np.int32) if len(g.ks) > 1 else None for g in groups]
        #: the deferred writes before this plan during :meth:`run_after`, then those
        #: with this plan's
        self._prev = None
        self._chain = None

    def _bare(self, region: Region) -> None:
        """Set the fields of a plan without products or parameters of its own (the
        element-wise and pooling epochs compute their results their own way)."""
        self.region = region
        self.cores = []
        self.units = []
        self.groups = []
        self.saves = []
        self.budget = None
        self.declined = False

    # ------------------------------------------------------------------ run
    def run_after(
        self,
        counters: Sequence[CoreCounters] | None,
        prev: Deferred | None,
        future: Covers | None = None,
    ) -> Deferred | None:
        """:meth:`run` the epoch after the epoch plans ``prev`` (none of them this one)
        whose surviving buffer writes are not made yet (None: none). Returns the
        deferred writes after this epoch (``prev``'s and this one's, see
        :class:`Deferred`), or None if the epoch declined to run (then ``prev``'s writes
        are not made, nor this one's). The caller makes the returned writes
        (:meth:`Deferred.flush`) before anything else reads or writes the cores' buffers or
        the task's DDR, or passes them as ``prev`` to the next epoch plan."""
        self._prev, self._chain, self._future = prev, None, future
        try:
            ok = self.run(counters)
        finally:
            left, chain = self._prev, self._chain
            self._prev = self._chain = self._future = None
        if ok and chain is None:  # a subclass whose run skips _effects: a bug
            raise RuntimeError(f"{type(self).__name__}.run did not call _effects")
        del left
        return chain if ok else None

    def run(self, counters: Sequence[CoreCounters] | None) -> bool:
        """Run the epoch; ``counters[k]`` is the counters object of the epoch's core ``k``
        (its counts are added there, and its cores' sequence numbers and tokens set;
        ``None``: the caller does that bookkeeping, see :mod:`vfpga.emulator.ledger`).
        Returns False, having written nothing, if a parameter record is invalid (the
        cores must then run their own plans, which report it), or if computing the
        products failed in a way the plan was not written for (then it declines on
        every later run too). The surviving buffer
        writes are not made (see :meth:`run_after`)."""
        if self.declined:
            return False
        mem = self.region.view()
        self._gen = self.region.handed_out
        try:
            params = [self._params(g, mem) for g in self.groups]
        except ValueError:
            return False
        try:  # nothing outside the plan's own arrays is written before the SAVEs
            for g, prm, out, acc in zip(self.groups, params, self._out, self._acc, strict=True):
                self._product(g, mem, *prm, out, acc)
        except Exception:  # a case the plan was not written for: the cores' plans decide
            _log.debug("epoch plan declined at run time", exc_info=True)
            self.declined = True
            return False
        self._effects(counters)
        return True

    def _effects(self, counters: Sequence[CoreCounters] | None) -> None:
        """After the products: the deferred writes that must precede this epoch's SAVEs
        (see :meth:`Deferred.then`), the SAVEs, then, unless ``counters`` is None, each
        core's counters, sequence numbers and tokens (see the module docstring,
        Effects)."""
        prev, self._prev = self._prev, None
        if prev is None:
            self._chain = self.alone()
        else:
            steps, self._chain = prev.then(self, self._future)
            for step in steps:
                step()
        for save in self.saves:
            save()
        if counters is None:
            return
        for cw, cnt in zip(self.cores, counters, strict=True):
            cw.plan.finish(cw.core, cnt)
            cnt.macs += cw.macs

    def alone(self) -> Deferred:
        """The deferred writes of this epoch alone (built once)."""
        if self._alone is None:
            self._alone = Deferred(frozenset({id(self)}), _pending_of(self))
        return self._alone

    def redo(self) -> None:
        """Make every buffer write that survives the epoch, core after core (each in its
        order), as the interpreter leaves the buffers (see the module docstring)."""
        for cw in self.cores:
            for step in cw.redo:
                step()

    def _block(self, results: list[np.ndarray] | list[np.ndarray | None], unit: int) -> np.ndarray:
        """Unit ``unit``'s ``[rows][out_c]`` block of its group's ``results``."""
        u = self.units[unit]
        g, r0, c0 = u.at
        res = results[g]
        assert res is not None
        return res[r0 : r0 + u.geo.oh * u.geo.ow, c0 : c0 + u.geo.out_c]

    def copy_step(
        self, unit: int, dst: np.ndarray, partial_sums: bool = False
    ) -> Callable[[], None]:
        """A step copying unit ``unit``'s result block (its partial sums with
        ``partial_sums``) into ``dst`` (a buffer view of the block's size, or a DDR box)."""
        src = self._block(self._acc if partial_sums else self._out, unit)
        return _copy_step(dst, src)

    def _params(
        self, g: _Group, mem: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(bias, scale, divisor or None) of the group's columns: biases from each chain's
        first link, scales and divisors (validated: ValueError) from its last; reused
        while their DDR bytes are the same."""
        if g.params is not None and g.p_fixed and g.p_gen == self._gen:
            return g.params[1]
        srcs = [
            (src, b.n * PARAM_RECORD_BYTES)
            for b in g.blocks
            for src in ((b.pn_at,) if b.p1_at == b.pn_at else (b.pn_at, b.p1_at))
        ]
        key = b"".join(_raw(mem, src, n).tobytes() for src, n in srcs)
        if g.params is not None and g.params[0] == key:
            g.p_gen = self._gen
            return g.params[1]
        g.params = None
        value = self._unpack(g, mem)
        g.params = (key, value)
        g.p_gen = self._gen
        if g.p_fixed is None:
            g.p_fixed = self._unreachable(srcs)
        return value

    def _unreachable(self, srcs: list[tuple[_Src, int]]) -> bool:
        """Whether no SAVE of the loaded program can write a DDR byte the sources ``srcs``
        (with their lengths) read. Then their bytes change only through the region's
        :attr:`~vfpga.emulator.ddr.Region.mem` (counted in ``handed_out``), and a value
        made from them stays valid while that count does (:meth:`_weights`,
        :meth:`_params` skip comparing the bytes again)."""
        if self.save_ext is None:
            return False
        for (box, off), n in srcs:
            at = box.flat()
            if at is not None:
                a, b = at + off, at + off + n
            elif box.n0 and box.n1 and box.n2:
                a = box.ddr
                b = box.ddr + (box.n0 - 1) * box.s0 + (box.n1 - 1) * box.s1 + box.n2
            else:
                continue
            if not outside(self.save_ext, a, b):
                return False
        return True

    def _unpack(
        self, g: _Group, mem: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        bs, ss, ds = [], [], []
        any_div = False
        for b in g.blocks:
            nb = b.n * PARAM_RECORD_BYTES
            bias, scale, divisor = kernels.conv_params(
                _raw(mem, b.pn_at, nb), out_c=b.n, validate=True
            )
            if b.p1_at != b.pn_at:
                bias = kernels.conv_params(_raw(mem, b.p1_at, nb), b.n, False)[0]
            bs.append(bias)
            ss.append(scale)
            ds.append(divisor)
            any_div = any_div or divisor is not None
        if len(g.blocks) == 1:
            return bs[0], ss[0], ds[0]
        div = None
        if any_div:
            div = np.concatenate(
                [
                    np.ones(b.n, np.float32) if d is None else d
                    for b, d in zip(g.blocks, ds, strict=True)
                ]
            )
        return np.concatenate(bs), np.concatenate(ss), div

    def _weights(self, g: _Group, mem: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """The group's stacked int8 weights: links ``1 .. n-1`` ``[K_head][N]`` (None for
        lone CONVs) and link ``n`` ``[K_n][N]``; reused while the DDR bytes they came from
        are the same: compared span by span (:func:`_spans`: one contiguous comparison
        instead of gathering the short rows of chunked weights), else source by source."""
        if g.weights is not None and g.w_fixed and g.w_gen == self._gen:
            return g.weights
        srcs = [(at, b.n * k) for b in g.blocks for at, k in zip(b.ws, g.ks, strict=True)]
        if g.weights is not None:
            same = partial(_same, self._jit)
            if g.spans is not None:
                if all(same(mem[lo:hi], k) for (lo, hi), k in zip(g.spans, g.key, strict=True)):
                    g.w_gen = self._gen
                    return g.weights
            elif all(same(_raw(mem, at, n), k) for (at, n), k in zip(srcs, g.key, strict=True)):
                g.w_gen = self._gen
                return g.weights
        g.weights = None
        raws = [_raw(mem, at, n) for at, n in srcs]
        nl = len(g.ks)
        # each source ([n][K_link], int8) copied once, transposed, into its place: chunked
        # weights (a chain of many links) stack 7-10x faster than by concatenations
        last = np.empty((g.ks[-1], g.n), np.int32 if g.depthwise else np.int8)
        head = np.empty((sum(g.ks[:-1]), g.n), np.int8) if nl > 1 else None
        c0 = 0
        for j, b in enumerate(g.blocks):
            k0 = 0
            for li, r in enumerate(raws[j * nl : (j + 1) * nl]):
                mat = r.view(np.int8).reshape(b.n, -1).T
                if li == nl - 1:
                    last[:, c0 : c0 + b.n] = mat
                else:
                    assert head is not None
                    head[k0 : k0 + mat.shape[0], c0 : c0 + b.n] = mat
                    k0 += mat.shape[0]
            c0 += b.n
        w = (head, last)
        if not g.budgeted:
            g.budgeted = True
            nbytes = last.nbytes + (0 if head is None else head.nbytes)
            g.retain = self.budget is None or self.budget.take(g, nbytes)
        if g.retain:
            g.weights = w
            g.spans = _spans(srcs)
            g.key = (
                [r.copy() for r in raws]
                if g.spans is None
                else [mem[lo:hi].copy() for lo, hi in g.spans]
            )
            g.w_gen = self._gen
            if g.w_fixed is None:
                g.w_fixed = self._unreachable(srcs)
        return w

    def _depthwise(self, g: _Group, mem: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The int32 sums ``[M][N]`` of the group's depthwise CONVs in one call of the
        compiled kernel of ``Core._conv``'s ``"int8-depthwise"`` path (each channel's sums
        depend on that channel alone, so the tiles side by side along the channels give
        each tile's sums in its column block)."""
        geo = g.tiles[0].links[0][1]
        acc = np.empty((geo.oh, geo.ow, g.n), np.int32)
        self._jit.depthwise(*self._dw_args(g, mem, w), acc)
        return acc.reshape(g.m, g.n)

    def _dw_args(self, g: _Group, mem: np.ndarray, w: np.ndarray) -> tuple[object, ...]:
        """The leading arguments of the compiled depthwise kernels for group ``g``: its
        input tiles (:meth:`_dw_input`), pad value, weights and window geometry."""
        geo = g.tiles[0].links[0][1]
        x = self._dw_input(g, mem)
        t, _, lf, _ = geo.pads
        return (x.view(np.int8), geo.pad_value, w, geo.kh, geo.kw, geo.stride[0],
                geo.stride[1], t, lf)

    def _depthwise_requant(
        self,
        g: _Group,
        mem: np.ndarray,
        w: np.ndarray,
        bias: np.ndarray,
        scale: np.ndarray,
        divisor: np.ndarray | None,
        out: np.ndarray,
    ) -> None:
        """The group's depthwise CONVs with one output stage (one run of bounds and zero
        point) into ``out [M][N]`` in one call of ``JitKernels.depthwise_requant``: the
        bytes of :meth:`_depthwise` followed by the output stage, without the int32 sums
        leaving the cache."""
        geo = g.tiles[0].links[0][1]
        (_, (lo, hi), zp), = g.runs
        self._jit.depthwise_requant(
            *self._dw_args(g, mem, w),
            bias.reshape(1, -1),
            scale,
            scale if divisor is None else divisor,
            divisor is not None,
            np.float32(lo - zp),
            np.float32(hi - zp),
            zp,
            out.reshape(geo.oh, geo.ow, g.n),
        )

    def _dw_input(self, g: _Group, mem: np.ndarray) -> np.ndarray:
        """The uint8 input tiles of a depthwise group side by side along the channels,
        ``[in_h][in_w][N]``: a lone tile is read from DDR in place (materialized first
        only if the LOAD padded it); several are copied side by side."""
        box, geo = g.tiles[0].links[0]
        if (-1, -1) not in g.cols_params:
            g.cols_params[-1, -1] = _side_by_side(g.tiles, g.n)
        prm = g.cols_params[-1, -1]
        if (len(g.tiles) > 1 or any(box.pads)) and prm is not None and prm[1] <= mem.size:
            x = np.empty((geo.in_h, geo.in_w, g.n), np.uint8)
            jit_cols.cols(mem, x.reshape(-1), prm[0])
        elif len(g.tiles) == 1:
            x = _strided(mem, box.ddr, box.n0, box.n1, box.n2, box.s0, box.s1)
            if any(box.pads):
                t, _, lf, _ = box.pads
                tile = np.full(box.shape, box.pad_value, np.uint8)
                tile[t : t + box.n0, lf : lf + box.n1] = x
                x = tile
        else:
            x = np.empty((geo.in_h, geo.in_w, g.n), np.uint8)
            c0 = 0
            for tl in g.tiles:
                b = tl.links[0][0]
                dst = x[:, :, c0 : c0 + b.n2]
                if any(b.pads):
                    t, _, lf, _ = b.pads
                    dst.fill(b.pad_value)
                    dst = dst[t : t + b.n0, lf : lf + b.n1]
                dst[...] = _strided(mem, b.ddr, b.n0, b.n1, b.n2, b.s0, b.s1)
                c0 += b.n2
        return x

    def _cols(self, g: _Group, mem: np.ndarray, first: int, count: int, k: int) -> np.ndarray:
        """The uint8 im2col rows of links ``first .. first + count - 1`` of every tile of
        ``g``, side by side: ``[M][k]``."""
        a = _scratch(g.m * k).reshape(g.m, k)
        key = (first, count)
        if key not in g.cols_params:
            g.cols_params[key] = _cols_params(g, first, count, k)
        prm = g.cols_params[key]
        if prm is not None and prm[1] <= mem.size:
            jit_cols.cols(mem, a.reshape(-1), prm[0])
            return a
        r0 = 0
        for t in g.tiles:
            c0 = 0
            for box, geo in t.links[first : first + count]:
                _cols_into(a, r0 * k + c0, k, box, geo, mem)
                c0 += geo.kh * geo.kw * geo.in_c
            r0 += t.rows
        return a

    def _product(
        self,
        g: _Group,
        mem: np.ndarray,
        bias: np.ndarray,
        scale: np.ndarray,
        divisor: np.ndarray | None,
        out: np.ndarray,
        acc: np.ndarray | None,
    ) -> None:
        """The group's int8 outputs into ``out [M][N]`` and, for chains, the partial sums
        of links ``1 .. n-1`` (biases included) into ``acc`` (int32 ``[M][N]``)."""
        head_w, last_w = self._weights(g, mem)
        nl = len(g.ks)
        jk = self._jit
        st = bias.reshape(1, -1)
        if g.depthwise and acc is None and len(g.runs) == 1:
            # one output stage: sums and output stage in one compiled pass
            self._depthwise_requant(g, mem, last_w, bias, scale, divisor, out)
            self._tables(g, mem, out)
            return
        if g.depthwise:
            prod = self._depthwise(g, mem, last_w)
        elif head_w is not None:
            assert acc is not None
            ph = self._mm(self._cols(g, mem, 0, nl - 1, sum(g.ks[:-1])), head_w)
            jk.accumulate(ph.reshape(1, g.m, g.n), st, False, acc)
            del ph
            st = acc
        if not g.depthwise:
            prod = self._mm(self._cols(g, mem, nl - 1, 1, g.ks[-1]), last_w)
        per_row = acc is not None
        c0 = 0
        for c1, (lo, hi), zp in g.runs:
            whole = c0 == 0 and c1 == g.n
            sl = slice(c0, c1)
            jk.output_stage(
                (prod if whole else prod[:, sl]).reshape(1, g.m, c1 - c0),
                st if whole else st[:, sl],
                per_row,
                out if whole else out[:, sl],
                acc_out=False,
                scale=scale if whole else scale[sl],
                divisor=None if divisor is None else (divisor if whole else divisor[sl]),
                lo=np.float32(lo - zp),
                hi=np.float32(hi - zp),
                zp=zp,
            )
            c0 = c1
        self._tables(g, mem, out)

    def _tables(self, g: _Group, mem: np.ndarray, out: np.ndarray) -> None:
        """``act = table``: the lookup over each such block's int8 outputs in ``out``."""
        c0 = 0
        for b in g.blocks:
            if b.table_at is not None:
                table = _raw(mem, b.table_at, ACT_TABLE_BYTES).view(np.int8)
                jit_elt.act_table_cols(table, out[:, c0 : c0 + b.n])
            c0 += b.n


def _spans_of(cw: _CoreWork) -> list[tuple[Buffer, int, int]] | list[None]:
    """What each redo step of ``cw`` writes (``None`` each if a plan kind did not record
    it)."""
    if len(cw.spans) == len(cw.redo):
        return cw.spans
    return [None] * len(cw.redo)


def _merged(ranges: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The union of the byte ranges ``[lo, hi)`` as sorted disjoint ranges (touching ones
    joined): (starts, ends)."""
    ranges.sort()
    out: list[list[int]] = []
    for a, b in ranges:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    arr = np.array(out, np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


#: a DDR range that meets every other: what an unrecorded step is taken to read, and an
#: epoch plan whose SAVEs are not recorded is taken to write
_ALL_DDR = (0, 1 << 62)


@dataclass(frozen=True, slots=True)
class _Pending:
    """One surviving buffer write of the epoch plan ``plan`` (its id), not made yet:
    ``step`` writes bytes ``[lo, hi)`` of buffer ``buf`` of the core ``core`` (its id;
    ``lo < 0``: the bytes are not recorded), reading DDR ``read`` if it is a LOAD (else
    None). ``rebind(src, shift)``, for a LOAD whose box is known: the same LOAD reading
    its box at offset ``box.ddr + shift`` of ``src`` instead of DDR (see
    :meth:`Deferred.then`)."""

    plan: int  # id of the epoch plan
    core: int
    buf: Buffer
    lo: int
    hi: int
    step: Callable[[], None]
    read: tuple[int, int] | None
    rebind: Callable[[np.ndarray, int], Callable[[], None]] | None = None


def _load_rebind(
    core: Core, buf: Buffer, addr: int, box: _Box
) -> Callable[[np.ndarray, int], Callable[[], None]]:
    """For the LOAD of ``box`` into ``buf`` at ``addr`` of ``core``: the function making
    that LOAD's step with its box read from another array (see :attr:`_Pending.rebind`)."""

    def rebind(src: np.ndarray, shift: int) -> Callable[[], None]:
        rows, cols, n2 = box.shape
        dst = core.buffers[buf][addr : addr + rows * cols * n2].reshape(rows, cols, n2)
        t, _, lf, _ = box.pads
        inner = dst[t : t + box.n0, lf : lf + box.n1]
        view = _strided(src, box.ddr + shift, box.n0, box.n1, box.n2, box.s0, box.s1)
        pad = np.uint8(box.pad_value) if any(box.pads) else None
        return _load_step(dst, inner, view, pad)

    return rebind


def _pending_of(ep: EpochPlan) -> list[_Pending]:
    """``ep``'s surviving writes, core after core, each core's in its order (made once
    per plan: they are static)."""
    if ep._pending is None:
        ep._pending = _make_pending(ep)
    return ep._pending


def _make_pending(ep: EpochPlan) -> list[_Pending]:
    out: list[_Pending] = []
    for cw in ep.cores:
        spans = _spans_of(cw)
        reads = cw.reads if cw.reads is not None and len(cw.reads) == len(cw.redo) else None
        boxes = cw.boxes if cw.boxes is not None and len(cw.boxes) == len(cw.redo) else None
        for j, (step, span) in enumerate(zip(cw.redo, spans, strict=True)):
            read = _ALL_DDR if reads is None else reads[j]
            if span is None:
                out.append(_Pending(id(ep), id(cw.core), Buffer.IBUF, -1, -1, step, read))
                continue
            buf, addr, n = span
            box = None if boxes is None or read is None else boxes[j]
            rebind = None
            if box is not None and read is not None and read[0] < read[1] and (
                box.shape[0] * box.shape[1] * box.shape[2] == n
            ):
                rebind = _load_rebind(cw.core, buf, addr, box)
            out.append(_Pending(id(ep), id(cw.core), buf, addr, addr + n, step, read, rebind))
    return out


class _Ranges:
    """A union of byte ranges ``[lo, hi)``: sorted disjoint ranges (touching ones joined)."""

    __slots__ = ("his", "los")

    def __init__(self) -> None:
        self.los: list[int] = []
        self.his: list[int] = []

    def copy(self) -> _Ranges:
        out = _Ranges()
        out.los, out.his = list(self.los), list(self.his)
        return out

    def covers(self, lo: int, hi: int) -> bool:
        k = bisect.bisect_right(self.los, lo) - 1
        return k >= 0 and hi <= self.his[k]

    def meets(self, lo: int, hi: int) -> bool:
        k = bisect.bisect_left(self.his, lo + 1)  # the first range ending after lo
        return k < len(self.los) and self.los[k] < hi

    def add(self, lo: int, hi: int) -> None:
        los, his = self.los, self.his
        a = bisect.bisect_left(his, lo)  # the first range that ends at or after lo
        b = bisect.bisect_right(los, hi)  # past the last range that starts at or before hi
        if a < b:
            lo, hi = min(lo, los[a]), max(hi, his[b - 1])
        los[a:b] = [lo]
        his[a:b] = [hi]


#: per (core id, buffer): the byte ranges that some epoch plans write (see
#: :func:`writes_of`, :meth:`Deferred.then`)
Covers = dict[tuple[int, Buffer], _Ranges]


def writes_of(plans: Sequence[EpochPlan], base: Covers | None = None) -> Covers:
    """The buffer bytes, per core and buffer, that the epoch plans ``plans`` leave
    written (the union of their surviving writes: every write of an epoch is one of them
    or entirely overwritten by them), with those of ``base`` (not changed)."""
    out: Covers = {}
    for k, r in (base or {}).items():
        out[k] = r.copy()
    for ep in plans:
        for it in _pending_of(ep):
            if it.lo >= 0:
                cover = out.get((it.core, it.buf))
                if cover is None:
                    cover = out[(it.core, it.buf)] = _Ranges()
                cover.add(it.lo, it.hi)
    return out


def _meets_saved(read: tuple[int, int], saved: tuple[list[int], list[int]] | None) -> bool:
    """Whether the DDR range ``read`` meets a range of ``saved`` (sorted disjoint starts
    and ends, see :func:`_saved_lists`; None: all of DDR)."""
    if saved is None:
        return True
    lo, hi = read
    los, his = saved
    k = bisect.bisect_right(his, lo)
    return k < len(los) and los[k] < hi


def _saved_lists(ep: EpochPlan) -> tuple[list[int], list[int]] | None:
    """:attr:`EpochPlan.saved` as lists (for :func:`bisect`), None if not recorded."""
    if ep.saved is None:
        return None
    return ep.saved[0].tolist(), ep.saved[1].tolist()


class Deferred:
    """The surviving buffer writes (see the module docstring, Effects) of consecutive
    epoch plans of a task, in run order, that are not made yet.

    Every epoch plan reads its inputs from DDR alone, so no epoch plan depends on these
    writes: they stay pending while epoch plans follow each other, and are made
    (:meth:`flush`) before anything else touches the cores' buffers or the task's DDR.
    Only a write whose bytes no later pending write on the same core entirely overwrites
    is ever made (on 16 cores a layer's tiles often overwrite only part of the previous
    layer's, those of a few layers later all of them). A pending LOAD re-reads DDR when
    it is made, so before the SAVEs of a next epoch plan that can write a DDR byte it
    reads, it is made, together with the earlier pending writes to the bytes it writes
    (:meth:`then`; the others stay pending). Pending writes are made in their epochs'
    order wherever they overlap, so every buffer ends with the interpreter's bytes.

    Chains are nodes of a trie built as a task runs and kept with its plans: the same
    sequence of epochs on the next run walks the same nodes and reuses their decisions."""

    __slots__ = ("_end", "_ids", "_items", "_next")

    def __init__(self, ids: frozenset[int], items: list[_Pending]) -> None:
        #: the ids of the epoch plans with pending writes (and of the last one)
        self._ids = ids
        #: the pending writes in their order, none entirely overwritten by later ones
        self._items = items
        #: plan id -> (that plan, the steps to make before its SAVEs, the chain after it,
        #: whether it was decided knowing what the later epochs write)
        self._next: dict[int, tuple[EpochPlan, list[Callable[[], None]], Deferred, bool]] = {}
        #: the steps of :meth:`flush` (built on first use)
        self._end: list[Callable[[], None]] | None = None

    def holds(self, ep: EpochPlan) -> bool:
        """Whether ``ep`` may have pending writes (they copy its results, which running
        it again would overwrite: flush first)."""
        return id(ep) in self._ids

    def then(
        self, ep: EpochPlan, future: Covers | None = None
    ) -> tuple[list[Callable[[], None]], Deferred]:
        """For the epoch plan ``ep`` (not pending) running next: the pending writes to make
        before its SAVEs (in order), and the chain after it (the other pending writes,
        then ``ep``'s). Made now: every pending LOAD that reads a DDR byte a SAVE of
        ``ep`` can write, and every earlier pending write on the same core to a byte that
        one made now writes (so that later ones never overwrite it), but those that later
        pending writes or ``ep``'s own entirely overwrite: they are dropped.

        ``future``: the buffer bytes the epochs expected after ``ep`` write (None: not
        known). A LOAD of a known box (:attr:`_Pending.rebind`) that is made now only for
        the SAVEs, whose box covers at least half of the DDR bytes it spans, and whose
        buffer bytes the later epochs entirely overwrite, is not made now: the DDR it
        reads is copied now (the union of those LOADs' spans, once however many cores
        load the same tile: on 16 cores split along the output channels, 16 LOADs of one
        tile) and the LOAD stays pending, reading that copy, until a later write drops it.
        ``future`` only decides what pays: whatever runs later (also not those epochs, or
        a flush before them), the LOAD reads the bytes DDR held before the SAVEs. A
        decision made without ``future`` is made again, once, when it is known."""
        hit = self._next.get(id(ep))
        if hit is None or hit[0] is not ep or (future is not None and not hit[3]):
            mine = _pending_of(ep)
            saved = _saved_lists(ep)
            items = self._items + mine
            n_old = len(self._items)
            later: dict[tuple[int, Buffer], _Ranges] = {}
            now_at: dict[tuple[int, Buffer], _Ranges] = {}
            now_all: set[int] = set()  # cores with an unrecorded write made now
            keep: list[_Pending] = []
            made: list[_Pending] = []
            copied: list[int] = []  # indices in keep of the LOADs that will read a copy
            cheap = _to_copy(self._items, ep, future)
            for j in range(len(items) - 1, -1, -1):
                it = items[j]
                key = (it.core, it.buf)
                if it.lo >= 0:
                    cover = later.get(key)
                    if cover is None:
                        cover = later[key] = _Ranges()
                    if cover.covers(it.lo, it.hi):
                        continue  # entirely overwritten later: never made
                    cover.add(it.lo, it.hi)
                if j >= n_old:
                    keep.append(it)
                    continue
                nw = now_at.get(key)
                clobbered = it.read is not None and _meets_saved(it.read, saved)
                ordered = it.core in now_all or (
                    nw is not None and (it.lo < 0 or nw.meets(it.lo, it.hi))
                )
                if clobbered and not ordered and j in cheap:
                    copied.append(len(keep))
                    keep.append(it)
                    continue
                if not (clobbered or ordered):
                    keep.append(it)
                    continue
                made.append(it)
                if it.lo < 0:
                    now_all.add(it.core)
                else:
                    if nw is None:
                        nw = now_at[key] = _Ranges()
                    nw.add(it.lo, it.hi)
            steps = _copied(ep.region, keep, copied)
            keep.reverse()
            made.reverse()
            ids = frozenset(it.plan for it in keep) | {id(ep)}
            hit = (ep, steps + [it.step for it in made], Deferred(ids, keep), future is not None)
            self._next[id(ep)] = hit
        return hit[1], hit[2]

    def flush(self) -> None:
        """Make the pending writes, as the interpreter leaves the buffers."""
        if self._end is None:
            self._end = [it.step for it in self._items]
        for step in self._end:
            step()


def _to_copy(items: list[_Pending], ep: EpochPlan, future: Covers | None) -> set[int]:
    """For :meth:`Deferred.then`: the indices of the pending LOADs ``items`` that, if
    the SAVEs of ``ep`` make them due, pay to read a copy of DDR instead of being made
    now: their box is known, the later epochs (``future``) entirely overwrite their
    buffer bytes, and the DDR bytes all of them span together are no more than the bytes
    they load."""
    if future is None:
        return set()
    saved = _saved_lists(ep)
    picked: list[int] = []
    spans: list[tuple[int, int]] = []
    loaded = 0
    for j, it in enumerate(items):
        if it.rebind is None or it.read is None or not _meets_saved(it.read, saved):
            continue
        cover = future.get((it.core, it.buf))
        if cover is None or not cover.covers(it.lo, it.hi):
            continue
        picked.append(j)
        spans.append(it.read)
        loaded += it.hi - it.lo
    if not picked:
        return set()
    los, his = _merged(spans)
    return set(picked) if int((his - los).sum()) <= loaded else set()


def _copied(region: Region, keep: list[_Pending], copied: list[int]) -> list[Callable[[], None]]:
    """For :meth:`Deferred.then`: the steps copying the DDR that the pending LOADs
    ``keep[k]`` (``k`` in ``copied``) read into one array (their merged spans), each such
    LOAD replaced in ``keep`` by the same LOAD reading that array."""
    if not copied:
        return []
    spans = [keep[k].read for k in copied]
    los, his = _merged([sp for sp in spans if sp is not None])
    offs = np.concatenate([[0], np.cumsum(his - los)])
    snap = np.empty(int(offs[-1]), np.uint8)
    mem = region.view()
    steps: list[Callable[[], None]] = [
        partial(snap[o : o + hi - lo].__setitem__, Ellipsis, mem[lo:hi])
        for lo, hi, o in zip(los.tolist(), his.tolist(), offs.tolist(), strict=False)
    ]
    for k in copied:
        it = keep[k]
        assert it.read is not None and it.rebind is not None
        r = int(np.searchsorted(los, it.read[0], side="right")) - 1
        step = it.rebind(snap, int(offs[r]) - int(los[r]))
        keep[k] = replace(it, step=step, read=None, rebind=None)
    return steps


def _runs(blocks: list[_Block]) -> list[tuple[int, tuple[int, int], int]]:
    """The column runs of ``blocks`` with equal bounds and zero point: (end column,
    bounds, zero point)."""
    runs: list[tuple[int, tuple[int, int], int]] = []
    c = 0
    for b in blocks:
        c += b.n
        if runs and runs[-1][1] == b.bounds and runs[-1][2] == b.zp:
            runs[-1] = (c, b.bounds, b.zp)
        else:
            runs.append((c, b.bounds, b.zp))
    return runs


def _cols_params(g: _Group, first: int, count: int, k: int) -> tuple[np.ndarray, int] | None:
    """The parameter rows of :func:`vfpga.emulator.jit_cols.cols` for the im2col of links
    ``first .. first + count - 1`` of every tile of ``g`` (as :meth:`EpochPlan._cols`
    lays them out, rows ``k`` bytes), and the DDR bytes the boxes need; None if the
    kernel is not compiled or a box has a negative offset or stride."""
    rows: list[tuple[int, ...]] = []
    r0 = 0
    for t in g.tiles:
        c0 = 0
        for box, geo in t.links[first : first + count]:
            rows.append(_cols_row(box, geo, geo, r0 * k + c0, k, kernels.U8_BIAS))
            c0 += geo.kh * geo.kw * geo.in_c
        r0 += t.rows
    return _params_of(rows)


def _side_by_side(tiles: list[_Tile], n: int) -> tuple[np.ndarray, int] | None:
    """As :func:`_cols_params`, for the input tiles of a depthwise group (or a pooling
    group, :mod:`vfpga.emulator.epoch_pool`): side by side along the channels (``n`` in
    all), as the LOADs leave them (an im2col of a 1x1 window, bytes as they are),
    ``[in_h][in_w][n]``."""
    boxes: list[_Box] = []
    for t in tiles:  # channel slices of one DDR map side by side: one box
        box = t.links[0][0]
        last = boxes[-1] if boxes else None
        if last is not None and last.ddr + last.n2 == box.ddr and last.n2 <= box.s1 and (
            replace(last, ddr=box.ddr, n2=box.n2) == box
        ):
            boxes[-1] = replace(last, n2=last.n2 + box.n2)
        else:
            boxes.append(box)
    rows: list[tuple[int, ...]] = []
    c0 = 0
    for box in boxes:
        h, w, c = box.shape
        one = kernels.ConvGeometry(h, w, c, c, 1, 1, 1, (1, 1), (0, 0, 0, 0), 0, h, w, "")
        rows.append(_cols_row(box, one, one, c0, n, 0))
        c0 += c
    return _params_of(rows)


def _cols_row(
    box: _Box, tile: kernels.ConvGeometry, geo: kernels.ConvGeometry, at: int, rs: int, flip: int
) -> tuple[int, ...]:
    """One parameter row of :func:`vfpga.emulator.jit_cols.cols`: the LOAD ``box`` fills
    the tile of ``tile``'s input shape, read through the window geometry ``geo``."""
    return (
        box.ddr,
        box.n0,
        box.n1,
        box.s0,
        box.s1,
        box.pads[0],
        box.pads[2],
        box.pad_value & 0xFF,
        tile.in_c if box.n2 == tile.in_c else -1,
        tile.in_h,
        tile.in_w,
        geo.kh,
        geo.kw,
        geo.stride[0],
        geo.stride[1],
        geo.pads[0],
        geo.pads[2],
        geo.pad_value & 0xFF,
        geo.oh,
        geo.ow,
        at,
        rs,
        flip,
    )


def _params_of(rows: list[tuple[int, ...]]) -> tuple[np.ndarray, int] | None:
    """The rows as the int64 array :func:`vfpga.emulator.jit_cols.cols` takes and the DDR
    bytes their boxes need; None if the kernel is not compiled or a row is not one it is
    written for (a negative offset or stride, a box narrower than its tile's channels)."""
    if not jit_cols.available() or not rows:
        return None
    prm = np.array(rows, np.int64).reshape(-1, len(jit_cols.FIELDS))
    if int(prm[:, [0, 3, 4, 8]].min()) < 0:
        return None
    need = prm[:, 0] + (prm[:, 1] - 1) * prm[:, 3] + (prm[:, 2] - 1) * prm[:, 4] + prm[:, 8]
    return prm, int(need.max())


def _cols_into(
    a: np.ndarray, at: int, rs: int, box: _Box, geo: kernels.ConvGeometry, mem: np.ndarray
) -> None:
    """The uint8 im2col matrix (``x + 128``, see :class:`vfpga.emulator.kernels.Im2colU8`)
    ``[oh * ow][K]`` of the input tile the LOAD ``box`` reads from DDR ``mem``, into the
    contiguous array ``a`` at byte ``at``, rows ``rs`` bytes apart."""
    src = _strided(mem, box.ddr, box.n0, box.n1, box.n2, box.s0, box.s1)
    bias = np.uint8(kernels.U8_BIAS)
    h, w, c = geo.in_h, geo.in_w, geo.in_c
    if any(box.pads):  # the tile as the LOAD leaves it in ibuf
        t, _, lf, _ = box.pads
        tile = np.full((h, w, c), box.pad_value, np.uint8)
        tile[t : t + box.n0, lf : lf + box.n1] = src
        src = tile
    t, b, lf, r = geo.pads
    kh, kw = geo.kh, geo.kw
    sh, sw = geo.stride
    if kh == kw == sh == sw == 1 and not (t or b or lf or r):
        np.bitwise_xor(src, bias, out=_at(a, at, (h, w, c), (w * rs, rs, 1)))
        return
    xpad = np.empty((h + t + b, w + lf + r, c), np.uint8)
    if t or b or lf or r:
        xpad.fill((geo.pad_value + kernels.U8_BIAS) & 0xFF)
    np.bitwise_xor(src, bias, out=xpad[t : t + h, lf : lf + w])
    win = sliding_window_view(xpad, (kh, kw), axis=(0, 1))  # [.][.][c][kh][kw]
    win = win[: (geo.oh - 1) * sh + 1 : sh, : (geo.ow - 1) * sw + 1 : sw]
    view = _at(a, at, (geo.oh, geo.ow, kh, kw, c), (geo.ow * rs, rs, kw * c, c, 1))
    np.copyto(view, win.transpose(0, 1, 3, 4, 2))


def save_extents(
    program: Program, ranges: Sequence[tuple[int, int]] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The DDR byte ranges ``[lo, hi)`` (region offsets) that the SAVEs of ``program`` can
    write, with the extra ``ranges``, merged and sorted: every SAVE instruction's box
    extent, whichever core or tiling candidate runs it (a superset of what any run
    writes)."""
    rec = program.by_op[Opcode.SAVE]
    n0, n1, n2 = (rec[k].astype(np.int64) for k in ("n0", "n1", "n2"))
    lo = rec["ddr"].astype(np.int64)
    hi = lo + (n0 - 1) * rec["stride0"].astype(np.int64) + (
        n1 - 1) * rec["stride1"].astype(np.int64) + n2
    live = (n0 > 0) & (n1 > 0) & (n2 > 0)
    extra = np.array(list(ranges), np.int64).reshape(-1, 2)
    lo = np.concatenate([lo[live], extra[:, 0]])
    hi = np.concatenate([hi[live], extra[:, 1]])
    if not lo.size:
        return lo, hi
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], np.maximum.accumulate(hi[order])
    # merge: a new range starts where lo passes the largest end of the ranges before it
    start = np.ones(lo.size, np.bool_)
    start[1:] = lo[1:] >= hi[:-1]
    first = np.flatnonzero(start)
    ends = np.append(first[1:], lo.size) - 1
    return lo[first], hi[ends]


def build_epoch(
    work: Sequence[tuple[Core, ExecContext, SegmentPlan]],
    budget: PreparedBudget | None = None,
    saves: tuple[np.ndarray, np.ndarray] | None = None,
) -> EpochPlan | None:
    """The epoch plan of the per-core plans ``work`` (the task's cores in its order, each
    with its context and the plan of its segment of this epoch), or ``None`` if the epoch
    does not qualify (see the module docstring). ``saves``: :func:`save_extents` of the
    loaded program (``None``: prepared values are compared with DDR on every run)."""
    if jit.get() is None or int_matmul.backend() is None or not work:
        return None
    # element-wise and pooling epochs; they build on this module
    from vfpga.emulator import epoch_elt, epoch_pool

    try:
        if epoch_elt.qualifies(work):
            return epoch_elt.build(work)
        if epoch_pool.qualifies(work):
            return epoch_pool.build(work)
        return _build(work, budget, saves)
    except _NoEpoch:
        return None
    except Exception:  # an instruction form the analysis was not written for (a new op
        # kind or field): the epoch is no candidate, the cores run their own plans or the
        # interpreter, which execute (or fault on) it as the ISA says
        _log.debug("no epoch plan: the analysis failed", exc_info=True)
        return None


def _build(
    work: Sequence[tuple[Core, ExecContext, SegmentPlan]],
    budget: PreparedBudget | None,
    saves: tuple[np.ndarray, np.ndarray] | None,
) -> EpochPlan:
    region = work[0][1].region
    units: list[_Unit] = []
    unit_of: dict[tuple[object, ...], int] = {}
    writes: list[_Write | None] = [None]  # write ids start at 1
    loads: list[_Box] = []
    save_list: list[tuple[int, tuple[int, int, int, int, int, int]]] = []  # (unit, box)
    per_core: list[tuple[list[int], int, dict[Buffer, np.ndarray]]] = []
    views: dict[int, np.ndarray] = {}  # write id -> the CONV's output view (obuf or abuf)
    head_of: dict[int, int] = {}  # partial write id -> the unit whose head it is

    for k, (core, ctx, plan) in enumerate(work):
        fields = ctx.fields
        ver, mine, write = _writer(core, writes)
        macs = 0
        for pos, (i, op) in enumerate(zip(plan.order, plan.ops, strict=True)):
            f = fields[i]
            if op == "LOAD":
                write(_load_write(k, pos, f, loads))
            elif op == "SAVE":
                save_list.append(_saved(writes, ver[Buffer.OBUF], f))
            elif op == "CONV":
                st = _conv_step(plan, pos)
                geo = st.geo
                n_in = geo.in_h * geo.in_w * geo.in_c
                w_in = writes[_uniform(ver[Buffer.IBUF], f["in_addr"], n_in)]
                assert w_in is not None
                if (
                    w_in.box is None
                    or w_in.addr != f["in_addr"]
                    or w_in.nbytes != n_in
                    or w_in.box.shape != (geo.in_h, geo.in_w, geo.in_c)
                ):
                    raise _NoEpoch
                w_at = _source(
                    writes,
                    ver[Buffer.WBUF],
                    f["w_addr"],
                    geo.out_c * geo.kh * geo.kw * (geo.in_c // geo.groups),
                )
                p_at = _source(
                    writes, ver[Buffer.PBUF], f["p_addr"], geo.out_c * PARAM_RECORD_BYTES
                )
                n_out = geo.oh * geo.ow * geo.out_c
                links: tuple[_Link, ...] = ((w_in.box, geo),)
                ws: tuple[_Src, ...] = (w_at,)
                p1 = p_at
                prev = -1
                if st.acc_in is not None:  # continue the chain of the partial sums read
                    prev = _uniform(ver[Buffer.ABUF], f["acc_addr"], n_out * 4)
                    pw = writes[prev]
                    assert pw is not None
                    if pw.partial is None or pw.addr != f["acc_addr"] or pw.nbytes != n_out * 4:
                        raise _NoEpoch
                    plinks, pws, p1 = pw.partial
                    if (plinks[-1][1].oh, plinks[-1][1].ow, plinks[-1][1].out_c) != (
                        geo.oh,
                        geo.ow,
                        geo.out_c,
                    ):
                        raise _NoEpoch
                    links, ws = plinks + links, pws + ws
                if st.acc_out:
                    wid = write(
                        _Write(
                            k, pos, Buffer.ABUF, f["out_addr"], n_out * 4, partial=(links, ws, p1)
                        )
                    )
                    views[wid] = st.out
                    macs += st.macs
                    continue
                t_at = None
                if st.table is not None:  # act = table: the 256 bytes after the records
                    if len(work) < 2:  # one core: its own plan is faster (docs/runtime.md)
                        raise _NoEpoch
                    t_at = _source(
                        writes,
                        ver[Buffer.PBUF],
                        f["p_addr"] + geo.out_c * PARAM_RECORD_BYTES,
                        ACT_TABLE_BYTES,
                    )
                name = (links, ws, p1, p_at, st.bounds, st.out_zp, t_at)
                u = unit_of.get(name)
                if u is None:
                    u = unit_of[name] = len(units)
                    units.append(_Unit(links, ws, p1, p_at, st.bounds, st.out_zp, table_at=t_at))
                if prev > 0:
                    head_of[prev] = u
                wid = write(_Write(k, pos, Buffer.OBUF, f["out_addr"], n_out, unit=u))
                views[wid] = st.out
                macs += st.macs
            else:
                raise _NoEpoch
        per_core.append((mine, macs, ver))

    if not _disjoint(loads, [sb for _, sb in save_list]):
        raise _NoEpoch
    ep = EpochPlan(region, units, _groups(units), budget, saves)
    ep.saves = _save_steps(ep, save_list)
    ep.saved = _merged([_extent(*sb) for _, sb in save_list])
    for k, (core, _ctx, seg_plan) in enumerate(work):
        mine, macs, ver = per_core[k]
        redo: list[Callable[[], None]] = []
        spans: list[tuple[Buffer, int, int]] = []
        reads: list[tuple[int, int] | None] = []
        boxes: list[_Box | None] = []
        for wid, w in _survivors(writes, mine, ver):
            spans.append((w.buf, w.addr, w.nbytes))
            reads.append(None if w.box is None else _box_extent(w.box))
            boxes.append(w.box)
            if w.box is not None:
                redo.append(seg_plan.steps[w.pos])  # the LOAD step itself
            elif w.partial is not None:
                u = head_of.get(wid)
                if u is None or len(w.partial[0]) != len(units[u].links) - 1:
                    raise _NoEpoch  # partial sums no product of the plan computes
                redo.append(ep.copy_step(u, views[wid], partial_sums=True))
            else:
                redo.append(ep.copy_step(w.unit, views[wid]))
        ep.cores.append(_CoreWork(core, seg_plan, macs, redo, spans, reads, boxes))
    return ep


def _writer(
    core: Core, writes: list[_Write | None]
) -> tuple[dict[Buffer, np.ndarray], list[int], Callable[[_Write], int]]:
    """For the analysis of one core of an epoch: the id of each buffer byte's last write
    (0: none), the ids of the core's writes in its order, and the function that records a
    write in ``writes`` (returning its id)."""
    ver = {b: np.zeros(core.buffers[b].size, np.int32) for b in Buffer}
    mine: list[int] = []

    def write(w: _Write) -> int:
        writes.append(w)
        wid = len(writes) - 1
        ver[w.buf][w.addr : w.addr + w.nbytes] = wid
        mine.append(wid)
        return wid

    return ver, mine, write


def _load_write(k: int, pos: int, f: dict[str, int], loads: list[_Box]) -> _Write:
    """The buffer write of the LOAD with fields ``f``, step ``pos`` of the epoch's core
    ``k``; its DDR box is appended to ``loads``."""
    box = _box_of(f)
    loads.append(box)
    rows, cols, n2 = box.shape
    return _Write(k, pos, Buffer(f["to"]), f["buf"], rows * cols * n2, box=box)


def _saved(
    writes: list[_Write | None], obuf_ver: np.ndarray, f: dict[str, int]
) -> tuple[int, tuple[int, int, int, int, int, int]]:
    """(unit, DDR box fields) of the SAVE with fields ``f``: it must store exactly the
    obuf range that one computed write (``unit``) made, else :class:`_NoEpoch`."""
    n = f["n0"] * f["n1"] * f["n2"]
    w = writes[_uniform(obuf_ver, f["buf"], n)]
    assert w is not None
    if w.unit < 0 or w.addr != f["buf"] or w.nbytes != n:
        raise _NoEpoch
    return w.unit, (f["ddr"], f["n0"], f["n1"], f["n2"], f["stride0"], f["stride1"])


def _survivors(
    writes: list[_Write | None], mine: list[int], ver: dict[Buffer, np.ndarray]
) -> Iterator[tuple[int, _Write]]:
    """The writes ``mine`` (ids, in a core's order) of which some byte is not overwritten
    later in the epoch (``ver``: the id of each buffer byte's last write)."""
    for wid in mine:
        w = writes[wid]
        assert w is not None
        if bool((ver[w.buf][w.addr : w.addr + w.nbytes] == wid).any()):
            yield wid, w


def _core_works(
    work: Sequence[tuple[Core, ExecContext, SegmentPlan]],
    writes: list[_Write | None],
    per_core: list[tuple[list[int], dict[Buffer, np.ndarray]]],
    result: Callable[[int], np.ndarray],
) -> list[_CoreWork]:
    """Each core's part of an epoch plan whose CALC writes are obuf results
    (:mod:`vfpga.emulator.epoch_elt`, :mod:`vfpga.emulator.epoch_pool`): its surviving
    writes (``per_core[k]``: its write ids and the buffers' last writers), each the LOAD
    step itself or unit ``u``'s ``result(u)`` copied into obuf."""
    out: list[_CoreWork] = []
    for k, (core, _ctx, seg_plan) in enumerate(work):
        mine, ver = per_core[k]
        redo: list[Callable[[], None]] = []
        spans: list[tuple[Buffer, int, int]] = []
        reads: list[tuple[int, int] | None] = []
        boxes: list[_Box | None] = []
        for _wid, w in _survivors(writes, mine, ver):
            spans.append((w.buf, w.addr, w.nbytes))
            reads.append(None if w.box is None else _box_extent(w.box))
            boxes.append(w.box)
            if w.box is not None:
                redo.append(seg_plan.steps[w.pos])  # the LOAD step itself
            else:
                obuf = core.buffers[Buffer.OBUF][w.addr : w.addr + w.nbytes]
                redo.append(_copy_step(obuf, result(w.unit)))
        out.append(_CoreWork(core, seg_plan, 0, redo, spans, reads, boxes))
    return out


def _copy_step(dst: np.ndarray, src: np.ndarray) -> Callable[[], None]:
    """A step copying ``src`` (a ``[rows][n]`` block of a result, rows at any stride) into
    ``dst`` (the same number of elements in any shape), by whole rows where it can."""
    view = src.reshape(dst.shape)
    if not np.shares_memory(view, src):  # not expressible as a view: copy on every run

        def step() -> None:
            dst[...] = src.reshape(dst.shape)

        return step
    if dst.dtype == np.uint8 and view.dtype == np.int8:
        view = view.view(np.uint8)
    if dst.dtype == view.dtype and dst.ndim == 3:
        d, v = _row_views(dst, view)
        return partial(d.__setitem__, Ellipsis, v)
    return partial(np.copyto, dst, view, casting="no")


def _save_steps(
    ep: EpochPlan, saves: list[tuple[int, tuple[int, int, int, int, int, int]]]
) -> list[Callable[[], None]]:
    """The SAVE steps of ``ep``: ``saves`` (unit, DDR box fields) in program order, or,
    when no two boxes share a byte (then their order does not matter), with the SAVEs of
    side-by-side column blocks of the same rows to side-by-side DDR bytes merged into one
    (a layer split along its output channels: one SAVE per tile instead of one per core)."""
    region = ep.region

    def step(
        unit: int, ddr: int, n0: int, n1: int, n2: int, s0: int, s1: int, c0: int = -1
    ) -> Callable[[], None]:
        dst = region.box_view(ddr, n0, n1, n2, s0, s1)
        if c0 < 0:
            return ep.copy_step(unit, dst)
        g, r0, _ = ep.units[unit].at
        src = ep._out[g][r0 : r0 + n0 * n1, c0 : c0 + n2]
        return _copy_step(dst, src)

    if not _disjoint_saves([sb for _, sb in saves]):
        return [step(u, *sb) for u, sb in saves]
    merged: dict[tuple[int, ...], list[list[int]]] = {}
    out: list[Callable[[], None]] = []
    for u, (ddr, n0, n1, n2, s0, s1) in saves:
        geo = ep.units[u].geo
        g, r0, c0 = ep.units[u].at
        if n2 != geo.out_c or n0 * n1 != geo.oh * geo.ow:
            out.append(step(u, ddr, n0, n1, n2, s0, s1))
            continue
        runs = merged.setdefault((g, r0, n0, n1, s0, s1), [])
        for run in runs:  # [unit, ddr, n2 so far, c0]
            if run[1] + run[2] == ddr and run[3] + run[2] == c0:
                run[2] += n2
                break
        else:
            runs.append([u, ddr, n2, c0])
    for (_g, _r0, n0, n1, s0, s1), runs in merged.items():
        for u, ddr, n2, c0 in runs:
            out.append(step(u, ddr, n0, n1, n2, s0, s1, c0))
    return out


def _disjoint_saves(saves: list[tuple[int, int, int, int, int, int]]) -> bool:
    """Whether no two of the DDR boxes ``saves`` share a byte (False also when their span
    is over :data:`_MASK_MAX`)."""
    live = [s for s in saves if s[1] and s[2] and s[3]]
    if len(live) < 2:
        return True
    lo = min(s[0] for s in live)
    hi = max(s[0] + (s[1] - 1) * s[4] + (s[2] - 1) * s[5] + s[3] for s in live)
    if hi - lo > _MASK_MAX:
        return False
    mask = np.zeros(hi - lo, np.bool_)
    for ddr, n0, n1, n2, s0, s1 in live:
        view = _strided(mask, ddr - lo, n0, n1, n2, s0, s1)
        if bool(view.any()):
            return False
        view[...] = True
    return True


def _conv_step(plan: SegmentPlan, pos: int) -> _ConvStep:
    """The prepared CONV step at ``pos`` of ``plan`` (also when a fused accumulation
    chain of the plan replaced it), if the epoch plan can compute it."""
    step = plan.steps[pos]
    st = (
        step
        if isinstance(step, _ConvStep)
        else next((m for ch in plan.chains for m in ch.members if m.i == plan.order[pos]), None)
    )
    if st is None:
        raise _NoEpoch
    geo = st.geo
    if not st.fused or geo.dil != (1, 1) or geo.ups != (1, 1):
        # dilated and zero-inserted (upsampling) CONVs read their tile through the
        # interpreter's im2col, which inserts the zeros; the epoch's im2col does not
        raise _NoEpoch
    if geo.path == "int8-depthwise":  # one channel per group, no partial sums
        if geo.in_c != geo.out_c or st.acc_in is not None or st.acc_out:
            raise _NoEpoch
    elif geo.path != "int8" or geo.groups != 1:
        raise _NoEpoch
    return st


def _source(writes: list[_Write | None], ver: np.ndarray, addr: int, nbytes: int) -> _Src:
    """Where the bytes ``[addr, addr + nbytes)`` of a buffer come from: all written by
    one LOAD (else :class:`_NoEpoch`), at an offset of what it wrote."""
    w = writes[_uniform(ver, addr, nbytes)]
    assert w is not None
    if w.box is None:
        raise _NoEpoch
    return (w.box, addr - w.addr)


def _spans(srcs: list[tuple[_Src, int]]) -> list[tuple[int, int]] | None:
    """The DDR byte ranges ``[lo, hi)`` covering every byte the sources ``srcs`` (with
    their lengths) read: each LOAD box's whole extent, merged where they touch. ``None``
    if they cover more than four times the bytes read (then comparing them would cost
    more than gathering the sources)."""
    ext = []
    need = 0
    for (box, off), n in srcs:
        need += n
        at = box.flat()
        if at is not None:
            ext.append((at + off, at + off + n))
        elif box.n0 and box.n1 and box.n2:
            ext.append((box.ddr, box.ddr + (box.n0 - 1) * box.s0 + (box.n1 - 1) * box.s1 + box.n2))
    los, his = _merged(ext)
    if int((his - los).sum()) > 4 * need + (64 << 10):
        return None
    return list(zip(los.tolist(), his.tolist(), strict=True))


def _same(jk: jit.JitKernels, a: np.ndarray, key: np.ndarray) -> bool:
    """Whether the contiguous uint8 arrays ``a`` (DDR bytes, at any alignment) and ``key``
    hold the same bytes (compared eight at a time by the compiled :attr:`JitKernels.same`)."""
    if a.size != key.size:
        return False
    n8 = a.size - a.size % 8
    if n8 and not jk.same(a[:n8].view(np.uint64), key[:n8].view(np.uint64)):
        return False
    return bool(np.array_equal(a[n8:], key[n8:]))


def _scratch(nbytes: int) -> np.ndarray:
    """A uint8 array of ``nbytes`` for the im2col rows of one product: one buffer per
    thread, grown as needed and reused (a fresh large array costs its page faults on every
    run)."""
    buf: np.ndarray | None = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < nbytes:
        buf = _SCRATCH.buf = np.empty(max(nbytes, 1 << 16), np.uint8)
    return buf[:nbytes]


_SCRATCH = threading.local()


def _raw(mem: np.ndarray, src: _Src, nbytes: int) -> np.ndarray:
    """The ``nbytes`` bytes of ``src`` (uint8, from the DDR ``mem``): a view of DDR when the
    LOAD's box is contiguous and unpadded, else gathered as the LOAD writes them."""
    box, off = src
    at = box.flat()
    if at is not None:
        return mem[at + off : at + off + nbytes]
    view = _strided(mem, box.ddr, box.n0, box.n1, box.n2, box.s0, box.s1)
    if any(box.pads):
        t, _, lf, _ = box.pads
        tile = np.full(box.shape, box.pad_value, np.uint8)
        tile[t : t + box.n0, lf : lf + box.n1] = view
    else:
        tile = np.ascontiguousarray(view)
    return tile.reshape(-1)[off : off + nbytes]


def _groups(units: list[_Unit]) -> list[_Group]:
    """The products of the epoch (see the module docstring, Products): the units reading
    the same input tiles (same boxes and geometries but the output channels) give a row
    block whose column blocks are their weights and parameters; tiles with the same list
    of column blocks are stacked into one product, at most :data:`_COLS_MAX` bytes of
    im2col rows each. Sets every unit's :attr:`_Unit.at`."""
    tiles: dict[tuple[object, ...], list[int]] = {}
    groups: list[_Group] = []
    dw: dict[tuple[object, ...], int] = {}  # geometry -> its open group
    for u, unit in enumerate(units):
        geo = unit.links[0][1]
        if geo.path == "int8-depthwise":  # side by side with the tiles of its geometry
            dkey = (geo.in_h, geo.in_w, geo.kh, geo.kw, geo.stride, geo.pads, geo.pad_value)
            gi = dw.get(dkey, -1)
            if gi < 0 or (groups[gi].n + geo.out_c) * geo.in_h * geo.in_w > _COLS_MAX:
                gi = dw[dkey] = len(groups)
                groups.append(_Group((geo.kh * geo.kw,), [], []))
            grp = groups[gi]
            unit.at = (gi, 0, grp.n)
            grp.tiles.append(_Tile(unit.links, geo.oh * geo.ow))
            grp.blocks.append(
                _Block(
                    unit.ws, unit.p1_at, unit.pn_at, geo.out_c, unit.bounds, unit.zp, unit.table_at
                )
            )
            continue
        tkey = tuple(
            (box, g.in_h, g.in_w, g.in_c, g.kh, g.kw, g.stride, g.pads, g.pad_value, g.oh, g.ow)
            for box, g in unit.links
        )
        tiles.setdefault(tkey, []).append(u)
    by_blocks: dict[tuple[tuple[int, ...], tuple[_Block, ...]], list[list[int]]] = {}
    for members in tiles.values():
        ks = tuple(g.kh * g.kw * g.in_c for _, g in units[members[0]].links)
        sig = tuple(
            _Block(
                units[u].ws,
                units[u].p1_at,
                units[u].pn_at,
                units[u].geo.out_c,
                units[u].bounds,
                units[u].zp,
                units[u].table_at,
            )
            for u in members
        )
        by_blocks.setdefault((ks, sig), []).append(members)
    for (ks, sig), row_sets in by_blocks.items():
        blocks = list(sig)
        cur: _Group | None = None
        for members in row_sets:
            geo = units[members[0]].geo
            rows = geo.oh * geo.ow
            if cur is None or (cur.m + rows) * sum(ks) > _COLS_MAX:
                cur = _Group(ks, [], blocks)
                groups.append(cur)
            r0 = cur.m
            cur.tiles.append(_Tile(units[members[0]].links, rows))
            c0 = 0
            for u in members:
                units[u].at = (len(groups) - 1, r0, c0)
                c0 += units[u].geo.out_c
    return groups


__all__ = ["Covers", "EpochPlan", "build_epoch", "save_extents", "writes_of"]
