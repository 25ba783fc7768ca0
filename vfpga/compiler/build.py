"""The static compile driver: a quantized graph to a ``.vfb`` binary, in one process.

Stages (each an xDSL pass over the IR as well, see ``vfpga/passes``): plan memory, list
candidate tilings per layer, generate every candidate's IFPs, predict each IFP's latency
with the cycle-level core model, pick per layer the candidate with the smallest LPT
makespan on the requested number of cores, and link: encode the instructions, write the
layer and IFP tables, the per-core SYNC barriers, the memory map and the host-op table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vfpga.backend.binary import HostOp, Layer, Tensor, VfbFile, empty_dispatch, empty_ifps
from vfpga.compiler.assign import lower_bound, lpt
from vfpga.compiler.ifpgen import IfpCode, LayerSpec, layer_specs, make_ifp
from vfpga.compiler.latency import column_geometry, latency_key, simulate
from vfpga.compiler.plan import MemoryPlan, nchw, plan_memory
from vfpga.compiler.tiling import Candidate, candidates
from vfpga.errors import CompileError
from vfpga.frontend.qgraph import QGraph, QHostOp
from vfpga.hw.config import HardwareConfig
from vfpga.isa.codec import encode_batch
from vfpga.isa.spec import Opcode

Progress = Callable[[str, int, int], None]

_KIND = {"conv": "conv", "pool": "pool", "add": "eltwise"}


@dataclass
class CandidateCode:
    """One tiling candidate of a layer: its IFPs (with predicted latencies), their LPT
    assignment to the compile-time core count, and the resulting makespan."""

    candidate: Candidate
    ifps: list[IfpCode]
    cores: list[int]
    makespan: int
    bound: float


@dataclass
class LayerChoice:
    """A layer's candidates and the one chosen for the compile-time core count."""

    spec: LayerSpec
    options: list[CandidateCode]
    chosen: int

    @property
    def best(self) -> CandidateCode:
        return self.options[self.chosen]

    @property
    def candidate(self) -> Candidate:
        return self.best.candidate

    @property
    def ifps(self) -> list[IfpCode]:
        return self.best.ifps

    @property
    def cores(self) -> list[int]:
        return self.best.cores

    @property
    def makespan(self) -> int:
        return self.best.makespan

    @property
    def bound(self) -> float:
        return self.best.bound


@dataclass
class CompileResult:
    """A compiled program and what the compiler decided."""

    vfb: VfbFile
    plan: MemoryPlan
    layers: list[LayerChoice]
    host_ops: list[QHostOp] = field(default_factory=list)

    @property
    def predicted_cycles(self) -> int:
        return sum(lc.makespan for lc in self.layers)


def _ifp_latency(ifp: IfpCode, hw: HardwareConfig, cache: dict[tuple, int]) -> int:
    t = ifp.tile
    key = latency_key(ifp.layer, t.w0, t.w1, t.c0, t.c1, len(ifp.insns),
                      column_geometry(ifp.insns))
    if key not in cache:
        cache[key] = simulate(ifp.insns, hw)
    return cache[key]


def choose_layer(spec: LayerSpec, hw: HardwareConfig, cores: int,
                 cache: dict[tuple, int]) -> LayerChoice:
    """Generate every candidate of ``spec`` with its IFPs and latencies, and choose the one
    with the least LPT makespan on ``cores`` cores (ties: fewer IFPs, then order)."""
    options: list[CandidateCode] = []
    for cand in candidates(spec, hw):
        ifps = [make_ifp(spec, t, hw) for t in cand.tiles]
        for ifp in ifps:
            ifp.latency = _ifp_latency(ifp, hw, cache)
        lat = [i.latency for i in ifps]
        core_of, span = lpt(lat, cores)
        options.append(CandidateCode(cand, ifps, core_of, span, lower_bound(lat, cores)))
    chosen = min(range(len(options)),
                 key=lambda i: (options[i].makespan, len(options[i].ifps), i))
    return LayerChoice(spec, options, chosen)


def compile_graph(
    g: QGraph, hw: HardwareConfig, cores: int = 1, progress: Progress | None = None
) -> CompileResult:
    """Compile ``g`` for ``cores`` cores of ``hw`` (see module docstring)."""
    if not 1 <= cores <= hw.num_cores:
        raise ValueError(f"--cores must be 1..{hw.num_cores} for {hw.name}, got {cores}")
    plan = plan_memory(g)
    specs = layer_specs(plan)
    cache: dict[tuple, int] = {}
    choices: list[LayerChoice] = []
    for i, spec in enumerate(specs):
        if progress:
            progress(f"tiling {spec.node.name}", i, len(specs))
        choices.append(choose_layer(spec, hw, cores, cache))
    if progress:
        progress("linking", len(specs), len(specs))
    vfb = link(plan, choices, hw, cores)
    host = [n for n in plan.graph.nodes if isinstance(n, QHostOp)]
    return CompileResult(vfb, plan, choices, host)


