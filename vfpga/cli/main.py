"""The ``vfpga`` command. Subcommands live in their own modules and are imported lazily,
so ``vfpga hw show`` does not pay for importing onnxruntime or xDSL.

Every command reports user errors (:class:`vfpga.errors.VfpgaError`) as one clear line on
stderr and exits non-zero, never with a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from vfpga.errors import VfpgaError

#: command name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "hw": ("vfpga.cli.hw_cmd", "hw", "Show the hardware configuration."),
    "asm": ("vfpga.cli.asm_cmd", "asm", "Assemble a .s program into a .vfb binary."),
    "objdump": ("vfpga.cli.asm_cmd", "objdump", "Print a .vfb binary's header, tables, code."),
    "compile": ("vfpga.cli.compile_cmd", "compile_", "Compile an ONNX model to a .vfb binary."),
    "check": ("vfpga.cli.compile_cmd", "check", "Compile, emulate and compare with the "
              "reference and onnxruntime."),
    "run": ("vfpga.cli.run_cmd", "run", "Run a .vfb binary on the emulator."),
    "realloc": ("vfpga.cli.realloc_cmd", "realloc", "Re-target a compiled .vfb to other cores."),
    "demo": ("vfpga.cli.demo_cmd", "demo", "Run the bundled demonstration."),
    "models": ("vfpga.cli.models_cmd", "models", "List and export the bundled models."),
    "quantize": ("vfpga.cli.quantize_cmd", "quantize", "Quantize an fp32 ONNX model to QDQ."),
    "import": ("vfpga.cli.import_cmd", "import_", "Import an ONNX model and print dnn IR."),
    "reference": ("vfpga.cli.reference_cmd", "reference", "Run the integer reference."),
    "pool": ("vfpga.cli.pool_cmd", "pool", "Multi-tenant pool: simulate a scenario."),
    "serve": ("vfpga.cli.serve_cmd", "serve", "Serve models to tenants over KServe v2 "
              "(HTTP)."),
    "fleet": ("vfpga.cli.fleet_cmd", "fleet", "A fleet of accelerator nodes on Ray: serve, "
              "simulate."),
    "experiment": ("vfpga.cli.experiment_cmd", "experiment", "Reproduce the paper's "
                   "experiments on the timing model."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                raise click.ClickException(f"'{cmd_name}' is not built yet") from None
            raise
        cmd: click.Command = getattr(mod, attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VfpgaError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=LazyGroup)
@click.version_option(package_name="vfpga")
def cli() -> None:
    """vfpga: compile ONNX models for a virtualized multi-core FPGA DNN accelerator,
    and run them on its instruction-level emulator."""


def main() -> None:
    """Entry point of the ``vfpga`` script."""
    cli(prog_name="vfpga")
