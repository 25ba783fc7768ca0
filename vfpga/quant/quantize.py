"""Post-training static quantization of normalized fp32 models to QDQ ONNX.

:func:`quantize_model` runs onnxruntime's ``quantize_static`` on a model produced by
:func:`vfpga.frontend.normalize` with the settings in :data:`QUANT_SETTINGS` (see
``docs/quantization.md`` for why): QDQ format, int8 weights symmetric per output channel,
uint8 activations asymmetric per tensor (onnxruntime then runs every quantized op with its
integer kernels; the lowering maps each uint8 tensor exactly to the accelerator's int8, ``q -
128`` with zero point ``z - 128``), int32 biases, MinMax calibration. Before
quantizing, the calibrated ranges of tensors joined by a ``Concat`` (its inputs and output)
or by a scale-preserving op (``MaxPool``, ``AveragePool``, ``Reshape``) are merged, so that
every ``Concat`` input has exactly the output's scale and zero point (the accelerator then
concatenates for free by writing producers at channel offsets).

Calibration data (:func:`random_calibration`, :func:`image_calibration`):

* ``"random"``: ``num_random`` images of i.i.d. standard normal values (seeded);
* ``"dir"``: every ``.png``/``.jpg``/``.jpeg``/``.bmp`` file of ``calib_dir`` (sorted by
  name), decoded with PIL (or matplotlib for PNG), converted to RGB, resized to the model's HxW by
  bilinear interpolation in numpy, scaled to [0, 1] and normalized with the ImageNet
  mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), NCHW.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from vfpga.errors import FrontendError

#: File suffixes read by :func:`image_calibration`.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: ImageNet channel mean and standard deviation (RGB) used to normalize calibration images.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

#: Op types handed to ``quantize_static`` (every op of the normalized set).
OPS_TO_QUANTIZE: tuple[str, ...] = (
    "Conv", "Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Concat",
    "Softmax", "LRN", "Reshape", "Gather", "Mul", "Sigmoid", "HardSigmoid", "HardSwish",
    "Tanh", "LeakyRelu", "Elu", "Sub",
)

#: Ops whose output ``quantize_static`` gives the quantization of their input.
_SCALE_SHARING = ("MaxPool", "AveragePool", "Reshape", "Gather")

#: The ``extra_options`` passed to ``quantize_static``.
EXTRA_OPTIONS: dict[str, Any] = {
    # zero point 0 for weights: the MAC array multiplies raw int8 weights
    "WeightSymmetric": True,
    # activations get a per-tensor zero point: a ReLU output uses all 256 levels
    "ActivationSymmetric": False,
    # with asymmetric activations ORT drops Relu/Clip and quantizes the producer's output
    # with the activation's range, so the clamp is the int8 saturation (fused activation)
    "QDQKeepRemovableActivations": False,
    # weights as int8 initializers feeding DequantizeLinear (no float weight + Q pair)
    "AddQDQPairToWeight": False,
    # one Q/DQ pair per tensor, shared by all consumers
    "DedicatedQDQPair": False,
    # pools/reshapes get Q/DQ even where their input was not quantized
    "ForceQuantizeNoInputCheck": True,
}

#: Every keyword argument of ``quantize_static`` we set (for the docs and the report).
QUANT_SETTINGS: dict[str, Any] = {
    "quant_format": "QuantFormat.QDQ",
    "per_channel": True,
    "reduce_range": False,
    # uint8 activations: onnxruntime fuses every DQ -> op -> Q island into its integer
    # kernels (QLinearConv u8s8, ...); with int8 activations most convolutions run in float32
    "activation_type": "QuantType.QUInt8",
    "weight_type": "QuantType.QInt8",
    "calibrate_method": "CalibrationMethod.MinMax",
    "op_types_to_quantize": list(OPS_TO_QUANTIZE),
    "extra_options": EXTRA_OPTIONS,
}

Progress = Callable[[int, int], None]


def quantize_static_kwargs() -> dict[str, Any]:
    """The keyword arguments of :data:`QUANT_SETTINGS` as onnxruntime objects, ready for
    ``onnxruntime.quantization.quantize_static`` (imports onnxruntime)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    def enum(text: str) -> Any:
        kind, member = text.split(".")
        return getattr({"QuantFormat": QuantFormat, "QuantType": QuantType,
                        "CalibrationMethod": CalibrationMethod}[kind], member)

    kw = dict(QUANT_SETTINGS)
    for k in ("quant_format", "activation_type", "weight_type", "calibrate_method"):
        kw[k] = enum(kw[k])
    kw["op_types_to_quantize"] = list(OPS_TO_QUANTIZE)
    kw["extra_options"] = dict(EXTRA_OPTIONS)
    return kw


