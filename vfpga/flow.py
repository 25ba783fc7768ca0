"""The user-level flow behind ``vfpga compile``, ``vfpga run`` and ``vfpga check``:
load (and quantize) an ONNX model, compile it, emulate it, and compare the emulator with
the integer reference (byte for byte, layer by layer) and with onnxruntime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vfpga.driver import CompileResult, Progress
from vfpga.emulator import Accelerator, Task, TaskResult
from vfpga.errors import VfpgaError
from vfpga.frontend.qgraph import QGraph, QHostOp
from vfpga.hw.config import HardwareConfig
from vfpga.quant.inputs import ImagePrep


@dataclass
class LayerCheck:
    """Emulator against reference for one tensor produced on the accelerator or host."""

    index: int
    name: str
    kind: str
    tensor: str
    identical: float
    max_diff: int

    @property
    def ok(self) -> bool:
        return self.identical == 1.0


@dataclass
class Emulation:
    """One emulated inference: graph outputs (NCHW; int8, or float32 for a float host-op
    output), the per-layer int8 snapshots taken at each barrier, the task result and the
    wall time."""

    outputs: dict[str, np.ndarray]
    layers: dict[str, np.ndarray]
    result: TaskResult
    seconds: float


@dataclass
class CheckReport:
    """Outcome of ``vfpga check`` on one input."""

    layers: list[LayerCheck] = field(default_factory=list)
    outputs_equal: bool = False
    emulate_seconds: float = 0.0

    @property
    def first_mismatch(self) -> LayerCheck | None:
        return next((lc for lc in self.layers if not lc.ok), None)

    @property
    def ok(self) -> bool:
        return self.outputs_equal and self.first_mismatch is None


def read_view(task: Task, res: CompileResult, name: str) -> np.ndarray:
    """Tensor ``name`` of the compiled graph, read from the task's DDR as int8 NCHW
    (works for views inside a concatenation, and for a tensor stored shuffled, too)."""
    g = res.plan.graph
    p = res.plan.places[name]
    _, c, h, w = ((*tuple(g.tensors[name].shape), 1, 1, 1, 1))[:4]
    pos = np.array([p.channel_pos(k) for k in range(c)])  # stored shuffled: scattered
    span = int(pos.max()) + 1
    n = (h * w - 1) * p.c_stride + span
    raw = task.region.mem[p.offset : p.offset + n]
    view = np.lib.stride_tricks.as_strided(raw, (h, w, span), (w * p.c_stride, p.c_stride, 1))
    return view[:, :, pos].view(np.int8).transpose(2, 0, 1)[None]


def _graph_input(g: QGraph, x: np.ndarray) -> np.ndarray:
    """The graph's input as int8 NHWC: an int8 array is taken as quantized already
    (NCHW), a float array is quantized like ONNX QuantizeLinear."""
    from vfpga.reference.executor import quantize_graph_input

    q = x if x.dtype == np.int8 else quantize_graph_input(g, x)
    shape = g.tensors[g.inputs[0]].shape
    return np.ascontiguousarray(q.reshape(shape).transpose(0, 2, 3, 1))


def emulate(
    res: CompileResult,
    hw: HardwareConfig,
    x: np.ndarray,
    cores: list[int] | None = None,
    snapshot: bool = False,
    accel: Accelerator | None = None,
) -> Emulation:
    """Run the compiled model on the emulator on ``cores`` (default: the first
    ``num_cores`` of the pool) with input ``x`` (float NCHW, or int8 NCHW already
    quantized). With ``snapshot``, every layer's output is copied at its barrier. Without
    ``accel``, a fresh accelerator runs this one inference: it keeps no prepared weights
    between runs (``prepared_bytes=0``; there is no next run to reuse them in, and they
    would hold every weight twice more, VGG-16: about 0.3 GB)."""
    g = res.plan.graph
    cores = cores if cores is not None else list(range(res.vfb.num_cores))
    acc = accel or Accelerator(hw, prepared_bytes=0)
    task = acc.create_task(f"t{len(acc.tasks)}", cores, res.vfb.ddr_size)
    try:
        task.load(res.vfb)
        task.write_tensor(g.inputs[0], _graph_input(g, x))
        snaps: dict[str, np.ndarray] = {}
        if snapshot:
            host_after: dict[int, list[QHostOp]] = {}
            layer_of = {id(lc.spec.node): i for i, lc in enumerate(res.layers)}
            last = -1
            for n in g.nodes:
                if id(n) in layer_of:
                    last = layer_of[id(n)]
                elif isinstance(n, QHostOp) and not n.output_float:
                    host_after.setdefault(last, []).append(n)

            def hook(layer: int) -> None:
                node = res.layers[layer].spec.node
                snaps[node.output] = read_view(task, res, node.output)
                for h in host_after.get(layer, []):
                    snaps[h.output] = read_view(task, res, h.output)

            task.barrier_hooks.append(hook)
        t0 = time.perf_counter()
        result = acc.run([task])[task.name]
        seconds = time.perf_counter() - t0
        if not result.ok:
            raise VfpgaError(f"the emulator faulted: {result.error}")
        outputs = {}
        for o in g.outputs:
            t = res.vfb.tensors[res.vfb.tensor_index(o)]
            v = task.read_tensor(o)
            if t.dynamic:  # a host result whose shape the data decides, as it is
                outputs[o] = v
                continue
            v = v.transpose(0, 3, 1, 2)
            if o in g.output_shapes:
                v = v.reshape(g.output_shapes[o])
            outputs[o] = v if t.dtype == "float32" else v.astype(np.int8)
        return Emulation(outputs, snaps, result, seconds)
    finally:
        # the snapshot hook refers to the task: drop it, else the cycle keeps the task, its
        # plans (prepared weights, im2col buffers) and the accelerator's DDR alive until
        # the next garbage collection (VGG-16: about 1.1 GB during vfpga check's
        # onnxruntime comparison)
        task.barrier_hooks.clear()
        acc.release_task(task)


def check_one(
    res: CompileResult, hw: HardwareConfig, x: np.ndarray, cores: list[int] | None = None
) -> CheckReport:
    """Emulate ``x`` and compare every layer's output and the graph outputs with the
    integer reference, byte for byte."""
    from vfpga.frontend.qgraph import dynamic_outputs
    from vfpga.reference.executor import run_reference

    g = res.plan.graph
    dyn = dynamic_outputs(g)
    ref = run_reference(g, x)
    emu = emulate(res, hw, x, cores, snapshot=True)
    rep = CheckReport(emulate_seconds=emu.seconds)
    kinds = {lc.spec.node.output: lc.spec.kind for lc in res.layers}
    i = 0
    for n in g.nodes:
        if n.output not in emu.layers:
            continue
        got = emu.layers[n.output].astype(np.int64)
        want = ref[n.output].astype(np.int64).reshape(got.shape)
        diff = np.abs(got - want)
        rep.layers.append(LayerCheck(i, n.name, kinds.get(n.output, "host"), n.output,
                                     float((diff == 0).mean()), int(diff.max(initial=0))))
        i += 1

    def same(o: str) -> bool:
        got, want = emu.outputs[o], ref[o]
        if o in dyn:  # shape and values as the host computed them
            return got.shape == want.shape and np.array_equal(got, want)
        return np.array_equal(got, want.reshape(got.shape))

    rep.outputs_equal = all(same(o) for o in g.outputs)
    return rep


def compile_file(
    path: str | Path,
    hw: HardwareConfig,
    cores: int,
    *,
    calib: str = "random",
    num_random: int = 16,
    calib_dir: str | Path | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    passes: str | None = None,
    print_ir_after: tuple[str, ...] = (),
    keep_model: bool = True,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    calib_method: str = "minmax",
    image_prep: ImagePrep | None = None,
):  # -> tuple[LoadedModel | None, CompileResult]
    """Load (quantizing an fp32 model) and compile ``path`` (ONNX or ``.mlir``) through
    the pass pipeline: :func:`vfpga.driver.compile_model`."""
    from vfpga.driver import compile_model

    return compile_model(path, hw, cores, passes=passes, calib=calib, num_random=num_random,
                         calib_dir=calib_dir, seed=seed, progress=progress,
                         print_ir_after=print_ir_after, keep_model=keep_model,
                         input_shapes=input_shapes)
