"""``vfpga demo``: the bundled demonstration run by ``make demo``.

Assembles the bundled multi-core sample program (``vfpga/examples/demo_2layer.s``: a 3x3
convolution split across 4 cores by output channel, a layer barrier, then 2x2 max pooling
split across 4 cores by width), runs it on the emulator next to the single-core program of
the same convolution (``conv_1core.s``, double-buffered), and prints both programs'
statistics and whether the multi-core output equals the single-core one byte for byte.
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
from vfpga.hw import load_hw


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


@click.command()
@click.option("--seed", default=3, show_default=True, help="Seed of the random input.")
def demo(seed: int) -> None:
    """Run the bundled demonstration on the emulator."""
    console = Console()
    hw = load_hw("pool16")
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
