"""``ifp-allocate-cores{cores=0,3,5 strategy=lpt}``: the dynamic pass on the IR.

The same algorithm as :func:`vfpga.backend.retarget.allocate` (the online pass over a
binary's IFP table), applied to a module after ``ifp-estimate-latency``: it reads only
each ``ifp.package``'s ``latency`` and its position (layer index, candidate position),
and, for the physical cores ``cores`` (logical core ``i`` is ``cores[i]``), sets

* every package's ``core`` to its logical core under the strategy's assignment of its
  candidate's packages to ``k = len(cores)`` cores,
* every candidate's ``makespan`` to that assignment's makespan (cycles),
* every layer's ``selected`` to the candidate of least makespan (ties: fewer packages,
  then the earlier candidate),
* the module attributes ``vfpga.cores = k`` (what ``ifp-select`` sets, so the ``.vfb``
  target emits the dispatch table for ``k`` logical cores) and ``vfpga.core_map``, the
  physical cores in logical order.

With ``strategy=lpt`` and ``cores`` = ``0..N-1`` the result equals ``ifp-select{cores=N}``.
``strategy`` names an entry of :data:`vfpga.backend.retarget.STRATEGIES`. The physical
cores must be distinct and, when the module names its hardware, inside its pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, ModuleOp, i64
from xdsl.passes import ModulePass

from vfpga.backend.retarget import Allocation, AllocationError, allocate, prepare
from vfpga.dialects import ifp
from vfpga.dialects.isa import int_attr
from vfpga.passes.dnn_plan_memory import StaticPassError
from vfpga.passes.dnn_tile import HW_CONFIG_ATTR, hw_of, layers_of
from vfpga.passes.ifp_select import CORES_ATTR

CORE_MAP_ATTR = "vfpga.core_map"
"""Module attribute: the physical core of each logical core (``array<i64: ...>``)."""

_TABLE = np.dtype([("layer", "<u4"), ("candidate", "<u2"), ("latency", "<u8")])


def allocate_module(module: ModuleOp, cores: tuple[int, ...], strategy: str = "lpt") -> Allocation:
    """Run the dynamic pass on ``module`` in place (see the module docstring) and return the
    :class:`~vfpga.backend.retarget.Allocation`."""
    layers = layers_of(module)
    pool = hw_of(module).num_cores if HW_CONFIG_ATTR in module.attributes else None
    packages: list[ifp.PackageOp] = []
    rows: list[tuple[int, int, int]] = []
    for layer in layers:
        cands = layer.candidates()
        for ci, cand in enumerate(cands):
            pkgs = cand.packages()
            if not pkgs:
                raise StaticPassError(
                    f'ifp.layer {layer.index_value} "{layer.node.data}": candidate {ci} has '
                    "no packages: run ifp-package first")
            for p in pkgs:
                lat = p.get("latency")
                if lat is None:
                    raise StaticPassError(
                        f'ifp.layer {layer.index_value} "{layer.node.data}": a package has '
                        "no latency: run ifp-estimate-latency first")
                packages.append(p)
                rows.append((layer.index_value, ci, lat))
    table = np.array(rows, _TABLE)
    try:
        prep = prepare(table, len(layers), pool_size=pool, source="ifp-allocate-cores")
        alloc = allocate(prep, cores, strategy)
    except AllocationError as exc:
        raise StaticPassError(f"ifp-allocate-cores: {exc}") from None
    gs = alloc.schedule.groups
    core_of = np.zeros(len(packages), np.int64)
    valid = prep.idx >= 0
    core_of[prep.idx[valid]] = gs.core[valid]
    for p, c in zip(packages, core_of.tolist(), strict=True):
        p.set_int("core", c)
    for g, (li, ci) in enumerate(zip(prep.g_layer.tolist(), prep.g_candidate.tolist(),
                                     strict=True)):
        layers[li].candidates()[ci].makespan = int_attr(int(gs.makespan[g]))
    for li, g in zip(alloc.layers.tolist(), alloc.schedule.group.tolist(), strict=True):
        layers[li].selected = int_attr(int(prep.g_candidate[g]))
    module.attributes[CORES_ATTR] = IntegerAttr(alloc.k, 64)
    module.attributes[CORE_MAP_ATTR] = DenseArrayBase.from_list(i64, list(alloc.cores))
    return alloc


@dataclass(frozen=True)
class IfpAllocateCoresPass(ModulePass):
    """Choose every layer's candidate and assign its packages to the physical ``cores``
    with allocation ``strategy`` (see the module docstring)."""

    name = "ifp-allocate-cores"

    cores: tuple[int, ...] = ()
    strategy: str = "lpt"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.cores:
            raise StaticPassError("ifp-allocate-cores: give the physical cores, e.g. "
                                  "ifp-allocate-cores{cores=0,3,5}")
        allocate_module(op, tuple(self.cores), self.strategy)
