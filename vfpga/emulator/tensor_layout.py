"""One conversion between a model's tensors as users see them and as the binary stores
them (the TENSORS table of a ``.vfb``).

Users (``vfpga serve``, and the outputs ``vfpga run`` writes) see tensors NCHW, as the
ONNX model names and shapes them; an output map of 1x1 pixels is seen as ``(N, C)``, as
ONNX classifiers give it. The binary stores 4-D maps NHWC (``layout == "nhwc"``). Dtypes
are not changed here: an int8 tensor is taken and given as stored; a float array given for
an int8 tensor is quantized by :meth:`vfpga.emulator.machine.Task.write_tensor`.
"""

from __future__ import annotations

import numpy as np

from vfpga.emulator.machine import TensorSpec


def _is_map(t: TensorSpec) -> bool:
    return t.layout == "nhwc" and len(t.shape) == 4


def user_shape(t: TensorSpec) -> tuple[int, ...]:
    """The shape users give (inputs) or get (outputs) for tensor ``t``: NCHW for a stored
    NHWC map, ``(N, C)`` for an output map of 1x1 pixels, else the stored shape."""
    if not _is_map(t):
        return tuple(t.shape)
    n, h, w, c = t.shape
    if t.role == "output" and (h, w) == (1, 1):
        return (n, c)
    return (n, c, h, w)


def to_stored(t: TensorSpec, arr: np.ndarray) -> np.ndarray:
    """``arr`` of shape :func:`user_shape` rearranged into the stored layout of ``t``
    (dtype kept). Raises ``ValueError`` naming the tensor if the shape differs."""
    want = user_shape(t)
    if tuple(arr.shape) != want:
        raise ValueError(f"tensor '{t.name}' has shape {list(want)}, got {list(arr.shape)}")
    if not _is_map(t):
        return np.ascontiguousarray(arr)
    n, h, w, c = t.shape
    src = arr.reshape(n, c, h, w)
    if c > 16:
        return np.ascontiguousarray(src.transpose(0, 2, 3, 1))
    out = np.empty((n, h, w, c), arr.dtype)
    for k in range(c):  # a few planes: one strided copy each (4x faster than a gather)
        out[..., k] = src[:, k]
    return out


def from_stored(t: TensorSpec, q: np.ndarray) -> np.ndarray:
    """Tensor ``t`` as read from DDR (stored shape) in the user's shape
    (:func:`user_shape`)."""
    if not _is_map(t):
        return q
    return np.ascontiguousarray(q.reshape(t.shape).transpose(0, 3, 1, 2)).reshape(user_shape(t))


__all__ = ["from_stored", "to_stored", "user_shape"]
