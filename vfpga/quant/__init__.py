"""Post-training quantization of normalized fp32 ONNX models to QDQ (onnxruntime).

onnxruntime is imported only when :func:`quantize_model` runs.
"""

from vfpga.quant.quantize import (
    EXTRA_OPTIONS,
    OPS_TO_QUANTIZE,
    QUANT_SETTINGS,
    image_calibration,
    quantize_model,
    quantize_static_kwargs,
    random_calibration,
)

__all__ = [
    "EXTRA_OPTIONS",
    "OPS_TO_QUANTIZE",
    "QUANT_SETTINGS",
    "image_calibration",
    "quantize_model",
    "quantize_static_kwargs",
    "random_calibration",
]
