"""``vfpga run PROG.vfb [--input [NAME=]X.npy ...] [-o OUT.npy] [--cores SPEC]``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import IO

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from vfpga.backend.binary import VfbFile, read_vfb
from vfpga.cli.coresets import parse_cores
from vfpga.emulator import Accelerator, TaskResult
from vfpga.emulator.ddr import REGION_ALIGN
from vfpga.emulator.machine import TensorSpec
from vfpga.emulator.tensor_layout import (
    accepted_shapes,
    from_stored,
    ids_to_stored,
    index_bounds,
    to_stored,
    user_shape,
)
from vfpga.errors import EmulatorFault, VfpgaError
from vfpga.fileio import atomic_write, check_writable, read_npy
from vfpga.hw import HardwareConfigError, load_hw
from vfpga.quant.index_inputs import INDEX_DTYPE, random_indices


def _save_npy(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write one array as .npy or several as .npz, atomically."""

    def write(fh: IO[bytes]) -> None:
        if len(arrays) == 1 and path.suffix != ".npz":
            np.save(fh, next(iter(arrays.values())))
        else:
            np.savez(fh, **arrays)  # type: ignore[arg-type]

    atomic_write(path, write)


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30, "kb": 1000, "mb": 10**6, "gb": 10**9}


def parse_bytes(text: str, option: str) -> int:
    """A byte count such as ``4096``, ``256MiB`` or ``2GiB`` (binary units; kB/MB/GB are
    decimal)."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS or int(m.group(1)) < 1:
        raise VfpgaError(f"{option} {text}: expected a positive byte count such as 4096, "
                         "256MiB or 2GiB")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def input_array(path: Path, t: TensorSpec, bound: int | None = None) -> np.ndarray:
    """The ``--input`` array for tensor ``t`` in its stored layout. Users give tensors as
    the ONNX model shapes them (:func:`~vfpga.emulator.tensor_layout.user_shape`: NCHW for
    a feature map), as ``vfpga serve`` takes them and as ``--output`` writes them: a float
    array is quantized with the tensor's scale and zero point, an int8 array is taken as
    quantized already; both are rearranged into the stored layout (NHWC). An int64 id input
    takes integer ids within ``[-bound, bound)`` (``bound``: the rows of the table the ids
    index, :func:`~vfpga.emulator.tensor_layout.index_bounds`)."""
    arr = read_npy(path)
    nchw = (t.layout == "nhwc" and len(t.shape) == 4)
    want = user_shape(t)
    if t.dtype == INDEX_DTYPE:
        if tuple(arr.shape) not in accepted_shapes(t):
            raise VfpgaError(f"--input {path}: input '{t.name}' takes int64 ids of shape "
                             f"{'x'.join(map(str, want))}, got {'x'.join(map(str, arr.shape))}")
        return ids_to_stored(t, np.asarray(arr), bound, f"--input {path}")
    if arr.dtype.kind != "f" and arr.dtype != np.int8:
        raise VfpgaError(f"--input {path}: dtype {arr.dtype} is neither float (quantized) nor "
                         f"int8 (quantized already); both are {'NCHW ' if nchw else ''}"
                         f"{'x'.join(map(str, want))}")
    if tuple(arr.shape) not in accepted_shapes(t):
        kind = "a float" if arr.dtype.kind == "f" else "an int8"
        hint = (" (the stored NHWC layout? give it NCHW: x.transpose(0, 3, 1, 2))"
                if nchw and tuple(arr.shape) == tuple(t.shape) else "")
        raise VfpgaError(
            f"--input {path}: {kind} array must be {'NCHW ' if nchw else ''}"
            f"{'x'.join(map(str, want))} for input '{t.name}', got "
            f"{'x'.join(map(str, arr.shape))}{hint}"
        )
    return to_stored(t, arr)


def _parse_switch(spec: str, vfb: VfbFile, pool: int) -> tuple[int, list[int]]:
    """``LAYER:CORES`` of ``--switch-at``: a layer index or name, and a core set."""
    layer_s, sep, cores_s = spec.rpartition(":")
    if not sep or not layer_s or not cores_s:
        raise VfpgaError(f"--switch-at {spec}: expected LAYER:CORES (examples: 3:0-7, "
                         "conv5:0,2)")
    names = [ly.name for ly in vfb.layers]
    if layer_s.isdigit():
        layer = int(layer_s)
        if layer >= len(names):
            raise VfpgaError(f"--switch-at {spec}: layer {layer} does not exist (the binary "
                             f"has layers 0..{len(names) - 1})")
    elif layer_s in names:
        layer = names.index(layer_s)
    else:
        raise VfpgaError(f"--switch-at {spec}: no layer '{layer_s}' (give an index "
                         f"0..{len(names) - 1} or a layer name; `vfpga objdump` lists them)")
    return layer, parse_cores(cores_s, pool)


def stats_table(res: TaskResult, title: str) -> Table:
    """A per-core table of instructions per module, MACs and DDR traffic."""
    t = Table(title=title)
    for col in ("core", "insns", "LOAD", "CALC", "SAVE", "SYNC", "MACs", "DDR in B",
                "DDR out B"):
        t.add_column(col, justify="right")
    for core, c in sorted(res.counters.items()):
        calc = c.insns["CONV"] + c.insns["POOL"] + c.insns["ELTWISE"]
        t.add_row(
            str(core), str(c.total_insns), str(c.insns["LOAD"]), str(calc),
            str(c.insns["SAVE"]), str(c.insns["SYNC"]), f"{c.macs:,}", f"{c.load_bytes:,}",
            f"{c.save_bytes:,}",
        )
    return t


@click.command()
@click.argument("binary", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "-i", "inputs", multiple=True, metavar="[NAME=]FILE.npy",
              help="Input tensor, NCHW as the ONNX model shapes it (as `vfpga reference "
                   "--input` and `vfpga serve` take it and as outputs are written): a float "
                   "array is quantized with the tensor's scale/zero point, an int8 array is "
                   "taken as quantized already; an int64 input of token ids takes integer "
                   "ids within the rows of the table they index. Default: a seeded random "
                   "int8 input (random valid ids for an id input).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the output tensor(s) (.npy for one, .npz for several).")
@click.option("--cores", default=None, help="Cores to run on: N, 0-7 or 0,3,5 "
              "(default: as many as the binary uses).")
@click.option("--hw", "hw_name", default=None, help="Hardware preset or JSON (default: the "
              "binary's).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random input.")
@click.option("--dequantize", is_flag=True, help="Write float outputs (scale * (q - zp)).")
@click.option("--ddr-limit", default="1GiB", show_default=True, metavar="BYTES",
              help="Most DDR a binary may declare (e.g. 256MiB, 2GiB); larger binaries are "
                   "refused before anything is allocated.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=600.0,
              show_default=True, metavar="SECONDS",
              help="Wall-time budget of the emulation; a run over it fails.")
@click.option("--switch-at", "switches", multiple=True, metavar="LAYER:CORES",
              help="Context switch: after the barrier of LAYER (index or name), continue on "
                   "CORES (N, 0-7 or 0,3,5), re-targeted by the dynamic pass. Repeatable.")
def run(binary: Path, inputs: tuple[str, ...], output: Path | None, cores: str | None,
        hw_name: str | None, seed: int, dequantize: bool, ddr_limit: str, time_limit: float,
        switches: tuple[str, ...]) -> None:
    """Run BINARY on the emulator and print per-core statistics. Host ops (Softmax, LRN)
    run on the CPU between layers. Outputs are written NCHW (a 1x1 map as N x C).

    A compiled binary (one with a dispatch table) given --cores of another count than it
    was compiled for is re-targeted to them by the dynamic pass first (`vfpga realloc`)."""
    if not binary.is_file():
        raise VfpgaError(f"{binary}: no such file" if not binary.exists()
                         else f"{binary}: not a regular file (give a .vfb binary)")
    if output is not None:
        check_writable(output)
    max_ddr = parse_bytes(ddr_limit, "--ddr-limit")
    try:
        hw = load_hw(hw_name) if hw_name else None
    except HardwareConfigError as exc:
        raise VfpgaError(str(exc)) from None
    vfb = read_vfb(binary, hw=hw)
    if hw is None:
        try:
            hw = load_hw(vfb.hw_name)
        except HardwareConfigError:
            raise VfpgaError(
                f"{binary}: built for hardware '{vfb.hw_name}', which is not a preset; pass --hw"
            ) from None
        if hw.fingerprint != vfb.hw_fingerprint:
            raise VfpgaError(
                f"{binary}: built for a '{vfb.hw_name}' whose configuration differs from the "
                f"preset of that name; recompile or pass the matching --hw JSON"
            )
    core_list = (parse_cores(cores, hw.num_cores) if cores
                 else list(range(max(vfb.num_cores, 1))))
    plan = [_parse_switch(sw, vfb, hw.num_cores) for sw in switches]
    prepared = None
    if len(vfb.dispatch) and (plan or len(core_list) != vfb.num_cores):
        from vfpga.backend.retarget import allocate, prepare, retarget

        prepared = prepare(vfb.ifps, len(vfb.layers), pool_size=hw.num_cores,
                           source=str(binary))
        if len(core_list) != vfb.num_cores:
            alloc = allocate(prepared, core_list)
            click.echo(f"note: {binary.name} was compiled for {vfb.num_cores} cores; re-targeted "
                       f"to {len(core_list)} cores {core_list} by the dynamic pass "
                       f"({alloc.seconds * 1e3:.3f} ms)", err=True)
            vfb = retarget(vfb, alloc)
    elif plan:
        raise VfpgaError(f"{binary}: has no dispatch table (routed by core fields); "
                         "--switch-at needs a compiled binary")
    if vfb.ddr_size > max_ddr:
        raise VfpgaError(f"{binary}: the binary declares {vfb.ddr_size:,} bytes of DDR, more "
                         f"than --ddr-limit ({max_ddr:,} bytes); pass a larger --ddr-limit if "
                         "you trust it")
    acc = Accelerator(hw, ddr_bytes=-(-max(vfb.ddr_size, 1) // REGION_ALIGN) * REGION_ALIGN)
    task = acc.create_task(binary.stem, core_list, vfb.ddr_size)
    task.load(vfb, str(binary))
    in_tensors = [t for t in vfb.tensors if t.role == "input"]
    given: dict[str, Path] = {}
    for spec in inputs:
        name, _, file = spec.rpartition("=")
        if not name:
            if len(in_tensors) != 1:
                raise VfpgaError(
                    f"--input {spec}: the binary has {len(in_tensors)} inputs; use NAME=FILE "
                    f"({', '.join(t.name for t in in_tensors)})"
                )
            name = in_tensors[0].name
        given[name] = Path(file)
    unknown = sorted(set(given) - {t.name for t in in_tensors})
    if unknown:
        raise VfpgaError(f"--input {unknown[0]}=...: the binary has no input '{unknown[0]}' "
                         f"(inputs: {', '.join(t.name for t in in_tensors)})")
    rng = np.random.default_rng(seed)
    bounds = index_bounds(vfb.tensors, vfb.host_ops)
    for t in in_tensors:
        if t.name in given:
            arr = input_array(given[t.name], t, bounds.get(t.name))
        elif t.dtype == INDEX_DTYPE:  # token ids: valid random ids over the table's rows
            bound = bounds.get(t.name)
            if bound is None:
                raise VfpgaError(f"{binary}: input '{t.name}' holds int64 ids whose valid "
                                 "range its host segments do not tell (no Gather reads them "
                                 f"as indices); give them: --input {t.name}=IDS.npy")
            click.echo(f"note: no --input for '{t.name}': using random int64 ids in "
                       f"[0, {bound}) (seed {seed})", err=True)
            arr = to_stored(t, random_indices(user_shape(t), bound, rng))
        elif t.dtype == "float32":  # an unquantized input (read by host segments)
            click.echo(f"note: no --input for '{t.name}': using a random standard normal "
                       f"float32 input (seed {seed})", err=True)
            arr = rng.standard_normal(t.shape).astype(np.float32)
        else:
            click.echo(f"note: no --input for '{t.name}': using a random int8 input (seed {seed})",
                       err=True)
            arr = rng.integers(-128, 128, size=t.shape, dtype=np.int8)
        task.write_tensor(t.name, arr)
    task.set_budget(time_limit)
    where = f"cores {core_list}"
    for layer, new_cores in sorted(plan, key=lambda p: p[0]):
        from vfpga.backend.retarget import allocate

        assert prepared is not None
        try:
            task.run_until_layer(layer)
        except EmulatorFault as exc:
            raise VfpgaError(f"{binary}: fault: {exc}") from None
        if task.done:
            raise VfpgaError(f"--switch-at {layer}: the program ended before layer {layer}'s "
                             "barrier")
        alloc = allocate(prepared, new_cores)
        task.switch_cores(new_cores, alloc.dispatch)
        click.echo(f"context switch after layer {layer} ('{vfb.layers[layer].name}'): "
                   f"continuing on cores {new_cores} (dynamic compile "
                   f"{alloc.seconds * 1e3:.3f} ms)", err=True)
        where += f", after layer {layer} {new_cores}"
    res = acc.run([task])[task.name]
    if not res.ok:
        raise VfpgaError(f"{binary}: fault: {res.error}")
    console = Console()
    console.print(stats_table(res, f"{binary.name} on {where}: "
                                   f"{res.barriers} layer barriers"))
    if task.host_ops_run:
        click.echo(f"host ops run on the CPU: {task.host_ops_run}")
    outs = {}
    for t in vfb.tensors:
        if t.role != "output":
            continue
        q = from_stored(t, task.read_tensor(t.name))  # NCHW; 1x1 maps as (N, C)
        if dequantize and t.dtype == "int8":
            outs[t.name] = t.scale * (q.astype(np.float32) - t.zero_point)
        else:
            outs[t.name] = q
        shape = q.shape if t.dynamic else t.shape  # a dynamic output: as the host made it
        stats = (f"min {int(q.min())} max {int(q.max())} mean {float(q.mean()):.2f}"
                 if q.size else "empty")
        seen = (f", written as {'x'.join(map(str, t.onnx_shape))} (its ONNX shape)"
                if t.onnx_shape and output is not None else "")
        click.echo(f"output '{t.name}': {t.dtype} {t.layout} {'x'.join(map(str, shape))}, "
                   f"sha256 {hashlib.sha256(q.tobytes()).hexdigest()[:16]}, {stats}{seen}")
    if output is not None:
        _save_npy(output, outs)
        click.echo(f"wrote {output}")
