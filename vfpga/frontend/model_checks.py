"""Checks of an ONNX model before any work is done on it (docs/quantization.md, "Checks
before any work"): a model is hostile until checked. Every problem is a
:class:`~vfpga.errors.FrontendError` naming the file, the node or the initializer and
saying what to do, never a traceback from onnx, onnxruntime or numpy.

- :func:`fix_input_shapes`: ``--input-shape NAME=1x3x640x640`` fixes the dimensions of a
  graph input (dynamic or not) before anything else reads the model.
- :func:`check_model`: the opset is one this onnx knows; every initializer's declared
  size is sane and matches its data, and float weights are finite; the graph input is not
  absurdly large; convolutions and pools have consistent groups and channels, at least one
  output channel, kernels that fit the padded input, and kernels, strides and pads the
  accelerator's instruction fields can hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vfpga.errors import FrontendError

#: Largest initializer accepted (bytes; protobuf itself caps a model at 2 GiB).
MAX_INITIALIZER_BYTES = 1 << 30
#: Largest graph input accepted (elements; 1x3x4096x4096 is 50M).
MAX_INPUT_ELEMENTS = 1 << 26
#: Largest kernel extent, stride and padding the instruction fields hold (8-bit fields).
MAX_WINDOW_FIELD = 255

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                onnx.TensorProto.BFLOAT16}


def parse_input_shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``NAME=1x3x640x640`` (or ``NAME=1,3,640,640``) options as name -> shape."""
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        parts = dims.replace(",", "x").split("x") if dims else []
        if not sep or not name or not parts or not all(p.isdigit() and int(p) > 0
                                                       for p in parts):
            raise FrontendError(f"--input-shape {spec}: expected NAME=DIMS with positive "
                                "dimensions, e.g. images=1x3x640x640")
        out[name] = tuple(int(p) for p in parts)
    return out


def fix_input_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]],
                     source: str) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs named in ``shapes`` have those static
    dimensions (the rank must match). Raises :class:`FrontendError` for an unknown input or
    a rank mismatch."""
    if not shapes:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name for t in out.graph.initializer}
    inputs = {vi.name: vi for vi in out.graph.input if vi.name not in inits}
    for name, shape in shapes.items():
        vi = inputs.get(name)
        if vi is None:
            raise FrontendError(f"{source}: --input-shape {name}=...: the model has no input "
                                f"'{name}' (inputs: {', '.join(inputs) or 'none'})")
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and len(dims) != len(shape):
            raise FrontendError(f"{source}: --input-shape {name}={'x'.join(map(str, shape))}: "
                                f"input '{name}' has rank {len(dims)}, not {len(shape)}")
        del dims[:]
        for d in shape:
            dims.add().dim_value = int(d)
    # value_info computed for the old shapes would contradict the new ones
    del out.graph.value_info[:]
    return out


def _dims_text(tt: onnx.TypeProto.Tensor) -> str:
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else
                           (d.dim_param or "?") for d in tt.shape.dim) + "]"


def dynamic_dim_error(source: str, name: str, tt: onnx.TypeProto.Tensor) -> FrontendError | None:
    """The error for the first dimension of input ``name`` that is not a positive static
    size (naming that axis and suggesting ``--input-shape``), or ``None``."""
    for axis, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            continue
        what = (f"size {d.dim_value}" if d.HasField("dim_value")
                else f"the dynamic dimension '{d.dim_param}'" if d.dim_param
                else "an unnamed dynamic dimension")
        example = [str(x.dim_value) if x.HasField("dim_value") and x.dim_value > 0
                   else ("1" if i == 0 else "224") for i, x in enumerate(tt.shape.dim)]
        return FrontendError(
            f"{source}: input '{name}' has {what} at axis {axis} (shape {_dims_text(tt)}); "
            f"the accelerator needs a static, positive shape: pass --input-shape "
            f"{name}={'x'.join(example)} (with the sizes you deploy) or re-export the model "
            "with static axes")
    return None


def _consumers(model: onnx.ModelProto) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i, n in enumerate(model.graph.node):
        for t in n.input:
            out.setdefault(t, []).append(n.name or f"#{i} ({n.op_type})")
    return out


def _check_tensor(t: onnx.TensorProto, source: str, where: str) -> np.ndarray | None:
    """Check a weight's declared size against its data; its values (or None if external)."""
    if any(d < 0 for d in t.dims):
        raise FrontendError(f"{source}: {where}: negative dimension in {list(t.dims)}")
    n = math.prod(t.dims)
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except Exception:
        raise FrontendError(f"{source}: {where}: unknown data type {t.data_type}") from None
    if n * itemsize > MAX_INITIALIZER_BYTES:
        raise FrontendError(f"{source}: {where}: declares {list(t.dims)} = {n * itemsize:,} "
                            f"bytes, more than the {MAX_INITIALIZER_BYTES:,} accepted")
    if t.data_location == onnx.TensorProto.EXTERNAL:
        return None
    try:
        arr = numpy_helper.to_array(t)
    except Exception as exc:
        raise FrontendError(f"{source}: {where}: its data does not match its declared shape "
                            f"{list(t.dims)} and type ({exc})") from None
    return arr


