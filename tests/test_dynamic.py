"""The dynamic compilation pass (issue 5): re-targeting a compiled model to any set of cores.

Fast tests use the synthetic ``small_net`` (every layer kind) and random IFP tables; the
slow tests emulate the four paper networks (coverage stated at ``PAPER_CASES``).
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qgraph_builders import GraphBuilder, small_net

from vfpga.backend.binary import (
    DIR_ENTRY_BYTES,
    HEADER_BYTES,
    IFP_DTYPE,
    SectionKind,
    read_header,
    read_ifp_table,
    read_vfb,
    to_bytes,
    write_vfb,
)
from vfpga.backend.retarget import (
    STRATEGIES,
    AllocationError,
    allocate,
    allocate_uncached,
    prepare,
    retarget,
    strong_bound,
)
from vfpga.cli.main import cli
from vfpga.compiler.assign import lower_bound, lpt
from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator
from vfpga.errors import VfpgaError
from vfpga.hw.config import load_hw

HW = load_hw("pool16")


# ----------------------------------------------------------------------------- helpers
def _input(vfb, seed: int = 0) -> tuple[str, np.ndarray]:
    t = next(t for t in vfb.tensors if t.role == "input")
    return t.name, np.random.default_rng(seed).integers(-128, 128, t.shape, dtype=np.int8)


def emulate(vfb, cores: list[int], switches=(), strategy: str = "lpt", prep=None) -> bytes:
    """Run ``vfb`` re-targeted to ``cores``, with context switches ``(layer, cores)``;
    the output tensors' bytes."""
    prep = prep or prepare(vfb.ifps, len(vfb.layers), pool_size=HW.num_cores)
    acc = Accelerator(HW)
    task = acc.create_task("t", cores, vfb.ddr_size)
    task.load(retarget(vfb, allocate(prep, cores, strategy)))
    name, x = _input(vfb)
    task.write_tensor(name, x)
    for layer, new in switches:
        task.run_until_layer(layer)
        assert task.last_finished_layer == layer and not task.done
        task.switch_cores(new, allocate(prep, new, strategy).dispatch)
    res = acc.run([task])["t"]
    assert res.ok, res.error
    return b"".join(task.read_tensor(t.name).tobytes() for t in vfb.tensors
                    if t.role == "output")


@pytest.fixture(scope="module")
def small() -> object:
    return compile_graph(small_net(seed=3), HW, cores=16).vfb


@pytest.fixture(scope="module")
def small_prep(small):
    return prepare(small.ifps, len(small.layers), pool_size=HW.num_cores)


@pytest.fixture(scope="module")
def small_ref(small) -> bytes:
    return emulate(small, list(range(16)))


def random_table(draw_lat: list[list[list[int]]]) -> np.ndarray:
    """An IFP table: layers -> candidates -> latencies."""
    rows = [(li, ci, lat) for li, cands in enumerate(draw_lat)
            for ci, lats in enumerate(cands) for lat in lats]
    t = np.zeros(len(rows), IFP_DTYPE)
    t["layer"], t["candidate"], t["latency"] = zip(*rows, strict=True)
    return t


tables = st.lists(
    st.lists(st.lists(st.integers(0, 60), min_size=1, max_size=9), min_size=1, max_size=4),
    min_size=1, max_size=4)


# ------------------------------------------------------------------- the algorithm
@pytest.mark.parametrize("cores", [1, 4, 16])
def test_lpt_reproduces_the_compiler(cores):
    """For the compile-time core count the pass rebuilds the compiler's dispatch table."""
    vfb = compile_graph(small_net(seed=1), HW, cores=cores).vfb
    alloc = allocate(prepare(vfb.ifps, len(vfb.layers)), range(cores))
    assert np.array_equal(alloc.dispatch, vfb.dispatch)


