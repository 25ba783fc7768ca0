"""The one thread that owns the :class:`~vfpga.runtime.pool.ResourcePool`.

The pool is step-driven and not thread-safe, so one worker thread drives it; the asyncio
side hands work over through :class:`concurrent.futures.Future` objects:

* inference jobs go into a bounded queue per tenant (:meth:`Scheduler.submit`; a full
  queue is refused at once, 429). The worker gives each idle tenant its next job (deploying
  the job's model on the tenant's cores first if another one is deployed), then advances
  every tenant with a running request by one layer, round robin (:meth:`Tenant.step`: an
  error of any type fails that request alone); a request running alone runs on layer after
  layer until another job or a control operation arrives. A request still running past its wall-time
  budget is cancelled at the next layer boundary (504).
* control operations (tenants, models, resizes) run on the worker between two rounds
  (:meth:`Scheduler.call`), so they never race a running layer; each is validated first,
  written to the state database, then applied.
* the policy (:mod:`vfpga.serve.policy`) is consulted every ``tick_s``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from vfpga.errors import VfpgaError
from vfpga.hw.config import HardwareConfig
from vfpga.runtime.pool import Request, ResourcePool, Tenant
from vfpga.serve.auth import token_taken
from vfpga.serve.metrics import Metrics
from vfpga.serve.policy import Policy, TenantLoad
from vfpga.serve.protocol import ProtocolError
from vfpga.serve.repository import ModelSpec, RepositoryError, TenantSpec, validate_binary
from vfpga.serve.state import State

T = TypeVar("T")
log = logging.getLogger("vfpga.serve")


@dataclass
class Outcome:
    """A finished inference: outputs as stored, the timing model's cycles and seconds on
    the tenant's cores, context switches during the request, wall seconds in the server
    (from acceptance to answer), of which ``queue_s`` waiting in the tenant's queue
    (including a deploy of another model) and ``run_s`` running on the emulator, the
    cores it ended on, and ``finished``, the :func:`time.perf_counter` instant the outcome
    was handed back (0.0: not known)."""

    outputs: dict[str, np.ndarray]
    cycles: float
    predicted_s: float
    switches: int
    wall_s: float
    queue_s: float
    run_s: float
    cores: int
    finished: float = 0.0


@dataclass
class Job:
    """One accepted inference."""

    tenant: str
    model: str
    version: str
    inputs: dict[str, np.ndarray]
    future: Future[Outcome]
    accepted: float
    deadline: float
    request: Request | None = None
    started: float = 0.0


@dataclass
class _TenantRun:
    """The worker's bookkeeping of a tenant."""

    waiting: deque[Job] = field(default_factory=deque)
    running: Job | None = None
    deployed: str | None = None  # SHA-256 of the binary deployed on its cores
    latency: float | None = None  # exponential average of wall latency
    service: float | None = None  # exponential average of run time (start to answer)
    last_busy: float = field(default_factory=time.monotonic)
    last_resize: float = 0.0


