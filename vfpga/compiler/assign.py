"""Assignment of a layer's IFPs to cores: longest-processing-time first (LPT).

Given the predicted latencies of a candidate's IFPs and ``k`` cores, LPT sorts the IFPs by
decreasing latency and gives each to the currently least-loaded core. Its makespan is at
most 4/3 - 1/(3k) of the optimum; :func:`lower_bound` is ``max(total / k, longest)``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def lower_bound(latencies: Sequence[int], k: int) -> float:
    """No assignment of these IFPs to ``k`` cores finishes before this."""
    if not latencies:
        return 0.0
    return max(sum(latencies) / k, max(latencies))


def lpt(latencies: Sequence[int], k: int) -> tuple[list[int], int]:
    """Core (0..k-1) of each IFP and the makespan, by longest processing time first.
    Ties go to the lowest core, so the result is deterministic."""
    order = sorted(range(len(latencies)), key=lambda i: (-latencies[i], i))
    heap = [(0, c) for c in range(k)]
    core_of = [0] * len(latencies)
    for i in order:
        load, c = heapq.heappop(heap)
        core_of[i] = c
        heapq.heappush(heap, (load + latencies[i], c))
    return core_of, max(load for load, _ in heap)
