"""Derived data an op carries in process: Python objects computed together with part of
its IR, attached to the op object and never printed.

The static passes keep what later passes need in the IR (the memory plan as attributes,
tilings and packages as ``ifp`` ops, instructions as packed words), and also attach the
Python form they computed it from (the :class:`~vfpga.compiler.plan.MemoryPlan`, the
layer specs, a package's instruction fields) so that a later pass in the same process
need not rebuild it from the IR. Each value is stored with an **anchor**: the attribute
object of the IR it was derived with (e.g. the module's ``vfpga.ddr_size`` written by
``dnn-plan-memory``, or a package's ``code``). :func:`lookup` returns the value only
while the op still holds that very attribute object; re-running the pass, replacing the
attribute, cloning the op or parsing printed IR drops it, and the reader falls back to
rebuilding the value from the IR. The IR stays the source of truth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xdsl.ir import Attribute, Operation

_SLOT = "_vfpga_derived"


def attach(op: Operation, key: str, anchor: Attribute, value: Any) -> None:
    """Attach ``value`` to ``op`` under ``key``, valid while ``op`` holds ``anchor``."""
    store: dict[str, tuple[Attribute, Any]] | None = op.__dict__.get(_SLOT)
    if store is None:
        store = {}
        op.__dict__[_SLOT] = store
    store[key] = (anchor, value)


class _Deferred:
    """A value computed on first :func:`lookup` (see :func:`attach_deferred`)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def attach_deferred(op: Operation, key: str, anchor: Attribute, make: Callable[[], Any]
                    ) -> None:
    """As :func:`attach`, the value being ``make()``, called on the first :func:`lookup`
    that finds it (for values most readers never ask for)."""
    attach(op, key, anchor, _Deferred(make))


def lookup(op: Operation, key: str, anchor: Attribute | None) -> Any | None:
    """The value attached under ``key`` if it was attached with this very ``anchor``
    object (None otherwise, or when ``anchor`` is None)."""
    if anchor is None:
        return None
    store: dict[str, tuple[Attribute, Any]] | None = op.__dict__.get(_SLOT)
    if store is None or key not in store:
        return None
    a, value = store[key]
    if a is not anchor:
        return None
    if type(value) is _Deferred:
        value = value.make()
        store[key] = (a, value)
    return value
