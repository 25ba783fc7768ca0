"""``vfpga fleet``: many accelerator nodes (one pool each) on Ray behind the KServe v2 front
of ``vfpga serve``, and the fleet simulation (docs/fleet.md).

Modules: :mod:`~vfpga.fleet.placement` (the controller's placement structure),
:mod:`~vfpga.fleet.node` (a node: one pool as a Ray actor), :mod:`~vfpga.fleet.controller`
(placement, routing, node failure), :mod:`~vfpga.fleet.cluster` (starting Ray),
:mod:`~vfpga.fleet.scenario` and :mod:`~vfpga.fleet.simulate` (``vfpga fleet simulate``).
"""
