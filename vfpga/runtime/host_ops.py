"""Host ops: operators the accelerator does not run (Softmax, LRN), executed on the host
CPU between layer barriers, as the binary's HOSTOPS table says.

A host op reads its input tensors from the task's DDR (int8 NHWC, dequantized with each
tensor's scale and zero point, viewed as NCHW), runs the op in float32 with the same host
kernels as the integer reference (``vfpga.reference.executor.run_host``: host ops run on
a CPU in both, so their float arithmetic is the same code), and writes its output back to
DDR: quantized like ONNX QuantizeLinear (round half to even, saturate) for an int8
tensor, or as float32 for a float output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vfpga.errors import VfpgaError
from vfpga.frontend.qgraph import QHostOp
from vfpga.reference.arith import dequantize, quantize_input
from vfpga.reference.executor import ReferenceError, run_host


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def _nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def run_host_op(op: Any, tensors: Sequence[Any], read: Any, write: Any) -> None:
    """Execute host-op record ``op`` (``name``, ``op_type``, ``inputs``, ``outputs``,
    ``attrs``); ``tensors`` is the memory map, ``read(name)`` returns a tensor as stored,
    ``write(name, array)`` stores one."""
    ins = []
    for ti in op.inputs:
        t = tensors[ti]
        q = read(t.name)
        ins.append(_nchw(q.astype(np.float32)) if t.dtype == "float32"
                   else dequantize(_nchw(q), t.scale, t.zero_point))
    out = tensors[op.outputs[0]]
    node = QHostOp(op.name, op.op_type, [tensors[i].name for i in op.inputs], out.name,
                   dict(op.attrs), out.dtype == "float32")
    try:
        y = run_host(ins, node)
    except ReferenceError as exc:
        raise VfpgaError(f"host op '{op.name}' ({op.op_type}): {exc}") from None
    if out.dtype == "float32":
        write(out.name, _nhwc(y.reshape(_nchw(np.zeros(out.shape)).shape)).astype(np.float32))
    else:
        q = quantize_input(y, out.scale, out.zero_point)
        write(out.name, _nhwc(q.reshape(_nchw(np.zeros(out.shape, np.int8)).shape)))