@settings(max_examples=150, deadline=None)
@given(tables, st.integers(1, 12), st.booleans())
def test_lpt_matches_reference_lpt_and_choice(lat, k, precompute):
    """Every candidate's assignment is the reference LPT's; per layer the candidate of least
    (makespan, IFPs, id) is chosen; the dispatch runs exactly its IFPs on those cores."""
    table = random_table(lat)
    prep = prepare(table, pool_size=12, precompute=precompute)
    alloc = allocate(prep, list(range(k)))
    for li, cands in enumerate(lat):
        results = [lpt(c, k) for c in cands]
        want = min(range(len(cands)), key=lambda i: (results[i][1], len(cands[i]), i))
        pos = int(np.flatnonzero(alloc.layers == li)[0])
        assert int(alloc.candidate[pos]) == want
        assert int(alloc.makespan[pos]) == results[want][1]
        assert alloc.bound[pos] == pytest.approx(lower_bound(cands[want], k))
        first = sum(len(c) for lc in lat[:li] for c in lc) + sum(len(c) for c in cands[:want])
        sel = alloc.ifp_index == np.arange(first, first + len(cands[want]))[:, None]
        assert sel.any(axis=1).all()
        got = [int(alloc.ifp_core[np.flatnonzero(row)[0]]) for row in sel]
        assert got == results[want][0]


@settings(max_examples=150, deadline=None)
@given(tables, st.integers(1, 9))
def test_refine_never_worse_and_exact(lat, k):
    table = random_table(lat)
    prep = prepare(table)
    base, ref = allocate(prep, range(k), "lpt"), allocate(prep, range(k), "lpt-refine")
    assert (ref.makespan <= base.makespan).all()
    gs = ref.schedule.groups
    lb = strong_bound(prep, k)
    for g in range(prep.num_groups):
        n = int(prep.g_count[g])
        loads = np.bincount(gs.core[g, :n], weights=prep.lat[g, :n], minlength=k)
        assert len(loads) == k and int(loads.max()) == int(gs.makespan[g])
        assert lb[g] <= gs.makespan[g]
        assert lb[g] >= lower_bound(prep.lat[g, :n].tolist(), k) - 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=7), st.integers(1, 3))
def test_strong_bound_is_a_lower_bound(lats, k):
    """Against brute force: no assignment beats strong_bound; refine >= optimum."""
    prep = prepare(random_table([[lats]]))
    best = min(max(sum(x for x, c in zip(lats, a, strict=True) if c == core)
                   for core in range(k))
               for a in itertools.product(range(k), repeat=len(lats)))
    assert int(strong_bound(prep, k)[0]) <= best
    assert int(allocate(prep, range(k), "lpt-refine").makespan[0]) >= best


def test_refine_fixes_the_lpt_worst_case():
    prep = prepare(random_table([[[30, 30, 20, 20, 20]]]))
    assert int(allocate(prep, [0, 1], "lpt").makespan[0]) == 70
    assert int(allocate(prep, [0, 1], "lpt-refine").makespan[0]) == 60


def test_dispatch_structure(small, small_prep):
    """Every logical core: per layer its IFPs then SYNC of that layer, then END; each
    layer runs exactly one candidate's IFPs, each once."""
    for cores in ([5], [0, 1, 2], [15, 3, 7, 9, 1], list(range(16))):
        a = allocate(small_prep, cores)
        d = a.dispatch
        assert set(d["core"].tolist()) == set(range(len(cores)))
        for c in range(len(cores)):
            rows = d[d["core"] == c]
            ctrl = rows[rows["kind"] != 0]
            assert ctrl["kind"].tolist() == [1] * len(small.layers) + [2]
            assert ctrl["arg"][:-1].tolist() == list(range(len(small.layers)))
        ifps = d[d["kind"] == 0]["arg"]
        assert sorted(ifps.tolist()) == sorted(a.ifp_index.tolist())
        assert len(set(ifps.tolist())) == len(ifps)
        for li in range(len(small.layers)):
            mine = small.ifps[np.isin(np.arange(len(small.ifps)), ifps)
                              & (small.ifps["layer"] == li)]
            assert len(set(mine["candidate"].tolist())) == 1
            every = small.ifps[(small.ifps["layer"] == li)
                               & (small.ifps["candidate"] == mine["candidate"][0])]
            assert len(mine) == len(every)
        assert a.predicted_cycles >= a.bound_cycles >= a.layer_bound_cycles - 1e-6


def test_physical_cores_only_map_logical_ones(small_prep):
    a, b = allocate(small_prep, [0, 1, 2]), allocate(small_prep, [9, 4, 12])
    assert np.array_equal(a.dispatch, b.dispatch)
    assert b.ifp_physical_core.tolist() == [[9, 4, 12][c] for c in b.ifp_core.tolist()]


