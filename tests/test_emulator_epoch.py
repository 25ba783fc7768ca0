"""Epoch plans (``vfpga.emulator.epoch``): a layer's products over all the task's cores
and tiles at once. Everything observable must stay exactly the interpreter's: DDR bytes,
every on-chip buffer of every core, counters, and faults (an invalid parameter record
makes the cores run their own plans, which report it), also when weights change between
runs and when no prepared weights may be kept."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from emu_helpers import run_compiled
from qgraph_builders import GraphBuilder

import vfpga.emulator.machine as machine_mod
from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator, int_matmul, jit
from vfpga.emulator.epoch import EpochPlan
from vfpga.hw import load_hw
from vfpga.isa.spec import PARAM_RECORD_DTYPE

HW = load_hw("pool16")

pytestmark = pytest.mark.skipif(
    int_matmul.backend() is None or jit.get() is None,
    reason="epoch plans need the exact integer products and the compiled output stages; "
    "without them the cores run their own plans (test_emulator_plan covers them)")


@pytest.fixture(autouse=True)
def _epoch_plans_on_one_core(monkeypatch):  # type: ignore[no-untyped-def]
    """These tests are about the epoch plans themselves: run them on one core too, where
    :mod:`vfpga.emulator.plan_choice` would give some epochs to the cores' own plans
    (tests/test_emulator_plan_choice.py tests that choice)."""
    monkeypatch.setattr(machine_mod, "epoch_pays", lambda ep, n_cores: True)


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    """A padded strided 3x3 convolution, a 1x1 one, a 3x3 convolution of 256 -> 256
    channels (weights chunked into input-channel chains), and a 1x1 to 32 channels."""
    b = GraphBuilder((64, 20, 20), seed=5)
    y = b.conv(b.input, 64, s=2)
    y = b.conv(y, 256, k=(1, 1))
    y = b.conv(y, 256)
    y = b.conv(y, 32, k=(1, 1))
    g = b.build([y], "epochs")
    return g, {c: compile_graph(g, HW, c) for c in (1, 3, 8)}


def _run(g, res, cores: list[int], *, fast: bool, runs: int = 1, between=None,  # type: ignore[no-untyped-def]
         prepared_bytes: int | None = None):
    kw = {} if prepared_bytes is None else {"prepared_bytes": prepared_bytes}
    acc = Accelerator(HW, fast=fast, **kw)
    got, t = run_compiled(acc, g, res.vfb, cores, runs=runs, between=between, seed=2)
    return got, t, acc


def _epochs(t) -> list[EpochPlan]:  # type: ignore[no-untyped-def]
    return [e.plan for e in t.loaded.epochs.values() if e.plan is not None]


CORES = {1: [4], 3: [9, 2, 5], 8: [15, 0, 3, 8, 1, 12, 6, 10]}


@pytest.mark.parametrize("n", sorted(CORES))
def test_epochs_are_fused_and_exact(net, n: int) -> None:  # type: ignore[no-untyped-def]
    g, res = net
    slow, _, _ = _run(g, res[n], CORES[n], fast=False)
    fast, t, _ = _run(g, res[n], CORES[n], fast=True, runs=2)
    assert fast[2], fast[3]
    assert fast == slow
    eps = _epochs(t)
    # every epoch of this net qualifies (four layers, chains included, and the empty one
    # before END); the chained layer's epoch computes the partial sums abuf must hold
    assert len(eps) == len(t.loaded.epochs) == 5
    # a group chains input-channel chunks exactly where a chosen tile's weights do not fit
    # wbuf (on 1 and 3 cores the 256 -> 256 layer's do not)
    chained = _chained(res[n])
    assert chained or n == 8
    assert any(len(gr.ks) > 1 for ep in eps for gr in ep.groups) == chained


def _chained(res) -> bool:  # type: ignore[no-untyped-def]
    """Whether an IFP of a chosen candidate chains weight chunks (its loop nest's
    ``chunk`` is set)."""
    from vfpga.dialects.ifp import CandidateOp, LayerOp, PackageOp

    for layer in res.module.walk():
        if not isinstance(layer, LayerOp) or layer.selected is None:
            continue
        cands = [op for op in layer.body.block.ops if isinstance(op, CandidateOp)]
        chosen = cands[layer.selected.value.data]
        for pkg in chosen.walk():
            if isinstance(pkg, PackageOp) and pkg.chunk is not None and pkg.chunk.value.data:
                return True
    return False


def test_cores_own_plans_give_the_same_bytes(net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    g, res = net
    fused, _, _ = _run(g, res[8], CORES[8], fast=True)
    monkeypatch.setattr(machine_mod, "build_epoch", lambda *a, **k: None)
    own, t, _ = _run(g, res[8], CORES[8], fast=True)
    assert not _epochs(t)
    assert fused == own


def test_weights_rewritten_between_runs(net) -> None:  # type: ignore[no-untyped-def]
    """New weight bytes in DDR (behind every API) give the new results, not stale
    stacked weights."""
    g, res = net
    spec = res[3].layers[2].spec
    n = spec.node.weight.size
    calls = [0]

    def rewrite(t) -> None:  # type: ignore[no-untyped-def]
        calls[0] += 1
        rng = np.random.default_rng(calls[0] % 2)
        t.region.mem[spec.w_off : spec.w_off + n] = rng.integers(0, 256, n, dtype=np.uint8)

    slow, _, _ = _run(g, res[3], CORES[3], fast=False, runs=3, between=rewrite)
    calls[0] = 0
    fast, _, _ = _run(g, res[3], CORES[3], fast=True, runs=3, between=rewrite)
    assert fast == slow


@pytest.mark.parametrize("layer", [1, 2])
def test_invalid_parameter_record_faults_as_interpreter(net, layer: int) -> None:  # type: ignore[no-untyped-def]
    """A non-finite scale: the epoch declines, the cores' own plans fault exactly where
    and how the interpreter does (layer 2 is the chained one)."""
    g, res = net
    spec = res[3].layers[layer].spec

    def poison(t) -> None:  # type: ignore[no-untyped-def]
        k = spec.p_off + 7 * PARAM_RECORD_DTYPE.itemsize
        t.region.mem[k : k + PARAM_RECORD_DTYPE.itemsize].view(PARAM_RECORD_DTYPE)["scale"] = (
            np.inf)

    slow, _, _ = _run(g, res[3], CORES[3], fast=False, runs=2, between=poison)
    fast, _, _ = _run(g, res[3], CORES[3], fast=True, runs=2, between=poison)
    assert not slow[2] and "scale = inf" in slow[3]
    assert fast == slow


def test_budget_bounds_kept_weights(net) -> None:  # type: ignore[no-untyped-def]
    """With no room for prepared weights nothing is kept (and the results are the same);
    what the epoch plans keep is accounted and given back when they go."""
    g, res = net
    none_kept, t0, acc0 = _run(g, res[3], CORES[3], fast=True, runs=2, prepared_bytes=0)
    assert all(gr.weights is None for ep in _epochs(t0) for gr in ep.groups)
    assert acc0.prepared_budget.used == 0
    kept, t, acc = _run(g, res[3], CORES[3], fast=True, runs=2)
    assert kept == none_kept
    assert all(gr.weights is not None for ep in _epochs(t) for gr in ep.groups)
    assert acc.prepared_budget.used > 0
    t.loaded.epochs.clear()
    t.loaded.plans.clear()
    gc.collect()
    assert acc.prepared_budget.used == 0


@pytest.fixture(scope="module")
def dw_net():  # type: ignore[no-untyped-def]
    """MobileNet-style blocks: strided and unit-stride depthwise 3x3 convolutions (padded
    tiles) between 1x1 ones."""
    b = GraphBuilder((32, 18, 18), seed=11)
    y = b.conv(b.input, 32, groups=32, act="relu6")
    y = b.conv(y, 64, k=(1, 1), act="relu6")
    y = b.conv(y, 64, s=2, groups=64, act="relu6")
    y = b.conv(y, 48, k=(1, 1))
    g = b.build([y], "dw-epochs")
    return g, {c: compile_graph(g, HW, c) for c in (1, 3, 8)}


@pytest.mark.parametrize("n", sorted(CORES))
def test_depthwise_epochs_are_exact(dw_net, n: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Depthwise CONVs are computed by the epoch plans (one compiled depthwise call for
    the tiles of one geometry, side by side, its output stage fused) with the
    interpreter's bytes everywhere."""
    g, res = dw_net
    slow, _, _ = _run(g, res[n], CORES[n], fast=False)
    fused = []
    real = EpochPlan._depthwise_requant

    def spy(self, *args):  # type: ignore[no-untyped-def]
        fused.append(args[0])
        return real(self, *args)

    monkeypatch.setattr(EpochPlan, "_depthwise_requant", spy)
    fast, t, _ = _run(g, res[n], CORES[n], fast=True, runs=2)
    assert fast[2], fast[3]
    assert fast == slow
    assert fused  # one run of bounds: sums and output stage in one compiled pass
    eps = _epochs(t)
    dw = [gr for ep in eps for gr in ep.groups if gr.depthwise]
    assert dw
    if n > 1:  # the cores' tiles side by side along the channels: one call per geometry
        assert any(len(gr.tiles) > 1 for gr in dw)
        # gathered from DDR by the compiled im2col (adjacent channel slices as one box)
        prm = [gr.cols_params.get((-1, -1)) for gr in dw if len(gr.tiles) > 1]
        assert any(p is not None and len(p[0]) < len(gr.tiles) for p, gr in zip(
            prm, [gr for gr in dw if len(gr.tiles) > 1], strict=True))


