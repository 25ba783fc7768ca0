"""``vfpga compile`` and ``vfpga check``."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vfpga.cli.options import (
    Calibration,
    calib_options,
    calibration,
    input_shape_option,
    target_options,
)
from vfpga.errors import VfpgaError
from vfpga.frontend.qgraph import SEGMENT_OP
from vfpga.hw import HardwareConfig, HardwareConfigError, load_hw


def _hw(name: str) -> HardwareConfig:
    try:
        return load_hw(name)
    except HardwareConfigError as exc:
        raise VfpgaError(str(exc)) from None


def _compile(model: Path, hw: HardwareConfig, cores: int, cal: Calibration,
             console: Console,
             passes: str | None = None, print_ir_after: tuple[str, ...] = (),
             keep_model: bool = True, input_shape: tuple[str, ...] = ()):
    """Compile ``model`` (ONNX or ``.mlir``) through the pass pipeline with a progress
    bar; returns ``(loaded model or None, CompileResult, seconds)``."""
    from vfpga.frontend.model_checks import parse_input_shapes

    shapes = parse_input_shapes(input_shape)
    if shapes and model.suffix == ".mlir":
        raise VfpgaError("--input-shape applies to an ONNX model, not .mlir")
    if not 1 <= cores <= hw.num_cores:
        raise VfpgaError(f"--cores {cores}: {hw.name} has {hw.num_cores} cores")
    if model.suffix != ".mlir":
        from vfpga.frontend.normalize import is_qdq
        from vfpga.frontend.pipeline import read_model
        from vfpga.quant.index_inputs import has_index_input

        proto = read_model(model)[0]  # (not kept: it can be large)
        qdq, ids = is_qdq(proto), has_index_input(proto)
        del proto
        if qdq:
            console.print(f"{model}: a QDQ model; used as it is (no quantization)")
        else:
            console.print(f"[yellow]warning[/yellow]: {model} is an fp32 model: quantizing "
                          f"with onnxruntime quantize_static (QDQ, per-channel int8 "
                          f"weights), calibration on {cal.describe(ids)}")
    from vfpga.flow import compile_file

    # onnxruntime's quantizer logs a generic "consider pre-processing" hint on the root
    # logger for every model; our normalization already does what it suggests.
    logging.getLogger().setLevel(logging.ERROR)
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"
                  "/{task.total}"), TimeElapsedColumn(), console=console,
                  transient=True) as prog:
        job = prog.add_task("importing" if model.suffix == ".mlir"
                            else "importing and quantizing", total=None)

        def progress(what: str, i: int, n: int) -> None:
            prog.update(job, description=what[:60], completed=i, total=n)

        loaded, res = compile_file(model, hw, cores, **cal.kwargs(), progress=progress,
                                   passes=passes, print_ir_after=print_ir_after,
                                   keep_model=keep_model, input_shapes=shapes)
    return loaded, res, time.perf_counter() - t0


def placement_table(res, hw: HardwareConfig, cores: int) -> Table:
    """Layers and MACs on the accelerator vs on the host, read from the compiled module
    (``ifp.layer`` ops; host ops and views from its ``dnn.graph``)."""
    from vfpga.frontend.qgraph import QAdd, QConcat, QShuffle, QSlice

    g = res.plan.graph
    kinds = Counter(lr.kind for lr in res.layers)
    if kinds.pop("add", 0):  # element-wise layers by operation (add, mul, sub)
        kinds.update(n.op for n in g.nodes if isinstance(n, QAdd))
    macs = sum(lr.macs for lr in res.layers)
    host = res.host_ops
    views = Counter(k for n in g.nodes for k, cls in (
        ("concatenations written in place", QConcat), ("channel shuffles written in place",
         QShuffle), ("channel ranges read in place", QSlice)) if isinstance(n, cls))
    t = Table(title=f"placement ({hw.name}, {cores} core(s))")
    t.add_column("where")
    t.add_column("layers", justify="right")
    t.add_column("MACs", justify="right")
    t.add_column("what")
    t.add_row("accelerator", str(len(res.layers)), f"{macs:,}",
              ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    t.add_row("free (views)", str(sum(views.values())), "0",
              ", ".join(f"{v} {k}" for k, v in views.items()) or "-")
    host_types = Counter(n.op_type for n in host)
    host_macs = sum(int(n.attrs.get("macs", 0)) for n in host if n.op_type == SEGMENT_OP)
    t.add_row("host CPU", str(len(host)), f"{host_macs:,}",
              ", ".join(f"{v} {k}" for k, v in sorted(host_types.items())) or "-")
    return t


def host_segments(res) -> list:
    """The compiled module's host segments (``OnnxSegment`` host ops)."""
    return [n for n in res.host_ops if n.op_type == SEGMENT_OP]


