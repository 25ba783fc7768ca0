"""The cores' bookkeeping of epochs run as epoch plans or on the cores' own plans
(``vfpga.emulator.ledger``): made once when somebody looks, it must leave every core
exactly as the interpreter does at every barrier (sequence numbers, token counts, clocks),
the counters and the task's status too, whether the task is looked at after every layer,
only at the end, across a context switch, or after a fault (also one in an epoch reached
through the link from the one before it)."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import run_compiled
from qgraph_builders import GraphBuilder

import vfpga.emulator.machine as machine_mod
from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator, int_matmul, jit
from vfpga.emulator.plan import TOKEN_KEYS
from vfpga.flow import _graph_input
from vfpga.hw import load_hw
from vfpga.isa.spec import PARAM_RECORD_DTYPE

HW = load_hw("pool16")

pytestmark = pytest.mark.skipif(
    int_matmul.backend() is None or jit.get() is None,
    reason="epoch plans need the exact integer products and the compiled output stages",
)


@pytest.fixture(autouse=True, params=["policy", "own"])
def _paths(request, monkeypatch):  # type: ignore[no-untyped-def]
    """Each test with the default choice of plans, and with every epoch on the cores' own
    plans (booked epochs without epoch plans)."""
    if request.param == "own":
        monkeypatch.setattr(machine_mod, "epoch_pays", lambda ep, n_cores: False)


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    """Convolutions (one chunked into a partial-sum chain), a pooling layer, an
    element-wise add: every kind of epoch plan, on 1, 3 and 8 cores."""
    b = GraphBuilder((32, 16, 16), seed=3)
    y = b.conv(b.input, 64, s=2)
    z = b.conv(y, 64, k=(1, 1))
    y = b.add(y, z)
    y = b.pool(y, "max", k=3, s=1, p=1)
    y = b.conv(y, 256, k=(1, 1))
    y = b.conv(y, 32)
    g = b.build([y], "ledger")
    return g, {c: compile_graph(g, HW, c) for c in (1, 3, 8)}


def _state(acc: Accelerator, t, but: int = -1) -> tuple[object, ...]:  # type: ignore[no-untyped-def]
    """Everything the task and its cores (but core ``but``) show after
    :meth:`Task.result` (which settles)."""
    r = t.result()
    cores = tuple(
        (
            tuple(acc.cores[c].seq),
            tuple(len(acc.cores[c].tokens[k]) for k in TOKEN_KEYS),
            tuple(map(tuple, acc.cores[c].vc)),
        )
        for c in t.cores
        if c != but
    )
    counters = {
        c: (dict(k.insns), k.macs, k.load_bytes, k.save_bytes) for c, k in r.counters.items()
    }
    return (
        r.ok,
        r.error,
        r.last_finished_layer,
        r.barriers,
        t.done,
        tuple(t._pos),
        cores,
        counters,
    )


def _task(acc: Accelerator, g, vfb, cores: list[int]):  # type: ignore[no-untyped-def]
    t = acc.create_task("l", cores, vfb.ddr_size)
    t.load(vfb)
    x = np.random.default_rng(4).standard_normal(g.tensors[g.inputs[0]].shape)
    t.write_tensor(g.inputs[0], _graph_input(g, x.astype(np.float32)))
    return t


@pytest.mark.parametrize("n", [1, 3, 8])
def test_state_after_every_barrier_is_the_interpreters(net, n: int) -> None:  # type: ignore[no-untyped-def]
    """Stepping layer by layer, looking after every barrier (so the ledger settles each
    time and the next epoch continues from settled cores), two runs in a row."""
    g, res = net
    slow_acc, fast_acc = Accelerator(HW, fast=False), Accelerator(HW)
    cores = list(range(2, 2 + n))
    ts, tf = _task(slow_acc, g, res[n].vfb, cores), _task(fast_acc, g, res[n].vfb, cores)
    for _ in range(2):
        ts.restart()
        tf.restart()
        steps = 0
        while not ts.done:
            ts.step()
            tf.step()
            steps += 1
            assert _state(fast_acc, tf) == _state(slow_acc, ts), steps
        assert tf.done and steps > 3
        assert tf.region.mem.tobytes() == ts.region.mem.tobytes()


@pytest.mark.parametrize("n", [1, 3, 8])
def test_state_when_looked_at_only_at_the_end(net, n: int) -> None:  # type: ignore[no-untyped-def]
    """Three runs, looked at only when each has ended: every epoch plan's bookkeeping is
    pending until then, and the epochs follow each other by their links."""
    g, res = net
    cores = list(range(n))
    got = []
    for fast in (False, True):
        acc = Accelerator(HW, fast=fast)
        out, t = run_compiled(acc, g, res[n].vfb, cores, runs=3)
        bufs = out[1]
        got.append((out, _state(acc, t), bufs))
    assert got[0] == got[1]
    assert got[1][0][2], got[1][0][3]


def _both(g, vfb, act, but: int = -1) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    """``act(acc, task)`` on the interpreter and on the fast path, each on a task of cores
    0-2 holding ``vfb``; then what each shows (:func:`_state`, but core ``but``) and its
    DDR bytes."""
    states = []
    for fast in (False, True):
        acc = Accelerator(HW, fast=fast)
        t = _task(acc, g, vfb, [0, 1, 2])
        act(acc, t)
        states.append((_state(acc, t, but), t.region.mem.tobytes()))
    return states


def test_state_across_a_context_switch(net) -> None:  # type: ignore[no-untyped-def]
    """The ledger settles before a context switch hands the task other cores."""
    g, res = net
    vfb = res[3].vfb

    def act(acc, t) -> None:  # type: ignore[no-untyped-def]
        t.run_until_layer(1)
        t.switch_cores([5, 6, 7], vfb.dispatch)
        acc.run([t])

    states = _both(g, vfb, act)
    assert states[0] == states[1]


def test_state_after_a_fault(net) -> None:  # type: ignore[no-untyped-def]
    """An invalid parameter record of a later layer, in the second run: the epochs before
    it ran booked (their bookkeeping pending), the faulting one on the cores' plans; the
    fault, counters and the other cores are the interpreter's (the faulting core stops
    mid-segment: its plan, unlike the interpreter, does not track its sequence numbers and
    tokens instruction by instruction; a restart resets them)."""
    g, res = net
    spec = res[3].layers[4].spec

    def act(acc, t) -> None:  # type: ignore[no-untyped-def]
        assert acc.run([t])[t.name].ok  # a clean run first: the epochs are linked
        t.restart()
        k = spec.p_off + 7 * PARAM_RECORD_DTYPE.itemsize
        t.region.mem[k : k + PARAM_RECORD_DTYPE.itemsize].view(PARAM_RECORD_DTYPE)["scale"] = np.inf
        acc.run([t])

    states = _both(g, res[3].vfb, act, but=2)
    assert not states[0][0][0] and "core 2 " in str(states[0][0][1])
    assert "scale = inf" in str(states[0][0][1])
    assert states[0] == states[1]


def test_budget_fault_between_cores_of_an_own_plans_epoch(net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A wall-time budget that runs out before the third core of an epoch on the cores'
    own plans (reached through a link): the cores before it are counted and at the
    barrier, the books before it settled, as the per-core path leaves them."""
    monkeypatch.setattr(machine_mod, "epoch_pays", lambda ep, n_cores: False)
    g, res = net

    def act(acc, t) -> None:  # type: ignore[no-untyped-def]
        assert acc.run([t])[t.name].ok
        t.restart()
        checks: list[int] = []

        def deadline() -> None:
            if t.barriers == 3:  # the fourth epoch: its own check, core 0, core 1, core 2
                checks.append(1)
                if len(checks) == 4:
                    raise machine_mod.BudgetFault("over budget")

        monkeypatch.setattr(t, "_check_deadline", deadline)
        acc.run([t])

    states = _both(g, res[3].vfb, act)
    assert not states[0][0][0] and "over budget" in str(states[0][0][1])
    assert states[0] == states[1]
