"""``vfpga import MODEL.onnx [-o OUT.mlir] [--calib-random N | --calib-dir DIR] [--seed S]``.

Imports an ONNX model (fp32, quantized by calibration, or QDQ int8) through
``vfpga.frontend.pipeline.load_qgraph``, converts the quantized graph to the ``dnn``
dialect, verifies it and prints the IR (weights as hex bytes) or writes it atomically.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import click

from vfpga.errors import VfpgaError
from vfpga.fileio import atomic_write, check_writable


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`vfpga.fileio.atomic_write`)."""
    atomic_write(path, text)


def module_text(module: Any) -> str:
    """The custom-format text of an xDSL module, ending with a newline."""
    from xdsl.printer import Printer

    out = StringIO()
    Printer(stream=out).print_op(module)
    out.write("\n")
    return out.getvalue()


@click.command("import")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the IR to this file (default: print it).",
)
@click.option(
    "--calib-random",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Quantize an fp32 model by calibrating on N random inputs (default 16).",
)
@click.option(
    "--calib-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Quantize an fp32 model by calibrating on the .npy inputs in this folder.",
)
@click.option("--seed", type=int, default=None, help="Seed of the random calibration inputs.")
@click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=1x3x640x640",
              help="Fix the dimensions of graph input NAME (dynamic ones included).")
def import_(
    model: Path,
    output: Path | None,
    calib_random: int | None,
    calib_dir: Path | None,
    seed: int | None,
    input_shape: tuple[str, ...],
) -> None:
    """Import the ONNX MODEL and print its `dnn` IR (or write it with -o).

    A QDQ int8 model is imported as it is; an fp32 model is first quantized (calibration
    options apply only to it).
    """
    from xdsl.utils.exceptions import VerifyException

    from vfpga.dialects.dnn_convert import qgraph_to_module
    from vfpga.frontend.model_checks import parse_input_shapes
    from vfpga.frontend.pipeline import load_qgraph

    if calib_random is not None and calib_dir is not None:
        raise click.UsageError("give either --calib-random or --calib-dir, not both")
    kwargs: dict[str, Any] = {}
    if calib_dir is not None:
        kwargs["calib"] = "dir"
        kwargs["calib_dir"] = calib_dir
    elif calib_random is not None:
        kwargs["calib"] = "random"
        kwargs["num_random"] = calib_random
    if seed is not None:
        kwargs["seed"] = seed
    if output is not None:
        check_writable(output)
    if input_shape:
        kwargs["input_shapes"] = parse_input_shapes(input_shape)
    graph, _qdq_model = load_qgraph(str(model), **kwargs)  # FrontendError passes through
    module = qgraph_to_module(graph)
    try:
        module.verify()
    except VerifyException as exc:
        raise VfpgaError(f"{model}: the imported dnn graph does not verify: {exc}") from None
    text = module_text(module)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_atomic(output, text)
        click.echo(f"wrote {output} ({len(graph.nodes)} nodes)", err=True)
