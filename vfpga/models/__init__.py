"""The benchmark networks as ONNX models with seeded random weights.

Two sources:

* ``"builder"``: the paper's benchmark networks built from scratch with ``onnx.helper``
  (``vgg16``, ``resnet50``, ``mobilenet_v1``, ``inception_v3``), and "-style" networks of
  today's op mix at small input sizes (``shufflenet_v2``). Opset 13, IR 8, fp32,
  batch 1, NCHW, static shapes; input ``input`` (float32); output ``output`` = the
  classifier logits, shape (1, 1000), no Softmax. Every conv is followed by
  BatchNormalization with non-trivial seeded parameters. See
  :mod:`vfpga.models._builder` for the initialisation.
* ``"onnx-zoo"``: the model-zoo graphs shipped with the ``onnx`` wheel
  (``zoo-resnet50``...), kept as the messy opset-9 Caffe2 exports they are, with their
  ``ConstantOfShape`` placeholder weights folded into seeded random initializers. Their
  input/output names are the original ones and most end in Softmax. See
  :mod:`vfpga.models.zoo`.

Every model is a pure function of its name and seed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from vfpga.errors import VfpgaError
from vfpga.fileio import atomic_write, check_writable
from vfpga.models.zoo import ZOO_MODELS, export_zoo_model

__all__ = ["ModelInfo", "export_model", "get_model_info", "list_models", "save_model"]


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`export_model` produces for one name.

    ``source`` is ``"builder"`` or ``"onnx-zoo"``; ``paper`` is True for the networks the
    FCCM 2020 paper evaluates (Inception v3, VGG16, MobileNet, ResNet-50 — DESIGN.md
    section 1);
    ``input_name``/``input_shape`` and ``output_name``/``output_shape`` are those of the
    single graph input (excluding IR-3 initializer inputs) and the (first) output;
    ``output_kind`` is ``"logits"`` or ``"softmax"`` (classifiers), ``"detections"`` (raw
    detection head maps) or ``"segmentation"`` (per-pixel class logits); ``opset`` is the
    default-domain opset; ``extra_outputs`` the names and shapes of further outputs (a
    detector's other heads)."""

    name: str
    description: str
    source: str
    paper: bool
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    output_kind: str
    opset: int
    extra_outputs: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _builders() -> dict[str, Callable[[int], onnx.ModelProto]]:
    from vfpga.models.convnext import build_convnext_t
    from vfpga.models.deeplab import build_deeplab_v3
    from vfpga.models.efficientnet import build_efficientnet_b0
    from vfpga.models.inception import build_inception_v3
    from vfpga.models.mobilenet import build_mobilenet_v1
    from vfpga.models.mobilenet_v3 import build_mobilenet_v3_large, build_mobilenet_v3_small
    from vfpga.models.regnety import build_regnety_style
    from vfpga.models.resnet import build_resnet50
    from vfpga.models.shufflenet import build_shufflenet_v2
    from vfpga.models.unet import build_unet
    from vfpga.models.vgg import build_vgg16
    from vfpga.models.vit import build_vit_ti16
    from vfpga.models.yolo import build_yolo_nano

    return {
        "vgg16": build_vgg16,
        "resnet50": build_resnet50,
        "mobilenet_v1": build_mobilenet_v1,
        "inception_v3": build_inception_v3,
        "mobilenet_v3_large": build_mobilenet_v3_large,
        "mobilenet_v3_small": build_mobilenet_v3_small,
        "efficientnet_b0": build_efficientnet_b0,
        "regnety_style": build_regnety_style,
        "shufflenet_v2": build_shufflenet_v2,
        "convnext_t": build_convnext_t,
        "vit_ti16": build_vit_ti16,
        "yolo_nano": build_yolo_nano,
        "deeplab_v3": build_deeplab_v3,
        "unet": build_unet,
    }


_IMG224 = (1, 3, 224, 224)
_LOGITS = (1, 1000)


def _builder(name: str, description: str, paper: bool, size: int = 224,
             opset: int = 13) -> ModelInfo:
    return ModelInfo(
        name, description, "builder", paper, "input", (1, 3, size, size), "output", _LOGITS,
        "logits", opset,
    )  # fmt: skip


def _xfmr(name: str, description: str) -> ModelInfo:
    """A transformer-style builder model: opset 17 (LayerNormalization), 128x128 input."""
    return ModelInfo(name, description, "builder", False, "input", (1, 3, 128, 128), "output",
                     _LOGITS, "logits", 17)


def _dense(name: str, description: str, outputs: tuple[tuple[str, tuple[int, ...]], ...],
           kind: str) -> ModelInfo:
    """A dense-prediction builder model: 128x128 input, ``outputs`` (the first is the
    primary one)."""
    (out, shape), *rest = outputs
    return ModelInfo(name, description, "builder", False, "input", (1, 3, 128, 128), out,
                     shape, kind, 13, tuple(rest))


