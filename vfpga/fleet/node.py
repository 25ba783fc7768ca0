"""One accelerator node of the fleet: one :class:`~vfpga.runtime.pool.ResourcePool` (one
card), run as a Ray actor that claims the custom resource ``fpga: 1``
(:func:`node_actor_class`).

The actor runs one call at a time (Ray queues the others in arrival order), so its pool
is never touched by two threads. The controller books a tenant's cores here
(:meth:`Node.place`), changes (:meth:`Node.resize`) or frees them (:meth:`Node.remove`)
and sends it inference requests (:meth:`Node.infer`) with the binary to run: the node
deploys it on the tenant's cores (the dynamic compile re-targets it to them) when another
binary, or none, is deployed there, then runs the request to completion on the
bit-exact emulator.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vfpga.errors import VfpgaError
from vfpga.hw.config import HardwareConfig
from vfpga.runtime.pool import ResourcePool

#: the custom Ray resource one node claims (one card)
FPGA_RESOURCE = "fpga"


class NotOnThisNode(VfpgaError):
    """A request reached a node that no longer holds its tenant (it was moved or
    removed meanwhile): the controller answers it with a retryable 503."""


class Node:
    """One card (see the module docstring)."""

    def __init__(self, hw: HardwareConfig, index: int) -> None:
        self.index = index
        self.pool = ResourcePool(hw)
        self.deployed: dict[str, str] = {}  # tenant -> SHA-256 of its deployed binary

    def ping(self) -> int:
        """The node's number (the controller's liveness probe)."""
        return self.index

    def place(self, tenant: str, cores: int, ddr_quota: int | None) -> list[int]:
        """Book ``cores`` cores for a new tenant (the pool picks them: whole DDR banks
        first); its physical cores."""
        t = self.pool.create_tenant(tenant, cores, max_queue=1, ddr_quota=ddr_quota)
        return list(t.cores)

    def resize(self, tenant: str, cores: int) -> list[int]:
        """Give ``tenant`` ``cores`` cores (kept where possible; its binary re-targeted)."""
        self.pool.tenant(tenant).resize(cores)
        return list(self.pool.tenants[tenant].cores)

    def remove(self, tenant: str) -> None:
        """Free ``tenant``'s cores and DDR region (nothing if it is not here)."""
        t = self.pool.tenants.get(tenant)
        self.deployed.pop(tenant, None)
        if t is not None:
            t.leave()

    def infer(
        self,
        tenant: str,
        sha256: str,
        blob: bytes,
        inputs: dict[str, np.ndarray],
        budget_s: float,
    ) -> dict[str, Any]:
        """Run one inference of binary ``blob`` (SHA-256 ``sha256``) for ``tenant`` on its
        cores within ``budget_s`` wall seconds: ``outputs`` (stored layout), ``cycles``
        (timing model), ``switches``, ``cores`` and ``run_s`` (wall seconds running, after
        any deploy). Raises :class:`NotOnThisNode`, or a
        :class:`VfpgaError` saying why the request failed."""
        t = self.pool.tenants.get(tenant)
        if t is None:
            raise NotOnThisNode(f"tenant '{tenant}' is not on node {self.index}")
        if self.deployed.get(tenant) != sha256:
            self.deployed.pop(tenant, None)
            t.deploy(blob)
            self.deployed[tenant] = sha256
        self.pool.request_seconds = max(1e-3, budget_s)
        started = time.perf_counter()
        req = t.submit(inputs)
        try:
            while t.step():  # an error of any type fails this request alone
                pass
        finally:
            self.pool.requests.clear()  # the pool's log of every request: not kept here
        if req.status != "done":
            raise VfpgaError(f"inference failed: {req.error}")
        return {
            "outputs": req.outputs,
            "cycles": float(req.cycles or 0.0),
            "switches": req.switches,
            "cores": len(t.cores),
            "run_s": time.perf_counter() - started,
        }


def node_actor_class() -> Any:
    """:class:`Node` as a Ray actor class claiming ``fpga: 1`` and no CPU (so a machine
    holds as many nodes as it declares cards), never restarted by Ray: the controller
    re-places a dead node's tenants itself."""
    import ray

    return ray.remote(num_cpus=0, resources={FPGA_RESOURCE: 1}, max_restarts=0)(Node)


__all__ = ["FPGA_RESOURCE", "Node", "NotOnThisNode", "node_actor_class"]
