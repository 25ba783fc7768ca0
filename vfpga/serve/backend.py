"""What the HTTP front (:mod:`vfpga.serve.app`) needs of whoever runs the requests: one
pool (:class:`~vfpga.serve.scheduler.Scheduler`) or a fleet of them
(:class:`vfpga.fleet.controller.FleetController`).

``specs`` and ``models`` are replaced, never mutated, so the event loop reads them without
a lock. :meth:`Backend.submit` is called on the event loop and must not block; the
control operations run through :meth:`Backend.call`, one at a time, and raise
:class:`~vfpga.serve.protocol.ProtocolError` (or a
:class:`~vfpga.errors.VfpgaError`) to refuse; a refused operation changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

import numpy as np

from vfpga.hw.config import HardwareConfig
from vfpga.serve.metrics import Metrics
from vfpga.serve.policy import Policy
from vfpga.serve.repository import ModelSpec, TenantSpec
from vfpga.serve.state import State

T = TypeVar("T")


class Backend(Protocol):
    """See the module docstring."""

    specs: dict[str, TenantSpec]
    models: dict[str, ModelSpec]
    operator_sha256: str | None

    @property
    def accepting(self) -> bool: ...

    @property
    def capacity(self) -> int:
        """Cores the tenants of tenants.toml may hold together."""
        ...

    def start(self) -> None: ...

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, finish what was accepted, release everything."""
        ...

    def submit(
        self, tenant: str, model: str, version: str, inputs: dict[str, np.ndarray]
    ) -> Future[Any]:
        """Queue an inference; its :class:`~vfpga.serve.scheduler.Outcome`, or a
        :class:`~vfpga.serve.protocol.ProtocolError` (429, 503, ...)."""
        ...

    def call(self, fn: Callable[[], T]) -> Future[T]: ...

    def restore(
        self, tenants: list[tuple[TenantSpec, list[int]]], models: list[ModelSpec]
    ) -> None: ...

    def add_tenant(self, spec: TenantSpec) -> list[int]: ...

    def remove_tenant(self, name: str) -> None: ...

    def resize_tenant(self, name: str, cores: int) -> list[int]: ...

    def commit_model(self, model: ModelSpec, cache: dict[str, bytes]) -> None: ...

    def unload_model(self, name: str) -> None: ...

    def tenants_view(self) -> list[dict[str, Any]]: ...


#: builds a backend: (hardware, state, metrics, policy, request timeout in s)
BackendFactory = Callable[[HardwareConfig, State, Metrics, Policy, float], Backend]

__all__ = ["Backend", "BackendFactory"]
