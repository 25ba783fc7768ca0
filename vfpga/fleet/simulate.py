"""``vfpga fleet simulate``: the fleet controller's placement at cloud scale, on the
timing model alone (docs/fleet.md, "Simulation").

Each model's predicted latency on 1..N cores (:func:`latency_table`: its binary deployed
on ``n`` cores of a :class:`~vfpga.runtime.pool.ResourcePool`, re-targeted by the dynamic
compile, timed by :mod:`vfpga.emulator.timing`) decides how many cores a tenant needs
for its latency target: the fewest that meet it. No inference is run.

Tenants arrive (Poisson), may change their target once (a resize) and leave
(exponential lifetimes); nodes may die. Every event is one controller decision on a
:class:`~vfpga.fleet.placement.Placer`, timed with :func:`time.perf_counter`:

* arrival: best fit on the nodes with enough free cores; if none, the node with the most
  free cores (the tenant runs below its target: "degraded"); if no core is free, the
  tenant is refused;
* resize: in place if the node has the cores, else migrated to another node's best fit,
  else refused (the tenant keeps its cores); a tenant refused at its arrival is placed
  as an arrival is;
* departure: its cores return;
* node failure: the node's tenants are re-placed as arrivals are.

Reported: utilization (time-weighted allocated / alive cores), latency-target attainment
(time-weighted share of placed tenants whose latency on their cores meets the target),
placement quality against two fluid bounds (a fluid fleet is one pool of all alive
cores: no fragmentation): allocated core-seconds over the integral of min(demand,
capacity), which no placer can exceed at any instant, and arrivals placed on their
target's cores over the arrivals a fluid fleet had room for at that moment; the share
of placements on the fewest DDR banks, and the decision time per event.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfpga.backend.binary import VfbFile, read_vfb, to_bytes
from vfpga.errors import VfpgaError
from vfpga.fileio import atomic_write
from vfpga.fleet.placement import Placer
from vfpga.fleet.scenario import FleetScenario, FleetScenarioError
from vfpga.hw.config import HardwareConfig, HardwareConfigError, load_hw
from vfpga.runtime.pool import ResourcePool

_ARRIVE, _RESIZE, _LEAVE, _FAIL = range(4)
KIND_NAMES = ("arrival", "resize", "departure", "node failure")


def latency_table(vfb: VfbFile, hw: HardwareConfig) -> list[float]:
    """Predicted latency (ms) of one inference of ``vfb`` alone on 1..``hw.num_cores``
    cores, placed by the pool and re-targeted by the dynamic compile."""
    out = []
    for n in range(1, hw.num_cores + 1):
        pool = ResourcePool(hw)
        t = pool.create_tenant("probe", n)
        t.deploy(vfb)
        out.append(t.solo_cycles() / (hw.clock_mhz * 1e3))
    return out


def cores_for(table: list[float], target_ms: float) -> tuple[int, bool]:
    """The fewest cores whose latency meets ``target_ms`` and whether any does (if none
    does, the fastest core count)."""
    for n, lat in enumerate(table, 1):
        if lat <= target_ms:
            return n, True
    return int(np.argmin(table)) + 1, False


@dataclass
class _Tenant:
    model: int
    target_ms: float
    need: int
    new_target_ms: float  # the target after its resize (if it has one)
    cores: int = 0  # held (0: not placed)


@dataclass
class FleetReport:
    """What :func:`simulate_fleet` measured (see the module docstring)."""

    nodes: int
    cores_per_node: int
    events: int
    sim_seconds: float
    wall_seconds: float
    counts: dict[str, int]
    utilization: float
    attainment: float
    fluid_quality: float
    admission_quality: float
    min_bank_share: float
    decision_us: dict[str, dict[str, float]]
    decision_median_us: float
    decision_p99_us: float
    decision_max_us: float
    tables_ms: dict[str, list[float]]
    timeline: dict[str, list[float]] = field(default_factory=dict)
    decisions_us: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the long series (for JSON)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("timeline", "decisions_us")}


def resolve_tables(
    sc: FleetScenario,
    hw: HardwareConfig,
    compile_model: Callable[[str, str], VfbFile] | None,
    cache: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[list[float]]:
    """Each model's latency table (ms on 1..N cores), from its ``latency_ms``, its binary
    or the bundled model (``compile_model(name, hw)``; the CLI passes a cached compile).
    ``cache``: a JSON file of the tables already measured, by binary and hardware (read
    if valid, rewritten atomically when a table is added)."""
    known: dict[str, list[float]] = {}
    if cache is not None and cache.is_file():
        try:
            doc = json.loads(cache.read_text())
            known = {
                k: [float(x) for x in v]
                for k, v in doc.items()
                if isinstance(v, list) and len(v) == hw.num_cores
            }
        except (OSError, ValueError, TypeError, AttributeError):
            known = {}  # an unreadable cache is measured again
    added = False
    tables = []
    for m in sc.models:
        where = f"{sc.source}: model '{m.name}'"
        if m.latency_ms is not None:
            if len(m.latency_ms) != hw.num_cores:
                raise FleetScenarioError(
                    f"{where}: 'latency_ms' has {len(m.latency_ms)} entries, the nodes have "
                    f"{hw.num_cores} cores"
                )
            tables.append(m.latency_ms)
            continue
        if m.binary is not None:
            try:
                vfb = read_vfb(m.binary, hw)
            except VfpgaError as exc:
                raise FleetScenarioError(f"{where}: 'binary': {exc}") from None
        else:
            if compile_model is None:
                raise FleetScenarioError(f"{where}: bundled models need a model compiler")
            if log:
                log(f"preparing {m.name} ...")
            vfb = compile_model(m.name, sc.hw)
        key = hashlib.sha256(to_bytes(vfb)).hexdigest() + ":" + hw.fingerprint.hex()
        if key not in known:
            if log:
                log(f"timing {m.name} on 1..{hw.num_cores} cores ...")
            try:
                known[key] = latency_table(vfb, hw)
            except VfpgaError as exc:
                raise FleetScenarioError(f"{where}: cannot be timed: {exc}") from None
            added = True
        tables.append(known[key])
    if cache is not None and added:
        atomic_write(cache, json.dumps(known))
    return tables


def scenario_hw(sc: FleetScenario) -> HardwareConfig:
    """The hardware of the scenario's nodes."""
    try:
        return load_hw(sc.hw)
    except HardwareConfigError as exc:
        raise FleetScenarioError(f"{sc.source}: 'hw': {exc}") from None


