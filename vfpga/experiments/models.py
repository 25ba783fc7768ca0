"""Compiled paper models for the experiments, cached on disk.

The experiments need, per paper model, the binary compiled for the pool (``pool16``:
every tiling candidate of every layer, so the dynamic pass can re-target it to any core
count) and the binary compiled for the large-core baseline (``large1``, 1 core), plus the
measured static compile time. Building a model (export, quantization on 2 random
calibration inputs, static compile) takes 10-90 s, so the binaries are cached under
:func:`cache_dir` as ``NAME.HW.vfb`` with a ``NAME.HW.json`` sidecar holding the static
compile seconds and the :func:`~vfpga.fileio.source_digest` of the code that built it (a
binary built by other compiler code, e.g. before a change of tilings, is rebuilt, not
reused). Timing does not depend on the weights or the data (only on the
instruction fields), so the calibration set does not matter here.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from vfpga.backend.binary import VfbFile, read_vfb, write_vfb
from vfpga.fileio import atomic_write, source_digest
from vfpga.hw.config import DEFAULT_HW, HardwareConfig, load_hw

#: The four models of the paper's evaluation, in the order of its figures.
PAPER_MODELS: tuple[str, ...] = ("inception_v3", "vgg16", "mobilenet_v1", "resnet50")

#: Display names.
MODEL_TITLES: dict[str, str] = {
    "inception_v3": "Inception v3",
    "vgg16": "VGG16",
    "mobilenet_v1": "MobileNet v1",
    "resnet50": "ResNet-50",
}


def cache_dir() -> Path:
    """``$VFPGA_EXPERIMENT_CACHE`` or ``/tmp/vfpga-experiments`` (created)."""
    d = Path(os.environ.get("VFPGA_EXPERIMENT_CACHE", "/tmp/vfpga-experiments"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass(frozen=True)
class CompiledModel:
    """A model compiled for one hardware configuration.

    ``vfb``: the binary (all tiling candidates; its dispatch table is the one for
    ``cores`` cores); ``static_seconds``: wall time of the static compile (QGraph to
    binary, quantization excluded) when it was built; ``path``: the cached file."""

    name: str
    hw: HardwareConfig
    cores: int
    vfb: VfbFile
    static_seconds: float
    path: Path


def compiled_model(name: str, hw_name: str = DEFAULT_HW, cache: Path | None = None,
                   progress: bool = False) -> CompiledModel:
    """Paper model ``name`` compiled for ``hw_name`` (``pool16``: for all its cores;
    ``large1``: its one core), from the cache or built and cached."""
    hw = load_hw(hw_name)
    cores = hw.num_cores
    folder = cache or cache_dir()
    path = folder / f"{name}.{hw_name}.vfb"
    meta = path.with_suffix(".json")
    source = source_digest()
    if path.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            if info.get("source") == source:
                vfb = read_vfb(path, hw)
                return CompiledModel(name, hw, cores, vfb, float(info["static_seconds"]),
                                     path)
        except Exception:  # stale cache (older format or hardware): rebuild
            pass
    from vfpga.driver import compile_graph
    from vfpga.frontend.pipeline import load_qgraph
    from vfpga.models import export_model

    if progress:
        print(f"building {name} for {hw_name} (cached in {path}) ...", flush=True)
    logging.getLogger().setLevel(logging.ERROR)
    g, _ = load_qgraph(export_model(name), num_random=2)
    t0 = time.perf_counter()
    res = compile_graph(g, hw, cores=cores)
    seconds = time.perf_counter() - t0
    write_vfb(path, res.vfb)
    atomic_write(meta, json.dumps({"static_seconds": seconds, "model": name, "hw": hw_name,
                                    "source": source}))
    return CompiledModel(name, hw, cores, res.vfb, seconds, path)


if __name__ == "__main__":  # pragma: no cover - warm the cache
    import sys

    for n in sys.argv[1:] or PAPER_MODELS:
        for h in ("pool16", "large1"):
            t = time.perf_counter()
            m = compiled_model(n, h, progress=True)
            print(f"{n} {h}: {len(m.vfb.ifps)} IFPs, static {m.static_seconds:.1f} s, "
                  f"total {time.perf_counter() - t:.1f} s", flush=True)
