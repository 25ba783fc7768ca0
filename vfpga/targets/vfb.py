"""The linker: a fully compiled module (``dnn-plan-memory`` ... ``ifp-select``) to a
:class:`vfpga.backend.binary.VfbFile`, and the xDSL targets ``vfb`` (the binary) and
``vfb-asm`` (its assembly text, which ``vfpga asm`` reads back) built on it.

Reads only the IR (and, in process, what the passes attached to it, see
:mod:`vfpga.dialects.derived`): the memory plan (tensor placements, constant offsets;
the DATA bytes), the ``ifp.layer`` ops and every candidate's packages. TEXT holds every
package's instruction words (its packed ``code``, or its ``isa`` ops encoded), layer by
layer, candidate by candidate, with the header fields ``core`` (the package's default
core) and ``layer`` (the layer index) filled in. The IFP table has one record per
package; the DISPATCH table (built by :func:`vfpga.backend.retarget.dispatch_table`, the
one DISPATCH builder, shared with the re-targeter) runs each layer's ``selected``
candidate on the module's ``vfpga.cores`` logical cores (each core: its packages, then a
barrier per layer, then its end). The memory map lists every dense tensor (graph inputs
first; views inside a concatenation are covered by their root), the host-op table every
``dnn.host`` op with the layer it follows.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import IO

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.utils.target import Target

from vfpga.backend.binary import (
    BEFORE_FIRST_LAYER,
    DTYPE_BYTES,
    HostOp,
    Layer,
    Tensor,
    VfbFile,
    empty_ifps,
    record_user_shape,
    to_bytes,
    write_vfb,
)
from vfpga.backend.retarget import dispatch_table
from vfpga.compiler.ifpgen import stored_data
from vfpga.compiler.plan import MemoryPlan, nchw
from vfpga.errors import CompileError
from vfpga.frontend.qgraph import QHostOp, dynamic_outputs, float_tensors
from vfpga.hw.config import BUFFER_NAMES, HardwareConfig
from vfpga.isa.spec import HEADER_DTYPE, INSN_BYTES
from vfpga.passes.dnn_plan_memory import StaticPassError, planned
from vfpga.passes.dnn_tile import hw_of, layer_specs_of, layers_of
from vfpga.passes.ifp_select import CORES_ATTR
from vfpga.quant.index_inputs import INDEX_DTYPE

LAYER_KIND = {"conv": "conv", "pool": "pool", "add": "eltwise", "resize": "resize"}
"""``ifp.layer`` kind -> LAYER record kind."""


def module_to_vfb(module: ModuleOp, hw: HardwareConfig | None = None) -> VfbFile:
    """Link a compiled module into a binary for ``hw`` (default: the hardware it was
    tiled for, module attribute ``vfpga.hw_config``; a given ``hw`` must be that one).

    Raises :class:`~vfpga.passes.dnn_plan_memory.StaticPassError` when a stage is missing
    (no plan, no layers, a package without instructions, latency or core, no selection).
    """
    mhw = hw_of(module)
    if hw is None:
        hw = mhw
    elif mhw.fingerprint != hw.fingerprint:
        raise StaticPassError(
            f"the module was compiled for hardware '{mhw.name}', not '{hw.name}' "
            "(their configurations differ)"
        )
    cores_attr = module.attributes.get(CORES_ATTR)
    if not isinstance(cores_attr, IntegerAttr):
        raise StaticPassError("the module has no core count (vfpga.cores): run ifp-select first")
    cores = cores_attr.value.data
    plan = planned(module)
    layers_ir = layers_of(module)

    rows: list[tuple[int, ...]] = []  # one per package, in _IFP_COLUMNS order
    layers: list[Layer] = []
    words: list[bytes] = []
    chosen_ifps: list[int] = []
    n_insns = 0
    for li, layer in enumerate(layers_ir):
        if layer.selected is None:
            raise StaticPassError(
                f'ifp.layer {li} "{layer.node.data}" has no selected candidate: run ifp-select'
            )
        chosen = layer.selected.value.data
        first = len(rows)
        for ci, cand in enumerate(layer.candidates()):
            for pkg in cand.packages():
                core, lat, use = pkg.get("core"), pkg.get("latency"), pkg.usage()
                body = pkg.words()
                if core is None or lat is None or use is None or not body:
                    raise StaticPassError(
                        f'ifp.layer {li} "{layer.node.data}": a package lacks instructions, '
                        "usage, latency or core: run the whole static pipeline"
                    )
                if core >= cores:
                    raise StaticPassError(
                        f'ifp.layer {li} "{layer.node.data}": package core {core} is not below '
                        f"vfpga.cores = {cores}"
                    )
                n = len(body) // INSN_BYTES
                if ci == chosen:
                    chosen_ifps.append(len(rows))
                rows.append((li, ci, core, *pkg.tile, n_insns, n, lat,
                             *[use[b] for b in BUFFER_NAMES]))
                words.append(body)
                n_insns += n
        layers.append(Layer(name=layer.node.data, kind=LAYER_KIND[layer.kind.data],
                            macs=layer.macs.value.data, first_ifp=first,
                            ifp_count=len(rows) - first))
    ifps = _ifp_table(rows)
    counts = ifps["insn_count"].astype(np.int64)
    pkg_core = ifps["core"].astype(np.int64)
    pkg_layer = ifps["layer"].astype(np.int64)
    text = np.frombuffer(b"".join(words), np.uint8).copy()
    hdr = text.reshape(-1, INSN_BYTES).view(HEADER_DTYPE).reshape(-1)
    hdr["core"] = np.repeat(pkg_core, counts)
    hdr["layer"] = np.repeat(pkg_layer, counts)
    sel = np.asarray(chosen_ifps, np.int64)
    dispatch = dispatch_table(len(layers_ir), cores, sel, pkg_core[sel], pkg_layer[sel])
    tensors, tindex = tensor_table(plan)
    accel = [layer.node.data for layer in layers_ir]
    return VfbFile.for_hw(
        hw, ddr_size=plan.ddr_size, data_offset=plan.data_offset, num_cores=cores,
        text=text.tobytes(), ifps=ifps, layers=layers, tensors=tensors,
        host_ops=host_op_table(plan, accel, tindex),
        data=stored_data(plan, layer_specs_of(module), hw), dispatch=dispatch)


_IFP_COLUMNS = ("layer", "candidate", "core", "w0", "w1", "c0", "c1", "h0", "h1",
                "insn_offset", "insn_count", "latency", *BUFFER_NAMES)
"""The IFP record fields :func:`module_to_vfb` fills, in the order of its rows."""


def _ifp_table(rows: list[tuple[int, ...]]) -> np.ndarray:
    """The IFP table of ``rows`` (values in :data:`_IFP_COLUMNS` order), filled column
    by column. Raises :class:`StaticPassError` naming the field of a value outside its
    record field's range (a tile, latency or usage a hostile module may carry)."""
    ifps = empty_ifps(len(rows))
    if not rows:
        return ifps
    try:
        tab: np.ndarray | None = np.array(rows, dtype=np.int64)
    except OverflowError:  # a value beyond int64: checked column by column below
        tab = None
    for j, name in enumerate(_IFP_COLUMNS):
        info = np.iinfo(ifps.dtype[name])
        if tab is not None and info.min <= int(tab[:, j].min()) <= int(tab[:, j].max()) <= info.max:
            ifps[name] = tab[:, j]
            continue
        col = [r[j] for r in rows]
        bad = next((v for v in col if not info.min <= v <= info.max), None)
        if bad is not None:
            raise StaticPassError(f"an ifp.package's {name} = {bad} does not fit the IFP "
                                  f"table's {ifps.dtype[name]} field")
        ifps[name] = np.array(col, dtype=ifps.dtype[name])
    return ifps


