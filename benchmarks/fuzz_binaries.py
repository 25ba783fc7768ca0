"""The long fuzz campaign over hostile binaries (issue 12): resealed structured mutations
(tests/binary_mutations.py: header, directory, tables, instructions, DATA, string table,
host ops, any byte) of three small compiled seed binaries, one of them with host ops
(tests/hostile_seeds.py), each deployed and run in a pool next to an honest tenant.

Prints the counts: mutants per seed and per kind, how each ended (rejected at deploy,
request failed, ran to the end), exceptions outside vfpga's error classes (bugs), hangs
(a round over --hang-seconds), requests over the pool's wall-time budget, and rounds whose
honest tenant's bytes differed from its solo run. Exit status 1 if any of the last four is
not zero.

    .venv/bin/python benchmarks/fuzz_binaries.py --per-seed 3500 --seed 12
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from binary_mutations import KINDS, Arena, Mutator
from hostile_seeds import seed_binaries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-seed", type=int, default=3500, help="mutants per seed binary")
    ap.add_argument("--seed", type=int, default=12, help="random seed of the campaign")
    ap.add_argument("--hang-seconds", type=float, default=60.0,
                    help="a round longer than this counts as a hang")
    ap.add_argument("--request-seconds", type=float, default=30.0,
                    help="the pool's wall-time budget of one request")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    rng = np.random.default_rng(args.seed)
    seeds = seed_binaries()
    arena = Arena(seeds["net12"], request_seconds=args.request_seconds)
    stages: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter()
    foreign: list[str] = []
    hangs = over = honest_bad = 0
    slowest = 0.0
    t0 = time.perf_counter()
    for name, blob in seeds.items():
        mut = Mutator(blob)
        for i in range(args.per_seed):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            what, mutant = mut.mutate(rng, kind)
            o = arena.run(mutant, inputs_seed=i)
            kinds[kind] += 1
            stages[(name, o.stage)] += 1
            slowest = max(slowest, o.seconds)
            if o.stage == "foreign":
                foreign.append(f"{name} {what}: {o.error}")
            hangs += o.seconds > args.hang_seconds
            over += o.over_budget
            if not o.honest_ok:
                honest_bad += 1
                print(f"honest tenant wrong next to {name} {what}: {o}", flush=True)
        print(f"{name}: {args.per_seed} mutants in {time.perf_counter() - t0:.0f} s", flush=True)
    total = sum(kinds.values())
    print(f"\nmutants: {total} over {len(seeds)} seed binaries "
          f"({', '.join(f'{n} {len(b):,} B' for n, b in seeds.items())}; 'hostops' has "
          "Softmax and LRN host ops)")
    print("by kind: " + ", ".join(f"{k} {kinds[k]}" for k in KINDS))
    for name in seeds:
        print(f"  {name}: " + ", ".join(f"{s} {stages[(name, s)]}" for s in
                                       ("rejected", "failed", "done", "foreign")))
    print(f"exceptions outside vfpga's error classes: {len(foreign)}")
    for f in foreign[:20]:
        print(f"  {f}")
    print(f"hangs (a round over {args.hang_seconds:g} s): {hangs}; slowest round "
          f"{slowest:.2f} s")
    print(f"requests over the {args.request_seconds:g} s wall-time budget: {over}")
    print(f"rounds whose honest tenant's bytes differed from its solo run: {honest_bad}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    return 1 if foreign or hangs or over or honest_bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
