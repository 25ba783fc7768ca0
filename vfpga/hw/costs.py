"""Per-instruction cycle costs: the one cost model the static latency model
(:mod:`vfpga.compiler.latency`) and the emulator's timing model
(:mod:`vfpga.emulator.timing`) both charge (docs/latency-model.md).

Costs follow the core geometry of the hardware config: a CONV processes
``pixel_parallel`` output pixels along a row x ``in_channel_parallel`` input channels x
``out_channel_parallel`` output channels per cycle; depthwise convolutions and pooling map
channels onto the output-channel lanes and kernel taps onto the input-channel lanes; LOAD
and SAVE move bytes at the core's DDR share (its bank's bandwidth divided by the cores on
the bank, or all banks for an interleaved core). Every instruction also pays the fixed
setup cost of its module (``hw.costs``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from vfpga.hw.config import HardwareConfig
from vfpga.isa.effects import out_hw
from vfpga.isa.spec import Opcode, PoolMode

__all__ = ["DDR_BURST_BYTES", "burst_bytes", "compute_cycles", "core_bytes_per_cycle",
           "insn_cycles"]

#: Bytes of one DDR burst: 8 beats of a 64-bit DDR4 channel. A LOAD or SAVE box is a set
#: of contiguous runs (its rows of ``n2`` bytes, or longer where the strides make rows
#: adjacent); the DDR moves every run in whole bursts, so a run of 3 bytes costs as much
#: as one of 64. The compiler stores weights chunk by chunk where a chunk LOAD would read
#: rows shorter than this (docs/compiler.md); the timing model charges bursts when asked
#: (:class:`vfpga.emulator.timing.TimingParams`).
DDR_BURST_BYTES = 64


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


def compute_cycles(op: Opcode, f: Mapping[str, int], hw: HardwareConfig) -> int:
    """Cycles a CALC instruction keeps the PE array busy (setup excluded). Absent fields
    are 0, as in an encoded word."""
    f = _Zero(f)
    pp, ip, opar = hw.pixel_parallel, hw.in_channel_parallel, hw.out_channel_parallel
    if op is Opcode.CONV:
        oh, ow = out_hw(f)
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
        oh, ow = out_hw(f)
        return oh * _ceil(ow, pp) * _ceil(c, opar) * _ceil(f["kh"] * f["kw"], ip)
    if op is Opcode.ELTWISE:
        return _ceil(f["n"], pp * opar)
    if op is Opcode.RESIZE:  # a 2x2 window per output pixel, like POOL's taps on ic lanes
        return f["out_h"] * _ceil(f["out_w"], pp) * _ceil(f["c"], opar) * _ceil(4, ip)
    return 0


def burst_bytes(n0: np.ndarray, n1: np.ndarray, n2: np.ndarray, s0: np.ndarray,
                s1: np.ndarray, burst: int = DDR_BURST_BYTES) -> np.ndarray:
    """The DDR bytes boxes ``(n0, n1, n2)`` with strides ``(s0, s1)`` occupy the bus for
    when every contiguous run is moved in whole bursts of ``burst`` bytes (int64 arrays,
    one entry per box). A run is a row of ``n2`` bytes; rows with ``s1 == n2`` (or
    ``n1 == 1``) join into runs of ``n1 * n2``, and those into one run of the whole box
    when also ``s0 == n1 * n2`` (or ``n0 == 1``). Runs are taken as burst-aligned (the
    least the DDR can move); an empty box moves nothing."""
    n0, n1, n2 = (np.asarray(a, np.int64) for a in (n0, n1, n2))
    s0, s1 = np.asarray(s0, np.int64), np.asarray(s1, np.int64)
    rows = (n1 == 1) | (s1 == n2)
    whole = rows & ((n0 == 1) | (s0 == n1 * n2))
    run = np.where(whole, n0 * n1 * n2, np.where(rows, n1 * n2, n2))
    runs = np.where(whole, 1, np.where(rows, n0, n0 * n1))
    return np.where(run > 0, runs * (-(-run // burst) * burst), 0)


def insn_cycles(op: Opcode, f: Mapping[str, int], hw: HardwareConfig, bpc: float) -> int:
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
