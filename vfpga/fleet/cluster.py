"""A Ray instance for the fleet: joined (``address``) or started on this machine with one
``fpga`` resource per card, no dashboard, no usage statistics and a small object store
(the fleet moves binaries, inputs and outputs of a few MiB through it)."""

from __future__ import annotations

import os

from vfpga.errors import VfpgaError
from vfpga.fleet.node import FPGA_RESOURCE

#: the local object store (bytes): requests and binaries are small
OBJECT_STORE_BYTES = 200 << 20


def start_ray(
    cards: int, address: str | None = None, num_cpus: int = 1, quiet: bool = True
) -> None:
    """Join the Ray cluster at ``address`` (it declares the ``fpga`` resources of its
    machines), or start a local one on loopback declaring ``cards`` cards; raises
    :class:`VfpgaError` if Ray is missing or does not start."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ModuleNotFoundError:
        raise VfpgaError(
            "the fleet needs Ray: pip install 'vfpga[fleet]' (or `make venv`)"
        ) from None
    try:
        if address is not None:
            ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
        else:
            ray.init(
                num_cpus=num_cpus,
                resources={FPGA_RESOURCE: cards},
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                log_to_driver=not quiet,
                _node_ip_address="127.0.0.1",
            )
    except Exception as exc:  # Ray reports start-up problems with many types
        raise VfpgaError(f"Ray did not start: {type(exc).__name__}: {exc}") from None


def stop_ray() -> None:
    """Disconnect from Ray (and end the local instance this process started)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


__all__ = ["OBJECT_STORE_BYTES", "start_ray", "stop_ray"]
