"""The paper's two clouds as core-allocation policies.

``fixed`` (public cloud): a tenant's share never changes (only the operator resizes).

``elastic`` (private cloud): a tenant whose queue holds at least ``grow_depth`` requests,
or whose recent latency exceeds its ``latency_target_ms``, grows (its core count doubles)
from free cores; when too few are free, quiet tenants (fewer than ``grow_depth``
requests) holding more than their base share are first shrunk back to it (never below
it: a tenant's share in tenants.toml is guaranteed). A tenant holding more than its
base share that has been idle for ``shrink_idle_s`` shrinks back to it. A tenant is resized
at most once per ``cooldown_s``. The server applies a decision with
:meth:`vfpga.runtime.pool.Tenant.resize`: the dynamic compile re-targets the binary, and a
running request continues on the new cores at its next layer boundary.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TenantLoad:
    """What a policy sees of a tenant: its base share (tenants.toml), the cores it holds,
    requests waiting or running, its recent wall latency (s; exponential average, None
    before the first answer), its latency target (s), and the seconds since it last had a
    request and since its last resize."""

    name: str
    base: int
    cores: int
    depth: int
    latency: float | None
    target: float | None
    idle_s: float
    since_resize_s: float


class Policy:
    """``fixed``: never resizes."""

    name = "fixed"

    def decide(self, loads: list[TenantLoad], free: int) -> list[tuple[str, int]]:
        """Resizes to apply now: (tenant, new core count), in order."""
        return []


@dataclass
class ElasticPolicy(Policy):
    """``elastic``: see the module docstring."""

    grow_depth: int = 2
    shrink_idle_s: float = 1.0
    cooldown_s: float = 0.2
    name = "elastic"

    def decide(self, loads: list[TenantLoad], free: int) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for t in loads:  # shrink first: the freed cores can go to a busy tenant
            if (
                t.cores > t.base
                and t.depth == 0
                and t.idle_s >= self.shrink_idle_s
                and t.since_resize_s >= self.cooldown_s
            ):
                out.append((t.name, t.base))
                free += t.cores - t.base
        busy = [
            t
            for t in loads
            if t.since_resize_s >= self.cooldown_s
            and (
                t.depth >= self.grow_depth
                or (
                    t.target is not None
                    and t.latency is not None
                    and t.latency > t.target
                    and t.depth > 0
                )
            )
        ]
        resized = {name for name, _ in out}
        busy_names = {t.name for t in busy}
        for t in sorted(busy, key=lambda t: (-t.depth, t.name)):
            if free < t.cores:  # take back what quiet tenants hold above their share
                for o in loads:
                    if (
                        o.name not in resized
                        and o.name not in busy_names
                        and o.cores > o.base
                        and o.depth < self.grow_depth
                        and o.since_resize_s >= self.cooldown_s
                    ):
                        out.append((o.name, o.base))
                        resized.add(o.name)
                        free += o.cores - o.base
            extra = min(t.cores, free)
            if extra > 0:
                out.append((t.name, t.cores + extra))
                resized.add(t.name)
                free -= extra
        return out


def make_policy(name: str) -> Policy:
    """The policy called ``name`` (``fixed`` or ``elastic``)."""
    if name == "fixed":
        return Policy()
    if name == "elastic":
        return ElasticPolicy()
    raise ValueError(f"unknown policy '{name}' (fixed, elastic)")


__all__ = ["ElasticPolicy", "Policy", "TenantLoad", "make_policy"]
