"""The re-targeter (the paper's "dynamic compilation"): a compiled model to any core set.

A compiled ``.vfb`` carries, for every layer, several tiling candidates, each a set of
self-contained IFPs with a predicted latency (the IFP table, docs/binary-format.md). When
a tenant's share of the pool changes, the re-targeter reads **only that table** and the
physical cores the tenant now holds, and produces the light-weight runtime information
(paper: "dynamic compilation", 0.4-1.5 ms):

* per layer, the chosen candidate and the assignment of its IFPs to the tenant's cores
  that minimises the layer's makespan (the longest core's sum of predicted latencies),
  beside the lower bound ``max(total / k, longest IFP)`` of that candidate;
* the per-core dispatch table (``DISPATCH`` records: each logical core's IFPs of a layer,
  then the SYNC barrier of the layer, ..., then END), read by the level-1 dispatcher.

No instruction is rewritten: the dispatcher sends an IFP's body, byte for byte, to the
core the table names (docs/isa.md, section 1). The IR, the ONNX model, TEXT and the
weights are never read.

The work is split in two (see docs/dynamic.md):

* :func:`prepare` (once per binary, at deploy time): group the IFPs by layer and
  candidate, sort each candidate's latencies (longest first, ties by IFP index), pad them
  into 2-D arrays. With ``precompute=True`` it also runs the allocation for every core
  count ``k = 1..pool_size`` and caches the results (they depend on ``k`` only).
* :func:`allocate` (per reconfiguration; the "dynamic compile"): run the allocation
  strategy for ``k = len(cores)`` (vectorised over all candidates of all layers with
  numpy, no per-IFP Python loop), choose per layer, and build the dispatch arrays.

Allocation strategies are pluggable: :data:`STRATEGIES` maps a name to a function
``(Prepared, k) -> GroupSchedule`` (makespan and core assignment of every candidate);
:func:`register_strategy` adds one. Built in: ``lpt`` (longest processing time first,
identical to the static compiler's choice, :mod:`vfpga.compiler.assign`) and
``lpt-refine`` (LPT, then local search — moves and swaps off the most loaded core — on
every candidate that might still beat its layer's best; never worse than ``lpt``).

Logical and physical cores: the dispatch table names *logical* cores ``0..k-1``; the
task's map sends logical core ``i`` to ``cores[i]``. The predicted latencies do not depend
on which physical cores they are (the latency model budgets each core its fair share of
its DDR bank), so the table depends only on ``k`` and the strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from vfpga.backend.binary import DISPATCH_DTYPE, VfbFile
from vfpga.errors import VfpgaError
from vfpga.isa.limits import MAX_CORES


class AllocationError(VfpgaError):
    """Bad input to the dynamic pass: an empty or repeated core set, an IFP table that
    does not describe a compiled model, an unknown strategy."""


# --------------------------------------------------------------------------- prepare
@dataclass
class Prepared:
    """An IFP table grouped for fast allocation (built by :func:`prepare`).

    Groups are the (layer, candidate) pairs present in the table, in (layer, candidate)
    order; ``G`` groups, ``M`` the most IFPs of one group. Arrays indexed by group:
    ``g_layer``, ``g_candidate``, ``g_count`` (IFPs), ``g_total`` (sum of latencies),
    ``g_max`` (longest latency). ``lat`` ``[G, M]`` holds each group's latencies longest
    first (ties: lower IFP index first), padded with 0; ``idx`` ``[G, M]`` the matching IFP
    indices, padded with -1. ``csum`` ``[G, M + 1]`` is the running sum of ``lat``.
    ``by_count`` orders the groups by decreasing ``g_count`` (stable) and ``more_than[j]``
    is the number of groups with more than ``j`` IFPs, so the groups still active at LPT
    step ``j`` are the prefix ``by_count[:more_than[j]]``. ``layer_first`` is the first
    group of each layer that has IFPs (``layers_present``, increasing).
    ``cache`` maps (strategy, k) to a :class:`Schedule` (filled by ``precompute`` and by
    :func:`allocate`)."""

    n_layers: int
    n_ifps: int
    pool_size: int | None
    g_layer: np.ndarray
    g_candidate: np.ndarray
    g_count: np.ndarray
    g_total: np.ndarray
    g_max: np.ndarray
    lat: np.ndarray
    idx: np.ndarray
    csum: np.ndarray
    by_count: np.ndarray
    more_than: np.ndarray
    layer_first: np.ndarray
    layers_present: np.ndarray
    positive: bool
    prepare_seconds: float = 0.0
    cache: dict[tuple[str, int], Schedule] = field(default_factory=dict, repr=False)

    @property
    def num_groups(self) -> int:
        return int(self.g_layer.shape[0])

    @property
    def max_ifps(self) -> int:
        return int(self.lat.shape[1])


def prepare(
    ifps: np.ndarray,
    n_layers: int | None = None,
    *,
    pool_size: int | None = None,
    precompute: bool | Sequence[str] = False,
    source: str = "IFP table",
) -> Prepared:
    """Group the IFP table ``ifps`` (dtype ``IFP_DTYPE``, or any structured array with
    ``layer``, ``candidate`` and ``latency`` fields) for :func:`allocate`.

    ``n_layers``: the program's layer count (default: the highest layer index + 1); every
    layer gets a barrier, also one without IFPs. ``pool_size``: the size of the core
    pool; :func:`allocate` then rejects cores outside ``0..pool_size-1``. ``precompute``:
    True (strategy ``lpt``) or a list of strategy names: run the allocation for every
    ``k = 1..pool_size`` now (requires ``pool_size``) so that :func:`allocate` only
    looks the schedule up and builds the dispatch table. ``source`` names the table in
    error messages."""
    t0 = time.perf_counter()
    n = int(ifps.shape[0]) if ifps.ndim == 1 else -1
    if n == 0 and n_layers == 0:  # every node runs on the host: nothing to allocate
        return _no_layers(pool_size)
    if n <= 0:
        raise AllocationError(f"{source}: no IFPs to allocate (an empty IFP table; was the "
                              "binary compiled by `vfpga compile`?)")
    layer = ifps["layer"].astype(np.int64)
    cand = ifps["candidate"].astype(np.int64)
    lat = ifps["latency"].astype(np.int64)
    top = int(layer.max()) + 1
    if n_layers is None:
        n_layers = top
    elif n_layers < top:
        raise AllocationError(f"{source}: IFP #{int(np.argmax(layer))} belongs to layer "
                              f"{int(layer.max())} but the program has {n_layers} layers")
    if (lat < 0).any():
        raise AllocationError(f"{source}: IFP #{int(np.argmax(lat < 0))} has a negative "
                              "latency")
    key = layer * (int(cand.max()) + 1) + cand
    order = np.lexsort((np.arange(n), -lat, key))
    skey = key[order]
    starts = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
    counts = np.diff(np.r_[starts, n])
    n_groups = starts.shape[0]
    m = int(counts.max())
    group_of = np.repeat(np.arange(n_groups), counts)
    slot = np.arange(n) - starts[group_of]
    lat2 = np.zeros((n_groups, m), np.int64)
    idx2 = np.full((n_groups, m), -1, np.int64)
    lat2[group_of, slot] = lat[order]
    idx2[group_of, slot] = order
    csum = np.zeros((n_groups, m + 1), np.int64)
    np.cumsum(lat2, axis=1, out=csum[:, 1:])
    g_layer = layer[order][starts]
    by_count = np.argsort(-counts, kind="stable")
    more_than = (counts[None, :] > np.arange(m + 1)[:, None]).sum(axis=1)
    layer_first = np.flatnonzero(np.r_[True, g_layer[1:] != g_layer[:-1]])
    prep = Prepared(
        n_layers=n_layers, n_ifps=n, pool_size=pool_size, g_layer=g_layer,
        g_candidate=cand[order][starts], g_count=counts, g_total=csum[:, -1].copy(),
        g_max=lat2[:, 0].copy(), lat=lat2, idx=idx2, csum=csum, by_count=by_count,
        more_than=more_than, layer_first=layer_first, layers_present=g_layer[layer_first],
        positive=bool((lat > 0).all()))
    if precompute:
        names = ["lpt"] if precompute is True else list(precompute)
        if pool_size is None:
            raise AllocationError("prepare(precompute=...) needs pool_size")
        for name in names:
            strategy = get_strategy(name)
            for k in range(1, pool_size + 1):
                prep.cache[(name, k)] = _schedule(prep, k, name, strategy(prep, k))
    prep.prepare_seconds = time.perf_counter() - t0
    return prep


def _no_layers(pool_size: int | None) -> Prepared:
    """The :class:`Prepared` of a program without accelerator layers (a model whose every
    node runs on the host): no group, so every allocation is the dispatch table of ENDs."""
    i64 = np.zeros(0, np.int64)
    return Prepared(
        n_layers=0, n_ifps=0, pool_size=pool_size, g_layer=i64, g_candidate=i64,
        g_count=i64, g_total=i64, g_max=i64, lat=np.zeros((0, 0), np.int64),
        idx=np.zeros((0, 0), np.int64), csum=np.zeros((0, 1), np.int64), by_count=i64,
        more_than=np.zeros(1, np.int64), layer_first=i64, layers_present=i64, positive=True)


# -------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class GroupSchedule:
    """What a strategy returns for ``k`` cores: for every group (see :class:`Prepared`),
    ``makespan[g]`` (cycles) and ``core[g, j]``, the logical core (``0..k-1``) of the IFP
    in slot ``j`` of the group (slots past ``g_count[g]`` are ignored)."""

    makespan: np.ndarray
    core: np.ndarray


Strategy = Callable[[Prepared, int], GroupSchedule]

#: Allocation strategies by name (see :func:`register_strategy`).
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str) -> Callable[[Strategy], Strategy]:
    """Decorator: register ``fn(prepared, k) -> GroupSchedule`` as strategy ``name``.

    A strategy must give every group an assignment of all its IFPs to cores ``0..k-1``
    and that assignment's exact makespan; the choice of a candidate per layer (least
    makespan, then fewer IFPs, then lower candidate id) and the dispatch table are
    common to all strategies."""

    def deco(fn: Strategy) -> Strategy:
        STRATEGIES[name] = fn
        return fn

    return deco


def get_strategy(name: str) -> Strategy:
    """The strategy ``name``; :class:`AllocationError` listing the known ones if none."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise AllocationError(f"unknown allocation strategy '{name}' (known: "
                              f"{', '.join(sorted(STRATEGIES))})") from None


