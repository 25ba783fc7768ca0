"""Level 2 of the instruction dispatch: one small core.

A core splits its instruction stream into three in-order queues (LOAD, CALC, SAVE) that run
concurrently and are ordered only by dependency tokens (docs/isa.md). The emulator runs a
core one barrier epoch at a time (:meth:`Core.run_segment`): it repeatedly executes the
head of any queue whose token waits are satisfied; when no head can start, that is a
deadlock, reported with every blocked instruction.

Dependency violations are found with vector clocks: each module keeps the latest sequence
number of every other module it is ordered after (through tokens or a barrier); every
on-chip buffer keeps, per byte, the sequence number of the last writer and the last reader
instruction. An access whose conflicting predecessor is not ordered before it is reported,
whatever order the emulator happened to execute the two in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vfpga.emulator import kernels
from vfpga.emulator.ddr import Region
from vfpga.emulator.faults import (
    BufferOverflowFault,
    DeadlockFault,
    DependencyViolation,
    ExecutionFault,
    OutOfRegionFault,
)
from vfpga.emulator.float_conv import fsum_conv_insn
from vfpga.emulator.resize import resize as resize_kernel
from vfpga.hw.config import BUFFER_NAMES, HardwareConfig
from vfpga.isa.codec import Program
from vfpga.isa.effects import out_hw
from vfpga.isa.spec import (
    MODULE_OF,
    PARAM_RECORD_BYTES,
    Act,
    Buffer,
    Dep,
    Module,
    Opcode,
    TokenQueue,
    conv_pbuf_bytes,
)

_L, _C, _S = Module.LOAD, Module.CALC, Module.SAVE
#: neighbour of each module in the pipeline: (prev, next)
_NEIGHBOURS: dict[Module, tuple[Module | None, Module | None]] = {
    _L: (None, _C),
    _C: (_L, _S),
    _S: (_C, None),
}
#: the module that writes / reads each tracked buffer
_WRITER = {Buffer.IBUF: _L, Buffer.WBUF: _L, Buffer.PBUF: _L, Buffer.OBUF: _C}
_READER = {Buffer.IBUF: _C, Buffer.WBUF: _C, Buffer.PBUF: _C, Buffer.OBUF: _S}


#: every opcode's name with a count of 0 (copied for each new :class:`CoreCounters`: a
#: task's restart makes one per core, and iterating the enum each time cost more)
_NO_INSNS: dict[str, int] = {op.name: 0 for op in Opcode}
#: the token queues of a core, in a fixed order
_QUEUES: tuple[TokenQueue, ...] = tuple(
    (a, b) for a in (_L, _C, _S) for b in (_L, _C, _S) if a != b)


@dataclass
class CoreCounters:
    """What one core did: instructions per opcode, MACs, DDR bytes loaded and saved."""

    insns: dict[str, int] = field(default_factory=lambda: dict(_NO_INSNS))
    macs: int = 0
    load_bytes: int = 0
    save_bytes: int = 0

    @property
    def total_insns(self) -> int:
        return sum(self.insns.values())

    def add(self, other: CoreCounters) -> None:
        for k, v in other.insns.items():
            self.insns[k] += v
        self.macs += other.macs
        self.load_bytes += other.load_bytes
        self.save_bytes += other.save_bytes


@dataclass
class ExecContext:
    """What a core needs to know about the task it runs for."""

    task: str
    logical_core: int
    program: Program
    fields: Any
    region: Region
    insn_base: int = 0


def describe(ctx: ExecContext, core: int, i: int) -> str:
    """``task 't': core 3 (logical 1): instruction #57 CONV (layer 2)``."""
    op = Opcode(int(ctx.program.opcode[i])).name
    layer = int(ctx.program.layer[i])
    return (
        f"task '{ctx.task}': core {core} (logical {ctx.logical_core}): "
        f"instruction #{i + ctx.insn_base} {op} (layer {layer})"
    )


