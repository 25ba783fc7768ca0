"""``vfpga models list [--stats]`` and ``vfpga models export NAME -o FILE [--seed S]``."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.table import Table


@click.group()
def models() -> None:
    """The bundled benchmark models (built paper networks and the onnx wheel's zoo graphs),
    exported as ONNX with seeded random weights."""


@models.command("list")
@click.option(
    "--stats",
    is_flag=True,
    help="Also export each model (seed 0) to count parameters and GMACs (slower).",
)
def list_cmd(stats: bool) -> None:
    """List the models that `vfpga models export` knows."""
    from vfpga.models import export_model, list_models
    from vfpga.models.stats import model_stats

    t = Table(title="vfpga models (batch 1, NCHW, float32)")
    t.add_column("name", no_wrap=True)
    t.add_column("source", no_wrap=True)
    t.add_column("paper")
    t.add_column("input", no_wrap=True)
    t.add_column("output")
    t.add_column("opset")
    t.add_column("description")
    if stats:
        t.add_column("params (M)", justify="right")
        t.add_column("GMACs", justify="right")
    for info in list_models():
        row = [
            info.name,
            info.source,
            "yes" if info.paper else "",
            "x".join(map(str, info.input_shape[1:])),
            f"{'x'.join(map(str, info.output_shape[1:]))} {info.output_kind}",
            str(info.opset),
            info.description,
        ]
        if stats:
            st = model_stats(export_model(info.name, 0))
            row += [f"{st.params / 1e6:.2f}", f"{st.gmacs:.2f}"]
        t.add_row(*row)
    # a terminal wraps the table to its width; a pipe or a file gets whole lines (rich's
    # default of 80 columns would wrap every description into a word per line)
    Console(width=None if sys.stdout.isatty() else 200).print(t)


@models.command("export")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="The .onnx file to write (written atomically).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of the random weights.",
)
def export_cmd(name: str, output: str, seed: int) -> None:
    """Export model NAME (see `vfpga models list`) with weights drawn from SEED."""
    from vfpga.models import get_model_info, save_model

    get_model_info(name)  # unknown names fail before any work
    t0 = time.perf_counter()
    path = save_model(name, output, seed=seed)
    click.echo(
        f"wrote {path} ({name}, seed {seed}, {path.stat().st_size / 1e6:.1f} MB, "
        f"{time.perf_counter() - t0:.1f} s)"
    )
