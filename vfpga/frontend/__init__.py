"""ONNX front end: fp32 normalization (:func:`normalize`) and the quantized graph schema.

Only ``onnx`` is imported eagerly; onnxruntime and xDSL are imported by the functions that
need them.
"""

from vfpga.frontend.normalize import (
    NORMALIZED_OPS,
    SUPPORTED_OPS,
    NormalizeReport,
    is_qdq,
    normalize,
    normalize_with_report,
)

__all__ = [
    "NORMALIZED_OPS",
    "SUPPORTED_OPS",
    "NormalizeReport",
    "is_qdq",
    "normalize",
    "normalize_with_report",
]
