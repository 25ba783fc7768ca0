"""``dnn-tile{hw=pool16}``: list every tiling candidate of every accelerator layer as
``ifp.layer`` / ``ifp.candidate`` ops (engine: :func:`vfpga.compiler.tiling.candidates`).

Needs ``dnn-plan-memory``. For the ``i``-th ``dnn.conv`` / ``dnn.pool`` / ``dnn.add`` of
the graph (block order) the pass appends ``ifp.layer i "<node>" <kind> out CxHxW macs N``
to the module, holding one ``ifp.candidate`` per candidate that fits the core's buffers,
in the engine's order (width splits into ``tiling.GRANULARITIES`` parts, then
output-channel splits; duplicates dropped). The hardware becomes module attributes:
``vfpga.hw`` (its name), ``vfpga.hw_config`` (the configuration as JSON, so the later
passes and a later process use exactly this hardware) and ``vfpga.buffers`` (the buffer
sizes the ``ifp.package`` verifier checks against). Existing ``ifp.layer`` ops are
replaced, so the pass can be re-run with another ``hw``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from vfpga.compiler.ifpgen import LayerSpec, TileDoesNotFit, layer_specs
from vfpga.compiler.tiling import candidates
from vfpga.dialects import derived, ifp
from vfpga.hw.config import DEFAULT_HW, HardwareConfig, HardwareConfigError, load_hw
from vfpga.passes.dnn_plan_memory import DDR_SIZE_ATTR, StaticPassError, planned

HW_ATTR = "vfpga.hw"
HW_CONFIG_ATTR = "vfpga.hw_config"


@lru_cache(maxsize=8)
def _hw_from_json(text: str) -> HardwareConfig:
    return HardwareConfig.from_dict(json.loads(text), HW_CONFIG_ATTR)


def hw_of(module: ModuleOp) -> HardwareConfig:
    """The hardware the module was tiled for (module attribute ``vfpga.hw_config``)."""
    a = module.attributes.get(HW_CONFIG_ATTR)
    if not isinstance(a, StringAttr):
        raise StaticPassError(
            "the module has no hardware (module attribute vfpga.hw_config): run the "
            "dnn-tile{hw=...} pass first"
        )
    try:
        return _hw_from_json(a.data)
    except (ValueError, HardwareConfigError) as exc:
        raise StaticPassError(f"module attribute {HW_CONFIG_ATTR}: {exc}") from None


def layer_specs_of(module: ModuleOp) -> list[LayerSpec]:
    """The accelerator layers of a planned module (engine form), in execution order:
    derived from :func:`~vfpga.passes.dnn_plan_memory.planned` once per plan and kept
    with it (:mod:`vfpga.dialects.derived`)."""
    plan = planned(module)
    anchor = module.attributes.get(DDR_SIZE_ATTR)
    specs = derived.lookup(module, "specs", anchor)
    if specs is None or specs[0] is not plan:
        specs = (plan, layer_specs(plan))
        assert anchor is not None
        derived.attach(module, "specs", anchor, specs)
    return specs[1]


def layers_of(module: ModuleOp) -> list[ifp.LayerOp]:
    """The module's ``ifp.layer`` ops in order (checked: indices 0, 1, 2, ...). A tiled
    module (``vfpga.hw_config`` set by dnn-tile) may have none: a model whose every node
    runs on the host (docs/binary-format.md, "Programs without accelerator layers")."""
    layers = [op for op in module.ops if isinstance(op, ifp.LayerOp)]
    for i, layer in enumerate(layers):
        if layer.index_value != i:
            raise StaticPassError(
                f'ifp.layer {layer.index_value} "{layer.node.data}" is the layer at position '
                f"{i}: layers must be numbered 0, 1, 2, ... in module order"
            )
    if not layers and HW_CONFIG_ATTR not in module.attributes:
        raise StaticPassError("the module has no ifp.layer ops: run the dnn-tile pass first")
    return layers


def spec_for(layer: ifp.LayerOp, specs: list[LayerSpec]) -> LayerSpec:
    """The engine layer of ``layer`` (checked against its node name and output shape)."""
    i = layer.index_value
    if i >= len(specs) or specs[i].node.name != layer.node.data:
        raise StaticPassError(
            f'ifp.layer {i} "{layer.node.data}" does not match accelerator layer {i} of the '
            "dnn.graph; re-run dnn-tile"
        )
    spec = specs[i]
    if tuple(spec.out_shape) != layer.out_shape:
        raise StaticPassError(
            f'ifp.layer {i} "{layer.node.data}": output {layer.out_shape} differs from the '
            f"graph's {tuple(spec.out_shape)}"
        )
    return spec


def tile_module(module: ModuleOp, hw: HardwareConfig, hw_label: str | None = None) -> None:
    """The body of the pass, for a :class:`HardwareConfig` object (``hw_label``: the value
    of ``vfpga.hw``, default ``hw.name``)."""
    specs = layer_specs_of(module)
    for op in [op for op in module.ops if isinstance(op, ifp.LayerOp)]:
        op.detach()
        op.erase()
    layers: list[ifp.LayerOp] = []
    for spec in specs:
        try:
            cands = candidates(spec, hw)
        except TileDoesNotFit as exc:
            raise StaticPassError(f"{exc} on {hw.name}") from None
        ops: list[ifp.CandidateOp] = []
        for c in cands:
            if c.axis == "w":
                bounds = [t.w0 for t in c.tiles] + [c.tiles[-1].w1]
            else:
                bounds = [t.c0 for t in c.tiles] + [c.tiles[-1].c1]
            ops.append(ifp.CandidateOp(c.axis, bounds))
        layers.append(ifp.LayerOp(spec.index, spec.node.name, spec.kind, spec.out_shape,
                                  spec.macs, ops))
    module.body.block.add_ops(layers)
    module.attributes[HW_ATTR] = StringAttr(hw_label or hw.name)
    module.attributes[HW_CONFIG_ATTR] = StringAttr(
        json.dumps(hw.to_dict(), sort_keys=True, separators=(",", ":")))
    module.attributes[ifp.BUFFERS_ATTR] = ifp.buffers_attr(hw.buffers)


@dataclass(frozen=True)
class DnnTilePass(ModulePass):
    """Create the ``ifp.layer`` and ``ifp.candidate`` ops of every accelerator layer for
    hardware ``hw`` (a preset name such as ``pool16`` / ``large1``, or the path of a
    configuration JSON file); see the module docstring."""

    name = "dnn-tile"

    hw: str = DEFAULT_HW

    @staticmethod
    def for_config(config: HardwareConfig, label: str | None = None) -> DnnTilePass:
        """The pass for a :class:`HardwareConfig` object (``hw`` option: ``label``,
        default the configuration's name), for drivers that hold a loaded
        configuration; it tiles for ``config`` itself, not for what ``label`` names."""
        p = DnnTilePass(hw=label or config.name)
        object.__setattr__(p, "_config", config)
        return p

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw: HardwareConfig | None = self.__dict__.get("_config")
        if hw is None:
            try:
                hw = load_hw(self.hw)
            except HardwareConfigError as exc:
                raise StaticPassError(f"dnn-tile: {exc}") from None
        tile_module(op, hw, self.hw)
