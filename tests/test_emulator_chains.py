"""Fused accumulation chains (``vfpga.emulator.plan._Chain``): a compiled convolution whose
weights do not fit wbuf accumulates input-channel chunks through abuf; the fast path
computes each chain in one stacked product. Everything observable must stay exactly the
interpreter's: DDR bytes, every on-chip buffer (abuf holds the last partial sums),
counters, and faults, also when weights change between runs or a step faults while a
chain is open."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import run_compiled
from qgraph_builders import GraphBuilder

import vfpga.emulator.machine as machine_mod
import vfpga.emulator.plan as plan_mod
from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator, int_matmul, jit
from vfpga.emulator.core import Core
from vfpga.emulator.faults import ExecutionFault
from vfpga.hw import load_hw
from vfpga.isa.spec import PARAM_RECORD_DTYPE

HW = load_hw("pool16")

pytestmark = pytest.mark.skipif(
    int_matmul.backend() is None,
    reason="chains are fused only on the exact integer-product path, which this machine does "
    "not use (onnxruntime missing, switched off, or not exact); the float32 path runs them "
    "unfused and test_emulator_plan covers it")


@pytest.fixture(scope="module")
def chunked():  # type: ignore[no-untyped-def]
    """A 3x3 convolution of 256 -> 256 channels on 14 x 14 (weights 590 KB: chunked into
    input-channel chains), then a 1x1 convolution to 64 channels."""
    b = GraphBuilder((256, 14, 14), seed=3)
    y = b.conv(b.conv(b.input, 256), 64, k=(1, 1))
    g = b.build([y], "chunked")
    return g, compile_graph(g, HW, 2)


def _run(g, res, *, fast: bool, runs: int = 1, between=None, patch=None):  # type: ignore[no-untyped-def]
    return run_compiled(Accelerator(HW, fast=fast), g, res.vfb, [3, 8], runs=runs,
                        between=between)


@pytest.fixture
def no_epochs(monkeypatch):  # type: ignore[no-untyped-def]
    """The cores run their own plans (the epoch plans of vfpga.emulator.epoch, which
    compute a whole layer's chains at once, are off): for the tests of the per-core
    chains' internals."""
    monkeypatch.setattr(machine_mod, "build_epoch", lambda *a, **k: None)


def _chains(t) -> list[plan_mod._Chain]:  # type: ignore[no-untyped-def]
    return [c for _, p in t.loaded.plans.values() if p is not None for c in p.chains]


@pytest.mark.parametrize("use_jit", [True, False], ids=["compiled", "numpy"])
def test_chains_are_fused_and_exact(chunked, use_jit: bool, monkeypatch, no_epochs) -> None:  # type: ignore[no-untyped-def]
    if use_jit and jit.get() is None:
        pytest.skip(f"compiled kernels unavailable here: {jit.unavailable_reason()}")
    g, res = chunked
    slow, _ = _run(g, res, fast=False)
    if not use_jit:  # the output stages of the plan steps in numpy instead of compiled
        monkeypatch.setattr(jit, "get", lambda: None)
    fast, t = _run(g, res, fast=True, runs=2)
    assert fast[2], fast[3]
    assert fast == slow
    chains = _chains(t)
    assert chains and all(len(c.members) >= plan_mod._CHAIN_MIN for c in chains)
    assert all((c._jit is None) != use_jit for c in chains)
    # the stacked weights were kept: the second run reused them
    assert all(c._stack is not None for c in chains)


def test_weights_rewritten_between_runs(chunked) -> None:  # type: ignore[no-untyped-def]
    """New weight bytes in DDR (behind every API) give the new results, not stale stacks."""
    g, res = chunked
    spec = res.layers[0].spec
    n = spec.node.weight.size
    calls = [0]

    def rewrite(t) -> None:  # type: ignore[no-untyped-def]
        calls[0] += 1
        rng = np.random.default_rng(calls[0] % 2)  # runs 2 and 3: two different weight sets
        t.region.mem[spec.w_off : spec.w_off + n] = rng.integers(0, 256, n, dtype=np.uint8)

    slow, _ = _run(g, res, fast=False, runs=3, between=rewrite)
    calls[0] = 0
    fast, _ = _run(g, res, fast=True, runs=3, between=rewrite)
    assert fast == slow


def test_fault_at_chain_end_leaves_abuf_as_interpreter(chunked) -> None:  # type: ignore[no-untyped-def]
    """An invalid parameter record on a chain's last CONV: abuf keeps the partial sums."""
    g, res = chunked
    spec = res.layers[0].spec

    def poison(t) -> None:  # type: ignore[no-untyped-def]
        k = spec.p_off + 5 * PARAM_RECORD_DTYPE.itemsize
        t.region.mem[k : k + PARAM_RECORD_DTYPE.itemsize].view(PARAM_RECORD_DTYPE)["scale"] = (
            np.inf)

    slow, _ = _run(g, res, fast=False, runs=2, between=poison)
    fast, _ = _run(g, res, fast=True, runs=2, between=poison)
    assert not slow[2] and "scale = inf" in slow[3]
    assert fast == slow


def test_fault_inside_open_chain_flushes_partial_sums(chunked, monkeypatch, no_epochs) -> None:  # type: ignore[no-untyped-def]
    """A fault between two members (forced here: compiled code has none) must leave abuf
    as the interpreter leaves it at that instruction."""
    g, res = chunked
    _, t = _run(g, res, fast=True)
    chain = _chains(t)[0]
    target = chain.members[2].i  # the third CONV of the first chain
    orig_conv = Core._conv

    def conv_then_fault(self, ctx, i, f):  # type: ignore[no-untyped-def]
        orig_conv(self, ctx, i, f)
        if i == target:
            raise ExecutionFault(f"injected fault after instruction {i}")

    orig_capture = plan_mod._Chain.capture

    def capture_then_fault(self, k):  # type: ignore[no-untyped-def]
        orig_capture(self, k)
        if self.members[k].i == target:
            raise ExecutionFault(f"injected fault after instruction {target}")

    monkeypatch.setattr(Core, "_conv", conv_then_fault)
    slow, _ = _run(g, res, fast=False)
    monkeypatch.setattr(Core, "_conv", orig_conv)
    monkeypatch.setattr(plan_mod._Chain, "capture", capture_then_fault)
    fast, tf = _run(g, res, fast=True)
    assert not slow[2] and "injected fault" in slow[3]
    assert fast[1] == slow[1]  # every on-chip buffer, abuf included
    assert fast == slow
    assert all(c.captured == 0 for c in _chains(tf))