def segment_table(res) -> Table | None:
    """Every host segment of the compiled module: its source nodes, their op types, why
    each is not on the accelerator, and its MACs (``None`` without segments)."""
    segs = host_segments(res)
    if not segs:
        return None
    t = Table(title="host segments (ONNX subgraphs run by onnxruntime)")
    for col in ("segment", "nodes", "op types", "why not on the accelerator"):
        t.add_column(col)
    t.add_column("MACs", justify="right")
    for n in segs:
        a = n.attrs
        t.add_row(n.name, "\n".join(a.get("nodes", [])), "\n".join(a.get("ops", [])),
                  "\n".join(a.get("reasons", [])), f"{int(a.get('macs', 0)):,}")
    return t


def strict_error(res) -> VfpgaError | None:
    """``--strict``: one error listing every node the host segments hold (``None`` when
    everything but Softmax/LRN runs on the accelerator)."""
    rows = []
    for n in host_segments(res):
        a = n.attrs
        rows += [f"'{nm}' ({op}): {why}" for nm, op, why in
                 zip(a.get("nodes", []), a.get("ops", []), a.get("reasons", []), strict=False)]
    if not rows:
        return None
    rows = list(dict.fromkeys(rows))
    return VfpgaError(f"--strict: {len(rows)} node(s) cannot run on the accelerator and "
                      f"would run on the host: {'; '.join(rows)}. Drop --strict to run them "
                      "on the host, or replace these ops in the model")


def timing_table(res) -> Table:
    """Seconds per pass (and verification, linking), like ``mlir-opt --mlir-timing``."""
    total = sum(s for _, s in res.timings)
    t = Table(title="pass timings")
    t.add_column("seconds", justify="right")
    t.add_column("share", justify="right")
    t.add_column("pass")
    for name, secs in res.timings:
        t.add_row(f"{secs:.3f}", f"{100 * secs / total:.1f}%" if total else "-", name)
    t.add_row(f"{total:.3f}", "100.0%", "total")
    return t


_pipeline_options = [
    click.option("-p", "--passes", "passes", metavar="SPEC", default=None,
                 help="Run this pass pipeline (xdsl-opt -p syntax, e.g. plugin passes) "
                      "instead of the default one; --hw/--cores then only check the "
                      "result (the spec's dnn-tile{hw=...} and ifp-select{cores=...} "
                      "decide)."),
    click.option("--print-ir-after", "print_ir_after", metavar="PASS|all", multiple=True,
                 help="Print the IR to stderr after this pass (repeatable; 'all': after "
                      "every pass)."),
]


def pipeline_options(f):
    for opt in reversed(_pipeline_options):
        f = opt(f)
    return f


@click.command("compile")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The .vfb binary to write.")
@target_options
@calib_options
@input_shape_option
@pipeline_options
@click.option("--time-passes", is_flag=True,
              help="Print the seconds spent in each pass, verification and linking.")
@click.option("--print-pipeline", is_flag=True,
              help="Print the default pass pipeline (for --hw/--cores) and exit.")
@click.option("--strict", is_flag=True,
              help="Fail (one error listing every such node) instead of running ops the "
                   "accelerator cannot run on the host.")
def compile_(model: Path | None, output: Path | None, hw_name: str, cores: int,
             input_shape: tuple[str, ...], passes: str | None,
             print_ir_after: tuple[str, ...], time_passes: bool,
             print_pipeline: bool, strict: bool, **calib: Any) -> None:
    """Compile MODEL into an accelerator binary through the pass pipeline.

    MODEL is an ONNX model (fp32: quantized first; or QDQ) or a .mlir file: the dnn IR
    of `vfpga import`, or a later stage of the pipeline (then give the remaining passes
    with -p)."""
    from vfpga.backend.binary import write_vfb
    from vfpga.fileio import check_writable

    if print_pipeline:
        from vfpga.driver import default_pipeline

        click.echo(default_pipeline(hw_name, cores))
        return
    if model is None or output is None:
        raise click.UsageError("give MODEL and -o OUTPUT (or --print-pipeline)")
    cal = calibration(**calib)
    if model.suffix == ".mlir" and (calib["calib_dir"] or calib["calib_random"]):
        raise VfpgaError("the calibration options apply to an fp32 ONNX model, not .mlir")
    console = Console(stderr=True)
    hw = _hw(hw_name)
    check_writable(output)
    _loaded, res, secs = _compile(model, hw, cores, cal, console, passes, print_ir_after,
                                  keep_model=False, input_shape=input_shape)
    if strict and (err := strict_error(res)) is not None:
        raise err
    if res.vfb.hw_fingerprint != hw.fingerprint and passes is not None:
        console.print(f"note: the pipeline tiled for hardware '{res.vfb.hw_name}'")
    write_vfb(output, res.vfb)
    cores = res.vfb.num_cores
    hwc = _hw_of_result(res, hw)
    out = Console()
    out.print(placement_table(res, hwc, cores))
    if (segs := segment_table(res)) is not None:
        out.print(segs)
    for note in res.notes:
        out.print(f"note: {note}")
    cyc = res.predicted_cycles
    n_opts = sum(lr.candidates for lr in res.layers)
    out.print(f"wrote {output}: {output.stat().st_size:,} bytes, {res.vfb.num_insns:,} "
              f"instructions, {len(res.vfb.ifps):,} IFPs in {n_opts} tiling candidates over "
              f"{len(res.layers)} layers")
    out.print(f"predicted latency on {cores} core(s): {cyc:,} cycles = "
              f"{cyc / (hwc.clock_mhz * 1e3):.3f} ms at {hwc.clock_mhz:g} MHz; compile "
              f"{secs:.2f} s")
    if time_passes:
        out.print(timing_table(res))