def _lpt_rows(prep: Prepared, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """LPT over all groups at once. Returns (rows, loads, cores, first_step): ``rows``, the
    groups (indices) with more than ``k`` IFPs (or all groups if some latency is 0),
    ordered by decreasing IFP count; ``loads[r, c]`` the final load of core ``c`` of
    ``rows[r]``; ``cores[r, j]`` the core of its slot ``j`` for ``j >= first_step``."""
    m = prep.max_ifps
    if prep.positive:
        # The first k IFPs of a group go to cores 0..k-1 in order (every load is then
        # positive and distinct cores are the least loaded, lowest index first).
        first = min(k, m)
        rows = prep.by_count[: prep.more_than[min(k, m)]]
        loads = np.zeros((rows.shape[0], k), np.int64)
        loads[:, :first] = prep.lat[rows, :first]
    else:
        first = 0
        rows = prep.by_count
        loads = np.zeros((rows.shape[0], k), np.int64)
    cores = np.zeros((rows.shape[0], m), np.int64)
    lat = prep.lat[rows]
    ar = np.arange(rows.shape[0])
    for j in range(first, m):
        r = int(prep.more_than[j]) if prep.positive else rows.shape[0]
        if r == 0:
            break
        c = loads[:r].argmin(axis=1)
        loads[ar[:r], c] += lat[:r, j]
        cores[:r, j] = c
    return rows, loads, cores, first


@register_strategy("lpt")
def lpt_strategy(prep: Prepared, k: int) -> GroupSchedule:
    """Longest processing time first, for every candidate: IFPs by decreasing latency
    (ties: lower IFP index), each to the least-loaded core (ties: lowest core). The same
    assignment as :func:`vfpga.compiler.assign.lpt`, so for the compile-time core count
    the result equals the compiler's dispatch table."""
    rows, loads, cores, first = _lpt_rows(prep, k)
    g, m = prep.num_groups, prep.max_ifps
    core = np.broadcast_to(np.minimum(np.arange(m), k - 1), (g, m)).copy()
    makespan = prep.g_max.copy() if prep.positive else np.zeros(g, np.int64)
    if rows.size:
        cores[:, :first] = np.arange(first)
        core[rows] = cores
        makespan[rows] = loads.max(axis=1)
    return GroupSchedule(makespan, core)


def strong_bound(prep: Prepared, k: int) -> np.ndarray:
    """Per group, a lower bound on any assignment's makespan on ``k`` cores, at least
    :func:`lower_bound`: ``max(ceil(total / k), longest, max_m sum of lat[m*k-m .. m*k])``
    (among the ``m*k + 1`` longest IFPs some core gets ``m + 1``; latencies sorted longest
    first, padded with 0)."""
    lb = np.maximum(-(-prep.g_total // k), prep.g_max)
    m_max = prep.max_ifps
    mm = 1
    while mm * k < m_max:
        hi = mm * k + 1
        lo = mm * k - mm
        np.maximum(lb, prep.csum[:, hi] - prep.csum[:, lo], out=lb)
        mm += 1
    return lb


def _local_search(lat: list[int], core: list[int], k: int) -> tuple[list[int], int]:
    """Improve an assignment by moves and swaps off the most loaded core.

    Repeat: let ``c`` be the most loaded core (lowest index among ties) and ``mx`` its
    load; among all moves of one IFP from ``c`` to another core ``d`` and all swaps of an
    IFP of ``c`` with a shorter IFP of ``d`` that leave both ``c`` and ``d`` below ``mx``,
    apply the one with the least resulting ``max(load c, load d)`` (first found among
    ties). Each step lowers the number of cores at the maximum load or the maximum
    itself, so the search ends; the makespan never increases."""
    loads = [0] * k
    for i, c in enumerate(core):
        loads[c] += lat[i]
    core = list(core)
    while True:
        mx = max(loads)
        c = loads.index(mx)
        on_c = [i for i, cc in enumerate(core) if cc == c]
        best: tuple[int, int, int, int] | None = None  # (pair max, a, d, b or -1)
        for d in range(k):
            if d == c:
                continue
            ld = loads[d]
            on_d = [i for i, cc in enumerate(core) if cc == d]
            for a in on_c:
                la = lat[a]
                if ld + la < mx:
                    pm = max(mx - la, ld + la)
                    if best is None or pm < best[0]:
                        best = (pm, a, d, -1)
                for b in on_d:
                    lb = lat[b]
                    if lb >= la:
                        continue
                    nc, nd = mx - la + lb, ld - lb + la
                    if nd < mx:
                        pm = max(nc, nd)
                        if best is None or pm < best[0]:
                            best = (pm, a, d, b)
        if best is None:
            return core, mx
        _, a, d, b = best
        core[a] = d
        loads[c] -= lat[a]
        loads[d] += lat[a]
        if b >= 0:
            core[b] = c
            loads[d] -= lat[b]
            loads[c] += lat[b]


@register_strategy("lpt-refine")
def lpt_refine_strategy(prep: Prepared, k: int) -> GroupSchedule:
    """LPT, then :func:`_local_search` on every candidate whose LPT makespan is above its
    :func:`strong_bound` while that bound is below the best LPT makespan of its layer (the
    only candidates whose improvement can change the layer's result). Never worse than
    ``lpt``; equal to it wherever LPT is provably optimal."""
    base = lpt_strategy(prep, k)
    makespan, core = base.makespan.copy(), base.core.copy()
    best = np.minimum.reduceat(makespan, prep.layer_first)
    layer_pos = np.searchsorted(prep.layers_present, prep.g_layer)
    lb = strong_bound(prep, k)
    todo = np.flatnonzero((makespan > lb) & (lb < best[layer_pos]))
    for g in todo.tolist():
        n = int(prep.g_count[g])
        new, span = _local_search(prep.lat[g, :n].tolist(), core[g, :n].tolist(), k)
        if span < makespan[g]:
            makespan[g] = span
            core[g, :n] = new
    return GroupSchedule(makespan, core)


# -------------------------------------------------------------------- allocation
@dataclass(frozen=True)
class Schedule:
    """The core-set-independent part of an allocation for ``k`` logical cores (what
    ``prepare(precompute=...)`` caches): per present layer (``Prepared.layers_present``)
    the chosen group, its makespan, its bound and the layer bound; the chosen IFPs with
    their logical cores; the dispatch table; and the strategy's result for every group
    (``groups``: every candidate's makespan and assignment)."""

    strategy: str
    k: int
    group: np.ndarray
    makespan: np.ndarray
    bound: np.ndarray
    layer_bound: np.ndarray
    ifp_index: np.ndarray
    ifp_core: np.ndarray
    ifp_layer: np.ndarray
    dispatch: np.ndarray
    groups: GroupSchedule


def _choose(prep: Prepared, makespan: np.ndarray) -> np.ndarray:
    """Per present layer, the group of least (makespan, IFP count, candidate order)."""
    key = makespan * (prep.max_ifps + 1) + prep.g_count
    best = np.minimum.reduceat(key, prep.layer_first)
    counts = np.diff(np.r_[prep.layer_first, prep.num_groups])
    g = np.where(key == np.repeat(best, counts), np.arange(prep.num_groups), prep.num_groups)
    return np.minimum.reduceat(g, prep.layer_first)


def dispatch_table(
    n_layers: int, k: int, ifp_index: np.ndarray, ifp_core: np.ndarray, ifp_layer: np.ndarray
) -> np.ndarray:
    """The DISPATCH records for ``k`` logical cores: for each core ``c`` in order, for each
    layer ``0..n_layers-1``, the IFPs assigned to ``c`` in increasing IFP index, then the
    layer's SYNC; finally END. Every core takes part in every barrier, also a core with
    no IFP in the layer."""
    n_sel = ifp_index.shape[0]
    cores = np.arange(k)
    layers = np.arange(n_layers)
    core = np.concatenate([ifp_core, np.repeat(cores, n_layers), cores])
    lay = np.concatenate([ifp_layer, np.tile(layers, k), np.full(k, n_layers)])
    arg = np.concatenate([ifp_index, np.tile(layers, k), np.zeros(k, np.int64)])
    ctrl = np.ones(core.shape[0], np.int64)
    ctrl[:n_sel] = 0
    big = int(ifp_index.max()) + 2 if n_sel else 1
    key = ((core * (n_layers + 1) + lay) * 2 + ctrl) * big + np.where(ctrl == 0, arg, 0)
    order = np.argsort(key)
    out = np.zeros(core.shape[0], DISPATCH_DTYPE)
    out["core"] = core[order]
    kind = np.concatenate([np.zeros(n_sel, np.uint8), np.ones(k * n_layers, np.uint8),
                           np.full(k, 2, np.uint8)])
    out["kind"] = kind[order]
    out["arg"] = arg[order]
    return out


def _schedule(prep: Prepared, k: int, name: str, gs: GroupSchedule) -> Schedule:
    if prep.num_groups == 0:  # no accelerator layer: each core only ENDs
        e = np.zeros(0, np.int64)
        return Schedule(strategy=name, k=k, group=e, makespan=e, bound=np.zeros(0),
                        layer_bound=np.zeros(0), ifp_index=e, ifp_core=e, ifp_layer=e,
                        dispatch=dispatch_table(0, k, e, e, e), groups=gs)
    chosen = _choose(prep, gs.makespan)
    counts = prep.g_count[chosen]
    mask = np.arange(prep.max_ifps)[None, :] < counts[:, None]
    ifp_index = prep.idx[chosen][mask]
    ifp_core = gs.core[chosen][mask]
    ifp_layer = np.repeat(prep.layers_present, counts)
    bound_g = np.maximum(prep.g_total / k, prep.g_max)
    return Schedule(
        strategy=name, k=k, group=chosen, makespan=gs.makespan[chosen],
        bound=bound_g[chosen], layer_bound=np.minimum.reduceat(bound_g, prep.layer_first),
        ifp_index=ifp_index, ifp_core=ifp_core, ifp_layer=ifp_layer,
        dispatch=dispatch_table(prep.n_layers, k, ifp_index, ifp_core, ifp_layer), groups=gs)


@dataclass(frozen=True)
class Allocation:
    """The result of :func:`allocate`: the task's physical ``cores`` (logical core ``i``
    runs on ``cores[i]``) and its :class:`Schedule` for ``k = len(cores)``.

    ``layers`` are the layers with IFPs; ``candidate``, ``makespan`` (cycles),
    ``bound`` (``max(total / k, longest IFP)`` of the chosen candidate) and
    ``layer_bound`` (least such bound over the layer's candidates: no choice of candidate
    and assignment finishes the layer sooner) are per entry of ``layers``. ``seconds`` is
    the wall time of the :func:`allocate` call."""

    cores: tuple[int, ...]
    schedule: Schedule
    layers: np.ndarray
    candidate: np.ndarray
    seconds: float

    @property
    def k(self) -> int:
        return len(self.cores)

    @property
    def strategy(self) -> str:
        return self.schedule.strategy

    @property
    def dispatch(self) -> np.ndarray:
        """DISPATCH records (logical cores ``0..k-1``)."""
        return self.schedule.dispatch

    @property
    def makespan(self) -> np.ndarray:
        return self.schedule.makespan

    @property
    def bound(self) -> np.ndarray:
        return self.schedule.bound

    @property
    def layer_bound(self) -> np.ndarray:
        return self.schedule.layer_bound

    @property
    def ifp_index(self) -> np.ndarray:
        """The IFPs that run, grouped by layer."""
        return self.schedule.ifp_index

    @property
    def ifp_core(self) -> np.ndarray:
        """Logical core of each IFP of :attr:`ifp_index`."""
        return self.schedule.ifp_core

    @property
    def ifp_physical_core(self) -> np.ndarray:
        """Physical core of each IFP of :attr:`ifp_index`."""
        return np.asarray(self.cores, np.int64)[self.schedule.ifp_core]

    @property
    def predicted_cycles(self) -> int:
        """Sum over layers of the makespans (barrier overhead not included)."""
        return int(self.schedule.makespan.sum())

    @property
    def bound_cycles(self) -> float:
        """Sum over layers of the chosen candidates' lower bounds."""
        return float(self.schedule.bound.sum())

    @property
    def layer_bound_cycles(self) -> float:
        """Sum over layers of the layer bounds."""
        return float(self.schedule.layer_bound.sum())

    @property
    def quality(self) -> float:
        """Mean over layers of makespan / bound of the chosen candidate (1.0 = every
        layer provably optimal for its candidate)."""
        return float(np.mean(self.schedule.makespan / self.schedule.bound))

    @property
    def layer_quality(self) -> float:
        """Mean over layers of makespan / layer bound (also counts what the candidate
        set's granularity costs)."""
        return float(np.mean(self.schedule.makespan / self.schedule.layer_bound))


def check_cores(cores: Sequence[int], pool_size: int | None) -> tuple[int, ...]:
    """``cores`` as a tuple, checked: non-empty, distinct, non-negative, at most
    :data:`MAX_CORES`, and below ``pool_size`` if given."""
    out = tuple(int(c) for c in cores)
    if not out:
        raise AllocationError("the core set is empty; give the task at least one core")
    if len(set(out)) != len(out):
        raise AllocationError(f"core set {list(out)} names a core twice")
    if min(out) < 0:
        raise AllocationError(f"core set {list(out)} has a negative core index")
    if pool_size is not None and max(out) >= pool_size:
        outside = sorted(c for c in out if c >= pool_size)
        raise AllocationError(f"core set {list(out)}: cores {outside} are not in the pool "
                              f"(0..{pool_size - 1})")
    if len(out) > MAX_CORES:
        raise AllocationError(f"{len(out)} cores: a program may use at most {MAX_CORES}")
    return out


def allocate(prep: Prepared, cores: Sequence[int], strategy: str = "lpt") -> Allocation:
    """Allocate the prepared model to the physical ``cores`` (any non-empty set, in the
    order of the task's logical-to-physical map) with ``strategy``: per layer the
    candidate and IFP assignment of least makespan, and the dispatch table. Uses the
    schedule cached by ``prepare(precompute=...)`` when there is one; otherwise computes
    it (and caches it)."""
    t0 = time.perf_counter()
    phys = check_cores(cores, prep.pool_size)
    k = len(phys)
    sched = prep.cache.get((strategy, k))
    if sched is None:
        sched = _schedule(prep, k, strategy, get_strategy(strategy)(prep, k))
        prep.cache[(strategy, k)] = sched
    return Allocation(phys, sched, prep.layers_present, prep.g_candidate[sched.group],
                      time.perf_counter() - t0)


def allocate_uncached(prep: Prepared, cores: Sequence[int], strategy: str = "lpt") -> Allocation:
    """:func:`allocate` ignoring (and not filling) the cache: the full dynamic compile."""
    t0 = time.perf_counter()
    phys = check_cores(cores, prep.pool_size)
    k = len(phys)
    sched = _schedule(prep, k, strategy, get_strategy(strategy)(prep, k))
    return Allocation(phys, sched, prep.layers_present, prep.g_candidate[sched.group],
                      time.perf_counter() - t0)


def retarget(vfb: VfbFile, alloc: Allocation) -> VfbFile:
    """``vfb`` with its dispatch table replaced by ``alloc``'s and ``num_cores`` set to
    ``alloc.k``; every other section (TEXT, IFPS, DATA, ...) is shared unchanged."""
    return replace(vfb, dispatch=alloc.dispatch.copy(), num_cores=alloc.k)


__all__ = [
    "STRATEGIES",
    "Allocation",
    "AllocationError",
    "GroupSchedule",
    "Prepared",
    "Schedule",
    "allocate",
    "allocate_uncached",
    "dispatch_table",
    "get_strategy",
    "prepare",
    "register_strategy",
    "retarget",
    "strong_bound",
]