@pytest.fixture(scope="module")
def pool_net():  # type: ignore[no-untyped-def]
    """Max (padded, strided), average (padded, with and without the padding counted) and
    global average pooling between convolutions."""
    b = GraphBuilder((24, 21, 21), seed=7)
    y = b.conv(b.input, 48)
    y = b.pool(y, "max", k=3, s=2, p=1)
    y = b.pool(y, "avg", k=3, s=1, p=1, include_pad=True)
    y = b.conv(y, 40, k=(1, 1))
    y = b.pool(y, "avg", k=3, s=1, p=1)
    y = b.pool(y, "global_avg")
    g = b.build([y], "pool-epochs")
    return g, {c: compile_graph(g, HW, c) for c in (3, 8)}


@pytest.mark.parametrize("n", [3, 8])
def test_pooling_epochs_are_exact(pool_net, n: int) -> None:  # type: ignore[no-untyped-def]
    """Pooling layers on several cores run as pooling epoch plans (the tiles of one kind
    side by side along the channels, one call each) with the interpreter's bytes
    everywhere: DDR, every buffer of every core, counters."""
    from vfpga.emulator.epoch_pool import PoolEpochPlan

    g, res = pool_net
    slow, _, _ = _run(g, res[n], CORES[n], fast=False)
    fast, t, _ = _run(g, res[n], CORES[n], fast=True, runs=2)
    assert fast[2], fast[3]
    assert fast == slow
    pools = [ep for ep in _epochs(t) if isinstance(ep, PoolEpochPlan)]
    assert len(pools) == 4
    assert any(len(gr.pools) > 1 for ep in pools for gr in ep.pool_groups)