def _hw_of_result(res, hw: HardwareConfig) -> HardwareConfig:
    """The hardware the module was compiled for (it differs from ``--hw`` only when a
    ``-p`` spec names other hardware)."""
    from vfpga.passes.dnn_tile import hw_of

    return hw_of(res.module)


@click.command("check")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@target_options
@calib_options
@input_shape_option
@click.option("-p", "--passes", "passes", metavar="SPEC", default=None,
              help="Compile with this pass pipeline instead of the default one (see "
                   "vfpga compile -p).")
@click.option("--inputs", "inputs", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Check on the inputs in DIR instead of random ones: .npy arrays of the "
                   "model's input shape, and .png/.jpg/.jpeg/.bmp images (preprocessed with "
                   "--mean/--std/--layout); for an int64 id input, .npy integer ids. Every "
                   "file is emulated and compared; the "
                   "agreement with the fp32 model is reported (replaces --num-inputs and "
                   "--ort-inputs).")
@click.option("--num-inputs", default=1, show_default=True,
              help="Random inputs to emulate and compare.")
@click.option("--ort-inputs", default=8, show_default=True,
              help="Random inputs for the reference vs onnxruntime comparison.")
@click.option("--min-cosine", default=0.999, show_default=True,
              help="Fail when the reference's cosine similarity with onnxruntime is lower "
                   "(the frontend's bar; with uint8 activations the reference reproduces "
                   "onnxruntime bit for bit, see docs/conformance.md).")
