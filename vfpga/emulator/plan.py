"""Precompiled execution plans of a core's barrier epochs (the emulator's fast path).

Everything about an epoch except the data is static: the instruction fields, the buffer
and DDR addresses, the token protocol and hence the order in which the reference
interpreter (:meth:`vfpga.emulator.core.Core.run_segment`) executes the LOAD, CALC and SAVE
queues, and the happens-before relation between modules. :func:`build_plan` simulates that
interpreter once per (segment, physical core, token counts at entry) without touching any
data and checks, in the interpreter's order:

* token waits (a wait that can never be satisfied is a deadlock),
* DDR boxes against the task's region, SAVE boxes that overlap themselves,
* on-chip spans against the buffer sizes and alignments,
* CONV geometry (the checks ``Core._conv`` makes before it reads anything),
* with hazard checks on, every on-chip access against the vector clocks (read-after-write,
  write-after-read), exactly as ``Core._access`` does.

If any of these would fault, there is no plan (``None``) and the caller runs the segment
on the reference interpreter, which reports the very same fault after the very same side
effects. Otherwise the plan is a straight-line list of steps in the interpreter's order:
LOAD/SAVE are two ``numpy.copyto`` calls on views of DDR and the buffer bound at build time;
CONV/POOL/ELTWISE are *prepared steps* on operand views bound at build time (each view must
be an access :func:`calc_accesses` listed, else an internal-error fault): a CONV's geometry
and static fields are validated once (:func:`vfpga.emulator.kernels.conv_geometry`), and it
computes with :func:`vfpga.emulator.kernels.conv_prepared`; its float32 weights, parameter
records and padded float32 input are *slots* (:class:`_Slot`) shared by the CONVs that read
the same bytes with no write in between (proved at build time from the last writer of each
byte), and weights/records are kept between runs while the buffer bytes are exactly the
same (compared on every run: whatever wrote DDR or the buffers in between, nothing stale
is used; :class:`PreparedBudget` bounds the float32 weights kept), unless one LOAD of the
segment copied every byte of them from DDR bytes that no SAVE of the program and no tensor
of its memory map can write: then only after someone took the region's bytes
(:attr:`_Slot.fixed`, as the epoch plans' kept weights). Data-dependent checks
(invalid parameter records, pool/eltwise kernel faults) fault exactly as ``Core._conv``/
``_pool``/``_eltwise`` would; a CALC whose static fields the kernels reject runs the Core
method itself, with the per-access hazard stamping replaced by a membership test against
the accesses the plan analysed (:attr:`SegmentPlan.calc_accesses`).

Hazards never cross a barrier (after a SYNC/END every module is ordered after every earlier
access), so the analysis of a segment starts from clean clocks: the plan is valid whatever
ran before it, given the token counts at entry.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import numpy as np

from vfpga.emulator import int_matmul, jit, jit_elt, kernels
from vfpga.emulator.core import (
    _NEIGHBOURS,
    _READER,
    _WRITER,
    Core,
    CoreCounters,
    ExecContext,
    describe,
)
from vfpga.emulator.ddr import Region
from vfpga.emulator.faults import ExecutionFault
from vfpga.hw.config import BUFFER_NAMES
from vfpga.isa.effects import out_hw
from vfpga.isa.spec import (
    MODULE_OF,
    PARAM_RECORD_BYTES,
    Act,
    Buffer,
    Dep,
    Module,
    Opcode,
    PoolMode,
    TokenQueue,
    conv_pbuf_bytes,
)

_L, _C, _S = Module.LOAD, Module.CALC, Module.SAVE
_OPS = {int(op): op for op in Opcode}
#: the token queues the interpreter keeps, in a fixed order (the plan cache key)
TOKEN_KEYS: tuple[TokenQueue, ...] = tuple(
    (a, b) for a in (_L, _C, _S) for b in (_L, _C, _S) if a != b
)

#: One on-chip access: (buffer, byte address, byte count, alignment, is a write).
Access = tuple[Buffer, int, int, int, bool]


class _NoPlan(Exception):
    """The segment faults statically: run it on the reference interpreter."""


def calc_accesses(f: dict[str, int]) -> list[Access]:
    """The on-chip accesses of a CONV, POOL or ELTWISE with fields ``f``, in the order
    ``Core._conv`` / ``_pool`` / ``_eltwise`` make them. Raises :class:`_NoPlan` where
    ``Core._conv`` raises before its first access (invalid geometry)."""
    op = _OPS[f["opcode"]]
    if op is Opcode.CONV:
        in_h, in_w, in_c, out_c, g = f["in_h"], f["in_w"], f["in_c"], f["out_c"], f["groups"]
        kh, kw, sh, sw = f["kh"], f["kw"], f["stride_h"], f["stride_w"]
        if g < 1 or in_c % g or out_c % g or kh < 1 or kw < 1 or sh < 1 or sw < 1:
            raise _NoPlan
        oh, ow = out_hw(f)
        if oh < 1 or ow < 1 or in_h < 1 or in_w < 1 or out_c < 1:
            raise _NoPlan
        acc: list[Access] = [
            (Buffer.IBUF, f["in_addr"], in_h * in_w * in_c, 1, False),
            (Buffer.WBUF, f["w_addr"], out_c * kh * kw * (in_c // g), 1, False),
            (Buffer.PBUF, f["p_addr"],
             conv_pbuf_bytes(out_c, Act.NONE if f["acc_out"] else f["act"]), 4, False),
        ]
        if f["acc_in"]:
            acc.append((Buffer.ABUF, f["acc_addr"], oh * ow * out_c * 4, 4, False))
        if f["acc_out"]:
            acc.append((Buffer.ABUF, f["out_addr"], oh * ow * out_c * 4, 4, True))
        else:
            acc.append((Buffer.OBUF, f["out_addr"], oh * ow * out_c, 1, True))
        return acc
    if op is Opcode.POOL:
        in_h, in_w, c = f["in_h"], f["in_w"], f["c"]
        acc = [(Buffer.IBUF, f["in_addr"], in_h * in_w * c, 1, False)]
        try:
            mode = PoolMode(f["mode"])
        except ValueError:
            raise _NoPlan from None
        if mode is PoolMode.GLOBAL_AVG:
            oh = ow = 1
        else:
            kh, kw, sh, sw = f["kh"], f["kw"], f["stride_h"], f["stride_w"]
            if min(kh, kw, sh, sw, in_h, in_w) < 1:
                raise _NoPlan  # the kernel rejects it after the read: let it say so
            oh, ow = out_hw(f)
            if oh < 1 or ow < 1:
                raise _NoPlan
        acc.append((Buffer.OBUF, f["out_addr"], oh * ow * c, 1, True))
        return acc
    if op is Opcode.ELTWISE:
        n = f["n"]
        return [
            (Buffer.IBUF, f["a_addr"], n, 1, False),
            (Buffer.IBUF, f["b_addr"], f["b_period"] or n, 1, False),
            (Buffer.OBUF, f["out_addr"], n, 1, True),
        ]
    raise _NoPlan  # pragma: no cover - SYNC/END never reach a module queue


# --------------------------------------------------------------------------- prepared CALC


class PreparedBudget:
    """How many bytes of prepared (float32) weights the plans of one accelerator may keep
    between runs (:class:`_Slot` with ``retain``); a slot over budget is recomputed on
    every run instead. Bytes return to the budget when the plan holding them is freed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, owner: object, nbytes: int) -> bool:
        """Reserve ``nbytes`` for ``owner`` (released when ``owner`` is garbage
        collected); False if that would exceed the limit."""
        if self.used + nbytes > self.limit:
            return False
        self.used += nbytes
        weakref.finalize(owner, self._release, nbytes)
        return True

    def _release(self, nbytes: int) -> None:
        self.used -= nbytes


