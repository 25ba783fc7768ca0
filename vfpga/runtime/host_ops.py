"""Compatibility alias: host ops live with the emulator that runs them
(:mod:`vfpga.emulator.host_ops`)."""

from vfpga.emulator.host_ops import HostOpFault, run_host_op

__all__ = ["HostOpFault", "run_host_op"]
