"""The ``.vfb`` target: a fully compiled module (``dnn-plan-memory`` ... ``ifp-select``) to
a :class:`vfpga.backend.binary.VfbFile`, the same file
:func:`vfpga.compiler.build.compile_graph` produces for the same graph, byte for byte.

Reads only the IR: the memory plan annotations (tensor placements, constant offsets; the
DATA bytes are rebuilt from the ``dnn.conv`` ops), the ``ifp.layer`` ops and every
candidate's packages. TEXT holds every package's instructions, layer by layer, candidate
by candidate, with the header fields ``core`` (the package's default core) and ``layer``
(the layer index) filled in, encoded by :func:`vfpga.isa.codec.encode_batch`. The IFP
table has one record per package; the DISPATCH table runs each layer's ``selected``
candidate on the module's ``vfpga.cores`` logical cores (each core: its packages, then a
barrier per layer, then its end). The memory map lists every dense tensor (graph inputs
first; views inside a concatenation are covered by their root), the host-op table every
``dnn.host`` op with the layer it follows.
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, ModuleOp

from vfpga.backend.binary import Layer, VfbFile, empty_dispatch, empty_ifps
from vfpga.compiler.build import host_op_table, tensor_table
from vfpga.dialects.isa import op_to_fields
from vfpga.hw.config import BUFFER_NAMES, HardwareConfig
from vfpga.isa.codec import encode_batch
from vfpga.isa.spec import Opcode
from vfpga.passes.dnn_plan_memory import StaticPassError, plan_from_module
from vfpga.passes.dnn_tile import hw_of, layers_of
from vfpga.passes.ifp_select import CORES_ATTR

LAYER_KIND = {"conv": "conv", "pool": "pool", "add": "eltwise"}
"""``ifp.layer`` kind -> LAYER record kind."""

DISPATCH_IFP, DISPATCH_SYNC, DISPATCH_END = 0, 1, 2


def module_to_vfb(module: ModuleOp, hw: HardwareConfig) -> VfbFile:
    """Encode a compiled module for ``hw`` (which must be the hardware it was tiled for).

    Raises :class:`~vfpga.passes.dnn_plan_memory.StaticPassError` when a stage is missing
    (no plan, no layers, a package without instructions, latency or core, no selection).
    """
    mhw = hw_of(module)
    if mhw.fingerprint != hw.fingerprint:
        raise StaticPassError(
            f"the module was compiled for hardware '{mhw.name}', not '{hw.name}' "
            "(their configurations differ)"
        )
    cores_attr = module.attributes.get(CORES_ATTR)
    if not isinstance(cores_attr, IntegerAttr):
        raise StaticPassError("the module has no core count (vfpga.cores): run ifp-select first")
    cores = cores_attr.value.data
    plan = plan_from_module(module, with_data=True)
    layers_ir = layers_of(module)

    insns: list[tuple[Opcode, dict[str, int]]] = []
    n_ifps = sum(len(c.packages()) for layer in layers_ir for c in layer.candidates())
    ifps = empty_ifps(n_ifps)
    layers: list[Layer] = []
    per_core: list[list[tuple[int, int]]] = [[] for _ in range(cores)]
    k = 0
    for li, layer in enumerate(layers_ir):
        if layer.selected is None:
            raise StaticPassError(
                f'ifp.layer {li} "{layer.node.data}" has no selected candidate: run ifp-select'
            )
        chosen = layer.selected.value.data
        first = k
        for ci, cand in enumerate(layer.candidates()):
            for pkg in cand.packages():
                core, lat, use = pkg.get("core"), pkg.get("latency"), pkg.usage()
                body = pkg.instructions()
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
                rec = ifps[k]
                w0, w1, c0, c1, h0, h1 = pkg.tile
                rec["layer"], rec["core"], rec["candidate"] = li, core, ci
                rec["w0"], rec["w1"], rec["c0"], rec["c1"] = w0, w1, c0, c1
                rec["h0"], rec["h1"] = h0, h1
                rec["insn_offset"], rec["insn_count"] = len(insns), len(body)
                rec["latency"] = lat
                for b in BUFFER_NAMES:
                    rec[b] = use[b]
                for ins in body:
                    opc, f = op_to_fields(ins)
                    f["core"] = core
                    f["layer"] = li
                    insns.append((opc, f))
                if ci == chosen:
                    per_core[core].append((DISPATCH_IFP, k))
                k += 1
        for c in range(cores):
            per_core[c].append((DISPATCH_SYNC, li))
        layers.append(Layer(name=layer.node.data, kind=LAYER_KIND[layer.kind.data],
                            macs=layer.macs.value.data, first_ifp=first, ifp_count=k - first))
    entries: list[tuple[int, int, int]] = []
    for c in range(cores):
        per_core[c].append((DISPATCH_END, 0))
        entries.extend((c, kind, arg) for kind, arg in per_core[c])
    dispatch = empty_dispatch(len(entries))
    if entries:
        dispatch["core"], dispatch["kind"], dispatch["arg"] = zip(*entries, strict=True)
    tensors, tindex = tensor_table(plan)
    accel = [layer.node.data for layer in layers_ir]
    return VfbFile.for_hw(
        hw, ddr_size=plan.ddr_size, data_offset=plan.data_offset, num_cores=cores,
        text=encode_batch(insns), ifps=ifps, layers=layers, tensors=tensors,
        host_ops=host_op_table(plan, accel, tindex), data=plan.data, dispatch=dispatch)


__all__ = ["host_op_table", "module_to_vfb", "tensor_table"]
