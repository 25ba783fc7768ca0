"""``vfpga pool simulate``: tenants arriving, deploying, resizing and leaving over time
on the timing model (docs/runtime.md, "Scenarios").

A scenario is a TOML file::

    duration_ms = 40          # simulated time
    hw = "pool16"             # optional
    strategy = "lpt"          # dynamic-pass strategy, optional

    [[tenant]]
    name = "alice"
    model = "resnet50"        # a bundled model (compiled for the pool and cached), or
    # binary = "alice.vfb"    # a compiled binary (path relative to the scenario file)
    cores = 4
    arrive_ms = 0             # optional, default 0
    leave_ms = 30             # optional, default: stays

    [[resize]]
    tenant = "alice"
    at_ms = 10
    cores = 8

Every tenant goes through the :class:`~vfpga.runtime.pool.ResourcePool` (core placement,
binary validation, dynamic compile) and runs closed-loop (its next inference starts when
the last one ends) on one :class:`~vfpga.emulator.timing.TimingEngine` shared by all
tenants. A resize takes effect at the tenant's next layer boundary after a delay equal to
the reconfiguration time (measured dynamic compile + instruction transfer). A leaving
tenant stops at once. Timing is data-independent, so no functional run is needed.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfpga.backend.retarget import STRATEGIES
from vfpga.emulator.machine import segments_from_dispatch
from vfpga.emulator.timing import Job, TimingEngine, insn_costs
from vfpga.errors import VfpgaError
from vfpga.hw.config import DEFAULT_HW, HardwareConfigError, load_hw
from vfpga.runtime.pool import ResourcePool, Tenant


class ScenarioError(VfpgaError):
    """A scenario file is malformed (the message names the file and the entry)."""


@dataclass
class TenantSpec:
    name: str
    cores: int
    arrive_ms: float = 0.0
    leave_ms: float | None = None
    model: str | None = None
    binary: Path | None = None


@dataclass
class ResizeSpec:
    tenant: str
    at_ms: float
    cores: int


@dataclass
class Scenario:
    source: str
    duration_ms: float
    tenants: list[TenantSpec]
    resizes: list[ResizeSpec]
    hw: str = DEFAULT_HW
    strategy: str = "lpt"


#: Longest simulated time a scenario may ask for (ms).
MAX_DURATION_MS = 10_000.0
#: Most instructions, and most inferences, a scenario simulates in all (each bounds the
#: timing engine's work to well under a minute); tenants whose next inference would
#: exceed either stop, with a note in their report.
MAX_SIMULATED_INSNS = 4_000_000
MAX_SIMULATED_INFERENCES = 5_000
#: Largest scenario file read (bytes).
MAX_SCENARIO_BYTES = 1 << 20


def load_scenario(path: str | Path) -> Scenario:
    """Parse and check a scenario file; :class:`ScenarioError` names the file, the entry
    and the key that is wrong (types, ranges, finite times, binaries that exist, a known
    hardware preset and strategy), so that :func:`simulate` never meets a bad value."""
    p = Path(path)
    try:
        if p.is_dir():
            raise ScenarioError(f"{p}: is a folder, not a scenario file")
        if p.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError(f"{p}: larger than {MAX_SCENARIO_BYTES:,} bytes; not a scenario")
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{p}: no such scenario file") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{p}: not UTF-8 text (byte {exc.start}); a scenario is a TOML "
                            "file") from None
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from None

    def num(d: dict[str, Any], key: str, where: str, default: float | None = None,
            limit: float = MAX_DURATION_MS) -> float:
        v = d.get(key, default)
        if (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)
                or not 0 <= v <= limit):
            raise ScenarioError(f"{p}: {where}: '{key}' must be a number in 0..{limit:g}, got "
                                f"{v!r}")
        return float(v)

    def table_list(key: str) -> list[dict[str, Any]]:
        v = data.get(key, [])
        if not isinstance(v, list) or not all(isinstance(e, dict) for e in v):
            raise ScenarioError(f"{p}: '{key}' must be an array of tables ([[{key}]] entries)")
        return v

    def check_keys(d: dict[str, Any], known: set[str], where: str) -> None:
        extra = set(d) - known
        if extra:
            raise ScenarioError(f"{p}: {where}: unknown key(s) {sorted(extra)} (known: "
                                f"{sorted(known)})")

    def positive_int(d: dict[str, Any], key: str, where: str) -> int:
        v = d.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= n_cores:
            raise ScenarioError(f"{p}: {where}: '{key}' must be an integer in 1..{n_cores} "
                                f"(the cores of '{hw}'), got {v!r}")
        return v

    def string(d: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        v = d.get(key, default)
        if not isinstance(v, str) or not v:
            raise ScenarioError(f"{p}: {where}: '{key}' must be a non-empty string, got {v!r}")
        return v

    check_keys(data, {"duration_ms", "hw", "strategy", "tenant", "resize"}, "top level")
    if "duration_ms" not in data:
        raise ScenarioError(f"{p}: top level: 'duration_ms' is missing")
    dur = num(data, "duration_ms", "top level")
    hw = string(data, "hw", "top level", DEFAULT_HW)
    try:
        n_cores = load_hw(hw).num_cores
    except HardwareConfigError as exc:
        raise ScenarioError(f"{p}: top level: 'hw': {exc}") from None
    strategy = string(data, "strategy", "top level", "lpt")
    if strategy not in STRATEGIES:
        raise ScenarioError(f"{p}: top level: 'strategy' {strategy!r} is not one of "
                            f"{', '.join(STRATEGIES)}")
    tenants: list[TenantSpec] = []
    for i, t in enumerate(table_list("tenant")):
        where = f"[[tenant]] #{i + 1}"
        check_keys(t, {"name", "model", "binary", "cores", "arrive_ms", "leave_ms"}, where)
        name = string(t, "name", where)
        where = f"{where} ('{name}')"
        if ("model" in t) == ("binary" in t):
            raise ScenarioError(f"{p}: {where}: give exactly one of 'model' or 'binary'")
        cores = positive_int(t, "cores", where)
        arrive = num(t, "arrive_ms", where, 0.0)
        leave = num(t, "leave_ms", where) if "leave_ms" in t else None
        model = string(t, "model", where) if "model" in t else None
        binary = None
        if "binary" in t:
            binary = p.parent / string(t, "binary", where)
            if not binary.is_file():
                raise ScenarioError(f"{p}: {where}: 'binary' {binary} is not a file")
        tenants.append(TenantSpec(name, cores, arrive, leave, model, binary))
    names = [t.name for t in tenants]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{p}: tenant names must be unique: {names}")
    if not tenants:
        raise ScenarioError(f"{p}: no [[tenant]] entries")
    resizes = []
    for i, r in enumerate(table_list("resize")):
        where = f"[[resize]] #{i + 1}"
        check_keys(r, {"tenant", "at_ms", "cores"}, where)
        if r.get("tenant") not in names:
            raise ScenarioError(f"{p}: {where}: unknown tenant {r.get('tenant')!r} "
                                f"(tenants: {', '.join(names)})")
        resizes.append(ResizeSpec(r["tenant"], num(r, "at_ms", where),
                                  positive_int(r, "cores", where)))
    return Scenario(str(p), dur, tenants, resizes, hw, strategy)


@dataclass
class TenantReport:
    """Per tenant: completed inferences, throughput (inferences/s over its time in the
    pool), latencies (ms) of the completed inferences, its reconfigurations (total ms
    each) and the (time ms, cores) steps of its core count."""

    name: str
    model: str
    completed: int = 0
    throughput: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    completions_ms: list[float] = field(default_factory=list)
    reconfig_ms: list[float] = field(default_factory=list)
    cores: list[tuple[float, int]] = field(default_factory=list)
    error: str | None = None

    @property
    def mean_latency_ms(self) -> float:
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else float("nan")

    @property
    def p99_latency_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else float("nan")


def simulate(sc: Scenario, log: Any = None,
             compile_model: Callable[[str, str], Any] | None = None) -> dict[str, TenantReport]:
    """Run scenario ``sc`` on the timing model; the per-tenant reports. ``compile_model(
    name, hw)`` gives the binary of a bundled model (tenants with ``model``; the CLI
    passes a cached compile); a tenant whose binary cannot be had or deployed is reported
    with its error, the others run on. The whole scenario simulates at most
    :data:`MAX_SIMULATED_INSNS` instructions and :data:`MAX_SIMULATED_INFERENCES`
    inferences: a tenant whose next inference would exceed them stops (its report says
    so)."""
    pool = ResourcePool(sc.hw, strategy=sc.strategy)
    hw = pool.hw
    cyc_per_ms = hw.clock_mhz * 1e3
    eng = TimingEngine(hw)
    reports = {t.name: TenantReport(t.name, t.model or str(t.binary)) for t in sc.tenants}
    images: dict[str, Any] = {}
    jobs: dict[str, Job] = {}
    pending_switch: dict[str, tuple[list[int], np.ndarray, float]] = {}
    tenants: dict[str, Tenant] = {}
    horizon = sc.duration_ms * cyc_per_ms
    budget = [0, 0]  # instructions and inferences simulated so far
    costs: dict[tuple[str, int], Any] = {}  # per tenant binary: its instruction costs

    def image_for(spec: TenantSpec) -> Any:
        if spec.binary is not None:
            return spec.binary
        if compile_model is None:
            raise ScenarioError(f"{sc.source}: tenant '{spec.name}': 'model' entries need a "
                                "model compiler (vfpga pool simulate provides one)")
        model = spec.model
        assert model is not None  # load_scenario: exactly one of binary and model
        if model not in images:
            if log:
                log(f"preparing model {model} ...")
            images[model] = compile_model(model, sc.hw)
        return images[model]

    def segments(t: Tenant) -> list:
        assert t.dispatch is not None and t.vfb is not None
        n = int(t.dispatch["core"].max()) + 1
        return segments_from_dispatch(t.dispatch, t.vfb.ifps, n)

    def launch(name: str) -> None:
        t = tenants.get(name)
        if t is None or t.left or eng.now >= horizon:
            return
        assert t.vfb is not None
        if any(eng.cores[c].job is not None for c in t.cores):
            eng.at(eng.now + 1000, lambda: launch(name))  # cores still draining
            return

        def on_barrier(job: Job, layer: int) -> None:
            sw = pending_switch.pop(name, None)
            if sw is not None:
                cores, _, delay = sw
                eng.switch(job, cores, segments(t), delay)

        def on_done(job: Job) -> None:
            rep = reports[name]
            rep.completed += 1
            rep.latencies_ms.append(job.stats.cycles / cyc_per_ms)
            rep.completions_ms.append(eng.now / cyc_per_ms)
            launch(name)

        segs = segments(t)
        n_insns = sum(seg.indices.size for core in segs for seg in core)
        if budget[0] + n_insns > MAX_SIMULATED_INSNS or budget[1] >= MAX_SIMULATED_INFERENCES:
            reports[name].error = (f"stopped after {reports[name].completed:,} inferences: the "
                                   f"scenario's budget ({MAX_SIMULATED_INFERENCES:,} inferences,"
                                   f" {MAX_SIMULATED_INSNS:,} instructions) is used up")
            return
        budget[0] += n_insns
        budget[1] += 1
        key = (name, id(t.vfb))
        if key not in costs:
            costs[key] = insn_costs(t.vfb, hw)
        job = Job(name, costs[key], list(t.cores), segs, on_barrier=on_barrier,
                  on_done=on_done)
        jobs[name] = eng.start(job)

    def arrive(spec: TenantSpec) -> None:
        rep = reports[spec.name]
        try:
            t = pool.create_tenant(spec.name, spec.cores)
            t.deploy(image_for(spec))
        except VfpgaError as exc:
            rep.error = str(exc)
            if spec.name in pool.tenants:
                pool.tenants[spec.name].leave()
            if log:
                log(f"{eng.now / cyc_per_ms:8.3f} ms  {spec.name}: {exc}")
            return
        tenants[spec.name] = t
        rep.cores.append((eng.now / cyc_per_ms, len(t.cores)))
        if log:
            log(f"{eng.now / cyc_per_ms:8.3f} ms  {spec.name} arrives: {rep.model} on cores "
                f"{t.cores}")
        launch(spec.name)

    def leave(name: str) -> None:
        t = tenants.get(name)
        if t is None or t.left:
            return
        job = jobs.get(name)
        if job is not None and not job.done:
            eng.abort(job)
        t.leave()
        reports[name].cores.append((eng.now / cyc_per_ms, 0))
        if log:
            log(f"{eng.now / cyc_per_ms:8.3f} ms  {name} leaves")

    def resize(r: ResizeSpec) -> None:
        t = tenants.get(r.tenant)
        if t is None or t.left:
            return
        try:
            rc = t.resize(r.cores)
        except VfpgaError as exc:
            if log:
                log(f"{eng.now / cyc_per_ms:8.3f} ms  {r.tenant}: resize refused: {exc}")
            return
        rep = reports[r.tenant]
        rep.reconfig_ms.append(rc.total_seconds * 1e3)
        rep.cores.append((eng.now / cyc_per_ms, len(rc.new_cores)))
        delay = rc.total_seconds * hw.clock_mhz * 1e6
        job = jobs.get(r.tenant)
        if job is not None and not job.done:
            pending_switch[r.tenant] = (rc.new_cores, t.dispatch, delay)  # type: ignore[assignment]
        if log:
            log(f"{eng.now / cyc_per_ms:8.3f} ms  {r.tenant} resized {len(rc.old_cores)} -> "
                f"{len(rc.new_cores)} cores {rc.new_cores}: reconfiguration "
                f"{rc.total_seconds * 1e3:.3f} ms (dynamic compile "
                f"{rc.compile_seconds * 1e3:.3f} ms + instruction transfer "
                f"{(rc.total_seconds - rc.compile_seconds) * 1e3:.3f} ms)")

    for spec in sc.tenants:
        eng.at(spec.arrive_ms * cyc_per_ms, lambda s=spec: arrive(s))  # type: ignore[misc]
        if spec.leave_ms is not None:
            eng.at(spec.leave_ms * cyc_per_ms, lambda n=spec.name: leave(n))  # type: ignore[misc]
    for r in sc.resizes:
        eng.at(r.at_ms * cyc_per_ms, lambda r=r: resize(r))  # type: ignore[misc]
    eng.run(until=horizon)
    for name, rep in reports.items():
        spec = next(s for s in sc.tenants if s.name == name)
        end = min(sc.duration_ms, spec.leave_ms if spec.leave_ms is not None else sc.duration_ms)
        span = max(end - spec.arrive_ms, 1e-9)
        done = [c for c in rep.completions_ms if c <= end]
        rep.throughput = len(done) / (span / 1e3)
    return reports


__all__ = ["MAX_DURATION_MS", "MAX_SIMULATED_INFERENCES", "MAX_SIMULATED_INSNS", "Scenario",
           "ScenarioError", "TenantReport", "load_scenario", "simulate"]