def _input_info(model: onnx.ModelProto) -> tuple[str, tuple[int, ...]]:
    inits = {i.name for i in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in inits]
    if len(ins) != 1:
        raise FrontendError("quantize_model needs a model with exactly one input "
                            "(run vfpga.frontend.normalize first)")
    dims = tuple(int(d.dim_value) for d in ins[0].type.tensor_type.shape.dim)
    return ins[0].name, dims


def random_calibration(shape: tuple[int, ...], num: int, seed: int) -> list[np.ndarray]:
    """``num`` float32 arrays of ``shape`` with i.i.d. standard normal entries drawn from
    ``numpy.random.default_rng(seed)``."""
    if num < 1:
        raise FrontendError(f"the number of random calibration inputs must be >= 1 (got {num})")
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(num)]


def _read_image(path: Path) -> np.ndarray:
    """Decode an image file to float32 RGB ``(H, W, 3)`` in [0, 1]."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except ImportError:  # pragma: no cover - PIL ships with matplotlib
        import matplotlib.image as mpimg

        arr = np.asarray(mpimg.imread(str(path)), dtype=np.float32)
        if arr.max() > 1.0:
            arr = arr / 255.0
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        arr = arr[..., :3]
    except Exception as exc:
        raise FrontendError(f"{path}: cannot read image ({exc})") from None
    return arr


def _resize_bilinear(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of ``(H, W, C)`` to ``(h, w, C)`` with half-pixel centres."""
    ih, iw = img.shape[:2]

    def coords(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = (np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5
        x = np.clip(x, 0, n_in - 1)
        lo = np.floor(x).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (x - lo).astype(np.float32)

    y0, y1, fy = coords(h, ih)
    x0, x1, fx = coords(w, iw)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return (top * (1 - fy)[:, None, None] + bot * fy[:, None, None]).astype(np.float32)


def image_calibration(calib_dir: Path, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Calibration inputs from the images in ``calib_dir`` (see the module docstring)."""
    calib_dir = Path(calib_dir)
    if not calib_dir.is_dir():
        raise FrontendError(f"{calib_dir}: calibration directory does not exist")
    files = sorted(p for p in calib_dir.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FrontendError(f"{calib_dir}: no calibration images (expected files ending in "
                            f"{', '.join(IMAGE_SUFFIXES)})")
    if len(shape) != 4 or shape[1] != 3:
        raise FrontendError(f"image calibration needs a model input of shape (1, 3, H, W); "
                            f"this model's input has shape {shape}")
    out = []
    for f in files:
        img = _resize_bilinear(_read_image(f), shape[2], shape[3])
        img = (img - IMAGENET_MEAN) / IMAGENET_STD
        out.append(np.ascontiguousarray(img.transpose(2, 0, 1)[None]).astype(np.float32))
    return out


class _Reader:
    """A ``CalibrationDataReader`` over a list of arrays, reporting progress."""

    def __init__(self, name: str, data: list[np.ndarray], progress: Progress | None) -> None:
        self.name = name
        self.data = data
        self.progress = progress
        self.it: Iterator[np.ndarray] = iter(data)
        self.done = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self.it, None)
        if x is None:
            return None
        if self.progress is not None and self.done:
            self.progress(self.done, len(self.data))
        self.done += 1
        return {self.name: x}

    def __len__(self) -> int:
        return len(self.data)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.it = iter(self.data[start_index:end_index])

    def rewind(self) -> None:
        self.it = iter(self.data)
        self.done = 0


def _share_groups(model: onnx.ModelProto) -> list[set[str]]:
    """Sets of tensors that must share one quantization: every Concat's inputs and output,
    merged transitively with the input and output of scale-sharing ops."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    concat_tensors: set[str] = set()
    for n in model.graph.node:
        if n.op_type == "Concat":
            for i in n.input:
                union(i, n.output[0])
            concat_tensors.update([*n.input, n.output[0]])
        elif n.op_type in _SCALE_SHARING:
            union(n.input[0], n.output[0])
    groups: dict[str, set[str]] = {}
    for t in list(parent):
        groups.setdefault(find(t), set()).add(t)
    return [g for g in groups.values() if g & concat_tensors and len(g) > 1]


def _merged_ranges(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]
                   ) -> dict[str, tuple[float, float]]:
    """The common calibrated range of each :func:`_share_groups` group.

    onnxruntime fuses a ``Relu``/``Clip`` into the producer of its input by quantizing with
    the activation's range, so the clamp is the int8 saturation. A fused activation's
    output therefore must keep a range inside the activation's output interval (``lo`` = 0,
    ``hi`` <= the Clip's max): such a tensor leaves its group when the merged range would
    exceed that interval, and keeps its own range (its consumers then requantize)."""
    consts = {i.name: i for i in model.graph.initializer}
    bounds: dict[str, tuple[float, float]] = {}
    for n in model.graph.node:
        if n.op_type == "Relu":
            bounds[n.output[0]] = (0.0, float("inf"))
        elif n.op_type == "Clip":
            hi = float("inf")
            if len(n.input) > 2 and n.input[2] in consts:
                hi = float(onnx.numpy_helper.to_array(consts[n.input[2]]).reshape(-1)[0])
            bounds[n.output[0]] = (0.0, hi)
    merged: dict[str, tuple[float, float]] = {}
    for group in _share_groups(model):
        members = {t for t in group if t in ranges}
        while members:
            lo = min(ranges[t][0] for t in members)
            hi = max(ranges[t][1] for t in members)
            bad = {t for t in members if t in bounds
                   and (lo < bounds[t][0] or hi > bounds[t][1])}
            if not bad:
                for t in members:
                    merged[t] = (lo, hi)
                break
            members -= bad
    return merged


#: The output scale of every Softmax (zero point 0): 1/256.
SOFTMAX_SCALE = 1.0 / 256.0


def set_softmax_scale(qmodel: onnx.ModelProto) -> None:
    """Give every Softmax output the scale :data:`SOFTMAX_SCALE` (in place).

    ``quantize_static`` always quantizes a Softmax output to the range [0, 1], i.e. scale
    1/255 (float32 ``0.003921569``). onnxruntime's ``QLinearSoftmax`` kernel multiplies by
    ``floor(1 / y_scale)``, which is 254 for that scale: every probability would be scaled
    by 254/255. With 1/256 (what onnxruntime's own QOperator quantizer uses) the kernel
    computes ``round(p * 256)`` as ``QuantizeLinear`` does; probabilities above 255/256
    saturate. The scale initializer read by the Softmax output's QuantizeLinear (shared by
    the DequantizeLinear and by views of that tensor) is replaced; a zero point other than
    0 leaves the model unchanged."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in qmodel.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {i.name: i for i in qmodel.graph.initializer}
    for n in qmodel.graph.node:
        if n.op_type != "Softmax":
            continue
        for q in consumers.get(n.output[0], []):
            if q.op_type != "QuantizeLinear" or q.input[1] not in inits:
                continue
            zp = inits.get(q.input[2]) if len(q.input) > 2 else None
            if zp is not None and np.any(onnx.numpy_helper.to_array(zp)):
                continue
            new = onnx.numpy_helper.from_array(np.array(SOFTMAX_SCALE, np.float32), q.input[1])
            inits[q.input[1]].CopyFrom(new)


RELEASE_BYTES = 1 << 16
"""``quantize_model(release=True)`` drops the data of initializers larger than this."""


def quantize_model(
    model: onnx.ModelProto,
    *,
    calib: str = "random",
    calib_dir: Path | None = None,
    num_random: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
    calib_data: Sequence[np.ndarray] | None = None,
    release: bool = False,
) -> onnx.ModelProto:
    """Quantize a normalized fp32 model to QDQ (int8 weights, uint8 activations) with
    onnxruntime (settings: :data:`QUANT_SETTINGS`).

    ``calib`` is ``"random"`` (``num_random`` seeded normal inputs) or ``"dir"`` (the images
    of ``calib_dir``); ``calib_data``, when given, replaces both: the model's input arrays
    (float32, the model's input shape) used as they are. ``progress(done, total)`` is
    called as calibration inputs are consumed (``done`` from 1 to ``total``). All
    intermediate files live in a temporary directory that is removed on return. With
    ``release``, once the model is written for onnxruntime the data of its initializers
    over :data:`RELEASE_BYTES` is dropped from ``model`` (the caller's model keeps only
    its structure): onnxruntime's quantizer then is the peak of memory. Raises
    :class:`~vfpga.errors.FrontendError` for bad calibration options or data.
    """
    name, shape = _input_info(model)
    if calib_data is not None:
        data = [np.asarray(x, dtype=np.float32) for x in calib_data]
        if not data:
            raise FrontendError("calib_data is empty: give at least one calibration input")
        for x in data:
            if tuple(x.shape) != shape:
                raise FrontendError(f"a calibration input has shape {tuple(x.shape)}; the "
                                    f"model's input '{name}' has shape {shape}")
    elif calib == "random":
        data = random_calibration(shape, num_random, seed)
    elif calib == "dir":
        if calib_dir is None:
            raise FrontendError("calib='dir' needs calib_dir")
        data = image_calibration(Path(calib_dir), shape)
    else:
        raise FrontendError(f"unknown calibration kind {calib!r} (use 'random' or 'dir')")
    reader = _Reader(name, data, progress)

    try:
        qmodel = _calibrate_and_quantize(model, reader, data, progress, release)
    except FrontendError:
        raise
    except Exception as exc:  # onnxruntime's errors (Fail, InvalidArgument, ...) and asserts
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FrontendError(f"model '{model.graph.name or '<model>'}': onnxruntime cannot "
                            f"calibrate or quantize the model: {type(exc).__name__}: "
                            f"{first[:400]}") from None
    set_softmax_scale(qmodel)
    return qmodel


def _calibrate_and_quantize(model: onnx.ModelProto, reader: Any, data: list[np.ndarray],
                            progress: Any, release: bool = False) -> onnx.ModelProto:
    """Calibrate ``model`` on ``reader`` with onnxruntime and quantize it (QDQ); with
    ``release``, drop ``model``'s large initializer data once it is written (see
    :func:`quantize_model`)."""
    from onnxruntime.quantization import CalibrationMethod, quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, create_calibrator

    with tempfile.TemporaryDirectory(prefix="vfpga-quant-") as tmp:
        tmpd = Path(tmp)
        src = tmpd / "model.onnx"
        onnx.save_model(model, str(src), save_as_external_data=model.ByteSize() > (1 << 30))
        if release:  # onnxruntime reads the file; keep only the graph's structure here
            for init in model.graph.initializer:
                if init.ByteSize() > RELEASE_BYTES:
                    init.ClearField("raw_data")
                    init.ClearField("float_data")
        calibrator = create_calibrator(
            src, list(OPS_TO_QUANTIZE), augmented_model_path=str(tmpd / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
        del calibrator
        if progress is not None:
            progress(len(data), len(data))
        assert isinstance(ranges, TensorsData)
        merged = _merged_ranges(model, {t: (float(np.min(td.range_value[0])),
                                            float(np.max(td.range_value[1])))
                                        for t, td in ranges.data.items()})
        # rewrite the cache with merged ranges; quantize_static reads it instead of
        # re-running calibration
        from onnxruntime.quantization.calibrate import TensorData, save_tensors_data

        new = {}
        for t, td in ranges.data.items():
            if t in merged:
                lo, hi = merged[t]
                td = TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
            new[t] = td
        cache = tmpd / "calib.json"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, new), cache)
        out = tmpd / "model.qdq.onnx"
        quantize_static(
            str(src), str(out), calibration_data_reader=None,
            calibration_cache_path=str(cache), **quantize_static_kwargs(),
        )
        return onnx.load(str(out))


__all__ = [
    "EXTRA_OPTIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SUFFIXES",
    "OPS_TO_QUANTIZE",
    "QUANT_SETTINGS",
    "SOFTMAX_SCALE",
    "image_calibration",
    "quantize_model",
    "quantize_static_kwargs",
    "random_calibration",
    "set_softmax_scale",
]
