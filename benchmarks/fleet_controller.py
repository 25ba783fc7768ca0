"""The fleet controller's decision time: the bucketed placer (vfpga/fleet/placement.py)
against a reference placer that makes the same choice by scanning every node, on the
same scenario in the same process. Prints the median and p99 decision per event of both
and their ratio, and the placement quality of both (their choices differ only in ties).

    .venv/bin/python benchmarks/fleet_controller.py [SCENARIO.toml] [--nodes N]

The default scenario is vfpga/examples/scenarios/fleet_1000.toml with MobileNet v1-like
latency tables given inline (no compile)."""

from __future__ import annotations

import argparse
from pathlib import Path
from unittest import mock

from vfpga.fleet import simulate as sim
from vfpga.fleet.placement import Placer
from vfpga.fleet.scenario import load_fleet_scenario

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "vfpga/examples/scenarios/fleet_1000.toml"
# MobileNet v1, ResNet-50, VGG-16 on 1..16 pool16 cores (ms; docs/results/fleet_1000_summary.json)
TABLES = {
    "mobilenet_v1": [9.954, 5.074, 3.658, 2.736, 2.297, 1.985, 1.739, 1.51, 1.51, 1.362,
                     1.362, 1.215, 1.215, 1.023, 1.023, 0.868],
    "resnet50": [65.755, 33.118, 23.871, 17.225, 15.132, 12.973, 10.75, 9.23, 9.23, 8.6, 8.6,
                 7.541, 7.541, 6.564, 6.564, 5.271],
    "vgg16": [233.614, 116.868, 80.679, 58.581, 49.306, 41.705, 34.436, 29.345, 29.345,
              26.353, 26.353, 22.231, 22.231, 17.748, 17.748, 15.035],
}  # fmt: skip


class ScanPlacer(Placer):
    """Best fit by a scan over every node (the reference: O(nodes) per decision); ties
    go to the node that holds the tenant on the fewest banks, then the lowest number."""

    def best_fit(self, n: int, exclude: int | None = None) -> int | None:
        best = None
        for i, st in enumerate(self.nodes):
            if st.alive and st.free >= n and i != exclude:
                key = (st.free, sum(1 for c in self.pick_banks(i, n) if c), i)
                if best is None or key < best:
                    best = key
        return None if best is None else best[2]

    def most_free(self, exclude: int | None = None) -> int | None:
        best = None
        for i, st in enumerate(self.nodes):
            if st.alive and st.free > 0 and i != exclude and (best is None or st.free > best[0]):
                best = (st.free, i)
        return None if best is None else best[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--nodes", type=int, default=None)
    args = ap.parse_args()
    sc = load_fleet_scenario(args.scenario)
    if args.nodes:
        sc.nodes = args.nodes
    tables = [TABLES[m.name] for m in sc.models]
    fast = sim.simulate_fleet(sc, tables)
    with mock.patch.object(sim, "Placer", ScanPlacer):
        ref = sim.simulate_fleet(sc, tables)
    print(f"{sc.nodes} nodes, {fast.events} events")
    print(f"  reference (scan every node): median {ref.decision_median_us:8.1f} us, "
          f"p99 {ref.decision_p99_us:8.1f} us, run {ref.wall_seconds:.2f} s, "
          f"quality {ref.fluid_quality:.3f} / {ref.admission_quality:.3f}")
    print(f"  bucketed placer            : median {fast.decision_median_us:8.1f} us, "
          f"p99 {fast.decision_p99_us:8.1f} us, run {fast.wall_seconds:.2f} s, "
          f"quality {fast.fluid_quality:.3f} / {fast.admission_quality:.3f}")
    print(f"  ratio (reference / bucketed): median "
          f"{ref.decision_median_us / fast.decision_median_us:.1f}x, "
          f"p99 {ref.decision_p99_us / fast.decision_p99_us:.1f}x")


if __name__ == "__main__":
    main()
