"""The compiler: a ``dnn`` module (or a quantized graph, or a model file) to a ``.vfb``
binary, through one xDSL :class:`~xdsl.passes.PassPipeline`.

The default pipeline (:func:`default_pipeline`) is::

    dnn-plan-memory,dnn-tile{hw=pool16},ifp-package,ifp-lower-to-isa,
    ifp-estimate-latency,ifp-select{cores=1}

and the ``vfb`` target (:func:`vfpga.targets.vfb.module_to_vfb`) links the result. Every
caller (``vfpga compile``/``check``/``demo``, :mod:`vfpga.flow`, the benchmarks, the
experiments, the pool's tests) compiles through :func:`compile_module` /
:func:`compile_graph` / :func:`compile_model`; ``-p SPEC`` (``passes=``) replaces the
pipeline, e.g. to add a plugin's pass. The pipeline runs in one process on one module,
with xDSL's pass callback between passes for progress, per-pass time, printing the IR
(``print_ir_after``) and verification. The module is verified at the stage boundaries:
on input, after the last pass of each run of passes of one stage (the name's prefix:
``dnn-``, ``ifp-``), after every pass that is not vfpga's own (a plugin's), and before
linking (``verify="each"``: after every pass, as ``mlir-opt``; ``"none"``: never).

The :class:`CompileResult`'s report (placement, per-layer candidates and chosen tiling,
predicted cycles, notes) is read from the compiled module, so it describes the bytes
written.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.exceptions import VerifyException

from vfpga.backend.binary import VfbFile
from vfpga.compiler.ifpgen import LayerSpec
from vfpga.compiler.plan import MemoryPlan
from vfpga.dialects import ifp
from vfpga.errors import CompileError, VfpgaError
from vfpga.frontend.qgraph import QGraph, QHostOp
from vfpga.hw.config import HardwareConfig, HardwareConfigError, load_hw
from vfpga.passes.dnn_plan_memory import NOTES_ATTR, StaticPassError, planned
from vfpga.passes.dnn_tile import DnnTilePass, layer_specs_of, layers_of

if TYPE_CHECKING:
    from vfpga.frontend.pipeline import LoadedModel
    from vfpga.quant.inputs import ImagePrep

Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)``: called before each pass, before linking, at the end."""

PIPELINE = (
    "dnn-plan-memory,dnn-tile{{hw={hw}}},ifp-package,ifp-lower-to-isa,"
    "ifp-estimate-latency,ifp-select{{cores={cores}}}"
)
"""The default pipeline as a ``-p`` string (``PIPELINE.format(hw="pool16", cores=4)``)."""

LINK = "link"
"""The name of the last stage (the ``vfb`` target) in timings and progress."""


def default_pipeline(hw: str = "pool16", cores: int = 1) -> str:
    """The default pass pipeline for hardware ``hw`` (preset name or JSON path) and
    ``cores`` logical cores."""
    return PIPELINE.format(hw=hw, cores=cores)


