"""From an ONNX file (fp32 or QDQ) to a :class:`~vfpga.frontend.qgraph.QGraph`.

An fp32 model goes through :func:`vfpga.frontend.normalize.normalize` (the accelerator's op
set), :func:`vfpga.quant.quantize.quantize_model` (onnxruntime ``quantize_static``, QDQ,
per-channel int8 weights, uint8 activations, lowered exactly to int8) and
:func:`vfpga.frontend.qdq_lower.lower_qdq`.
A model that already holds ``QuantizeLinear``/``DequantizeLinear`` nodes is lowered as it
is. onnxruntime and the quantizer are imported only when needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import onnx

from vfpga.errors import FrontendError
from vfpga.frontend.model_checks import check_model, fix_input_shapes
from vfpga.frontend.qdq_lower import LoweringResult, lower_qdq_mapped
from vfpga.frontend.qgraph import QGraph

if TYPE_CHECKING:
    from vfpga.quant.inputs import ImagePrep

CalibKind = Literal["random", "dir"]


@dataclass
class LoadedModel:
    """A lowered model: the QGraph with its ORT tensor map (``lowered``), the QDQ model
    (what ORT runs), the normalized fp32 model (``None`` when the input was already QDQ)
    and the name used in messages."""

    lowered: LoweringResult
    qdq: onnx.ModelProto
    fp32: onnx.ModelProto | None
    source: str

    @property
    def graph(self) -> QGraph:
        return self.lowered.graph


#: Random calibration inputs used when none are given (``--calib-random``).
DEFAULT_CALIB_RANDOM = 16

#: Newest ONNX IR version onnxruntime loads; newer files (saved by a newer onnx package)
#: are relabelled, their content being what older IR versions describe too.
ORT_MAX_IR_VERSION = 10


def _ir_for_ort(model: onnx.ModelProto) -> onnx.ModelProto:
    if model.ir_version > ORT_MAX_IR_VERSION:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.ir_version = ORT_MAX_IR_VERSION
    return model


def read_model(path_or_model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """The model and its display name; a path that cannot be read raises FrontendError.
    A model of an IR version newer than onnxruntime reads is relabelled to
    :data:`ORT_MAX_IR_VERSION`."""
    if isinstance(path_or_model, onnx.ModelProto):
        return _ir_for_ort(path_or_model), path_or_model.graph.name or "<model>"
    path = Path(path_or_model)
    if not path.is_file():
        raise FrontendError(f"{path}: no such file")
    try:
        return _ir_for_ort(onnx.load(str(path))), str(path)
    except Exception as exc:  # onnx raises DecodeError / OSError variants
        raise FrontendError(f"{path}: not a readable ONNX model ({exc})") from None


def load_model(
    path_or_model: str | Path | onnx.ModelProto,
    *,
    calib: CalibKind = "random",
    num_random: int = DEFAULT_CALIB_RANDOM,
    calib_dir: str | Path | None = None,
    seed: int = 0,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    keep_fp32: bool = True,
    calib_method: str = "minmax",
    image_prep: ImagePrep | None = None,
) -> LoadedModel:
    """Read, (normalize and quantize if fp32,) and lower a model; see :func:`load_qgraph`.
    With ``keep_fp32=False`` the normalized fp32 model is not kept (``fp32`` is None): it
    is handed to the quantizer (:class:`vfpga.quant.quantize.ModelHandoff`), which drops
    it once written for onnxruntime, so that the quantizer is the peak of memory.
    ``input_shapes`` (``--input-shape``) fixes graph input dimensions first. ``calib_method``
    (``--calib-method``) and ``image_prep`` (``--mean/--std`` of ``calib_dir`` images)
    are passed to :func:`vfpga.quant.quantize.quantize_model`."""
    from vfpga.frontend.normalize import is_qdq

    model, source = read_model(path_or_model)
    model = fix_input_shapes(model, input_shapes or {}, source)
    if is_qdq(model):
        check_model(model, source)
        return LoadedModel(lower_qdq_mapped(model, source), model, None, source)
    if calib == "dir" and calib_dir is None:
        raise FrontendError("calibration from a directory needs calib_dir")
    from vfpga.frontend.normalize import normalize
    from vfpga.quant.quantize import ModelHandoff, quantize_model

    fp32: onnx.ModelProto | None = normalize(model, source)
    del model
    assert fp32 is not None
    given: onnx.ModelProto | ModelHandoff = fp32
    if not keep_fp32:  # the quantizer drops the model once written (no reference here)
        given, fp32 = ModelHandoff(fp32), None
    qdq = quantize_model(
        given,
        calib=calib,
        calib_dir=Path(calib_dir) if calib_dir is not None else None,
        num_random=num_random,
        seed=seed,
        calib_method=calib_method,
        image_prep=image_prep,
    )
    del given
    return LoadedModel(lower_qdq_mapped(qdq, source, quantized=True), qdq, fp32, source)


def load_qgraph(
    path_or_model: str | Path | onnx.ModelProto,
    *,
    calib: CalibKind = "random",
    num_random: int = DEFAULT_CALIB_RANDOM,
    calib_dir: str | Path | None = None,
    seed: int = 0,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    calib_method: str = "minmax",
    image_prep: ImagePrep | None = None,
) -> tuple[QGraph, onnx.ModelProto]:
    """The QGraph of an ONNX model (path or ``ModelProto``) and the QDQ model it was
    lowered from (for ONNX Runtime).

    A QDQ model is lowered as it is. An fp32 model is normalized, quantized — calibrated on
    ``num_random`` random inputs drawn with ``seed`` (``calib="random"``) or on the images
    in ``calib_dir`` (``calib="dir"``, preprocessed by ``image_prep``, see
    :mod:`vfpga.quant.quantize`) with the ``calib_method`` calibrator — and lowered. Raises
    :class:`vfpga.errors.FrontendError` for unreadable or unsupported models.
    """
    loaded = load_model(
        path_or_model, calib=calib, num_random=num_random, calib_dir=calib_dir, seed=seed,
        input_shapes=input_shapes, calib_method=calib_method, image_prep=image_prep,
    )
    return loaded.graph, loaded.qdq
