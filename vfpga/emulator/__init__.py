"""Instruction-level emulator of the multi-core accelerator.

Level 1 (shared): :class:`~vfpga.emulator.machine.Accelerator` routes instructions to cores
through each task's logical-to-physical core map, runs the per-task layer barriers and
records the last finished layer. Level 2 (per core): :class:`~vfpga.emulator.core.Core`
runs the LOAD, CALC and SAVE queues under dependency tokens, with hazard checks.
Arithmetic is in :mod:`vfpga.emulator.kernels` (bit-exact, tile-sized numpy work).
"""

from vfpga.emulator.machine import Accelerator, Task, TaskResult

__all__ = ["Accelerator", "Task", "TaskResult"]