def test_a_nan_average_leaves_the_epoch_to_the_cores(pool_net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A pooling epoch whose kernel reports a NaN average writes nothing: the cores run
    their own plans (which, on a real NaN, fault where the interpreter does)."""
    import vfpga.emulator.epoch_pool as ep_mod

    g, res = pool_net
    calls = []
    orig = ep_mod._pool_call

    def nan_step(kw, x, out):  # type: ignore[no-untyped-def]
        step = orig(kw, x, out)

        def run():  # type: ignore[no-untyped-def]
            calls.append(1)
            step()
            return "a NaN average (forced)"

        return run

    monkeypatch.setattr(ep_mod, "_pool_call", nan_step)
    slow, _, _ = _run(g, res[8], CORES[8], fast=False)
    fast, _, _ = _run(g, res[8], CORES[8], fast=True, runs=2)
    assert calls and fast == slow  # the cores' own plans computed the (finite) averages


def test_unforeseen_instruction_forms_fall_back(net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An analysis or a product that raises (an instruction form the epoch plans were not
    written for) is no fault: the cores run their own plans, with the same bytes."""
    import vfpga.emulator.epoch as epoch_mod

    g, res = net
    want, _, _ = _run(g, res[3], CORES[3], fast=True)

    def broken(*a, **k):  # type: ignore[no-untyped-def]
        raise KeyError("a field the analysis does not know")

    with monkeypatch.context() as m:
        m.setattr(epoch_mod, "_build", broken)
        got, t, _ = _run(g, res[3], CORES[3], fast=True, runs=2)
        assert not _epochs(t)
        assert got == want
    with monkeypatch.context() as m:
        m.setattr(EpochPlan, "_product", broken)
        got, t, _ = _run(g, res[3], CORES[3], fast=True, runs=2)
        assert _epochs(t) and all(ep.declined for ep in _epochs(t) if ep.groups)
        assert got == want


def _count_compares(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    import vfpga.emulator.epoch as epoch_mod

    calls = [0]
    real = epoch_mod._same

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(epoch_mod, "_same", spy)
    return calls


def test_unreachable_weights_are_not_compared_again(net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Weights no SAVE of the program and no tensor of its memory map can reach are
    compared with DDR only after someone took the region's bytes (``Region.mem``): not
    on every run; the results stay the interpreter's either way."""
    g, res = net
    calls = _count_compares(monkeypatch)
    slow, _, _ = _run(g, res[3], CORES[3], fast=False, runs=3)
    fast, t, _ = _run(g, res[3], CORES[3], fast=True, runs=3)
    assert fast == slow
    groups = [gr for ep in _epochs(t) for gr in ep.groups]
    assert groups and all(gr.w_fixed and gr.p_fixed for gr in groups)
    counts = []
    for _ in range(3):  # the first compares (the helper read the region's bytes)
        t.restart()
        t.write_tensor(g.inputs[0], np.zeros(g.tensors[g.inputs[0]].shape, np.float32))
        assert t.accel.run([t])[t.name].ok
        t.read_tensor(g.outputs[0])
        counts.append(calls[0])
    assert counts[0] > 0 and counts[2] == counts[1] == counts[0]  # then nothing handed out
    before = calls[0]
    t.region.mem  # noqa: B018 - the region's bytes handed out: compared again
    t.restart()
    assert t.accel.run([t])[t.name].ok
    assert calls[0] > before


def test_weights_a_save_can_reach_are_compared_every_run(net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """If a SAVE of the program may write the weights' DDR bytes (a hostile binary), the
    kept weights are compared with DDR on every run."""
    g, res = net
    slow, _, _ = _run(g, res[3], CORES[3], fast=False, runs=2)
    monkeypatch.setattr(machine_mod, "save_extents", lambda *a: (
        np.array([0], np.int64), np.array([1 << 40], np.int64)))
    calls = _count_compares(monkeypatch)
    fast, t, _ = _run(g, res[3], CORES[3], fast=True, runs=2)
    assert fast == slow
    groups = [gr for ep in _epochs(t) for gr in ep.groups]
    assert groups and not any(gr.w_fixed or gr.p_fixed for gr in groups)
    n = calls[0]
    t.restart()
    assert t.accel.run([t])[t.name].ok
    assert calls[0] > n


def test_save_extents_cover_every_save_box(net) -> None:  # type: ignore[no-untyped-def]
    from vfpga.emulator.epoch import save_extents
    from vfpga.isa.codec import decode
    from vfpga.isa.spec import Opcode

    _g, res = net
    prog = decode(bytes(res[3].vfb.text))
    lo, hi = save_extents(prog, [(7, 9)])
    assert np.all(lo[1:] >= hi[:-1]) and np.all(lo < hi)  # sorted, disjoint
    mask = np.zeros(int(hi.max()) + 1, np.bool_)
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        mask[a:b] = True
    assert mask[7:9].all()
    for r in prog.by_op[Opcode.SAVE]:
        n0, n1, n2 = int(r["n0"]), int(r["n1"]), int(r["n2"])
        if n0 and n1 and n2:
            end = int(r["ddr"]) + (n0 - 1) * int(r["stride0"]) + (n1 - 1) * int(r["stride1"]) + n2
            assert mask[int(r["ddr"]) : end].all()


@pytest.mark.parametrize("n", [3, 8])
def test_deferred_writes_later_epochs_overwrite_are_skipped(net, n: int) -> None:  # type: ignore[no-untyped-def]
    """The surviving buffer writes of consecutive epochs stay pending over several epochs
    (each epoch plan reads DDR only) and are made at the end of the run, or before a
    SAVE that writes DDR a pending LOAD reads, without those that later pending writes on
    the same core entirely overwrite: some are skipped, and every buffer still ends with
    the interpreter's bytes."""
    g, res = net
    slow, _, _ = _run(g, res[n], CORES[n], fast=False, runs=2)
    fast, t, _ = _run(g, res[n], CORES[n], fast=True, runs=2)
    assert fast == slow
    eps = _epochs(t)  # every epoch of the net, in run order
    assert len(eps) == len(t.loaded.epochs)
    d = eps[0].alone()
    made = 0
    pending = 1
    for ep in eps[1:]:
        _, steps, d, _ = d._next[id(ep)]
        made += len(steps)
        pending = max(pending, len(d._ids))
    assert made > 0  # LOADs of DDR that a later SAVE overwrites are made before it
    made += len(d._items)  # at the end of the run
    assert pending > 1  # writes stayed pending over several epochs
    assert made < sum(len(cw.redo) for ep in eps for cw in ep.cores)  # some never made


def test_stepped_run_and_restart_leave_the_interpreter_buffers(net) -> None:  # type: ignore[no-untyped-def]
    """A run stopped after some epochs and restarted (the deferred writes are made at the
    restart) leaves every buffer as the interpreter does."""
    g, res = net
    out = []
    for fast in (False, True):
        acc = Accelerator(HW, fast=fast)
        t = acc.create_task("t", CORES[8], res[8].vfb.ddr_size)
        t.load(res[8].vfb)
        for _ in range(2):
            t.restart()
            t.write_tensor(g.inputs[0], np.ones(g.tensors[g.inputs[0]].shape, np.float32))
            for _ in range(3):
                t.step()
        t.restart()
        out.append([bytes(b) for c in CORES[8] for b in acc.cores[c].buffers])
    assert out[0] == out[1]


@pytest.fixture(scope="module")
def copy_net():  # type: ignore[no-untyped-def]
    """1x1 and 3x3 convolutions in turn: on 8 cores, some input-tile LOADs of a layer are
    made due by the SAVEs of the layer after next and overwritten a layer later."""
    b = GraphBuilder((32, 18, 18), seed=11)
    y = b.input
    for c in (32, 64, 64, 128):
        y = b.conv(y, c, k=(1, 1), act="relu6")
        y = b.conv(y, c, act="relu6")
    g = b.build([y], "copy-epochs")
    return g, {8: compile_graph(g, HW, 8)}


def test_deferred_loads_read_a_copy_of_ddr(copy_net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """From the second run on (the epochs after each one are known), a pending LOAD that
    a SAVE makes due and later epochs overwrite reads a copy of the DDR it loads instead
    of being made before the SAVE; stopped after any number of epochs (the pending
    writes made at the restart, some from the copy), every buffer and DDR byte is the
    interpreter's."""
    import vfpga.emulator.epoch as epoch_mod

    g, res = copy_net
    vfb = res[8].vfb
    copies = []
    orig = epoch_mod._copied

    def counted(region, keep, copied):  # type: ignore[no-untyped-def]
        steps = orig(region, keep, copied)
        copies.extend(id(keep[k].step) for k in copied)  # the LOADs reading the copy
        return steps

    monkeypatch.setattr(epoch_mod, "_copied", counted)
    x = np.random.default_rng(3).standard_normal(g.tensors[g.inputs[0]].shape)
    x = x.astype(np.float32)
    accs = {fast: Accelerator(HW, fast=fast) for fast in (False, True)}
    tasks = {}
    for fast, acc in accs.items():
        t = tasks[fast] = acc.create_task("t", CORES[8], vfb.ddr_size)
        t.load(vfb)
    cut_with_copies = 0  # runs stopped early with LOADs reading a copy pending
    for stop in [None, None, *range(1, 9)]:
        got = []
        for fast, t in tasks.items():
            t.restart()
            t.write_tensor(g.inputs[0], x)
            k = 0
            while not t.done and (stop is None or k < stop):
                t.step()
                k += 1
            pending = [] if t._deferred is None else t._deferred._items
            if fast and any(id(it.step) in copies for it in pending):
                cut_with_copies += 1
            t.restart()  # makes the pending writes
            bufs = [bytes(b) for c in CORES[8] for b in accs[fast].cores[c].buffers]
            got.append((t.region.mem.tobytes(), bufs))
        assert got[0] == got[1], stop
    assert copies and cut_with_copies > 0
