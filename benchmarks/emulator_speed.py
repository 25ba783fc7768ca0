"""Emulator time against onnxruntime running the same QDQ model, in one process.

Run: ``.venv/bin/python benchmarks/emulator_speed.py [MODEL ...] [--repeat N]
[--clock cpu]`` (default: the four paper models on 1 and 16 cores, goal 3x, and the
models of :data:`GOALS` on the core counts of :data:`CORES`). For each model: ORT's QDQ
inference (CPU provider, one intra-op thread as
:func:`vfpga.reference.compare.ort_session` sets), and the emulator's run of the compiled
binary: the reference interpreter (``Accelerator(fast=False)``), and the precompiled-plan
fast path (the default) with the dependency-hazard checks on (the default) and off. Per core
count, after two warm-up runs of each, the runs take turns (ORT, then each emulator
column in an order rotated every round, N rounds) so that all columns of a row see the
same machine (this VM's speed
drifts by up to 2x over seconds); each column is the median of its N runs, ratio =
emulator / the row's ORT median; ``goal`` is
issue 17's bound for the fast path (``over`` when it is missed). ``--blas-threads`` sets
the threads of the emulator's matrix products (default 1, as ``Accelerator`` and as the
ORT session) and is printed with the results, with the emulator's integer-product backend
(or why it is off).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import numpy as np
from _common import PAPER_MODELS, loaded_model

from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator, int_matmul, jit
from vfpga.flow import _graph_input
from vfpga.hw import load_hw
from vfpga.models import list_models
from vfpga.reference.compare import ort_session

#: models benchmarked besides the paper models (those of them that are registered), with
#: issue 17's goal ratio and the core counts it is set for (the paper models: 3x on 1 and
#: 16 cores)
GOALS = {"mobilenet_v3_large": 5.0, "yolo_nano": 5.0}
CORES = {"mobilenet_v3_large": (1,), "yolo_nano": (1,)}


def ort_run(sess, in_name: str, x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    sess.run(None, {in_name: x})


def emu_run(acc: Accelerator, task, name: str, xin: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    task.restart()
    task.write_tensor(name, xin)
    r = acc.run([task])[task.name]
    assert r.ok, r.error


#: the clock of the measurements: wall time (the acceptance figures, on a quiet machine)
#: or the process's CPU time (``--clock cpu``: both sides run on one thread, so on a
#: loaded machine their CPU times compare the work done without the waits for a core)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


#: untimed runs of each function before the timed rounds: the first run of a binary
#: builds its plans, the second decides the chains of pending writes once the later
#: epochs are known (docs/runtime.md); from the third on, every run is the same
WARMUP = 2


def median_times(fns: list, repeat: int) -> list[float]:  # type: ignore[type-arg]
    """Median time of each of ``fns`` over ``repeat`` rounds in which every function runs
    once, after :data:`WARMUP` untimed calls of each (interleaved, so that a drift in the
    machine's speed reaches all of them alike). Each round runs ``fns[0]`` (onnxruntime)
    first, then the others in an order rotated by one every round: whichever runs right
    after onnxruntime finds its data out of the cache (measured 3-10% slower than the
    same accelerator in the next place), so every emulator column takes that place in
    turn instead of the first one always taking it."""
    for _ in range(WARMUP):
        for fn in fns:
            fn()
    ts: list[list[float]] = [[] for _ in fns]
    rest = list(range(1, len(fns)))
    for r in range(repeat):
        k = r % len(rest) if rest else 0
        for i in [0, *rest[k:], *rest[:k]]:
            t0 = _clock()
            fns[i]()
            ts[i].append(_clock() - t0)
    return [statistics.median(t) for t in ts]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    registered = {m.name for m in list_models()}
    ap.add_argument("models", nargs="*",
                    default=[*PAPER_MODELS, *(m for m in GOALS if m in registered)])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads of the emulator (default 1)")
    ap.add_argument("--no-interp", action="store_true",
                    help="skip the reference interpreter's column (printed as nan); the "
                         "fast-path ratios are the acceptance figures")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time (default) or the process's CPU time (a loaded machine)")
    args = ap.parse_args()
    global _clock
    _clock = CLOCKS[args.clock]
    hw = load_hw("pool16")
    why = int_matmul.unavailable_reason() if int_matmul.backend() is None else None
    fused = "numba" if jit.get() is not None else f"off: {jit.unavailable_reason()}"
    print(f"emulator product threads: {args.blas_threads}; ORT: 1 intra-op thread; "
          f"integer products: {'onnxruntime MatMulInteger' if why is None else 'off: ' + why}; "
          f"fused output stages: {fused}; clock: {args.clock}")
    print(f"{'model':18s} {'ORT ms':>8s} {'cores':>5s} {'interp ms':>10s} {'ratio':>7s} "
          f"{'fast ms':>9s} {'ratio':>7s} {'no-hazard ms':>13s} {'ratio':>7s} {'goal':>5s}")
    for name in args.models:
        lm = loaded_model(name)
        g = lm.graph
        x = np.random.default_rng(0).standard_normal(g.tensors[g.inputs[0]].shape)
        x = x.astype(np.float32)
        sess = ort_session(lm.qdq)
        in_name = sess.get_inputs()[0].name  # type: ignore[attr-defined]
        xin = _graph_input(g, x)
        for cores in CORES.get(name, (1, 16)):
            res = compile_graph(g, hw, cores)
            fns = [partial(ort_run, sess, in_name, x)]
            for fast, hazards in ((False, True), (True, True), (True, False)):
                if not fast and args.no_interp:
                    continue
                acc = Accelerator(hw, check_hazards=hazards, fast=fast,
                                  blas_threads=args.blas_threads)
                task = acc.create_task("bench", range(cores), res.vfb.ddr_size)
                task.load(res.vfb)
                fns.append(partial(emu_run, acc, task, g.inputs[0], xin))
            t_ort, *row = median_times(fns, args.repeat)
            if args.no_interp:
                row.insert(0, float("nan"))
            goal = GOALS.get(name, 3.0)
            verdict = "" if row[1] / t_ort <= goal else " over"
            print(f"{name:18s} {t_ort * 1e3:8.1f} {cores:5d} {row[0] * 1e3:10.1f} "
                  f"{row[0] / t_ort:6.1f}x {row[1] * 1e3:9.1f} {row[1] / t_ort:6.1f}x "
                  f"{row[2] * 1e3:13.1f} {row[2] / t_ort:6.1f}x {goal:4.0f}x{verdict}",
                  flush=True)


if __name__ == "__main__":
    main()
