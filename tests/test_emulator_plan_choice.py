"""The choice between an epoch plan and the cores' own plans
(``vfpga.emulator.plan_choice``): made from the epoch's form when its plans are built, the
same on every run, and never visible in the results (DDR, buffers, counters equal the
interpreter's either way)."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import run_compiled
from qgraph_builders import GraphBuilder

import vfpga.emulator.machine as machine_mod
from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator, int_matmul, jit, plan_choice
from vfpga.emulator.epoch import EpochPlan
from vfpga.hw import load_hw

HW = load_hw("pool16")

pytestmark = pytest.mark.skipif(
    int_matmul.backend() is None or jit.get() is None,
    reason="epoch plans need the exact integer products and the compiled output stages",
)


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    """A MobileNet-style block (depthwise 3x3, then 1x1), a 3x3 convolution of 256 -> 256
    channels whose weights are chunked into input-channel chains, and a fully connected
    layer (a 1x1 output map)."""
    b = GraphBuilder((32, 16, 16), seed=3)
    y = b.conv(b.input, 32, groups=32, act="relu6")
    y = b.conv(y, 256, k=(1, 1), act="relu6")
    y = b.conv(y, 256)
    y = b.pool(y, "avg", k=16, s=16)
    y = b.conv(y, 10, k=(1, 1), act="none")
    g = b.build([y], "plan-choice")
    return g, {c: compile_graph(g, HW, c) for c in (1, 3)}


@pytest.mark.parametrize("cores", [[5], [1, 7, 2]])
def test_choice_keeps_the_interpreters_bytes(net, cores: list[int]) -> None:  # type: ignore[no-untyped-def]
    g, res = net
    vfb = res[len(cores)].vfb
    slow, _ = run_compiled(Accelerator(HW, fast=False), g, vfb, cores, seed=4)
    fast, _ = run_compiled(Accelerator(HW), g, vfb, cores, runs=3, seed=4)
    assert fast[2], fast[3]
    assert fast == slow


def test_one_core_gives_depthwise_and_fc_to_the_cores_plans(net) -> None:  # type: ignore[no-untyped-def]
    """On one core the depthwise and the fully connected epochs run on the core's own
    plan, the chained 3x3 layer on an epoch plan; on three cores every epoch that has an
    epoch plan runs it."""
    g, res = net
    _, t1 = run_compiled(Accelerator(HW), g, res[1].vfb, [5], runs=2)
    plans = [e.plan for e in t1.loaded.epochs.values() if e.plan is not None]
    assert plans and all(isinstance(ep, EpochPlan) for ep in plans)
    groups = [gr for ep in plans for gr in ep.groups]
    assert any(len(gr.ks) > 1 for gr in groups)  # the chained layer
    assert not any(gr.depthwise or gr.m <= 1 for gr in groups)
    _, t3 = run_compiled(Accelerator(HW), g, res[3].vfb, [1, 7, 2], runs=2)
    groups3 = [gr for e in t3.loaded.epochs.values() if e.plan is not None for gr in e.plan.groups]
    assert any(gr.depthwise for gr in groups3)


def test_decision_is_a_function_of_the_form(net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The rule reads the plan's structure only: forced epoch plans (what the choice
    turns down) give the same bytes, and the rule's answers are the documented ones."""
    g, res = net
    vfb = res[1].vfb
    want, _ = run_compiled(Accelerator(HW), g, vfb, [5], runs=2)
    monkeypatch.setattr(machine_mod, "epoch_pays", lambda ep, n_cores: True)
    forced, tf = run_compiled(Accelerator(HW), g, vfb, [5], runs=2)
    assert forced == want
    eps = [e.plan for e in tf.loaded.epochs.values() if e.plan is not None]
    verdicts = {
        (
            "dw" if gr.depthwise else "chain" if len(gr.ks) > 1 else "row" if gr.m <= 1 else "conv"
        ): plan_choice.epoch_pays(ep, 1)
        for ep in eps
        for gr in ep.groups
    }
    assert verdicts.get("dw") is False
    assert verdicts.get("row") is False
    assert verdicts.get("chain") is True
    assert all(plan_choice.epoch_pays(ep, 3) for ep in eps)
    assert np.isfinite(plan_choice.WEIGHT_PER_OUTPUT)