def check_model(model: onnx.ModelProto, source: str) -> None:
    """Raise :class:`FrontendError` for the problems listed in the module docstring."""
    max_opset = onnx.defs.onnx_opset_version()
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and not 1 <= imp.version <= max_opset:
            raise FrontendError(f"{source}: opset {imp.version} is not a released ONNX opset "
                                f"(this onnx knows 1..{max_opset}); re-export the model with "
                                f"opset {min(max_opset, 18)} or lower")
    g = model.graph
    users = _consumers(model)
    consts: dict[str, np.ndarray] = {}
    tensors = [(t, f"initializer '{t.name}'") for t in g.initializer]
    tensors += [(a.t, f"Constant node '{n.name or n.output[0]}'") for n in g.node
                if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    for t, where in tensors:
        arr = _check_tensor(t, source, where)
        if arr is None:
            continue
        consts[t.name or where] = arr
        if t.data_type in _FLOAT_TYPES and arr.size and not np.all(np.isfinite(arr)):
            bad = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
            used = ", ".join(users.get(t.name, [])[:3]) or "no node"
            raise FrontendError(f"{source}: {where} (used by {used}) holds "
                                f"{arr.ravel()[bad]} at flat index {bad}; weights must be "
                                "finite numbers")
    inits = {t.name for t in g.initializer}
    for vi in g.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if any(d.HasField("dim_value") and d.dim_value <= 0 for d in tt.shape.dim):
            err = dynamic_dim_error(source, vi.name, tt)
            if err is not None:
                raise err
        dims = [d.dim_value for d in tt.shape.dim if d.HasField("dim_value")]
        if dims and math.prod(dims) > MAX_INPUT_ELEMENTS:
            raise FrontendError(f"{source}: input '{vi.name}' has shape "
                                f"{_dims_text(vi.type.tensor_type)} = {math.prod(dims):,} "
                                f"elements, more than the {MAX_INPUT_ELEMENTS:,} accepted; "
                                "fix a smaller shape with --input-shape")
    shapes = _static_shapes(model)
    for i, n in enumerate(g.node):
        if n.op_type in ("Conv", "ConvTranspose", "MaxPool", "AveragePool"):
            _check_window(n, i, source, shapes, {k: v.shape for k, v in consts.items()})


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Tensor name -> static shape, from ONNX shape inference on a weight-free copy
    (empty when inference fails: the window checks then use what is declared)."""
    from vfpga.frontend.norm_fold import strip_weights

    try:
        inferred = onnx.shape_inference.infer_shapes(strip_weights(model)[0])
    except Exception:
        return {}
    out: dict[str, list[int]] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            out[vi.name] = [d.dim_value for d in dims]
    return out


def _check_window(n: onnx.NodeProto, i: int, source: str, shapes: dict[str, list[int]],
                  weights: dict[str, tuple[int, ...]]) -> None:
    """Groups, channels, kernel, strides, pads and dilations of a Conv or pool node."""
    where = f"{source}: node '{n.name or f'#{i}'}' ({n.op_type})"
    a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
    x_shape = shapes.get(n.input[0]) if n.input else None
    w_shape = None
    if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1:
        w_shape = list(weights.get(n.input[1], ())) or shapes.get(n.input[1])
    group = int(a.get("group", 1))
    if group < 1:
        raise FrontendError(f"{where}: group {group} must be >= 1")
    kernel = list(a.get("kernel_shape", []))
    if w_shape is not None:
        if len(w_shape) < 3 or any(d < 1 for d in w_shape[:2]):
            raise FrontendError(f"{where}: weight shape {w_shape} has no output or input "
                                "channels (a 0-channel convolution)")
        kernel = kernel or list(w_shape[2:])
        out_c, cin_g = (w_shape[0], w_shape[1]) if n.op_type == "Conv" else (
            w_shape[1] * group, w_shape[0] // max(group, 1))
        if n.op_type == "Conv" and out_c % group:
            raise FrontendError(f"{where}: {out_c} output channels are not divisible by group "
                                f"{group}")
        if x_shape is not None and len(x_shape) >= 2:
            c_in = x_shape[1]
            need = cin_g * group if n.op_type == "Conv" else w_shape[0]
            if c_in != need:
                raise FrontendError(f"{where}: the input has {c_in} channels but the weights "
                                    f"{w_shape} with group {group} need {need}")
    strides = list(a.get("strides", [1] * len(kernel)))
    pads = list(a.get("pads", [0] * 2 * len(kernel)))
    dil = list(a.get("dilations", [1] * len(kernel)))
    for what, vals, lo in (("kernel", kernel, 1), ("stride", strides, 1), ("pad", pads, 0),
                           ("dilation", dil, 1)):
        bad = [v for v in vals if not lo <= v <= MAX_WINDOW_FIELD]
        if bad:
            raise FrontendError(f"{where}: {what} {bad[0]} is not in {lo}..{MAX_WINDOW_FIELD} "
                                f"({what}s {vals}; the accelerator's instruction fields hold "
                                f"{lo}..{MAX_WINDOW_FIELD})")
    if x_shape is not None and len(x_shape) == 2 + len(kernel) and n.op_type != "ConvTranspose":
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return
        k = len(kernel)
        for ax in range(k):
            extent = x_shape[2 + ax] + pads[ax] + pads[ax + k]
            span = (kernel[ax] - 1) * (dil[ax] if ax < len(dil) else 1) + 1
            if span > extent:
                raise FrontendError(f"{where}: kernel {kernel} (dilations {dil}) is larger "
                                    f"than the padded input {x_shape[2:]} (pads {pads})")


__all__ = ["MAX_INITIALIZER_BYTES", "MAX_INPUT_ELEMENTS", "check_model",
           "dynamic_dim_error", "fix_input_shapes", "parse_input_shapes"]
