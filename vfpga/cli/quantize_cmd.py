"""``vfpga quantize IN.onnx -o OUT.qdq.onnx``: normalize an fp32 ONNX model and quantize it
to QDQ int8 with onnxruntime (see docs/quantization.md)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import click

from vfpga.errors import FrontendError
from vfpga.fileio import atomic_write, check_writable


def _write_atomic(model: object, out: Path) -> None:
    """Save ``model`` to ``out`` atomically (:func:`vfpga.fileio.atomic_write`)."""
    import onnx

    assert isinstance(model, onnx.ModelProto)
    atomic_write(out, model.SerializeToString())


@click.command("quantize")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output QDQ ONNX file.")
@click.option("--calib-dir", type=click.Path(path_type=Path), default=None,
              help="Calibrate with the .png/.jpg/.jpeg/.bmp images of this directory.")
@click.option("--calib-random", type=int, default=None, metavar="N",
              help="Calibrate with N seeded random-normal inputs (default 16).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random calibration inputs.")
def quantize(model: Path, output: Path, calib_dir: Path | None, calib_random: int | None,
             seed: int) -> None:
    """Normalize MODEL (fp32 ONNX) and quantize it to int8 QDQ ONNX."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from vfpga.frontend import normalize_with_report
    from vfpga.quant import quantize_model

    if calib_dir is not None and calib_random is not None:
        raise FrontendError("use either --calib-dir or --calib-random, not both")
    if calib_random is not None and calib_random < 1:
        raise FrontendError(f"--calib-random must be >= 1 (got {calib_random})")
    if calib_dir is not None and not calib_dir.is_dir():
        raise FrontendError(f"{calib_dir}: calibration directory does not exist")
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

        if calib_dir is not None:
            q = quantize_model(norm, calib="dir", calib_dir=calib_dir, seed=seed,
                               progress=progress)
        else:
            q = quantize_model(norm, calib="random", num_random=calib_random or 16, seed=seed,
                               progress=progress)
    _write_atomic(q, output)
    ops = Counter(n.op_type for n in q.graph.node)
    compute = {k: v for k, v in ops.items() if k not in ("QuantizeLinear", "DequantizeLinear")}
    click.echo(f"wrote {output}")
    click.echo(f"  quantized nodes: {sum(compute.values())} "
               f"({', '.join(f'{k} {v}' for k, v in sorted(compute.items()))})")
    click.echo(f"  QuantizeLinear {ops.get('QuantizeLinear', 0)}, "
               f"DequantizeLinear {ops.get('DequantizeLinear', 0)}")
    calib = f"{calib_dir} (images)" if calib_dir is not None else \
        f"{calib_random or 16} random inputs, seed {seed}"
    click.echo(f"  calibration: {calib}")
