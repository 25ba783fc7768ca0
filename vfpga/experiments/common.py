"""Shared machinery of the experiments: per-model dynamic-pass state, throughput runs on
the timing model, the no-workload-balancing schedule, and atomic output writing.

Throughput runs are **timing-only** (no functional emulation): timing is computed from the
instruction streams and does not depend on data (see :mod:`vfpga.emulator.timing`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfpga.backend.retarget import Prepared, allocate, dispatch_table, prepare
from vfpga.emulator.timing import Job, TimingEngine, TimingParams, job_for
from vfpga.experiments.models import CompiledModel, compiled_model
from vfpga.fileio import atomic_write
from vfpga.hw.config import DEFAULT_HW, HardwareConfig, load_hw


@dataclass
class ModelState:
    """A paper model ready for the experiments: its pool binary with the dynamic pass
    prepared, and its large-core binary."""

    name: str
    pool: CompiledModel
    large: CompiledModel
    prep: Prepared
    macs: int

    @property
    def ops(self) -> int:
        """Operations of one inference (a MAC is two)."""
        return 2 * self.macs

    def dispatch(self, k: int, strategy: str = "lpt") -> np.ndarray:
        """The dispatch table for ``k`` cores (``strategy`` ``"none"``: without workload
        balancing, :func:`naive_dispatch`)."""
        if strategy == "none":
            return naive_dispatch(self.prep, k)
        return allocate(self.prep, list(range(k)), strategy).dispatch


_STATES: dict[tuple[str, str], ModelState] = {}


def model_state(name: str, cache: Path | None = None) -> ModelState:
    """The (memoised) :class:`ModelState` of paper model ``name``."""
    key = (name, str(cache))
    if key not in _STATES:
        pool = compiled_model(name, DEFAULT_HW, cache, progress=True)
        large = compiled_model(name, "large1", cache, progress=True)
        prep = prepare(pool.vfb.ifps, pool.vfb.num_layers, pool_size=pool.hw.num_cores)
        macs = sum(int(layer.macs) for layer in pool.vfb.layers)
        _STATES[key] = ModelState(name, pool, large, prep, macs)
    return _STATES[key]


def naive_dispatch(prep: Prepared, k: int) -> np.ndarray:
    """Dispatch table **without workload balancing**: per layer the candidate with the
    fewest IFPs that is at least ``k`` (else the one with the most), its IFPs dealt to
    the cores round-robin in table order, ignoring their predicted latencies."""
    ifp_index: list[np.ndarray] = []
    ifp_core: list[np.ndarray] = []
    ifp_layer: list[np.ndarray] = []
    firsts = [*prep.layer_first.tolist(), prep.num_groups]
    for li, layer in enumerate(prep.layers_present.tolist()):
        groups = range(int(firsts[li]), int(firsts[li + 1]))
        counts = [int(prep.g_count[g]) for g in groups]
        enough = [(c, g) for c, g in zip(counts, groups, strict=True) if c >= k]
        g = min(enough)[1] if enough else max(zip(counts, groups, strict=True))[1]
        n = int(prep.g_count[g])
        idx = np.sort(prep.idx[g, :n])
        ifp_index.append(idx)
        ifp_core.append(np.arange(n) % k)
        ifp_layer.append(np.full(n, layer))
    return dispatch_table(prep.n_layers, k, np.concatenate(ifp_index), np.concatenate(ifp_core),
                          np.concatenate(ifp_layer))


# ------------------------------------------------------------------ throughput runs
@dataclass
class TenantRun:
    """One tenant of a throughput run: a binary, its physical cores and dispatch table,
    and (after the run) the completion times of its inferences (cycles)."""

    name: str
    image: Any
    cores: list[int]
    dispatch: np.ndarray
    ops: int = 0
    completions: list[float] = field(default_factory=list)

    def throughput(self, clock_hz: float) -> float:
        """Inferences per second: completed inferences over the time of the last one."""
        if not self.completions:
            return 0.0
        return len(self.completions) / (self.completions[-1] / clock_hz)


def run_tenants(hw: HardwareConfig, tenants: Sequence[TenantRun], min_inferences: int = 2,
                observed: Sequence[int] | None = None,
                params: TimingParams | None = None) -> TimingEngine:
    """Run every tenant closed-loop (each starts its next inference as soon as the last
    one ends) on one timing engine, until each tenant of ``observed`` (default: all) has
    completed ``min_inferences``; the others keep running meanwhile (they are load)."""
    eng = TimingEngine(hw, params)
    watch = set(range(len(tenants)) if observed is None else observed)
    pending = {i for i in watch}

    def launch(i: int) -> None:
        t = tenants[i]

        def done(job: Job) -> None:
            t.completions.append(eng.now)
            if i in pending and len(t.completions) >= min_inferences:
                pending.discard(i)
            if pending:
                launch(i)

        eng.start(job_for(t.name, t.image, hw, t.cores, t.dispatch, on_done=done))

    for i in range(len(tenants)):
        launch(i)
    eng.run()
    return eng


def bank_aligned_split(sizes: Sequence[int], hw: HardwareConfig) -> list[list[int]]:
    """Physical cores for tenants of ``sizes`` cores: tenants in decreasing size take whole
    free banks first, then the bank with the most free cores (fewest shared banks). Raises
    ``ValueError`` if the sizes exceed the pool."""
    if sum(sizes) > hw.num_cores:
        raise ValueError(f"{sum(sizes)} cores requested, the pool has {hw.num_cores}")
    per = hw.cores_per_bank if hw.bank_mapping == "grouped" else hw.num_cores
    free = {b: list(range(b * per, min((b + 1) * per, hw.num_cores)))
            for b in range(-(-hw.num_cores // per))}
    out: dict[int, list[int]] = {}
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        need = sizes[i]
        got: list[int] = []
        while need:
            whole = [b for b, cs in free.items() if len(cs) == per and per <= need]
            if whole:
                b = whole[0]
            else:
                fits = [b for b, cs in free.items() if len(cs) >= need]
                b = (min(fits, key=lambda b: (len(free[b]), b)) if fits
                     else max(free, key=lambda b: (len(free[b]), -b)))
            take = free[b][:need]
            free[b] = free[b][len(take):]
            got += take
            need -= len(take)
        out[i] = got
    return [out[i] for i in range(len(sizes))]


def even_sizes(n_tasks: int, n_cores: int) -> list[int]:
    """``n_cores`` split over ``n_tasks`` as evenly as possible (larger shares first)."""
    base, extra = divmod(n_cores, n_tasks)
    return [base + (1 if i < extra else 0) for i in range(n_tasks)]


# ------------------------------------------------------------------------ output
def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)


def write_json(path: Path, data: object) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(v: object) -> object:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v)}")


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110,
                                                  bbox_inches="tight"))
    finally:
        plt.close(fig)


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


POOL_HW = DEFAULT_HW


def pool_hw() -> HardwareConfig:
    return load_hw(POOL_HW)
