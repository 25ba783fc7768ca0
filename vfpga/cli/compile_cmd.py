"""``vfpga compile`` and ``vfpga check``."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vfpga.errors import VfpgaError
from vfpga.hw import DEFAULT_HW, HardwareConfig, HardwareConfigError, load_hw

_calib_options = [
    click.option("--hw", "hw_name", default=DEFAULT_HW, show_default=True,
                 help="Hardware preset or configuration JSON."),
    click.option("--cores", default=1, show_default=True, type=int,
                 help="Logical cores to compile for (the dispatch table; re-target later "
                      "with vfpga realloc)."),
    click.option("--calib-dir", type=click.Path(file_okay=False, path_type=Path),
                 help="Calibrate an fp32 model on the images in this folder."),
    click.option("--calib-random", type=int, default=None,
                 help="Calibrate an fp32 model on N random normal inputs (default 16)."),
    click.option("--seed", default=0, show_default=True, help="Seed of the calibration."),
    click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=1x3x640x640",
                 help="Fix the dimensions of graph input NAME (dynamic ones included)."),
]


def calib_options(f):
    for opt in reversed(_calib_options):
        f = opt(f)
    return f


def _hw(name: str) -> HardwareConfig:
    try:
        return load_hw(name)
    except HardwareConfigError as exc:
        raise VfpgaError(str(exc)) from None


def _compile(model: Path, hw: HardwareConfig, cores: int, calib_dir: Path | None,
             calib_random: int | None, seed: int, console: Console,
             pipeline: str = "engine",
             input_shape: tuple[str, ...] = ()):
    from vfpga.frontend.model_checks import parse_input_shapes
    from vfpga.frontend.pipeline import is_qdq_model, read_model

    shapes = parse_input_shapes(input_shape)

    if calib_dir is not None and calib_random is not None:
        raise VfpgaError("give either --calib-dir or --calib-random, not both")
    if not 1 <= cores <= hw.num_cores:
        raise VfpgaError(f"--cores {cores}: {hw.name} has {hw.num_cores} cores")
    proto, _ = read_model(model)
    calib = "dir" if calib_dir is not None else "random"
    n_random = calib_random or 16
    if is_qdq_model(proto):
        console.print(f"{model}: a QDQ model; used as it is (no quantization)")
    else:
        what = (f"the images in {calib_dir}" if calib_dir is not None
                else f"{n_random} random normal inputs (seed {seed})")
        console.print(f"[yellow]warning[/yellow]: {model} is an fp32 model: quantizing with "
                      f"onnxruntime quantize_static (QDQ, per-channel int8 weights), "
                      f"calibration on {what}")
    from vfpga.flow import compile_file

    # onnxruntime's quantizer logs a generic "consider pre-processing" hint on the root
    # logger for every model; our normalization already does what it suggests.
    logging.getLogger().setLevel(logging.ERROR)
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"
                  "/{task.total}"), TimeElapsedColumn(), console=console,
                  transient=True) as prog:
        job = prog.add_task("importing and quantizing", total=None)

        def progress(what: str, i: int, n: int) -> None:
            prog.update(job, description=what[:60], completed=i, total=n)

        loaded, res = compile_file(model, hw, cores, calib=calib, num_random=n_random,
                                   calib_dir=calib_dir, seed=seed, progress=progress,
                                   pipeline=pipeline, input_shapes=shapes)
    return loaded, res, time.perf_counter() - t0


def placement_table(res, hw: HardwareConfig, cores: int) -> Table:
    """Layers and MACs on the accelerator vs on the host."""
    from vfpga.frontend.qgraph import QConcat, QHostOp

    g = res.plan.graph
    kinds = Counter(lc.spec.kind for lc in res.layers)
    macs = sum(lc.spec.macs for lc in res.layers)
    host = [n for n in g.nodes if isinstance(n, QHostOp)]
    concats = sum(isinstance(n, QConcat) for n in g.nodes)
    t = Table(title=f"placement ({hw.name}, {cores} core(s))")
    t.add_column("where")
    t.add_column("layers", justify="right")
    t.add_column("MACs", justify="right")
    t.add_column("what")
    t.add_row("accelerator", str(len(res.layers)), f"{macs:,}",
              ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    t.add_row("free (views)", str(concats), "0", "concatenations written in place")
    host_types = Counter(n.op_type for n in host)
    t.add_row("host CPU", str(len(host)), "0 (not MAC work)",
              ", ".join(f"{v} {k}" for k, v in sorted(host_types.items())) or "-")
    return t


@click.command("compile")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .vfb binary to write.")
@calib_options
@click.option("--pipeline", type=click.Choice(["engine", "ir"]), default="engine",
              show_default=True, help="'ir' runs the xDSL pass pipeline (dnn -> ifp -> isa, "
              "verified at every stage); same bytes, slower.")
def compile_(model: Path, output: Path, hw_name: str, cores: int, calib_dir: Path | None,
             calib_random: int | None, seed: int, input_shape: tuple[str, ...],
             pipeline: str) -> None:
    """Compile an ONNX MODEL (fp32 or QDQ) into an accelerator binary."""
    from vfpga.backend.binary import write_vfb
    from vfpga.fileio import check_writable

    console = Console(stderr=True)
    hw = _hw(hw_name)
    check_writable(output)
    _loaded, res, secs = _compile(model, hw, cores, calib_dir, calib_random, seed, console,
                                  pipeline, input_shape)
    write_vfb(output, res.vfb)
    out = Console()
    out.print(placement_table(res, hw, cores))
    for note in res.plan.notes:
        out.print(f"note: {note}")
    cyc = res.predicted_cycles
    n_opts = sum(len(lc.options) for lc in res.layers)
    out.print(f"wrote {output}: {output.stat().st_size:,} bytes, {res.vfb.num_insns:,} "
              f"instructions, {len(res.vfb.ifps):,} IFPs in {n_opts} tiling candidates over "
              f"{len(res.layers)} layers")
    out.print(f"predicted latency on {cores} core(s): {cyc:,} cycles = "
              f"{cyc / (hw.clock_mhz * 1e3):.3f} ms at {hw.clock_mhz:g} MHz; compile "
              f"{secs:.2f} s")


@click.command("check")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@calib_options
@click.option("--num-inputs", default=1, show_default=True,
              help="Random inputs to emulate and compare.")
@click.option("--ort-inputs", default=8, show_default=True,
              help="Random inputs for the reference vs onnxruntime comparison.")
@click.option("--min-cosine", default=0.999, show_default=True,
              help="Fail when the reference's cosine similarity with onnxruntime is lower "
                   "(the frontend's bar; with uint8 activations the reference reproduces "
                   "onnxruntime bit for bit, see docs/conformance.md).")
@click.option("--all-layers", is_flag=True, help="Print every layer, not only a summary.")
def check(model: Path, hw_name: str, cores: int, calib_dir: Path | None,
          calib_random: int | None, seed: int, input_shape: tuple[str, ...], num_inputs: int,
          ort_inputs: int, min_cosine: float, all_layers: bool) -> None:
    """Quantize if needed, compile, emulate, and compare the emulator's bytes with the
    integer reference (every layer) and the reference with onnxruntime. Fails (exit 1)
    when any layer's bytes differ, or the cosine with onnxruntime is below --min-cosine."""
    from vfpga.flow import check_one
    from vfpga.reference.compare import compare_with_ort, random_inputs

    console = Console()
    hw = _hw(hw_name)
    loaded, res, secs = _compile(model, hw, cores, calib_dir, calib_random, seed,
                                 Console(stderr=True), input_shape=input_shape)
    console.print(f"compiled in {secs:.2f} s for {cores} core(s) of {hw.name}")
    failed = False
    xs = random_inputs(loaded.qdq, max(num_inputs, 1), seed=seed + 1000)
    for k, x in enumerate(xs):
        rep = check_one(res, hw, x, list(range(cores)))
        bad = rep.first_mismatch
        t = Table(title=f"input {k}: emulator vs integer reference "
                        f"({rep.emulate_seconds:.2f} s emulated)")
        for col in ("#", "layer", "kind", "tensor", "identical", "max |diff|"):
            t.add_column(col)
        shown = rep.layers if all_layers else [lc for lc in rep.layers if not lc.ok][:1]
        for lc in shown:
            mark = "[red]" if not lc.ok else ""
            t.add_row(str(lc.index), lc.name, lc.kind, lc.tensor,
                      f"{mark}{100 * lc.identical:.3f}%", str(lc.max_diff))
        if shown:
            console.print(t)
        if rep.ok:
            console.print(f"[green]input {k}: all {len(rep.layers)} layer outputs and the "
                          "graph outputs are byte-identical to the integer reference[/green]")
        else:
            failed = True
            where = (f"first mismatch at layer {bad.index} '{bad.name}' ({bad.kind}): "
                     f"{100 * bad.identical:.3f}% identical, max |diff| {bad.max_diff}"
                     if bad else "graph outputs differ")
            console.print(f"[red]input {k}: MISMATCH: {where}[/red]")
    cmp = compare_with_ort(loaded.graph, loaded.qdq,
                           random_inputs(loaded.qdq, ort_inputs, seed=seed + 2000),
                           onnx_int8=loaded.lowered.onnx_int8, fp32_model=loaded.fp32)
    same = (f", identical int8 outputs {100 * cmp.identical_int8:.2f}%"
            if cmp.identical_int8 is not None else "")
    console.print(f"reference vs onnxruntime (same QDQ model, {cmp.num_inputs} inputs): cosine "
                  f"min {cmp.cosine_min:.5f} mean {cmp.cosine_mean:.5f}, arg-max agreement "
                  f"{100 * cmp.argmax_agreement:.1f}%{same}")
    if cmp.fp32_cosine_mean is not None:
        console.print(f"reference vs fp32 model: cosine mean {cmp.fp32_cosine_mean:.5f}")
    bar = "meets" if cmp.cosine_min >= 0.999 and cmp.argmax_agreement >= 0.99 else "misses"
    console.print(f"the frontend bar (cosine >= 0.999, same arg-max on >= 99%): {bar} it on "
                  f"these inputs (docs/conformance.md: every bundled model meets it)")
    if cmp.cosine_min < min_cosine:
        failed = True
        console.print(f"[red]cosine with onnxruntime {cmp.cosine_min:.5f} < {min_cosine}[/red]")
    if failed:
        raise SystemExit(1)
    console.print("[green]check passed[/green]")
