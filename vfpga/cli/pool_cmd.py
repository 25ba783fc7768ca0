"""``vfpga pool simulate SCENARIO.toml``: a multi-tenant scenario on the timing model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    from vfpga.experiments.models import compiled_model
    from vfpga.fileio import check_writable
    from vfpga.runtime.scenario import load_scenario, simulate

    console = Console(width=max(Console().width, 120))
    sc = load_scenario(scenario)
    out = check_writable(plot or scenario.with_suffix(".timeline.png"))
    reports = simulate(sc, log=None if quiet else console.print,
                       compile_model=lambda name, hw: compiled_model(name, hw).vfb)
    table = Table(title=f"{scenario.name}: {sc.duration_ms:g} ms on {sc.hw}")
    for col in ("tenant", "model", "inferences", "inferences/s", "mean latency ms",
                "p99 latency ms", "reconfigurations ms", "note"):
        table.add_column(col)
    for r in reports.values():
        table.add_row(r.name, r.model, str(r.completed), f"{r.throughput:.1f}",
                      f"{r.mean_latency_ms:.3f}", f"{r.p99_latency_ms:.3f}",
                      ", ".join(f"{x:.3f}" for x in r.reconfig_ms) or "-", r.error or "")
    console.print(table)
    timeline_plot(sc, reports, out)
    console.print(f"timeline plot: {out}")
    return reports


def timeline_plot(sc: Any, reports: dict[str, Any], path: Path) -> None:
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
