"""The static latency model: a cycle-level simulator of one core (docs/latency-model.md).

Per-instruction costs (:func:`insn_cycles`) follow the core geometry of the hardware
config: a CONV processes ``pixel_parallel`` output pixels along a row x
``in_channel_parallel`` input channels x ``out_channel_parallel`` output channels per
cycle; depthwise convolutions and pooling map channels onto the output-channel lanes and
kernel taps onto the input-channel lanes; LOAD and SAVE move bytes at the core's DDR share
(its bank's bandwidth divided by the cores on the bank, or all banks for an interleaved
core). Every instruction also pays the fixed setup cost of its module.

:func:`simulate` runs an instruction sequence through the three in-order module queues
under the dependency tokens (the same rules the emulator enforces, including the initial
buffer credits) and returns its makespan in cycles. The same costs drive the emulator's
timing model.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

from vfpga.hw.config import HardwareConfig
from vfpga.isa.spec import MODULE_OF, Buffer, Dep, Module, Opcode, PoolMode


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def core_bytes_per_cycle(hw: HardwareConfig) -> float:
    """DDR bytes per cycle one core is budgeted: its fair share of its bank(s)."""
    per_bank = hw.bank_bandwidth_gbps * 1e9 / (hw.clock_mhz * 1e6)
    if hw.bank_mapping == "interleaved":
        return per_bank * hw.ddr_banks / max(1, hw.num_cores)
    return per_bank / hw.cores_per_bank


class _Zero(dict[str, int]):
    def __missing__(self, key: str) -> int:
        return 0


def compute_cycles(op: Opcode, f: dict[str, int], hw: HardwareConfig) -> int:
    """Cycles a CALC instruction keeps the PE array busy (setup excluded). Absent fields
    are 0, as in an encoded word."""
    f = _Zero(f)
    pp, ip, opar = hw.pixel_parallel, hw.in_channel_parallel, hw.out_channel_parallel
    if op is Opcode.CONV:
        oh = (f["in_h"] + f["pad_t"] + f["pad_b"] - f["kh"]) // f["stride_h"] + 1
        ow = (f["in_w"] + f["pad_l"] + f["pad_r"] - f["kw"]) // f["stride_w"] + 1
        g = max(f["groups"], 1)
        cig = f["in_c"] // g
        opg = f["out_c"] // g
        taps = f["kh"] * f["kw"]
        pix = oh * _ceil(ow, pp)
        if cig == 1 and opg == 1:  # depthwise: channels on oc lanes, taps on ic lanes
            return pix * _ceil(g, opar) * _ceil(taps, ip)
        return pix * g * _ceil(opg, opar) * _ceil(cig, ip) * taps
    if op is Opcode.POOL:
        c = f["c"]
        if f["mode"] == PoolMode.GLOBAL_AVG:
            return _ceil(c, opar) * _ceil(f["in_h"] * f["in_w"], pp * ip)
        oh = (f["in_h"] + f["pad_t"] + f["pad_b"] - f["kh"]) // f["stride_h"] + 1
        ow = (f["in_w"] + f["pad_l"] + f["pad_r"] - f["kw"]) // f["stride_w"] + 1
        return oh * _ceil(ow, pp) * _ceil(c, opar) * _ceil(f["kh"] * f["kw"], ip)
    if op is Opcode.ELTWISE:
        return _ceil(f["n"], pp * opar)
    return 0


def insn_cycles(op: Opcode, f: dict[str, int], hw: HardwareConfig, bpc: float) -> int:
    """Cycles instruction ``op`` with fields ``f`` occupies its module, at ``bpc`` DDR
    bytes per cycle for LOAD/SAVE."""
    c = hw.costs
    f = _Zero(f)
    if op is Opcode.LOAD:
        return c.load_setup_cycles + math.ceil(f["n0"] * f["n1"] * f["n2"] / bpc)
    if op is Opcode.SAVE:
        return c.save_setup_cycles + math.ceil(f["n0"] * f["n1"] * f["n2"] / bpc)
    if op in (Opcode.SYNC, Opcode.END):
        return c.sync_cycles if op is Opcode.SYNC else 0
    return c.calc_setup_cycles + compute_cycles(op, f, hw)


_PREV = {Module.LOAD: None, Module.CALC: Module.LOAD, Module.SAVE: Module.CALC}
_NEXT = {Module.LOAD: Module.CALC, Module.CALC: Module.SAVE, Module.SAVE: None}


def simulate(
    insns: Sequence[tuple[Opcode, dict[str, int]]],
    hw: HardwareConfig,
    bpc: float | None = None,
) -> int:
    """Makespan in cycles of ``insns`` (one core, one IFP or more, no SYNC/END) with the
    three modules running concurrently under the dependency tokens.

    Each core starts with one CALC->LOAD and one SAVE->CALC token (the buffer credits of
    docs/isa.md); a wait that can never be satisfied raises ``ValueError``.
    """
    bpc = bpc if bpc is not None else core_bytes_per_cycle(hw)
    queues: dict[Module, list[tuple[Opcode, dict[str, int]]]] = {
        Module.LOAD: [], Module.CALC: [], Module.SAVE: []
    }
    for op, f in insns:
        queues[MODULE_OF[op]].append((op, f))
    tokens: dict[tuple[Module, Module], deque[int]] = {
        (a, b): deque() for a in queues for b in queues if a != b
    }
    tokens[(Module.CALC, Module.LOAD)].append(0)
    tokens[(Module.SAVE, Module.CALC)].append(0)
    free = {m: 0 for m in queues}
    heads = {m: 0 for m in queues}
    remaining = len(insns)
    while remaining:
        progressed = False
        for m in (Module.LOAD, Module.CALC, Module.SAVE):
            q = queues[m]
            while heads[m] < len(q):
                op, f = q[heads[m]]
                deps = f.get("deps", 0)
                waits = []
                if deps & Dep.WAIT_PREV:
                    waits.append((_PREV[m], m))
                if deps & Dep.WAIT_NEXT:
                    waits.append((_NEXT[m], m))
                if any(not tokens[k] for k in waits):  # type: ignore[index]
                    break
                start = free[m]
                for k in waits:
                    start = max(start, tokens[k].popleft())  # type: ignore[index]
                end = start + insn_cycles(op, f, hw, bpc)
                free[m] = end
                if deps & Dep.SIGNAL_PREV:
                    tokens[(m, _PREV[m])].append(end)  # type: ignore[index]
                if deps & Dep.SIGNAL_NEXT:
                    tokens[(m, _NEXT[m])].append(end)  # type: ignore[index]
                heads[m] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            raise ValueError("latency model: the instruction sequence deadlocks")
    return max(free.values())


def column_geometry(insns: Iterable[tuple[Opcode, dict[str, int]]]) -> tuple[int, int, int]:
    """``(pad_l, pad_r, input columns)`` of an IFP: of its first LOAD into ibuf, or of its
    first POOL (which pads on chip); every band of an IFP has the same columns."""
    for op, f in insns:
        if op is Opcode.LOAD and f.get("to", 0) == Buffer.IBUF:
            return f.get("pad_l", 0), f.get("pad_r", 0), f.get("n1", 0)
        if op is Opcode.POOL:
            return f.get("pad_l", 0), f.get("pad_r", 0), f.get("in_w", 0)
    return 0, 0, 0


def latency_key(layer: int, w0: int, w1: int, c0: int, c1: int, n_insns: int,
                columns: tuple[int, int, int]) -> tuple[object, ...]:
    """IFPs of one layer with equal keys have instruction sequences of equal timing (same
    tile width and channel count, same column geometry -- border padding and input
    columns, see :func:`column_geometry` --, same instruction count), so :func:`simulate`
    runs once per key. The static compiler and the ``ifp-estimate-latency`` pass share
    this key."""
    return (layer, w1 - w0, c1 - c0, c0 == 0, n_insns, columns)
