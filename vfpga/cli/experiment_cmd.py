"""``vfpga experiment {reconfig,isolation,scaling,multitask,prediction,all} --out DIR``:
the paper's evaluation on the timing model (docs/RESULTS.md)."""

from __future__ import annotations

from pathlib import Path

import click

from vfpga.errors import VfpgaError

NAMES = ("reconfig", "isolation", "scaling", "multitask", "prediction", "all")


@click.command()
@click.argument("names", nargs=-1, required=True, type=click.Choice(NAMES))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for NAME.md, NAME.png and NAME.json.")
@click.option("--models", default=None,
              help="Comma-separated paper models (default: all four).")
@click.option("--mixes", type=int, default=None,
              help="Isolation: co-tenant mixes per share (default: all 20).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache of compiled binaries (default $VFPGA_EXPERIMENT_CACHE or "
                   "/tmp/vfpga-experiments).")
def experiment(names: tuple[str, ...], out: Path, models: str | None, mixes: int | None,
               cache: Path | None) -> None:
    """Reproduce the paper's Table 2 and Figures 4-6 (and the per-IFP prediction
    accuracy) on the emulator's timing model; each writes a plot and a markdown table
    with the paper's numbers side by side."""
    from vfpga.experiments.models import PAPER_MODELS
    from vfpga.experiments.paper import ExperimentConfig, run_experiments

    chosen = tuple(m.strip() for m in models.split(",")) if models else PAPER_MODELS
    bad = [m for m in chosen if m not in PAPER_MODELS]
    if bad:
        raise VfpgaError(f"unknown model(s) {bad}; the experiments use the paper models "
                         f"{', '.join(PAPER_MODELS)}")
    cfg = ExperimentConfig(out=out, models=chosen, mixes=mixes, cache=cache,
                           log=lambda s: click.echo(s, err=True))
    results = run_experiments(list(names), cfg)
    for name, res in results.items():
        click.echo(f"{name}: {res.get('metrics')}")
