"""Offline estimate of the dynamic pass's ``mk/LB`` under other loop nests and candidates,
from the compiler's own tile estimates (no binary is built; docs/dynamic.md, session 10).

Run: ``.venv/bin/python benchmarks/alloc_estimate.py MODEL [--variants today,latency,...]``
(a variant: parts joined by ``+``, e.g. ``latency+packed``).

For each layer it takes the candidates of :func:`vfpga.compiler.tiling.candidates` and
their tiles' :func:`~vfpga.compiler.tilecost.tile_cycles`, assigns them to ``k`` cores by
LPT and prints, per ``k = 1..16``, the mean over layers of the least makespan over the
layer's candidates divided by the layer bound (the least ``max(total / k, longest)``),
as ``benchmarks/dynamic_compile.py`` does with the exact latencies of a binary, and the
predicted latency (sum of the layers' makespans). Variants:

* ``today``: the compiler as it is (the estimate reproduces the benchmark's exact
  ``mk/LB`` to about the third decimal);
* ``latency``: every tile's loop nest chosen for the least estimated latency (group size
  of at most 8 groups, band height among the largest that fits and ``ceil(rows / n)``
  for ``n <= 8``) instead of the least DDR traffic (:func:`~vfpga.compiler.ifpgen.choose_plan`);
* ``packed``: also recursive bisections of every layer into 17..32 tiles (candidates of
  more IFPs than cores, packed by LPT);
* ``exhaustive``: the recursive bisection (``tiling._refine``) tries every cut of every
  box on every refined layer (``BISECT_BREADTH`` unbounded: session 11's search of the
  plain CONVs, POOLs and adds, at about three times its CPU);
* ``guillotine``: no recursive bisection (``BISECT_SLACK`` infinite).

The CPU seconds printed per variant are those of the candidate search and the
estimates, from cold caches (the layers' loop-nest caches are cleared first).

It replaces ``tilecost.choose_plan`` and reads private helpers of the tiling modules:
an analysis tool, slow (a minute per model for ``latency``), not part of any build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vfpga.compiler import ifpgen, tilecost, tiling
from vfpga.compiler.assign import lpt
from vfpga.compiler.ifpgen import LayerSpec, LoopNest, Tile
from vfpga.hw.config import HardwareConfig, load_hw

MAX_K = 16


def layer_specs(name: str, hw: HardwareConfig) -> list[LayerSpec]:
    """The accelerator layers of paper model ``name`` (the specs ``dnn-tile`` tiles)."""
    import vfpga.passes.dnn_tile as dnn_tile
    from vfpga.driver import compile_graph
    from vfpga.frontend.pipeline import load_qgraph
    from vfpga.models import export_model

    got: list[LayerSpec] = []

    class _Stop(Exception):
        pass

    def capture(specs: list[LayerSpec], _hw: HardwareConfig, *_a: object) -> list:
        got.extend(specs)
        raise _Stop

    g, _ = load_qgraph(export_model(name), num_random=2)
    original = dnn_tile.layer_candidates
    dnn_tile.layer_candidates = capture  # type: ignore[assignment]
    try:
        compile_graph(g, hw, cores=MAX_K)
    except _Stop:
        pass
    finally:
        dnn_tile.layer_candidates = original
    return got


def latency_nest() -> Callable[[LayerSpec, Tile, HardwareConfig], LoopNest]:
    """A ``choose_plan`` that picks the loop nest of least estimated latency."""
    original = tilecost.choose_plan
    cache: dict[tuple[int, ...], LoopNest] = {}

    def choose(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> LoopNest:
        h0, h1 = tile.rows(spec.out_shape[1])
        rows, ct = h1 - h0, tile.c1 - tile.c0
        key = (id(spec), tile.w1 - tile.w0, ct, tile.c0 % 64, tile.c1 % 64, rows)
        if key in cache:
            return cache[key]
        best: tuple[int, LoopNest] | None = None
        stored = ifpgen.weight_chunk(spec, hw)
        sizes = ifpgen._group_sizes(spec, tile)
        for og in [o for o in sizes if -(-ct // o) <= 8] or sizes[-1:]:
            fit = ifpgen._fit(spec, tile.w1 - tile.w0, og, hw, rows, stored)
            if fit is None:
                continue
            for rb in sorted({fit.rb, *(-(-rows // n) for n in range(1, 9))}):
                if rb > fit.rb:
                    continue
                nest = LoopNest(og, rb, fit.chunk, fit.in_cols)
                tilecost.choose_plan = lambda *_a, n=nest: n  # type: ignore[assignment]
                try:
                    cycles = tilecost.tile_cycles(spec, tile, hw)
                finally:
                    tilecost.choose_plan = choose
                if best is None or cycles < best[0]:
                    best = (cycles, nest)
        nest = best[1] if best is not None else original(spec, tile, hw)
        cache[key] = nest
        return nest

    return choose


@contextmanager
def nests(latency: bool) -> Iterator[None]:
    original = tilecost.choose_plan
    if latency:
        tilecost.choose_plan = latency_nest()  # type: ignore[assignment]
    try:
        yield
    finally:
        tilecost.choose_plan = original


@contextmanager
def refinement(exhaustive: bool, guillotine: bool) -> Iterator[None]:
    """``tiling``'s recursive bisection with every cut tried, or none at all."""
    breadth, slack = tiling.BISECT_BREADTH, tiling.BISECT_SLACK
    if exhaustive:
        tiling.BISECT_BREADTH = 1 << 30
    if guillotine:
        tiling.BISECT_SLACK = float("inf")
    try:
        yield
    finally:
        tiling.BISECT_BREADTH, tiling.BISECT_SLACK = breadth, slack


