"""The multi-tenant resource pool (docs/runtime.md).

A :class:`ResourcePool` owns one emulated accelerator (default ``pool16``). Tenants
create a virtual accelerator with a number of cores (:meth:`ResourcePool.create_tenant`),
deploy a ``.vfb`` (:meth:`Tenant.deploy`), submit inference requests
(:meth:`Tenant.submit`, :meth:`Tenant.infer`), are resized (:meth:`Tenant.resize`: the
dynamic pass re-targets the binary to the new cores and, if a request is running, the
task switches cores at the next layer boundary), and leave (:meth:`Tenant.leave`).

Isolation: every tenant has its own physical cores (disjoint), its own DDR region (base
and bound, checked on every access by the emulator), its own instruction stream (task),
and its own bounded request queue. A corrupt binary is rejected at deploy
(:class:`~vfpga.errors.BinaryFormatError`) and changes nothing; a fault while running
(out-of-region access, buffer overflow, deadlock) fails that tenant's request only; an
overloaded tenant's extra requests are rejected explicitly. Every submitted request ends
``done``, ``failed`` or ``rejected``, never silently dropped.

Core placement: a tenant's cores are taken from whole free DDR banks first, then from the
bank whose free cores fit the rest most tightly, so that tenants share banks as little as
possible (bank sharing is the one timing interference the hardware allows beyond the
level-1 dispatcher; docs/RESULTS.md).

Requests run functionally (bit-exact results); each completed request also carries the
timing model's latency of one inference alone on the tenant's cores (``cycles``).
Scheduling: :meth:`ResourcePool.step` advances every tenant with a running request by
one layer (barrier epoch), round robin, and starts queued requests on idle tenants.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vfpga.backend.binary import MAX_BINARY_BYTES, VfbFile, from_bytes, read_vfb
from vfpga.backend.retarget import Prepared, allocate, prepare, retarget
from vfpga.emulator import Accelerator
from vfpga.emulator.machine import LoadedProgram, Task, segments_from_dispatch
from vfpga.emulator.tensor_layout import binary_index_bounds
from vfpga.errors import VfpgaError
from vfpga.hw.config import DEFAULT_HW, HardwareConfig, load_hw
from vfpga.quant.index_inputs import INDEX_DTYPE, check_indices

#: Default DDR quota of a tenant (bytes): the most a tenant's binary may declare.
DEFAULT_TENANT_DDR_BYTES = 1 << 30
#: Default wall-time budget of one request (seconds).
DEFAULT_REQUEST_SECONDS = 600.0


class PoolError(VfpgaError):
    """A request the pool cannot grant: unknown tenant, not enough free cores, a tenant
    without a binary, a tenant that has left."""


@dataclass
class Request:
    """One inference request. ``status``: ``queued``, ``running``, ``done``, ``failed``
    (the tenant's program faulted; ``error`` says why) or ``rejected`` (queue full or
    tenant gone). ``outputs``: output tensor name -> array as stored (when done).
    ``cycles``: timing-model latency of one inference alone on the tenant's cores at
    completion; ``switches``: context switches during the request."""

    id: int
    tenant: str
    inputs: dict[str, np.ndarray]
    status: str = "queued"
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None
    cycles: float | None = None
    switches: int = 0


@dataclass
class Reconfig:
    """A resize: old and new cores, the dynamic compile's wall time (s), the bytes the
    level-1 instruction memory reloads, the total reconfiguration time (s: dynamic
    compile + instruction transfer at one bank's bandwidth), and whether a running request
    switched cores at a layer boundary (``at_layer``)."""

    old_cores: list[int]
    new_cores: list[int]
    compile_seconds: float
    transfer_bytes: int
    total_seconds: float
    at_layer: int | None


class Tenant:
    """A tenant's virtual accelerator (create with :meth:`ResourcePool.create_tenant`)."""

    def __init__(self, pool: ResourcePool, name: str, cores: list[int], max_queue: int,
                 ddr_quota: int) -> None:
        self.pool = pool
        self.name = name
        self.cores = cores
        self.max_queue = max_queue
        #: the most DDR bytes a binary of this tenant may declare (checked at deploy)
        self.ddr_quota = ddr_quota
        self.vfb: VfbFile | None = None
        self.prep: Prepared | None = None
        self.dispatch: np.ndarray | None = None
        self.task: Task | None = None
        self.queue: deque[Request] = deque()
        self.current: Request | None = None
        self.reconfigs: list[Reconfig] = []
        self.left = False
        self._timing: dict[tuple[int, ...], float] = {}

    # --------------------------------------------------------------- deploy
    def deploy(self, binary: bytes | str | Path | VfbFile) -> None:
        """Deploy a binary (bytes, a path, or a parsed :class:`VfbFile`) compiled for the
        pool's hardware. Parsing and validation happen before anything changes: a corrupt
        or foreign binary raises :class:`~vfpga.errors.BinaryFormatError` and the tenant
        keeps its previous binary (if any). Pending requests of a previous binary are
        failed."""
        self._alive()
        if self.current is not None:
            raise PoolError(f"tenant '{self.name}': cannot deploy while a request is running")
        hw = self.pool.hw
        source = f"tenant '{self.name}' binary"
        try:
            if isinstance(binary, VfbFile):
                vfb = from_bytes(_to_bytes(binary), source, hw)
            elif isinstance(binary, (str, Path)):
                vfb = read_vfb(binary, hw=hw, max_bytes=self.pool.max_binary_bytes)
            else:
                vfb = from_bytes(bytes(binary), source, hw)
        except VfpgaError:
            raise
        except Exception as exc:
            raise PoolError(f"tenant '{self.name}': cannot deploy: {type(exc).__name__}: "
                            f"{exc}") from None
        if not len(vfb.dispatch):
            raise PoolError(f"tenant '{self.name}': the binary has no dispatch table (compile "
                            "it with `vfpga compile`; hand-written programs cannot be "
                            "re-targeted)")
        if vfb.ddr_size > self.ddr_quota:
            raise PoolError(f"tenant '{self.name}': the binary needs {vfb.ddr_size:,} bytes of "
                            f"DDR, more than the tenant's quota of {self.ddr_quota:,} bytes "
                            "(create the tenant with a larger ddr_quota)")
        self._install(vfb)

    def _install(self, vfb: VfbFile) -> None:
        """Load ``vfb`` on the tenant's cores in a new DDR region, transactionally: until
        the new task is loaded nothing of the tenant changes; if anything fails, the
        previous task keeps its region (same base, same bytes) and stays installed."""
        accel = self.pool.accel
        old = self.task
        saved: np.ndarray | None = None
        if old is not None:
            accel.tasks.pop(old.name, None)  # its cores go to the new task
            if not accel.ddr.fits(vfb.ddr_size):
                # the new region may need the old one's room: free it, keeping its bytes
                saved = old.region.mem.copy()
                accel.ddr.free(old.region)
        task = None
        try:
            prep = prepare(vfb.ifps, vfb.num_layers, pool_size=self.pool.hw.num_cores)
            alloc = allocate(prep, self.cores, self.pool.strategy)
            task = accel.create_task(f"{self.name}#{next(self.pool._ids)}", self.cores,
                                     vfb.ddr_size)
            task.load(retarget(vfb, alloc), f"tenant '{self.name}' binary")
            task.done = True  # idle until the first request
        except Exception as exc:
            if task is not None:
                accel.release_task(task)
            if old is not None:
                if saved is not None:
                    accel.ddr.reclaim(old.region)
                    old.region.mem[:] = saved
                accel.tasks[old.name] = old
            if isinstance(exc, VfpgaError):
                raise
            raise PoolError(f"tenant '{self.name}': cannot deploy: {type(exc).__name__}: "
                            f"{exc}") from None
        if old is not None and saved is None:
            accel.release_task(old)
        self.vfb, self.prep, self.dispatch, self.task = vfb, prep, alloc.dispatch, task
        self._timing.clear()
        while self.queue:
            r = self.queue.popleft()
            r.status, r.error = "failed", "the tenant deployed another binary"

    # -------------------------------------------------------------- requests
    def submit(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> Request:
        """Queue an inference. ``inputs``: one array for the binary's single input tensor
        (int8 as stored, NHWC; or float, quantized with the tensor's scale) or a mapping
        tensor name -> array. Returns the request; if the queue holds ``max_queue``
        requests already it is ``rejected`` at once."""
        req = Request(next(self.pool._ids), self.name, {})
        self.pool.requests.append(req)
        if self.left:
            req.status, req.error = "rejected", "the tenant has left"
            return req
        if self.vfb is None:
            req.status, req.error = "rejected", "no binary deployed"
            return req
        names = [t.name for t in self.vfb.tensors if t.role == "input"]
        if isinstance(inputs, Mapping):
            req.inputs = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            if len(names) != 1:
                raise PoolError(f"tenant '{self.name}': the binary has inputs {names}; pass a "
                                "mapping name -> array")
            req.inputs = {names[0]: np.asarray(inputs)}
        if len(self.queue) >= self.max_queue:
            req.status, req.error = "rejected", f"queue full ({self.max_queue} requests)"
            return req
        self.queue.append(req)
        return req

    def infer(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Submit and run until this request ends (other tenants progress too); its
        outputs, or :class:`PoolError` with the fault if it failed or was rejected."""
        req = self.submit(inputs)
        while req.status in ("queued", "running"):
            self.pool.step()
        if req.status != "done":
            raise PoolError(f"tenant '{self.name}': request {req.id} {req.status}: {req.error}")
        return req.outputs

    # ----------------------------------------------------------------- resize
    def resize(self, n_cores: int) -> Reconfig:
        """Give the tenant ``n_cores`` cores (keeping as many of its current cores as
        possible). The dynamic pass re-targets the binary; a running request continues
        on the new cores after its current layer (context switch at the layer boundary);
        freed cores return to the pool. Raises :class:`PoolError` if not enough cores are
        free."""
        self._alive()
        old = list(self.cores)
        if n_cores < 1:
            raise PoolError(f"tenant '{self.name}': needs at least one core")
        if n_cores <= len(old):
            keep = self.pool._shrink(old, n_cores)
            new = keep
        else:
            extra = self.pool._pick(n_cores - len(old), prefer_banks=old)
            new = old + extra
        at_layer = None
        t0 = time.perf_counter()
        nbytes = 0
        if self.prep is not None and self.task is not None and self.vfb is not None:
            alloc = allocate(self.prep, new, self.pool.strategy)
            compile_s = time.perf_counter() - t0
            n_insns = int(self.vfb.ifps["insn_count"][alloc.schedule.ifp_index].sum())
            nbytes = n_insns * 64 + alloc.dispatch.nbytes
            self.dispatch = alloc.dispatch
            running = self.current is not None and not self.task.done
            if running:
                at_layer = self.task.last_finished_layer
                self.task.switch_cores(new, alloc.dispatch)
                if self.current is not None:
                    self.current.switches += 1
            else:
                _retarget_idle(self.task, new, alloc.dispatch, self.vfb)
        else:
            compile_s = time.perf_counter() - t0
        self.cores = new
        bank_bps = self.pool.hw.bank_bandwidth_gbps * 1e9
        rc = Reconfig(old, new, compile_s, nbytes, compile_s + nbytes / bank_bps, at_layer)
        self.reconfigs.append(rc)
        return rc

    def leave(self) -> None:
        """Release the tenant's cores and DDR region; queued requests are rejected and a
        running one fails."""
        if self.left:
            return
        if self.current is not None:
            self.current.status, self.current.error = "failed", "the tenant left"
            self.current = None
        while self.queue:
            r = self.queue.popleft()
            r.status, r.error = "rejected", "the tenant left"
        if self.task is not None:
            self.pool.accel.release_task(self.task)
            self.task = None
        self.left = True
        self.cores = []
        self.pool.tenants.pop(self.name, None)

    # ------------------------------------------------ one tenant at a time (serve)
    def step(self) -> bool:
        """Start this tenant's next queued request if it is idle, else advance its running
        request by one layer; an exception of any type raised by its program fails that
        request alone (the server drives tenants through this). Returns whether the tenant
        has a running or queued request afterwards."""
        if self.current is None and self.queue and self.task is not None:
            head = self.queue[0]
            try:
                self._start_next()
            except Exception as exc:  # a hostile input or program fails its request only
                if head in self.queue:
                    self.queue.remove(head)
                head.status, head.error = "failed", f"{type(exc).__name__}: {exc}"
                self.current = None
        elif self.current is not None:
            try:
                self._advance()
            except Exception as exc:  # a hostile program fails its request only
                self.cancel(f"{type(exc).__name__} while running: {exc}")
        return self.current is not None or bool(self.queue)

    def cancel(self, reason: str) -> None:
        """Fail the running request (if any) with ``reason``; the binary stays deployed
        and the next request starts from the first instruction."""
        if self.current is not None:
            self.current.status, self.current.error = "failed", reason
            self.current = None
            if self.task is not None:
                self.task.done = True

    # -------------------------------------------------------------- internals
    def _alive(self) -> None:
        if self.left:
            raise PoolError(f"tenant '{self.name}' has left the pool")

    def _start_next(self) -> None:
        task = self.task
        assert task is not None
        req = self.queue.popleft()
        try:
            task.restart()
            for name, value in req.inputs.items():
                if task.tensor(name).dtype == INDEX_DTYPE:  # token ids: within the table
                    assert self.vfb is not None
                    value = check_indices(value, binary_index_bounds(self.vfb).get(name),
                                          f"input '{name}'")
                task.write_tensor(name, value)
            task.set_budget(self.pool.request_seconds)
        except Exception as exc:  # a bad request fails alone
            req.status, req.error = "failed", _reason(exc)
            return
        req.status = "running"
        self.current = req

    def _advance(self) -> None:
        """Advance the running request by one layer. Any error (of any type) while running
        it fails this request alone; a request ends ``done`` only if its task ran to the
        end without error and its outputs were read."""
        task, req = self.task, self.current
        assert task is not None and req is not None
        try:
            task.step()
            if task.done:
                assert self.vfb is not None
                outputs = {t.name: task.read_tensor(t.name) for t in self.vfb.tensors
                           if t.role == "output"}
                cycles = self.solo_cycles()
        except Exception as exc:  # contain the tenant's failure
            task.error, task.done = _reason(exc), True
            req.status, req.error = "failed", task.error
            self.current = None
            return
        if task.done:
            req.outputs, req.cycles = outputs, cycles
            req.status = "done"
            self.current = None

    def solo_cycles(self) -> float:
        """Timing-model cycles of one inference alone on the tenant's current cores."""
        from vfpga.emulator.timing import time_program

        key = tuple(self.cores)
        if key not in self._timing:
            assert self.vfb is not None and self.dispatch is not None
            self._timing[key] = time_program(self.vfb, self.pool.hw, self.cores,
                                             self.dispatch).cycles
        return self._timing[key]


def _reason(exc: BaseException) -> str:
    """A request's failure reason: a vfpga error's message, else the error's type too."""
    return str(exc) if isinstance(exc, VfpgaError) else f"{type(exc).__name__}: {exc}"


def _to_bytes(vfb: VfbFile) -> bytes:
    from vfpga.backend.binary import to_bytes

    return to_bytes(vfb)


def _retarget_idle(task: Task, cores: list[int], dispatch: np.ndarray, vfb: VfbFile) -> None:
    """Point an idle task at ``cores`` routed by ``dispatch`` (takes effect at its next
    :meth:`Task.restart`; the instruction bodies are shared)."""
    assert task.loaded is not None
    n_logical = int(dispatch["core"].max()) + 1
    segs = segments_from_dispatch(dispatch, vfb.ifps, n_logical)
    task.loaded = LoadedProgram(task.loaded.program, task.loaded.fields, segs)
    task.cores = list(cores)
    task.done = True  # idle until the next restart


class ResourcePool:
    """The hardware resource pool shared by tenants (see module docstring)."""

    def __init__(self, hw: HardwareConfig | str = DEFAULT_HW, strategy: str = "lpt",
                 check_hazards: bool = True, ddr_bytes: int | None = None,
                 tenant_ddr_bytes: int = DEFAULT_TENANT_DDR_BYTES,
                 request_seconds: float | None = DEFAULT_REQUEST_SECONDS,
                 max_binary_bytes: int = MAX_BINARY_BYTES) -> None:
        """``check_hazards``: the emulator reports dependency violations (two modules of
        a core touching the same buffer bytes without a token ordering them) as faults of
        the tenant's request (docs/runtime.md). ``ddr_bytes``: the emulated DDR.
        ``tenant_ddr_bytes``: the default DDR quota of a tenant (the most a binary of it
        may declare; :meth:`create_tenant` may give another). ``request_seconds``: the
        wall-time budget of one request (``None``: unbounded); a request over it fails.
        ``max_binary_bytes``: the largest binary file :meth:`Tenant.deploy` reads."""
        self.hw = load_hw(hw) if isinstance(hw, str) else hw
        self.strategy = strategy
        self.tenant_ddr_bytes = tenant_ddr_bytes
        self.request_seconds = request_seconds
        self.max_binary_bytes = max_binary_bytes
        self.accel = Accelerator(self.hw, ddr_bytes=ddr_bytes, check_hazards=check_hazards)
        self.tenants: dict[str, Tenant] = {}
        self.requests: list[Request] = []
        self._ids = itertools.count()

    # ------------------------------------------------------------------ cores
    def free_cores(self) -> list[int]:
        used = {c for t in self.tenants.values() for c in t.cores}
        return [c for c in range(self.hw.num_cores) if c not in used]

    def _bank(self, c: int) -> int:
        b = self.hw.bank_of_core(c)
        return 0 if b is None else b

    def _pick(self, n: int, prefer_banks: list[int] | None = None) -> list[int]:
        """``n`` free cores: whole free banks first, then banks the tenant already uses,
        then the bank whose free cores fit the rest most tightly."""
        free = self.free_cores()
        if n > len(free):
            raise PoolError(f"{n} cores requested, only {len(free)} free "
                            f"({', '.join(map(str, free)) or 'none'})")
        per = self.hw.cores_per_bank if self.hw.bank_mapping == "grouped" else self.hw.num_cores
        by_bank: dict[int, list[int]] = {}
        for c in free:
            by_bank.setdefault(self._bank(c), []).append(c)
        own = {self._bank(c) for c in prefer_banks or []}
        got: list[int] = []
        while len(got) < n:
            need = n - len(got)
            whole = [b for b, cs in by_bank.items() if len(cs) == per and per <= need]
            mine = [b for b, cs in by_bank.items() if b in own and cs]
            fits = [b for b, cs in by_bank.items() if len(cs) >= need]
            if whole:
                b = whole[0]
            elif mine:
                b = mine[0]
            elif fits:
                b = min(fits, key=lambda b: (len(by_bank[b]), b))
            else:
                b = max((b for b in by_bank if by_bank[b]), key=lambda b: (len(by_bank[b]), -b))
            take = by_bank[b][:need]
            by_bank[b] = by_bank[b][len(take):]
            got += take
        return got

    def _shrink(self, cores: list[int], n: int) -> list[int]:
        """Keep ``n`` of ``cores``: drop cores from the banks where the tenant holds the
        fewest first (so it keeps whole banks)."""
        count: dict[int, int] = {}
        for c in cores:
            count[self._bank(c)] = count.get(self._bank(c), 0) + 1
        order = sorted(cores, key=lambda c: (-count[self._bank(c)], self._bank(c), c))
        keep = set(order[:n])
        return [c for c in cores if c in keep]

    # ---------------------------------------------------------------- tenants
    def create_tenant(self, name: str, cores: int | list[int], max_queue: int = 16,
                      ddr_quota: int | None = None) -> Tenant:
        """A new tenant with ``cores`` cores (a count, placed by the pool, or explicit
        physical cores that must be free) and a DDR quota of ``ddr_quota`` bytes (default:
        the pool's ``tenant_ddr_bytes``)."""
        quota = self.tenant_ddr_bytes if ddr_quota is None else int(ddr_quota)
        if quota < 1:
            raise PoolError(f"tenant '{name}': the DDR quota must be positive, got {quota}")
        if name in self.tenants:
            raise PoolError(f"a tenant named '{name}' already exists")
        if isinstance(cores, int):
            if cores < 1:
                raise PoolError(f"tenant '{name}': needs at least one core")
            chosen = self._pick(cores)
        else:
            chosen = list(cores)
            free = set(self.free_cores())
            bad = [c for c in chosen if c not in free]
            if bad or not chosen or len(set(chosen)) != len(chosen):
                raise PoolError(f"tenant '{name}': cores {chosen} are not distinct free cores "
                                f"(free: {sorted(free)})")
        t = Tenant(self, name, chosen, max_queue, quota)
        self.tenants[name] = t
        return t

    def tenant(self, name: str) -> Tenant:
        try:
            return self.tenants[name]
        except KeyError:
            raise PoolError(f"no tenant '{name}' (tenants: {', '.join(self.tenants) or 'none'})"
                            ) from None

    # -------------------------------------------------------------- scheduling
    def step(self) -> bool:
        """Start queued requests on idle tenants and advance every running request by one
        layer. Returns whether any work remains."""
        for t in list(self.tenants.values()):
            while t.current is None and t.queue and t.task is not None:
                t._start_next()
        for t in list(self.tenants.values()):
            if t.current is not None:
                t._advance()
        return any(t.current is not None or t.queue for t in self.tenants.values())

    def run_until_idle(self) -> None:
        """Step until no tenant has a running or queued request."""
        while self.step():
            pass


__all__ = ["PoolError", "Reconfig", "Request", "ResourcePool", "Tenant"]
