"""Shared helpers of the benchmarks: build, quantize and lower a bundled model once and
cache it (pickle) under ``$VFPGA_BENCH_CACHE`` (default ``/tmp/vfpga-bench``), so
quantization time is never counted and reruns are fast."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

PAPER_MODELS = ("resnet50", "vgg16", "mobilenet_v1", "inception_v3")


def cache_dir() -> Path:
    d = Path(os.environ.get("VFPGA_BENCH_CACHE", "/tmp/vfpga-bench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def loaded_model(name: str, num_random: int = 8):  # -> vfpga.frontend.pipeline.LoadedModel
    """The LoadedModel (QGraph, QDQ model, fp32 model) of bundled model ``name``; the cache
    file is keyed by :func:`vfpga.fileio.source_digest` (a pickle of other code is stale)."""
    from vfpga.fileio import source_digest

    path = cache_dir() / f"{name}.r{num_random}.{source_digest()}.pkl"
    if path.is_file():
        with path.open("rb") as fh:
            return pickle.load(fh)
    from vfpga.frontend.pipeline import load_model
    from vfpga.models import export_model

    logging.getLogger().setLevel(logging.ERROR)
    lm = load_model(export_model(name), num_random=num_random)
    from vfpga.fileio import atomic_write

    atomic_write(path, lambda fh: pickle.dump(lm, fh))
    return lm


def ort_case(name: str):  # -> (LoadedModel, ndarray, InferenceSession, str, ndarray)
    """Bundled model ``name`` ready to time against onnxruntime: (its LoadedModel, a float32
    input drawn with seed 0, the onnxruntime QDQ session, the session's input name, the
    input as the emulator's int8 NHWC tensor)."""
    import numpy as np

    from vfpga.flow import _graph_input
    from vfpga.reference.compare import ort_session

    lm = loaded_model(name)
    g = lm.graph
    x = np.random.default_rng(0).standard_normal(g.tensors[g.inputs[0]].shape)
    x = x.astype(np.float32)
    sess = ort_session(lm.qdq)
    return lm, x, sess, sess.get_inputs()[0].name, _graph_input(g, x)
