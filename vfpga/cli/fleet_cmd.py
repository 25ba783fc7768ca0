"""``vfpga fleet serve`` (many accelerator nodes on Ray behind the KServe v2 front of
``vfpga serve``) and ``vfpga fleet simulate SCENARIO.toml`` (the controller at cloud
scale on the timing model); docs/fleet.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vfpga.cli.serve_cmd import front_options, front_setup, run_server
from vfpga.errors import VfpgaError


@click.group()
def fleet() -> None:
    """A fleet of accelerator nodes (one pool each) on Ray."""


@fleet.command("serve")
@front_options
@click.option(
    "--nodes",
    default=3,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Accelerator nodes (Ray actors claiming fpga: 1 each).",
)
@click.option(
    "--ray-address",
    default=None,
    help="Join this Ray cluster (default: start one on this machine with "
    "--nodes 'fpga' resources).",
)
def serve(
    repository: Path,
    state_dir: Path,
    hw_name: str,
    host: str,
    port: int,
    operator_token_file: Path | None,
    request_timeout: float,
    max_body_mib: int,
    nodes: int,
    ray_address: str | None,
) -> None:
    """Serve the repository's models to their tenants from a fleet of nodes (KServe v2,
    the same repository and tokens as `vfpga serve`; SIGTERM drains)."""
    from vfpga.fleet.cluster import start_ray, stop_ray
    from vfpga.fleet.controller import fleet_backend
    from vfpga.serve.app import Server

    hw, op = front_setup(hw_name, operator_token_file)
    start_ray(nodes, ray_address)
    try:
        run_server(
            lambda: Server(
                repository,
                state_dir,
                hw,
                "fixed",
                op,
                request_timeout,
                max_body_mib << 20,
                backend=fleet_backend(nodes),
            ),
            host,
            port,
            request_timeout,
            "vfpga fleet",
            f", {nodes} node(s)",
        )
    finally:
        stop_ray()


@fleet.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the plots and the JSON summary (default: beside SCENARIO).",
)
def simulate(scenario: Path, out: Path | None) -> None:
    """Run SCENARIO (nodes, tenant arrivals, resizes, departures, node failures) on the
    timing model: print utilization, latency-target attainment, placement quality and
    the controller's decision time per event; write plots."""
    from vfpga.experiments.models import cache_dir, compiled_model
    from vfpga.fileio import atomic_write, check_writable
    from vfpga.fleet.scenario import load_fleet_scenario
    from vfpga.fleet.simulate import resolve_tables, scenario_hw, simulate_fleet

    sc = load_fleet_scenario(scenario)
    folder = out or scenario.parent
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VfpgaError(f"--out {out}: cannot create the folder: {exc.strerror}") from None
    stem = scenario.stem
    paths = {
        k: check_writable(folder / f"{stem}_{k}")
        for k in ("timeline.png", "decisions.png", "summary.json")
    }
    tables = resolve_tables(
        sc,
        scenario_hw(sc),
        lambda name, hw: compiled_model(name, hw).vfb,
        cache_dir() / "fleet-latency-tables.json",
        lambda msg: click.echo(msg, err=True),
    )
    rep = simulate_fleet(sc, tables)
    for line in report_lines(rep):
        click.echo(line)
    timeline_plot(rep, paths["timeline.png"], scenario.name)
    decisions_plot(rep, paths["decisions.png"], scenario.name)
    atomic_write(paths["summary.json"], json.dumps(rep.summary(), indent=1) + "\n")
    for p in paths.values():
        click.echo(f"wrote {p}")


def report_lines(rep: Any) -> list[str]:
    """The printed report of a fleet simulation."""
    c = rep.counts
    return [
        f"fleet: {rep.nodes} nodes x {rep.cores_per_node} cores; {rep.events} events "
        f"({c['arrivals']} arrivals, {c['resizes']} resizes, {c['departures']} departures, "
        f"{c['node_failures']} node failures) over {rep.sim_seconds:.0f} s simulated, "
        f"in {rep.wall_seconds:.2f} s",
        f"placed at their target's cores {c['placed']}, below it {c['degraded']}, "
        f"refused {c['refused']}; resizes in place {c['resized_in_place']}, migrated "
        f"{c['migrated']}, placed {c['resize_placed']}, refused {c['resize_refused']}; "
        f"re-placed after node failures {c['re_placed']}, dropped {c['dropped']}",
        f"utilization {rep.utilization:.3f}; latency-target attainment {rep.attainment:.3f}; "
        f"placement quality (allocated / fluid bound min(demand, capacity)) "
        f"{rep.fluid_quality:.3f}; arrivals placed on their target's cores / arrivals a "
        f"fluid fleet had room for {rep.admission_quality:.3f}",
        f"placements on the fewest DDR banks {rep.min_bank_share:.3f}",
        f"controller decision per event: median {rep.decision_median_us:.1f} us, p99 "
        f"{rep.decision_p99_us:.1f} us, max {rep.decision_max_us:.1f} us"
        + "".join(f"; {k} {v['median']:.1f} us" for k, v in rep.decision_us.items()),
    ]


def timeline_plot(rep: Any, path: Path, title: str) -> None:
    """Allocated cores against the fluid bound and the capacity (top), and the share of
    placed tenants meeting their latency target (bottom), over simulated time."""
    from vfpga.experiments.common import pyplot, save_figure

    plt = pyplot()
    s = rep.timeline
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    a1.plot(s["t"], s["capacity"], label="capacity (alive nodes)", color="0.5", ls="--")
    a1.plot(s["t"], s["fluid"], label="fluid bound min(demand, capacity)", color="tab:orange")
    a1.plot(s["t"], s["alloc"], label="allocated cores", color="tab:blue")
    a1.set_ylabel("cores")
    a1.legend(loc="lower right", fontsize=8)
    a1.set_title(f"{title}: {rep.nodes} nodes x {rep.cores_per_node} cores")
    a2.plot(s["t"], s["attain"], color="tab:green")
    a2.set_ylabel("placed tenants\nmeeting target")
    a2.set_ylim(0, 1.05)
    a2.set_xlabel("simulated time (s)")
    save_figure(fig, path)


def decisions_plot(rep: Any, path: Path, title: str) -> None:
    """The distribution (CDF) of the controller's decision time per event."""
    import numpy as np

    from vfpga.experiments.common import pyplot, save_figure

    plt = pyplot()
    xs = np.sort(np.asarray(rep.decisions_us))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, np.arange(1, len(xs) + 1) / max(1, len(xs)))
    ax.axvline(1000, color="tab:red", ls="--", label="1 ms")
    ax.set_xscale("log")
    ax.set_xlabel("controller decision per event (us)")
    ax.set_ylabel("share of events")
    ax.set_title(f"{title}: median {rep.decision_median_us:.1f} us")
    ax.legend(fontsize=8)
    save_figure(fig, path)
