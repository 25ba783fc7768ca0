"""``vfpga demo``: the bundled demonstration run by ``make demo``.

Part 1 (the ISA and the emulator): assembles the bundled multi-core sample program
(``vfpga/examples/demo_2layer.s``: a 3x3
convolution split across 4 cores by output channel, a layer barrier, then 2x2 max pooling
split across 4 cores by width), runs it on the emulator next to the single-core program of
the same convolution (``conv_1core.s``, double-buffered), and prints both programs'
statistics and whether the multi-core output equals the single-core one byte for byte.

Part 2 (the compiler): exports the bundled ResNet-50 (seeded random weights), quantizes
it with onnxruntime, compiles it, runs it on 4 cores of the emulator and checks it: every
layer's bytes against the integer reference, and the reference against onnxruntime.

Part 3 (the multi-tenant pool): the bundled scenario
``vfpga/examples/scenarios/four_tenants.toml`` on the timing model: four tenants arrive,
one leaves, one is resized (dynamic compile + context switch at a layer boundary); prints
per-tenant throughput and latency and the reconfiguration time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
import numpy as np
from rich.console import Console

from vfpga.backend.asm import assemble_file
from vfpga.cli.run_cmd import stats_table
from vfpga.emulator import Accelerator
from vfpga.errors import VfpgaError
from vfpga.examples.conv_samples import examples_dir, sample_input
from vfpga.hw import DEFAULT_HW, load_hw


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


@click.command()
@click.option("--seed", default=3, show_default=True, help="Seed of the random input.")
@click.option("--model", default="resnet50", show_default=True,
              help="Bundled model of part 2 ('none' to skip part 2).")
@click.option("--cores", default=4, show_default=True, help="Cores of part 2.")
@click.option("--scenario/--no-scenario", default=True, show_default=True,
              help="Part 3: the 4-tenant pool scenario.")
def demo(seed: int, model: str, cores: int, scenario: bool) -> None:
    """Run the bundled demonstration on the emulator."""
    console = Console()
    console.rule("part 1: hand-written multi-core program")
    _samples(console, seed)
    if model != "none":
        console.rule(f"part 2: {model} compiled for {cores} cores")
        _model(console, model, cores, seed)
    if scenario:
        console.rule("part 3: four tenants share the pool (one resize)")
        _pool(console)


def _pool(console: Console) -> None:
    """Part 3: the bundled 4-tenant scenario on the timing model (one resize)."""
    import tempfile
    from importlib import resources

    from vfpga.cli.pool_cmd import run_scenario

    src = resources.files("vfpga.examples") / "scenarios" / "four_tenants.toml"
    plot = Path("out") / "demo_timeline.png"  # kept for the user to look at
    plot.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "four_tenants.toml"
        path.write_text(src.read_text())
        run_scenario(path, plot)


def _model(console: Console, model: str, cores: int, seed: int) -> None:
    import logging
    import tempfile
    import time

    from vfpga.backend.binary import read_vfb, write_vfb
    from vfpga.cli.compile_cmd import placement_table
    from vfpga.flow import check_one, compile_file
    from vfpga.models import save_model
    from vfpga.reference.compare import compare_with_ort, random_inputs

    logging.getLogger().setLevel(logging.ERROR)
    hw = load_hw(DEFAULT_HW)
    with tempfile.TemporaryDirectory() as d:
        onnx_path = Path(d) / f"{model}.onnx"
        t0 = time.perf_counter()
        save_model(model, onnx_path, seed=0)
        console.print(f"exported {model} ({onnx_path.stat().st_size / 1e6:.1f} MB, "
                      f"{time.perf_counter() - t0:.1f} s); quantizing (16 random calibration "
                      "inputs) and compiling ...")
        t0 = time.perf_counter()
        loaded, res = compile_file(onnx_path, hw, cores, num_random=16, seed=0)
        vfb_path = Path(d) / f"{model}.vfb"
        write_vfb(vfb_path, res.vfb)
        vfb = read_vfb(vfb_path, hw)
        console.print(f"compiled in {time.perf_counter() - t0:.1f} s: {vfb_path.stat().st_size:,} "
                      f"bytes, {vfb.num_insns:,} instructions, {len(vfb.ifps):,} IFPs")
    console.print(placement_table(res, hw, cores))
    cyc = res.predicted_cycles
    console.print(f"predicted latency on {cores} cores: {cyc / (hw.clock_mhz * 1e3):.2f} ms at "
                  f"{hw.clock_mhz:g} MHz")
    x = random_inputs(loaded.qdq, 1, seed=seed)[0]
    rep = check_one(res, hw, x, list(range(cores)))
    bad = rep.first_mismatch
    if not rep.ok:
        raise VfpgaError(f"{model}: emulator differs from the reference at layer "
                         f"'{bad.name if bad else 'outputs'}'")
    console.print(f"[green]emulated on cores 0-{cores - 1} in {rep.emulate_seconds:.2f} s: all "
                  f"{len(rep.layers)} layer outputs byte-identical to the integer "
                  "reference[/green]")
    cmp = compare_with_ort(loaded.graph, loaded.qdq, random_inputs(loaded.qdq, 4, seed=seed),
                           onnx_int8=loaded.lowered.onnx_int8, fp32_model=loaded.fp32)
    console.print(f"reference vs onnxruntime on the same QDQ model (4 inputs): cosine min "
                  f"{cmp.cosine_min:.5f}, arg-max agreement {100 * cmp.argmax_agreement:.0f}%"
                  + (f", identical int8 outputs {100 * cmp.identical_int8:.1f}%"
                     if cmp.identical_int8 is not None else ""))


def _samples(console: Console, seed: int) -> None:
    hw = load_hw(DEFAULT_HW)
    folder = examples_dir()
    x = sample_input(seed)
    acc = Accelerator(hw)
    console.print(f"[bold]vfpga demo[/bold]: hardware {hw.name} ({hw.num_cores} cores x "
                  f"{hw.ops_per_cycle} ops/cycle), input int8 NHWC {x.shape} (seed {seed})")
    results = {}
    for name, cores in (("demo_2layer", [0, 1, 2, 3]), ("conv_1core", [4])):
        path = folder / f"{name}.s"
        vfb = assemble_file(path, hw=hw)
        console.print(f"assembled {Path(path).name}: {vfb.num_insns} instructions, "
                      f"{len(vfb.ifps)} IFPs, {vfb.num_layers} layers")
        task = acc.create_task(name, cores, vfb.ddr_size)
        task.load(vfb)
        task.write_tensor("input", x)
        res = acc.run([task])[name]
        if not res.ok:
            raise VfpgaError(f"{name}: {res.error}")
        console.print(stats_table(res, f"{name} on cores {cores}: {res.barriers} barriers, "
                                       f"last finished layer {res.last_finished_layer}"))
        results[name] = task
    conv4 = results["demo_2layer"].read_tensor("conv")
    conv1 = results["conv_1core"].read_tensor("conv")
    pool = results["demo_2layer"].read_tensor("pool")
    console.print(f"conv output, 4 cores: sha256 {_digest(conv4)}; 1 core: sha256 "
                  f"{_digest(conv1)}")
    console.print(f"pool output 1x8x8x32: sha256 {_digest(pool)}, min {int(pool.min())}, "
                  f"max {int(pool.max())}")
    pooled = conv1.reshape(1, 8, 2, 8, 2, -1).max(axis=(2, 4))
    same = np.array_equal(conv4, conv1) and np.array_equal(pool, pooled)
    if not same:
        raise VfpgaError("the 4-core program's output differs from the 1-core program's")
    console.print("[green]4-core output == 1-core output, byte for byte[/green]")
