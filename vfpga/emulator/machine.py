"""The multi-core accelerator: DDR, cores, and level 1 of the instruction dispatch.

:class:`Accelerator` owns the pool's cores and DDR. A :class:`Task` is one tenant's running
program: a set of physical cores, a DDR region (base and bound), and a decoded binary. The
level-1 dispatcher routes each instruction to a core through the task's logical-to-physical
core map (instruction bodies are never rewritten), the multi-core sync controller runs the
layer barriers of each task, and the context-switch controller records per task the last
layer whose barrier completed.

Tasks run concurrently: :meth:`Accelerator.run` advances every task one barrier epoch at a
time, round robin. A fault stops only the task that caused it; the others continue and
their results are unaffected (they share no cores and no DDR bytes).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from vfpga.backend.binary import VfbFile, check_hw_limits
from vfpga.emulator import int_matmul
from vfpga.emulator.bounds import check_work_bounds
from vfpga.emulator.core import Core, CoreCounters, ExecContext, describe
from vfpga.emulator.ddr import DDR, Region
from vfpga.emulator.epoch import Covers, Deferred, EpochPlan, build_epoch, save_extents, writes_of
from vfpga.emulator.faults import BudgetFault, DeadlockFault, ExecutionFault
from vfpga.emulator.host_ops import HostOpFault, check_host_op, run_host_op
from vfpga.emulator.ledger import EpochBook, Ledger, book_of
from vfpga.emulator.plan import PreparedBudget, SegmentPlan, build_plan, token_counts
from vfpga.emulator.plan_choice import epoch_pays
from vfpga.errors import BinaryFormatError, EmulatorFault, VfpgaError
from vfpga.hw.config import HardwareConfig
from vfpga.isa.codec import Program, decode
from vfpga.isa.spec import FLAG_FIELDS, Opcode

#: Default emulated DDR size (the pool's DDR is larger; pages are only touched when used).
DEFAULT_DDR_BYTES = 1 << 32
#: Default bound on the float32 weights the fast path keeps between runs (ResNet-50: ~100 MB).
DEFAULT_PREPARED_BYTES = 512 << 20


_blas: list[ThreadpoolController] = []


def _blas_controller() -> ThreadpoolController:
    """The thread pools of the loaded BLAS libraries, found once per process (finding
    them reads ``/proc/self/maps``: ~0.4 ms, a third of a small model's whole run); the
    emulator's only BLAS is numpy's, loaded before this module."""
    if not _blas:
        _blas.append(ThreadpoolController())
    return _blas[0]


class TensorSpec(Protocol):
    """A DDR memory-map entry of a binary (see docs/binary-format.md, TENSORS)."""

    name: str
    role: str
    dtype: str
    layout: str
    shape: tuple[int, ...]
    ddr_offset: int
    size: int
    scale: float
    zero_point: int


class ProgramImage(Protocol):
    """What the emulator needs from a binary: code, constants, the memory map, and
    optionally the IFP and dispatch tables (docs/binary-format.md)."""

    # read-only members, so that a binary holding a list of a TensorSpec subtype matches
    @property
    def text(self) -> bytes: ...
    @property
    def data(self) -> bytes: ...
    @property
    def data_offset(self) -> int: ...
    @property
    def ddr_size(self) -> int: ...
    @property
    def tensors(self) -> Sequence[TensorSpec]: ...


class InsnFields:
    """Per instruction, all its fields (header, payload, flag sub-fields) as a dict,
    decoded on first use and cached, so a binary holding many tiling candidates only pays
    for the instructions it runs; the execution loop never touches numpy records."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self._cache: dict[int, dict[str, int]] = {}
        self._names = {
            op: [n for n in program.by_op[op].dtype.names or () if n != "reserved"] for op in Opcode
        }

    def __getitem__(self, i: int) -> dict[str, int]:
        d = self._cache.get(i)
        if d is None:
            op = Opcode(int(self.program.opcode[i]))
            names = self._names[op]
            rec = self.program.by_op[op][self.program.slot[i]]
            d = dict(zip(names, rec[names].tolist(), strict=True))
            for ff in FLAG_FIELDS[op]:
                d[ff.name] = (d["flags"] >> ff.shift) & ((1 << ff.width) - 1)
            self._cache[i] = d
        return d

    def prefetch_segments(self, segments: Sequence[Sequence[Segment]]) -> None:
        """Decode every instruction ``segments`` run: done once when a binary is loaded
        or a context switch installs new segments, never in the execution loop."""
        parts = [seg.indices for core in segments for seg in core if seg.indices.size]
        if parts:
            self.prefetch(np.unique(np.concatenate(parts)))

    def prefetch(self, indices: np.ndarray) -> None:
        """Decode the instructions ``indices`` not decoded yet, in bulk (one ``tolist``
        per opcode)."""
        prog = self.program
        idx = np.asarray(indices)
        if self._cache and idx.size:
            idx = idx[[i not in self._cache for i in idx.tolist()]]
        for op in Opcode:
            sel = idx[prog.opcode[idx] == int(op)] if idx.size else idx
            if not sel.size:
                continue
            names = self._names[op]
            recs = prog.by_op[op][prog.slot[sel]][names].tolist()
            for i, rec in zip(sel.tolist(), recs, strict=True):
                d = dict(zip(names, rec, strict=True))
                for ff in FLAG_FIELDS[op]:
                    d[ff.name] = (d["flags"] >> ff.shift) & ((1 << ff.width) - 1)
                self._cache[i] = d


@dataclass(frozen=True)
class Segment:
    """Work of one core up to a control point: the instruction ``indices`` (program order,
    no SYNC/END among them), then a barrier of ``layer`` (``end`` False) or the end of the
    core's program (``end`` True). ``ctrl`` is the SYNC/END instruction's index in TEXT, or
    -1 when the level-1 dispatcher synthesises it from a dispatch table."""

    indices: np.ndarray
    end: bool
    layer: int
    ctrl: int


def segments_from_core_fields(program: Program, n_logical: int) -> list[list[Segment]]:
    """Route every instruction to the logical core in its core field (hand-written
    programs, and binaries without a dispatch table) and cut each core's stream at its
    SYNC and END instructions. A stream that does not end with END gets a final segment
    with ``ctrl == -2`` (reported as a fault when reached)."""
    out: list[list[Segment]] = []
    for c in range(n_logical):
        stream = np.flatnonzero(program.core == c)
        ops = program.opcode[stream]
        ctrl = np.flatnonzero((ops == Opcode.SYNC) | (ops == Opcode.END))
        segs: list[Segment] = []
        pos = 0
        for k in ctrl.tolist():
            i = int(stream[k])
            is_end = int(program.opcode[i]) == Opcode.END
            segs.append(Segment(stream[pos:k], is_end, int(program.layer[i]), i))
            pos = k + 1
            if is_end:
                break
        else:
            segs.append(Segment(stream[pos:], True, -1, -2))
        out.append(segs)
    return out


def segments_from_dispatch(
    dispatch: np.ndarray, ifps: np.ndarray, n_logical: int
) -> list[list[Segment]]:
    """Per logical core, its segments as the dispatch table lists them: the instruction
    ranges of its IFPs up to each SYNC entry, then END. A core absent from the table gets
    a single empty END segment."""
    out: list[list[Segment]] = []
    offs = ifps["insn_offset"].astype(np.int64)
    counts = ifps["insn_count"].astype(np.int64)
    for c in range(n_logical):
        rows = dispatch[dispatch["core"] == c]
        segs: list[Segment] = []
        pending: list[np.ndarray] = []
        for kind, arg in zip(rows["kind"].tolist(), rows["arg"].tolist(), strict=True):
            if kind == 0:
                pending.append(np.arange(offs[arg], offs[arg] + counts[arg]))
                continue
            idx = np.concatenate(pending) if pending else np.zeros(0, np.int64)
            pending = []
            segs.append(Segment(idx, kind == 2, int(arg) if kind == 1 else -1, -1))
            if kind == 2:
                break
        if not segs:
            segs.append(Segment(np.zeros(0, np.int64), True, -1, -1))
        out.append(segs)
    return out


def _no_end(program: Program, lc: int, seg: Segment) -> str:
    """Why logical core ``lc``'s stream, whose final segment ``seg`` has no END, is bad."""
    if seg.indices.size:
        last = int(seg.indices[-1])
        return (f"logical core {lc} has no END instruction: its stream ends with instruction "
                f"#{last} ({Opcode(int(program.opcode[last])).name}); end it with END")
    if not np.any(program.core == lc):
        return (f"logical core {lc} has no instructions, not even END (the program uses "
                f"cores 0..{int(program.core.max())}; give every core at least END)")
    return f"logical core {lc} has no END instruction after its last SYNC; end it with END"


@dataclass(eq=False)
class Epoch:
    """A barrier epoch of a task from one state (its active cores' segments and token
    counts): its epoch plan (``None``: the cores run their own plans, :attr:`own`: per
    active core (logical core, physical core, its plan), when every core has one) and,
    when the barrier after it is a clean one (every active core at END, or all at SYNC
    of one layer), what it does to the task: :attr:`book` (the cores' bookkeeping,
    :mod:`vfpga.emulator.ledger`), the cores' positions after it, and the layer whose
    barrier completes (``None``: the program ends). :attr:`next` is the
    epoch that follows it (linked on first use: the state after an epoch is a function
    of the state before it). :attr:`chain_end`: the epoch after it is known not to run
    as a booked epoch plan; :attr:`future`: what the booked epochs after it write, once
    they are all known (see :meth:`vfpga.emulator.epoch.Deferred.then`)."""

    segs: tuple[Segment, ...]
    plan: EpochPlan | None
    own: list[tuple[int, int, SegmentPlan]] | None = None
    book: EpochBook | None = None
    pos_after: tuple[int, ...] = ()
    layer: int | None = None
    next: Epoch | None = None
    chain_end: bool = False
    future: Covers | None = None


@dataclass
class LoadedProgram:
    """A binary decoded once: its program, per-instruction fields (decoded lazily) and,
    per logical core, its segments (see :class:`Segment`)."""

    program: Program
    fields: InsnFields
    segments: list[list[Segment]]
    #: precompiled plans of the segments (vfpga.emulator.plan), built on first run and
    #: kept while these segments are installed: key (id(segment), physical core, task,
    #: region base, token counts at entry) -> (segment, plan or None for "runs on the
    #: interpreter because it faults statically")
    plans: dict[tuple[int, int, str, int, tuple[int, ...]], tuple[Segment, SegmentPlan | None]] = (
        field(default_factory=dict, repr=False, compare=False))
    #: epoch plans (vfpga.emulator.epoch) of the task's epochs, built on first run: key
    #: (task, region base, per active core (id(segment), physical core, token counts)) ->
    #: the epoch (its plan or None for "the cores run their own plans")
    epochs: dict[tuple[object, ...], Epoch] = field(
        default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_text(cls, text: bytes) -> LoadedProgram:
        """A program routed by the instructions' core fields."""
        prog = decode(text)
        n_logical = int(prog.core.max()) + 1 if len(prog) else 0
        return cls.with_segments(prog, segments_from_core_fields(prog, n_logical))

    @classmethod
    def with_segments(cls, prog: Program, segs: list[list[Segment]]) -> LoadedProgram:
        """``prog`` with ``segs``, every instruction they run decoded up front."""
        fields = InsnFields(prog)
        fields.prefetch_segments(segs)
        return cls(prog, fields, segs)

    @classmethod
    def from_image(cls, image: ProgramImage) -> LoadedProgram:
        """A program routed by the image's dispatch table if it has one, else by the
        instructions' core fields."""
        dispatch = getattr(image, "dispatch", None)
        if dispatch is None or not len(dispatch):
            return cls.from_text(bytes(image.text))
        prog = getattr(image, "program", None) or decode(bytes(image.text))
        n_logical = int(dispatch["core"].max()) + 1
        segs = segments_from_dispatch(dispatch, image.ifps, n_logical)  # type: ignore[attr-defined]
        return cls.with_segments(prog, segs)

    @property
    def num_logical_cores(self) -> int:
        return len(self.segments)


@dataclass
class TaskResult:
    """Outcome of a task's run: ``error`` is the fault message if it faulted."""

    name: str
    ok: bool
    error: str | None
    last_finished_layer: int | None
    counters: dict[int, CoreCounters]
    barriers: int


@dataclass
class Task:
    """One tenant's program on the accelerator.

    ``cores`` are physical core indices; logical core ``i`` of the program runs on
    ``cores[i]``. ``region`` is the tenant's DDR window.
    """

    name: str
    cores: list[int]
    region: Region
    accel: Accelerator
    loaded: LoadedProgram | None = None
    image: ProgramImage | None = None
    last_finished_layer: int | None = None
    barriers: int = 0
    host_ops_run: int = 0
    #: context switches (:meth:`switch_cores`) since the last (re)start
    switches: int = 0
    error: str | None = None
    done: bool = False
    #: wall-time budget of the current run (:meth:`set_budget`): seconds and the
    #: ``time.monotonic()`` deadline
    budget_seconds: float | None = None
    deadline: float | None = None
    _pos: list[int] = field(default_factory=list)
    #: called with the layer index after each completed barrier (and its host ops)
    barrier_hooks: list[Callable[[int], None]] = field(default_factory=list)
    counters: dict[int, CoreCounters] = field(default_factory=dict)
    #: the DDR ranges the loaded program's SAVEs and :meth:`write_tensor` can write (see
    #: :meth:`_writable`)
    _writes: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    #: the epoch plans whose surviving buffer writes are not made yet (see
    #: :class:`vfpga.emulator.epoch.Deferred`, :meth:`_flush`)
    _deferred: Deferred | None = field(default=None, repr=False)
    #: dynamic outputs (``Tensor.dynamic``: not in DDR) as the host ops computed them
    dynamic_values: dict[str, np.ndarray] = field(default_factory=dict)
    #: the cores' bookkeeping of the epochs run as epoch plans, not applied yet (see
    #: :mod:`vfpga.emulator.ledger`, :meth:`_settle`)
    _ledger: Ledger = field(default_factory=Ledger, repr=False)
    #: the last epoch run as a booked epoch plan, while the task's state is the one it
    #: left (its :attr:`Epoch.next` is then the next epoch); None otherwise
    _last_epoch: Epoch | None = field(default=None, repr=False)
    #: the layers after which the loaded binary runs host ops (-1: before the first)
    _host_after: frozenset[int] = field(default=frozenset(), repr=False)

    # ---------------------------------------------------------------- loading
    def load(self, image: ProgramImage, source: str | None = None) -> None:
        """Decode ``image``'s code once and place its constants in the task's DDR region,
        after the load-time checks (docs/binary-format.md, "What is validated where"),
        whose errors start with ``source`` (default: the task)."""
        if image.ddr_size > self.region.bound:
            raise VfpgaError(
                f"task '{self.name}': the binary needs {image.ddr_size} bytes of DDR, the "
                f"region holds {self.region.bound}"
            )
        end = image.data_offset + len(image.data)
        if end > image.ddr_size:
            raise VfpgaError(
                f"task '{self.name}': the binary's constants [0x{image.data_offset:x}, "
                f"0x{end:x}) do not fit its declared DDR size 0x{image.ddr_size:x}"
            )
        source = source or f"task '{self.name}'"
        self._flush()
        if isinstance(image, VfbFile):
            check_hw_limits(image, self.accel.hw, source)
        loaded = LoadedProgram.from_image(image)
        check_work_bounds(loaded.program, self.accel.hw, source)
        for lc, segs in enumerate(loaded.segments):
            if segs[-1].ctrl == -2:
                raise BinaryFormatError(f"{source}: {_no_end(loaded.program, lc, segs[-1])}")
        for op in getattr(image, "host_ops", ()):
            try:
                check_host_op(op, image.tensors)
            except HostOpFault as exc:
                raise BinaryFormatError(f"{source}: {exc}") from None
        if loaded.num_logical_cores > len(self.cores):
            raise VfpgaError(
                f"task '{self.name}': the binary uses {loaded.num_logical_cores} cores but the "
                f"task holds {len(self.cores)}; give the task at least "
                f"{loaded.num_logical_cores} cores"
            )
        self.dynamic_values.clear()
        if self.loaded is not None:  # a fresh region is zero already (DDR.allocate)
            self.region.mem[:] = 0
        self.region.mem[image.data_offset : end] = np.frombuffer(image.data, dtype=np.uint8)
        self.loaded = loaded
        self.image = image
        self._writes = None
        self._host_after = frozenset(
            -1 if op.after_layer == 0xFFFFFFFF else op.after_layer
            for op in getattr(image, "host_ops", ()))
        self.restart()

    def restart(self) -> None:
        """Rewind to the first instruction (inputs and constants stay in DDR)."""
        self._flush()
        self._ledger.clear()  # the counters and cores are reset below
        self._last_epoch = None
        self._pos = [0] * (self.loaded.num_logical_cores if self.loaded else 0)
        self.last_finished_layer = None
        self.barriers = 0
        self.host_ops_run = 0
        self.switches = 0
        self.error = None
        self.done = self.loaded is None or self.loaded.num_logical_cores == 0
        self.counters = {c: CoreCounters() for c in self.cores}
        for c in self.cores:
            self.accel.cores[c].reset()

    # ----------------------------------------------------------------- tensors
    def tensor(self, name: str) -> TensorSpec:
        """The memory-map entry ``name``."""
        assert self.image is not None, "no binary loaded"
        for t in self.image.tensors:
            if t.name == name:
                return t
        names = ", ".join(t.name for t in self.image.tensors)
        raise VfpgaError(f"task '{self.name}': no tensor '{name}' (tensors: {names})")

    def _writable(self) -> tuple[np.ndarray, np.ndarray]:
        """The DDR ranges (merged, sorted ``[lo, hi)``) that the loaded program can write
        without going through :attr:`Region.mem`: its SAVEs (every SAVE instruction of the
        binary) and the tensors of its memory map (:meth:`write_tensor`, inputs and host
        ops)."""
        if self._writes is None:
            assert self.loaded is not None and self.image is not None
            self._writes = save_extents(
                self.loaded.program,
                [(t.ddr_offset, t.ddr_offset + t.size) for t in self.image.tensors
                 if not getattr(t, "dynamic", False)])
        return self._writes

    def _run_host_ops(self, after: int) -> None:
        """Run the binary's host ops scheduled after layer ``after`` (-1: before the
        first layer) on the host, reading and writing this task's DDR."""
        image = self.image
        for op in getattr(image, "host_ops", ()):
            when = -1 if op.after_layer == 0xFFFFFFFF else op.after_layer
            if when == after:
                self._flush()
                run_host_op(op, image.tensors, self.read_tensor, self.write_tensor)  # type: ignore[union-attr]
                self.host_ops_run += 1

    def write_tensor(self, name: str, value: np.ndarray) -> None:
        """Write ``value`` into tensor ``name``: int8 as is, float quantized with the
        tensor's scale and zero point (round half to even, saturate). A dynamic output
        (``Tensor.dynamic``) is kept as it is, outside DDR."""
        t = self.tensor(name)
        arr = np.asarray(value)
        if getattr(t, "dynamic", False):
            if arr.dtype != np.dtype(t.dtype) or arr.ndim != len(t.shape):
                raise VfpgaError(f"tensor '{name}' is a {t.dtype} output of rank "
                                 f"{len(t.shape)}, got {arr.dtype} of shape {arr.shape}")
            self.dynamic_values[name] = arr.copy()
            return
        if t.dtype == "float32":
            arr = arr.astype(np.float32)
        elif t.dtype == "int64":  # ids (vfpga.quant.index_inputs): integers, never quantized
            if arr.dtype.kind not in "iu":
                raise VfpgaError(f"tensor '{name}' holds int64 ids, got {arr.dtype} values")
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "f":  # as ONNX QuantizeLinear: float32 division, ties to even
            q = np.rint(arr.astype(np.float32) / np.float32(t.scale)) + t.zero_point
            arr = np.clip(q, -128, 127).astype(np.int8)
        arr = np.ascontiguousarray(arr)
        if arr.nbytes != t.size:
            raise VfpgaError(
                f"tensor '{name}' holds {t.size} bytes ({t.dtype} {t.layout} "
                f"{'x'.join(map(str, t.shape))}), got an array of {arr.nbytes} bytes "
                f"(shape {arr.shape}, {arr.dtype})"
            )
        # a tensor's bytes: within :meth:`_writable`, so not counted as a hand-out
        self.region.view()[t.ddr_offset : t.ddr_offset + t.size] = arr.reshape(-1).view(np.uint8)

    def read_tensor(self, name: str) -> np.ndarray:
        """Tensor ``name`` as stored (int8 array of its shape; a dynamic output as the
        host computed it, an empty array before that)."""
        t = self.tensor(name)
        if getattr(t, "dynamic", False):
            got = self.dynamic_values.get(name)
            return got.copy() if got is not None else np.zeros(t.shape, np.dtype(t.dtype))
        raw = self.region.view()[t.ddr_offset : t.ddr_offset + t.size].copy()
        if not t.shape:  # a raw blob (rank 0)
            return raw
        return raw.view(np.dtype(t.dtype)).reshape(t.shape)

    # --------------------------------------------------------------- execution
    def step(self) -> None:
        """Run every core of the task to its next SYNC or END, then the barrier.

        Every failure is an :class:`~vfpga.errors.EmulatorFault` of this task: an error of
        any other type raised while running its instructions or host ops (a hostile binary
        can reach corners no check foresaw; ``MemoryError`` included) becomes an
        :class:`ExecutionFault` naming its type, so it can never abort other tasks. A task
        past its :attr:`deadline` raises :class:`BudgetFault`."""
        ok = False
        try:
            self._step()
            ok = True
        except EmulatorFault:
            raise
        except VfpgaError as exc:
            raise ExecutionFault(f"task '{self.name}': {exc}") from None
        except Exception as exc:
            raise ExecutionFault(
                f"task '{self.name}': the program failed with {type(exc).__name__}: {exc}"
            ) from None
        finally:
            if not ok or self.done:
                self._flush()

    def _settle(self) -> None:
        """Apply the bookkeeping of the epochs run as epoch plans (counters, sequence
        numbers, tokens, clocks; :mod:`vfpga.emulator.ledger`) to the task's counters and
        cores: done before anything reads or changes them."""
        if self._ledger.books:
            self._ledger.settle(len(self.cores), [self.accel.cores[p] for p in self.cores],
                                [self.counters[p] for p in self.cores])

    def _flush(self) -> None:
        """Make the buffer writes of the last epoch plans that are not made yet (see
        :class:`vfpga.emulator.epoch.Deferred`)."""
        pending, self._deferred = self._deferred, None
        if pending is not None:
            pending.flush()

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise BudgetFault(
                f"task '{self.name}': over its wall-time budget of {self.budget_seconds:g} s "
                f"(after {self.barriers} layer barriers)"
            )

    def set_budget(self, seconds: float | None) -> None:
        """Give the run starting now a wall-time budget of ``seconds`` (``None``: none).
        It is checked before every core's segment and every barrier, so one run
        overshoots by at most one segment (whose work :mod:`vfpga.emulator.bounds` bounds)."""
        self.budget_seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def _step(self) -> None:
        assert self.loaded is not None
        prog = self.loaded.program
        self._check_deadline()
        if self.barriers == 0 and not any(self._pos):
            self._run_host_ops(-1)
        fused = False
        if self.accel.fast:
            last, self._last_epoch = self._last_epoch, None
            epoch = last.next if last is not None else None
            if epoch is None:
                self._settle()  # the plan lookups key on the cores' token counts
                epoch = self._epoch(self._active())
                if last is not None:
                    if epoch is not None and epoch.book is not None:
                        last.next = epoch
                    else:
                        last.chain_end = True
            if epoch is not None:
                if epoch.book is not None:
                    if self._run_booked(epoch):
                        return
                else:
                    fused = self._run_plan(epoch)
        self._settle()
        active = self._active()
        if not fused:
            self._flush()
        stops: list[tuple[int, Segment]] = []
        for lc, seg in active:
            phys = self.cores[lc]
            core = self.accel.cores[phys]
            if not fused:
                self._check_deadline()
                before = core.counters
                core.counters = self.counters[phys]
                try:
                    plan = self._plan(lc, phys, core, seg) if self.accel.fast else None
                    if plan is not None:
                        plan.run(core)
                    else:
                        ctx = ExecContext(self.name, lc, prog, self.loaded.fields, self.region)
                        core.run_segment(ctx, seg.indices)
                finally:
                    core.counters = before
            if seg.ctrl == -2:
                raise ExecutionFault(f"task '{self.name}': core {phys}: "
                                     f"{_no_end(prog, lc, seg)}")
            self.counters[phys].insns["END" if seg.end else "SYNC"] += 1
            core.barrier()
            stops.append((lc, seg))
            self._pos[lc] += 1
        self._sync(stops)

    def _active(self) -> list[tuple[int, Segment]]:
        """The (logical core, segment) of every core whose program has not ended."""
        assert self.loaded is not None
        pos = self._pos
        return [(lc, segs[pos[lc]]) for lc, segs in enumerate(self.loaded.segments)
                if pos[lc] < len(segs)]

    def _run_booked(self, epoch: Epoch) -> bool:
        """Run ``epoch`` as its epoch plan, its cores' bookkeeping left to the ledger, and
        complete its barrier (as :meth:`_sync` would); False (nothing done) if the plan
        declined to run."""
        ep, book = epoch.plan, epoch.book
        assert book is not None
        if ep is None:
            self._run_own(epoch)
        else:
            if self._deferred is not None and self._deferred.holds(ep):
                self._flush()
            pending = ep.run_after(None, self._deferred, self._future(epoch))
            if pending is None:
                return False
            self._deferred = pending
        self._ledger.books.append(book)
        self._pos[:] = epoch.pos_after
        layer = epoch.layer
        if layer is None:
            self.done = True
            return True
        self._last_epoch = epoch
        self.last_finished_layer = layer
        self.barriers += 1
        if layer in self._host_after:
            self._run_host_ops(layer)
        if self.barrier_hooks:
            self._flush()
            self._settle()
            for hook in self.barrier_hooks:
                hook(layer)
        return True

    def _run_own(self, epoch: Epoch) -> None:
        """Run ``epoch`` on its cores' own plans, their bookkeeping left to the ledger
        (:meth:`_run_booked`). On a fault (of a step, or the budget's before a core) the
        cores are left as the per-core path leaves them: the pending books settled, the
        cores before the faulting one counted, at the barrier and past it, its executed
        prefix counted (:meth:`SegmentPlan.run`)."""
        assert epoch.own is not None
        self._flush()
        done = 0
        try:
            for _lc, phys, plan in epoch.own:
                self._check_deadline()
                core = self.accel.cores[phys]
                before = core.counters
                core.counters = self.counters[phys]
                try:
                    plan.run(core, finish=False)
                finally:
                    core.counters = before
                done += 1
        except BaseException:
            self._settle()
            for (lc, phys, plan), seg in zip(epoch.own[:done], epoch.segs, strict=False):
                core = self.accel.cores[phys]
                plan.finish(core, self.counters[phys])
                self.counters[phys].insns["END" if seg.end else "SYNC"] += 1
                core.barrier()
                self._pos[lc] += 1
            raise

    def _future(self, epoch: Epoch) -> Covers | None:
        """What the booked epochs after ``epoch`` write (:attr:`Epoch.future`), once the
        chain of links from it is known to its end (None before: the first run)."""
        if epoch.future is not None:
            return epoch.future
        assert self.loaded is not None
        chain = [epoch]
        e = epoch
        while e.layer is not None and not e.chain_end:
            nxt = e.next
            if nxt is None or len(chain) > len(self.loaded.epochs):
                return None
            if nxt.plan is None:  # the cores' own plans: the writes are made before it
                break
            chain.append(nxt)
            e = nxt
        cover: Covers = {}
        for e in reversed(chain):
            if e.future is None:
                e.future = cover
            cover = writes_of([e.plan] if e.plan is not None else [], e.future)
        return epoch.future

    def _run_plan(self, epoch: Epoch) -> bool:
        """Run ``epoch``'s plan (if it has one), its cores' bookkeeping made now (an epoch
        whose barrier is not a clean one: :meth:`_sync` reports it); False (nothing
        done) if there is none or it declined to run (the cores then run their own
        plans)."""
        ep = epoch.plan
        if ep is None:
            return False
        if self._deferred is not None and self._deferred.holds(ep):
            self._flush()
        self._settle()
        pending = ep.run_after([self.counters[self.cores[lc]] for lc, _ in self._active()],
                               self._deferred)
        if pending is None:
            return False
        self._deferred = pending
        return True

    def _epoch(self, active: list[tuple[int, Segment]]) -> Epoch | None:
        """The epoch of the segments ``active`` (logical core, segment) from the cores'
        current token counts, its plans built on first use (None: no epoch plan can run
        it, e.g. a core's stream has no END)."""
        assert self.loaded is not None
        if not active or any(seg.ctrl == -2 for _, seg in active):
            return None
        cores = [self.accel.cores[self.cores[lc]] for lc, _ in active]
        key = (self.name, self.region.base, tuple(
            (id(seg), self.cores[lc], token_counts(core))
            for (lc, seg), core in zip(active, cores, strict=True)))
        segs = tuple(seg for _, seg in active)
        hit = self.loaded.epochs.get(key)
        if hit is not None and all(a is b for a, b in zip(hit.segs, segs, strict=True)):
            return hit
        work = []
        for (lc, seg), core in zip(active, cores, strict=True):
            plan = self._plan(lc, self.cores[lc], core, seg)
            if plan is None:
                break
            ctx = ExecContext(self.name, lc, self.loaded.program, self.loaded.fields,
                              self.region)
            work.append((core, ctx, plan))
        ep = build_epoch(work, self.accel.prepared_budget,
                         self._writable()) if len(work) == len(active) else None
        if ep is not None and not epoch_pays(ep, len(work)):
            ep = None  # the cores' own plans are faster for this form (plan_choice)
        epoch = self.loaded.epochs[key] = Epoch(segs, ep)
        macs: list[int] | None = None
        if ep is not None and len(ep.cores) == len(active):
            macs = [cw.macs for cw in ep.cores]
        elif ep is None and len(work) == len(active):
            epoch.own = [(lc, self.cores[lc], p) for (lc, _), (_, _, p) in zip(
                active, work, strict=True)]
            macs = [0] * len(work)  # the steps count their MACs as they run
        if macs is not None:
            ends = [seg.end for seg in segs]
            layers = {seg.layer for seg in segs}
            if all(ends) or (not any(ends) and len(layers) == 1):
                pos = list(self._pos)
                for lc, _ in active:
                    pos[lc] += 1
                epoch.pos_after = tuple(pos)
                epoch.layer = None if all(ends) else layers.pop()
                epoch.book = book_of([lc for lc, _ in active], [p for _, _, p in work],
                                     macs, ends)
        return epoch

    def _plan(self, lc: int, phys: int, core: Core, seg: Segment) -> SegmentPlan | None:
        """The cached plan of ``seg`` on ``core`` from its current token counts (built on
        first use), or ``None`` when the segment must run on the interpreter."""
        assert self.loaded is not None
        key = (id(seg), phys, self.name, self.region.base, token_counts(core))
        hit = self.loaded.plans.get(key)
        if hit is not None and hit[0] is seg:
            return hit[1]
        ctx = ExecContext(self.name, lc, self.loaded.program, self.loaded.fields, self.region)
        plan = build_plan(core, ctx, seg.indices, self.accel.prepared_budget,
                          self._writable())
        self.loaded.plans[key] = (seg, plan)
        return plan

    def run_until_layer(self, layer: int) -> None:
        """Step (see :meth:`step`) until the barrier of ``layer`` has completed (the
        context-switch controller records ``layer`` as the last finished layer) or the
        program ends. Faults propagate as :class:`EmulatorFault`."""
        while not self.done and self.last_finished_layer != layer:
            self.step()

    def switch_cores(self, cores: Sequence[int], dispatch: np.ndarray) -> None:
        """Context switch at the current layer boundary: continue the remaining layers on
        the physical ``cores`` as routed by ``dispatch`` (a DISPATCH table of the loaded
        binary, e.g. from the dynamic pass, naming at most ``len(cores)`` logical cores).

        The level-1 context-switch controller's record, :attr:`last_finished_layer`, says
        where to resume: each new logical core starts after its SYNC entry of that layer
        (at its first entry if no layer has finished). The intermediate results stay in
        the task's DDR region; instruction bodies are shared, not rewritten. The new
        cores are reset to the initial buffer credits (the level-2 context-switch module);
        cores the task no longer holds are released. Counters of every core the task has
        used are kept. Raises :class:`VfpgaError` if the task is not loaded, has ended or
        faulted, the cores are not free distinct cores of the pool, or the table has no
        barrier of the last finished layer on some core."""
        self._flush()  # the old cores' buffers as the interpreter leaves them
        self._settle()
        if self.loaded is None or self.image is None:
            raise VfpgaError(f"task '{self.name}': no binary loaded")
        if self.done or self.error is not None:
            raise VfpgaError(f"task '{self.name}': cannot switch cores, the task has "
                             f"{'faulted' if self.error else 'finished'}")
        ifps = getattr(self.image, "ifps", None)
        if ifps is None or dispatch is None or not len(dispatch):
            raise VfpgaError(f"task '{self.name}': a context switch needs a binary with an "
                             "IFP table and a non-empty dispatch table")
        new = [int(c) for c in cores]
        n_pool = len(self.accel.cores)
        if not new or len(set(new)) != len(new) or not all(0 <= c < n_pool for c in new):
            raise VfpgaError(f"task '{self.name}': cores {new} are not distinct cores of "
                             f"0..{n_pool - 1}")
        busy = {c: t.name for t in self.accel.tasks.values() if t is not self for c in t.cores}
        taken = [f"{c} (task '{busy[c]}')" for c in new if c in busy]
        if taken:
            raise VfpgaError(f"task '{self.name}': cores already in use: {', '.join(taken)}")
        n_logical = int(dispatch["core"].max()) + 1
        if n_logical > len(new):
            raise VfpgaError(f"task '{self.name}': the dispatch table uses {n_logical} cores "
                             f"but the switch gives {len(new)}")
        segs = segments_from_dispatch(dispatch, ifps, n_logical)
        last = self.last_finished_layer
        pos: list[int] = []
        for lc, core_segs in enumerate(segs):
            if last is None:
                pos.append(0)
                continue
            at = [i for i, sg in enumerate(core_segs) if not sg.end and sg.layer == last]
            if not at:
                raise VfpgaError(f"task '{self.name}': the new dispatch table has no barrier "
                                 f"of layer {last} on logical core {lc}; cannot resume after "
                                 "that layer")
            pos.append(at[0] + 1)
        self.loaded.fields.prefetch_segments(segs)
        self.loaded = LoadedProgram(self.loaded.program, self.loaded.fields, segs)
        self._last_epoch = None
        self.cores = new
        self._pos = pos
        for c in new:
            self.accel.cores[c].reset()
            self.counters.setdefault(c, CoreCounters())
        self.switches += 1

    def _sync(self, stops: list[tuple[int, Segment]]) -> None:
        """The multi-core sync controller: all cores at SYNC of one layer, or all at END."""
        def where(lc: int, seg: Segment) -> str:
            return f"#{seg.ctrl}" if seg.ctrl >= 0 else "dispatch table"

        ends = [(lc, s) for lc, s in stops if s.end]
        syncs = [(lc, s) for lc, s in stops if not s.end]
        if len(ends) == len(stops):
            self.done = True
            return
        if ends:
            waiting = ", ".join(
                f"core {self.cores[lc]} at SYNC layer {s.layer} ({where(lc, s)})"
                for lc, s in syncs
            )
            ended = ", ".join(f"core {self.cores[lc]} (END {where(lc, s)})" for lc, s in ends)
            raise DeadlockFault(
                f"task '{self.name}': deadlock at a layer barrier: {waiting} wait(s) for "
                f"{ended}, which ended without reaching the barrier (missing SYNC?)"
            )
        layers = {s.layer for _, s in syncs}
        if len(layers) > 1:
            detail = ", ".join(
                f"core {self.cores[lc]} at layer {s.layer} ({where(lc, s)})" for lc, s in syncs
            )
            raise DeadlockFault(
                f"task '{self.name}': deadlock: cores wait at barriers of different layers: "
                f"{detail} (missing SYNC on some core?)"
            )
        self.last_finished_layer = layers.pop()
        self.barriers += 1
        self._run_host_ops(self.last_finished_layer)
        if self.barrier_hooks:
            self._flush()
        for hook in self.barrier_hooks:
            hook(self.last_finished_layer)

    def result(self) -> TaskResult:
        self._settle()
        return TaskResult(
            self.name,
            self.error is None and self.done,
            self.error,
            self.last_finished_layer,
            self.counters,
            self.barriers,
        )


class Accelerator:
    """The pool: ``hw.num_cores`` cores and one DDR shared by region."""

    def __init__(
        self,
        hw: HardwareConfig,
        ddr_bytes: int | None = None,
        check_hazards: bool = True,
        blas_threads: int | None = 1,
        fast: bool = True,
        prepared_bytes: int = DEFAULT_PREPARED_BYTES,
    ) -> None:
        """``blas_threads``: threads of the matrix products while running, BLAS and
        onnxruntime's integer products alike (default 1: the emulator issues many
        tile-sized products, which threads barely speed up and slow down badly when the
        machine is busy; ``None`` leaves BLAS as configured and gives onnxruntime its
        default).

        ``fast``: run each barrier epoch of a core from a precompiled plan
        (:mod:`vfpga.emulator.plan`: static checks and the hazard analysis done once per
        loaded segment); ``False`` interprets every instruction (the reference path).
        Results, faults and counters are the same either way.

        ``prepared_bytes``: with ``fast``, how many bytes of prepared weights (int8 in the
        product layout, or float32 without the integer backend; stacked weights of fused
        accumulation chains) the plans may keep between runs (each is reused only while
        the weight bytes in the core's buffer are exactly those it was made from); weights
        beyond it are prepared again on every run."""
        self.hw = hw
        self.prepared_budget = PreparedBudget(prepared_bytes)
        self.fast = fast
        self.blas_threads = blas_threads
        self.ddr = DDR(min(hw.ddr_bytes, ddr_bytes or DEFAULT_DDR_BYTES))
        self.cores = [Core(hw, i, check_hazards) for i in range(hw.num_cores)]
        self.tasks: dict[str, Task] = {}

    def create_task(self, name: str, cores: Iterable[int], ddr_bytes: int) -> Task:
        """A new task on the physical ``cores`` with a DDR region of ``ddr_bytes``."""
        cores = list(cores)
        if name in self.tasks:
            raise VfpgaError(f"a task named '{name}' already exists")
        if not cores:
            raise VfpgaError(f"task '{name}': needs at least one core")
        bad = [c for c in cores if not 0 <= c < self.hw.num_cores]
        if bad or len(set(cores)) != len(cores):
            raise VfpgaError(
                f"task '{name}': cores {cores} are not distinct cores of 0..{self.hw.num_cores - 1}"
            )
        busy = {c: t.name for t in self.tasks.values() for c in t.cores}
        taken = [f"{c} (task '{busy[c]}')" for c in cores if c in busy]
        if taken:
            raise VfpgaError(f"task '{name}': cores already in use: {', '.join(taken)}")
        try:
            region = self.ddr.allocate(ddr_bytes)
        except MemoryError as exc:
            raise VfpgaError(f"task '{name}': {exc}") from None
        task = Task(name, cores, region, self)
        self.tasks[name] = task
        return task

    def release_task(self, task: Task) -> None:
        """Free the task's cores and DDR region."""
        task._flush()
        task._settle()
        self.ddr.free(task.region)
        self.tasks.pop(task.name, None)

    def run(self, tasks: Sequence[Task] | None = None, raise_on_fault: bool = False) -> dict[
        str, TaskResult
    ]:
        """Run ``tasks`` (default: all) to completion, interleaved epoch by epoch.

        A task that faults stops with its error recorded; the others run on. With
        ``raise_on_fault`` the first fault is raised instead.
        """
        active = [t for t in (tasks if tasks is not None else list(self.tasks.values()))]
        for t in active:
            if t.loaded is None:
                raise VfpgaError(f"task '{t.name}': no binary loaded")
        running = [t for t in active if not t.done]
        limit = (_blas_controller().limit(limits=self.blas_threads, user_api="blas")
                 if self.blas_threads is not None else contextlib.nullcontext())
        # overflow to +-inf in float32 requantization saturates, as docs/isa.md says
        with limit, int_matmul.threads(self.blas_threads), np.errstate(over="ignore",
                                                                       under="ignore"):
            self._run_loop(running, raise_on_fault)
        return {t.name: t.result() for t in active}

    def _run_loop(self, running: list[Task], raise_on_fault: bool) -> None:
        while running:
            for t in list(running):
                try:
                    t.step()  # any error of a task's own is an EmulatorFault (Task.step)
                except EmulatorFault as exc:
                    t.error = str(exc)
                    t.done = True
                    if raise_on_fault:
                        raise
                if t.done:
                    running.remove(t)


__all__ = [
    "Accelerator",
    "LoadedProgram",
    "ProgramImage",
    "Segment",
    "Task",
    "TaskResult",
    "describe",
]
