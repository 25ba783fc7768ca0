"""KServe v2 (Open Inference Protocol) tensors: decode an inference request, check it
against the model's input tensors, and encode the response. JSON tensors and Triton's
binary-tensor extension (``Inference-Header-Content-Length``, ``binary_data_size``,
``binary_data`` / ``binary_data_output``) are both spoken.

Tensors are named and shaped as in the ONNX model (NCHW; :mod:`vfpga.emulator.tensor_layout`
does the one conversion to the binary's layout). An int8 input takes ``INT8`` (quantized
already) or ``FP32``/``FP64`` (quantized with the tensor's scale and zero point, as ONNX
QuantizeLinear); an int64 input of token ids takes ``INT64`` ids within the rows of the
table they index (:mod:`vfpga.quant.index_inputs`); outputs come as stored (``INT8``, or
``FP32`` for a float host-op output) with their ``scale`` and ``zero_point`` as
parameters.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vfpga.backend.binary import Tensor
from vfpga.emulator.tensor_layout import (
    accepted_shapes,
    from_stored,
    ids_to_stored,
    to_stored,
    user_shape,
)
from vfpga.errors import VfpgaError
from vfpga.quant.index_inputs import INDEX_DTYPE

#: KServe datatype -> numpy little-endian dtype (those a vfpga binary can take or give)
DTYPES: dict[str, np.dtype[Any]] = {
    "INT8": np.dtype("<i1"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT64": np.dtype("<i8"),
}
#: stored dtype -> KServe datatype
KSERVE = {"int8": "INT8", "float32": "FP32", "int32": "INT32", "int64": "INT64"}


class ProtocolError(Exception):
    """A request the server refuses: ``status`` is the HTTP status, ``message`` says what
    is wrong (naming the tensor and field) and what to do; ``headers`` extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad(message: str) -> ProtocolError:
    return ProtocolError(400, message)


@dataclass
class InferRequest:
    """A decoded request: its id, the input arrays in stored layout, the outputs asked for
    (None: all) and which of them go back as binary."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None
    binary: set[str] = field(default_factory=set)
    binary_all: bool = False


def tensor_metadata(t: Tensor) -> dict[str, Any]:
    """The ``inputs``/``outputs`` entry of a model's metadata."""
    return {
        "name": t.name,
        "datatype": KSERVE.get(t.dtype, t.dtype.upper()),
        # -1: a dimension the data decides (a dynamic output such as NMS's boxes)
        "shape": [-1 if t.dynamic and d == 0 else d for d in user_shape(t)],
    }


