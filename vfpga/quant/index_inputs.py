"""Integer index inputs: a graph input of int64 token ids (an ``Embedding``'s ``Gather``
of a float weight table), stored and fed as int64 and read only by host segments.

One home for what such an input may hold: the ids index the rows of the table each
``Gather`` reads them as indices of, so a valid id lies in ``[-rows, rows)`` (ONNX
``Gather`` takes negative ids from the end; onnxruntime refuses any other id with an
error) and random or calibration ids are drawn from ``[0, rows)``. ``rows`` is derived from
the graph (:func:`index_bound`): the smallest table dimension over every ``Gather`` that
reads the input as indices. When some other node reads the ids (a ``Cast``, an ``Add``)
the range cannot be derived and callers refuse to invent ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from vfpga.errors import FrontendError, VfpgaError

#: The element type of an index input (docs/binary-format.md TENSOR dtype 3).
INDEX_DTYPE = "int64"
#: The ONNX element type of an index input.
INDEX_ONNX_TYPE = onnx.TensorProto.INT64


def is_index_input(model: onnx.ModelProto, name: str) -> bool:
    """Whether graph input ``name`` of ``model`` is an int64 index input."""
    return any(vi.name == name and vi.type.tensor_type.elem_type == INDEX_ONNX_TYPE
               for vi in model.graph.input)


def has_index_input(model: onnx.ModelProto) -> bool:
    """Whether a graph input of ``model`` (not an initializer) is int64 ids."""
    inits = {i.name for i in model.graph.initializer}
    return any(is_index_input(model, vi.name) for vi in model.graph.input
               if vi.name not in inits)


def _table_shape(model: onnx.ModelProto, name: str) -> tuple[int, ...] | None:
    """The static shape of tensor ``name``: an initializer's dims, a ``DequantizeLinear``
    of an initializer (a quantized table) as that initializer, else ONNX shape inference
    (run only then: tables can be large)."""
    inits = {i.name: i for i in model.graph.initializer}
    if name in inits:
        return tuple(int(d) for d in inits[name].dims)
    for n in model.graph.node:
        if name in n.output and n.op_type == "DequantizeLinear" and n.input[0] in inits:
            return tuple(int(d) for d in inits[n.input[0]].dims)
    try:
        g = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # an op shape inference rejects: the declared shapes only
        g = model.graph
    for vi in [*g.value_info, *g.input, *g.output]:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if vi.name == name and tt.HasField("shape") and all(d > 0 for d in dims):
            return tuple(dims)
    return None


def index_bound(model: onnx.ModelProto, name: str) -> int | None:
    """The number of rows the ids in tensor ``name`` of ``model`` index: the smallest
    ``data.shape[axis]`` over the ``Gather`` nodes reading ``name`` as indices; ``None``
    when another node reads it or a table's shape is unknown (the range cannot be
    derived)."""
    readers = [n for n in model.graph.node if name in n.input]
    if not readers:
        return None
    rows: list[int] = []
    for n in readers:
        if n.op_type != "Gather" or n.domain not in ("", "ai.onnx") or list(n.input) != [
                n.input[0], name]:
            return None
        data = _table_shape(model, n.input[0])
        axis = next((int(helper.get_attribute_value(a)) for a in n.attribute
                     if a.name == "axis"), 0)
        if data is None or not -len(data) <= axis < len(data):
            return None
        rows.append(data[axis])
    return min(rows)


def random_indices(shape: tuple[int, ...], bound: int, rng: np.random.Generator
                   ) -> np.ndarray:
    """Valid random ids of ``shape``: int64, uniform in ``[0, bound)``."""
    return rng.integers(0, bound, size=shape, dtype=np.int64)


def require_bound(model: onnx.ModelProto, name: str, source: str) -> int:
    """:func:`index_bound`, or a :class:`~vfpga.errors.FrontendError` saying that valid
    ids cannot be derived and must be given."""
    bound = index_bound(model, name)
    if bound is None:
        raise FrontendError(
            f"{source}: input '{name}' holds int64 ids, and their valid range cannot be "
            "derived from the graph (only a Gather reading them as indices of a table of "
            "known shape tells it); give valid ids as .npy files of int64 ids (--calib-dir "
            "DIR to calibrate, --inputs DIR to check, --input to run)"
        )
    return bound


def random_id_inputs(model: onnx.ModelProto, name: str, shape: tuple[int, ...], num: int,
                     seed: int, source: str) -> list[np.ndarray]:
    """``num`` valid random id inputs of ``shape`` for the int64 input ``name`` of
    ``model`` (:func:`random_indices` over :func:`require_bound`'s rows, drawn from
    ``numpy.random.default_rng(seed)``)."""
    bound = require_bound(model, name, source)
    rng = np.random.default_rng(seed)
    return [random_indices(shape, bound, rng) for _ in range(num)]


def read_id_files(folder: Path, model: onnx.ModelProto, name: str, shape: tuple[int, ...],
                  what: str) -> list[tuple[Path, np.ndarray]]:
    """The ``.npy`` files of ``folder`` (sorted by name) as ids for the int64 input
    ``name`` of ``model``: each an integer array of ``shape`` (or ``shape`` without its
    batch of 1) whose ids lie in the range the graph gives (:func:`check_indices`).
    ``what`` names the folder's use in errors. Raises :class:`~vfpga.errors.FrontendError`
    naming the file."""
    from vfpga.fileio import read_npy
    from vfpga.quant.inputs import NPY_SUFFIX, input_files

    bound = index_bound(model, name)
    out = []
    for f in input_files(folder, (NPY_SUFFIX,), what, f"int64 id arrays (.npy) for input "
                                                     f"'{name}'"):
        try:
            a = check_indices(np.asarray(read_npy(f)), bound, f"{f} (ids for input '{name}')")
        except VfpgaError as exc:
            raise FrontendError(str(exc)) from None
        if a.shape != shape and not (shape[:1] == (1,) and a.shape == shape[1:]):
            raise FrontendError(f"{f}: array of shape {a.shape}; the model's input '{name}' "
                                f"has shape {shape}")
        out.append((f, np.ascontiguousarray(a.reshape(shape))))
    return out


def check_indices(arr: np.ndarray, bound: int | None, what: str) -> np.ndarray:
    """``arr`` as int64 ids, checked: an integer array whose values lie in
    ``[-bound, bound)`` (unchecked when ``bound`` is ``None``). ``what`` names the input
    in the :class:`~vfpga.errors.VfpgaError`."""
    a = np.asarray(arr)
    if a.dtype.kind not in "iu":
        raise VfpgaError(f"{what}: holds int64 ids; got {a.dtype} values (give integers)")
    if a.dtype.kind == "u" and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise VfpgaError(f"{what}: id {int(a.max())} does not fit in int64")
    a = a.astype(np.int64)
    if bound is not None and a.size:
        bad = np.flatnonzero((a < -bound) | (a >= bound))
        if bad.size:
            k = int(bad[0])
            at = tuple(int(i) for i in np.unravel_index(k, a.shape))
            raise VfpgaError(
                f"{what}: id {int(a.reshape(-1)[k])} at {list(at)} is out of range "
                f"[{-bound}, {bound}) ({bad.size} such id(s)): the Gather reading it indexes "
                f"a table of {bound} rows"
            )
    return a


__all__ = [
    "INDEX_DTYPE",
    "INDEX_ONNX_TYPE",
    "check_indices",
    "has_index_input",
    "index_bound",
    "is_index_input",
    "random_id_inputs",
    "random_indices",
    "read_id_files",
    "require_bound",
]