def available_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Every pass a pipeline may name: xDSL's, every ``xdsl.universe`` plugin's (such as
    ``examples/``' plugin once installed), and vfpga's own (which win a name clash)."""
    from xdsl.universe import Universe

    from vfpga.passes import get_all_passes

    return {**Universe.get_multiverse().all_passes, **get_all_passes()}


def parse_pipeline(spec: str) -> list[ModulePass]:
    """The passes of pipeline ``spec`` (``xdsl-opt -p`` syntax). Raises
    :class:`CompileError` naming an unknown pass or a bad option."""
    known = available_passes()
    try:
        return list(PassPipeline.parse_spec(known, spec).passes)
    except ValueError as exc:
        raise CompileError(f"pass pipeline '{spec}': {exc}") from None
    except Exception as exc:  # xDSL raises several types for a malformed spec
        raise CompileError(f"pass pipeline '{spec}': {exc}") from None


# ------------------------------------------------------------------------ collection
_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the block runs (re-entrant and
    thread-safe: the first entrant pauses it, the last one to leave restores the state
    found). A compile allocates millions of small dicts and ops that all stay alive
    until it ends; the collector would traverse them again and again, which cost a
    third of a ResNet-50 or Inception v3 compile (docs/compiler.md). Reference counting
    still frees acyclic garbage at once; cyclic garbage made meanwhile is collected
    after the block, as usual."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


# --------------------------------------------------------------------------- verifying
def verify_module(module: ModuleOp, after: str) -> None:
    """Verify ``module``. Once it holds ``ifp`` ops, the top-level ops are verified one by
    one, the ``ifp`` ops by :func:`vfpga.dialects.ifp.verify_layer_tree` (skipping the
    isolation walk of ``builtin.module`` over every nested op). Raises
    :class:`StaticPassError` naming the stage (``after``)."""
    try:
        if not any(isinstance(op, ifp.LayerOp) for op in module.ops):
            module.verify()
            return
        for op in module.ops:
            if not isinstance(op, ifp.LayerOp):
                op.verify()
                continue
            ifp.verify_layer_tree(op)
    except VerifyException as exc:
        raise StaticPassError(f"the module does not verify {after}: {exc}") from None


# ------------------------------------------------------------------------------ report
@dataclass
class LayerReport:
    """One accelerator layer as the compiled module describes it (``ifp.layer``): its
    candidates, the chosen one, its predicted makespan and package count, and the layer
    spec the passes generated it from."""

    index: int
    name: str
    kind: str
    macs: int
    candidates: int
    chosen: int
    axis: str
    parts: int
    makespan: int
    spec: LayerSpec


@dataclass
class CompileResult:
    """A compiled program: the binary, the compiled module, its memory plan, and the
    report read from the module (see the module docstring)."""

    vfb: VfbFile
    module: ModuleOp
    plan: MemoryPlan
    layers: list[LayerReport]
    timings: list[tuple[str, float]] = field(default_factory=list)
    cpu_timings: list[tuple[str, float]] = field(default_factory=list)
    """As ``timings``, in CPU seconds of the process (``time.process_time``: less
    inflated than wall time on a shared machine)."""

    @property
    def host_ops(self) -> list[QHostOp]:
        return [n for n in self.plan.graph.nodes if isinstance(n, QHostOp)]

    @property
    def notes(self) -> list[str]:
        """The planner's notes (module attribute ``vfpga.plan_notes``)."""
        a = self.module.attributes.get(NOTES_ATTR)
        return [s.data for s in a.data if isinstance(s, StringAttr)] if isinstance(
            a, ArrayAttr) else []

    @property
    def predicted_cycles(self) -> int:
        """The sum over layers of the chosen candidate's makespan."""
        return sum(lr.makespan for lr in self.layers)


def _report(module: ModuleOp) -> list[LayerReport]:
    specs = layer_specs_of(module)
    out: list[LayerReport] = []
    for layer in layers_of(module):
        cand = layer.selected_candidate()
        if cand is None or cand.makespan is None:
            raise StaticPassError(
                f'ifp.layer {layer.index_value} "{layer.node.data}" has no selected candidate '
                "with a makespan: run ifp-select")
        i = layer.index_value
        out.append(LayerReport(
            index=i, name=layer.node.data, kind=layer.kind.data,
            macs=layer.macs.value.data, candidates=len(layer.candidates()),
            chosen=cand.candidate_index(), axis=cand.axis_name, parts=len(cand.bounds) - 1,
            makespan=cand.makespan.value.data, spec=specs[i]))
    return out


# ----------------------------------------------------------------------------- running
def _passes_for(hw: HardwareConfig, cores: int) -> list[ModulePass]:
    passes = parse_pipeline(default_pipeline(hw.name, cores))
    return [DnnTilePass.for_config(hw, hw.name) if isinstance(p, DnnTilePass) else p
            for p in passes]


def compile_module(
    module: ModuleOp,
    hw: HardwareConfig | None = None,
    cores: int = 1,
    *,
    passes: str | Iterable[ModulePass] | None = None,
    progress: Progress | None = None,
    print_ir_after: Iterable[str] = (),
    ir_stream: IO[str] | None = None,
    verify: str = "boundaries",
) -> CompileResult:
    """Run the pass pipeline on ``module`` (in place) and link it into a binary.

    ``passes``: a ``-p`` spec or pass objects; default :func:`default_pipeline` for
    ``hw`` (default ``pool16``) and ``cores``. With ``passes`` given, ``hw`` and ``cores``
    are not used by the pipeline (the module carries its hardware); a given ``hw`` must
    then be the module's. ``print_ir_after``: pass names (or ``"all"``) after which the
    module is printed to ``ir_stream`` (default stderr), as ``mlir-opt
    --print-ir-after``. The result's ``timings`` hold seconds per pass, ``verify`` and
    ``link`` (``cpu_timings``: the same in CPU seconds). Raises :class:`CompileError`
    (a bad pipeline, a pass error such as a layer that fits no tiling, a module that
    does not verify).
    """
    import sys

    if passes is None:
        hw = hw or load_hw("pool16")
        if not 1 <= cores <= hw.num_cores:
            raise StaticPassError(
                f"--cores must be 1..{hw.num_cores} for {hw.name}, got {cores}")
        plist = _passes_for(hw, cores)
    elif isinstance(passes, str):
        plist = parse_pipeline(passes)
    else:
        plist = list(passes)
    if verify not in ("boundaries", "each", "none"):
        raise ValueError(f"verify must be boundaries, each or none, not {verify!r}")
    from vfpga.passes import PASSES

    def boundary(prev: ModulePass | None, nxt: ModulePass | None) -> bool:
        if verify != "boundaries" or prev is None or nxt is None:
            return verify != "none"
        return prev.name not in PASSES or prev.name.split("-")[0] != nxt.name.split("-")[0]

    after = set(print_ir_after)
    stream = ir_stream or sys.stderr
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}
    order: list[str] = []
    n = len(plist) + 1
    clock = [time.perf_counter(), time.process_time()]

    def tick(key: str) -> None:
        now, now_cpu = time.perf_counter(), time.process_time()
        if key not in times:
            order.append(key)
        times[key] = times.get(key, 0.0) + now - clock[0]
        cpu[key] = cpu.get(key, 0.0) + now_cpu - clock[1]
        clock[0], clock[1] = now, now_cpu

    def callback(prev: ModulePass | None, op: ModuleOp, nxt: ModulePass | None) -> None:
        if prev is not None:
            tick(prev.name)
            if "all" in after or prev.name in after:
                from xdsl.printer import Printer

                stream.write(f"// -----// IR Dump After {prev.name} //----- //\n")
                Printer(stream=stream).print_op(op)
                stream.write("\n\n")
                clock[0], clock[1] = time.perf_counter(), time.process_time()
        if boundary(prev, nxt):
            verify_module(op, f"after {prev.name}" if prev else "on input")
            tick("verify")
        if progress:
            done = len(plist) if nxt is None else plist.index(nxt)
            progress(LINK if nxt is None else nxt.name, done, n)

    from vfpga.targets.vfb import module_to_vfb

    with gc_paused():
        try:
            PassPipeline(tuple(plist), callback).apply(Context(), module)
        except VfpgaError:
            raise
        except (HardwareConfigError, ValueError) as exc:
            raise CompileError(str(exc)) from None
        vfb = module_to_vfb(module, hw)
        report = _report(module)
    tick(LINK)
    if progress:
        progress("done", n, n)
    return CompileResult(vfb=vfb, module=module, plan=planned(module), layers=report,
                         timings=[(k, times[k]) for k in order],
                         cpu_timings=[(k, cpu[k]) for k in order])


