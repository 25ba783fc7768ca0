"""The fleet controller: many accelerator nodes (Ray actors, :mod:`vfpga.fleet.node`)
behind the KServe v2 front of ``vfpga serve`` (it is the server's
:class:`~vfpga.serve.backend.Backend`; docs/fleet.md).

* **Placement.** A tenant holds ``cores`` cores of one node; the controller books them on
  the best-fitting alive node (:class:`~vfpga.fleet.placement.Placer`); the node's pool
  picks the physical cores (whole DDR banks first). A resize stays on the node if it has
  the cores, else the tenant moves to another node's best fit.
* **Routing.** Every request of a tenant goes to its node as an actor call carrying the
  binary (a Ray object stored once per version); the node deploys it on the tenant's
  cores when needed. A tenant has at most ``max_queue`` requests in flight (more: 429).
* **Node failure.** A node whose call fails with a Ray actor error, or whose liveness
  probe does, is dead: its requests in flight fail with 503 and ``Retry-After`` (never
  an answer), and its tenants are re-placed on the other nodes from the stored binaries
  (their next request deploys the binary there: the dynamic compile re-targets it to
  the cores it got). Until a tenant is placed again its requests are answered 503 with
  ``Retry-After``; tenants that find no room wait and are placed as soon as cores free.

Control operations run one at a time on a single worker thread (:meth:`call`); the
request path (:meth:`submit`) only takes a short lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from vfpga.errors import VfpgaError
from vfpga.fleet.node import NotOnThisNode, node_actor_class
from vfpga.fleet.placement import Placer, bank_counts
from vfpga.hw.config import HardwareConfig
from vfpga.serve.auth import token_taken
from vfpga.serve.metrics import Metrics
from vfpga.serve.policy import Policy
from vfpga.serve.protocol import ProtocolError
from vfpga.serve.repository import ModelSpec, RepositoryError, TenantSpec, validate_binary
from vfpga.serve.scheduler import Outcome, _quota
from vfpga.serve.state import State

T = TypeVar("T")
log = logging.getLogger("vfpga.fleet")

#: seconds a client is asked to wait before retrying after a node failure
RETRY_AFTER_S = 1
#: seconds a control call to a node may take before the node counts as dead
CONTROL_TIMEOUT_S = 60.0


class FleetController:
    """See the module docstring. ``nodes``: how many node actors to start (Ray must be
    initialized, with at least that many ``fpga`` resources). ``probe_s``: how often idle
    nodes are probed for liveness."""

    def __init__(
        self,
        hw: HardwareConfig,
        state: State,
        metrics: Metrics,
        policy: Policy,
        request_timeout_s: float = 30.0,
        *,
        nodes: int,
        probe_s: float = 0.5,
    ) -> None:
        import ray

        if policy.name != "fixed":
            raise VfpgaError(
                f"vfpga fleet serves the 'fixed' policy only (got '{policy.name}'); a "
                "tenant's share changes through POST /v2/tenants/NAME/resize"
            )
        if not ray.is_initialized():
            raise VfpgaError("the fleet needs a running Ray instance (ray.init)")
        have = ray.cluster_resources().get("fpga", 0)
        if nodes < 1 or have < nodes:
            raise VfpgaError(
                f"{nodes} node(s) asked, the Ray cluster declares {have:g} 'fpga' resource(s)"
            )
        self.ray = ray
        self.hw = hw
        self.state = state
        self.metrics = metrics
        self.request_timeout_s = request_timeout_s
        self.probe_s = probe_s
        self.specs: dict[str, TenantSpec] = {}
        self.models: dict[str, ModelSpec] = {}
        self.operator_sha256: str | None = None
        self.per_bank = hw.cores_per_bank if hw.bank_mapping == "grouped" else hw.num_cores
        self.placer = Placer(0, hw.num_cores, self.per_bank)
        actor = node_actor_class()
        self.nodes: list[Any] = []
        for i in range(nodes):
            self.placer.add_node()
            self.nodes.append(actor.remote(hw, i))
        self.cores: dict[str, list[int]] = {}  # tenant -> physical cores on its node
        self.pending: list[str] = []  # tenants waiting for a node
        self.events: list[dict[str, Any]] = []  # node failures and re-placements
        self._blobs: dict[str, Any] = {}  # binary SHA-256 -> Ray object
        self._inflight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="vfpga-fleet")
        self._accepting = True
        self._stopped = threading.Event()
        self._monitor: threading.Thread | None = None
        # the nodes must be up before anything is placed on them
        try:
            ray.get([n.ping.remote() for n in self.nodes], timeout=CONTROL_TIMEOUT_S)
        except Exception as exc:
            self._kill_nodes()
            raise VfpgaError(f"the fleet's nodes did not start: {exc}") from None

    # ------------------------------------------------------------ lifecycle
    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def capacity(self) -> int:
        """Cores of the alive nodes."""
        return self.placer.capacity

    def start(self) -> None:
        self._monitor = threading.Thread(target=self._probe, name="vfpga-fleet-probe", daemon=True)
        self._monitor.start()

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new requests, wait for those in flight (at most their run-time budget),
        finish the control operations, then end the node actors."""
        self._accepting = False
        limit = time.monotonic() + (self.request_timeout_s + 10 if timeout is None else timeout)
        while any(self._inflight.values()) and time.monotonic() < limit:
            time.sleep(0.01)
        self._stopped.set()
        if self._monitor is not None:
            self._monitor.join(5)
        self._exec.shutdown(wait=True)
        self._kill_nodes()

    def _kill_nodes(self) -> None:
        for n in self.nodes:
            if n is not None:
                with contextlib.suppress(Exception):  # already gone
                    self.ray.kill(n)

    def node_handle(self, index: int) -> Any:
        """The Ray actor of node ``index`` (None once dead)."""
        return self.nodes[index]

    # ---------------------------------------------------------- request path
    def submit(
        self, tenant: str, model: str, version: str, inputs: dict[str, np.ndarray]
    ) -> Future[Outcome]:
        """Send an inference to the tenant's node (see the module docstring); raises
        :class:`ProtocolError` 429, 503 (with ``Retry-After``) or 404 at once."""
        accepted = time.monotonic()
        with self._lock:
            if not self._accepting:
                raise ProtocolError(503, "the fleet is shutting down; retry after its restart")
            spec = self.specs.get(tenant)
            if spec is None:
                raise ProtocolError(404, f"tenant '{tenant}' is gone")
            m = self.models.get(model)
            ver = m.versions.get(version) if m is not None and m.tenant == tenant else None
            if ver is None:
                raise ProtocolError(404, f"model '{model}' version {version} was unloaded")
            node = self.placer.where.get(tenant)
            if node is None:
                self.metrics.failures.labels(tenant, model, "unplaced").inc()
                raise ProtocolError(
                    503,
                    f"tenant '{tenant}' has no node at the moment (its node failed; it is "
                    f"being placed again); retry after {RETRY_AFTER_S} s",
                    {"Retry-After": str(RETRY_AFTER_S)},
                )
            depth = self._inflight.get(tenant, 0)
            if depth >= spec.max_queue:
                self.metrics.failures.labels(tenant, model, "queue_full").inc()
                raise ProtocolError(
                    429,
                    f"tenant '{tenant}': {spec.max_queue} requests in flight; retry after 1 s",
                    {"Retry-After": "1"},
                )
            blob = self._blobs[ver.sha256]
            handle = self.nodes[node]
            self._inflight[tenant] = depth + 1
            self.metrics.requests.labels(tenant, model).inc()
            self.metrics.queue_depth.labels(tenant).set(depth + 1)
        fut: Future[Outcome] = Future()
        try:
            ref = handle.infer.remote(tenant, ver.sha256, blob, inputs, self.request_timeout_s)
            ray_fut = ref.future()
        except Exception as exc:  # the actor handle is unusable: the node is gone
            self._settle(fut, tenant, model, node, accepted, exc, None)
            return fut
        ray_fut.add_done_callback(
            lambda f: self._settle(fut, tenant, model, node, accepted, f.exception(), f)
        )
        return fut

    def _settle(
        self,
        fut: Future[Outcome],
        tenant: str,
        model: str,
        node: int,
        accepted: float,
        exc: BaseException | None,
        done: Future[Any] | None,
    ) -> None:
        """Answer one request from its node's result: outputs, or an error that says
        what happened (a dead node's requests: 503 with Retry-After)."""
        ray = self.ray
        with self._lock:
            self._inflight[tenant] = max(0, self._inflight.get(tenant, 1) - 1)
            self.metrics.queue_depth.labels(tenant).set(self._inflight[tenant])
        error: ProtocolError
        if exc is None and done is not None:
            res = done.result()
            wall = time.monotonic() - accepted
            seconds = res["cycles"] / (self.hw.clock_mhz * 1e6)
            self.metrics.latency.labels(tenant, model).observe(wall)
            self.metrics.predicted.labels(tenant, model).observe(seconds)
            fut.set_result(
                Outcome(
                    outputs=res["outputs"],
                    cycles=res["cycles"],
                    predicted_s=seconds,
                    switches=res["switches"],
                    wall_s=wall,
                    queue_s=max(0.0, wall - res["run_s"]),  # routing, node queue, deploy
                    run_s=res["run_s"],
                    cores=res["cores"],
                )
            )
            return
        if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, NotOnThisNode):
            reason = "moved"
            error = ProtocolError(
                503,
                f"tenant '{tenant}' moved to another node during the request; retry",
                {"Retry-After": "0"},
            )
        elif isinstance(exc, ray.exceptions.RayTaskError):
            cause = exc.cause
            reason = "fault"
            msg = (
                str(cause) if isinstance(cause, VfpgaError) else f"{type(cause).__name__}: {cause}"
            )
            error = ProtocolError(
                500, msg if msg.startswith("inference failed") else f"inference failed: {msg}"
            )
        elif isinstance(exc, ray.exceptions.RayActorError) or done is None:
            # the node died (or its handle is unusable): never an answer, a retry
            reason = "node_lost"
            self._exec_lost(node)
            error = ProtocolError(
                503,
                f"node {node} failed during the request; tenant '{tenant}' is being placed "
                f"again; retry after {RETRY_AFTER_S} s",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        else:  # Ray could not deliver the call or its result: the node may be fine
            reason = "ray"
            error = ProtocolError(
                503,
                f"the request could not reach node {node}: {type(exc).__name__}; retry",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        self.metrics.failures.labels(tenant, model, reason).inc()
        fut.set_exception(error)

    def _exec_lost(self, node: int) -> None:
        with contextlib.suppress(RuntimeError):  # shutting down
            self._exec.submit(self._lost, node)

    # ------------------------------------------------------------ control path
    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the control thread (one operation at a time)."""
        try:
            return self._exec.submit(fn)
        except RuntimeError:
            fut: Future[T] = Future()
            fut.set_exception(ProtocolError(503, "the fleet is shutting down"))
            return fut

    def _global(self, tenant: str) -> list[int]:
        """A tenant's cores numbered across the fleet (node * cores per node + core)."""
        node = self.placer.where.get(tenant)
        if node is None:
            return []
        return [node * self.hw.num_cores + c for c in self.cores[tenant]]

    def _place(self, spec: TenantSpec, exclude: int | None = None) -> bool:
        """Book ``spec.cores`` cores for ``spec.name`` on the best-fitting alive node
        (trying the next if one dies meanwhile); False if no node has room."""
        while True:
            node = self.placer.best_fit(spec.cores, exclude)
            if node is None:
                return False
            try:
                cores = self.ray.get(
                    self.nodes[node].place.remote(spec.name, spec.cores, _quota(spec)),
                    timeout=CONTROL_TIMEOUT_S,
                )
            except self.ray.exceptions.RayTaskError as exc:
                raise VfpgaError(f"node {node}: {exc.cause}") from None
            except Exception:  # the node died (or does not answer)
                self._lost(node)
                continue
            with self._lock:
                self.placer.take(
                    node, spec.name, bank_counts(cores, self.per_bank, self.placer.banks)
                )
                self.cores[spec.name] = cores
            self.metrics.cores.labels(spec.name).set(len(cores))
            return True

    def _unplace(self, name: str) -> None:
        """Free ``name``'s cores on its node (if it has one)."""
        with self._lock:
            node = self.placer.where.get(name)
            if node is None:
                return
            self.placer.release(name)
            self.cores.pop(name, None)
        handle = self.nodes[node]
        if handle is not None:
            handle.remove.remote(name)  # queued behind the tenant's requests on that node

    def restore(self, tenants: list[tuple[TenantSpec, list[int]]], models: list[ModelSpec]) -> None:
        """Bring back tenants and models after a restart (the nodes are new: every tenant
        is placed again; its recorded cores are updated)."""
        for spec, _cores in tenants:
            self.specs = {**self.specs, spec.name: spec}
            self._inflight[spec.name] = 0
            if self._place(spec):
                self.state.set_cores(spec.name, self._global(spec.name))
            else:
                self.pending.append(spec.name)
        for m in models:
            for v in m.versions.values():
                self._blobs[v.sha256] = self.ray.put(v.blob)
        self.models = {m.name: m for m in models}

    def add_tenant(self, spec: TenantSpec) -> list[int]:
        """(control) A new tenant with ``spec.cores`` cores on one node."""
        if spec.name in self.specs:
            raise ProtocolError(409, f"tenant '{spec.name}' exists already")
        hashes = (s.token_sha256 for s in self.specs.values())
        if token_taken(spec.token_sha256, self.operator_sha256, hashes):
            raise ProtocolError(409, f"tenant '{spec.name}': this token is taken")
        if not self._place(spec):
            raise ProtocolError(
                409,
                f"tenant '{spec.name}': no node has {spec.cores} free cores "
                f"({self.placer.free_cores} free in the fleet)",
            )
        try:
            self.state.put_tenant(spec, self._global(spec.name))
        except BaseException:
            self._unplace(spec.name)
            raise
        self._inflight[spec.name] = 0
        self.specs = {**self.specs, spec.name: spec}
        self.metrics.queue_depth.labels(spec.name).set(0)
        return self._global(spec.name)

    def remove_tenant(self, name: str) -> None:
        """(control) The tenant leaves: its models are unloaded and its cores freed;
        requests in flight finish on its node first."""
        if name not in self.specs:
            raise ProtocolError(404, f"no tenant '{name}'")
        self.state.remove_tenant(name)
        self._unplace(name)
        if name in self.pending:
            self.pending.remove(name)
        self.specs = {k: v for k, v in self.specs.items() if k != name}
        self.models = {k: v for k, v in self.models.items() if v.tenant != name}
        self.metrics.forget(name)
        self._place_pending()

    def resize_tenant(self, name: str, cores: int) -> list[int]:
        """(control) Set tenant ``name``'s share to ``cores`` cores: on its node if it has
        them, else on another node (the tenant moves; its binary is deployed there at its
        next request)."""
        spec = self.specs.get(name)
        if spec is None:
            raise ProtocolError(404, f"no tenant '{name}'")
        if not 1 <= cores <= self.hw.num_cores:
            raise ProtocolError(400, f"cores must be 1..{self.hw.num_cores}")
        node = self.placer.where.get(name)
        if node is None:
            raise ProtocolError(
                503, f"tenant '{name}' has no node at the moment; retry", {"Retry-After": "1"}
            )
        for m in self.models.values():  # every loaded binary must fit the new share
            if m.tenant == name:
                for v in m.versions.values():
                    validate_binary(v.blob, v.source, self.hw, cores, spec.ddr_mib)
        new_spec = replace(spec, cores=cores)
        held = len(self.cores[name])
        if self.placer.nodes[node].free + held >= cores:
            try:
                got = self.ray.get(
                    self.nodes[node].resize.remote(name, cores), timeout=CONTROL_TIMEOUT_S
                )
            except self.ray.exceptions.RayTaskError as exc:
                raise ProtocolError(409, f"tenant '{name}': {exc.cause}") from None
            except Exception:
                self._lost(node)
                raise ProtocolError(
                    503, f"node {node} failed; retry", {"Retry-After": str(RETRY_AFTER_S)}
                ) from None
            with self._lock:
                self.placer.release(name)
                self.placer.take(node, name, bank_counts(got, self.per_bank, self.placer.banks))
                self.cores[name] = got
        else:
            dest = self.placer.best_fit(cores, exclude=node)
            if dest is None:
                raise ProtocolError(
                    409,
                    f"tenant '{name}': no node has {cores} free cores "
                    f"({self.placer.free_cores} free in the fleet)",
                )
            self._unplace(name)
            if not self._place(new_spec, exclude=node) and not self._place(spec):
                self.pending.append(name)
                raise ProtocolError(503, f"tenant '{name}': its nodes failed; retry")
        self.metrics.reconfigs.labels(name).inc()
        self.state.put_tenant(
            new_spec if len(self.cores[name]) == cores else spec, self._global(name)
        )
        if len(self.cores[name]) == cores:
            self.specs = {**self.specs, name: new_spec}
        self.metrics.cores.labels(name).set(len(self.cores[name]))
        return self._global(name)

    def commit_model(self, model: ModelSpec, cache: dict[str, bytes]) -> None:
        """(control) Make a read and validated model current (see
        :meth:`vfpga.serve.scheduler.Scheduler.commit_model`)."""
        spec = self.specs.get(model.tenant)
        if spec is None:
            raise RepositoryError(f"model '{model.name}': tenant '{model.tenant}' is gone")
        other = self.models.get(model.name)
        if other is not None and other.tenant != model.tenant:
            raise ProtocolError(
                409, f"model '{model.name}' is loaded for another tenant; unload it first"
            )
        for v in model.versions.values():
            validate_binary(v.blob, v.source, self.hw, spec.cores, spec.ddr_mib)
        self.state.put_model(
            model.name,
            model.tenant,
            {v.sha256: v.blob for v in model.versions.values()},
            {k: v.sha256 for k, v in model.versions.items()},
            cache,
        )
        for v in model.versions.values():
            if v.sha256 not in self._blobs:
                self._blobs[v.sha256] = self.ray.put(v.blob)
        self.models = {**self.models, model.name: model}

    def unload_model(self, name: str) -> None:
        """(control) Unload ``name``; requests in flight still finish."""
        if name not in self.models:
            raise ProtocolError(404, f"model '{name}' is not loaded")
        self.state.remove_model(name)
        self.models = {k: v for k, v in self.models.items() if k != name}

    def tenants_view(self) -> list[dict[str, Any]]:
        """The tenants for the operator: node, cores (numbered across the fleet) and
        requests in flight."""
        return [
            {
                **{k: v for k, v in spec.as_dict().items() if k != "token_sha256"},
                "node": self.placer.where.get(name),
                "allocated_cores": self._global(name),
                "models": sorted(m for m, ms in self.models.items() if ms.tenant == name),
                "queue": self._inflight.get(name, 0),
            }
            for name, spec in self.specs.items()
        ]

    # ------------------------------------------------------------ node failure
    def _lost(self, node: int) -> None:
        """(control) Node ``node`` is dead: its tenants are placed again on the others."""
        if not self.placer.nodes[node].alive:
            return
        with self._lock:
            lost = self.placer.remove_node(node)
            for t in lost:
                self.cores.pop(t, None)
            handle, self.nodes[node] = self.nodes[node], None
        log.warning("node %d failed; placing its tenants %s again", node, ", ".join(lost))
        self.events.append({"event": "node_failed", "node": node, "tenants": lost})
        with contextlib.suppress(Exception):
            self.ray.kill(handle)
        self.pending += [t for t in lost if t in self.specs]
        self._place_pending()

    def _place_pending(self) -> None:
        """(control) Place the waiting tenants that now fit, in the order they waited
        (a node dying meanwhile adds its tenants to the list and places them too)."""
        waiting, self.pending = self.pending, []
        for name in waiting:
            spec = self.specs.get(name)
            if spec is None or name in self.placer.where or name in self.pending:
                continue
            if self._place(spec):
                self.state.set_cores(name, self._global(name))
                node = self.placer.where[name]
                self.events.append({"event": "re_placed", "tenant": name, "node": node})
                log.warning("tenant '%s' placed again on node %d", name, node)
            else:
                self.pending.append(name)

    def _probe(self) -> None:
        """Probe the nodes every ``probe_s``: a node whose probe fails is dead."""
        ray = self.ray
        probes: dict[int, Any] = {}
        while not self._stopped.wait(self.probe_s):
            for i, h in enumerate(self.nodes):
                if h is not None and i not in probes:
                    try:
                        probes[i] = h.ping.remote()
                    except Exception:
                        self._exec_lost(i)
            if not probes:
                continue
            ready, _ = ray.wait(list(probes.values()), num_returns=len(probes), timeout=0)
            for i, ref in list(probes.items()):
                if ref in ready:
                    del probes[i]
                    try:
                        ray.get(ref)
                    except Exception:
                        self._exec_lost(i)


def fleet_backend(nodes: int, probe_s: float = 0.5) -> Callable[..., FleetController]:
    """A :data:`~vfpga.serve.backend.BackendFactory` of a fleet of ``nodes`` nodes."""

    def make(
        hw: HardwareConfig, state: State, metrics: Metrics, policy: Policy, timeout: float
    ) -> FleetController:
        return FleetController(hw, state, metrics, policy, timeout, nodes=nodes, probe_s=probe_s)

    return make


__all__ = ["FleetController", "fleet_backend"]
