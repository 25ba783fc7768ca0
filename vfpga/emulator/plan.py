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
CONV/POOL/ELTWISE call the core's own ``_conv``/``_pool``/``_eltwise`` (so data-dependent
checks, such as a multiplier out of range, still fault exactly as before), with the
per-access hazard stamping replaced by a membership test against the accesses the plan
analysed (:attr:`SegmentPlan.calc_accesses`), which catches a CALC method whose buffer
accesses drifted from :func:`calc_accesses`.

Hazards never cross a barrier (after a SYNC/END every module is ordered after every earlier
access), so the analysis of a segment starts from clean clocks: the plan is valid whatever
ran before it, given the token counts at entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from vfpga.emulator.core import _NEIGHBOURS, _READER, _WRITER, Core, ExecContext
from vfpga.isa.spec import MODULE_OF, PARAM_RECORD_BYTES, Buffer, Dep, Module, Opcode, PoolMode

_L, _C, _S = Module.LOAD, Module.CALC, Module.SAVE
_OPS = {int(op): op for op in Opcode}
#: the token queues the interpreter keeps, in a fixed order (the plan cache key)
TOKEN_KEYS: tuple[tuple[Module, Module], ...] = tuple(
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
        oh = (in_h + f["pad_t"] + f["pad_b"] - kh) // sh + 1
        ow = (in_w + f["pad_l"] + f["pad_r"] - kw) // sw + 1
        if oh < 1 or ow < 1 or in_h < 1 or in_w < 1 or out_c < 1:
            raise _NoPlan
        acc: list[Access] = [
            (Buffer.IBUF, f["in_addr"], in_h * in_w * in_c, 1, False),
            (Buffer.WBUF, f["w_addr"], out_c * kh * kw * (in_c // g), 1, False),
            (Buffer.PBUF, f["p_addr"], out_c * PARAM_RECORD_BYTES, 4, False),
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
            oh = (in_h + f["pad_t"] + f["pad_b"] - kh) // sh + 1
            ow = (in_w + f["pad_l"] + f["pad_r"] - kw) // sw + 1
            if oh < 1 or ow < 1:
                raise _NoPlan
        acc.append((Buffer.OBUF, f["out_addr"], oh * ow * c, 1, True))
        return acc
    if op is Opcode.ELTWISE:
        n = f["n"]
        return [
            (Buffer.IBUF, f["a_addr"], n, 1, False),
            (Buffer.IBUF, f["b_addr"], n, 1, False),
            (Buffer.OBUF, f["out_addr"], n, 1, True),
        ]
    raise _NoPlan  # pragma: no cover - SYNC/END never reach a module queue


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

    def run(self, core: Core) -> None:
        """Execute the segment on ``core`` (the one it was built for) and leave the core's
        sequence numbers and token counts as the interpreter would. A fault raised by a
        CALC method propagates after the counters of the executed prefix are updated, as
        in the interpreter."""
        counters = core.counters
        core._plan_accesses = self.calc_accesses
        k = 0
        try:
            for k, step in enumerate(self.steps):  # noqa: B007 - k is used on a fault
                step()
        except BaseException:
            for j in range(k + 1):
                counters.insns[self.ops[j]] += 1
                if j < k:
                    counters.load_bytes += self.load_bytes[j]
                    counters.save_bytes += self.save_bytes[j]
            raise
        finally:
            core._plan_accesses = None
        insns = counters.insns
        for name, n in self.insn_counts.items():
            insns[name] += n
        counters.load_bytes += sum(self.load_bytes)
        counters.save_bytes += sum(self.save_bytes)
        seq = core.seq
        for m in range(3):
            seq[m] += self.seq_delta[m]
        snap = (seq[0], seq[1], seq[2])
        for key, n in zip(TOKEN_KEYS, self.exit_tokens, strict=True):
            q = core.tokens[key]
            if len(q) != n:
                q.clear()
                q.extend([snap] * n)


def token_counts(core: Core) -> tuple[int, ...]:
    """The core's token count of every queue of :data:`TOKEN_KEYS`."""
    return tuple(len(core.tokens[k]) for k in TOKEN_KEYS)


def _load_step(dst: np.ndarray, inner: np.ndarray, box: np.ndarray, pad: np.uint8 | None
               ) -> Callable[[], None]:
    if pad is None:
        return partial(np.copyto, inner, box)

    def step() -> None:
        dst.fill(pad)
        np.copyto(inner, box)

    return step


def build_plan(core: Core, ctx: ExecContext, indices: np.ndarray) -> SegmentPlan | None:
    """The plan of ``indices`` (one segment, program order, no SYNC/END) on ``core`` from
    its current token counts, or ``None`` if running the segment would fault on something
    static (the interpreter then reports it)."""
    try:
        return _build(core, ctx, indices)
    except _NoPlan:
        return None


def _build(core: Core, ctx: ExecContext, indices: np.ndarray) -> SegmentPlan:
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
    tokens: dict[tuple[Module, Module], list[tuple[int, int, int]]] = {
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

    def access(m: Module, buf: Buffer, addr: int, nbytes: int, align: int, write: bool) -> None:
        if addr % align or addr + nbytes > bufs[buf].size:
            raise _NoPlan
        if m is _C:
            calc_seen.add((buf, addr, nbytes, write))
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

    def execute(i: int, m: Module) -> None:
        f = fields[i]
        op = _OPS[f["opcode"]]
        lb = sb = 0
        if op is Opcode.LOAD:
            n0, n1, n2 = f["n0"], f["n1"], f["n2"]
            pt, pb, pl, pr = f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"]
            box = ddr_box(f)
            rows, cols = pt + n0 + pb, pl + n1 + pr
            buf = Buffer(f["to"])
            nbytes = rows * cols * n2
            access(_L, buf, f["buf"], nbytes, 1, True)
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
            step = partial(np.copyto, box, src)
            sb = nbytes
        else:
            for buf, addr, nbytes, align, write in calc_accesses(f):
                access(_C, buf, addr, nbytes, align, write)
            method = {Opcode.CONV: core._conv, Opcode.POOL: core._pool,
                      Opcode.ELTWISE: core._eltwise}[op]
            step = partial(method, ctx, i, f)
        order.append(i)
        ops.append(op.name)
        steps.append(step)
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
                if deps & Dep.WAIT_PREV and not tokens[(prev, m)]:  # type: ignore[index]
                    break
                if deps & Dep.WAIT_NEXT and not tokens[(nxt, m)]:  # type: ignore[index]
                    break
                for bit, src in ((Dep.WAIT_PREV, prev), (Dep.WAIT_NEXT, nxt)):
                    if deps & bit:
                        snap = tokens[(src, m)].pop(0)  # type: ignore[index]
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
                    tokens[(m, prev)].append(snap)  # type: ignore[index]
                if deps & Dep.SIGNAL_NEXT:
                    tokens[(m, nxt)].append(snap)  # type: ignore[index]
                h += 1
                remaining -= 1
                progressed = True
            heads[m] = h
        if not progressed:
            raise _NoPlan  # deadlock: the interpreter names the blocked instructions
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
    )


__all__ = ["TOKEN_KEYS", "SegmentPlan", "build_plan", "calc_accesses", "token_counts"]
