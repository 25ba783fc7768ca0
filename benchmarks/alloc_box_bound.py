"""How close to its layer bound can *any* partition of a layer's output into boxes get on
``k`` cores? A lower bound of ``mk/LB`` per layer, by counting output elements
(docs/dynamic.md, session 11).

Run: ``.venv/bin/python benchmarks/alloc_box_bound.py MODEL [--k 15] [--top 20]``

The argument, per layer of ``E`` output elements (channels x rows x columns):

* any partition of the output into at most ``k`` boxes (the tiles of an IFP candidate)
  has a box of at least ``ceil(E / k)`` elements;
* so its longest tile, and the makespan of any assignment of its tiles to ``k`` cores,
  is at least (assuming that a box grown by more than ``pixel_parallel`` columns, or by a
  row or a channel, is no cheaper) the least estimated cycles
  (:func:`vfpga.compiler.tilecost.tile_cycles`, the estimate the tiling search ranks
  candidates by) of a box of at least ``ceil(E / k)``
  elements: found by enumerating every box shape (channels, rows, columns) of that many
  elements at the positions whose geometry differs (first rows and columns, where the
  padding is, the middle, last rows and columns), skipping a box whose
  :func:`~vfpga.compiler.tilecost.cycles_lower_bound` is not below the least found;
* the layer bound ``LB`` is the benchmark's: the least over the layer's candidates (today's
  compiler) of ``max(total / k, longest)``.

``box bound / LB`` is then a lower bound of the layer's ``mk/LB`` for every candidate of at
most ``k`` tiles. (Candidates of more tiles than cores put several tiles on some core;
``benchmarks/alloc_estimate.py --variants packed`` measured that they gain nothing.) The
mean over layers of ``max(1, box bound / LB)`` bounds the benchmark's ``mk/LB`` from below
for box tilings under today's tile costs; the script prints it, the sum of the layers'
excess (``mk/LB - 1``) it implies, and what the goal of 1.03 allows.

The script also prints today's estimated ``mk/LB`` per layer (least LPT makespan over the
layer's candidates), so the gap between what the compiler finds and what any box
partition could find shows per layer. An analysis tool (tens of seconds per model), not
part of any build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from alloc_estimate import layer_specs

from vfpga.compiler import tiling
from vfpga.compiler.assign import lpt
from vfpga.compiler.ifpgen import LayerSpec, Tile
from vfpga.hw.config import HardwareConfig, load_hw

GOAL = 1.03
#: boxes this many columns wider than the narrowest of a (channels, rows) pair are also
#: estimated (a partial PE lane of ``pixel_parallel`` columns costs as much as a full one)
WIDER = 4


def _positions(size: int, extent: int) -> list[int]:
    """Start offsets of a box of ``extent`` along an axis of ``size`` whose geometry can
    differ (padding reaches at most a few rows or columns in from each edge)."""
    last = size - extent
    cand = {0, 1, 2, 3, last // 2, last - 3, last - 2, last - 1, last}
    return sorted(p for p in cand if 0 <= p <= last)


def box_bound(
    spec: LayerSpec, hw: HardwareConfig, k: int, costs: tiling._Costs
) -> tuple[float, tuple[int, int, int] | None]:
    """(least estimated cycles of a box of at least ``ceil(E / k)`` output elements,
    its (channels, rows, columns)); ``inf`` if no such box fits a loop nest."""
    co, oh, ow = spec.out_shape
    need = -(-co * oh * ow // k)
    shapes = []
    for c in range(1, co + 1):
        for r in range(1, oh + 1):
            if c * r * ow >= need:
                w_min = max(1, -(-need // (c * r)))
                shapes.extend(
                    (c * r * w, c, r, w) for w in range(w_min, min(ow, w_min + WIDER) + 1)
                )
    shapes.sort()  # the smallest boxes first: the least cost is found early
    best, shape = float("inf"), None
    for _n, c, r, w in shapes:
        for h0 in _positions(oh, r):
            for w0 in _positions(ow, w):
                t = Tile(w0, w0 + w, 0, c, h0, h0 + r)
                key = costs.key(t)
                if costs.lower(t, key) >= best:  # no loop nest of this box beats the best
                    continue
                v = costs(t, key)
                if v is not None and v < best:
                    best, shape = float(v), (c, r, w)
    return best, shape


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    hw = load_hw("pool16")
    k = args.k
    specs = layer_specs(args.model, hw)
    t0 = time.process_time()
    memo: dict[tuple[object, ...], tuple[float, float, float, tuple[int, int, int] | None]] = {}
    rows = []
    for spec in specs:
        key = tiling.shape_signature(spec)
        if key not in memo:
            costs = tiling._Costs(spec, hw)
            lats = [[costs(t) or 0 for t in c.tiles] for c in tiling.candidates(spec, hw)]
            lats = [x for x in lats if all(x)]
            lb = min(max(sum(x) / k, max(x)) for x in lats)
            mk = min(lpt(x, k)[1] for x in lats)
            bb, shape = box_bound(spec, hw, k, costs)
            memo[key] = (lb, mk, bb, shape)
        lb, mk, bb, shape = memo[key]
        rows.append((spec, lb, mk / lb, max(1.0, bb / lb), shape))
    n = len(rows)
    today = statistics.fmean(r[2] for r in rows)
    low = statistics.fmean(r[3] for r in rows)
    print(f"{args.model}, k = {k}, {n} layers ({time.process_time() - t0:.0f} s CPU)")
    print(f"  today's estimated mk/LB {today:.4f} (excess {sum(r[2] - 1 for r in rows):.2f})")
    print(
        f"  lower bound for any box tiling {low:.4f} (excess {sum(r[3] - 1 for r in rows):.2f}); "
        f"the goal {GOAL} allows excess {(GOAL - 1) * n:.2f}"
    )
    print(f"  {'layer':>5} {'name':40s} {'out':>14} {'LB cyc':>8} {'today':>7} {'bound':>7}  box")
    for spec, lb, now, bound, shape in sorted(rows, key=lambda r: -r[3])[: args.top]:
        out = "x".join(map(str, spec.out_shape))
        print(
            f"  {spec.index:5d} {spec.node.name[:40]:40s} {out:>14} {lb:8.0f} {now:7.3f} "
            f"{bound:7.3f}  {shape}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
