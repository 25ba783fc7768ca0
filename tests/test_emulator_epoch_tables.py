"""Table-activation CONVs (HardSwish, Sigmoid, SiLU, ... as the 256-entry ``act = table``
output stage) in the epoch plans of several cores: the lookup over each layer's int8
outputs gives the interpreter's bytes everywhere (DDR, every buffer of every core,
counters), also when the table bytes in DDR change between runs; on one core such layers
keep their cores' own plans (faster there, docs/runtime.md)."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import run_compiled
from qdq_models import activations_net, normal_inputs, quantize_qdq

from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator, int_matmul, jit
from vfpga.emulator.epoch import EpochPlan
from vfpga.frontend.qdq_lower import lower_qdq_mapped
from vfpga.hw import load_hw
from vfpga.isa.spec import ACT_TABLE_BYTES, PARAM_RECORD_BYTES

HW = load_hw("pool16")
CORES = {1: [4], 3: [9, 2, 5], 8: [15, 0, 3, 8, 1, 12, 6, 10]}

pytestmark = pytest.mark.skipif(
    int_matmul.backend() is None or jit.get() is None,
    reason="epoch plans need the exact integer products and the compiled output stages",
)


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    """activations_net: seven table activations fused into 3x3, depthwise and 1x1 CONVs."""
    g = lower_qdq_mapped(quantize_qdq(activations_net(0), normal_inputs((1, 3, 16, 16), 8, 1)))
    return g.graph, {c: compile_graph(g.graph, HW, c) for c in CORES}


def _epochs(t) -> list[EpochPlan]:  # type: ignore[no-untyped-def]
    return [p for _, p in t.loaded.epochs.values() if p is not None]


def _table_blocks(t) -> int:  # type: ignore[no-untyped-def]
    return sum(b.table_at is not None for ep in _epochs(t) for gr in ep.groups for b in gr.blocks)


@pytest.mark.parametrize("n", sorted(CORES))
def test_table_convs_in_epoch_plans_are_exact(net, n: int) -> None:  # type: ignore[no-untyped-def]
    g, res = net
    slow, _ = run_compiled(Accelerator(HW, fast=False), g, res[n].vfb, CORES[n], seed=2)
    fast, t = run_compiled(Accelerator(HW), g, res[n].vfb, CORES[n], runs=2, seed=2)
    assert fast[2], fast[3]
    assert fast == slow
    if n == 1:
        assert _table_blocks(t) == 0
    else:  # the depthwise one (SiLU) and the dense ones
        assert _table_blocks(t) >= 6
        assert any(gr.depthwise and gr.blocks[0].table_at for ep in _epochs(t) for gr in ep.groups)


def test_tables_rewritten_between_runs(net) -> None:  # type: ignore[no-untyped-def]
    """New table bytes in DDR (behind every API) give the new results at once."""
    g, res = net
    specs = [
        la.spec for la in res[3].layers if la.kind == "conv" and la.spec.node.act.kind == "table"
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
        Accelerator(HW, fast=False), g, res[3].vfb, CORES[3], runs=3, between=rewrite
    )
    calls[0] = 0
    fast, t = run_compiled(Accelerator(HW), g, res[3].vfb, CORES[3], runs=3, between=rewrite)
    assert _table_blocks(t)
    assert fast == slow
