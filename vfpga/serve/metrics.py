"""Prometheus metrics of one server instance (its own registry, so several servers in one
process, as in the tests, do not share counters). Served at ``/metrics``."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class Metrics:
    """Per tenant: requests, failures (by reason), queue depth, wall latency and the
    timing model's predicted accelerator latency, cores held, reconfigurations and their
    cost."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "vfpga_requests", "Inference requests accepted", ["tenant", "model"], registry=r
        )
        self.failures = Counter(
            "vfpga_request_failures",
            "Inference requests that failed",
            ["tenant", "model", "reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "vfpga_queue_depth", "Requests waiting or running", ["tenant"], registry=r
        )
        self.latency = Histogram(
            "vfpga_request_latency_seconds",
            "Wall time from acceptance to answer",
            ["tenant", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predicted = Histogram(
            "vfpga_predicted_accelerator_latency_seconds",
            "Timing model's latency of one inference on the tenant's cores",
            ["tenant", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cores = Gauge("vfpga_cores", "Physical cores held", ["tenant"], registry=r)
        self.reconfigs = Counter(
            "vfpga_reconfigurations", "Resizes of a tenant", ["tenant"], registry=r
        )
        self.reconfig_seconds = Counter(
            "vfpga_reconfiguration_seconds",
            "Modelled reconfiguration time (dynamic compile + instruction transfer)",
            ["tenant"],
            registry=r,
        )
        self.switches = Counter(
            "vfpga_context_switches",
            "Running requests moved to other cores at a layer boundary",
            ["tenant"],
            registry=r,
        )

        self.deploys = Counter(
            "vfpga_model_deploys",
            "Binaries deployed on a tenant's cores (its first request, a model switch, a reload)",
            ["tenant", "model"],
            registry=r,
        )

    def forget(self, tenant: str) -> None:
        """Drop the gauges of a tenant that left."""
        for g in (self.queue_depth, self.cores):
            with contextlib.suppress(KeyError):
                g.remove(tenant)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics"]
