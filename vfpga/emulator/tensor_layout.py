"""One conversion between a model's tensors as users see them and as the binary stores
them (the TENSORS table of a ``.vfb``).

Users (``vfpga serve``, and the outputs ``vfpga run`` writes) see tensors NCHW, as the
ONNX model names and shapes them; an output map of 1x1 pixels is seen as ``(N, C)``, as
ONNX classifiers give it. The binary stores 4-D maps NHWC (``layout == "nhwc"``). Dtypes
are not changed here: an int8 tensor is taken and given as stored; a float array given for
an int8 tensor is quantized by :meth:`vfpga.emulator.machine.Task.write_tensor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
import onnx

from vfpga.backend.binary import record_user_shape
from vfpga.emulator.machine import TensorSpec
from vfpga.quant.index_inputs import INDEX_DTYPE, check_indices, index_bound
from vfpga.reference.host_segment import SEGMENT_OP, decode_model


def _is_map(t: TensorSpec) -> bool:
    return t.layout == "nhwc" and len(t.shape) == 4


def user_shape(t: TensorSpec) -> tuple[int, ...]:
    """The shape users give (inputs) or get (outputs) for tensor ``t``: the graph input's
    or output's ONNX shape when the binary records one (``Tensor.onnx_shape``: an
    ``(N, C, L)`` sequence stored as the map ``(N, C, 1, L)``), else NCHW for a stored
    NHWC map, ``(N, C)`` for an output map of 1x1 pixels, else the stored shape."""
    onnx_shape = getattr(t, "onnx_shape", None)
    return tuple(onnx_shape) if onnx_shape else record_user_shape(t)


def accepted_shapes(t: TensorSpec) -> list[tuple[int, ...]]:
    """The shapes an input array for ``t`` may have: :func:`user_shape`, and, for
    compatibility with clients of binaries that did not record ONNX shapes, the 4-D
    NCHW form the TENSOR record gives (``(N, C, 1, L)`` for an ``(N, C, L)`` input): the
    same elements in the same order."""
    shapes = [user_shape(t)]
    legacy = record_user_shape(t)
    if legacy not in shapes:
        shapes.append(legacy)
    return shapes


def to_stored(t: TensorSpec, arr: np.ndarray) -> np.ndarray:
    """``arr`` of shape :func:`user_shape` rearranged into the stored layout of ``t``
    (dtype kept). Raises ``ValueError`` naming the tensor if the shape differs."""
    want = user_shape(t)
    if tuple(arr.shape) not in accepted_shapes(t):
        raise ValueError(f"tensor '{t.name}' has shape {list(want)}, got {list(arr.shape)}")
    if not _is_map(t):
        return np.ascontiguousarray(arr.reshape(t.shape))
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
        return q.reshape(user_shape(t)) if getattr(t, "onnx_shape", None) else q
    return np.ascontiguousarray(q.reshape(t.shape).transpose(0, 3, 1, 2)).reshape(user_shape(t))


def index_bounds(tensors: Sequence[TensorSpec], host_ops: Sequence[Any]
                 ) -> dict[str, int | None]:
    """For each int64 input tensor of a binary (token ids, ``vfpga.quant.index_inputs``),
    the number of rows its ids may index, derived from the host segments that read it
    (the smallest over them), or ``None`` when a segment does not tell (the ids feed
    something other than a ``Gather``'s indices, or the segment cannot be decoded)."""
    out: dict[str, int | None] = {}
    ids = {i for i, t in enumerate(tensors) if t.role == "input" and t.dtype == INDEX_DTYPE}
    for k in ids:
        out[tensors[k].name] = None
    seen: dict[str, list[int | None]] = {}
    for op in host_ops:
        reads = [k for k in op.inputs if k in ids]
        if not reads:
            continue
        if op.op_type != SEGMENT_OP:
            for k in reads:
                seen.setdefault(tensors[k].name, []).append(None)
            continue
        try:
            model = onnx.load_model_from_string(decode_model(op.name, op.attrs.get("onnx")))
        except Exception:  # a hostile or broken segment: the loader refuses it anyway
            model = None
        for pos, k in enumerate(op.inputs):
            if k in ids:
                bound = None
                if model is not None and pos < len(model.graph.input):
                    bound = index_bound(model, model.graph.input[pos].name)
                seen.setdefault(tensors[k].name, []).append(bound)
    for name, bounds in seen.items():
        known = [b for b in bounds if b is not None]
        out[name] = min(known) if len(known) == len(bounds) else None
    return out


_BOUNDS: WeakKeyDictionary[Any, dict[str, int | None]] = WeakKeyDictionary()


def binary_index_bounds(vfb: Any) -> dict[str, int | None]:
    """:func:`index_bounds` of binary ``vfb`` (its ``tensors`` and ``host_ops``),
    computed once per binary object (a server checks every request against it)."""
    got = _BOUNDS.get(vfb)
    if got is None:
        got = _BOUNDS[vfb] = index_bounds(vfb.tensors, vfb.host_ops)
    return got


def ids_to_stored(t: TensorSpec, arr: np.ndarray, bound: int | None, what: str) -> np.ndarray:
    """The int64 ids ``arr`` (shape :func:`user_shape`) for the int64 input ``t``,
    checked to be integers within ``[-bound, bound)`` (``bound`` from
    :func:`index_bounds`) and laid out as stored. Raises
    :class:`~vfpga.errors.VfpgaError` naming ``what``."""
    a = check_indices(arr, bound, what)
    return to_stored(t, a)


__all__ = ["accepted_shapes", "binary_index_bounds", "from_stored", "ids_to_stored",
           "index_bounds", "to_stored", "user_shape"]
