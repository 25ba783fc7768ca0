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
``code`` or ``isa`` ops).
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
        cache: dict[tuple[object, ...], int] = {}
        for layer in layers_of(op):
            li = layer.index_value
            for cand in layer.candidates():
                for pkg in cand.packages():
                    w0, w1, c0, c1, h0, h1 = pkg.tile
                    body = pkg.insn_fields()
                    if not body:
                        raise StaticPassError(
                            f'ifp.layer {li} "{layer.node.data}": package w={w0}:{w1} '
                            f"c={c0}:{c1} has no instructions: run ifp-lower-to-isa first"
                        )
                    words = pkg.code_bytes
                    key: tuple[object, ...]
                    if words is not None:
                        key = ("words", timing_words(words))
                    else:
                        columns = column_geometry(body)
                        key = latency_key(li, w0, w1, c0, c1, len(body), columns, (h0, h1))
                    lat = cache.get(key)
                    if lat is None:
                        try:
                            lat = simulate(body, hw)
                        except ValueError as exc:
                            raise StaticPassError(
                                f'ifp.layer {li} "{layer.node.data}": package w={w0}:{w1} '
                                f"c={c0}:{c1}: {exc}"
                            ) from None
                        cache[key] = lat
                    pkg.set_int("latency", lat)
