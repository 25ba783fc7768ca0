"""Host ops: operators the accelerator does not run (Softmax, LRN, and host segments:
ONNX subgraphs run by onnxruntime, :mod:`vfpga.reference.host_segment`), executed on the
host CPU between layer barriers, as the binary's HOSTOPS table says.

A host op reads its input tensors from the task's DDR (int8 NHWC, dequantized with each
tensor's scale and zero point, viewed as NCHW), runs the op in float32 with the same host
kernels as the integer reference (``vfpga.reference.executor.run_host``: host ops run on
a CPU in both, so their float arithmetic is the same code), and writes its output back to
DDR: quantized like ONNX QuantizeLinear (round half to even, saturate) for an int8
tensor, or as float32 for a float output.

A binary's host-op record is as hostile as its instructions: any failure (an unknown op
type, missing inputs or outputs, an attribute of the wrong type or out of range, a tensor
whose shape disagrees with its size or data type, an output of another element count) is
a :class:`HostOpFault` of the task that runs it, naming the host op, never another
exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from vfpga.backend.binary import MAX_HOST_IO
from vfpga.emulator.faults import ExecutionFault
from vfpga.frontend.qgraph import QHostOp
from vfpga.reference.arith import dequantize, quantize_input
from vfpga.reference.executor import run_host
from vfpga.reference.host_segment import SEGMENT_OP, SegmentError, run_segment, segment_io

#: Host op types the emulator runs, with the attributes each accepts and their types.
HOST_OP_ATTRS: dict[str, dict[str, type]] = {
    "Softmax": {"axis": int},
    "LRN": {"size": int, "alpha": float, "beta": float, "bias": float},
}
#: Attributes a host op of that type must have.
HOST_OP_REQUIRED: dict[str, tuple[str, ...]] = {"Softmax": (), "LRN": ("size",)}


class HostOpFault(ExecutionFault):
    """A host op of the binary cannot run (the message names it and says why)."""


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def _nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def _check_segment(op: Any, tensors: Sequence[Any]) -> None:
    """Validate host segment ``op`` (its ONNX model loads in onnxruntime, its inputs are
    int8 tensors and its output has the element count and data type the model makes)."""
    what = f"host segment '{op.name}'"
    if not 1 <= len(op.inputs) <= MAX_HOST_IO or len(op.outputs) != 1:
        raise HostOpFault(f"{what}: needs 1..{MAX_HOST_IO} inputs and one output, has "
                          f"{len(op.inputs)} and {len(op.outputs)}")
    try:
        shapes, in_dtypes, out_dtype = segment_io(op.name, dict(op.attrs).get("onnx"))
    except SegmentError as exc:
        raise HostOpFault(str(exc)) from None
    if len(shapes) != len(op.inputs):
        raise HostOpFault(f"{what}: its model has {len(shapes)} input(s), the record "
                          f"{len(op.inputs)}")
    for k, ti in enumerate((*op.inputs, *op.outputs)):
        if not 0 <= int(ti) < len(tensors):
            raise HostOpFault(f"{what}: tensor index {ti} is not in 0..{len(tensors) - 1}")
        t = tensors[ti]
        want = in_dtypes[k] if k < len(op.inputs) else out_dtype
        if k >= len(op.inputs) and getattr(t, "dynamic", False):
            if t.dtype != want:  # its size is the host's business (data-dependent)
                raise HostOpFault(f"{what}: dynamic output '{t.name}' is {t.dtype}, the "
                                  f"model's output {want}")
            continue
        n = math.prod(shapes[k]) if k < len(op.inputs) else math.prod(t.shape)
        if t.dtype != want or n != math.prod(t.shape) or n * np.dtype(want).itemsize != t.size:
            raise HostOpFault(f"{what}: tensor '{t.name}' ({t.dtype}, shape "
                              f"{tuple(t.shape)}, {t.size} bytes) does not match the model's "
                              f"{want} tensor of {n} elements")


def check_host_op(op: Any, tensors: Sequence[Any]) -> None:
    """Validate host-op record ``op`` against the memory map ``tensors`` without running
    it; raise :class:`HostOpFault` naming what is wrong."""
    what = f"host op '{op.name}' ({op.op_type})"
    if op.op_type == SEGMENT_OP:
        _check_segment(op, tensors)
        return
    if op.op_type not in HOST_OP_ATTRS:
        raise HostOpFault(f"{what}: unknown host op type (known: {', '.join(HOST_OP_ATTRS)})")
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        raise HostOpFault(f"{what}: needs exactly one input and one output tensor, has "
                          f"{len(op.inputs)} input(s) and {len(op.outputs)} output(s)")
    for ti in (*op.inputs, *op.outputs):
        if not 0 <= int(ti) < len(tensors):
            raise HostOpFault(f"{what}: tensor index {ti} is not in 0..{len(tensors) - 1}")
        t = tensors[ti]
        if t.dtype not in ("int8", "float32"):
            raise HostOpFault(f"{what}: tensor '{t.name}' has data type {t.dtype}; host ops "
                              "read and write int8 or float32 tensors")
        n = math.prod(t.shape)
        if n * np.dtype(t.dtype).itemsize != t.size or n == 0:
            raise HostOpFault(f"{what}: tensor '{t.name}' of shape {tuple(t.shape)} "
                              f"({t.dtype}) does not hold its {t.size} bytes")
    src, dst = tensors[op.inputs[0]], tensors[op.outputs[0]]
    if math.prod(src.shape) != math.prod(dst.shape):
        raise HostOpFault(f"{what}: output '{dst.name}' has {math.prod(dst.shape)} elements, "
                          f"its input '{src.name}' {math.prod(src.shape)}")
    allowed = HOST_OP_ATTRS[op.op_type]
    attrs = dict(op.attrs)
    for key in HOST_OP_REQUIRED[op.op_type]:
        if key not in attrs:
            raise HostOpFault(f"{what}: attribute '{key}' is missing")
    for key, val in attrs.items():
        if key not in allowed:
            raise HostOpFault(f"{what}: unknown attribute '{key}' (known: "
                              f"{', '.join(allowed) or 'none'})")
        kind = allowed[key]
        ok = (isinstance(val, int) and not isinstance(val, bool)) if kind is int else (
            isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val))
        if not ok:
            raise HostOpFault(f"{what}: attribute '{key}' = {val!r} is not a finite "
                              f"{kind.__name__}")
    rank = len(_nchw(np.empty(src.shape, np.int8)).shape)
    if op.op_type == "Softmax" and not -rank <= attrs.get("axis", 1) < rank:
        raise HostOpFault(f"{what}: axis {attrs['axis']} is out of range for a rank-{rank} "
                          "input")
    if op.op_type == "LRN":
        if rank != 4:
            raise HostOpFault(f"{what}: needs a rank-4 input, '{src.name}' has rank {rank}")
        if attrs["size"] < 1:
            raise HostOpFault(f"{what}: size {attrs['size']} must be >= 1")


def run_host_op(op: Any, tensors: Sequence[Any], read: Any, write: Any) -> None:
    """Execute host-op record ``op`` (``name``, ``op_type``, ``inputs``, ``outputs``,
    ``attrs``); ``tensors`` is the memory map, ``read(name)`` returns a tensor as stored,
    ``write(name, array)`` stores one. Every failure is a :class:`HostOpFault`."""
    check_host_op(op, tensors)
    if op.op_type == SEGMENT_OP:
        out = tensors[op.outputs[0]]
        try:
            if getattr(out, "dynamic", False):  # kept as onnxruntime shapes it
                y = run_segment(op.name, dict(op.attrs).get("onnx"),
                                [_nchw(read(tensors[i].name)) for i in op.inputs], flat=False)
                if y.ndim != len(out.shape) or any(
                        d and d != e for d, e in zip(out.shape, y.shape, strict=True)):
                    raise HostOpFault(f"host segment '{op.name}': its output has shape "
                                      f"{list(y.shape)}, tensor '{out.name}' is "
                                      f"{list(out.shape)} (0: data-dependent)")
                write(out.name, y)
                return
            y = run_segment(op.name, dict(op.attrs).get("onnx"),
                            [_nchw(read(tensors[i].name)) for i in op.inputs])
            shape = _nchw(np.empty(out.shape, np.int8)).shape
            if y.dtype != np.dtype(out.dtype) or y.size != math.prod(shape):
                raise HostOpFault(f"host segment '{op.name}': its output is {y.size} "
                                  f"{y.dtype} values, tensor '{out.name}' holds "
                                  f"{math.prod(shape)} {out.dtype}")
            write(out.name, _nhwc(y.reshape(shape)))
        except SegmentError as exc:
            raise HostOpFault(str(exc)) from None
        return
    src, out = tensors[op.inputs[0]], tensors[op.outputs[0]]
    try:
        q = read(src.name)
        node = QHostOp(op.name, op.op_type, [src.name], out.name, dict(op.attrs),
                       out.dtype == "float32")
        shape = _nchw(np.empty(out.shape, np.int8)).shape
        # a hostile scale may make values NaN or infinite: that is the program's result
        with np.errstate(all="ignore"):
            x = (_nchw(q.astype(np.float32)) if src.dtype == "float32"
                 else dequantize(_nchw(q), src.scale, src.zero_point))
            y = run_host([x], node)
            if out.dtype == "float32":
                write(out.name, _nhwc(np.asarray(y, np.float32).reshape(shape)))
            else:
                write(out.name, _nhwc(quantize_input(y, out.scale, out.zero_point)
                                      .reshape(shape)))
    except HostOpFault:
        raise
    except Exception as exc:
        raise HostOpFault(f"host op '{op.name}' ({op.op_type}): {type(exc).__name__}: "
                          f"{exc}") from None
