"""``vfpga reference MODEL.onnx``: run the integer golden reference, optionally compared
with ONNX Runtime on the QDQ model (final outputs over many inputs, or layer by layer)."""

from __future__ import annotations

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from vfpga.errors import VfpgaError
from vfpga.fileio import atomic_write, check_writable, read_npy


def _load_input(path: str) -> np.ndarray:
    x = read_npy(path)
    if not np.issubdtype(x.dtype, np.floating):
        raise VfpgaError(f"{path}: the input must be a float array (got {x.dtype})")
    return x.astype(np.float32)


def _save_npy(path: str, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` as .npy, atomically."""
    atomic_write(path, lambda fh: np.save(fh, arr))


@click.command("reference")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False),
    help="Input tensor (.npy, float32 NCHW); default: a seeded normal random input.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the random input(s) and of random calibration.",
)
@click.option(
    "--calib-random",
    "calib_random",
    type=int,
    default=None,
    help="Calibrate an fp32 model on N random inputs (default 16).",
)
@click.option(
    "--calib-dir",
    type=click.Path(file_okay=False),
    help="Calibrate an fp32 model on the images of this folder.",
)
@click.option(
    "--compare-ort",
    is_flag=True,
    help="Compare with ONNX Runtime on the QDQ model over --num-inputs inputs.",
)
@click.option(
    "--num-inputs",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Random inputs for --compare-ort.",
)
@click.option(
    "--per-layer", is_flag=True, help="Compare every layer with ONNX Runtime on the input."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the dequantized first output (float32) to this .npy file.",
)
def reference(
    model: str,
    input_path: str | None,
    seed: int,
    calib_random: int | None,
    calib_dir: str | None,
    compare_ort: bool,
    num_inputs: int,
    per_layer: bool,
    output: str | None,
) -> None:
    """Run the integer golden reference on MODEL (fp32 ONNX: normalized, quantized and
    lowered; QDQ ONNX: lowered as it is) and print the top-5 classes."""
    from vfpga.frontend.pipeline import load_model
    from vfpga.reference.compare import (
        compare_layers,
        compare_with_ort,
        random_inputs,
    )
    from vfpga.reference.executor import FLOAT_SUFFIX, run_reference

    if calib_random is not None and calib_dir is not None:
        raise click.UsageError("use either --calib-random or --calib-dir, not both")
    if output:
        check_writable(output)
    console = Console()
    loaded = load_model(
        model,
        calib="dir" if calib_dir is not None else "random",
        num_random=calib_random if calib_random is not None else 16,
        calib_dir=calib_dir,
        seed=seed,
    )
    g = loaded.graph
    x = _load_input(input_path) if input_path else random_inputs(loaded.qdq, 1, seed)[0]
    res = run_reference(g, x, keep_all=False)
    out = res[g.outputs[0] + FLOAT_SUFFIX]
    console.print(
        f"[bold]{loaded.source}[/]: {len(g.nodes)} nodes; output '{g.outputs[0]}' "
        f"{tuple(out.shape)}"
    )
    flat = out.reshape(out.shape[0], -1)
    for b in range(flat.shape[0]):
        top = np.argsort(-flat[b], kind="stable")[:5]
        items = ", ".join(f"{int(i)}: {float(flat[b, i]):.4g}" for i in top)
        console.print(f"top-5{f' [{b}]' if flat.shape[0] > 1 else ''}: {items}")
    if output:
        _save_npy(output, out)
        console.print(f"wrote {output}")
    if compare_ort:
        inputs = random_inputs(loaded.qdq, num_inputs, seed + 1)
        c = compare_with_ort(
            g, loaded.qdq, inputs, onnx_int8=loaded.lowered.onnx_int8, fp32_model=loaded.fp32
        )
        t = Table(title=f"reference vs onnxruntime ({c.num_inputs} random inputs)")
        t.add_column("metric")
        t.add_column("value", justify="right")
        t.add_row("cosine (min / mean)", f"{c.cosine_min:.6f} / {c.cosine_mean:.6f}")
        t.add_row("arg-max agreement", f"{c.argmax_agreement:.2%}")
        if c.identical_int8 is not None:
            t.add_row("identical int8 outputs", f"{c.identical_int8:.2%}")
            t.add_row("max int8 difference", str(c.max_int8_diff))
        if c.fp32_cosine_mean is not None:
            t.add_row("reference vs fp32: cosine (mean)", f"{c.fp32_cosine_mean:.6f}")
            t.add_row("reference vs fp32: arg-max", f"{c.fp32_argmax_agreement:.2%}")
            t.add_row("onnxruntime QDQ vs fp32: cosine", f"{c.ort_fp32_cosine_mean:.6f}")
        console.print(t)
    if per_layer:
        rep = compare_layers(loaded.lowered, loaded.qdq, x)
        t = Table(title="per layer: reference vs onnxruntime (int8)")
        for col in ("#", "node", "op", "shape", "identical", "max diff", "alone", "alone max"):
            t.add_column(col, justify="right" if col not in ("node", "op") else "left")
        first_alone = next((i for i, d in enumerate(rep.layers) if d.isolated_max_diff), None)
        for i, d in enumerate(rep.layers):
            mark = " <- first mismatch" if i == rep.first_mismatch else ""
            style = "red" if d.max_abs_diff else None
            t.add_row(
                str(i),
                d.node + mark,
                d.op,
                "x".join(str(v) for v in d.shape),
                f"{d.identical:.3%}",
                str(d.max_abs_diff),
                "-" if d.isolated is None else f"{d.isolated:.3%}",
                "-" if d.isolated_max_diff is None else str(d.isolated_max_diff),
                style=style,
            )
        console.print(t)
        if rep.first_mismatch is None:
            console.print("every layer is identical to onnxruntime")
        else:
            d = rep.layers[rep.first_mismatch]
            console.print(
                f"first mismatch: layer {rep.first_mismatch} '{d.node}' ({d.op}): "
                f"{1 - d.identical:.4%} of values differ, by up to {d.max_abs_diff}"
            )
        if first_alone is not None:
            d = rep.layers[first_alone]
            console.print(
                f"first layer that differs on onnxruntime's own inputs ('alone'): "
                f"{first_alone} '{d.node}' ({d.op}), {1 - (d.isolated or 0):.4%} differ "
                "(near rounding ties onnxruntime's float32 kernels round differently; "
                "see docs/conformance.md)"
            )
