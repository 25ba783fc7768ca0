"""``vfpga-opt``: ``xdsl-opt`` with vfpga's dialects, passes and targets always registered.

Identical to ``xdsl-opt`` (same options, e.g. ``-p dnn-annotate-placement``,
``--verify-diagnostics``, ``--split-input-file``) even when the ``xdsl.universe`` entry
point is not installed. IR errors (parse or verify) print as one message and exit 1,
without a traceback.
"""

from __future__ import annotations

import sys

from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from vfpga.dialects import get_all_dialects
from vfpga.passes import get_all_passes
from vfpga.targets import get_all_targets


class VfpgaOptMain(xDSLOptMain):
    """``xDSLOptMain`` plus vfpga's registries (only the ``register_all_*`` hooks)."""

    def register_all_dialects(self) -> None:
        super().register_all_dialects()
        known = set(self.ctx.registered_dialect_names)
        for name, factory in get_all_dialects().items():
            if name not in known:
                self.ctx.register_dialect(name, factory)

    def register_all_passes(self) -> None:
        super().register_all_passes()
        for name, factory in get_all_passes().items():
            if name not in self.available_passes:
                self.register_pass(name, factory)

    def register_all_targets(self) -> None:
        super().register_all_targets()
        for name, factory in get_all_targets().items():
            if name not in self.available_targets:
                self.available_targets[name] = factory


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vfpga-opt`` script."""
    try:
        VfpgaOptMain(description="vfpga modular optimizer driver", args=argv).run()
    except (ParseError, DiagnosticException) as exc:
        print(f"vfpga-opt: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