#: The value of a parameter slot: per-channel bias (int32), scale and divisor (float32;
#: no divisor when every divisor is 1), as :func:`vfpga.emulator.kernels.unpack_params`.
_Params = tuple[np.ndarray, np.ndarray, np.ndarray | None]


class _Slot:
    """A value derived from the bytes ``raw`` of an on-chip buffer range (prepared
    weights, parameter records, a padded float32 input), shared by the CALC steps of a
    plan that read that range with no write to it in between (the build-time analysis
    proves it: every step of the slot sees the same last writer of the range).

    The first of those steps in plan order (the *leader*) sets :attr:`value` on every run:
    with ``retain``, from the previous run's value if ``raw`` still holds the same bytes
    as then (compared exactly: a stale value is impossible whatever wrote the buffer or
    DDR in between; not compared while :attr:`fixed` proves it), else by ``compute``; the
    other steps use it as is. Values of slots without ``retain`` are dropped at the end of
    each run."""

    __slots__ = ("__weakref__", "compute", "fixed", "gen", "key", "raw", "retain", "tiles",
                 "users", "value")

    def __init__(self, raw: np.ndarray, compute: Callable[[np.ndarray], object],
                 retain: bool) -> None:
        self.raw = raw
        self.compute = compute
        self.retain = retain
        #: the task's DDR region when ``raw`` is, on every run, exactly what one LOAD of
        #: the plan copied from DDR bytes that no SAVE of the loaded program and no tensor
        #: of its memory map can write (proved at build time, see :func:`build_plan`):
        #: then those bytes change only through :attr:`Region.mem`, counted in
        #: :attr:`Region.handed_out`, and while that count is :attr:`gen` the kept value
        #: is current without comparing (None: always compared)
        self.fixed: Region | None = None
        self.gen = -1
        self.users = 1  # steps reading the value (the leader and its followers)
        #: derived per-row copies of a parameter value (see :func:`_tiled`)
        self.tiles: tuple[object, dict[tuple[int, bool], tuple[np.ndarray, ...]]] | None = None
        self.key: bytes | None = None
        self.value: object = None

    def lead(self) -> object:
        """Make :attr:`value` current (the leader's job) and return it."""
        if self.retain:
            fixed = self.fixed
            if fixed is not None and self.gen == fixed.handed_out and self.value is not None:
                return self.value
            cur = self.raw.tobytes()
            if cur != self.key or self.value is None:
                self.value = None
                self.value = self.compute(self.raw)  # may raise: then nothing is kept
                self.key = cur
            if fixed is not None:
                self.gen = fixed.handed_out
        else:
            self.value = self.compute(self.raw)
        return self.value


