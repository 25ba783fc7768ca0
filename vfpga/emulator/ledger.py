"""A task's per-core bookkeeping of fused epochs, made once when somebody looks.

After every barrier epoch the interpreter leaves, per core, its counters (instructions per
opcode, MACs, DDR bytes loaded and saved), its sequence numbers, its token queues and, at
the barrier, its vector clocks. An epoch plan (:mod:`vfpga.emulator.epoch`) computes all
cores of an epoch at once, but updating those per core and per epoch cost ~10 us per core
(MobileNet v1 on 16 cores: 30 epochs x 16 cores, 4-5 ms of a 16 ms run).

All of it is a function of the epoch's segments and the token counts at entry: an
:class:`EpochBook` holds it, computed once when the epoch's plans are built (one row per
active core: additive counters and sequence numbers, the token counts after the epoch).
A task running epoch after epoch as epoch plans only appends each epoch's book to its
:class:`Ledger`; :meth:`Ledger.settle` adds the rows up and leaves every core exactly as
the per-core path would (:meth:`vfpga.emulator.plan.SegmentPlan.finish`, the SYNC/END
count, :meth:`vfpga.emulator.core.Core.barrier`). The task settles before anything reads
or changes that state: a run on the cores' own plans or the interpreter (including the
plan lookups, keyed by token counts), a fault, the task's result, a context switch.

A token's value (a vector-clock snapshot) is never observable after a barrier: the barrier
sets every module's clock to the sequence numbers, and every snapshot is at most those;
so, as :meth:`SegmentPlan.finish`, a settled queue holds its count of snapshots of the
current sequence numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vfpga.emulator.core import Core, CoreCounters
from vfpga.emulator.plan import TOKEN_KEYS, SegmentPlan
from vfpga.isa.spec import Opcode

__all__ = ["EpochBook", "Ledger", "book_of"]

#: the opcode names in counter order
_NAMES: tuple[str, ...] = tuple(op.name for op in Opcode)
_N = len(_NAMES)
#: columns of a book row: instructions per opcode, MACs, bytes loaded, bytes saved, then
#: the three modules' sequence-number increments
_MACS, _LOAD, _SAVE, _SEQ = _N, _N + 1, _N + 2, _N + 3
_WIDTH = _N + 6


@dataclass(eq=False)
class EpochBook:
    """What one barrier epoch does to the bookkeeping of its active cores (logical cores
    :attr:`lcs`, in the task's order): :attr:`rows` ``[len(lcs)][_WIDTH]`` int64 additive
    counts, :attr:`exit` each core's token count per queue of
    :data:`vfpga.emulator.plan.TOKEN_KEYS` after it."""

    lcs: np.ndarray
    rows: np.ndarray
    exit: tuple[tuple[int, ...], ...]


def book_of(
    lcs: Sequence[int], plans: Sequence[SegmentPlan], macs: Sequence[int], ends: Sequence[bool]
) -> EpochBook:
    """The book of an epoch whose active logical cores ``lcs`` run the segment plans
    ``plans`` (with ``macs`` MACs each: the epoch plan's count) and then stop at END
    (``ends``) or SYNC."""
    rows = np.zeros((len(lcs), _WIDTH), np.int64)
    col = {n: j for j, n in enumerate(_NAMES)}
    for r, (plan, m, end) in enumerate(zip(plans, macs, ends, strict=True)):
        for name, n in plan.insn_counts.items():
            rows[r, col[name]] += n
        rows[r, col["END" if end else "SYNC"]] += 1
        rows[r, _MACS] = m
        rows[r, _LOAD] = plan.load_total
        rows[r, _SAVE] = plan.save_total
        rows[r, _SEQ : _SEQ + 3] = plan.seq_delta
    return EpochBook(np.asarray(lcs, np.intp), rows, tuple(p.exit_tokens for p in plans))


#: one core's settled bookkeeping: logical core, the (opcode name, count) pairs that are
#: not zero, MACs, bytes loaded, bytes saved, sequence-number increments, token counts
_CoreSum = tuple[
    int, tuple[tuple[str, int], ...], int, int, int, tuple[int, int, int], tuple[int, ...]
]
#: the most sequences of books whose sums a ledger keeps
_MEMO_MAX = 64


def _sums(books: Sequence[EpochBook], n_logical: int) -> list[_CoreSum]:
    """Per logical core that ``books`` (in run order) touch, the sum of its rows and its
    token counts after the last of them."""
    total = np.zeros((n_logical, _WIDTH), np.int64)
    last: dict[int, tuple[int, ...]] = {}
    for b in books:
        total[b.lcs] += b.rows
        for lc, ex in zip(b.lcs.tolist(), b.exit, strict=True):
            last[lc] = ex
    out: list[_CoreSum] = []
    for lc, ex in last.items():
        row = total[lc].tolist()
        insns = tuple((n, k) for n, k in zip(_NAMES, row[:_N], strict=True) if k)
        seq = (row[_SEQ], row[_SEQ + 1], row[_SEQ + 2])
        out.append((lc, insns, row[_MACS], row[_LOAD], row[_SAVE], seq, ex))
    return out


@dataclass
class Ledger:
    """The books of the epochs a task ran as epoch plans since it last settled."""

    books: list[EpochBook] = field(default_factory=list)
    #: the sums of sequences of books settled before (a task runs the same sequence on
    #: every run), keyed by the books themselves (held, so their ids stay theirs)
    _memo: dict[tuple[EpochBook, ...], list[_CoreSum]] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget the pending books (a restart resets what they would change)."""
        self.books.clear()

    def settle(
        self, n_logical: int, cores: Sequence[Core], counters: Sequence[CoreCounters]
    ) -> None:
        """Apply the pending books: logical core ``lc``'s counts to ``counters[lc]``, its
        sequence numbers, tokens and clocks to ``cores[lc]``."""
        if not self.books:
            return
        key = tuple(self.books)
        self.books.clear()
        sums = self._memo.get(key)
        if sums is None:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            sums = self._memo[key] = _sums(key, n_logical)
        for lc, insns, macs, load, save, (d0, d1, d2), ex in sums:
            c = counters[lc]
            ci = c.insns
            for name, n in insns:
                ci[name] += n
            c.macs += macs
            c.load_bytes += load
            c.save_bytes += save
            core = cores[lc]
            seq = core.seq
            seq[0] += d0
            seq[1] += d1
            seq[2] += d2
            snap = (seq[0], seq[1], seq[2])
            tokens = core.tokens
            for k, n in zip(TOKEN_KEYS, ex, strict=True):
                q = tokens[k]
                if len(q) != n:
                    q.clear()
                    q.extend([snap] * n)
            core.barrier()