def link(plan: MemoryPlan, choices: list[LayerChoice], hw: HardwareConfig,
         cores: int) -> VfbFile:
    """Encode every candidate's IFPs into TEXT (each body's ``core`` field holds its
    default core for ``cores`` cores), and write the dispatch table that runs each
    layer's chosen candidate on ``cores`` logical cores, with a barrier per layer."""
    insns: list[tuple[Opcode, dict[str, int]]] = []
    n_ifps = sum(len(o.ifps) for c in choices for o in c.options)
    ifps = empty_ifps(n_ifps)
    layers: list[Layer] = []
    entries: list[tuple[int, int, int]] = []  # (core, kind, arg) in dispatch order per core
    per_core: list[list[tuple[int, int]]] = [[] for _ in range(cores)]
    k = 0
    for li, ch in enumerate(choices):
        first = k
        for ci, opt in enumerate(ch.options):
            for ifp, core in zip(opt.ifps, opt.cores, strict=True):
                rec = ifps[k]
                rec["layer"], rec["core"], rec["candidate"] = li, core, ci
                rec["w0"], rec["w1"], rec["c0"], rec["c1"] = (ifp.tile.w0, ifp.tile.w1,
                                                              ifp.tile.c0, ifp.tile.c1)
                rec["h0"], rec["h1"] = 0, ifp.rows
                rec["insn_offset"], rec["insn_count"] = len(insns), len(ifp.insns)
                rec["latency"] = ifp.latency
                for b, used in ifp.use.items():
                    rec[b] = used
                for op, f in ifp.insns:
                    insns.append((op, {**f, "core": core, "layer": li}))
                if ci == ch.chosen:
                    per_core[core].append((0, k))
                k += 1
        for c in range(cores):
            per_core[c].append((1, li))
        layers.append(Layer(name=ch.spec.node.name, kind=_KIND[ch.spec.kind],
                            macs=ch.spec.macs, first_ifp=first, ifp_count=k - first))
    for c in range(cores):
        per_core[c].append((2, 0))
        entries.extend((c, kind, arg) for kind, arg in per_core[c])
    dispatch = empty_dispatch(len(entries))
    if entries:
        dispatch["core"], dispatch["kind"], dispatch["arg"] = zip(*entries, strict=True)
    tensors, tindex = tensor_table(plan)
    host_ops = host_op_table(plan, [c.spec.node.name for c in choices], tindex)
    return VfbFile.for_hw(
        hw, ddr_size=plan.ddr_size, data_offset=plan.data_offset, num_cores=cores,
        text=encode_batch(insns), ifps=ifps, layers=layers, tensors=tensors,
        host_ops=host_ops, data=plan.data, dispatch=dispatch)


def tensor_table(plan: MemoryPlan) -> tuple[list[Tensor], dict[str, int]]:
    """The memory map: every placed tensor whose channel stride is its own channel count
    (inputs first, then the graph's tensors in order; a view inside a concatenation is
    covered by its root), with its index by name."""
    g = plan.graph
    roles = {t: "input" for t in g.inputs}
    roles.update({t: "output" for t in g.outputs})
    floats = {n.output for n in g.nodes if isinstance(n, QHostOp) and n.output_float}
    out: list[Tensor] = []
    index: dict[str, int] = {}
    for name in [*g.inputs, *(t for t in g.tensors if t not in g.inputs)]:
        p = plan.places.get(name)
        if p is None:
            continue
        t = g.tensors[name]
        _, c, h, w = nchw(t)
        if p.c_stride != c:
            continue
        is_f = name in floats
        index[name] = len(out)
        out.append(Tensor(
            name=name, role=roles.get(name, "activation"), dtype="float32" if is_f else "int8",
            layout="nhwc", shape=(1, h, w, c), ddr_offset=p.offset,
            size=h * w * c * (4 if is_f else 1), scale=float(t.scale),
            zero_point=int(t.zero_point)))
    return out, index


def host_op_table(plan: MemoryPlan, accel_nodes: list[str],
                  tindex: dict[str, int]) -> list[HostOp]:
    """Every host op with the index of the accelerator layer it follows (-1: none);
    ``accel_nodes`` are the accelerator layers' node names in order."""
    layer_of = {n: i for i, n in enumerate(accel_nodes)}
    out: list[HostOp] = []
    last = -1
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
