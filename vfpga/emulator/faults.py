"""Faults raised while emulating. Each names the task, the core and the instruction."""

from __future__ import annotations

from vfpga.errors import EmulatorFault


class OutOfRegionFault(EmulatorFault):
    """A LOAD or SAVE touched DDR outside the task's region [base, base + bound)."""


class BufferOverflowFault(EmulatorFault):
    """An instruction accessed an on-chip buffer past its configured size (or misaligned)."""


class DependencyViolation(EmulatorFault):
    """Two modules of a core accessed the same on-chip bytes without a token ordering them."""


class DeadlockFault(EmulatorFault):
    """No module can make progress: a token wait that is never satisfied, a core that ends
    while others wait at a barrier, or cores waiting at barriers of different layers."""


class ExecutionFault(EmulatorFault):
    """An instruction's operands are inconsistent (for example a kernel larger than its
    padded input, or channels not divisible by groups)."""


class BudgetFault(EmulatorFault):
    """A run went over its wall-time budget (:meth:`vfpga.emulator.machine.Task.set_budget`)."""
