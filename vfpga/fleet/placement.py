"""Where tenants go: the fleet controller's placement structure, shared by the live fleet
(:mod:`vfpga.fleet.controller`) and the simulation (:mod:`vfpga.fleet.simulate`).

Every node is one card of ``cores`` cores in banks of ``cores_per_bank``. The placer keeps,
per node, its free cores per DDR bank and its total free cores, and buckets of nodes by
total free cores (``bucket[k]``: the nodes with exactly ``k`` free cores, an
insertion-ordered dict used as a set). So every decision is O(cores + banks), independent
of the fleet's size:

* :meth:`Placer.best_fit` -- the alive node with the fewest free cores that still holds
  ``n`` (best fit keeps large holes for large tenants); ties go to the node that can hold
  the tenant on the fewest DDR banks, then to the oldest entry of the bucket;
* :meth:`Placer.most_free` -- the alive node with the most free cores;
* :meth:`Placer.take` / :meth:`Placer.release` -- book or return a tenant's cores, as
  per-bank counts (:func:`bank_counts` turns a core list into them);
* :meth:`Placer.pick_banks` -- which banks ``n`` cores of a node would use, by the pool's
  rule (whole free banks first, then the bank whose free cores fit the rest most tightly;
  :meth:`vfpga.runtime.pool.ResourcePool._pick`), for the simulation, where no pool runs;
* :meth:`Placer.remove_node` -- a node died: it leaves the buckets; its tenants are
  returned for re-placement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: how many nodes of one bucket :meth:`Placer.best_fit` compares by bank fit
_BANK_FIT_PROBE = 4


@dataclass
class NodeState:
    """One node's free cores (per bank and in total) and the tenants it holds (name ->
    cores per bank)."""

    bank_free: list[int]
    free: int
    alive: bool = True
    tenants: dict[str, list[int]] = field(default_factory=dict)


class PlacementError(Exception):
    """A booking that does not fit (a bug of the caller: it books what the placer chose)."""


class Placer:
    """See the module docstring. Nodes are numbered ``0..num_nodes-1``; :meth:`add_node`
    appends one."""

    def __init__(self, num_nodes: int, cores: int, cores_per_bank: int) -> None:
        if cores < 1 or cores_per_bank < 1 or cores % cores_per_bank:
            raise ValueError(f"{cores} cores cannot form banks of {cores_per_bank}")
        self.cores = cores
        self.per_bank = cores_per_bank
        self.banks = cores // cores_per_bank
        self.nodes: list[NodeState] = []
        self._bucket: list[dict[int, None]] = [{} for _ in range(cores + 1)]
        self.where: dict[str, int] = {}
        for _ in range(num_nodes):
            self.add_node()

    # ------------------------------------------------------------------ queries
    @property
    def alive_nodes(self) -> int:
        return sum(len(b) for b in self._bucket)

    @property
    def free_cores(self) -> int:
        return sum(k * len(b) for k, b in enumerate(self._bucket))

    @property
    def capacity(self) -> int:
        return self.cores * self.alive_nodes

    def min_banks(self, n: int) -> int:
        """The fewest banks ``n`` cores can sit on."""
        return math.ceil(n / self.per_bank)

    def best_fit(self, n: int, exclude: int | None = None) -> int | None:
        """The node to place ``n`` cores on (see the module docstring), or None."""
        for k in range(max(n, 0), self.cores + 1):
            bucket = self._bucket[k]
            if not bucket:
                continue
            best, best_banks = None, 0
            for i, node in enumerate(bucket):
                if i >= _BANK_FIT_PROBE:
                    break
                if node == exclude:
                    continue
                banks = sum(1 for c in self.pick_banks(node, n) if c)
                if best is None or banks < best_banks:
                    best, best_banks = node, banks
                if banks == self.min_banks(n):
                    break
            if best is not None:
                return best
            for node in bucket:  # every probed node was excluded
                if node != exclude:
                    return node
        return None

    def most_free(self, exclude: int | None = None) -> int | None:
        """The alive node with the most free cores (at least one), or None."""
        for k in range(self.cores, 0, -1):
            for node in self._bucket[k]:
                if node != exclude:
                    return node
        return None

    def pick_banks(self, node: int, n: int) -> list[int]:
        """Cores per bank that ``n`` cores of ``node`` would take (the pool's rule)."""
        free = list(self.nodes[node].bank_free)
        if n > sum(free):
            raise PlacementError(f"node {node}: {n} cores asked, {sum(free)} free")
        got = [0] * self.banks
        need = n
        while need:
            whole = [b for b, f in enumerate(free) if f == self.per_bank <= need]
            fits = [b for b, f in enumerate(free) if f >= need]
            if whole:
                b = whole[0]
            elif fits:
                b = min(fits, key=lambda b: (free[b], b))
            else:
                b = max((b for b in range(self.banks) if free[b]), key=lambda b: (free[b], -b))
            take = min(need, free[b])
            free[b] -= take
            got[b] += take
            need -= take
        return got

    # ----------------------------------------------------------------- changes
    def add_node(self) -> int:
        """A new empty node; its number."""
        node = len(self.nodes)
        self.nodes.append(NodeState([self.per_bank] * self.banks, self.cores))
        self._bucket[self.cores][node] = None
        return node

    def _move(self, node: int, before: int) -> None:
        st = self.nodes[node]
        del self._bucket[before][node]
        self._bucket[st.free][node] = None

    def take(self, node: int, tenant: str, per_bank: list[int]) -> None:
        """Book ``per_bank`` cores of ``node`` for ``tenant`` (which holds none yet)."""
        st = self.nodes[node]
        if not st.alive or tenant in self.where:
            raise PlacementError(f"tenant '{tenant}' cannot be booked on node {node}")
        if any(c > f for c, f in zip(per_bank, st.bank_free, strict=True)):
            raise PlacementError(f"node {node}: {per_bank} cores asked, {st.bank_free} free")
        before = st.free
        for b, c in enumerate(per_bank):
            st.bank_free[b] -= c
        st.free -= sum(per_bank)
        st.tenants[tenant] = list(per_bank)
        self.where[tenant] = node
        self._move(node, before)

    def release(self, tenant: str) -> int:
        """Return ``tenant``'s cores; the node it was on."""
        node = self.where.pop(tenant)
        st = self.nodes[node]
        per_bank = st.tenants.pop(tenant)
        if st.alive:
            before = st.free
            for b, c in enumerate(per_bank):
                st.bank_free[b] += c
            st.free += sum(per_bank)
            self._move(node, before)
        return node

    def remove_node(self, node: int) -> list[str]:
        """``node`` died: it takes no more tenants; its tenants (unbooked) are returned."""
        st = self.nodes[node]
        if not st.alive:
            return []
        del self._bucket[st.free][node]
        st.alive = False
        lost = list(st.tenants)
        for t in lost:
            del self.where[t]
        st.tenants.clear()
        return lost


def bank_counts(cores: list[int], cores_per_bank: int, banks: int) -> list[int]:
    """Cores per bank of a list of physical cores."""
    out = [0] * banks
    for c in cores:
        out[c // cores_per_bank] += 1
    return out


__all__ = ["NodeState", "PlacementError", "Placer", "bank_counts"]
