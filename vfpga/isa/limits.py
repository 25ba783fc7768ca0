"""Limits of the ISA that several layers check (docs/isa.md): one home for each.

* :data:`MAX_CORES`: logical cores one program may use (the 6-bit core field of the
  level-1 dispatcher: core indices ``0 .. MAX_CORES - 1``).
* :data:`ILLEGAL_DEPS`: the dependency-token bits (:class:`~vfpga.isa.spec.Dep`) each
  module may not use: LOAD has no previous module, SAVE no next one, and SYNC / END
  (the control path) carry no dependency bits at all. :data:`DEP_BITS` are the four bits
  header byte 4 defines; the others are reserved and must be zero.
* :data:`MAX_MULTIPLIER` / :data:`MAX_SHIFT`: the range of the integer requantization
  pairs of the quantized graph, ``multiplier`` in ``[0, MAX_MULTIPLIER)`` and ``shift`` in
  ``[0, MAX_SHIFT]``. ``multiplier / 2**shift`` then has at most 31 significant bits and a
  normal float64 exponent, so :func:`vfpga.isa.float32.requant_scale` rounds it to float32
  exactly once.
* :data:`MAX_KERNEL`: the largest CONV kernel side (``kh``, ``kw`` in ``1 .. MAX_KERNEL``);
  :data:`MAX_DILATION` / :data:`MAX_UPSAMPLE`: the largest CONV dilation and zero-insertion
  factors (the byte fields ``dil_*`` / ``ups_*``, ISA version 3).
"""

from __future__ import annotations

from vfpga.isa.spec import Dep, Module

__all__ = ["DEP_BITS", "ILLEGAL_DEPS", "MAX_CORES", "MAX_DILATION", "MAX_KERNEL",
           "MAX_MULTIPLIER", "MAX_SHIFT", "MAX_UPSAMPLE"]

#: Logical cores a program may use; core indices are ``0 .. MAX_CORES - 1``.
MAX_CORES = 64

#: The defined dependency-token bits of header byte 4 (the rest are reserved, zero).
DEP_BITS = int(Dep.WAIT_PREV | Dep.WAIT_NEXT | Dep.SIGNAL_PREV | Dep.SIGNAL_NEXT)

#: Dependency bits each module may not use.
ILLEGAL_DEPS: dict[Module, int] = {
    Module.LOAD: int(Dep.WAIT_PREV | Dep.SIGNAL_PREV),
    Module.SAVE: int(Dep.WAIT_NEXT | Dep.SIGNAL_NEXT),
    Module.CALC: 0,
    Module.CTRL: DEP_BITS,
}

#: Exclusive upper bound of a requantization multiplier (``2**31``).
MAX_MULTIPLIER = 1 << 31

#: Largest requantization shift.
MAX_SHIFT = 62

#: Largest CONV kernel height / width.
MAX_KERNEL = 11

#: Largest CONV kernel dilation (``dil_h`` / ``dil_w`` are bytes).
MAX_DILATION = 255

#: Largest CONV zero-insertion factor (``ups_h`` / ``ups_w`` are bytes).
MAX_UPSAMPLE = 255