def compile_graph(
    g: QGraph,
    hw: HardwareConfig | None = None,
    cores: int = 1,
    progress: Progress | None = None,
    *,
    passes: str | Iterable[ModulePass] | None = None,
) -> CompileResult:
    """Compile quantized graph ``g`` for ``cores`` cores of ``hw`` (default ``pool16``):
    :func:`vfpga.dialects.dnn_convert.qgraph_to_module`, then :func:`compile_module`."""
    from vfpga.dialects.dnn_convert import qgraph_to_module

    with gc_paused():
        return compile_module(qgraph_to_module(g), hw, cores, passes=passes,
                              progress=progress)


def read_module(path: str | Path) -> ModuleOp:
    """Parse a ``.mlir`` file of vfpga's dialects (any stage). Raises
    :class:`CompileError` naming the file for a read or parse error."""
    from xdsl.parser import Parser
    from xdsl.utils.exceptions import ParseError

    from vfpga.dialects import get_all_dialects

    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CompileError(f"{path}: cannot read: {exc}") from None
    ctx = Context()
    for name, factory in get_all_dialects().items():
        ctx.register_dialect(name, factory)
    from xdsl.dialects.builtin import Builtin

    ctx.load_dialect(Builtin)
    try:
        return Parser(ctx, text, str(path)).parse_module()
    except ParseError as exc:
        raise CompileError(f"{path}: {exc}") from None


def compile_model(
    path: str | Path,
    hw: HardwareConfig | None = None,
    cores: int = 1,
    *,
    passes: str | None = None,
    calib: str = "random",
    num_random: int = 16,
    calib_dir: str | Path | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    print_ir_after: Iterable[str] = (),
    keep_model: bool = True,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    calib_method: str = "minmax",
    image_prep: ImagePrep | None = None,
) -> tuple[LoadedModel | None, CompileResult]:
    """Compile a model file: ONNX (fp32, quantized first with the calibration options,
    or QDQ) or ``.mlir`` (``vfpga import`` output, or any later stage of the pipeline;
    then the first result is None). With ``keep_model=False`` the loaded ONNX models and
    graph are dropped once the ``dnn`` module is built (the first result is None): a
    VGG-16 then compiles in ~1/3 less memory. ``input_shapes`` fixes ONNX graph input
    dimensions (``--input-shape``); ``calib_method`` and ``image_prep`` choose the
    calibration (:func:`vfpga.frontend.pipeline.load_model`). See :func:`compile_module`
    for the rest."""
    if str(path).endswith(".mlir"):
        module = read_module(path)
        return None, compile_module(module, hw, cores, passes=passes, progress=progress,
                                    print_ir_after=print_ir_after)
    from vfpga.dialects.dnn_convert import qgraph_to_module
    from vfpga.frontend.pipeline import load_model

    loaded: LoadedModel | None = load_model(
        path, calib=calib, num_random=num_random,  # type: ignore[arg-type]
        calib_dir=calib_dir, seed=seed, keep_fp32=keep_model, input_shapes=input_shapes,
        calib_method=calib_method, image_prep=image_prep)
    assert loaded is not None
    module = qgraph_to_module(loaded.graph)
    if not keep_model:
        loaded = None
    res = compile_module(module, hw, cores, passes=passes, progress=progress,
                         print_ir_after=print_ir_after)
    return loaded, res
