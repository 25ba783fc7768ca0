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

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfpga.emulator.machine import segments_from_dispatch
from vfpga.emulator.timing import Job, TimingEngine, insn_costs
from vfpga.errors import VfpgaError
from vfpga.hw.config import DEFAULT_HW
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


def load_scenario(path: str | Path) -> Scenario:
    """Parse and check a scenario file; :class:`ScenarioError` names what is wrong."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{p}: no such scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from None

    def num(d: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
        v = d.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ScenarioError(f"{p}: {where}: '{key}' must be a non-negative number")
        return float(v)

    known = {"duration_ms", "hw", "strategy", "tenant", "resize"}
    extra = set(data) - known
    if extra:
        raise ScenarioError(f"{p}: unknown key(s) {sorted(extra)} (known: {sorted(known)})")
    dur = num(data, "duration_ms", "top level")
    tenants: list[TenantSpec] = []
    for i, t in enumerate(data.get("tenant", [])):
        where = f"[[tenant]] #{i + 1}"
        name = t.get("name")
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"{p}: {where}: needs a 'name'")
        if ("model" in t) == ("binary" in t):
            raise ScenarioError(f"{p}: {where} ('{name}'): give exactly one of 'model' or "
                                "'binary'")
        cores = t.get("cores")
        if not isinstance(cores, int) or cores < 1:
            raise ScenarioError(f"{p}: {where} ('{name}'): 'cores' must be a positive integer")
        leave = num(t, "leave_ms", where) if "leave_ms" in t else None
        binary = (p.parent / t["binary"]) if "binary" in t else None
        tenants.append(TenantSpec(name, cores, num(t, "arrive_ms", where, 0.0), leave,
                                  t.get("model"), binary))
    names = [t.name for t in tenants]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{p}: tenant names must be unique: {names}")
    if not tenants:
        raise ScenarioError(f"{p}: no [[tenant]] entries")
    resizes = []
    for i, r in enumerate(data.get("resize", [])):
        where = f"[[resize]] #{i + 1}"
        if r.get("tenant") not in names:
            raise ScenarioError(f"{p}: {where}: unknown tenant {r.get('tenant')!r} "
                                f"(tenants: {', '.join(names)})")
        cores = r.get("cores")
        if not isinstance(cores, int) or cores < 1:
            raise ScenarioError(f"{p}: {where}: 'cores' must be a positive integer")
        resizes.append(ResizeSpec(r["tenant"], num(r, "at_ms", where), cores))
    return Scenario(str(p), dur, tenants, resizes, data.get("hw", DEFAULT_HW),
                    data.get("strategy", "lpt"))


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


def simulate(sc: Scenario, log: Any = None) -> dict[str, TenantReport]:
    """Run scenario ``sc`` on the timing model; the per-tenant reports."""
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

    def image_for(spec: TenantSpec) -> Any:
        if spec.binary is not None:
            return spec.binary
        from vfpga.experiments.models import compiled_model

        model = spec.model
        if model is None:  # pragma: no cover - load_scenario requires a binary or a model
            raise ScenarioError(f"tenant '{spec.name}' names neither a binary nor a model")
        if model not in images:
            if log:
                log(f"preparing model {model} ...")
            images[model] = compiled_model(model, sc.hw).vfb
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

        job = Job(name, insn_costs(t.vfb, hw), list(t.cores), segments(t),
                  on_barrier=on_barrier, on_done=on_done)
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


def timeline_plot(sc: Scenario, reports: dict[str, TenantReport], path: Path) -> None:
    """Cores held (top) and cumulative completed inferences (bottom) per tenant over time
    (the bottom curves' slopes are the tenants' throughputs)."""
    from vfpga.experiments.common import pyplot, save_figure

    plt = pyplot()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for k, rep in enumerate(reports.values()):
        color = f"C{k}"
        if rep.cores:
            xs = [t for t, _ in rep.cores] + [sc.duration_ms]
            ys = [c for _, c in rep.cores]
            # a small vertical offset keeps tenants holding equal core counts visible
            a1.step(xs, [y + 0.08 * k for y in ys + ys[-1:]], where="post", color=color,
                    label=f"{rep.name} ({rep.model})")
        done = sorted(rep.completions_ms)
        a2.step([0.0, *done, sc.duration_ms], [0, *range(1, len(done) + 1), len(done)],
                where="post", color=color, label=rep.name)
    a1.set_ylabel("cores")
    a1.legend(fontsize=7)
    a2.set_ylabel("completed inferences")
    a2.set_xlabel("time (ms)")
    fig.suptitle(f"scenario {Path(sc.source).name}")
    save_figure(fig, path)


__all__ = ["Scenario", "ScenarioError", "TenantReport", "load_scenario", "simulate",
           "timeline_plot"]
