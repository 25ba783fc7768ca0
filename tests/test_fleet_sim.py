"""`vfpga fleet simulate` and the placement structure it shares with the live fleet: the
CLI from the user's side (report, plots, JSON; a bad scenario is one `error:` line, exit
2, nothing written), then the placer (best fit, buckets, the pool's bank rule, node
failure) and the simulation's accounting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from serve_util import HW, blob

from vfpga.cli.main import cli
from vfpga.fleet.placement import Placer, bank_counts
from vfpga.fleet.scenario import FleetScenarioError, load_fleet_scenario
from vfpga.fleet.simulate import cores_for, latency_table, resolve_tables, simulate_fleet
from vfpga.runtime.pool import ResourcePool

MOBILENET_MS = [9.95, 5.07, 3.66, 2.74, 2.30, 1.99, 1.74, 1.51, 1.51, 1.36, 1.36, 1.22, 1.22,
                1.02, 1.02, 0.87]  # fmt: skip


def scenario(tmp: Path, nodes: int = 50, events: int = 2000, extra: str = "") -> Path:
    p = tmp / "sc.toml"
    p.write_text(
        f"nodes = {nodes}\nevents = {events}\narrival_rate_per_s = 5\nmean_lifetime_s = 60\n"
        f"resize_probability = 0.3\nnode_failures_s = [20]\n{extra}\n"
        '[[model]]\nname = "m"\nweight = 2\ntarget_ms = [1.1, 6.0]\n'
        f"latency_ms = {MOBILENET_MS}\n"
    )
    return p


def test_cli_prints_the_figures_and_writes_plots_and_summary(tmp_path: Path) -> None:
    (tmp_path / "small.vfb").write_bytes(blob(1))
    sc = scenario(
        tmp_path,
        extra="",
    )
    sc.write_text(
        sc.read_text() + '[[model]]\nname = "small"\nbinary = "small.vfb"\ntarget_ms = [0.01, 1]\n'
    )
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["fleet", "simulate", str(sc), "--out", str(out)])
    assert r.exit_code == 0, r.output
    for phrase in ("50 nodes x 16 cores; 2000 events", "utilization", "attainment",
                   "fluid bound", "controller decision per event: median"):  # fmt: skip
        assert phrase in r.output
    assert sorted(p.name for p in out.iterdir()) == [
        "sc_decisions.png",
        "sc_summary.json",
        "sc_timeline.png",
    ]
    doc = json.loads((out / "sc_summary.json").read_text())
    assert doc["events"] == 2000 and doc["nodes"] == 50
    assert doc["tables_ms"]["small"] == pytest.approx(latency_table(_vfb(), HW))


def _vfb():  # type: ignore[no-untyped-def]
    from vfpga.backend.binary import from_bytes

    return from_bytes(blob(1), "small", HW)


@pytest.mark.parametrize(
    "text, message",
    [
        ("nodes = 1\nevents = 5\nbogus = 1\n", "unknown key(s) bogus"),
        ("nodes = 0\nevents = 5\n", "'nodes' must be an integer"),
        ("nodes = 2\nevents = 5\narrival_rate_per_s = 1\nmean_lifetime_s = 1\n",
         "give at least one [[model]] table"),
        ("nodes = 2\nevents = 5\narrival_rate_per_s = 1\nmean_lifetime_s = 1\n"
         '[[model]]\nname = "m"\ntarget_ms = [3, 1]\nlatency_ms = [1.0]\n', "'target_ms'"),
        ("nodes = 2\nevents = 5\narrival_rate_per_s = 1\nmean_lifetime_s = 1\n"
         '[[model]]\nname = "m"\ntarget_ms = [1, 3]\nlatency_ms = [1.0]\n',
         "'latency_ms' has 1 entries, the nodes have 16 cores"),
        ("nodes = 2\nevents = 5\narrival_rate_per_s = 1\nmean_lifetime_s = 1\n"
         '[[model]]\nname = "m"\ntarget_ms = [1, 3]\nbinary = "missing.vfb"\n', "missing.vfb"),
        ("nodes = [", "not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_scenario_is_one_error_line_and_writes_nothing(
    tmp_path: Path, text: str, message: str
) -> None:
    sc = tmp_path / "bad.toml"
    sc.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    r = CliRunner().invoke(cli, ["fleet", "simulate", str(sc), "--out", str(out)])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert str(sc) in lines[0] and "Traceback" not in r.output
    assert list(out.iterdir()) == []


def test_best_fit_uses_the_tightest_node_and_buckets_stay_consistent() -> None:
    p = Placer(3, 16, 4)
    p.take(0, "a", p.pick_banks(0, 10))  # node 0: 6 free
    p.take(1, "b", p.pick_banks(1, 13))  # node 1: 3 free
    assert p.best_fit(3) == 1 and p.best_fit(4) == 0 and p.best_fit(7) == 2
    assert p.best_fit(17) is None and p.most_free() == 2
    assert p.best_fit(3, exclude=1) == 0
    assert p.free_cores == 6 + 3 + 16 and p.capacity == 48
    assert p.release("a") == 0 and p.free_cores == 16 + 3 + 16
    assert p.remove_node(1) == ["b"] and p.capacity == 32 and "b" not in p.where
    assert p.best_fit(1) in (0, 2) and p.remove_node(1) == []


def test_the_placer_picks_banks_as_the_pool_picks_cores() -> None:
    """The simulation's bank choice (counts) follows the pool's core choice."""
    sizes = [3, 4, 1, 2, 5, 1]
    pool = ResourcePool(HW)
    p = Placer(1, HW.num_cores, HW.cores_per_bank)
    for i, n in enumerate(sizes):
        t = pool.create_tenant(f"t{i}", n)
        want = bank_counts(list(t.cores), HW.cores_per_bank, HW.ddr_banks)
        assert p.pick_banks(0, n) == want, (i, n)
        p.take(0, f"t{i}", want)


def test_cores_for_a_target() -> None:
    assert cores_for(MOBILENET_MS, 100.0) == (1, True)
    assert cores_for(MOBILENET_MS, 2.3) == (5, True)
    assert cores_for(MOBILENET_MS, 0.5) == (16, False)


def test_the_simulation_accounts_for_every_event(tmp_path: Path) -> None:
    sc = load_fleet_scenario(scenario(tmp_path, nodes=20, events=3000))
    tables = resolve_tables(sc, HW, None)
    rep = simulate_fleet(sc, tables)
    c = rep.counts
    assert rep.events == 3000
    assert c["arrivals"] == c["placed"] + c["degraded"] + c["refused"]
    assert c["resizes"] == (
        c["resized_in_place"] + c["migrated"] + c["resize_placed"] + c["resize_refused"]
    )
    assert c["arrivals"] + c["resizes"] + c["departures"] + c["node_failures"] == 3000
    assert c["node_failures"] == 1
    assert 0 < rep.utilization <= 1 and 0 < rep.fluid_quality <= 1 + 1e-9
    assert 0 <= rep.attainment <= 1 and 0 < rep.admission_quality <= 1
    assert c["refused"] > 0  # 20 nodes are too few for this load
    again = simulate_fleet(sc, tables)  # the same seed: the same decisions
    assert again.counts == rep.counts and again.utilization == rep.utilization


def test_a_large_enough_fleet_places_everyone_at_target(tmp_path: Path) -> None:
    sc = load_fleet_scenario(scenario(tmp_path, nodes=2000, events=1000))
    rep = simulate_fleet(sc, resolve_tables(sc, HW, None))
    c = rep.counts
    assert c["degraded"] == c["refused"] == c["dropped"] == 0
    assert rep.attainment == 1.0 and rep.admission_quality == 1.0
    assert rep.fluid_quality == pytest.approx(1.0)


def test_bundled_models_need_a_compiler(tmp_path: Path) -> None:
    p = tmp_path / "b.toml"
    p.write_text(
        "nodes = 2\nevents = 5\narrival_rate_per_s = 1\nmean_lifetime_s = 1\n"
        '[[model]]\nname = "mobilenet_v1"\ntarget_ms = [1, 3]\n'
    )
    with pytest.raises(FleetScenarioError, match="bundled models need a model compiler"):
        resolve_tables(load_fleet_scenario(p), HW, None)