def test_cache_and_uncached_agree(small):
    prep = prepare(small.ifps, len(small.layers), pool_size=16,
                   precompute=sorted(STRATEGIES))
    assert len(prep.cache) == 16 * len(STRATEGIES)
    for k in (1, 6, 16):
        for s in STRATEGIES:
            a, b = allocate(prep, range(k), s), allocate_uncached(prep, range(k), s)
            assert np.array_equal(a.dispatch, b.dispatch) and a.strategy == s


@pytest.mark.parametrize(("cores", "msg"), [
    ([], "empty"), ([1, 1], "twice"), ([3, 16], "not in the pool"), ([-1], "negative")])
def test_bad_core_sets(small_prep, cores, msg):
    with pytest.raises(AllocationError, match=msg):
        allocate(small_prep, cores)


def test_bad_tables_and_strategy(small_prep):
    with pytest.raises(AllocationError, match=r"unknown allocation strategy 'best'.*lpt"):
        allocate(small_prep, [0], "best")
    with pytest.raises(AllocationError, match="no IFPs"):
        prepare(np.zeros(0, IFP_DTYPE))
    with pytest.raises(AllocationError, match="layer 2 but the program has 1"):
        prepare(random_table([[[1]], [[1]], [[1]]]), n_layers=1)


def test_layer_without_ifps_still_has_a_barrier():
    t = random_table([[[5, 6]], [[7]]])
    t["layer"][t["layer"] == 1] = 2  # layer 1 runs on the host: no IFP
    a = allocate(prepare(t), [0, 1])
    syncs = a.dispatch[(a.dispatch["kind"] == 1) & (a.dispatch["core"] == 1)]
    assert syncs["arg"].tolist() == [0, 1, 2]


# -------------------------------------------------------- reads only the IFP table
def test_needs_only_the_ifp_table(small, tmp_path):
    """The pass works from the header, directory and IFP table alone: a file whose TEXT
    and DATA are zeroed gives the same allocation, and only the header, the directory
    and the IFPS section are read. prepare also accepts a bare (layer, candidate, latency) array."""
    path = tmp_path / "m.vfb"
    write_vfb(path, small)
    data = bytearray(path.read_bytes())
    hdr = read_header(data, str(path))
    for kind in (SectionKind.TEXT, SectionKind.DATA):
        s = hdr.sections[kind]
        data[s.offset : s.offset + s.size] = bytes(s.size)
    zeroed = tmp_path / "zeroed.vfb"
    zeroed.write_bytes(bytes(data))
    tab = read_ifp_table(zeroed)
    ifps_sect = hdr.sections[SectionKind.IFPS]
    assert tab.bytes_read == HEADER_BYTES + DIR_ENTRY_BYTES * len(SectionKind) + ifps_sect.size
    text = hdr.sections[SectionKind.TEXT]
    assert tab.bytes_read < 0.25 * len(data) and tab.bytes_read < text.size
    want = allocate(prepare(small.ifps, len(small.layers)), [2, 5, 7])
    got = allocate(prepare(tab.ifps, len(small.layers)), [2, 5, 7])
    assert np.array_equal(got.dispatch, want.dispatch)
    bare = np.zeros(len(small.ifps), [("layer", "<u4"), ("candidate", "<u2"),
                                      ("latency", "<u8")])
    for f in bare.dtype.names:
        bare[f] = small.ifps[f]
    assert np.array_equal(allocate(prepare(bare, len(small.layers)), [2, 5, 7]).dispatch,
                          want.dispatch)


def test_retarget_rewrites_only_dispatch_and_core_count(small, small_prep):
    out = retarget(small, allocate(small_prep, [4, 9, 1]))
    assert out.num_cores == 3 and out.text is small.text and out.data is small.data
    assert np.array_equal(out.ifps, small.ifps)
    a, b = to_bytes(small), to_bytes(out)
    ha, hb = read_header(a, "a"), read_header(b, "b")
    for kind in SectionKind:
        if kind in (SectionKind.DISPATCH, SectionKind.PROGRAM):
            continue
        sa, sb = ha.sections[kind], hb.sections[kind]
        assert a[sa.offset : sa.offset + sa.size] == b[sb.offset : sb.offset + sb.size], kind


# ------------------------------------------------------------------- emulation
@pytest.mark.parametrize("k", range(1, 17))
def test_small_net_identical_for_every_core_count(small, small_prep, small_ref, k):
    for strategy in STRATEGIES:
        assert emulate(small, list(range(16 - k, 16)), strategy=strategy,
                       prep=small_prep) == small_ref