def _flat(data: Any, dtype: np.dtype, name: str, kserve: str) -> np.ndarray:
    """The JSON ``data`` of tensor ``name`` as a flat array of ``dtype`` (ints must be
    integers in range, floats finite)."""
    if not isinstance(data, list):
        raise bad(f"input '{name}': 'data' must be a list of numbers")
    try:
        if dtype.kind == "i":
            arr = np.asarray(data, dtype=object).reshape(-1)
            if not all(type(v) is int for v in arr.tolist()):
                raise ValueError("not all integers")
            wide = np.asarray(arr.tolist(), dtype=np.int64)  # OverflowError past int64
            info = np.iinfo(dtype)
            if wide.size and (wide.min() < info.min or wide.max() > info.max):
                raise ValueError(f"values outside {info.min}..{info.max}")
            return wide.astype(dtype)
        arr = np.asarray(data, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise bad(f"input '{name}': 'data' is not a list of {kserve} values ({exc})") from None
    if not np.isfinite(arr).all():
        raise bad(f"input '{name}': 'data' holds NaN or infinity")
    return arr.astype(dtype)


def decode_infer(
    body: bytes, header_length: int | None, inputs: list[Tensor], outputs: list[Tensor],
    id_bounds: dict[str, int | None] | None = None,
) -> InferRequest:
    """Decode and check a request body against the model's ``inputs``/``outputs``
    tensors; raises :class:`ProtocolError` (400) naming what is wrong. ``id_bounds``: the
    rows each int64 id input may index
    (:func:`~vfpga.emulator.tensor_layout.binary_index_bounds`)."""
    if header_length is not None:
        if not 0 <= header_length <= len(body):
            raise bad(
                f"Inference-Header-Content-Length {header_length} is outside the body "
                f"({len(body)} bytes)"
            )
        head, rest = body[:header_length], memoryview(body)[header_length:]
    else:
        head, rest = body, memoryview(b"")
    try:
        req = json.loads(head)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad(f"the request is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise bad("the request must be a JSON object with 'inputs'")
    rid = req.get("id")
    if rid is not None and not isinstance(rid, str):
        raise bad("'id' must be a string")
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad("'parameters' must be an object")
    items = req.get("inputs")
    if not isinstance(items, list):
        raise bad("'inputs' must be a list of tensors")
    by_name = {t.name: t for t in inputs}
    got: dict[str, np.ndarray] = {}
    offset = 0
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise bad(f"inputs[{i}] must be an object with a 'name'")
        name = item["name"]
        t = by_name.get(name)
        if t is None:
            raise bad(f"input '{name}' is not an input of the model (inputs: {', '.join(by_name)})")
        if name in got:
            raise bad(f"input '{name}' is given twice")
        dt_name = item.get("datatype")
        allowed = (["FP32"] if t.dtype == "float32" else ["INT64"] if t.dtype == INDEX_DTYPE
                   else ["INT8", "FP32", "FP64"])
        if dt_name not in allowed:
            raise bad(
                f"input '{name}': datatype {dt_name!r} is not accepted (use {' or '.join(allowed)})"
            )
        dtype = DTYPES[dt_name]
        shape = item.get("shape")
        want = list(user_shape(t))
        if not isinstance(shape, list) or not all(type(d) is int for d in shape) or (
                tuple(shape) not in accepted_shapes(t)):
            raise bad(
                f"input '{name}': shape {shape!r} differs from the model's {want} "
                "(NCHW, as in the ONNX model)"
            )
        n = math.prod(want)
        want = shape  # the ONNX shape, or the 4-D form of a binary without ONNX shapes
        iparams = item.get("parameters") or {}
        if not isinstance(iparams, dict):
            raise bad(f"input '{name}': 'parameters' must be an object")
        size = iparams.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size != n * dtype.itemsize:
                raise bad(
                    f"input '{name}': binary_data_size {size!r} must be "
                    f"{n * dtype.itemsize} ({n} x {dt_name})"
                )
            if offset + size > len(rest):
                raise bad(f"input '{name}': the body ends before its {size} binary bytes")
            flat = np.frombuffer(rest[offset : offset + size], dtype=dtype)
            offset += size
            if dtype.kind == "f" and not np.isfinite(flat).all():
                raise bad(f"input '{name}': the data holds NaN or infinity")
        else:
            if "data" not in item:
                raise bad(f"input '{name}': no 'data' and no binary_data_size")
            flat = _flat(item["data"], dtype, name, dt_name)
            if flat.size != n:
                raise bad(f"input '{name}': {flat.size} values for shape {want} ({n} values)")
        if dtype.kind == "f" and t.dtype == "int8":
            flat = flat.astype(np.float32)
        if t.dtype == INDEX_DTYPE:  # token ids: within the table's rows
            try:
                got[name] = ids_to_stored(t, flat.reshape(want),
                                          (id_bounds or {}).get(name), f"input '{name}'")
            except VfpgaError as exc:
                raise bad(str(exc)) from None
            continue
        got[name] = to_stored(t, flat.reshape(want))
    if offset != len(rest):
        raise bad(f"the body has {len(rest) - offset} binary bytes no input claims")
    missing = [t.name for t in inputs if t.name not in got]
    if missing:
        raise bad(f"missing input(s) {', '.join(missing)}")
    out_names = {t.name for t in outputs}
    binary_all = bool(params.get("binary_data_output", False))
    wanted: list[str] | None = None
    binary: set[str] = set()
    if "outputs" in req:
        if not isinstance(req["outputs"], list):
            raise bad("'outputs' must be a list")
        wanted = []
        for i, o in enumerate(req["outputs"]):
            if not isinstance(o, dict) or o.get("name") not in out_names:
                raise bad(
                    f"outputs[{i}]: not an output of the model (outputs: "
                    f"{', '.join(sorted(out_names))})"
                )
            wanted.append(o["name"])
            op = o.get("parameters") or {}
            if not isinstance(op, dict):
                raise bad(f"outputs[{i}]: 'parameters' must be an object")
            if op.get("binary_data", binary_all):
                binary.add(o["name"])
    return InferRequest(rid, got, wanted, binary, binary_all)


def encode_infer(
    model: str,
    version: str,
    req: InferRequest,
    outputs: list[Tensor],
    values: dict[str, np.ndarray],
    parameters: dict[str, Any],
) -> tuple[bytes, int | None]:
    """The response body (JSON, then the binary outputs) and the JSON's length when some
    output is binary (for the ``Inference-Header-Content-Length`` header)."""
    names = req.outputs if req.outputs is not None else [t.name for t in outputs]
    by_name = {t.name: t for t in outputs}
    items, blobs = [], []
    for name in names:
        t = by_name[name]
        arr = from_stored(t, values[name])
        entry: dict[str, Any] = {
            "name": name,
            "datatype": KSERVE.get(t.dtype, "FP32"),
            "shape": list(arr.shape),
        }
        if t.dtype == "int8":
            entry["parameters"] = {"scale": t.scale, "zero_point": t.zero_point}
        if name in req.binary or (req.outputs is None and req.binary_all):
            raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            entry.setdefault("parameters", {})["binary_data_size"] = len(raw)
            blobs.append(raw)
        else:
            entry["data"] = arr.reshape(-1).tolist()
        items.append(entry)
    doc: dict[str, Any] = {
        "model_name": model,
        "model_version": version,
        "parameters": parameters,
        "outputs": items,
    }
    if req.id is not None:
        doc["id"] = req.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


__all__ = [
    "DTYPES",
    "InferRequest",
    "ProtocolError",
    "decode_infer",
    "encode_infer",
    "tensor_metadata",
]
