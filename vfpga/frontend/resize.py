"""The coordinate arithmetic of ONNX ``Resize`` (opset 11+), as the frontend needs it to
decide how the accelerator computes a resize.

``source_coords`` maps every output coordinate of one axis to its (real-valued) input
coordinate under a ``coordinate_transformation_mode``; :func:`nearest_source` rounds it
with a ``nearest_mode`` and clamps it into the input, giving the input element a nearest
resize copies (the ONNX reference implementation's definition).
"""

from __future__ import annotations

import numpy as np

__all__ = ["nearest_source", "source_coords"]


def source_coords(n_in: int, n_out: int, scale: float, mode: str) -> np.ndarray | None:
    """Input coordinates (float64) of output coordinates ``0 .. n_out - 1`` of an axis of
    ``n_in`` elements resized with ``scale`` (``n_out / n_in`` for sizes), under the
    coordinate transformation ``mode``; None for a mode this function does not know."""
    x = np.arange(n_out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if n_out > 1 else np.zeros(n_out)
    if mode == "align_corners":
        return x * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    return None


def nearest_source(n_in: int, n_out: int, scale: float, mode: str,
                   nearest_mode: str) -> np.ndarray | None:
    """The input index (int64) each output index of a ``mode="nearest"`` resize copies:
    :func:`source_coords` rounded by ``nearest_mode`` (``round_prefer_floor``,
    ``round_prefer_ceil``, ``floor``, ``ceil``) and clamped to ``[0, n_in - 1]``; None
    for an unknown mode."""
    c = source_coords(n_in, n_out, scale, mode)
    if c is None:
        return None
    if nearest_mode == "floor":
        r = np.floor(c)
    elif nearest_mode == "ceil":
        r = np.ceil(c)
    elif nearest_mode == "round_prefer_floor":
        r = np.where(c - np.floor(c) == 0.5, np.floor(c), np.round(c))
    elif nearest_mode == "round_prefer_ceil":
        r = np.where(c - np.floor(c) == 0.5, np.ceil(c), np.round(c))
    else:
        return None
    return np.clip(r, 0, n_in - 1).astype(np.int64)
