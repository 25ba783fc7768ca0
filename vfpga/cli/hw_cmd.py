"""``vfpga hw show [PRESET|FILE] [--json]``."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from vfpga.errors import VfpgaError
from vfpga.hw import DEFAULT_HW, HardwareConfigError, list_presets, load_hw


@click.group()
def hw() -> None:
    """Hardware configurations (presets: pool16, large1; or a JSON file)."""


@hw.command("show")
@click.argument("preset", default=DEFAULT_HW)
@click.option("--json", "as_json", is_flag=True, help="Print the configuration as JSON.")
def show(preset: str, as_json: bool) -> None:
    """Print the hardware configuration PRESET (default pool16) or a JSON file."""
    try:
        cfg = load_hw(preset)
    except HardwareConfigError as exc:
        raise VfpgaError(str(exc)) from None
    if as_json:
        d = cfg.to_dict()
        d["fingerprint"] = cfg.fingerprint.hex()
        d["ops_per_cycle"] = cfg.ops_per_cycle
        click.echo(json.dumps(d, indent=2))
        return
    t = Table(title=f"{cfg.name}: {cfg.description}", show_header=False)
    t.add_column("parameter")
    t.add_column("value")
    t.add_row("cores", str(cfg.num_cores))
    t.add_row(
        "ops/cycle per core",
        f"{cfg.ops_per_cycle} ({cfg.pixel_parallel} pixels x {cfg.in_channel_parallel} in-ch "
        f"x {cfg.out_channel_parallel} out-ch MACs)",
    )
    t.add_row("clock", f"{cfg.clock_mhz:g} MHz")
    t.add_row("DDR banks", f"{cfg.ddr_banks} x {cfg.bank_bandwidth_gbps:g} GB/s")
    if cfg.bank_mapping == "grouped":
        t.add_row("cores per bank", str(cfg.cores_per_bank))
    else:
        t.add_row("cores per bank", "interleaved over all banks")
    for b, size in cfg.buffers.items():
        t.add_row(f"{b}", f"{size // 1024} KiB")
    t.add_row("fingerprint", cfg.fingerprint.hex()[:16])
    Console().print(t)
    click.echo(f"presets: {', '.join(list_presets())}")