def test_small_net_identical_on_random_core_subsets(small, small_prep, small_ref):
    rng = np.random.default_rng(7)
    for _ in range(6):
        k = int(rng.integers(1, 17))
        cores = rng.permutation(16)[:k].tolist()
        assert emulate(small, cores, prep=small_prep) == small_ref, cores


core_sets = st.lists(st.integers(0, 15), min_size=1, max_size=16, unique=True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(core_sets, st.lists(st.tuples(st.integers(0, 100), core_sets), min_size=1, max_size=3),
       st.sampled_from(sorted(STRATEGIES)))
def test_context_switch_property(small, small_prep, small_ref, first, switches, strategy):
    """Switching at any layer boundary (one or several times) to any core set keeps the
    output bytes."""
    n = len(small.layers)
    plan = sorted((layer % n, cores) for layer, cores in switches)
    assert emulate(small, first, plan, strategy, small_prep) == small_ref


def test_switch_errors(small, small_prep):
    acc = Accelerator(HW)
    other = acc.create_task("other", [7], 1 << 16)
    task = acc.create_task("t", [0, 1], small.ddr_size)
    task.load(retarget(small, allocate(small_prep, [0, 1])))
    task.run_until_layer(0)
    with pytest.raises(VfpgaError, match=r"cores already in use: 7 \(task 'other'\)"):
        task.switch_cores([3, 7], allocate(small_prep, [3, 7]).dispatch)
    with pytest.raises(VfpgaError, match="uses 3 cores but the switch gives 2"):
        task.switch_cores([3, 4], allocate(small_prep, [3, 4, 5]).dispatch)
    with pytest.raises(VfpgaError, match="not distinct cores"):
        task.switch_cores([3, 3], allocate(small_prep, [3, 4]).dispatch)
    d = allocate(small_prep, [3, 4]).dispatch
    with pytest.raises(VfpgaError, match="no barrier of layer 0"):
        task.switch_cores([3, 4], d[~((d["kind"] == 1) & (d["arg"] == 0))])
    task.switch_cores([3, 4, 5], allocate(small_prep, [3, 4, 5]).dispatch)
    assert task.switches == 1 and task.cores == [3, 4, 5]
    acc.release_task(other)
    acc.run([task])
    with pytest.raises(VfpgaError, match="has finished"):
        task.switch_cores([0], allocate(small_prep, [0]).dispatch)


# --------------------------------------------------------------------------- CLI
def invoke(*args: str):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in res.output
    return res


def _sha(res_output: str) -> str:
    return next(line for line in res_output.splitlines() if "sha256" in line).split(
        "sha256 ")[1].split(",")[0]


def test_cli_realloc_and_run(small, tmp_path):
    src = tmp_path / "m.vfb"
    write_vfb(src, small)
    out = tmp_path / "m3.vfb"
    res = invoke("realloc", str(src), "--cores", "0,3,5", "-o", str(out), "--layers")
    assert res.exit_code == 0, res.output
    assert "dynamic compile:" in res.output and "ms" in res.output
    assert "predicted latency:" in res.output and "lower bound:" in res.output
    assert "per-layer allocation on 3 cores" in res.output
    new = read_vfb(out)
    assert new.num_cores == 3 and new.text == small.text and new.data == small.data
    base = invoke("run", str(src))
    moved = invoke("run", str(out), "--cores", "0,3,5")
    auto = invoke("run", str(src), "--cores", "2")
    switched = invoke("run", str(src), "--cores", "0-3", "--switch-at", "2:4-15",
                      "--switch-at", f"{small.layers[4].name}:1")
    for r in (base, moved, auto, switched):
        assert r.exit_code == 0, r.output
    assert _sha(base.output) == _sha(moved.output) == _sha(auto.output) == _sha(switched.output)
    assert "re-targeted to 2 cores" in auto.output
    assert "context switch after layer 2" in switched.output
    assert "context switch after layer 4" in switched.output


@pytest.mark.parametrize(("args", "msg"), [
    (("--switch-at", "x"), "expected LAYER:CORES"),
    (("--switch-at", "999:1"), "layer 999 does not exist"),
    (("--switch-at", "nolayer:1"), "no layer 'nolayer'"),
    (("--switch-at", "1:0-99"), "do not exist"),
])
def test_cli_switch_errors(small, tmp_path, args, msg):
    src = tmp_path / "m.vfb"
    write_vfb(src, small)
    res = invoke("run", str(src), *args)
    assert res.exit_code != 0 and msg in res.output


def test_cli_realloc_errors(small, tmp_path):
    src = tmp_path / "m.vfb"
    write_vfb(src, small)
    res = invoke("realloc", str(src), "--cores", "3,3")
    assert res.exit_code != 0 and "named twice" in res.output
    res = invoke("realloc", str(tmp_path / "none.vfb"), "--cores", "1")
    assert res.exit_code != 0 and "no such file" in res.output
    res = invoke("realloc", str(src), "--cores", "1", "--strategy", "nope")
    assert res.exit_code != 0


# ----------------------------------------------------------------- xDSL pass
def test_xdsl_pass_equals_the_binary_pass():
    """ifp-allocate-cores on the compiled IR + the .vfb target gives the same dispatch as
    the pass over the binary's IFP table, for any core set and strategy."""
    from xdsl.context import Context

    from vfpga.dialects.dnn_convert import qgraph_to_module
    from vfpga.driver import compile_module
    from vfpga.passes.ifp_allocate_cores import IfpAllocateCoresPass
    from vfpga.targets.vfb import module_to_vfb

    b = GraphBuilder((8, 16, 16), seed=2)  # no concat (the dnn dialect wants equal scales)
    x = b.conv(b.input, 32, (3, 3), 1)
    x = b.pool(x, "max", 2, 2)
    y = b.conv(x, 32, (3, 3), groups=32, act="relu6")
    x = b.add(x, y)
    x = b.conv(x, 24, (1, 1), act="none")
    module = qgraph_to_module(b.build([x]))
    vfb = compile_module(module, HW, 16).vfb
    prep = prepare(vfb.ifps, len(vfb.layers))
    for cores, strategy in (((0, 3, 5), "lpt"), ((9,), "lpt"), ((4, 2, 8, 1, 6), "lpt-refine"),
                            (tuple(range(16)), "lpt")):
        IfpAllocateCoresPass(cores, strategy).apply(Context(), module)
        module.verify()
        out = module_to_vfb(module, HW)
        assert out.num_cores == len(cores)
        assert np.array_equal(out.dispatch, allocate(prep, cores, strategy).dispatch)
        assert out.text == vfb.text or len(cores) != 16


# ------------------------------------------------------------ paper networks (slow)
#: Coverage of the whole-network emulations: every k = 1..16 for each of the four paper
#: networks, each run on a random set of k physical cores, plus one context switch per
#: model at a random layer from 3 to 10 random cores. The reference is the compiler's own
#: 16-core binary. (About 1 s per emulation of vgg16, less for the others, with BLAS
#: pinned to one thread as the emulator does.)
PAPER_CASES: dict[str, list[int]] = {name: list(range(1, 17)) for name in
                                     ("mobilenet_v1", "resnet50", "vgg16", "inception_v3")}
_CACHE: dict[str, tuple[object, object, bytes]] = {}


def _paper(name: str):
    if name not in _CACHE:
        from vfpga.frontend.pipeline import load_qgraph
        from vfpga.models import export_model

        g, _ = load_qgraph(export_model(name), num_random=2)
        vfb = compile_graph(g, HW, cores=16).vfb
        prep = prepare(vfb.ifps, len(vfb.layers), pool_size=16)
        assert np.array_equal(allocate(prep, range(16)).dispatch, vfb.dispatch)
        _CACHE[name] = (vfb, prep, emulate(vfb, list(range(16)), prep=prep))
    return _CACHE[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAPER_CASES))
def test_paper_model_identical_on_any_cores(name):
    vfb, prep, ref = _paper(name)
    rng = np.random.default_rng(hashlib.sha256(name.encode()).digest()[0])
    for k in PAPER_CASES[name]:
        cores = rng.permutation(16)[:k].tolist()
        assert emulate(vfb, cores, prep=prep) == ref, (name, cores)
    layer = int(rng.integers(0, len(vfb.layers) - 1))
    first, then = rng.permutation(16)[:3].tolist(), rng.permutation(16)[:10].tolist()
    assert emulate(vfb, first, [(layer, then)], prep=prep) == ref, (name, layer, then)
