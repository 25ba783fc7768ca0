"""``vfpga quantize IN.onnx -o OUT.qdq.onnx``: normalize an fp32 ONNX model and quantize it
to QDQ int8 with onnxruntime (see docs/quantization.md)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import click

from vfpga.cli.options import calib_options, calibration
from vfpga.fileio import atomic_write, check_writable
from vfpga.quant.index_inputs import has_index_input


def _write_atomic(model: object, out: Path) -> None:
    """Save ``model`` to ``out`` atomically (:func:`vfpga.fileio.atomic_write`)."""
    import onnx

    assert isinstance(model, onnx.ModelProto)
    atomic_write(out, model.SerializeToString())


@click.command("quantize")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output QDQ ONNX file.")
@calib_options
def quantize(model: Path, output: Path, **calib: Any) -> None:
    """Normalize MODEL (fp32 ONNX) and quantize it to int8 QDQ ONNX."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from vfpga.frontend import normalize_with_report
    from vfpga.quant import quantize_model

    cal = calibration(**calib)
    if output.parent != Path() and not output.parent.exists():
        output.parent.mkdir(parents=True, exist_ok=True)  # -o may name a new folder
    check_writable(output)
    console = Console(stderr=True)
    norm, report = normalize_with_report(model)
    rw = ", ".join(f"{k} {v}" for k, v in sorted(report.rewrites.items()) if v)
    console.print(f"normalized {model}: {sum(report.ops.values())} nodes"
                  + (f" ({rw})" if rw else ""), soft_wrap=True, highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)
    # onnxruntime's quantizer logs advice about pre-processing on every run
    logging.getLogger().setLevel(logging.ERROR)
    with Progress(TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("calib", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        q = quantize_model(norm, **cal.kwargs(), progress=progress)
    _write_atomic(q, output)
    ops = Counter(n.op_type for n in q.graph.node)
    compute = {k: v for k, v in ops.items() if k not in ("QuantizeLinear", "DequantizeLinear")}
    click.echo(f"wrote {output}")
    click.echo(f"  quantized nodes: {sum(compute.values())} "
               f"({', '.join(f'{k} {v}' for k, v in sorted(compute.items()))})")
    click.echo(f"  QuantizeLinear {ops.get('QuantizeLinear', 0)}, "
               f"DequantizeLinear {ops.get('DequantizeLinear', 0)}")
    click.echo(f"  calibration: {cal.describe(has_index_input(norm))}")