class _ConvStep:
    """A CONV whose geometry and static fields the plan validated at build time: reads
    its operands from views bound at build time, takes the float32 weights, parameter
    records and padded input from shared :class:`_Slot` s, and computes with
    :func:`vfpga.emulator.kernels.conv_prepared` (bit-identical to ``Core._conv``).
    A data-dependent fault (invalid parameter records) is reported as ``Core._conv``
    reports it."""

    def __init__(self, core: Core, ctx: ExecContext, i: int, f: dict[str, int],
                 geo: kernels.ConvGeometry, x: _Slot, x_lead: bool, w: _Slot, w_lead: bool,
                 p: _Slot, p_lead: bool, acc_in: np.ndarray | None, out: np.ndarray) -> None:
        self.core, self.ctx, self.i = core, ctx, i
        self.geo = geo
        self.x, self.x_lead, self.w, self.w_lead, self.p, self.p_lead = (
            x, x_lead, w, w_lead, p, p_lead)
        self.acc_in = acc_in
        self.out = out
        #: the pbuf view of the activation table of ``act = TABLE`` (else None); set by
        #: :func:`_calc_step`
        self.table: np.ndarray | None = None
        self._act: Callable[[], None] | None = None  # its lookup, see :meth:`set_table`
        #: exact int32 sums and the fused output stage (``"int8"``, ``"int8-depthwise"``)
        self.int8 = geo.path in ("int8", "int8-depthwise")
        #: the output stage runs as one compiled pass (:mod:`vfpga.emulator.jit`)
        jk = jit.get()
        self.fused = self.int8 and out.flags.c_contiguous and jk is not None
        #: (address, bytes) of the abuf partial sums read, and of the abuf range written
        #: (``None``: none); set by :func:`_calc_step`
        self.acc_in_at: tuple[int, int] | None = None
        self.acc_out_at: tuple[int, int] | None = None
        self.acc_out = bool(f["acc_out"])
        self.out_zp = 0 if self.acc_out else int(f["out_zp"])
        self.bounds = ((kernels.INT8_MIN, kernels.INT8_MAX) if self.acc_out
                       else kernels.act_bounds(Act(f["act"]), f["act_lo"], f["act_hi"]))
        g = geo
        self.macs = kernels.conv_macs(g.oh, g.ow, g.out_c, g.kh, g.kw, g.in_c, g.groups)
        if self.fused:  # everything the compiled output stage needs, bound once
            m, n = g.oh * g.ow, g.out_c
            gg = 1 if g.path == "int8-depthwise" else g.groups
            assert jk is not None
            self._jk: jit.JitKernels = jk
            self._sums = kernels.int8_product(g)
            self._p3 = (gg, m, n // gg)
            self._o2 = out.reshape(m, n)
            self._acc2 = None if acc_in is None else acc_in.reshape(m, n)
            self._lo = np.float32(self.bounds[0] - self.out_zp)
            self._hi = np.float32(self.bounds[1] - self.out_zp)
            #: a requantized depthwise CONV from its biases: sums and output stage in one
            #: compiled pass (``JitKernels.depthwise_requant``), its static arguments
            self._dw: tuple[int, ...] | None = None
            if g.path == "int8-depthwise" and acc_in is None and not self.acc_out:
                t, _, lf, _ = g.pads
                self._dw = (g.kh, g.kw, g.stride[0], g.stride[1], t, lf)
            #: the parameter value the arguments below were made from (by identity: a
            #: slot's value is replaced, never changed in place) and those arguments
            self._pv: object = None
            self._pargs: tuple[object, ...] = ()

    def _fused(self, xp: np.ndarray, wt: np.ndarray, bias: np.ndarray, scale: np.ndarray,
               divisor: np.ndarray | None) -> None:
        """The exact sums, then start + output stage in one compiled pass (what
        :func:`vfpga.emulator.kernels.conv_int8_into` computes, without its per-call
        shape handling)."""
        if self._dw is not None:
            self._jk.depthwise_requant(xp, self.geo.pad_value, wt, *self._dw,
                                       bias.reshape(1, -1), scale,
                                       scale if divisor is None else divisor,
                                       divisor is not None, self._lo, self._hi, self.out_zp,
                                       self.out)
            return
        self._product(xp, wt, bias, scale, divisor)

    def _product(self, xp: np.ndarray, wt: np.ndarray, bias: np.ndarray, scale: np.ndarray,
                 divisor: np.ndarray | None) -> None:
        """The non-depthwise part of :meth:`_fused`: the exact product, then the compiled
        output stage."""
        prod = self._sums(xp, wt).reshape(self._p3)
        acc2 = self._acc2
        st, per_row = (bias.reshape(1, -1), False) if acc2 is None else (acc2, True)
        self._jk.output_stage(prod, st, per_row, self._o2, acc_out=self.acc_out, scale=scale,
                              divisor=divisor, lo=self._lo, hi=self._hi, zp=self.out_zp)

    def __call__(self) -> None:
        if self.fused:
            self._run_fused()
        else:
            self._compute()
        if self._act is not None:  # act=table: read at run time (pbuf may be reloaded)
            self._act()

    def _run_fused(self) -> None:
        """:meth:`_compute` of a fused step, with the per-call work done once: the slots
        read directly, the compiled call's parameter arguments remade only when the
        parameter value changes (a new object)."""
        p = self.p
        if self.p_lead:
            try:
                pv = p.lead()
            except ValueError as exc:
                raise ExecutionFault(f"{describe(self.ctx, self.core.index, self.i)}: {exc}"
                                     ) from None
        else:
            pv = p.value
        w = self.w
        wt = w.lead() if self.w_lead else w.value
        x = self.x
        xp = x.lead() if self.x_lead else x.value
        if pv is not self._pv:
            bias, scale, divisor = cast(_Params, pv)
            if self._dw is not None:
                self._pargs = (*self._dw, bias.reshape(1, -1), scale,
                               scale if divisor is None else divisor, divisor is not None,
                               self._lo, self._hi, self.out_zp, self.out)
            else:
                self._pargs = (bias, scale, divisor)
            self._pv = pv
        if self._dw is not None:
            self._jk.depthwise_requant(xp, self.geo.pad_value, wt, *self._pargs)
        else:
            self._product(xp, wt, *self._pargs)  # type: ignore[arg-type]
        self.core.counters.macs += self.macs

    def set_table(self, table: np.ndarray) -> None:
        """Make the step apply the ``act = TABLE`` activation whose 256 int8 entries are
        the pbuf view ``table`` (read on every run): one bound compiled lookup where it
        can (:func:`vfpga.emulator.kernels.apply_act_table` otherwise)."""
        self.table = table
        jk = jit.get()
        if jk is not None and self.out.flags.c_contiguous and table.flags.c_contiguous:
            self._act = partial(jk.act_lookup, kernels.act_table(table), self.out.reshape(-1))
        else:
            self._act = lambda: kernels.apply_act_table(self.out, kernels.act_table(table))

    def _compute(self) -> None:
        try:
            bias, scale, divisor = cast(_Params, self.p.lead() if self.p_lead else self.p.value)
        except ValueError as exc:
            raise ExecutionFault(f"{describe(self.ctx, self.core.index, self.i)}: {exc}"
                                 ) from None
        wt = cast(np.ndarray, self.w.lead() if self.w_lead else self.w.value)
        xp = cast(np.ndarray, self.x.lead() if self.x_lead else self.x.value)
        if self.fused:
            self._fused(xp, wt, bias, scale, divisor)
            self.core.counters.macs += self.macs
            return
        if self.int8:
            geo = self.geo
            # numpy: whole-array operands are faster than broadcasting a vector
            tiles = _tiled(self.p, geo.oh, geo.ow, need_scale=not self.acc_out)
            start = tiles[0] if self.acc_in is None else self.acc_in
            sc = tiles[1] if len(tiles) > 1 else None
            kernels.conv_int8_into(
                geo, xp, wt, start, self.out, acc_out=self.acc_out,
                scale=sc, divisor=divisor, out_zp=self.out_zp, bounds=self.bounds)
            self.core.counters.macs += self.macs
            return
        start = bias if self.acc_in is None else self.acc_in
        self.out[...] = kernels.conv_prepared(
            self.geo, xp, wt, start, acc_out=self.acc_out,
            scale=scale, divisor=divisor, out_zp=self.out_zp, bounds=self.bounds)
        self.core.counters.macs += self.macs


class _Chain:
    """CONVs ``c_1 .. c_n`` of one output tile accumulating input-channel chunks in one
    abuf range ``R``: ``c_1`` starts from its biases and writes ``R`` (``acc_out``),
    ``c_2 .. c_{n-1}`` read and write ``R`` in place, ``c_n`` reads ``R`` and requantizes.
    :func:`_fuse_chains` proved at build time that no other step touches ``R`` in between.

    Instead of ``n - 1`` products of ``K_i``-long reductions, each ``c_i`` (``i < n``) only
    builds its uint8 im2col columns into its column block of one matrix ``A [m][sum K_i]``
    and records its weights; ``c_n`` first computes ``R = bias + A @ [W_1; ..; W_{n-1}]``
    in one exact product (int32 modulo ``2**32``, as the in-place sums give), then runs as
    usual. The stacked weights are kept between runs while every ``c_i`` sees the very same
    prepared weights object (its slot kept them: same bytes). If any step faults while the
    chain is open, :meth:`flush` writes ``R`` as the interpreter would have left it."""

    def __init__(self, members: list[_ConvStep], budget: PreparedBudget | None) -> None:
        self.members = members
        head = members[:-1]
        ks = [st.geo.kh * st.geo.kw * st.geo.in_c for st in head]
        self.offsets = [0]
        for k in ks:
            self.offsets.append(self.offsets[-1] + k)
        self.a = np.empty((members[0].geo.oh * members[0].geo.ow, self.offsets[-1]), np.uint8)
        for st, lo, hi in zip(head, self.offsets, self.offsets[1:], strict=False):
            st.x.compute.target = self.a[:, lo:hi]  # type: ignore[attr-defined]
        self.r = members[0].out  # the int32 abuf view of R
        self.budget = budget
        self._jit = jit.get()
        self.weights: list[np.ndarray | None] = [None] * len(head)
        self.bias: np.ndarray | None = None
        self.captured = 0  # members of the open chain that ran this run (0: not open)
        self._stack_of: tuple[object, ...] = ()
        self._stack: np.ndarray | None = None
        self._budgeted = False

    def capture(self, k: int) -> None:
        """Step of member ``k < n - 1``: its slots' values, its columns into ``A``."""
        st = self.members[k]
        try:
            if st.p_lead:
                st.p.lead()
        except ValueError as exc:
            raise ExecutionFault(f"{describe(st.ctx, st.core.index, st.i)}: {exc}") from None
        self.weights[k] = cast(np.ndarray, st.w.lead() if st.w_lead else st.w.value)
        st.x.lead()  # writes the member's block of A
        if k == 0:
            self.bias = (cast(_Params, st.p.value)[0] if self._jit is not None
                         else _tiled(st.p, st.geo.oh, st.geo.ow, need_scale=False)[0])
        self.captured = k + 1
        st.core.counters.macs += st.macs

    def finish(self) -> None:
        """Step of ``c_n``: ``R`` from the stacked product, then ``c_n`` itself."""
        self._write_partial(len(self.members) - 1)
        self.captured = 0
        self.members[-1]()

    def flush(self) -> None:
        """Write ``R`` for the members that ran, if the chain is open (after a fault)."""
        if self.captured:
            self._write_partial(self.captured)
            self.captured = 0

    def _write_partial(self, count: int) -> None:
        mm = int_matmul.require()
        ws = self.weights[:count]
        if count == len(self.weights):
            if self._stack is None or any(
                    a is not b for a, b in zip(self._stack_of, ws, strict=True)):
                self._stack = _stack_weights(ws)  # type: ignore[arg-type]
                self._stack_of = tuple(ws)
                if not self._budgeted:  # keep it only within the budget
                    nbytes = self._stack.nbytes
                    self._budgeted = self.budget is None or self.budget.take(self, nbytes)
            b = self._stack
            if not self._budgeted:
                self._stack, self._stack_of = None, ()
            a = self.a
        else:
            b = _stack_weights(ws)  # type: ignore[arg-type]
            a = np.ascontiguousarray(self.a[:, : self.offsets[count]])
        p = mm(a, b)
        bias = self.bias
        assert bias is not None  # set by capture(0), which runs first
        jk = self._jit
        if jk is not None and self.r.flags.c_contiguous:
            n = self.r.shape[-1]
            jk.accumulate(p.reshape(1, -1, n), bias.reshape(1, n), False, self.r.reshape(-1, n))
            return
        p = p.reshape(self.r.shape)
        p += bias  # int32, wraps modulo 2**32
        self.r[...] = p


def _tiled(p: _Slot, oh: int, ow: int, need_scale: bool) -> tuple[np.ndarray, ...]:
    """The bias (and with ``need_scale`` the scale) of the current value of parameter
    slot ``p`` repeated to ``[oh][ow][N]``: numpy adds and multiplies whole arrays much
    faster than it broadcasts a short per-channel vector over many rows. Kept on the slot
    while its value is the same object (same bytes)."""
    value = p.value
    cache = p.tiles
    if cache is None or cache[0] is not value:
        cache = p.tiles = (value, {})
    key = (oh * ow, need_scale)
    got = cache[1].get(key)
    if got is None:
        bias, scale, _ = cast(_Params, value)
        got = (np.tile(bias, (oh * ow, 1)).reshape(oh, ow, -1),)
        if need_scale:
            got += (np.tile(scale, (oh * ow, 1)).reshape(oh, ow, -1),)
        cache[1][key] = got
    return got


def _stack_weights(ws: list[np.ndarray]) -> np.ndarray:
    """The int8 weights ``[1][K_i][N]`` of ``ws`` stacked along the reduction: ``[sum
    K_i][N]``."""
    return np.concatenate([w[0] for w in ws], axis=0)


#: Chains shorter than this are not fused (nothing to gain).
_CHAIN_MIN = 3


def _fuse_chains(steps: list[Callable[[], None]], abuf_use: list[list[tuple[int, int]]],
                 budget: PreparedBudget | None) -> list[_Chain]:
    """Find the accumulation chains of :class:`_Chain` in ``steps`` (plan order) and
    replace their steps in place. A chain qualifies when its members are ``"int8"`` path
    CONVs with one group and equal output shapes, ``c_1`` starts from biases, each of
    ``c_2 .. c_n`` reads exactly the range ``R`` the previous one wrote, ``c_1 .. c_{n-1}``
    each lead an input slot no other step reads, and no other step between ``c_1`` and
    ``c_n`` accesses abuf bytes of ``R``."""
    chains: list[_Chain] = []
    cur: list[int] = []
    region: tuple[int, int] | None = None

    def overlaps(use: list[tuple[int, int]]) -> bool:
        assert region is not None
        lo, n = region
        return any(a < lo + n and lo < a + m for a, m in use)

    def head_ok(st: _ConvStep) -> bool:
        return (st.int8 and st.geo.groups == 1 and st.x_lead and st.x.users == 1
                and isinstance(st.x.compute, kernels.Im2colU8))

    for idx, st in enumerate(steps):
        if isinstance(st, _ConvStep):
            if st.acc_in_at is None:
                cur = []
                if st.acc_out_at is not None and head_ok(st):
                    cur, region = [idx], st.acc_out_at
                continue
            if cur and st.acc_in_at == region:
                first = steps[cur[0]]
                assert isinstance(first, _ConvStep)
                same = (st.geo.oh, st.geo.ow, st.geo.out_c) == (
                    first.geo.oh, first.geo.ow, first.geo.out_c)
                if same and st.acc_out_at == region and head_ok(st):
                    cur.append(idx)
                    continue
                if same and st.acc_out_at is None:
                    cur.append(idx)
                    if len(cur) >= _CHAIN_MIN:
                        members = [steps[j] for j in cur]
                        chain = _Chain(members, budget)  # type: ignore[arg-type]
                        for k, j in enumerate(cur[:-1]):
                            steps[j] = partial(chain.capture, k)
                        steps[cur[-1]] = chain.finish
                        chains.append(chain)
                    cur = []
                    continue
            cur = []
            continue
        if cur and overlaps(abuf_use[idx]):
            cur = []
    return chains


def _kernel_step(core: Core, ctx: ExecContext, i: int, fn: Callable[..., np.ndarray],
                 args: tuple[np.ndarray, ...], kwargs: dict[str, object], out: np.ndarray
                 ) -> Callable[[], None]:
    """A POOL or ELTWISE on operand views bound at build time (``Core._pool`` /
    ``_eltwise`` without the per-call span arithmetic), faulting as they do."""

    def step() -> None:
        try:
            res = fn(*args, **kwargs)
        except ValueError as exc:
            raise ExecutionFault(f"{describe(ctx, core.index, i)}: {exc}") from None
        out[...] = res.reshape(-1)

    return step


def _checked_step(core: Core, ctx: ExecContext, i: int, fn: Callable[[], str | None]
                  ) -> Callable[[], None]:
    """A prepared CALC step ``fn`` whose static fields were validated at build time; it
    returns the message of a data-dependent error, reported as ``Core._pool`` does."""

    def step() -> None:
        err = fn()
        if err is not None:
            raise ExecutionFault(f"{describe(ctx, core.index, i)}: {err}")

    return step


@dataclass
class SegmentPlan:
    """A segment of one core, analysed and bound: run :attr:`steps` in order.

    ``order`` holds the instruction indices in execution order (``steps[k]`` executes
    ``order[k]``); ``seq_delta`` the instructions per module; ``exit_tokens`` the token
    count of every queue of :data:`TOKEN_KEYS` after the segment; ``calc_accesses`` the
    (buffer, address, bytes, is write) of every CALC access the hazard analysis covered
    (``None`` when hazard checks are off)."""

    order: list[int]
    ops: list[str]
    steps: list[Callable[[], None]]
    load_bytes: list[int]
    save_bytes: list[int]
    seq_delta: tuple[int, int, int]
    exit_tokens: tuple[int, ...]
    calc_accesses: frozenset[tuple[Buffer, int, int, bool]] | None
    insn_counts: dict[str, int] = field(default_factory=dict)
    #: slots whose values are dropped after each run (see :class:`_Slot`)
    transient: list[_Slot] = field(default_factory=list, repr=False)
    #: fused accumulation chains (see :class:`_Chain`), flushed if a step faults
    chains: list[_Chain] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        #: the bytes all LOADs and all SAVEs of the segment move (added once per run)
        self.load_total = sum(self.load_bytes)
        self.save_total = sum(self.save_bytes)
        #: what :meth:`finish` adds and sets, as flat tuples
        self._insn_items = tuple(self.insn_counts.items())
        self._exit = tuple(zip(TOKEN_KEYS, self.exit_tokens, strict=True))

    def run(self, core: Core, finish: bool = True) -> None:
        """Execute the segment on ``core`` (the one it was built for) and leave the core's
        sequence numbers and token counts as the interpreter would (without ``finish``:
        the caller does, :meth:`finish` or :mod:`vfpga.emulator.ledger`). A fault raised
        by a CALC method propagates after the counters of the executed prefix are
        updated, as in the interpreter."""
        counters = core.counters
        core._plan_accesses = self.calc_accesses
        k = 0
        try:
            for k, step in enumerate(self.steps):  # noqa: B007 - k is used on a fault
                step()
        except BaseException:
            for chain in self.chains:
                chain.flush()  # abuf as the interpreter leaves it at the fault
            for j in range(k + 1):
                counters.insns[self.ops[j]] += 1
                if j < k:
                    counters.load_bytes += self.load_bytes[j]
                    counters.save_bytes += self.save_bytes[j]
            raise
        finally:
            core._plan_accesses = None
            for slot in self.transient:
                slot.value = None
        if finish:
            self.finish(core)

    def finish(self, core: Core, counters: CoreCounters | None = None) -> None:
        """Count the whole segment on ``counters`` (default: ``core``'s) and leave the
        core's sequence numbers and token counts as the interpreter would after it (the
        end of :meth:`run`; an epoch plan, :mod:`vfpga.emulator.epoch`, that computed the
        segment's effects another way calls it too)."""
        c = core.counters if counters is None else counters
        insns = c.insns
        for name, n in self._insn_items:
            insns[name] += n
        c.load_bytes += self.load_total
        c.save_bytes += self.save_total
        seq = core.seq
        d0, d1, d2 = self.seq_delta
        seq[0] += d0
        seq[1] += d1
        seq[2] += d2
        tokens = core.tokens
        for key, n in self._exit:
            q = tokens[key]
            if len(q) != n:
                q.clear()
                q.extend([(seq[0], seq[1], seq[2])] * n)


def token_counts(core: Core) -> tuple[int, ...]:
    """The core's token count of every queue of :data:`TOKEN_KEYS`."""
    return tuple(map(len, map(core.tokens.__getitem__, TOKEN_KEYS)))


def _row_views(dst: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``dst`` and ``src`` (uint8 boxes of one shape, innermost axis contiguous) with each
    innermost row as one opaque element (numpy void of the row's length): the same bytes,
    copied a row at a time instead of element by element (2-3x faster for the short rows
    of channel-chunk loads)."""
    n = src.shape[-1]
    if n == 0 or src.strides[-1] != 1 or dst.strides[-1] != 1:
        return dst, src
    row = np.dtype((np.void, n))
    return dst.view(row)[..., 0], src.view(row)[..., 0]


def _load_step(dst: np.ndarray, inner: np.ndarray, box: np.ndarray, pad: np.uint8 | None
               ) -> Callable[[], None]:
    inner, box = _row_views(inner, box)
    if pad is None:
        return partial(inner.__setitem__, Ellipsis, box)  # a copy, without copyto's dispatch

    def step() -> None:
        dst.fill(pad)
        np.copyto(inner, box)

    return step


def build_plan(core: Core, ctx: ExecContext, indices: np.ndarray,
               budget: PreparedBudget | None = None,
               writable: tuple[np.ndarray, np.ndarray] | None = None) -> SegmentPlan | None:
    """The plan of ``indices`` (one segment, program order, no SYNC/END) on ``core`` from
    its current token counts, or ``None`` if running the segment would fault on something
    static (the interpreter then reports it). ``budget`` bounds the prepared float32
    weights the plan keeps between runs (``None``: no bound). ``writable``: the DDR
    ranges (merged, sorted ``[lo, hi)``, region offsets) that the loaded program's SAVEs
    and the tensors of its memory map can write (``Task._writable``); a kept value made
    from bytes one LOAD copied from outside them is not compared again while the region's
    :attr:`~vfpga.emulator.ddr.Region.handed_out` is unchanged (:attr:`_Slot.fixed`;
    ``None``: always compared)."""
    try:
        return _build(core, ctx, indices, budget, writable)
    except _NoPlan:
        return None


def outside(writable: tuple[np.ndarray, np.ndarray], lo: int, hi: int) -> bool:
    """Whether the DDR bytes ``[lo, hi)`` meet none of the merged sorted ranges
    ``writable`` (starts, ends; ``vfpga.emulator.epoch.save_extents``)."""
    los, his = writable
    k = int(np.searchsorted(his, lo, side="right"))
    return not (k < len(los) and los[k] < hi)


def _build(core: Core, ctx: ExecContext, indices: np.ndarray,
           budget: PreparedBudget | None,
           writable: tuple[np.ndarray, np.ndarray] | None = None) -> SegmentPlan:
    prog = ctx.program
    fields = ctx.fields
    region = ctx.region
    bufs = core.buffers
    hazards = core.check_hazards
    queues: dict[Module, list[int]] = {_L: [], _C: [], _S: []}
    opcodes = prog.opcode[indices].tolist() if len(indices) else []
    idx_list = indices.tolist()
    for i, op in zip(idx_list, opcodes, strict=True):
        queues[MODULE_OF[_OPS[op]]].append(i)
    # token counts and vector-clock snapshots (local clocks: the barrier orders the past)
    tokens: dict[TokenQueue, list[tuple[int, int, int]]] = {
        k: [(0, 0, 0)] * len(core.tokens[k]) for k in TOKEN_KEYS
    }
    seq = [0, 0, 0]
    vc = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    wstamp: dict[Buffer, np.ndarray] = {}
    rstamp: dict[Buffer, np.ndarray] = {}
    if hazards:
        wstamp = {b: np.zeros(bufs[b].size, np.int32) for b in _WRITER}
        rstamp = {b: np.zeros(bufs[b].size, np.int32) for b in _READER}
    calc_seen: set[tuple[Buffer, int, int, bool]] = set()
    # per buffer byte: the id of the last write to it in plan order (0: before the segment)
    wver = [np.zeros(b.size, np.int32) for b in bufs]
    nwrites = [0]
    #: write id -> the DDR extent ``[lo, hi)`` the LOAD that made it copied from
    load_src: dict[int, tuple[int, int]] = {}
    slots: dict[tuple[object, ...], _Slot] = {}
    transient: list[_Slot] = []

    def slot(buf: Buffer, addr: int, raw: np.ndarray, tkey: tuple[object, ...],
             compute: Callable[[np.ndarray], object], retain_bytes: int | None
             ) -> tuple[_Slot, bool]:
        """The slot of the value ``compute(raw)`` (``tkey`` names the transform) of the
        bytes of ``buf`` at ``addr`` as the last write before now left them, and whether
        this step is its leader. ``retain_bytes``: keep the value between runs (its size
        in bytes, counted against ``budget``), ``None``: recompute every run."""
        nbytes = raw.nbytes
        ver = int(wver[buf][addr : addr + nbytes].max()) if nbytes else 0
        key = (buf, addr, nbytes, ver, tkey)
        hit = slots.get(key)
        if hit is not None:
            hit.users += 1
            return hit, False
        sl = _Slot(raw, compute, False)
        if retain_bytes is not None:
            sl.retain = budget is None or budget.take(sl, retain_bytes)
            src = load_src.get(ver) if nbytes else None
            if (sl.retain and src is not None and writable is not None
                    and int(wver[buf][addr : addr + nbytes].min()) == ver
                    and outside(writable, *src)):
                sl.fixed = region  # every byte from that one LOAD, of unwritable DDR
        if not sl.retain:
            transient.append(sl)
        slots[key] = sl
        return sl, True

    def access(m: Module, buf: Buffer, addr: int, nbytes: int, align: int, write: bool) -> None:
        if addr % align or addr + nbytes > bufs[buf].size:
            raise _NoPlan
        if m is _C:
            calc_seen.add((buf, addr, nbytes, write))
        if write and nbytes:
            nwrites[0] += 1
            wver[buf][addr : addr + nbytes] = nwrites[0]
        if not hazards or buf not in _WRITER or nbytes == 0:
            return
        sl = slice(addr, addr + nbytes)
        other = _READER[buf] if write else _WRITER[buf]
        stamps = rstamp[buf] if write else wstamp[buf]
        if other != m and int(stamps[sl].max()) > vc[m][other]:
            raise _NoPlan
        (wstamp[buf] if write else rstamp[buf])[sl] = seq[m]

    def ddr_box(f: dict[str, int]) -> np.ndarray:
        _lo, hi = region.box_extent(f["ddr"], f["n0"], f["n1"], f["n2"], f["stride0"],
                                   f["stride1"])
        if hi > region.bound:
            raise _NoPlan
        return region.box_view(f["ddr"], f["n0"], f["n1"], f["n2"], f["stride0"], f["stride1"])

    order: list[int] = []
    ops: list[str] = []
    steps: list[Callable[[], None]] = []
    load_bytes: list[int] = []
    save_bytes: list[int] = []
    counts: dict[str, int] = {}
    abuf_use: list[list[tuple[int, int]]] = []  # per step: its abuf (address, bytes)

    def execute(i: int, m: Module) -> None:
        f = fields[i]
        op = _OPS[f["opcode"]]
        lb = sb = 0
        step_abuf: list[tuple[int, int]] = []
        if op is Opcode.LOAD:
            n0, n1, n2 = f["n0"], f["n1"], f["n2"]
            pt, pb, pl, pr = f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"]
            box = ddr_box(f)
            rows, cols = pt + n0 + pb, pl + n1 + pr
            buf = Buffer(f["to"])
            nbytes = rows * cols * n2
            access(_L, buf, f["buf"], nbytes, 1, True)
            if nbytes:
                load_src[nwrites[0]] = region.box_extent(f["ddr"], n0, n1, n2, f["stride0"],
                                                         f["stride1"])
            if buf is Buffer.ABUF:
                step_abuf.append((f["buf"], nbytes))
            dst = bufs[buf][f["buf"] : f["buf"] + nbytes].reshape(rows, cols, n2)
            inner = dst[pt : pt + n0, pl : pl + n1, :]
            padded = bool(pt or pb or pl or pr)
            step = _load_step(dst, inner, box, np.uint8(f["pad_value"] & 0xFF) if padded else None)
            lb = n0 * n1 * n2
        elif op is Opcode.SAVE:
            n0, n1, n2 = f["n0"], f["n1"], f["n2"]
            s0, s1 = f["stride0"], f["stride1"]
            if (n1 > 1 and s1 < n2) or (n0 > 1 and s0 < (n1 - 1) * s1 + n2):
                raise _NoPlan
            box = ddr_box(f)
            nbytes = n0 * n1 * n2
            access(_S, Buffer.OBUF, f["buf"], nbytes, 1, False)
            src = bufs[Buffer.OBUF][f["buf"] : f["buf"] + nbytes].reshape(n0, n1, n2)
            dst_v, src_v = _row_views(box, src)
            step = partial(dst_v.__setitem__, Ellipsis, src_v)
            sb = nbytes
        else:
            accs = calc_accesses(f)
            for buf, addr, nbytes, align, _write in accs:  # bounds first: views below
                if addr % align or addr + nbytes > bufs[buf].size:
                    raise _NoPlan
            try:
                step = _calc_step(core, ctx, i, f, op, slot,
                                  {(b, a, n, w) for b, a, n, _, w in accs})
            except ValueError:  # a static field the kernel rejects: let Core fault on it
                method = {Opcode.CONV: core._conv, Opcode.POOL: core._pool,
                          Opcode.ELTWISE: core._eltwise}[op]
                step = partial(method, ctx, i, f)
            for buf, addr, nbytes, align, write in accs:
                access(_C, buf, addr, nbytes, align, write)
                if buf is Buffer.ABUF:
                    step_abuf.append((addr, nbytes))
        order.append(i)
        ops.append(op.name)
        steps.append(step)
        abuf_use.append(step_abuf)
        load_bytes.append(lb)
        save_bytes.append(sb)
        counts[op.name] = counts.get(op.name, 0) + 1

    # the interpreter's schedule (Core.run_segment), on counts instead of data
    heads = {_L: 0, _C: 0, _S: 0}
    remaining = len(idx_list)
    deps_arr = prog.deps
    while remaining:
        progressed = False
        for m in (_L, _C, _S):
            q = queues[m]
            h = heads[m]
            prev, nxt = _NEIGHBOURS[m]
            while h < len(q):
                i = q[h]
                deps = int(deps_arr[i])
                if deps & Dep.WAIT_PREV and not tokens[(prev, m)]:
                    break
                if deps & Dep.WAIT_NEXT and not tokens[(nxt, m)]:
                    break
                for bit, src in ((Dep.WAIT_PREV, prev), (Dep.WAIT_NEXT, nxt)):
                    if deps & bit:
                        snap = tokens[(src, m)].pop(0)
                        v = vc[m]
                        for k in range(3):
                            if snap[k] > v[k]:
                                v[k] = snap[k]
                seq[m] += 1
                execute(i, m)
                v = vc[m]
                v[m] = seq[m]
                snap = (v[0], v[1], v[2])
                if deps & Dep.SIGNAL_PREV:
                    tokens[(m, prev)].append(snap)
                if deps & Dep.SIGNAL_NEXT:
                    tokens[(m, nxt)].append(snap)
                h += 1
                remaining -= 1
                progressed = True
            heads[m] = h
        if not progressed:
            raise _NoPlan  # deadlock: the interpreter names the blocked instructions
    chains = _fuse_chains(steps, abuf_use, budget)
    return SegmentPlan(
        order=order,
        ops=ops,
        steps=steps,
        load_bytes=load_bytes,
        save_bytes=save_bytes,
        seq_delta=(seq[0], seq[1], seq[2]),
        exit_tokens=tuple(len(tokens[k]) for k in TOKEN_KEYS),
        calc_accesses=frozenset(calc_seen) if hazards else None,
        insn_counts=counts,
        transient=transient,
        chains=chains,
    )


_SlotFn = Callable[..., tuple[_Slot, bool]]
#: ELTWISE steps of at least this many operands look results up in a table of all 65536
#: operand pairs (built once per parameter set, ~a millisecond) instead of computing FMAs.
_ELTWISE_TABLE_MIN = 2048


def _calc_step(core: Core, ctx: ExecContext, i: int, f: dict[str, int], op: Opcode,
               slot: _SlotFn, covered: set[tuple[Buffer, int, int, bool]]
               ) -> Callable[[], None]:
    """The prepared step of a CALC instruction whose accesses ``covered`` (as
    :func:`calc_accesses` lists them) are in bounds. Raises ValueError if a static field
    is invalid (the caller then uses the Core method, which reports it), and
    :class:`ExecutionFault` (an internal error) if the step would access bytes
    :func:`calc_accesses` does not list."""

    def _view(buf: Buffer, addr: int, shape: tuple[int, ...], dtype: object,
              write: bool = False) -> np.ndarray:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
        n = int(np.prod(shape)) * dt.itemsize
        if (buf, addr, n, write) not in covered:
            raise ExecutionFault(
                f"{describe(ctx, core.index, i)}: internal error: {BUFFER_NAMES[buf]}"
                f"[0x{addr:x}, 0x{addr + n:x}) was not covered by the static hazard "
                "analysis (vfpga.emulator.plan.calc_accesses is out of date); rerun with "
                "Accelerator(fast=False)"
            )
        return core.buffers[buf][addr : addr + n].view(dt).reshape(shape)

    if op is Opcode.CONV:
        if f["fsum"] or f["in_scale"]:  # ISA v5 float32 sums: Core._conv (so no epoch)
            raise ValueError("fsum CONV")
        in_h, in_w, in_c, out_c, g = f["in_h"], f["in_w"], f["in_c"], f["out_c"], f["groups"]
        kh, kw = f["kh"], f["kw"]
        pads = (f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"])
        geo = kernels.conv_geometry((in_h, in_w, in_c), (out_c, kh, kw, in_c // g),
                                    stride=(f["stride_h"], f["stride_w"]), pads=pads,
                                    pad_value=f["pad_value"], groups=g,
                                    dilation=(f["dil_h"], f["dil_w"]),
                                    ups=(f["ups_h"], f["ups_w"]))
        acc_out = bool(f["acc_out"])
        if not acc_out:
            Act(f["act"])  # ValueError if unknown
            kernels.act_bounds(f["act"], f["act_lo"], f["act_hi"])
        oh, ow = geo.oh, geo.ow
        x = _view(Buffer.IBUF, f["in_addr"], (in_h, in_w, in_c), np.int8)
        w = _view(Buffer.WBUF, f["w_addr"], (out_c, kh, kw, in_c // g), np.int8)
        table_act = not acc_out and f["act"] == Act.TABLE
        pall = _view(Buffer.PBUF, f["p_addr"],
                     (conv_pbuf_bytes(out_c, Act.TABLE if table_act else Act.NONE),), np.uint8)
        p = pall[: out_c * PARAM_RECORD_BYTES]
        acc_in = (_view(Buffer.ABUF, f["acc_addr"], (oh, ow, out_c), "<i4")
                  if f["acc_in"] else None)
        out = (_view(Buffer.ABUF, f["out_addr"], (oh, ow, out_c), "<i4", True) if acc_out
               else _view(Buffer.OBUF, f["out_addr"], (oh, ow, out_c), np.int8, True))
        if geo.path == "int8":  # the slot holds the uint8 im2col matrix
            xs, xl = slot(Buffer.IBUF, f["in_addr"], x,
                          ("cols", x.shape, geo.pads, geo.pad_value, (kh, kw), geo.stride, g,
                           geo.dil, geo.ups),
                          kernels.Im2colU8(geo), None)
        else:
            xs, xl = slot(Buffer.IBUF, f["in_addr"], x,
                          ("x", x.shape, geo.pads, geo.pad_value, geo.path, geo.ups),
                          partial(kernels.conv_input, geo), None)
        ws, wl = slot(Buffer.WBUF, f["w_addr"], w, ("w", w.shape, geo.path, g),
                      partial(kernels.conv_weights, geo),
                      w.size if geo.path == "int8" else w.size * 4)
        ps, pl = slot(Buffer.PBUF, f["p_addr"], p, ("p", out_c, not acc_out),
                      partial(kernels.conv_params, out_c=out_c, validate=not acc_out), 0)
        step = _ConvStep(core, ctx, i, f, geo, xs, xl, ws, wl, ps, pl, acc_in, out)
        if table_act:
            step.set_table(pall[out_c * PARAM_RECORD_BYTES :].view(np.int8))
        if f["acc_in"]:
            step.acc_in_at = (f["acc_addr"], oh * ow * out_c * 4)
        if acc_out:
            step.acc_out_at = (f["out_addr"], oh * ow * out_c * 4)
        return step
    if op is Opcode.POOL:
        x = _view(Buffer.IBUF, f["in_addr"], (f["in_h"], f["in_w"], f["c"]), np.int8)
        n = next(n for b, _, n, w in covered if w and b is Buffer.OBUF)
        out = _view(Buffer.OBUF, f["out_addr"], (n,), np.int8, True)
        kw_: dict[str, object] = kernels.pool_fields(f)
        gavg = jit_elt.global_avg_fields(kw_)
        if gavg is not None:  # the squeeze of squeeze-excite: one compiled pass
            return partial(jit_elt.global_avg, x, *gavg, out, np.empty(f["c"], np.int64))
        mx = jit_elt.max_pool_fields(kw_, x.shape)
        if mx is not None:  # one compiled pass (no data-dependent fault)
            return partial(jit_elt.max_pool, x, *mx, out)
        fast = kernels.pool_compiled(x, out, **kw_)  # AVG, AVG_PAD (and MAX otherwise)
        if fast is not None:
            return _checked_step(core, ctx, i, fast)
        return _kernel_step(core, ctx, i, kernels.pool, (x,), kw_, out)
    n, period = f["n"], f["b_period"]
    a = _view(Buffer.IBUF, f["a_addr"], (n,), np.int8)
    b = _view(Buffer.IBUF, f["b_addr"], (period or n,), np.int8)
    out = _view(Buffer.OBUF, f["out_addr"], (n,), np.int8, True)
    kw_ = kernels.eltwise_fields(f)
    if n < _ELTWISE_TABLE_MIN or (period and n % period):
        return _kernel_step(core, ctx, i, kernels.eltwise, (a, b), kw_, out)
    # ValueError for invalid fields (the Core method then reports them)
    table = kernels.eltwise_table(**{k: v for k, v in kw_.items() if k != "b_period"})
    if period:  # B [p] against A as [n / p, p] rows: one compiled pass
        return partial(jit_elt.lookup_period, table, a, b, out)
    return partial(kernels.eltwise_lookup, table, a, b, out,
                   np.empty(a.shape, np.uint16))


__all__ = [
    "TOKEN_KEYS",
    "PreparedBudget",
    "SegmentPlan",
    "build_plan",
    "calc_accesses",
    "token_counts",
]