class Scheduler:
    """See the module docstring. ``specs``/``models`` are replaced (never mutated) by the
    worker, so the asyncio side may read them without a lock."""

    def __init__(
        self,
        hw: HardwareConfig,
        state: State,
        metrics: Metrics,
        policy: Policy,
        request_timeout_s: float = 30.0,
        tick_s: float = 0.05,
    ) -> None:
        self.hw = hw
        self.pool = ResourcePool(hw)
        self.state = state
        self.metrics = metrics
        self.policy = policy
        self.request_timeout_s = request_timeout_s
        self.tick_s = tick_s
        self.specs: dict[str, TenantSpec] = {}
        self.models: dict[str, ModelSpec] = {}
        self._runs: dict[str, _TenantRun] = {}
        self._control: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._cv = threading.Condition()
        #: set (under ``_cv``) by whatever gives the worker something new to look at (a
        #: job, a control operation, stop); a request running alone stops running layer
        #: after layer when it is set
        self._news = False
        self._accepting = True
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_tick = 0.0
        #: the operator token's hash (a tenant may not use the operator's token)
        self.operator_sha256: str | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vfpga-pool", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, finish every accepted job and control operation, then end the
        worker thread."""
        with self._cv:
            self._accepting = False
            self._stop = True
            self._news = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def capacity(self) -> int:
        """Cores the tenants may hold together: the pool's."""
        return self.hw.num_cores

    # --------------------------------------------------------- the asyncio side
    def submit(
        self, tenant: str, model: str, version: str, inputs: dict[str, np.ndarray]
    ) -> Future[Outcome]:
        """Queue an inference (inputs in stored layout, checked by the protocol layer);
        raises :class:`ProtocolError` 429 (queue full, with Retry-After) or 503 (the
        server is draining)."""
        fut: Future[Outcome] = Future()
        now = time.monotonic()
        with self._cv:
            if not self._accepting:
                raise ProtocolError(
                    503,
                    "the server is shutting down; retry on another instance or after its restart",
                )
            spec, run = self.specs.get(tenant), self._runs.get(tenant)
            if spec is None or run is None:
                raise ProtocolError(404, f"tenant '{tenant}' is gone")
            depth = len(run.waiting) + (run.running is not None)
            if depth >= spec.max_queue:
                wait = max(1, math.ceil((run.service or 1.0) * depth))
                self.metrics.failures.labels(tenant, model, "queue_full").inc()
                raise ProtocolError(
                    429,
                    f"tenant '{tenant}': queue full ({spec.max_queue} "
                    f"requests); retry after {wait} s",
                    {"Retry-After": str(wait)},
                )
            run.waiting.append(
                Job(tenant, model, version, inputs, fut, now, now + self.request_timeout_s)
            )
            self.metrics.requests.labels(tenant, model).inc()
            self.metrics.queue_depth.labels(tenant).set(depth + 1)
            self._news = True
            self._cv.notify_all()
        return fut

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the worker thread between two rounds; its result or exception."""
        fut: Future[T] = Future()
        with self._cv:
            if self._stop:
                fut.set_exception(ProtocolError(503, "the server is shutting down"))
                return fut
            self._control.append((fn, fut))
            self._news = True
            self._cv.notify_all()
        return fut

    def tenants_view(self) -> list[dict[str, Any]]:
        """A snapshot of the tenants for the operator (taken on the worker)."""
        out = []
        for name, spec in self.specs.items():
            t, run = self.pool.tenants.get(name), self._runs.get(name)
            out.append(
                {
                    **{k: v for k, v in spec.as_dict().items() if k != "token_sha256"},
                    "allocated_cores": list(t.cores) if t else [],
                    "models": sorted(m for m, ms in self.models.items() if ms.tenant == name),
                    "queue": (len(run.waiting) + (run.running is not None)) if run else 0,
                    "reconfigurations": len(t.reconfigs) if t else 0,
                }
            )
        return out

    # ------------------------------------------------ worker: control operations
    def restore(self, tenants: list[tuple[TenantSpec, list[int]]], models: list[ModelSpec]) -> None:
        """Bring back tenants on their recorded cores and their models (before start)."""
        for spec, cores in tenants:
            self.pool.create_tenant(spec.name, cores, max_queue=1, ddr_quota=_quota(spec))
            self._add_run(spec)
        self.models = {m.name: m for m in models}

    def _add_run(self, spec: TenantSpec) -> None:
        self.specs = {**self.specs, spec.name: spec}
        self._runs[spec.name] = _TenantRun()
        self.metrics.cores.labels(spec.name).set(len(self.pool.tenants[spec.name].cores))
        self.metrics.queue_depth.labels(spec.name).set(0)

    def add_tenant(self, spec: TenantSpec) -> list[int]:
        """(worker) A new tenant with ``spec.cores`` cores placed by the pool."""
        if spec.name in self.specs:
            raise ProtocolError(409, f"tenant '{spec.name}' exists already")
        hashes = (s.token_sha256 for s in self.specs.values())
        if token_taken(spec.token_sha256, self.operator_sha256, hashes):
            raise ProtocolError(409, f"tenant '{spec.name}': this token is taken")
        free = len(self.pool.free_cores())
        if spec.cores > free:
            raise ProtocolError(409, f"tenant '{spec.name}': {spec.cores} cores asked, {free} free")
        t = self.pool.create_tenant(spec.name, spec.cores, max_queue=1, ddr_quota=_quota(spec))
        try:
            self.state.put_tenant(spec, list(t.cores))
        except BaseException:
            t.leave()
            raise
        self._add_run(spec)
        return list(t.cores)

    def remove_tenant(self, name: str) -> None:
        """(worker) The tenant leaves: its models are unloaded, its waiting requests
        fail (503), its cores and DDR region return to the pool."""
        if name not in self.specs:
            raise ProtocolError(404, f"no tenant '{name}'")
        self.state.remove_tenant(name)
        with self._cv:  # no job can join its queue after this
            run = self._runs.pop(name)
            jobs = list(run.waiting) + ([run.running] if run.running else [])
            run.waiting.clear()
        self.pool.tenants[name].leave()
        for job in jobs:
            self._fail(job, ProtocolError(503, f"tenant '{name}' was removed"), "removed")
        self.specs = {k: v for k, v in self.specs.items() if k != name}
        self.models = {k: v for k, v in self.models.items() if v.tenant != name}
        self.metrics.forget(name)

    def resize_tenant(self, name: str, cores: int) -> list[int]:
        """(worker) The operator sets tenant ``name``'s share to ``cores`` cores."""
        spec = self.specs.get(name)
        if spec is None:
            raise ProtocolError(404, f"no tenant '{name}'")
        if not 1 <= cores <= self.hw.num_cores:
            raise ProtocolError(400, f"cores must be 1..{self.hw.num_cores}")
        t = self.pool.tenants[name]
        if cores > len(t.cores) and cores - len(t.cores) > len(self.pool.free_cores()):
            raise ProtocolError(
                409,
                f"tenant '{name}': {cores - len(t.cores)} more cores "
                f"asked, {len(self.pool.free_cores())} free",
            )
        for m in self.models.values():  # every loaded binary must fit the new share
            if m.tenant == name:
                for v in m.versions.values():
                    validate_binary(v.blob, v.source, self.hw, cores, spec.ddr_mib)
        new_spec = replace(spec, cores=cores)
        before = len(t.cores)
        allocated = self._resize(name, cores)
        try:
            self.state.put_tenant(new_spec, allocated)
        except BaseException:
            self._resize(name, before)  # the state could not record it: undo
            raise
        self.specs = {**self.specs, name: new_spec}
        return list(t.cores)

    def _resize(self, name: str, cores: int) -> list[int]:
        t = self.pool.tenants[name]
        if cores != len(t.cores):
            rc = t.resize(cores)
            self._runs[name].last_resize = time.monotonic()
            self.metrics.reconfigs.labels(name).inc()
            self.metrics.reconfig_seconds.labels(name).inc(rc.total_seconds)
            if rc.at_layer is not None:
                self.metrics.switches.labels(name).inc()
            self.metrics.cores.labels(name).set(len(t.cores))
        return list(t.cores)

    def commit_model(self, model: ModelSpec, cache: dict[str, bytes]) -> None:
        """(worker) Make a read and validated model current (a reload replaces every
        version): re-checked against the tenant's share now, written to the state, then
        swapped in; jobs already accepted finish on the binary they were accepted for."""
        spec = self.specs.get(model.tenant)
        if spec is None:
            raise RepositoryError(f"model '{model.name}': tenant '{model.tenant}' is gone")
        other = self.models.get(model.name)
        if other is not None and other.tenant != model.tenant:
            raise ProtocolError(
                409, f"model '{model.name}' is loaded for another tenant; unload it first"
            )
        for v in model.versions.values():  # the share may have changed since it was read
            validate_binary(
                v.blob, v.source, self.hw, len(self.pool.tenants[spec.name].cores), spec.ddr_mib
            )
        self.state.put_model(
            model.name,
            model.tenant,
            {v.sha256: v.blob for v in model.versions.values()},
            {k: v.sha256 for k, v in model.versions.items()},
            cache,
        )
        self.models = {**self.models, model.name: model}

    def unload_model(self, name: str) -> None:
        """(worker) Unload ``name``; jobs accepted for it still finish."""
        if name not in self.models:
            raise ProtocolError(404, f"model '{name}' is not loaded")
        self.state.remove_model(name)
        self.models = {k: v for k, v in self.models.items() if k != name}

    # ----------------------------------------------------------- worker: loop
    def _loop(self) -> None:
        # an idle worker sleeps until notified; it wakes every tick only for a policy that
        # looks at the tenants periodically (each wake-up costs CPU and cache)
        tick = None if self.policy.name == "fixed" else self.tick_s
        while True:
            with self._cv:
                while not (self._control or self._busy() or self._stop):
                    self._cv.wait(tick)
                    if self._policy_due():
                        break
                if self._stop and not (self._control or self._busy()):
                    return
                controls = list(self._control)
                self._control.clear()
                self._news = False
            for fn, fut in controls:
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # every error goes back to the caller
                    fut.set_exception(exc)
            self._round()
            if self._policy_due():
                try:
                    self._apply_policy()
                except Exception:  # the policy must never stop the pool's thread
                    log.exception("the %s policy failed", self.policy.name)

    def _busy(self) -> bool:
        return any(r.waiting or r.running for r in self._runs.values())

    def _policy_due(self) -> bool:
        return self.policy.name != "fixed" and time.monotonic() - self._last_tick >= self.tick_s

    def _round(self) -> None:
        """Start a job on every idle tenant, then advance every running one by a layer."""
        now = time.monotonic()
        for name, run in list(self._runs.items()):
            t = self.pool.tenants.get(name)
            if t is None:
                continue
            try:
                self._advance(t, run, now)
            except Exception as exc:  # a bug or hostile input: fail this tenant's job only
                log.exception("tenant '%s': unexpected error", name)
                job, run.running = run.running, None
                t.cancel(f"internal error: {type(exc).__name__}")
                if job is not None:
                    self._fail(job, ProtocolError(500, f"internal error: {exc}"), "internal")

    def _advance(self, t: Tenant, run: _TenantRun, now: float) -> None:
        while run.running is None and run.waiting:
            with self._cv:
                queued = run.waiting.popleft()
            self._start(t, run, queued, now)
        job = run.running
        if job is None:
            return
        req = job.request
        assert req is not None
        # A request running alone (no other tenant running or waiting) runs layer after
        # layer here until something new arrives (a job, a control operation: _news) or
        # the policy is due, instead of one layer per turn of the worker's loop
        alone = not any(r.running or r.waiting for r in self._runs.values() if r is not run)
        while True:
            t.step()
            timed_out = time.monotonic() > job.deadline
            if timed_out and req.status == "running":
                t.cancel(f"exceeded the run-time budget of {self.request_timeout_s:g} s")
            if req.status != "running" or not alone or self._news or self._policy_due():
                break
        if req.status == "done":
            self._finish(t, run, job)
        elif req.status in ("failed", "rejected"):
            run.running = None
            status, reason = (504, "timeout") if timed_out else (500, "fault")
            self._fail(job, ProtocolError(status, f"inference failed: {req.error}"), reason)

    def _start(self, t: Tenant, run: _TenantRun, job: Job, now: float) -> None:
        run.last_busy = now
        if now > job.deadline:
            self._fail(
                job,
                ProtocolError(
                    504,
                    f"the request waited past its run-time budget of {self.request_timeout_s:g} s",
                ),
                "timeout",
            )
            return
        model = self.models.get(job.model)
        ver = model.versions.get(job.version) if model and model.tenant == job.tenant else None
        if ver is None:
            self._fail(
                job,
                ProtocolError(404, f"model '{job.model}' version {job.version} was unloaded"),
                "unloaded",
            )
            return
        try:
            if run.deployed != ver.sha256:
                run.deployed = None
                t.deploy(ver.blob)
                run.deployed = ver.sha256
                self.metrics.deploys.labels(job.tenant, job.model).inc()
            # the emulator checks what is left of the request's budget within layers too
            self.pool.request_seconds = max(1e-3, job.deadline - time.monotonic())
            job.request = t.submit(job.inputs)
            self.pool.requests.clear()  # the pool's log of every request: not kept here
        except Exception as exc:  # a binary that will not deploy fails this request only
            self._fail(job, ProtocolError(500, f"cannot run model '{job.model}': {exc}"), "deploy")
            return
        if job.request.status == "rejected":
            self._fail(job, ProtocolError(500, f"inference failed: {job.request.error}"), "fault")
            return
        job.started = time.monotonic()
        run.running = job

    def _finish(self, t: Tenant, run: _TenantRun, job: Job) -> None:
        req = job.request
        assert req is not None
        run.running = None
        wall = time.monotonic() - job.accepted
        run.latency = wall if run.latency is None else 0.8 * run.latency + 0.2 * wall
        took = time.monotonic() - job.started
        run.service = took if run.service is None else 0.8 * run.service + 0.2 * took
        run.last_busy = time.monotonic()
        cycles = float(req.cycles or 0.0)
        seconds = cycles / (self.hw.clock_mhz * 1e6)
        self.metrics.latency.labels(job.tenant, job.model).observe(wall)
        self.metrics.predicted.labels(job.tenant, job.model).observe(seconds)
        self._depth(job.tenant, run)
        job.future.set_result(
            Outcome(
                req.outputs,
                cycles,
                seconds,
                req.switches,
                wall,
                job.started - job.accepted,
                took,
                len(t.cores),
                time.perf_counter(),
            )
        )

    def _fail(self, job: Job, exc: ProtocolError, reason: str) -> None:
        self.metrics.failures.labels(job.tenant, job.model, reason).inc()
        run = self._runs.get(job.tenant)
        if run is not None:
            self._depth(job.tenant, run)
        if not job.future.done():
            job.future.set_exception(exc)

    def _depth(self, tenant: str, run: _TenantRun) -> None:
        self.metrics.queue_depth.labels(tenant).set(len(run.waiting) + (run.running is not None))

    def _apply_policy(self) -> None:
        now = time.monotonic()
        self._last_tick = now
        loads = []
        for name, spec in self.specs.items():
            run, t = self._runs[name], self.pool.tenants[name]
            depth = len(run.waiting) + (run.running is not None)
            if depth:
                run.last_busy = now
            target = spec.latency_target_ms / 1e3 if spec.latency_target_ms else None
            loads.append(
                TenantLoad(
                    name,
                    spec.cores,
                    len(t.cores),
                    depth,
                    run.latency,
                    target,
                    now - run.last_busy,
                    now - run.last_resize,
                )
            )
        for name, n in self.policy.decide(loads, len(self.pool.free_cores())):
            try:
                cores = self._resize(name, n)
                self.state.set_cores(name, cores)
            except VfpgaError:
                continue  # not enough free cores any more: the next tick decides again


def _quota(spec: TenantSpec) -> int | None:
    """The pool's DDR quota (bytes) of a tenant (None: the pool's default)."""
    return None if spec.ddr_mib is None else int(spec.ddr_mib * 2**20)


__all__ = ["Job", "Outcome", "Scheduler"]