@click.option("--all-layers", is_flag=True, help="Print every layer, not only a summary.")
def check(model: Path, hw_name: str, cores: int, input_shape: tuple[str, ...],
          inputs: Path | None, num_inputs: int, ort_inputs: int, min_cosine: float,
          all_layers: bool, passes: str | None, **calib: Any) -> None:
    """Quantize if needed, compile, emulate, and compare the emulator's bytes with the
    integer reference (every layer) and the reference with onnxruntime (and, for an fp32
    model, with the fp32 model). Fails (exit 1) when any layer's bytes differ, or the
    cosine with onnxruntime is below --min-cosine."""
    from vfpga.flow import check_one
    from vfpga.reference.compare import compare_with_ort, random_inputs

    console = Console()
    hw = _hw(hw_name)
    if model.suffix == ".mlir":
        raise VfpgaError(f"{model}: vfpga check needs the ONNX model (it compares with "
                         "onnxruntime); compile a .mlir with vfpga compile")
    cal = calibration(**calib, other_images="--inputs" if inputs is not None else None)
    named = _read_check_inputs(model, input_shape, inputs, cal) if inputs is not None else None
    loaded, res, secs = _compile(model, hw, cores, cal, Console(stderr=True), passes,
                                 input_shape=input_shape)
    assert loaded is not None
    cores = res.vfb.num_cores
    hw = _hw_of_result(res, hw)
    console.print(f"compiled in {secs:.2f} s for {cores} core(s) of {hw.name}")
    failed = False
    if named is None:
        xs = random_inputs(loaded.qdq, max(num_inputs, 1), seed=cal.seed + 1000)
        labels = [f"input {k}" for k in range(len(xs))]
    else:
        xs = [x for _, x in named]
        labels = [f"input {k} ({p.name})" for k, (p, _) in enumerate(named)]
    for label, x in zip(labels, xs, strict=True):
        rep = check_one(res, hw, x, list(range(cores)))
        bad = rep.first_mismatch
        t = Table(title=f"{label}: emulator vs integer reference "
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
            what = (f"all {len(rep.layers)} layer outputs and the" if rep.layers else
                    "no accelerator layer (every node runs on the host);")
            console.print(f"[green]{label}: {what} graph outputs are byte-identical to the "
                          "integer reference[/green]", highlight=False)
        else:
            failed = True
            where = (f"first mismatch at layer {bad.index} '{bad.name}' ({bad.kind}): "
                     f"{100 * bad.identical:.3f}% identical, max |diff| {bad.max_diff}"
                     if bad else "graph outputs differ")
            console.print(f"[red]{label}: MISMATCH: {where}[/red]", highlight=False)
    del res  # the binary and the memory plan are done with: not kept beside ORT's session
    ort_xs = random_inputs(loaded.qdq, ort_inputs, seed=cal.seed + 2000) if named is None \
        else xs
    cmp = compare_with_ort(loaded.graph, loaded.qdq, ort_xs,
                           onnx_int8=loaded.lowered.onnx_int8, fp32_model=loaded.fp32)
    for line in agreement_lines(cmp, real=named is not None, qdq=loaded.fp32 is None):
        console.print(line, highlight=False, soft_wrap=True)
    bar = "meets" if cmp.cosine_min >= 0.999 and cmp.argmax_agreement >= 0.99 else "misses"
    console.print(f"the frontend bar (cosine >= 0.999, same arg-max on >= 99%): {bar} it on "
                  f"these inputs (docs/conformance.md: every bundled model meets it)")
    if cmp.cosine_min < min_cosine:
        failed = True
        console.print(f"[red]cosine with onnxruntime {cmp.cosine_min:.5f} < {min_cosine}[/red]")
    if failed:
        raise SystemExit(1)
    console.print("[green]check passed[/green]")


def _read_check_inputs(model: Path, input_shape: tuple[str, ...], folder: Path,
                       cal: Calibration) -> list:
    """``--inputs DIR``: every input file of ``folder`` as ``(path, array)`` for the
    model's input shape (read before compiling, so that a bad file fails fast)."""
    from vfpga.frontend.model_checks import fix_input_shapes, parse_input_shapes
    from vfpga.frontend.pipeline import read_model
    from vfpga.quant.index_inputs import is_index_input, read_id_files
    from vfpga.quant.inputs import read_inputs

    m, source = read_model(model)
    m = fix_input_shapes(m, parse_input_shapes(input_shape), source)
    inits = {i.name for i in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in inits]
    if len(ins) != 1:
        raise VfpgaError(f"{source}: --inputs needs a model with one graph input (it has "
                         f"{len(ins)})")
    dims = ins[0].type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        raise VfpgaError(f"{source}: input '{ins[0].name}' has dynamic dimensions; fix them "
                         f"with --input-shape {ins[0].name}=1x3x224x224 (its real shape)")
    shape = tuple(d.dim_value for d in dims)
    if is_index_input(m, ins[0].name):  # int64 token ids: .npy ids within the table
        return read_id_files(folder, m, ins[0].name, shape, "--inputs")
    del m
    return read_inputs(folder, shape, cal.image_prep)


def agreement_lines(cmp, *, real: bool, qdq: bool) -> list[str]:
    """The check's summary of an :class:`~vfpga.reference.compare.OrtComparison`: the
    reference (= the emulator, byte for byte) against onnxruntime on the same QDQ model,
    and against the fp32 model (cosine, top-1 and top-5 agreement for a class vector)."""
    what = "real" if real else "random"
    same = (f", identical int8 outputs {100 * cmp.identical_int8:.2f}%"
            if cmp.identical_int8 is not None else "")
    top5 = (f", top-5 {100 * cmp.top5_agreement:.1f}%"
            if cmp.top5_agreement is not None else "")
    lines = [f"reference vs onnxruntime (same QDQ model, {cmp.num_inputs} {what} inputs): "
             f"cosine min {cmp.cosine_min:.5f} mean {cmp.cosine_mean:.5f}, arg-max "
             f"agreement {100 * cmp.argmax_agreement:.1f}%{top5}{same}"]
    if cmp.fp32_cosine_mean is not None:
        line = (f"reference vs fp32 model ({cmp.num_inputs} {what} inputs): cosine min "
                f"{cmp.fp32_cosine_min:.5f} mean {cmp.fp32_cosine_mean:.5f}")
        if cmp.fp32_top5_agreement is not None:
            line += (f", top-1 agreement {100 * cmp.fp32_argmax_agreement:.1f}%, top-5 "
                     f"agreement {100 * cmp.fp32_top5_agreement:.1f}%")
        if cmp.ort_fp32_cosine_mean is not None:
            line += f" (onnxruntime's QDQ run vs fp32: cosine mean {cmp.ort_fp32_cosine_mean:.5f})"
        lines.append(line)
    elif qdq and real:
        lines.append("no fp32 model to compare with: the model given is a QDQ model")
    return lines
