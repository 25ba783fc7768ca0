"""The integer golden reference (:func:`run_reference`) and its comparison with ONNX
Runtime (:mod:`vfpga.reference.compare`)."""

from vfpga.reference.executor import ReferenceError, float_outputs, run_reference

__all__ = ["ReferenceError", "float_outputs", "run_reference"]