def tensor_table(plan: MemoryPlan) -> tuple[list[Tensor], dict[str, int]]:
    """The memory map: every placed tensor whose channel stride is its own channel count
    (inputs first, then the graph's tensors in order; a view inside a concatenation is
    covered by its root), with its index by name."""
    g = plan.graph
    roles = {t: "input" for t in g.inputs}
    roles.update({t: "output" for t in g.outputs})
    floats = float_tensors(g)
    dyn = dynamic_outputs(g)
    # the ONNX shapes of graph inputs and outputs that users see in another shape than
    # the stored map gives (rank-3 sequences, (N, C) inputs, rows broadcast from a constant)
    onnx_shapes = {**{n: s for n, s in g.input_shapes.items() if n in g.inputs},
                   **{n: s for n, s in g.output_shapes.items() if n in g.outputs}}
    out: list[Tensor] = []
    index: dict[str, int] = {}
    for name in [*g.inputs, *(t for t in g.tensors if t not in g.inputs)]:
        if name in dyn:  # not in DDR: 0 for each data-dependent dimension
            dtype, shape = dyn[name]
            index[name] = len(out)
            out.append(Tensor(name=name, role="output", dtype=dtype, layout="raw",
                              shape=tuple(max(d, 0) for d in shape), ddr_offset=0, size=0))
            continue
        p = plan.places.get(name)
        if p is None:
            continue
        t = g.tensors[name]
        _, c, h, w = nchw(t)
        if p.c_stride != c:
            continue
        dtype = ("float32" if name in floats else
                 INDEX_DTYPE if name in g.index_inputs else "int8")
        index[name] = len(out)
        rec = Tensor(
            name=name, role=roles.get(name, "activation"), dtype=dtype,
            layout="nhwc", shape=(1, h, w, c), ddr_offset=p.offset,
            size=h * w * c * DTYPE_BYTES[dtype], scale=float(t.scale),
            zero_point=int(t.zero_point))
        onnx_shape = onnx_shapes.get(name)
        if onnx_shape is not None and tuple(onnx_shape) != record_user_shape(rec):
            rec.onnx_shape = tuple(int(d) for d in onnx_shape)  # PROGRAM io_shapes
        out.append(rec)
    return out, index


