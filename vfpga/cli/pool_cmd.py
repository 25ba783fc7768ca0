"""``vfpga pool simulate SCENARIO.toml``: a multi-tenant scenario on the timing model."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def pool() -> None:
    """The multi-tenant resource pool."""


@pool.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Timeline plot (PNG); default SCENARIO.timeline.png beside the file.")
@click.option("--quiet", is_flag=True, help="Do not print the event log.")
def simulate(scenario: Path, plot: Path | None, quiet: bool) -> None:
    """Run SCENARIO (tenants arriving, deploying, resizing, leaving; docs/runtime.md):
    print per-tenant throughput and latency and write a timeline plot."""
    run_scenario(scenario, plot, quiet)


def run_scenario(scenario: Path, plot: Path | None = None, quiet: bool = False) -> dict:
    from rich.console import Console
    from rich.table import Table

    from vfpga.runtime.scenario import load_scenario, simulate, timeline_plot

    console = Console(width=max(Console().width, 120))
    sc = load_scenario(scenario)
    reports = simulate(sc, log=None if quiet else console.print)
    table = Table(title=f"{scenario.name}: {sc.duration_ms:g} ms on {sc.hw}")
    for col in ("tenant", "model", "inferences", "inferences/s", "mean latency ms",
                "p99 latency ms", "reconfigurations ms", "note"):
        table.add_column(col)
    for r in reports.values():
        table.add_row(r.name, r.model, str(r.completed), f"{r.throughput:.1f}",
                      f"{r.mean_latency_ms:.3f}", f"{r.p99_latency_ms:.3f}",
                      ", ".join(f"{x:.3f}" for x in r.reconfig_ms) or "-", r.error or "")
    console.print(table)
    out = plot or scenario.with_suffix(".timeline.png")
    timeline_plot(sc, reports, out)
    console.print(f"timeline plot: {out}")
    return reports