class Core:
    """One physical core: its on-chip buffers, token counters, module clocks and counters."""

    def __init__(self, hw: HardwareConfig, index: int, check_hazards: bool = True) -> None:
        self.hw = hw
        self.index = index
        self.check_hazards = check_hazards
        self.buffers: list[np.ndarray] = [
            np.zeros(hw.buffer_size(name), dtype=np.uint8) for name in BUFFER_NAMES
        ]
        self.counters = CoreCounters()
        #: while a precompiled plan (vfpga.emulator.plan) runs: the CALC accesses its
        #: static hazard analysis covered, as (buffer, address, bytes, is write)
        self._plan_accesses: frozenset[tuple[Buffer, int, int, bool]] | None = None
        #: whether the interpreter stamped the hazard arrays since the last reset
        self._stamped = False
        self.reset()

    def reset(self) -> None:
        """Reset tokens to the initial credits, and clear clocks and hazard stamps (a core
        handed to a new task or context)."""
        self.tokens: dict[TokenQueue, deque[tuple[int, int, int]]] = {
            q: deque() for q in _QUEUES
        }
        # the initial buffer credits (docs/isa.md): one CALC->LOAD and one SAVE->CALC token
        self.tokens[(_C, _L)].append((0, 0, 0))
        self.tokens[(_S, _C)].append((0, 0, 0))
        self.seq = [0, 0, 0]
        self.vc = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
        # the hazard stamps are allocated once and cleared only when the interpreter
        # stamped them since the last reset (plans never do): a reset per core per run
        # otherwise costs four buffer-sized allocations, 16x that on 16 cores
        if not hasattr(self, "wstamp"):
            self.wstamp = {
                b: np.zeros(self.hw.buffer_size(BUFFER_NAMES[b]), dtype=np.int32)
                for b in _WRITER
            }
            self.rstamp = {
                b: np.zeros(self.hw.buffer_size(BUFFER_NAMES[b]), dtype=np.int32)
                for b in _READER
            }
        elif self._stamped:
            for arr in (*self.wstamp.values(), *self.rstamp.values()):
                arr.fill(0)
        self._stamped = False

    # ------------------------------------------------------------------ buffers
    def _span(
        self, ctx: ExecContext, i: int, buf: Buffer, addr: int, nbytes: int, align: int = 1
    ) -> np.ndarray:
        size = self.buffers[buf].size
        name = BUFFER_NAMES[buf]
        if addr % align:
            raise BufferOverflowFault(
                f"{describe(ctx, self.index, i)}: {name} address 0x{addr:x} is not "
                f"{align}-byte aligned"
            )
        if addr + nbytes > size:
            raise BufferOverflowFault(
                f"{describe(ctx, self.index, i)}: {name}[0x{addr:x}, 0x{addr + nbytes:x}) "
                f"is past the buffer's {size} bytes"
            )
        return self.buffers[buf][addr : addr + nbytes]

    def _access(
        self, ctx: ExecContext, i: int, m: Module, buf: Buffer, addr: int, nbytes: int, write: bool
    ) -> None:
        """Hazard check and stamping of an on-chip access by module ``m``. While a plan
        runs, its build-time analysis replaces both: the access must be one it analysed."""
        planned = self._plan_accesses
        if planned is not None:
            if (buf, addr, nbytes, write) not in planned:
                raise ExecutionFault(
                    f"{describe(ctx, self.index, i)}: internal error: {BUFFER_NAMES[buf]}"
                    f"[0x{addr:x}, 0x{addr + nbytes:x}) was not covered by the static hazard "
                    "analysis (vfpga.emulator.plan.calc_accesses is out of date); rerun with "
                    "Accelerator(fast=False)"
                )
            return
        if not self.check_hazards or buf not in _WRITER or nbytes == 0:
            return
        sl = slice(addr, addr + nbytes)
        other = _READER[buf] if write else _WRITER[buf]
        stamps = self.rstamp[buf] if write else self.wstamp[buf]
        if other != m:
            last = int(stamps[sl].max())
            if last > self.vc[m][other]:
                kind = "write-after-read" if write else "read-after-write"
                raise DependencyViolation(
                    f"{describe(ctx, self.index, i)}: {kind} hazard on "
                    f"{BUFFER_NAMES[buf]}[0x{addr:x}, 0x{addr + nbytes:x}): the "
                    f"{other.name} module's access #{last} to these bytes is not ordered before "
                    f"this {m.name} instruction by any dependency token (add a wait/signal pair)"
                )
        self._stamped = True
        (self.wstamp[buf] if write else self.rstamp[buf])[sl] = self.seq[m]

    # ------------------------------------------------------------------ tokens
    def _can_start(self, m: Module, deps: int) -> bool:
        prev, nxt = _NEIGHBOURS[m]
        if deps & Dep.WAIT_PREV and not self.tokens[(prev, m)]:
            return False
        return not (deps & Dep.WAIT_NEXT and not self.tokens[(nxt, m)])

    def _pop(self, m: Module, deps: int) -> None:
        prev, nxt = _NEIGHBOURS[m]
        for bit, src in ((Dep.WAIT_PREV, prev), (Dep.WAIT_NEXT, nxt)):
            if deps & bit:
                snap = self.tokens[(src, m)].popleft()
                vc = self.vc[m]
                for k in range(3):
                    if snap[k] > vc[k]:
                        vc[k] = snap[k]

    def _push(self, m: Module, deps: int) -> None:
        prev, nxt = _NEIGHBOURS[m]
        vc = self.vc[m]
        vc[m] = self.seq[m]
        snap = (vc[0], vc[1], vc[2])
        if deps & Dep.SIGNAL_PREV:
            self.tokens[(m, prev)].append(snap)
        if deps & Dep.SIGNAL_NEXT:
            self.tokens[(m, nxt)].append(snap)

    def barrier(self) -> None:
        """All modules drained at a SYNC or END: every module is ordered after all others."""
        for m in (_L, _C, _S):
            self.vc[m] = list(self.seq)

    # ---------------------------------------------------------------- execution
    def run_segment(self, ctx: ExecContext, indices: np.ndarray) -> None:
        """Execute the instructions ``indices`` (in program order, none of them SYNC/END)
        to completion, honouring the dependency tokens."""
        prog = ctx.program
        queues: dict[Module, list[int]] = {_L: [], _C: [], _S: []}
        for i in indices.tolist():
            queues[MODULE_OF[Opcode(int(prog.opcode[i]))]].append(i)
        heads = {_L: 0, _C: 0, _S: 0}
        remaining = len(indices)
        deps_arr = prog.deps
        while remaining:
            progressed = False
            for m in (_L, _C, _S):
                q = queues[m]
                h = heads[m]
                while h < len(q):
                    i = q[h]
                    deps = int(deps_arr[i])
                    if not self._can_start(m, deps):
                        break
                    self._pop(m, deps)
                    self.seq[m] += 1
                    self._execute(ctx, i, m)
                    self._push(m, deps)
                    h += 1
                    remaining -= 1
                    progressed = True
                heads[m] = h
            if not progressed:
                raise DeadlockFault(self._deadlock_message(ctx, queues, heads))

    def _deadlock_message(
        self, ctx: ExecContext, queues: dict[Module, list[int]], heads: dict[Module, int]
    ) -> str:
        lines = []
        for m in (_L, _C, _S):
            if heads[m] < len(queues[m]):
                i = queues[m][heads[m]]
                deps = int(ctx.program.deps[i])
                prev, nxt = _NEIGHBOURS[m]
                waits = []
                if deps & Dep.WAIT_PREV and not self.tokens[(prev, m)]:
                    waits.append(f"a token from {prev.name}")  # type: ignore[union-attr]
                if deps & Dep.WAIT_NEXT and not self.tokens[(nxt, m)]:
                    waits.append(f"a token from {nxt.name}")  # type: ignore[union-attr]
                lines.append(f"{describe(ctx, self.index, i)} waits for {' and '.join(waits)}")
        return "deadlock: no module can proceed: " + "; ".join(lines)

    def _execute(self, ctx: ExecContext, i: int, m: Module) -> None:
        f = ctx.fields[i]
        op = Opcode(f["opcode"])
        self.counters.insns[op.name] += 1
        if op is Opcode.LOAD:
            self._load(ctx, i, f)
        elif op is Opcode.SAVE:
            self._save(ctx, i, f)
        elif op is Opcode.CONV:
            self._conv(ctx, i, f)
        elif op is Opcode.POOL:
            self._pool(ctx, i, f)
        elif op is Opcode.ELTWISE:
            self._eltwise(ctx, i, f)
        elif op is Opcode.RESIZE:
            self._resize(ctx, i, f)
        else:  # pragma: no cover - SYNC/END never reach a module queue
            raise ExecutionFault(f"{describe(ctx, self.index, i)}: not a module instruction")

    def _check_box(self, ctx: ExecContext, i: int, f: dict[str, int]) -> np.ndarray:
        r = ctx.region
        lo, hi = r.box_extent(f["ddr"], f["n0"], f["n1"], f["n2"], f["stride0"], f["stride1"])
        if hi > r.bound:
            raise OutOfRegionFault(
                f"{describe(ctx, self.index, i)}: DDR bytes [0x{lo:x}, 0x{hi:x}) are outside the "
                f"task's region of 0x{r.bound:x} bytes (base 0x{r.base:x})"
            )
        return r.box_view(f["ddr"], f["n0"], f["n1"], f["n2"], f["stride0"], f["stride1"])

    def _load(self, ctx: ExecContext, i: int, f: dict[str, int]) -> None:
        n0, n1, n2 = f["n0"], f["n1"], f["n2"]
        pt, pb, pl, pr = f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"]
        box = self._check_box(ctx, i, f)
        rows, cols = pt + n0 + pb, pl + n1 + pr
        buf = Buffer(f["to"])
        nbytes = rows * cols * n2
        dst = self._span(ctx, i, buf, f["buf"], nbytes).reshape(rows, cols, n2)
        self._access(ctx, i, _L, buf, f["buf"], nbytes, write=True)
        if pt or pb or pl or pr:
            dst[...] = np.uint8(f["pad_value"] & 0xFF)
        dst[pt : pt + n0, pl : pl + n1, :] = box
        self.counters.load_bytes += n0 * n1 * n2

    def _save(self, ctx: ExecContext, i: int, f: dict[str, int]) -> None:
        n0, n1, n2 = f["n0"], f["n1"], f["n2"]
        s0, s1 = f["stride0"], f["stride1"]
        if (n1 > 1 and s1 < n2) or (n0 > 1 and s0 < (n1 - 1) * s1 + n2):
            raise ExecutionFault(
                f"{describe(ctx, self.index, i)}: SAVE box overlaps itself (strides {s0}, {s1} "
                f"for {n0}x{n1}x{n2})"
            )
        box = self._check_box(ctx, i, f)
        nbytes = n0 * n1 * n2
        src = self._span(ctx, i, Buffer.OBUF, f["buf"], nbytes).reshape(n0, n1, n2)
        self._access(ctx, i, _S, Buffer.OBUF, f["buf"], nbytes, write=False)
        box[...] = src
        self.counters.save_bytes += nbytes

    def _read(
        self, ctx: ExecContext, i: int, buf: Buffer, addr: int, shape: tuple[int, ...],
        dtype: Any = np.int8, align: int = 1,
    ) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        nbytes = math.prod(shape) * itemsize
        raw = self._span(ctx, i, buf, addr, nbytes, align)
        self._access(ctx, i, _C, buf, addr, nbytes, write=False)
        return raw.view(dtype).reshape(shape)

    def _write(
        self, ctx: ExecContext, i: int, buf: Buffer, addr: int, value: np.ndarray, align: int = 1
    ) -> None:
        raw = self._span(ctx, i, buf, addr, value.nbytes, align)
        self._access(ctx, i, _C, buf, addr, value.nbytes, write=True)
        raw[...] = np.ascontiguousarray(value).reshape(-1).view(np.uint8)

    def _conv(self, ctx: ExecContext, i: int, f: dict[str, int]) -> None:
        in_h, in_w, in_c, out_c, g = f["in_h"], f["in_w"], f["in_c"], f["out_c"], f["groups"]
        kh, kw, sh, sw = f["kh"], f["kw"], f["stride_h"], f["stride_w"]
        pads = (f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"])
        if g < 1 or in_c % g or out_c % g or kh < 1 or kw < 1 or sh < 1 or sw < 1:
            raise ExecutionFault(
                f"{describe(ctx, self.index, i)}: invalid geometry (in_c={in_c}, "
                f"out_c={out_c}, groups={g}, kernel {kh}x{kw}, stride {sh}x{sw})"
            )
        oh, ow = out_hw(f)
        if oh < 1 or ow < 1 or in_h < 1 or in_w < 1 or out_c < 1:
            raise ExecutionFault(
                f"{describe(ctx, self.index, i)}: kernel {kh}x{kw} does not fit the padded input"
            )
        x = self._read(ctx, i, Buffer.IBUF, f["in_addr"], (in_h, in_w, in_c))
        w = self._read(ctx, i, Buffer.WBUF, f["w_addr"], (out_c, kh, kw, in_c // g))
        table_act = not f["acc_out"] and f["act"] == Act.TABLE
        praw = self._read(
            ctx, i, Buffer.PBUF, f["p_addr"],
            (conv_pbuf_bytes(out_c, Act.TABLE if table_act else Act.NONE),), np.uint8, 4
        )
        if f["fsum"] or f["in_scale"]:  # ISA v5: float32 sums (emulator/float_conv.py)
            try:
                y = fsum_conv_insn(x, w, praw, f)
            except ValueError as exc:
                raise ExecutionFault(f"{describe(ctx, self.index, i)}: {exc}") from None
            self._write(ctx, i, Buffer.OBUF, f["out_addr"], y)
            self.counters.macs += oh * ow * out_c * kh * kw * (in_c // g)
            return
        bias, scale, divisor = kernels.unpack_params(praw[: out_c * PARAM_RECORD_BYTES])
        table = praw[out_c * PARAM_RECORD_BYTES :] if table_act else None
        if f["acc_in"]:
            start = self._read(
                ctx, i, Buffer.ABUF, f["acc_addr"], (oh, ow, out_c), np.dtype("<i4"), 4
            )
        else:
            start = bias
        try:
            out = kernels.conv(
                x,
                w,
                start=start,
                stride=(sh, sw),
                pads=pads,
                pad_value=f["pad_value"],
                groups=g,
                dilation=(f["dil_h"], f["dil_w"]),
                ups=(f["ups_h"], f["ups_w"]),
                acc_out=bool(f["acc_out"]),
                scale=scale,
                divisor=divisor,
                out_zp=f["out_zp"],
                act=Act(f["act"]),
                act_lo=f["act_lo"],
                act_hi=f["act_hi"],
                table=table,
            )
        except ValueError as exc:
            raise ExecutionFault(f"{describe(ctx, self.index, i)}: {exc}") from None
        if f["acc_out"]:
            self._write(ctx, i, Buffer.ABUF, f["out_addr"], out.astype("<i4"), 4)
        else:
            self._write(ctx, i, Buffer.OBUF, f["out_addr"], out)
        self.counters.macs += oh * ow * out_c * kh * kw * (in_c // g)

    def _pool(self, ctx: ExecContext, i: int, f: dict[str, int]) -> None:
        x = self._read(ctx, i, Buffer.IBUF, f["in_addr"], (f["in_h"], f["in_w"], f["c"]))
        try:
            out = kernels.pool(x, **kernels.pool_fields(f))
        except ValueError as exc:
            raise ExecutionFault(f"{describe(ctx, self.index, i)}: {exc}") from None
        self._write(ctx, i, Buffer.OBUF, f["out_addr"], out)

    def _resize(self, ctx: ExecContext, i: int, f: dict[str, int]) -> None:
        x = self._read(ctx, i, Buffer.IBUF, f["in_addr"], (f["in_h"], f["in_w"], f["c"]))
        try:
            out = resize_kernel(x, f)
        except ValueError as exc:
            raise ExecutionFault(f"{describe(ctx, self.index, i)}: {exc}") from None
        self._write(ctx, i, Buffer.OBUF, f["out_addr"], out)

    def _eltwise(self, ctx: ExecContext, i: int, f: dict[str, int]) -> None:
        n = f["n"]
        a = self._read(ctx, i, Buffer.IBUF, f["a_addr"], (n,))
        b = self._read(ctx, i, Buffer.IBUF, f["b_addr"], (f["b_period"] or n,))
        try:
            out = kernels.eltwise(a, b, **kernels.eltwise_fields(f))
        except ValueError as exc:
            raise ExecutionFault(f"{describe(ctx, self.index, i)}: {exc}") from None
        self._write(ctx, i, Buffer.OBUF, f["out_addr"], out)