def candidate_latencies(specs: list[LayerSpec], hw: HardwareConfig, latency: bool,
                        packed: bool) -> list[list[list[int]]]:
    """Per layer, per candidate, the estimated cycles of its tiles."""
    memo: dict[tuple[object, ...], list[list[int]]] = {}
    out = []
    with nests(latency):
        for spec in specs:
            key = tiling.shape_signature(spec)
            if key not in memo:
                costs = tiling._Costs(spec, hw)
                lats = [[costs(t) or 0 for t in c.tiles] for c in tiling.candidates(spec, hw)]
                if packed:
                    co, oh, ow = spec.out_shape
                    bis = tiling._Bisection(tiling._Layout(spec, hw), costs)
                    for m in range(MAX_K + 1, 2 * MAX_K + 1):
                        _v, tiles = bis.best((0, oh, 0, ow, 0, co), m)
                        if tiles:
                            lats.append([costs(t) or 0 for t in tiles])
                memo[key] = [x for x in lats if all(x)]
            out.append(memo[key])
    return out


def per_k(lats: list[list[list[int]]], k: int) -> tuple[float, int]:
    """(mean over layers of least makespan / layer bound, sum of the least makespans)."""
    ratios, total = [], 0
    for cands in lats:
        mk = min(lpt(c, k)[1] for c in cands)
        bound = min(max(sum(c) / k, max(c)) for c in cands)
        ratios.append(mk / bound)
        total += mk
    return statistics.fmean(ratios), total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--variants", default="today,latency")
    args = ap.parse_args()
    hw = load_hw("pool16")
    specs = layer_specs(args.model, hw)
    for variant in args.variants.split(","):
        parts = set(variant.split("+"))
        unknown = parts - {"today", "latency", "packed", "exhaustive", "guillotine"}
        if unknown:
            print(f"error: unknown variant part(s) {sorted(unknown)}", file=sys.stderr)
            return 2
        for spec in specs:  # cold caches: the CPU figure is the search's own
            spec.plan_cache.clear()
            spec.fit_cache.clear()
            spec.chunk_cache.clear()
        t0 = time.process_time()
        with refinement("exhaustive" in parts, "guillotine" in parts):
            lats = candidate_latencies(specs, hw, "latency" in parts, "packed" in parts)
        rows = [per_k(lats, k) for k in range(1, MAX_K + 1)]
        worst = max(range(MAX_K), key=lambda i: rows[i][0])
        print(f"{args.model} {variant} ({time.process_time() - t0:.1f} s CPU): worst mk/LB "
              f"{rows[worst][0]:.4f} (k = {worst + 1})")
        print("  mk/LB  " + " ".join(f"{r:.3f}" for r, _ in rows))
        print("  pred ms " + " ".join(f"{c / (hw.clock_mhz * 1e3):.3f}" for _, c in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
