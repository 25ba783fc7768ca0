"""The static latency model: a cycle-level simulator of one core (docs/latency-model.md).

Per-instruction costs live in :mod:`vfpga.hw.costs` (``insn_cycles``, ``compute_cycles``,
``core_bytes_per_cycle``, re-exported here), shared with the emulator's timing model.

:func:`simulate` runs an instruction sequence through the three in-order module queues
under the dependency tokens (the same rules the emulator enforces, including the initial
buffer credits) and returns its makespan in cycles. The same costs drive the emulator's
timing model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

from vfpga.hw.config import HardwareConfig
from vfpga.hw.costs import compute_cycles, core_bytes_per_cycle, insn_cycles
from vfpga.isa.spec import (
    INSN_BYTES,
    MODULE_OF,
    PAYLOAD_FIELDS,
    Buffer,
    Dep,
    FieldDict,
    Module,
    Opcode,
    TokenQueue,
)

__all__ = [
    "column_geometry",
    "compute_cycles",
    "core_bytes_per_cycle",
    "insn_cycles",
    "latency_key",
    "simulate",
    "timing_words",
]


_PREV: dict[Module, Module | None] = {
    Module.LOAD: None, Module.CALC: Module.LOAD, Module.SAVE: Module.CALC
}
_NEXT: dict[Module, Module | None] = {
    Module.LOAD: Module.CALC, Module.CALC: Module.SAVE, Module.SAVE: None
}


def simulate(
    insns: Sequence[tuple[Opcode, FieldDict]],
    hw: HardwareConfig,
    bpc: float | None = None,
) -> int:
    """Makespan in cycles of ``insns`` (one core, one IFP or more, no SYNC/END) with the
    three modules running concurrently under the dependency tokens.

    Each core starts with one CALC->LOAD and one SAVE->CALC token (the buffer credits of
    docs/isa.md); a wait that can never be satisfied raises ``ValueError``.
    """
    bpc = bpc if bpc is not None else core_bytes_per_cycle(hw)
    queues: dict[Module, list[tuple[Opcode, FieldDict]]] = {
        Module.LOAD: [], Module.CALC: [], Module.SAVE: []
    }
    for op, f in insns:
        queues[MODULE_OF[op]].append((op, f))
    tokens: dict[TokenQueue, deque[int]] = {
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
                if any(not tokens[k] for k in waits):
                    break
                start = free[m]
                for k in waits:
                    start = max(start, tokens[k].popleft())
                end = start + insn_cycles(op, f, hw, bpc)
                free[m] = end
                if deps & Dep.SIGNAL_PREV:
                    tokens[(m, _PREV[m])].append(end)
                if deps & Dep.SIGNAL_NEXT:
                    tokens[(m, _NEXT[m])].append(end)
                heads[m] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            raise ValueError("latency model: the instruction sequence deadlocks")
    return max(free.values())


def column_geometry(insns: Iterable[tuple[Opcode, FieldDict]]) -> tuple[int, int, int]:
    """``(pad_l, pad_r, input columns)`` of an IFP: of its first LOAD into ibuf, or of its
    first POOL (which pads on chip); every band of an IFP has the same columns."""
    for op, f in insns:
        if op is Opcode.LOAD and f.get("to", 0) == Buffer.IBUF:
            return f.get("pad_l", 0), f.get("pad_r", 0), f.get("n1", 0)
        if op is Opcode.POOL:
            return f.get("pad_l", 0), f.get("pad_r", 0), f.get("in_w", 0)
    return 0, 0, 0


def latency_key(layer: int, w0: int, w1: int, c0: int, c1: int, n_insns: int,
                columns: tuple[int, int, int],
                rows: tuple[int, int] = (0, 0)) -> tuple[object, ...]:
    """IFPs of one layer with equal keys have instruction sequences of equal timing (same
    tile width and channel count, same column geometry -- border padding and input
    columns, see :func:`column_geometry` --, same rows ``(h0, h1)``, same instruction
    count), so :func:`simulate` runs once per key. The static compiler and the
    ``ifp-estimate-latency`` pass share this key."""
    return (layer, w1 - w0, c1 - c0, c0 == 0, n_insns, columns, rows)


def _ddr_bytes() -> slice:
    """Where LOAD and SAVE words hold ``ddr`` (the same bytes in both)."""
    (load,) = [f for f in PAYLOAD_FIELDS[Opcode.LOAD] if f.name == "ddr"]
    (save,) = [f for f in PAYLOAD_FIELDS[Opcode.SAVE] if f.name == "ddr"]
    assert (load.offset, load.size) == (save.offset, save.size)
    return slice(load.offset, load.offset + load.size)


_DDR = _ddr_bytes()


def timing_words(words: bytes) -> bytes:
    """Packed instruction words with the ``ddr`` field of every LOAD and SAVE zeroed: what
    :func:`simulate` reads of them (it never reads a DDR address), so packages with equal
    timing words have equal latencies, whatever their layer, rows or origin."""
    a = np.frombuffer(words, np.uint8).reshape(-1, INSN_BYTES).copy()
    moves = (a[:, 0] == int(Opcode.LOAD)) | (a[:, 0] == int(Opcode.SAVE))
    a[moves, _DDR] = 0
    return a.tobytes()
