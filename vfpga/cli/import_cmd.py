"""``vfpga import MODEL.onnx [-o OUT.mlir] [--calib-random N | --calib-dir DIR] [--seed S]
[--elide/--no-elide]``.

Imports an ONNX model (fp32, quantized by calibration, or QDQ int8) through
``vfpga.frontend.pipeline.load_qgraph``, converts the quantized graph to the ``dnn``
dialect, verifies it and prints the IR (weights as hex bytes; on a terminal, constants
over 64 bytes elided) or writes it, complete, atomically.
"""

from __future__ import annotations

import sys
from io import StringIO
from pathlib import Path
from typing import Any

import click

from vfpga.cli.options import calib_options, calibration, input_shape_option
from vfpga.errors import VfpgaError
from vfpga.fileio import atomic_write, check_writable

ELIDE_BYTES = 64
"""Constants longer than this print elided on a terminal (``--elide``)."""


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
@calib_options
@input_shape_option
@click.option(
    "--elide/--no-elide",
    default=None,
    help=f"Print constants (weights, long parameter arrays) over {ELIDE_BYTES} bytes as "
    '"<elided N bytes>" (default: only when printing to a terminal; such text does not '
    "parse back). -o always writes everything.",
)
def import_(
    model: Path,
    output: Path | None,
    input_shape: tuple[str, ...],
    elide: bool | None,
    **calib: Any,
) -> None:
    """Import the ONNX MODEL and print its `dnn` IR (or write it with -o).

    A QDQ int8 model is imported as it is; an fp32 model is first quantized (calibration
    options apply only to it).
    """
    from xdsl.utils.exceptions import VerifyException

    from vfpga.dialects.dnn_convert import qgraph_to_module
    from vfpga.frontend.model_checks import parse_input_shapes
    from vfpga.frontend.pipeline import load_qgraph


    cal = calibration(**calib)
    if output is not None:
        check_writable(output)
    graph, _qdq_model = load_qgraph(str(model), **cal.kwargs(),  # FrontendError passes through
                                    input_shapes=parse_input_shapes(input_shape) or None)
    module = qgraph_to_module(graph)
    try:
        module.verify()
    except VerifyException as exc:
        raise VfpgaError(f"{model}: the imported dnn graph does not verify: {exc}") from None
    if output is None:
        if elide is None:
            elide = sys.stdout.isatty()
        if elide:
            from vfpga.dialects.dnn import eliding_constants

            with eliding_constants(ELIDE_BYTES):
                text = module_text(module)
        else:
            text = module_text(module)
        click.echo(text, nl=False)
    else:
        write_atomic(output, module_text(module))
        click.echo(f"wrote {output} ({len(graph.nodes)} nodes)", err=True)
