"""Fleet scenarios (``vfpga fleet simulate SCENARIO.toml``, docs/fleet.md)::

    hw = "pool16"               # optional: the hardware preset of every node
    seed = 1                    # optional
    nodes = 1000                # cards in the fleet
    events = 10000              # tenant events to simulate (arrivals, resizes, departures)
    arrival_rate_per_s = 20     # tenants arrive as a Poisson process
    mean_lifetime_s = 900       # and stay an exponential time
    resize_probability = 0.3    # the chance that a tenant's latency target changes once
    node_failures_s = [120]     # optional: a random alive node dies at these times

    [[model]]
    name = "mobilenet_v1"       # a bundled model (compiled and timed), or
    # binary = "m.vfb"          # a compiled binary (relative to this file), or
    # latency_ms = [...]        # its predicted latency on 1..N cores
    weight = 3                  # optional: how often tenants pick it
    target_ms = [0.6, 3.0]      # tenants' latency targets, uniform in this range

Every key is checked; a bad file raises :class:`FleetScenarioError` naming the file and
the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vfpga.errors import VfpgaError
from vfpga.hw.config import DEFAULT_HW

_TOP = {
    "hw",
    "seed",
    "nodes",
    "events",
    "arrival_rate_per_s",
    "mean_lifetime_s",
    "resize_probability",
    "node_failures_s",
    "model",
}
_MODEL = {"name", "binary", "latency_ms", "weight", "target_ms"}


class FleetScenarioError(VfpgaError):
    """A fleet scenario file is malformed (the message names the file and the key)."""


@dataclass
class ModelMix:
    """One model of the mix: where its latency table comes from (exactly one of
    ``bundled``, ``binary`` and ``latency_ms``), its weight and its targets' range."""

    name: str
    weight: float
    target_ms: tuple[float, float]
    bundled: str | None = None
    binary: Path | None = None
    latency_ms: list[float] | None = None


@dataclass
class FleetScenario:
    source: Path
    hw: str
    seed: int
    nodes: int
    events: int
    arrival_rate_per_s: float
    mean_lifetime_s: float
    resize_probability: float
    node_failures_s: list[float] = field(default_factory=list)
    models: list[ModelMix] = field(default_factory=list)


def _number(
    doc: dict[str, Any], key: str, where: str, lo: float, hi: float, default: float | None = None
) -> float:
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise FleetScenarioError(
            f"{where}: '{key}' must be a number in [{lo:g}, {hi:g}], got {v!r}"
        )
    return float(v)


def _integer(
    doc: dict[str, Any], key: str, where: str, lo: int, hi: int, default: int | None = None
) -> int:
    v = doc.get(key, default)
    if type(v) is not int or not lo <= v <= hi:
        raise FleetScenarioError(f"{where}: '{key}' must be an integer {lo}..{hi}, got {v!r}")
    return v


def _keys(doc: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(doc) - known)
    if extra:
        raise FleetScenarioError(
            f"{where}: unknown key(s) {', '.join(extra)} (known: {', '.join(sorted(known))})"
        )


def load_fleet_scenario(path: Path) -> FleetScenario:
    """Read and check a fleet scenario (see the module docstring)."""
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise FleetScenarioError(f"{path}: no such file") from None
    except OSError as exc:
        raise FleetScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetScenarioError(f"{path}: not valid TOML: {exc}") from None
    where = str(path)
    _keys(doc, _TOP, where)
    hw = doc.get("hw", DEFAULT_HW)
    if not isinstance(hw, str):
        raise FleetScenarioError(f"{where}: 'hw' must be a preset name or a JSON path")
    fails = doc.get("node_failures_s", [])
    if not isinstance(fails, list) or not all(type(x) in (int, float) and x >= 0 for x in fails):
        raise FleetScenarioError(f"{where}: 'node_failures_s' must be a list of times >= 0 (s)")
    sc = FleetScenario(
        source=path,
        hw=hw,
        seed=_integer(doc, "seed", where, 0, 2**63 - 1, 0),
        nodes=_integer(doc, "nodes", where, 1, 1_000_000),
        events=_integer(doc, "events", where, 1, 100_000_000),
        arrival_rate_per_s=_number(doc, "arrival_rate_per_s", where, 1e-9, 1e9),
        mean_lifetime_s=_number(doc, "mean_lifetime_s", where, 1e-9, 1e12),
        resize_probability=_number(doc, "resize_probability", where, 0.0, 1.0, 0.0),
        node_failures_s=sorted(float(x) for x in fails),
    )
    tables = doc.get("model")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise FleetScenarioError(f"{where}: give at least one [[model]] table")
    names: set[str] = set()
    for i, t in enumerate(tables):
        mw = f"{where}: [[model]] #{i + 1}"
        _keys(t, _MODEL, mw)
        name = t.get("name")
        if not isinstance(name, str) or not name:
            raise FleetScenarioError(f"{mw}: 'name' must be a non-empty string")
        if name in names:
            raise FleetScenarioError(f"{mw}: model '{name}' is listed twice")
        names.add(name)
        mw = f"{where}: model '{name}'"
        sources = [k for k in ("binary", "latency_ms") if k in t]
        if len(sources) > 1:
            raise FleetScenarioError(f"{mw}: give 'binary' or 'latency_ms', not both")
        rng = t.get("target_ms")
        if (
            not isinstance(rng, list)
            or len(rng) != 2
            or not all(type(x) in (int, float) and x > 0 for x in rng)
            or rng[0] > rng[1]
        ):
            raise FleetScenarioError(
                f"{mw}: 'target_ms' must be [low, high] in ms, 0 < low <= high"
            )
        m = ModelMix(
            name,
            _number(t, "weight", mw, 1e-9, 1e9, 1.0),
            (float(rng[0]), float(rng[1])),
        )
        if "binary" in t:
            if not isinstance(t["binary"], str):
                raise FleetScenarioError(f"{mw}: 'binary' must be a path")
            m.binary = (path.parent / t["binary"]).resolve()
        elif "latency_ms" in t:
            lat = t["latency_ms"]
            if (
                not isinstance(lat, list)
                or not lat
                or not all(type(x) in (int, float) and x > 0 for x in lat)
            ):
                raise FleetScenarioError(
                    f"{mw}: 'latency_ms' must be a list of positive latencies (ms) on 1..N cores"
                )
            m.latency_ms = [float(x) for x in lat]
        else:
            m.bundled = name
        sc.models.append(m)
    return sc


__all__ = ["FleetScenario", "FleetScenarioError", "ModelMix", "load_fleet_scenario"]
