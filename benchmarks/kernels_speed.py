"""Throughput of the emulator's CONV kernels on ResNet-50 / MobileNet sized layers.

Run: ``.venv/bin/python benchmarks/kernels_speed.py [--repeat N]``. Prints the best time
of N runs per layer and the resulting GMAC/s (MACs as the ISA counts them).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vfpga.emulator.kernels import conv, conv_macs, out_dims

#: name, (in_h, in_w, in_c), out_c, (kh, kw), stride, pads, groups
LAYERS: list[tuple[str, tuple[int, int, int], int, tuple[int, int], int, tuple[int, ...], int]] = [
    ("resnet50 conv2 3x3 56x56x64->64", (56, 56, 64), 64, (3, 3), 1, (1, 1, 1, 1), 1),
    ("resnet50 conv2 1x1 56x56x64->256", (56, 56, 64), 256, (1, 1), 1, (0, 0, 0, 0), 1),
    ("resnet50 conv5 3x3 7x7x512->512", (7, 7, 512), 512, (3, 3), 1, (1, 1, 1, 1), 1),
    ("resnet50 stem 7x7/2 224x224x3->64", (224, 224, 3), 64, (7, 7), 2, (3, 3, 3, 3), 1),
    ("depthwise 3x3 112x112x32", (112, 112, 32), 32, (3, 3), 1, (1, 1, 1, 1), 32),
    ("depthwise 3x3/2 56x56x128", (56, 56, 128), 128, (3, 3), 2, (1, 1, 1, 1), 128),
    ("grouped(32) 3x3 28x28x256->256", (28, 28, 256), 256, (3, 3), 1, (1, 1, 1, 1), 32),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    total_macs = 0
    total_s = 0.0
    for name, (h, w, c), oc, (kh, kw), s, pads, g in LAYERS:
        x = rng.integers(-128, 128, (h, w, c), dtype=np.int8)
        wt = rng.integers(-128, 128, (oc, kh, kw, c // g), dtype=np.int8)
        bias = rng.integers(-(2**20), 2**20, oc, dtype=np.int32)
        mult = rng.integers(2**29, 2**30, oc, dtype=np.int32)
        shift = np.full(oc, 40, dtype=np.int32)
        oh, ow = out_dims(h, w, (kh, kw), (s, s), pads)
        macs = conv_macs(oh, ow, oc, kh, kw, c, g)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            conv(x, wt, start=bias, stride=(s, s), pads=pads, groups=g, mult=mult, shift=shift)
            best = min(best, time.perf_counter() - t0)
        total_macs += macs
        total_s += best
        print(f"{name:36s} {macs / 1e6:8.1f} MMAC {best * 1e3:8.2f} ms "
              f"{macs / best / 1e9:7.1f} GMAC/s")
    print(f"{'total':36s} {total_macs / 1e6:8.1f} MMAC {total_s * 1e3:8.2f} ms "
          f"{total_macs / total_s / 1e9:7.1f} GMAC/s")


if __name__ == "__main__":
    main()
