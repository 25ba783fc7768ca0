"""Epoch plans of MobileNetV3-style layers over several cores: table-activation CONVs
(HardSwish, Sigmoid, SiLU, ... as the 256-entry ``act = table`` output stage) in
``vfpga.emulator.epoch``, and element-wise layers (an Add, Sub or Mul of two maps, the
squeeze-excite gate's per-channel Mul) as whole-layer table lookups from DDR in
``vfpga.emulator.epoch_elt``. Everything observable stays the interpreter's: DDR bytes,
every buffer of every core, counters, also when table bytes change in DDR between runs;
a lookup that raises makes the cores run their own plans. On one core these layers keep
the cores' own plans (as fast or faster there, docs/runtime.md)."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import run_compiled
from qdq_models import activations_net, eltwise_net, normal_inputs, quantize_qdq

from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator, int_matmul, jit
from vfpga.emulator.epoch import EpochPlan
from vfpga.emulator.epoch_elt import EltEpochPlan
from vfpga.frontend.qdq_lower import lower_qdq_mapped
from vfpga.hw import load_hw
from vfpga.isa.spec import ACT_TABLE_BYTES, PARAM_RECORD_BYTES

HW = load_hw("pool16")
CORES = {1: [4], 3: [9, 2, 5], 8: [15, 0, 3, 8, 1, 12, 6, 10]}

pytestmark = pytest.mark.skipif(
    int_matmul.backend() is None or jit.get() is None,
    reason="epoch plans need the exact integer products and the compiled kernels",
)


def _compiled(model):  # type: ignore[no-untyped-def]
    g = lower_qdq_mapped(quantize_qdq(model, normal_inputs((1, 3, 16, 16), 8, 1))).graph
    return g, {c: compile_graph(g, HW, c) for c in CORES}


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    """activations_net: seven table activations fused into 3x3, depthwise and 1x1 CONVs."""
    return _compiled(activations_net(0))


@pytest.fixture(scope="module")
def elt_net():  # type: ignore[no-untyped-def]
    """eltwise_net: two squeeze-excite gates, a Mul and a Sub of two maps, an Add and a
    Sub of a per-channel map broadcast over a map."""
    return _compiled(eltwise_net(0))


def _exact(g, res, n: int, seed: int):  # type: ignore[no-untyped-def]
    """Run ``res[n]`` on the cores ``CORES[n]`` on the interpreter once and on the plans
    twice; check that everything observable is the same; the plans' task."""
    slow, _ = run_compiled(Accelerator(HW, fast=False), g, res[n].vfb, CORES[n], seed=seed)
    fast, t = run_compiled(Accelerator(HW), g, res[n].vfb, CORES[n], runs=2, seed=seed)
    assert fast[2], fast[3]
    assert fast == slow
    return t


def _epochs(t) -> list[EpochPlan]:  # type: ignore[no-untyped-def]
    return [e.plan for e in t.loaded.epochs.values() if e.plan is not None]


def _table_blocks(t) -> int:  # type: ignore[no-untyped-def]
    return sum(b.table_at is not None for ep in _epochs(t) for gr in ep.groups for b in gr.blocks)


@pytest.mark.parametrize("n", sorted(CORES))
def test_table_convs_in_epoch_plans_are_exact(net, n: int) -> None:  # type: ignore[no-untyped-def]
    t = _exact(*net, n, seed=2)
    if n == 1:
        assert _table_blocks(t) == 0
    else:  # the depthwise one (SiLU) and the dense ones
        assert _table_blocks(t) >= 6
        assert any(gr.depthwise and gr.blocks[0].table_at for ep in _epochs(t) for gr in ep.groups)


@pytest.mark.parametrize("n", [1, 3])
def test_tables_rewritten_between_runs(net, n: int) -> None:  # type: ignore[no-untyped-def]
    """New table bytes in DDR (behind every API) give the new results at once, in the
    epoch plans (3 cores) and in the cores' own plans (1 core)."""
    g, res = net
    specs = [
        la.spec for la in res[n].layers if la.kind == "conv" and la.spec.node.act.kind == "table"
    ]
    assert specs
    calls = [0]

    def rewrite(t) -> None:  # type: ignore[no-untyped-def]
        calls[0] += 1
        rng = np.random.default_rng(calls[0] % 2)
        for s in specs:
            at = s.p_off + s.out_shape[0] * PARAM_RECORD_BYTES
            t.region.mem[at : at + ACT_TABLE_BYTES] = rng.integers(0, 256, ACT_TABLE_BYTES)

    slow, _ = run_compiled(
        Accelerator(HW, fast=False), g, res[n].vfb, CORES[n], runs=3, between=rewrite
    )
    calls[0] = 0
    fast, t = run_compiled(Accelerator(HW), g, res[n].vfb, CORES[n], runs=3, between=rewrite)
    assert bool(_table_blocks(t)) == (n > 1)
    assert fast == slow


def _elt_plans(t) -> list[EltEpochPlan]:  # type: ignore[no-untyped-def]
    return [e.plan for e in t.loaded.epochs.values() if isinstance(e.plan, EltEpochPlan)]


@pytest.mark.parametrize("n", sorted(CORES))
def test_elementwise_epochs_are_exact(elt_net, n: int) -> None:  # type: ignore[no-untyped-def]
    t = _exact(*elt_net, n, seed=3)
    plans = _elt_plans(t)
    if n == 1:  # one core: its own plans (as fast there)
        assert not plans
        return
    # every element-wise layer: the two gates, Mul, Sub, the broadcast Add and Sub, each
    # one lookup over the whole map its tiles cover (split along the channels on 3
    # cores, along the width on 8)
    assert len(plans) == 6
    assert any(e.period for ep in plans for e in ep.elts)
    assert all(len(ep.runs) == 1 and ep.runs[0].w for ep in plans)


def test_a_failing_lookup_falls_back_to_the_cores_plans(elt_net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A lookup that raises (a case the plan was not written for) writes nothing: the
    cores run their own plans, with the same bytes, and the plan declines from then on."""
    import vfpga.emulator.epoch_elt as epoch_elt

    g, res = elt_net
    want, _ = run_compiled(Accelerator(HW, fast=False), g, res[3].vfb, CORES[3], seed=4)

    def broken(*a, **k):  # type: ignore[no-untyped-def]
        raise KeyError("unforeseen")

    monkeypatch.setattr(epoch_elt.EltEpochPlan, "_lookup", broken)
    got, t = run_compiled(Accelerator(HW), g, res[3].vfb, CORES[3], runs=2, seed=4)
    assert got == want
    assert _elt_plans(t) and all(ep.declined for ep in _elt_plans(t))
