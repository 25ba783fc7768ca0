"""``vfpga realloc MODEL.vfb --cores SPEC [-o OUT.vfb] [--strategy NAME] [--layers]``.

Re-targets a compiled binary to another set of cores with the dynamic compilation pass
(:mod:`vfpga.backend.retarget`): only the DISPATCH section and PROGRAM ``num_cores``
change; TEXT, IFPS, DATA and the other sections are copied byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from vfpga.backend.binary import read_ifp_table, read_vfb, write_vfb
from vfpga.backend.retarget import STRATEGIES, Allocation, allocate, prepare, retarget
from vfpga.cli.coresets import parse_cores
from vfpga.errors import VfpgaError
from vfpga.hw import HardwareConfigError, load_hw
from vfpga.hw.config import HardwareConfig


def _hw_for(binary: Path, hw_name: str | None, hw_fingerprint: bytes,
            built_for: str) -> HardwareConfig:
    """The hardware to allocate for: ``--hw`` or the preset the binary names."""
    try:
        hw = load_hw(hw_name or built_for)
    except HardwareConfigError as exc:
        if hw_name:
            raise VfpgaError(str(exc)) from None
        raise VfpgaError(f"{binary}: built for hardware '{built_for}', which is not a preset; "
                         "pass --hw") from None
    if hw.fingerprint != hw_fingerprint:
        raise VfpgaError(f"{binary}: built for hardware '{built_for}' whose configuration "
                         f"differs from '{hw.name}'; recompile for it or pass the matching "
                         "--hw JSON")
    return hw


def layer_table(alloc: Allocation, names: list[str]) -> Table:
    """Per layer: chosen candidate, IFPs, makespan, bounds."""
    t = Table(title=f"per-layer allocation on {alloc.k} cores ({alloc.strategy})")
    for col in ("layer", "name", "cand", "IFPs", "makespan", "bound", "ratio", "layer bound"):
        t.add_column(col, justify="left" if col == "name" else "right")
    counts = {int(li): 0 for li in alloc.layers.tolist()}
    for li in alloc.schedule.ifp_layer.tolist():
        counts[int(li)] += 1
    for i, li in enumerate(alloc.layers.tolist()):
        mk, b = int(alloc.makespan[i]), float(alloc.bound[i])
        t.add_row(str(li), names[li] if li < len(names) else "", str(int(alloc.candidate[i])),
                  str(counts[li]), f"{mk:,}", f"{b:,.0f}", f"{mk / b:.3f}",
                  f"{float(alloc.layer_bound[i]):,.0f}")
    return t


@click.command()
@click.argument("binary", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cores", required=True, help="The tenant's physical cores: N (the first N), "
              "0-7 or 0,3,5.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the re-targeted binary here (default: only report).")
@click.option("--strategy", default="lpt", show_default=True,
              type=click.Choice(sorted(STRATEGIES)), help="Allocation strategy.")
@click.option("--hw", "hw_name", default=None, help="Hardware preset or JSON (default: the "
              "binary's).")
@click.option("--layers", "show_layers", is_flag=True, help="Print the per-layer allocation.")
def realloc(binary: Path, cores: str, output: Path | None, strategy: str, hw_name: str | None,
            show_layers: bool) -> None:
    """Re-target compiled BINARY to the cores --cores with the dynamic compilation pass
    and print its compile time, the predicted latency and the lower bound."""
    if not binary.is_file():
        raise VfpgaError(f"{binary}: no such file" if not binary.exists()
                         else f"{binary}: not a regular file (give a .vfb binary)")
    table = read_ifp_table(binary)
    hw = _hw_for(binary, hw_name, table.hw_fingerprint, table.hw_name)
    core_list = parse_cores(cores, hw.num_cores)
    vfb = read_vfb(binary, hw=hw)  # for the layer count and names, and to write -o
    if not len(vfb.dispatch):
        raise VfpgaError(f"{binary}: has no dispatch table (its instructions are routed by "
                         "their core fields); only compiled binaries can be re-targeted")
    prep = prepare(table.ifps, len(vfb.layers), pool_size=hw.num_cores, source=str(binary))
    alloc = allocate(prep, core_list, strategy)
    ms = 1e3 / (hw.clock_mhz * 1e6)
    cyc, lb, llb = alloc.predicted_cycles, alloc.bound_cycles, alloc.layer_bound_cycles
    click.echo(f"{binary.name}: {len(vfb.layers)} layers, {prep.n_ifps} IFPs in "
               f"{prep.num_groups} candidates; the pass read {table.bytes_read:,} of "
               f"{table.file_size:,} bytes (header, directory, IFP table)")
    click.echo(f"cores {list(alloc.cores)} (k = {alloc.k}), strategy {strategy}")
    click.echo(f"dynamic compile: {alloc.seconds * 1e3:.3f} ms (+ prepare "
               f"{prep.prepare_seconds * 1e3:.3f} ms, once per binary)")
    click.echo(f"predicted latency: {cyc:,} cycles = {cyc * ms:.3f} ms at {hw.clock_mhz:g} MHz")
    if not len(vfb.layers):
        click.echo("no accelerator layer: every node runs on the host; each core only ends")
    else:
        click.echo(f"lower bound: {lb:,.0f} cycles = {lb * ms:.3f} ms (chosen candidates, "
                   f"latency/bound {cyc / lb:.4f}, mean per layer {alloc.quality:.4f}); "
                   f"over all candidates {llb:,.0f} cycles (latency/bound {cyc / llb:.4f})")
    if show_layers and len(vfb.layers):
        Console().print(layer_table(alloc, [ly.name for ly in vfb.layers]))
    if output is not None:
        write_vfb(output, retarget(vfb, alloc))
        click.echo(f"wrote {output} ({alloc.k} logical cores, {len(alloc.dispatch)} dispatch "
                   "entries)")
