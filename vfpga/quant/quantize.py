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
  name), preprocessed by :func:`vfpga.quant.inputs.image_input` (center-crop to the
  model's aspect ratio, bilinear resize, ``(x - mean) / std`` with the given
  :class:`~vfpga.quant.inputs.ImagePrep`, by default ImageNet's mean and std).

Calibration method (:data:`CALIB_METHODS`, ``calib_method``): onnxruntime's
``MinMax`` (the default), ``Entropy`` or ``Percentile`` calibrator computes each
tensor's range (histogram settings: :data:`HISTOGRAM_OPTIONS`); the Concat merging above
applies to every method.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from vfpga.errors import FrontendError, VfpgaError
from vfpga.quant.index_inputs import (
    check_indices,
    index_bound,
    is_index_input,
    random_id_inputs,
    read_id_files,
)
from vfpga.quant.inputs import IMAGE_SUFFIXES, ImagePrep, image_input, input_files

#: Op types handed to ``quantize_static`` (every op of the normalized set).
OPS_TO_QUANTIZE: tuple[str, ...] = (
    "Conv", "Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Concat",
    "Softmax", "LRN", "Reshape", "Gather", "Mul", "Sigmoid", "HardSigmoid", "HardSwish",
    "Tanh", "LeakyRelu", "Elu", "Slice", "Gelu",
    "ConvTranspose", "Resize", "Sub",
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
    # the default; --calib-method chooses another (CALIB_METHODS)
    "calibrate_method": "CalibrationMethod.MinMax",
    "op_types_to_quantize": list(OPS_TO_QUANTIZE),
    "extra_options": EXTRA_OPTIONS,
}

Progress = Callable[[int, int], None]

#: ``--calib-method`` values and the onnxruntime ``CalibrationMethod`` member of each.
CALIB_METHODS: dict[str, str] = {"minmax": "MinMax", "entropy": "Entropy",
                                 "percentile": "Percentile"}
#: The default calibration method (``--calib-method``).
DEFAULT_CALIB_METHOD = "minmax"
#: ``extra_options`` of ``create_calibrator`` per histogram method. Entropy: a histogram
#: of 512 bins over [-max|x|, max|x|], searched for the KL-optimal centred window of 128 to
#: 512 bins (clipping at 1/4 to all of max|x|; onnxruntime's default of 128 bins leaves
#: only the full range as a candidate, TensorRT's 2048 bins cost ~0.6 s of onnxruntime's
#: Python search per tensor, 512 ~0.1 s).
#: Percentile: onnxruntime's 2048 bins and 99.999th percentile, asymmetric (histogram of
#: the values, not of their absolute values), so that a ReLU output keeps lower bound 0.
HISTOGRAM_OPTIONS: dict[str, dict[str, Any]] = {
    "entropy": {"num_bins": 512, "num_quantized_bins": 128, "symmetric": False},
    "percentile": {"num_bins": 2048, "percentile": 99.999, "symmetric": False},
}


def calibration_method(name: str) -> Any:
    """onnxruntime's ``CalibrationMethod`` member for ``name`` (a key of
    :data:`CALIB_METHODS`); an unknown name raises :class:`FrontendError`."""
    from onnxruntime.quantization import CalibrationMethod

    if name not in CALIB_METHODS:
        raise FrontendError(f"unknown calibration method {name!r} (use "
                            f"{', '.join(CALIB_METHODS)})")
    return getattr(CalibrationMethod, CALIB_METHODS[name])


def quantize_static_kwargs(calib_method: str = DEFAULT_CALIB_METHOD) -> dict[str, Any]:
    """The keyword arguments of :data:`QUANT_SETTINGS` as onnxruntime objects, ready for
    ``onnxruntime.quantization.quantize_static`` (imports onnxruntime), with
    ``calibrate_method`` the member for ``calib_method`` (see :data:`CALIB_METHODS`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    def enum(text: str) -> Any:
        kind, member = text.split(".")
        return getattr({"QuantFormat": QuantFormat, "QuantType": QuantType,
                        "CalibrationMethod": CalibrationMethod}[kind], member)

    kw = dict(QUANT_SETTINGS)
    for k in ("quant_format", "activation_type", "weight_type", "calibrate_method"):
        kw[k] = enum(kw[k])
    kw["calibrate_method"] = calibration_method(calib_method)
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


def _index_calibration(model: onnx.ModelProto, name: str, shape: tuple[int, ...], calib: str,
                       calib_dir: Path | None, num_random: int, seed: int,
                       calib_data: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """Calibration inputs for the int64 id input ``name``: ``calib_data`` or the ``.npy``
    files of ``calib_dir`` (integer ids of the input's shape, checked against the range
    the graph gives, :mod:`vfpga.quant.index_inputs`), else ``num_random`` seeded ids
    uniform over the table's rows."""
    where = model.graph.name or "<model>"
    bound = index_bound(model, name)
    if calib_data is None and calib == "dir":
        if calib_dir is None:
            raise FrontendError("calib='dir' needs calib_dir")
        calib_data = [a for _, a in read_id_files(Path(calib_dir), model, name, shape,
                                                  "calibration")]
    if calib_data is not None:
        if not calib_data:
            raise FrontendError("calib_data is empty: give at least one calibration input")
        out = []
        for k, x in enumerate(calib_data):
            what = f"calibration input {k} for the int64 ids '{name}'"
            try:
                a = check_indices(np.asarray(x), bound, what)
            except VfpgaError as exc:
                raise FrontendError(str(exc)) from None
            if tuple(a.shape) != shape:
                raise FrontendError(f"{what} has shape {tuple(a.shape)}; the model's input "
                                    f"has shape {shape}")
            out.append(a)
        return out
    if calib not in ("random", "dir"):
        raise FrontendError(f"unknown calibration kind {calib!r} (use 'random' or 'dir')")
    if num_random < 1:
        raise FrontendError(f"the number of random calibration inputs must be >= 1 (got "
                            f"{num_random})")
    return random_id_inputs(model, name, shape, num_random, seed, f"model '{where}'")


def image_calibration(calib_dir: Path, shape: tuple[int, ...],
                      prep: ImagePrep | None = None) -> list[np.ndarray]:
    """Calibration inputs from the images in ``calib_dir`` (sorted by name; other files
    are skipped), preprocessed by :func:`vfpga.quant.inputs.image_input` with ``prep``
    (default: ImageNet's mean and std, NCHW)."""
    files = input_files(Path(calib_dir), IMAGE_SUFFIXES, "calibration",
                        "calibration images")
    return [image_input(f, shape, prep or ImagePrep()) for f in files]


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


def host_region_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes left unquantized because they compute on host values only:
    a node of :data:`OPS_TO_QUANTIZE` other than ``Conv`` whose every non-constant input
    is the float output of an unquantized node (an op the quantizer does not handle, such
    as ``LayerNormalization``, ``MatMul`` of two activations or ``Transpose``, or a node
    excluded by this rule). Quantizing them would cut a host computation (an attention's
    ``MatMul -> Mul -> Softmax -> MatMul``) into several host segments joined by int8
    tensors; unquantized, it is one host segment. The graph input counts as quantized."""
    consts = {i.name for i in model.graph.initializer}
    host: set[str] = set()
    excluded: list[str] = []
    for n in model.graph.node:
        acts = [i for i in n.input if i and i not in consts]
        quantized = n.op_type in OPS_TO_QUANTIZE
        if quantized and n.op_type != "Conv" and acts and all(i in host for i in acts):
            excluded.append(n.name)
            quantized = False
        if not quantized and n.op_type != "Constant":
            host.update(o for o in n.output if o)
    return excluded


RELEASE_BYTES = 1 << 16
"""A :class:`ModelHandoff`'s model keeps the data of initializers up to this size."""


class ModelHandoff:
    """An fp32 model given to :func:`quantize_model` for good, so that the quantizer,
    not the model, is the peak of memory: once the model is written for onnxruntime,
    :func:`quantize_model` takes it out of the handoff (``model`` becomes None), keeps a
    copy of its structure (initializers over :data:`RELEASE_BYTES` without their data)
    and drops the model itself. Why a handoff and not a flag: a protobuf message's
    memory is an arena freed only with the whole message (clearing its fields frees
    nothing), so the model must lose its last reference; the caller must hold no other
    reference to it."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model: onnx.ModelProto | None = model

    @property
    def held(self) -> onnx.ModelProto:
        """The model (ValueError once taken)."""
        if self.model is None:
            raise ValueError("the model of this ModelHandoff was already taken")
        return self.model

    def take(self) -> onnx.ModelProto:
        """The model, removed from the handoff (which then holds no reference)."""
        model, self.model = self.held, None
        return model


def _structure_of(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose initializers over :data:`RELEASE_BYTES` have no data
    (``model`` loses that data too)."""
    for init in model.graph.initializer:
        if init.ByteSize() > RELEASE_BYTES:
            init.ClearField("raw_data")
            init.ClearField("float_data")
    light = onnx.ModelProto()
    light.CopyFrom(model)
    return light


def quantize_model(
    model: onnx.ModelProto | ModelHandoff,
    *,
    calib: str = "random",
    calib_dir: Path | None = None,
    num_random: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
    calib_data: Sequence[np.ndarray] | None = None,
    calib_method: str = DEFAULT_CALIB_METHOD,
    image_prep: ImagePrep | None = None,
) -> onnx.ModelProto:
    """Quantize a normalized fp32 model to QDQ (int8 weights, uint8 activations) with
    onnxruntime (settings: :data:`QUANT_SETTINGS`).

    ``calib`` is ``"random"`` (``num_random`` seeded normal inputs) or ``"dir"`` (the images
    of ``calib_dir``, preprocessed by ``image_prep``, default ImageNet's mean and std);
    ``calib_method`` is the onnxruntime calibrator (:data:`CALIB_METHODS`); ``calib_data``,
    when given, replaces both: the model's input arrays
    (float32, the model's input shape) used as they are. ``progress(done, total)`` is
    called as calibration inputs are consumed (``done`` from 1 to ``total``). All
    intermediate files live in a temporary directory that is removed on return. A model
    given in a :class:`ModelHandoff` is dropped once written for onnxruntime (the
    quantizer then is the peak of memory). Raises
    :class:`~vfpga.errors.FrontendError` for bad calibration options or data.
    """
    graph_name = _model_of(model).graph.name or "<model>"
    name, shape = _input_info(_model_of(model))
    calibration_method(calib_method)  # an unknown method fails before any work
    fp32 = _model_of(model)
    if is_index_input(fp32, name):  # int64 token ids: valid ids, never normal floats
        data = _index_calibration(fp32, name, shape, calib, calib_dir, num_random, seed,
                                  calib_data)
    elif calib_data is not None:
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
        data = image_calibration(Path(calib_dir), shape, image_prep)
    else:
        raise FrontendError(f"unknown calibration kind {calib!r} (use 'random' or 'dir')")
    reader = _Reader(name, data, progress)

    try:
        qmodel = _calibrate_and_quantize(model, reader, data, progress, calib_method)
    except FrontendError:
        raise
    except Exception as exc:  # onnxruntime's errors (Fail, InvalidArgument, ...) and asserts
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FrontendError(f"model '{graph_name}': onnxruntime cannot "
                            f"calibrate or quantize the model: {type(exc).__name__}: "
                            f"{first[:400]}") from None
    set_softmax_scale(qmodel)
    return qmodel


def _model_of(model: onnx.ModelProto | ModelHandoff) -> onnx.ModelProto:
    """The model itself (a handoff's still held model)."""
    return model.held if isinstance(model, ModelHandoff) else model


def _calibrate_and_quantize(given: onnx.ModelProto | ModelHandoff, reader: Any,
                            data: list[np.ndarray], progress: Any,
                            calib_method: str = DEFAULT_CALIB_METHOD) -> onnx.ModelProto:
    """Calibrate the model on ``reader`` with onnxruntime's ``calib_method`` calibrator and
    quantize it (QDQ); a handed-off model is dropped once written (see
    :func:`quantize_model`)."""
    import contextlib
    import io

    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, create_calibrator

    with tempfile.TemporaryDirectory(prefix="vfpga-quant-") as tmp:
        tmpd = Path(tmp)
        src = tmpd / "model.onnx"
        model = given.take() if isinstance(given, ModelHandoff) else given
        onnx.save_model(model, str(src), save_as_external_data=model.ByteSize() > (1 << 30))
        if isinstance(given, ModelHandoff):  # onnxruntime reads the file: keep the structure
            model = _structure_of(model)
        method = calibration_method(calib_method)
        calibrator = create_calibrator(
            src, list(OPS_TO_QUANTIZE), augmented_model_path=str(tmpd / "augmented.onnx"),
            calibrate_method=method,
            extra_options=dict(HISTOGRAM_OPTIONS.get(calib_method, {})),
        )
        # the histogram calibrators print progress lines on stdout: not the user's output
        with contextlib.redirect_stdout(io.StringIO()):
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
        save_tensors_data(TensorsData(method, new), cache)
        out = tmpd / "model.qdq.onnx"
        quantize_static(
            str(src), str(out), calibration_data_reader=None,
            calibration_cache_path=str(cache), nodes_to_exclude=host_region_nodes(model),
            **quantize_static_kwargs(calib_method),
        )
        return onnx.load(str(out))


__all__ = [
    "CALIB_METHODS",
    "DEFAULT_CALIB_METHOD",
    "EXTRA_OPTIONS",
    "HISTOGRAM_OPTIONS",
    "OPS_TO_QUANTIZE",
    "QUANT_SETTINGS",
    "SOFTMAX_SCALE",
    "ModelHandoff",
    "calibration_method",
    "host_region_nodes",
    "image_calibration",
    "quantize_model",
    "quantize_static_kwargs",
    "random_calibration",
    "set_softmax_scale",
]