def simulate_fleet(sc: FleetScenario, tables: list[list[float]]) -> FleetReport:
    """Run scenario ``sc`` with the models' latency tables (:func:`resolve_tables`; see
    the module docstring)."""
    hw = scenario_hw(sc)
    per_bank = hw.cores_per_bank if hw.bank_mapping == "grouped" else hw.num_cores
    placer = Placer(sc.nodes, hw.num_cores, per_bank)
    rng = np.random.default_rng(sc.seed)
    weights = np.array([m.weight for m in sc.models], dtype=float)
    weights /= weights.sum()

    tenants: dict[int, _Tenant] = {}
    heap: list[tuple[float, int, int, int]] = []  # (time, seq, kind, tenant or -1)
    seq = 0

    def push(t: float, kind: int, who: int) -> None:
        nonlocal seq
        heapq.heappush(heap, (t, seq, kind, who))
        seq += 1

    next_id = 0
    push(float(rng.exponential(1 / sc.arrival_rate_per_s)), _ARRIVE, -1)
    for t in sc.node_failures_s:
        push(t, _FAIL, -1)

    # running totals (kept per event, integrated over time)
    allocated = demand = placed = meeting = 0
    integ = {"alloc": 0.0, "cap": 0.0, "fluid": 0.0, "placed": 0.0, "meeting": 0.0}
    counts = {
        k: 0
        for k in (
            "arrivals",
            "placed",
            "degraded",
            "refused",
            "resizes",
            "resized_in_place",
            "migrated",
            "resize_placed",
            "resize_refused",
            "departures",
            "node_failures",
            "re_placed",
            "dropped",
            "min_bank_placements",
            "placements",
            "fluid_admissible",
        )
    }
    per_kind: list[list[float]] = [[] for _ in KIND_NAMES]
    series: dict[str, list[float]] = {k: [] for k in ("t", "alloc", "capacity", "fluid", "attain")}
    now = 0.0

    def meets(tn: _Tenant) -> bool:
        return tn.cores > 0 and tables[tn.model][tn.cores - 1] <= tn.target_ms

    def book(who: int, tn: _Tenant, node: int, n: int) -> None:
        nonlocal allocated, placed, meeting
        per = placer.pick_banks(node, n)
        placer.take(node, str(who), per)
        counts["placements"] += 1
        if sum(1 for c in per if c) == placer.min_banks(n):
            counts["min_bank_placements"] += 1
        tn.cores = n
        allocated += n
        placed += 1
        meeting += meets(tn)

    def unbook(who: int, tn: _Tenant, release: bool = True) -> None:
        nonlocal allocated, placed, meeting
        if tn.cores:
            meeting -= meets(tn)
            if release:
                placer.release(str(who))
            allocated -= tn.cores
            placed -= 1
            tn.cores = 0

    def place(who: int, tn: _Tenant) -> str:
        node = placer.best_fit(tn.need)
        if node is not None:
            book(who, tn, node, tn.need)
            return "placed"
        node = placer.most_free()
        if node is None:
            return "refused"
        book(who, tn, node, placer.nodes[node].free)
        return "degraded"

    t_start = time.perf_counter()
    done = 0
    mi, target, new_target, dying, fluid_ok = 0, 0.0, 0.0, None, False
    while heap and done < sc.events:
        t_ev, _, kind, who = heapq.heappop(heap)
        if kind == _LEAVE and who not in tenants:
            continue
        dt = t_ev - now
        cap = placer.capacity
        integ["alloc"] += dt * allocated
        integ["cap"] += dt * cap
        integ["fluid"] += dt * min(demand, cap)
        integ["placed"] += dt * placed
        integ["meeting"] += dt * meeting
        now = t_ev
        if kind == _ARRIVE:  # the next arrival and this tenant's future are drawn first
            push(now + float(rng.exponential(1 / sc.arrival_rate_per_s)), _ARRIVE, -1)
            who = next_id
            next_id += 1
            mi = int(rng.choice(len(weights), p=weights))
            lo, hi = sc.models[mi].target_ms
            target = float(rng.uniform(lo, hi))
            life = float(rng.exponential(sc.mean_lifetime_s))
            push(now + life, _LEAVE, who)
            if rng.random() < sc.resize_probability:
                push(now + float(rng.uniform(0, life)), _RESIZE, who)
            new_target = float(rng.uniform(lo, hi))
            fluid_ok = placer.free_cores >= cores_for(tables[mi], target)[0]
        elif kind == _FAIL:  # which node dies is the world's choice, not the controller's
            alive = [i for i, st in enumerate(placer.nodes) if st.alive]
            dying = alive[int(rng.integers(len(alive)))] if alive else None
        t0 = time.perf_counter()
        if kind == _ARRIVE:
            need, _ok = cores_for(tables[mi], target)
            tn = _Tenant(mi, target, need, new_target)
            tenants[who] = tn
            demand += need
            counts["arrivals"] += 1
            counts[place(who, tn)] += 1
            counts["fluid_admissible"] += fluid_ok
        elif kind == _LEAVE:
            tn = tenants.pop(who)
            demand -= tn.need
            unbook(who, tn)
            counts["departures"] += 1
        elif kind == _RESIZE:
            tn = tenants[who]
            counts["resizes"] += 1
            need, _ok = cores_for(tables[tn.model], tn.new_target_ms)
            demand += need - tn.need
            meeting -= meets(tn)  # counted again with the new target
            tn.need, tn.target_ms = need, tn.new_target_ms
            meeting += meets(tn)
            if not tn.cores:  # refused at its arrival: it may fit now
                r = place(who, tn)
                counts["resize_refused" if r == "refused" else "resize_placed"] += 1
            else:
                node = placer.where[str(who)]
                if placer.nodes[node].free + tn.cores >= need:
                    unbook(who, tn)
                    book(who, tn, node, need)
                    counts["resized_in_place"] += 1
                else:
                    dest = placer.best_fit(need, exclude=node)
                    if dest is not None:
                        unbook(who, tn)
                        book(who, tn, dest, need)
                        counts["migrated"] += 1
                    else:
                        counts["resize_refused"] += 1
        else:
            counts["node_failures"] += 1
            if dying is not None:
                for name in placer.remove_node(dying):
                    tn = tenants[int(name)]
                    unbook(int(name), tn, release=False)
                    r = place(int(name), tn)
                    counts["re_placed" if r != "refused" else "dropped"] += 1
        took = (time.perf_counter() - t0) * 1e6
        per_kind[kind].append(took)
        done += 1
        if done % max(1, sc.events // 400) == 0:
            series["t"].append(now)
            series["alloc"].append(allocated)
            series["capacity"].append(placer.capacity)
            series["fluid"].append(min(demand, placer.capacity))
            series["attain"].append(meeting / placed if placed else 1.0)
    wall = time.perf_counter() - t_start
    all_us = [x for k in per_kind for x in k]

    def pct(xs: list[float], q: float) -> float:
        return float(np.percentile(xs, q)) if xs else math.nan

    return FleetReport(
        nodes=sc.nodes,
        cores_per_node=hw.num_cores,
        events=done,
        sim_seconds=now,
        wall_seconds=wall,
        counts=counts,
        utilization=integ["alloc"] / integ["cap"] if integ["cap"] else 0.0,
        attainment=integ["meeting"] / integ["placed"] if integ["placed"] else 1.0,
        fluid_quality=integ["alloc"] / integ["fluid"] if integ["fluid"] else 1.0,
        admission_quality=(
            counts["placed"] / counts["fluid_admissible"] if counts["fluid_admissible"] else 1.0
        ),
        min_bank_share=(
            counts["min_bank_placements"] / counts["placements"] if counts["placements"] else 1.0
        ),
        decision_us={
            KIND_NAMES[k]: {"n": len(xs), "median": pct(xs, 50), "p99": pct(xs, 99)}
            for k, xs in enumerate(per_kind)
            if xs
        },
        decision_median_us=pct(all_us, 50),
        decision_p99_us=pct(all_us, 99),
        decision_max_us=max(all_us) if all_us else math.nan,
        tables_ms={m.name: t for m, t in zip(sc.models, tables, strict=True)},
        timeline=series,
        decisions_us=all_us,
    )


__all__ = [
    "FleetReport",
    "cores_for",
    "latency_table",
    "resolve_tables",
    "scenario_hw",
    "simulate_fleet",
]