def _zoo(name: str, x: str, y: str, y_shape: tuple[int, ...], kind: str) -> ModelInfo:
    return ModelInfo(name, ZOO_MODELS[name][1], "onnx-zoo", False, x, _IMG224, y, y_shape,
                     kind, 9)  # fmt: skip


_INFOS: tuple[ModelInfo, ...] = (
    _builder("vgg16", "VGG-16 (config D) with BN: 13 conv 3x3, 5 max pools, 3 FC", True),
    _builder("resnet50", "ResNet-50 v1.5: bottlenecks 3-4-6-3, projection shortcuts", True),
    _builder("mobilenet_v1", "MobileNet v1 1.0/224: 13 depthwise-separable blocks, ReLU6", True),
    _builder("inception_v3", "Inception v3 (torchvision, no aux head), 299x299", True, 299),
    _builder("mobilenet_v3_large", "MobileNetV3-Large: 15 bneck blocks, HardSwish, SE with "
             "HardSigmoid gate, 160x160", False, 160, 14),
    _builder("mobilenet_v3_small", "MobileNetV3-Small: 11 bneck blocks, HardSwish, SE with "
             "HardSigmoid gate, 160x160", False, 160, 14),
    _builder("efficientnet_b0", "EfficientNet-B0: 16 MBConv blocks, SiLU, SE with Sigmoid "
             "gate, 160x160", False, 160),
    _builder("regnety_style", "RegNetY-400MF-style: 9 Y blocks (grouped 3x3, SE with "
             "Sigmoid gate), 160x160", False, 160),
    _builder("shufflenet_v2", "ShuffleNetV2-style x1.0: Split, channel shuffle, Concat; "
             "units 2-3-2, 128x128", False, 128),
    _xfmr("convnext_t", "ConvNeXt-T-style: patchify stem, dw 7x7, LayerNorm, GELU MLP, "
          "layer scale; blocks 1-1-2-1, 128x128"),
    _xfmr("vit_ti16", "ViT-Ti/16-style: patch embed, class token, 4 pre-norm blocks "
          "(MHSA + GELU MLP), 128x128"),
    _dense("yolo_nano", "YOLO-nano-style detector: SiLU conv blocks, C3, SPPF, nearest 2x "
           "upsampling PAN neck, 3 heads", (("det_p3", (1, 39, 16, 16)),
                                          ("det_p4", (1, 39, 8, 8)),
                                          ("det_p5", (1, 39, 4, 4))), "detections"),
    _dense("deeplab_v3", "DeepLabV3-style segmentation: dilated residual stage, ASPP "
           "(dilation 6/12/18 + pooling), bilinear upsampling", (("output", (1, 6, 128, 128)),),
           "segmentation"),
    _dense("unet", "U-Net: 4 encoder/decoder stages, ConvTranspose 2x2/2 upsampling, skip "
           "concats", (("output", (1, 2, 128, 128)),), "segmentation"),
    _zoo("zoo-alexnet", "data_0", "prob_1", _LOGITS, "softmax"),
    _zoo("zoo-zfnet512", "gpu_0/data_0", "gpu_0/softmax_1", _LOGITS, "softmax"),
    _zoo("zoo-vgg19", "data_0", "prob_1", _LOGITS, "softmax"),
    _zoo("zoo-resnet50", "gpu_0/data_0", "gpu_0/softmax_1", _LOGITS, "softmax"),
    _zoo("zoo-inception_v1", "data_0", "prob_1", _LOGITS, "softmax"),
    _zoo("zoo-inception_v2", "data_0", "prob_1", _LOGITS, "softmax"),
    _zoo("zoo-squeezenet", "data_0", "softmaxout_1", (1, 1000, 1, 1), "softmax"),
    _zoo("zoo-shufflenet", "gpu_0/data_0", "gpu_0/softmax_1", _LOGITS, "softmax"),
    _zoo("zoo-densenet121", "data_0", "fc6_1", (1, 1000, 1, 1), "logits"),
)


def list_models() -> list[ModelInfo]:
    """All models, builder ones first, in a stable order."""
    return list(_INFOS)


def model_names() -> list[str]:
    """Names of all models, in :func:`list_models` order."""
    return [i.name for i in _INFOS]


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; unknown names raise :class:`VfpgaError`
    listing the valid ones."""
    for info in _INFOS:
        if info.name == name:
            return info
    raise VfpgaError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")


def export_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """Build (or load and re-weight) model ``name`` with weights drawn from ``seed``.

    Deterministic: the same (name, seed) always gives the same model, byte for byte.
    Unknown names raise :class:`VfpgaError` listing the valid ones; a negative seed too."""
    info = get_model_info(name)
    if seed < 0:
        raise VfpgaError(f"seed must be a non-negative integer, got {seed}")
    if info.source == "builder":
        return _builders()[name](seed)
    return export_zoo_model(name, seed)


def save_model(name: str, path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Export ``name`` and write it to ``path`` atomically (a temporary file in the same
    folder, then ``os.replace``; nothing is left behind on failure). Returns the path."""
    out = check_writable(path)
    model = export_model(name, seed)
    atomic_write(out, model.SerializeToString())
    return out
