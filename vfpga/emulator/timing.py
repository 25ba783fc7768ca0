"""Cycle-approximate timing model of the accelerator pool (docs/runtime.md, "Timing model").

A discrete-event simulation of every busy core's LOAD, CALC and SAVE pipelines, the DDR
banks they share, the level-1 instruction dispatcher and the multi-core sync controller.
Timing is **data-independent**: it is computed from the instruction streams alone (the
dispatch table's segments per core and each instruction's fields), never from tensor
values, so no functional run is needed to time a program (the functional emulator,
:mod:`vfpga.emulator.machine`, computes the results; this module computes when).

Costs are those of the static latency model (:func:`vfpga.hw.costs.insn_cycles`,
:func:`~vfpga.hw.costs.compute_cycles`), with one difference: a LOAD or SAVE
holds its module for the instruction's setup cycles and then for the time its bytes take
through the **shared-bank model**:

* Every core of a ``grouped`` configuration sits on one DDR bank (``hw.bank_of_core``);
  an ``interleaved`` core (``large1``) spreads its traffic over all banks, modelled as one
  bank of the summed bandwidth.
* A bank serves its active requesters (the LOAD and the SAVE module of each core are
  separate requesters: AXI read and write channels) by **max-min fair sharing**: each
  gets ``min(port, capacity / n_active)`` bytes per cycle, the fluid limit of round-robin
  arbitration at burst granularity. It is work-conserving: bandwidth left by idle
  requesters is redistributed to the active ones up to their port limit.
* A requester's port limit is ``port_factor`` x the core's fair share of its bank
  (:func:`vfpga.hw.costs.core_bytes_per_cycle`; 16 B/cycle on ``pool16``, a
  128-bit channel at 300 MHz). With the default ``port_factor = 1`` a core alone on its
  bank transfers exactly as the static model assumes; a bank is oversubscribed when more
  than ``cores_per_bank / port_factor`` requesters are active, e.g. when cores load and
  save at the same time, and then every requester on it slows down.

Level 1: the instruction dispatcher decodes one instruction per
``costs.dispatch_cycles_per_insn`` cycles for the whole pool (all tasks share it, first
come first served). A core holds a window of ``window`` dispatched, not yet completed
instructions; when one completes, the instruction ``window`` positions further along its
stream is requested (streams run across barriers, so the next layer's first
instructions are prefetched). An instruction cannot start before it is dispatched.
The sync controller resolves one barrier per ``dispatch_cycles_per_insn`` cycles for the
pool and releases the cores of a task ``costs.sync_cycles`` after the last of them
reached the barrier.

Dependency tokens, initial credits and in-order queues follow docs/isa.md exactly as in
:func:`vfpga.compiler.latency.simulate`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vfpga.emulator.machine import InsnFields, Segment, segments_from_dispatch
from vfpga.hw.config import HardwareConfig
from vfpga.hw.costs import burst_bytes, compute_cycles, core_bytes_per_cycle
from vfpga.isa.codec import Program, decode
from vfpga.isa.spec import MODULE_OF, Dep, Module, Opcode

_L, _C, _S = 0, 1, 2


class TimedImage(Protocol):
    """What the timing model reads from a binary (a :class:`vfpga.backend.binary.VfbFile`):
    the instruction blob (or an already decoded ``program`` attribute, used if present),
    the IFP table and the dispatch table."""

    @property
    def text(self) -> bytes: ...
    @property
    def ifps(self) -> np.ndarray: ...
    @property
    def dispatch(self) -> np.ndarray: ...

_MODULE_INDEX = {Module.LOAD: _L, Module.CALC: _C, Module.SAVE: _S}
#: token counters: 0 L->C, 1 C->L, 2 C->S, 3 S->C
_WAIT = {  # module -> (counter popped by wait_prev, counter popped by wait_next)
    _L: (-1, 1),
    _C: (0, 3),
    _S: (2, -1),
}
_SIGNAL = {  # module -> (counter pushed by signal_prev, by signal_next)
    _L: (-1, 0),
    _C: (1, 2),
    _S: (3, -1),
}


@dataclass(frozen=True)
class TimingParams:
    """Knobs of the timing model that the hardware configuration does not hold.

    ``port_factor``: a LOAD/SAVE requester's peak bytes per cycle, in units of the core's
    fair bank share. ``window``: dispatched-but-not-completed instructions a core holds
    (its level-2 instruction FIFO). ``epsilon``: bytes below which a transfer counts as
    complete (float rounding). ``burst_bytes``: 0, a LOAD or SAVE moves its ``n0 n1 n2``
    bytes (the static latency model's count); ``B > 0``, every contiguous run of its box
    moves in whole bursts of ``B`` bytes (:func:`vfpga.hw.costs.burst_bytes`; DDR4:
    :data:`~vfpga.hw.costs.DDR_BURST_BYTES`), the bus time short rows really take (a
    chunk LOAD of 5-byte weight rows costs 64 bytes a row)."""

    port_factor: float = 1.0
    window: int = 16
    epsilon: float = 1e-6
    burst_bytes: int = 0


# ------------------------------------------------------------------ instruction costs
class InsnCosts:
    """Per-instruction timing inputs of one binary, computed lazily from its fields with
    the static model's costs: module (0 LOAD, 1 CALC, 2 SAVE, -1 control), dependency
    bits, fixed cycles (LOAD/SAVE: setup; CALC: setup + compute) and DDR bytes (with
    ``burst > 0``, every contiguous run rounded up to whole bursts of that many bytes:
    :attr:`TimingParams.burst_bytes`)."""

    def __init__(self, program: Program, hw: HardwareConfig, burst: int = 0) -> None:
        self.program = program
        self.hw = hw
        self.burst = burst
        self.fields = InsnFields(program)
        n = len(program)
        self.module = np.full(n, -1, np.int8)
        for op, m in MODULE_OF.items():
            if m in _MODULE_INDEX:
                self.module[program.opcode == int(op)] = _MODULE_INDEX[m]
        self.deps = program.deps.astype(np.int64)
        self.nbytes = np.zeros(n, np.int64)
        costs = hw.costs
        self.fixed = np.full(n, -1, np.int64)
        for op, setup in ((Opcode.LOAD, costs.load_setup_cycles),
                          (Opcode.SAVE, costs.save_setup_cycles)):
            idx = program.index_of[op]
            if idx.size:
                rec = program.by_op[op]
                if burst:
                    self.nbytes[idx] = burst_bytes(rec["n0"], rec["n1"], rec["n2"],
                                                   rec["stride0"], rec["stride1"], burst)
                else:
                    self.nbytes[idx] = (rec["n0"].astype(np.int64) * rec["n1"].astype(np.int64)
                                        * rec["n2"].astype(np.int64))
                self.fixed[idx] = setup
        for op in (Opcode.SYNC, Opcode.END):
            self.fixed[program.index_of[op]] = 0

    def ensure(self, indices: np.ndarray) -> None:
        """Compute the CALC cycles of ``indices`` not computed yet."""
        idx = np.asarray(indices, np.int64)
        todo = idx[self.fixed[idx] < 0]
        if not todo.size:
            return
        todo = np.unique(todo)
        self.fields.prefetch(todo)
        setup = self.hw.costs.calc_setup_cycles
        ops = self.program.opcode
        for i in todo.tolist():
            op = Opcode(int(ops[i]))
            self.fixed[i] = setup + compute_cycles(op, self.fields[i], self.hw)


_COSTS_CACHE: dict[tuple[int, bytes, int], InsnCosts] = {}


def insn_costs(image: TimedImage, hw: HardwareConfig, burst: int = 0) -> InsnCosts:
    """The (cached) :class:`InsnCosts` of a binary image (anything with ``text`` and
    optionally a decoded ``program``), LOAD/SAVE bytes in bursts of ``burst`` (0: exact)."""
    key = (id(image), hw.fingerprint, burst)
    got = _COSTS_CACHE.get(key)
    if got is None or got.program is not getattr(image, "program", got.program):
        prog = getattr(image, "program", None) or decode(bytes(image.text))
        got = InsnCosts(prog, hw, burst)
        if len(_COSTS_CACHE) > 64:
            _COSTS_CACHE.clear()
        _COSTS_CACHE[key] = got
    return got


# ----------------------------------------------------------------------------- jobs
@dataclass
class JobStats:
    """What the timing model measured for one job: start and end times (cycles), per
    layer the time its barrier completed, and the cycles spent waiting for the DDR bank
    beyond the uncontended transfer time."""

    start: float = 0.0
    end: float = math.nan
    barrier_times: list[tuple[int, float]] = field(default_factory=list)
    switches: int = 0

    @property
    def cycles(self) -> float:
        return self.end - self.start


@dataclass
class Job:
    """One program run (one inference) on the timing model: a task's physical ``cores``
    (logical core ``i`` on ``cores[i]``) and its per-logical-core ``segments`` (see
    :class:`vfpga.emulator.machine.Segment`).

    ``on_barrier(job, layer)`` is called when a barrier completes, before the cores
    continue: it may call :meth:`TimingEngine.switch` (context switch at this layer
    boundary). ``on_done(job)`` is called when every core reached END."""

    name: str
    costs: InsnCosts
    cores: list[int]
    segments: list[list[Segment]]
    on_barrier: Callable[[Job, int], None] | None = None
    on_done: Callable[[Job], None] | None = None
    tag: object = None
    stats: JobStats = field(default_factory=JobStats)
    pos: list[int] = field(default_factory=list)
    arrived: int = 0
    done: bool = False
    last_layer: int | None = None
    #: cycles of a context switch requested at the next barrier (:meth:`TimingEngine.switch`)
    switch_delay: float | None = None


class _CoreState:
    """A physical core while it runs a job: its stream, window, queues and tokens."""

    __slots__ = (
        "arrived_key",
        "avail",
        "busy",
        "heads",
        "inflight",
        "job",
        "lc",
        "next_req",
        "queues",
        "seg",
        "seg_bounds",
        "stream",
        "tokens",
        "wake_at",
    )

    job: Job | None
    lc: int
    stream: np.ndarray
    seg_bounds: np.ndarray
    seg: int
    avail: list[float]
    tokens: list[int]
    busy: list[bool]
    next_req: int
    inflight: int
    wake_at: float
    arrived_key: tuple[int, int, int] | None
    queues: list[list[int]]
    heads: list[int]

    def __init__(self) -> None:
        self.job = None


class _Bank:
    """A DDR bank under max-min fair sharing (see module docstring)."""

    __slots__ = ("active", "capacity", "last", "owners", "port", "rate", "version")

    def __init__(self, capacity: float, port: float) -> None:
        self.capacity = capacity
        self.port = port
        self.active: dict[tuple[int, int], float] = {}
        self.owners: dict[tuple[int, int], tuple] = {}
        self.rate = 0.0
        self.last = 0.0
        self.version = 0


class TimingEngine:
    """The discrete-event timing model of one pool (see module docstring).

    Use :meth:`start` to begin jobs at the current time (or :meth:`at` to schedule any
    callback), then :meth:`run` to advance until no event is left (or a time limit).
    ``now`` is the current time in cycles."""

    def __init__(self, hw: HardwareConfig, params: TimingParams | None = None) -> None:
        self.hw = hw
        self.params = params or TimingParams()
        self.now = 0.0
        self._heap: list[tuple[float, int, int, tuple]] = []
        self._seq = 0
        fair = core_bytes_per_cycle(hw)
        port = fair * self.params.port_factor
        per_bank = hw.bank_bandwidth_gbps * 1e9 / (hw.clock_mhz * 1e6)
        if hw.bank_mapping == "interleaved":
            self.banks = [_Bank(per_bank * hw.ddr_banks, port)]
            self._bank_of = [0] * hw.num_cores
        else:
            self.banks = [_Bank(per_bank, port) for _ in range(hw.ddr_banks)]
            self._bank_of = [hw.bank_of_core(c) or 0 for c in range(hw.num_cores)]
        self.cores = [_CoreState() for _ in range(hw.num_cores)]
        self._dispatch_free = 0.0
        self._barrier_free = 0.0
        self.dispatch_cost = float(hw.costs.dispatch_cycles_per_insn)
        self.sync_cycles = float(hw.costs.sync_cycles)
        #: instructions dispatched and barriers resolved (pool totals)
        self.dispatched = 0
        self.barriers = 0

    # ------------------------------------------------------------------ events
    def _push(self, t: float, kind: int, payload: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, payload))

    def at(self, t: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` at time ``t`` (cycles, not before now)."""
        self._push(max(t, self.now), _EV_CALL, (fn,))

    def run(self, until: float | None = None) -> None:
        """Process events in time order until none is left or the next is after
        ``until`` (then ``now == until``)."""
        heap = self._heap
        handlers = (self._ev_done, self._ev_setup, self._ev_bank, self._ev_wake,
                    self._ev_barrier, self._ev_call)
        while heap:
            if until is not None and heap[0][0] > until:
                self.now = until
                return
            t, _, kind, payload = heapq.heappop(heap)
            self.now = t
            handlers[kind](*payload)
        if until is not None:
            self.now = max(self.now, until)

    # -------------------------------------------------------------------- jobs
    def busy_cores(self) -> set[int]:
        return {i for i, c in enumerate(self.cores) if c.job is not None}

    def start(self, job: Job, delay: float = 0.0) -> Job:
        """Start ``job`` ``delay`` cycles from now on its cores (which must be idle)."""
        busy = [c for c in job.cores if self.cores[c].job is not None]
        if busy:
            raise ValueError(f"timing model: job '{job.name}': cores {busy} are busy")
        if len(job.segments) > len(job.cores):
            raise ValueError(f"timing model: job '{job.name}' needs {len(job.segments)} cores")
        for c in job.cores[: len(job.segments)]:
            self.cores[c].job = job  # reserve now
        job.pos = [0] * len(job.segments)
        job.stats.start = self.now + delay
        self.at(self.now + delay, lambda: self._begin(job))
        return job

    def switch(self, job: Job, cores: Sequence[int], segments: list[list[Segment]],
               delay: float = 0.0) -> None:
        """Context switch of ``job`` at its current layer boundary (call from
        ``on_barrier``): release its cores, continue after its last finished layer on
        ``cores`` with ``segments`` (a new dispatch table's), ``delay`` cycles later (the
        reconfiguration cost). New cores start with the initial credits."""
        last = job.last_layer
        pos: list[int] = []
        for lc, segs in enumerate(segments):
            if last is None:
                pos.append(0)
                continue
            at = [i for i, s in enumerate(segs) if not s.end and s.layer == last]
            if not at:
                raise ValueError(f"timing model: job '{job.name}': the new table has no "
                                 f"barrier of layer {last} on logical core {lc}")
            pos.append(at[0] + 1)
        for c in job.cores:
            if self.cores[c].job is job:
                self.cores[c].job = None
        new = list(cores)
        busy = [c for c in new[: len(segments)] if self.cores[c].job is not None]
        if busy:
            raise ValueError(f"timing model: job '{job.name}': cores {busy} are busy")
        job.cores = new
        job.segments = segments
        job.pos = pos
        job.stats.switches += 1
        for c in new[: len(segments)]:
            self.cores[c].job = job
        job.switch_delay = delay

    def abort(self, job: Job) -> None:
        """Stop ``job`` now (its tenant left): its transfers leave the banks, its cores
        become idle; ``on_done`` is not called."""
        mine = {id(self.cores[c]) for c in job.cores if self.cores[c].job is job}
        for bank in self.banks:
            gone = [k for k in bank.active if k[0] in mine]
            if gone:
                self._bank_update(bank)
                for k in gone:
                    del bank.active[k]
                    bank.owners.pop(k, None)
                self._bank_reschedule(bank)
        for c in job.cores:
            if self.cores[c].job is job:
                self.cores[c].job = None
        job.done = True
        job.stats.end = self.now

    def _begin(self, job: Job, resume: bool = False) -> None:
        if job.done:
            return
        job.arrived = 0
        n = len(job.segments)
        order: list[tuple[int, int]] = []
        for lc in range(n):
            cs = self.cores[job.cores[lc]]
            cs.job = job
            cs.lc = lc
            segs = job.segments[lc][job.pos[lc]:]
            idx = [s.indices for s in segs]
            cs.stream = (np.concatenate(idx) if idx else np.zeros(0, np.int64)).astype(np.int64)
            job.costs.ensure(cs.stream)
            bounds = np.cumsum([0] + [len(s.indices) for s in segs])
            cs.seg_bounds = bounds
            cs.seg = 0
            cs.avail = [math.inf] * len(cs.stream)
            cs.tokens = [0, 1, 0, 1]
            cs.busy = [False, False, False]
            cs.next_req = 0
            cs.inflight = 0
            cs.wake_at = -1.0
            cs.arrived_key = None
        # the dispatcher's first window, round-robin over the job's cores
        w = self.params.window
        for _ in range(w):
            for lc in range(n):
                order.append((lc, 0))
        for lc, _ in order:
            self._request(self.cores[job.cores[lc]])
        for lc in range(n):
            self._open_segment(self.cores[job.cores[lc]])

    def _request(self, cs: _CoreState) -> None:
        p = cs.next_req
        if p >= len(cs.stream):
            return
        cs.next_req = p + 1
        d = max(self.now, self._dispatch_free) + self.dispatch_cost
        self._dispatch_free = d
        cs.avail[p] = d
        self.dispatched += 1

    def _open_segment(self, cs: _CoreState) -> None:
        job = cs.job
        assert job is not None
        lo, hi = int(cs.seg_bounds[cs.seg]), int(cs.seg_bounds[cs.seg + 1])
        mods = job.costs.module[cs.stream[lo:hi]]
        pos = np.arange(lo, hi)
        cs.queues = [pos[mods == m].tolist() for m in (_L, _C, _S)]
        cs.heads = [0, 0, 0]
        self._try(cs)

    # ---------------------------------------------------------------- modules
    def _try(self, cs: _CoreState) -> None:
        job = cs.job
        if job is None:
            return
        costs = job.costs
        progressed = True
        while progressed:
            progressed = False
            for m in (_L, _C, _S):
                if cs.busy[m] or cs.heads[m] >= len(cs.queues[m]):
                    continue
                p = cs.queues[m][cs.heads[m]]
                if cs.avail[p] > self.now:
                    t = cs.avail[p]
                    if cs.wake_at < self.now or t < cs.wake_at:
                        cs.wake_at = t
                        self._push(t, _EV_WAKE, (cs,))
                    continue
                i = int(cs.stream[p])
                deps = int(costs.deps[i])
                wp, wn = _WAIT[m]
                need_p = wp >= 0 and deps & Dep.WAIT_PREV
                need_n = wn >= 0 and deps & Dep.WAIT_NEXT
                if (need_p and cs.tokens[wp] == 0) or (need_n and cs.tokens[wn] == 0):
                    continue
                if need_p:
                    cs.tokens[wp] -= 1
                if need_n:
                    cs.tokens[wn] -= 1
                cs.heads[m] += 1
                cs.busy[m] = True
                cs.inflight += 1
                fixed = float(costs.fixed[i])
                kind = _EV_DONE if m == _C or costs.nbytes[i] == 0 else _EV_SETUP
                self._push(self.now + fixed, kind, (cs, m, p, job))
                progressed = True
        if (cs.inflight == 0 and all(cs.heads[m] >= len(cs.queues[m]) for m in (_L, _C, _S))):
            self._arrive(cs)

    def _ev_wake(self, cs: _CoreState) -> None:
        if cs.wake_at <= self.now:
            cs.wake_at = -1.0
        self._try(cs)

    def _ev_setup(self, cs: _CoreState, m: int, p: int, job: Job) -> None:
        if cs.job is not job:
            return
        i = int(cs.stream[p])
        bank = self.banks[self._bank_of[job.cores[cs.lc]]]
        self._bank_update(bank)
        key = (id(cs), m)
        bank.active[key] = float(job.costs.nbytes[i])
        bank.owners[key] = (cs, m, p, job)
        self._bank_reschedule(bank)

    def _ev_done(self, cs: _CoreState, m: int, p: int, job: Job) -> None:
        if cs.job is not job:
            return
        i = int(cs.stream[p])
        deps = int(job.costs.deps[i])
        sp, sn = _SIGNAL[m]
        if sp >= 0 and deps & Dep.SIGNAL_PREV:
            cs.tokens[sp] += 1
        if sn >= 0 and deps & Dep.SIGNAL_NEXT:
            cs.tokens[sn] += 1
        cs.busy[m] = False
        cs.inflight -= 1
        self._request(cs)
        self._try(cs)

    # ------------------------------------------------------------------- banks
    def _bank_update(self, bank: _Bank) -> None:
        dt = self.now - bank.last
        if dt > 0 and bank.active:
            moved = bank.rate * dt
            for k in bank.active:
                bank.active[k] -= moved
        bank.last = self.now

    def _bank_reschedule(self, bank: _Bank) -> None:
        owners = bank.owners
        eps = self.params.epsilon
        finished = [k for k, left in bank.active.items() if left <= eps]
        for k in finished:
            del bank.active[k]
            cs, m, p, job = owners.pop(k)
            self._push(self.now, _EV_DONE, (cs, m, p, job))
        n = len(bank.active)
        bank.version += 1
        if not n:
            bank.rate = 0.0
            return
        bank.rate = min(bank.port, bank.capacity / n)
        t = self.now + min(bank.active.values()) / bank.rate
        self._push(t, _EV_BANK, (bank, bank.version))

    def _ev_bank(self, bank: _Bank, version: int) -> None:
        if version != bank.version:
            return
        self._bank_update(bank)
        # nothing changed since this event was scheduled for the earliest completion:
        # that transfer (and any equal one) is done, whatever the float rounding says
        if bank.active:
            low = min(bank.active.values()) + self.params.epsilon
            for k, left in bank.active.items():
                if left <= low:
                    bank.active[k] = 0.0
        self._bank_reschedule(bank)

    # ---------------------------------------------------------------- barriers
    def _arrive(self, cs: _CoreState) -> None:
        job = cs.job
        assert job is not None
        key = (id(job), job.stats.switches, cs.seg)
        if cs.arrived_key == key:
            return
        cs.arrived_key = key
        job.arrived += 1
        if job.arrived < len(job.segments):
            return
        seg = job.segments[cs.lc][job.pos[cs.lc] + cs.seg]
        if seg.end:
            self._finish(job)
            return
        t = max(self.now, self._barrier_free)
        self._barrier_free = t + self.dispatch_cost
        self._push(t + self.sync_cycles, _EV_BARRIER, (job, seg.layer))

    def _ev_barrier(self, job: Job, layer: int) -> None:
        if job.done:
            return
        self.barriers += 1
        job.last_layer = layer
        job.stats.barrier_times.append((layer, self.now))
        job.arrived = 0
        if job.on_barrier is not None:
            job.on_barrier(job, layer)
        delay = job.switch_delay
        if delay is not None:
            job.switch_delay = None
            self.at(self.now + delay, lambda: self._begin(job))
            return
        for lc in range(len(job.segments)):
            cs = self.cores[job.cores[lc]]
            cs.seg += 1
            self._open_segment(cs)

    def _finish(self, job: Job) -> None:
        job.done = True
        job.stats.end = self.now
        for c in job.cores:
            if self.cores[c].job is job:
                self.cores[c].job = None
        if job.on_done is not None:
            job.on_done(job)

    def _ev_call(self, fn: Callable[[], None]) -> None:
        fn()


_EV_DONE, _EV_SETUP, _EV_BANK, _EV_WAKE, _EV_BARRIER, _EV_CALL = range(6)


# ------------------------------------------------------------------- helpers
def job_for(name: str, image: TimedImage, hw: HardwareConfig, cores: Sequence[int],
            dispatch: np.ndarray | None = None, *, burst: int = 0, **kw: Any) -> Job:
    """A :class:`Job` running ``image`` (a compiled binary) on the physical ``cores``,
    routed by ``dispatch`` (default: the image's own dispatch table); ``burst``: its
    transfers in whole bursts of that many bytes (:attr:`TimingParams.burst_bytes`)."""
    table = dispatch if dispatch is not None else image.dispatch
    n_logical = int(table["core"].max()) + 1
    segs = segments_from_dispatch(table, image.ifps, n_logical)
    return Job(name, insn_costs(image, hw, burst), list(cores), segs, **kw)


def time_program(image: TimedImage, hw: HardwareConfig, cores: Sequence[int] | None = None,
                 dispatch: np.ndarray | None = None,
                 params: TimingParams | None = None) -> JobStats:
    """One inference of ``image`` alone on the pool: its :class:`JobStats` (``cycles``)."""
    table = dispatch if dispatch is not None else image.dispatch
    n = int(table["core"].max()) + 1
    eng = TimingEngine(hw, params)
    job = job_for("solo", image, hw, list(cores) if cores is not None else list(range(n)), table,
                  burst=eng.params.burst_bytes)
    eng.start(job)
    eng.run()
    return job.stats


def time_ifp(image: TimedImage, hw: HardwareConfig, ifp: int, load_cores: int = 1,
             params: TimingParams | None = None) -> float:
    """Cycles of IFP ``ifp`` alone on core 0 (``load_cores = 1``), or on core 0 while
    cores ``1..load_cores-1`` of the same bank run the same IFP at the same time (full
    bank load with ``load_cores = cores_per_bank``). Measured from the start to the
    completion of its last instruction (no barrier)."""
    eng = TimingEngine(hw, params)
    costs = insn_costs(image, hw, eng.params.burst_bytes)
    rec = image.ifps[ifp]
    idx = np.arange(int(rec["insn_offset"]), int(rec["insn_offset"]) + int(rec["insn_count"]))
    ends: list[float] = []
    jobs = []
    for c in range(load_cores):
        seg = [Segment(idx, True, -1, -1)]
        job = Job(f"ifp{ifp}.{c}", costs, [c], [seg],
                  on_done=lambda j: ends.append(j.stats.end))
        jobs.append(eng.start(job))
    eng.run()
    return jobs[0].stats.cycles


__all__ = [
    "InsnCosts",
    "Job",
    "JobStats",
    "TimingEngine",
    "TimingParams",
    "insn_costs",
    "job_for",
    "time_ifp",
    "time_program",
]
