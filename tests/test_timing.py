"""The timing model: agreement with the static latency prediction, the shared-bank
arbitration (work-conserving, interference only between cores of one bank), level-1
dispatch, barriers and context switches."""

from __future__ import annotations

import numpy as np
import pytest
from qgraph_builders import small_net

from vfpga.backend.retarget import allocate, prepare
from vfpga.driver import compile_graph
from vfpga.emulator.machine import Segment
from vfpga.emulator.timing import (
    Job,
    TimingEngine,
    insn_costs,
    job_for,
    time_ifp,
    time_program,
)
from vfpga.hw.config import load_hw

HW = load_hw("pool16")


@pytest.fixture(scope="module")
def vfb():
    return compile_graph(small_net(seed=4, size=24), HW, cores=4).vfb


def test_ifp_alone_matches_static_prediction(vfb) -> None:
    err = []
    for i in range(len(vfb.ifps)):
        pred = int(vfb.ifps[i]["latency"])
        err.append(abs(time_ifp(vfb, HW, i) - pred) / pred)
    assert np.mean(err) <= 0.05
    # the timing model is its own computation: not identical everywhere
    assert max(err) > 0


def test_bank_sharing_is_work_conserving_and_local(vfb) -> None:
    big = int(np.argmax(vfb.ifps["insn_count"]))
    alone = time_ifp(vfb, HW, big, 1)
    full = time_ifp(vfb, HW, big, HW.cores_per_bank)
    assert full >= alone  # four cores on one bank can oversubscribe it
    # the same IFP on four cores of four different banks: no bank interference
    costs = insn_costs(vfb, HW)
    rec = vfb.ifps[big]
    idx = np.arange(int(rec["insn_offset"]), int(rec["insn_offset"]) + int(rec["insn_count"]))
    eng = TimingEngine(HW)
    jobs = [eng.start(Job(f"j{c}", costs, [c], [[Segment(idx, True, -1, -1)]]))
            for c in (0, 4, 8, 12)]
    eng.run()
    # only the shared level-1 dispatcher couples them: at most the start-up window of the
    # other cores' instructions (one per cycle), and not nothing
    extra = max(j.stats.cycles for j in jobs) - alone
    assert 0 < extra <= 4 * eng.params.window * eng.dispatch_cost


def test_fair_share_rates() -> None:
    eng = TimingEngine(HW)
    bank = eng.banks[0]
    port = bank.port
    assert port == pytest.approx(16.0)  # 19.2 GB/s / 4 cores at 300 MHz
    for n, want in ((1, port), (4, port), (8, bank.capacity / 8)):
        bank.active = {(i, 0): 1e6 for i in range(n)}
        bank.owners = {}
        eng._bank_reschedule(bank)
        assert bank.rate == pytest.approx(want)


def test_program_and_context_switch(vfb) -> None:
    prep = prepare(vfb.ifps, vfb.num_layers, pool_size=16)
    one = time_program(vfb, HW, [0], allocate(prep, [0]).dispatch).cycles
    four = time_program(vfb, HW, [0, 1, 2, 3], allocate(prep, [0, 1, 2, 3]).dispatch).cycles
    assert four < one
    # switch from 1 to 4 cores after layer 2, with a reconfiguration delay
    eng = TimingEngine(HW)
    new = allocate(prep, [4, 5, 6, 7])
    from vfpga.emulator.machine import segments_from_dispatch

    def hook(job: Job, layer: int) -> None:
        if layer == 2:
            eng.switch(job, new.cores, segments_from_dispatch(new.dispatch, vfb.ifps, 4), 500)

    job = eng.start(job_for("t", vfb, HW, [0], allocate(prep, [0]).dispatch, on_barrier=hook))
    eng.run()
    assert job.done and job.stats.switches == 1
    assert four < job.stats.cycles < one + 500
    assert [layer for layer, _ in job.stats.barrier_times] == list(range(vfb.num_layers))


def test_dispatcher_is_shared(vfb) -> None:
    prep = prepare(vfb.ifps, vfb.num_layers, pool_size=16)
    table = allocate(prep, [0]).dispatch
    eng = TimingEngine(HW)
    jobs = [eng.start(job_for(f"t{c}", vfb, HW, [c], table)) for c in range(0, 16, 4)]
    eng.run()
    alone = time_program(vfb, HW, [0], table).cycles
    assert eng.dispatched == 4 * sum(int(s.indices.size) for s in jobs[0].segments[0])
    assert all(j.stats.cycles >= alone for j in jobs)
