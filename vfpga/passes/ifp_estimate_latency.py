"""``ifp-estimate-latency``: set every package's predicted ``latency``.

Needs ``ifp-lower-to-isa``. The latency is the makespan in cycles of the package's
instructions alone on one core, from the cycle-level core model
(:func:`vfpga.compiler.latency.simulate`: the LOAD, CALC and SAVE queues running
concurrently under the dependency tokens, at the core's share of its DDR bank).

Packages with equal :func:`vfpga.compiler.latency.timing_words` (their packed words with
the LOAD/SAVE DDR addresses zeroed: everything the model reads) are simulated once and
share the result, across layers, rows and origins; packages given as ``isa`` ops (no
packed words) are keyed by :func:`vfpga.compiler.latency.latency_key` (layer, tile width,
channel count, column geometry, first-channel flag, instruction count, rows). The
instructions are read with :meth:`vfpga.dialects.ifp.PackageOp.insn_fields` (packed
``code`` or ``isa`` ops), for the packages simulated. The timing words of all packages
are computed in one call on their concatenated words.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from vfpga.compiler.latency import column_geometry, latency_key, simulate, timing_words
from vfpga.passes.dnn_plan_memory import StaticPassError
from vfpga.passes.dnn_tile import hw_of, layers_of


@dataclass(frozen=True)
class IfpEstimateLatencyPass(ModulePass):
    """Predict every package's latency with the cycle-level core model (see the module
    docstring)."""

    name = "ifp-estimate-latency"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw = hw_of(op)
        pkgs = [(layer, pkg) for layer in layers_of(op) for cand in layer.candidates()
                for pkg in cand.packages()]
        codes = [pkg.code_bytes for _, pkg in pkgs]
        # the timing words of every package at once (the same bytes as one by one)
        timing = timing_words(b"".join(c for c in codes if c is not None))
        cache: dict[tuple[object, ...], int] = {}
        at = 0
        for (layer, pkg), words in zip(pkgs, codes, strict=True):
            key: tuple[object, ...]
            body = None
            if words is not None:
                key = ("words", timing[at : at + len(words)])
                at += len(words)
                empty = not words
            else:
                body = pkg.insn_fields()
                empty = not body
            if empty:
                w0, w1, c0, c1, _h0, _h1 = pkg.tile
                raise StaticPassError(
                    f'ifp.layer {layer.index_value} "{layer.node.data}": package w={w0}:{w1} '
                    f"c={c0}:{c1} has no instructions: run ifp-lower-to-isa first"
                )
            if body is not None:
                w0, w1, c0, c1, h0, h1 = pkg.tile
                columns = column_geometry(body)
                key = latency_key(layer.index_value, w0, w1, c0, c1, len(body), columns,
                                  (h0, h1))
            lat = cache.get(key)
            if lat is None:
                try:
                    lat = simulate(pkg.insn_fields() if body is None else body, hw)
                except ValueError as exc:
                    w0, w1, c0, c1, _h0, _h1 = pkg.tile
                    raise StaticPassError(
                        f'ifp.layer {layer.index_value} "{layer.node.data}": package '
                        f"w={w0}:{w1} c={c0}:{c1}: {exc}"
                    ) from None
                cache[key] = lat
            pkg.set_int("latency", lat)