def host_op_table(plan: MemoryPlan, accel_nodes: list[str],
                  tindex: dict[str, int]) -> list[HostOp]:
    """Every host op with the index of the accelerator layer it follows
    (:data:`~vfpga.backend.binary.BEFORE_FIRST_LAYER`: none, it runs first);
    ``accel_nodes`` are the accelerator layers' node names in order."""
    layer_of = {n: i for i, n in enumerate(accel_nodes)}
    out: list[HostOp] = []
    last = BEFORE_FIRST_LAYER
    for n in plan.graph.nodes:
        if n.name in layer_of:
            last = layer_of[n.name]
        elif isinstance(n, QHostOp):
            missing = [t for t in (*n.inputs, n.output) if t not in tindex]
            if missing:
                raise CompileError(
                    f"host op '{n.name}': tensors {missing} have no DDR placement"
                )
            out.append(HostOp(
                name=n.name, op_type=n.op_type, after_layer=last,
                inputs=tuple(tindex[t] for t in n.inputs), outputs=(tindex[n.output],),
                attrs={k: _jsonable(v) for k, v in n.attrs.items()}))
    return out


def _jsonable(v: object) -> object:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _opt_output_file() -> tuple[bool, str | None]:
    """``(True, -o FILE or None for stdout)`` when called from an ``xdsl-opt`` /
    ``vfpga-opt`` run (found on the call stack), else ``(False, None)``."""
    from xdsl.xdsl_opt_main import xDSLOptMain

    frame = inspect.currentframe()
    while frame is not None:
        me = frame.f_locals.get("self")
        if isinstance(me, xDSLOptMain):
            return True, me.args.output_file
        frame = frame.f_back
    return False, None


def write_binary(output: IO[str], vfb: VfbFile) -> None:
    """Write ``vfb`` where the target's output goes. xDSL targets write text: an
    ``xdsl-opt``/``vfpga-opt`` run hands the target a ``StringIO`` and copies it into
    the ``-o`` file (opened as text). So under those tools the binary is written to the
    ``-o`` file itself, atomically (:func:`vfpga.backend.binary.write_vfb`: it replaces
    the file the tool opened, which then receives the empty text), or to stdout's byte
    stream when it is not a terminal. Called with a stream of our own, the bytes go to
    its byte stream (``.buffer``)."""
    in_opt, path = _opt_output_file()
    if in_opt and path is not None:
        write_vfb(path, vfb)
        return
    raw = sys.stdout.buffer if in_opt else getattr(output, "buffer", None)
    if raw is None or (in_opt and sys.stdout.isatty()):
        raise StaticPassError(
            "the vfb target writes binary data: give an output file (-o m.vfb)")
    output.flush()
    raw.write(to_bytes(vfb))
    raw.flush()


@dataclass(frozen=True)
class VfbTarget(Target):
    """``-t vfb``: write the compiled module as a ``.vfb`` binary."""

    name = "vfb"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        write_binary(output, module_to_vfb(module))


@dataclass(frozen=True)
class VfbAsmTarget(Target):
    """``-t vfb-asm``: write the compiled module as the assembly text of its ``.vfb``
    (:func:`vfpga.backend.disasm.disassemble`; ``vfpga asm`` assembles it back into the
    same binary)."""

    name = "vfb-asm"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from vfpga.backend.disasm import disassemble

        output.write(disassemble(module_to_vfb(module)))
