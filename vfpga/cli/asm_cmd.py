"""``vfpga asm PROG.s -o PROG.vfb [--hw PRESET]`` and ``vfpga objdump PROG.vfb [-s]``."""

from __future__ import annotations

from pathlib import Path

import click

from vfpga.errors import VfpgaError
from vfpga.hw.config import DEFAULT_HW, HardwareConfig, HardwareConfigError, load_hw


def _hw(name: str | None) -> HardwareConfig | None:
    if name is None:
        return None
    try:
        return load_hw(name)
    except HardwareConfigError as exc:
        raise VfpgaError(str(exc)) from None


@click.command("asm")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output binary (default: SOURCE with the suffix .vfb).")
@click.option("--hw", "hw_name", metavar="PRESET|FILE",
              help="Hardware to assemble for; overrides the source's .hw directive "
              f"(default: .hw, else {DEFAULT_HW}).")
def asm(source: Path, output: Path | None, hw_name: str | None) -> None:
    """Assemble the .s program SOURCE into a .vfb binary (syntax: docs/isa.md)."""
    from vfpga.backend.asm import assemble_file
    from vfpga.backend.binary import write_vfb

    vfb = assemble_file(source, _hw(hw_name))
    out = output if output is not None else source.with_suffix(".vfb")
    write_vfb(out, vfb)
    click.echo(f"{out}: {vfb.num_insns} instructions, {len(vfb.ifps)} IFPs, "
               f"{len(vfb.layers)} layers, {len(vfb.data)} data bytes, hardware {vfb.hw_name}")


@click.command("objdump")
@click.argument("binary", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-s", "--full-contents", is_flag=True,
              help="Also print the DATA bytes, so that `vfpga asm` of the listing gives back "
              "the same binary.")
@click.option("--hw", "hw_name", metavar="PRESET|FILE",
              help="Also check that the binary was built for this hardware.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the listing to this file instead of standard output.")
def objdump(binary: Path, full_contents: bool, hw_name: str | None,
            output: Path | None) -> None:
    """Print the .vfb binary BINARY: header, section table, layer table, IFP table, tensor
    map, host ops and every instruction, as assembly (non-assembly lines are ; comments)."""
    from vfpga.backend.binary import read_capped
    from vfpga.backend.disasm import objdump as listing
    from vfpga.fileio import atomic_write, check_writable

    if output is not None:
        check_writable(output)
    data = read_capped(binary)
    text = listing(data, str(binary), full_contents=full_contents, hw=_hw(hw_name))
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write(output, text.encode())
