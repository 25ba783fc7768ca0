"""Host segments: connected runs of ONNX nodes the accelerator cannot run, executed on the
host CPU by onnxruntime between accelerator layers.

A host segment is a :class:`~vfpga.frontend.qgraph.QHostOp` of type :data:`SEGMENT_OP`
whose ``attrs`` carry the segment as a self-contained ONNX model (``onnx``: the
serialized ``ModelProto``, base64 text, at most :data:`MAX_SEGMENT_BYTES` bytes) and, for
the placement report, the source nodes it holds (``nodes``, ``ops``, ``reasons``) and
their multiply-accumulates (``macs``).

Boundary arithmetic (the contract the emulator and the golden reference share, because
both call :func:`run_segment`): every segment input is an **int8** tensor of the
accelerator, passed as stored (the segment model starts with its own
``DequantizeLinear(x, scale, zero_point)`` with the tensor's int8 zero point), or the
**float32** graph input of a model that never quantizes it (``QGraph.float_inputs``), or the
**int64** graph input of token ids (``QGraph.index_inputs``), and the
output is either **int8** (the model ends with ``QuantizeLinear(y, scale, zero_point)``
of the output tensor) or **float32** for a graph output. So dequantization and
quantization happen inside onnxruntime, exactly as in the QDQ model the segment was cut
from; no numpy arithmetic sits at the boundary. Inputs are reshaped (row-major, NCHW
order) to the ONNX shapes the model declares, the output is returned with the shape the
caller's tensor has (same element count).

Any failure (undecodable text, oversized or malformed model, onnxruntime refusing the
model or failing to run it, a wrong output) raises :class:`SegmentError` naming the
segment; callers turn it into a fault of the task (emulator) or a reference error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from vfpga.errors import VfpgaError
from vfpga.frontend.qgraph import SEGMENT_OP

__all__ = ["SEGMENT_OP", "SegmentError", "decode_model", "run_segment", "segment_io"]

#: Largest serialized segment model accepted (bytes, before base64).
MAX_SEGMENT_BYTES = 64 << 20
#: onnxruntime sessions kept per process (keyed by the model's SHA-256).
SESSION_CACHE = 16

_ELEM = {"tensor(int8)": np.int8, "tensor(float)": np.float32, "tensor(int32)": np.int32,
         "tensor(int64)": np.int64}
_IN_TYPES = ("tensor(int8)", "tensor(float)", "tensor(int64)")
_lock = threading.Lock()
_sessions: OrderedDict[str, Any] = OrderedDict()


class SegmentError(VfpgaError):
    """A host segment cannot run (the message names it and says why)."""


def decode_model(name: str, text: object) -> bytes:
    """The serialized model of segment ``name`` from its ``onnx`` attribute; checks type,
    encoding and :data:`MAX_SEGMENT_BYTES`."""
    if not isinstance(text, str) or not text:
        raise SegmentError(f"host segment '{name}': attribute 'onnx' is missing or not text")
    if len(text) > (MAX_SEGMENT_BYTES + 2) // 3 * 4:
        raise SegmentError(
            f"host segment '{name}': its ONNX model exceeds {MAX_SEGMENT_BYTES} bytes"
        )
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SegmentError(
            f"host segment '{name}': attribute 'onnx' is not base64: {exc}"
        ) from None


#: onnxruntime graph fusions a segment session must not apply: a segment holds only the
#: host nodes one output depends on, so a float ``Add`` that also feeds other nodes in the
#: whole model (a ViT's position-embedding sum, read by the residual stream and by
#: LayerNorm) has a single consumer there, and ``SkipLayerNormFusion`` would fuse
#: ``Add -> LayerNormalization`` into ``SkipLayerNormalization``, whose float32 rounding
#: differs from the unfused ops the whole model runs (an int8 code off by one).
SEGMENT_DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)


def _session(name: str, data: bytes) -> Any:
    key = hashlib.sha256(data).hexdigest()
    with _lock:
        sess = _sessions.get(key)
        if sess is not None:
            _sessions.move_to_end(key)
            return sess
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=list(SEGMENT_DISABLED_OPTIMIZERS))
    except Exception as exc:
        raise SegmentError(
            f"host segment '{name}': onnxruntime rejects its model: "
            f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        ) from None
    ins, outs = sess.get_inputs(), sess.get_outputs()
    for k, io in enumerate((*ins, *outs)):
        out = k >= len(ins)
        if io.type not in _ELEM or (not out and io.type not in _IN_TYPES):
            raise SegmentError(
                f"host segment '{name}': tensor '{io.name}' has type {io.type}; "
                "segment inputs are int8, float32 or int64 (ids), outputs int8, float32, "
                "int32 or int64"
            )
        # an output's dimensions may be symbolic: a shape the data decides (NMS)
        if not all((isinstance(d, int) and d > 0) or (out and not isinstance(d, int))
                   for d in io.shape):
            raise SegmentError(
                f"host segment '{name}': tensor '{io.name}' has a non-static shape {io.shape}"
            )
    if len(outs) != 1:
        raise SegmentError(
            f"host segment '{name}': needs exactly one output, has {len(outs)} output(s)"
        )
    with _lock:
        _sessions[key] = sess
        while len(_sessions) > SESSION_CACHE:
            _sessions.popitem(last=False)
    return sess


def segment_io(name: str, text: object) -> tuple[list[tuple[int, ...]], list[str], str]:
    """The ONNX input shapes, the input dtypes (``"int8"``, ``"float32"`` or ``"int64"``)
    and the output dtype (also ``"int32"``) of segment ``name``, loading (and validating)
    its model."""
    sess = _session(name, decode_model(name, text))
    ins = sess.get_inputs()
    return (
        [tuple(i.shape) for i in ins],
        [np.dtype(_ELEM[i.type]).name for i in ins],
        np.dtype(_ELEM[sess.get_outputs()[0].type]).name,
    )


def run_segment(name: str, text: object, inputs: list[np.ndarray], *,
                flat: bool = True) -> np.ndarray:
    """Run segment ``name`` (its ``onnx`` attribute ``text``) on ``inputs`` (int8, or
    float32 / int64 where the model declares the float graph input or the int64 ids; NCHW
    element order, any shape with the declared element count, batch 1); returns the
    output, flat (``flat=False``: in the shape onnxruntime gives it, for an output whose
    shape the data decides).
    Raises :class:`SegmentError`."""
    sess = _session(name, decode_model(name, text))
    feeds = {}
    decl = sess.get_inputs()
    if len(inputs) != len(decl):
        raise SegmentError(f"host segment '{name}': has {len(decl)} input(s), got {len(inputs)}")
    for d, x in zip(decl, inputs, strict=True):
        x = np.asarray(x)
        want = np.dtype(_ELEM[d.type])
        if x.dtype != want or x.size != int(np.prod(d.shape)):
            raise SegmentError(
                f"host segment '{name}': input '{d.name}' needs "
                f"{int(np.prod(d.shape))} {want.name} values, got {x.size} {x.dtype}"
            )
        feeds[d.name] = np.ascontiguousarray(x).reshape(d.shape)
    try:
        (y,) = sess.run(None, feeds)
    except Exception as exc:
        raise SegmentError(
            f"host segment '{name}': onnxruntime failed: "
            f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        ) from None
    return np.asarray(y).reshape(-1) if flat else np.asarray(y)
