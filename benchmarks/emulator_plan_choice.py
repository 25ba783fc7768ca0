"""The one-core choice between epoch plans and the cores' own plans, measured in one process.

Run: ``.venv/bin/python benchmarks/emulator_plan_choice.py [MODEL ...] [--repeat N]
[--cores C]`` (default: MobileNet v1, MobileNetV3-Large, yolo_nano and ResNet-50 on one
core). For each model the compiled binary is loaded into three accelerators: the
default policy (:mod:`vfpga.emulator.plan_choice`), every epoch that has an epoch plan
running it ("epoch", the policy before it), and no epoch plans ("own"). They and
onnxruntime's QDQ run are alternated ``N`` times, each round in a rotated order (whichever
runs first after another model's run finds colder caches); printed: CPU time (the process's, so a
loaded machine's waits are not counted) best of N and median, and the ratio to
onnxruntime's. The outputs of the three are the same bytes (tests/test_emulator_plan_choice.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from _common import ort_case

import vfpga.emulator.machine as machine
from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator
from vfpga.hw import load_hw

DEFAULT = ("mobilenet_v1", "mobilenet_v3_large", "yolo_nano", "resnet50")
POLICIES: dict[str, Callable[..., bool]] = {
    "policy": machine.epoch_pays,
    "epoch": lambda ep, n_cores: True,
    "own": lambda ep, n_cores: False,
}


def measure(name: str, cores: int, repeat: int) -> dict[str, list[float]]:
    """CPU seconds of ``repeat`` alternated runs of bundled model ``name`` on ``cores``
    cores under each policy of :data:`POLICIES`, and of onnxruntime (``"ORT"``)."""
    hw = load_hw("pool16")
    lm, x, sess, in_name, xin = ort_case(name)
    g = lm.graph
    res = compile_graph(g, hw, cores)
    tasks = {}
    for pol, fn in POLICIES.items():
        machine.epoch_pays = fn  # plans are built, and the choice made, on the first run
        acc = Accelerator(hw)
        task = acc.create_task(pol, range(cores), res.vfb.ddr_size)
        task.load(res.vfb)
        tasks[pol] = (acc, task)

    def run(pol: str) -> None:
        if pol == "ORT":
            sess.run(None, {in_name: x})
            return
        acc, task = tasks[pol]
        task.restart()
        task.write_tensor(g.inputs[0], xin)
        r = acc.run([task])[task.name]
        assert r.ok, r.error

    names = [*POLICIES, "ORT"]
    try:
        for pol in names:
            run(pol)  # plans built, kernels warm
    finally:
        machine.epoch_pays = POLICIES["policy"]
    times: dict[str, list[float]] = {pol: [] for pol in names}
    for r in range(repeat):
        for pol in names[r % len(names):] + names[: r % len(names)]:  # no fixed order
            t0 = time.process_time()
            run(pol)
            times[pol].append(time.process_time() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="*", default=list(DEFAULT))
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--cores", type=int, default=1)
    args = ap.parse_args()
    print(f"{'model':18s} {'cores':>5s} {'run':>7s} {'best ms':>8s} {'median ms':>10s} "
          f"{'ratio':>6s} {'median ratio':>12s}")
    for name in args.models:
        times = measure(name, args.cores, args.repeat)
        ort_best, ort_med = min(times["ORT"]), statistics.median(times["ORT"])
        for pol, ts in times.items():
            best, med = min(ts), statistics.median(ts)
            print(f"{name:18s} {args.cores:5d} {pol:>7s} {best * 1e3:8.2f} {med * 1e3:10.2f} "
                  f"{best / ort_best:5.2f}x {med / ort_med:11.2f}x", flush=True)


if __name__ == "__main__":
    main()
