"""The tiling engine (issue 17, allocation): balanced partitions into k tiles for every
core count, the IFP latency estimate that ranks them, and the ``tiles`` form of
``ifp.candidate`` that carries them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qgraph_builders import GraphBuilder
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from vfpga.compiler import tiling
from vfpga.compiler.assign import lower_bound, lpt
from vfpga.compiler.ifpgen import LayerSpec, Tile, TileDoesNotFit, make_ifp
from vfpga.compiler.latency import simulate, timing_words
from vfpga.compiler.tilecost import cycles_lower_bound, tile_cycles
from vfpga.compiler.tiling import candidates, layer_candidates, shape_signature
from vfpga.dialects import get_all_dialects, ifp
from vfpga.dialects.dnn_convert import qgraph_to_module
from vfpga.frontend.qgraph import QGraph
from vfpga.hw.config import load_hw
from vfpga.isa.codec import encode_batch
from vfpga.passes.dnn_plan_memory import DnnPlanMemoryPass
from vfpga.passes.dnn_tile import layer_specs_of

POOL16 = load_hw("pool16")


def _specs(g: QGraph) -> list[LayerSpec]:
    m = qgraph_to_module(g)
    DnnPlanMemoryPass().apply(Context(), m)
    return layer_specs_of(m)


def _graph(kind: str, c: int, h: int, w: int, oc: int, k: int, s: int, groups: int) -> QGraph:
    b = GraphBuilder((c, h, w), seed=1)
    if kind == "conv":
        y = b.conv(b.input, oc, (k, k), s, groups=groups)
    elif kind == "pool":
        y = b.pool(b.input, "max", k, s, k // 2)
    else:
        y = b.add(b.input, b.conv(b.input, c, (1, 1)))
    return b.build([y])


@st.composite
def _layer_and_tile(draw: st.DrawFn) -> tuple[QGraph, tuple[float, ...]]:
    kind = draw(st.sampled_from(["conv", "conv", "pool", "add"]))
    c, oc, groups = draw(st.integers(1, 64)), draw(st.integers(1, 64)), 1
    if kind == "conv" and draw(st.booleans()):
        c = oc = groups = draw(st.integers(2, 48))  # depthwise
    k = draw(st.sampled_from([1, 3, 5]))
    s = draw(st.integers(1, 2))
    h, w = draw(st.integers(k, 30)), draw(st.integers(k, 30))
    frac = tuple(draw(st.floats(0, 1)) for _ in range(6))
    return _graph(kind, c, h, w, oc, k, s, groups), frac


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_layer_and_tile())
def test_estimate_equals_the_simulated_latency(case: tuple[QGraph, tuple[float, ...]]) -> None:
    """tile_cycles is the latency model's result without generating the instructions,
    for any tile (any rows, columns and channels; the last layer of the graph), and
    cycles_lower_bound is no more than it."""
    g, f = case
    spec = _specs(g)[-1]
    co, oh, ow = spec.out_shape

    def rng(n: int, a: float, b: float) -> tuple[int, int]:
        lo = min(int(a * n), n - 1)
        return lo, lo + 1 + min(int(b * (n - lo)), n - lo - 1)

    (w0, w1), (c0, c1), (h0, h1) = rng(ow, f[0], f[1]), rng(co, f[2], f[3]), rng(oh, f[4], f[5])
    t = Tile(w0, w1, c0, c1, h0, h1)
    try:
        want = simulate(make_ifp(spec, t, POOL16).insns, POOL16)
    except TileDoesNotFit:
        with pytest.raises(TileDoesNotFit):
            tile_cycles(spec, t, POOL16)
        return
    assert tile_cycles(spec, t, POOL16) == want
    assert cycles_lower_bound(spec, t, POOL16) <= want


@pytest.mark.parametrize("shape", [(128, 28, 28, 3), (64, 56, 56, 1), (512, 7, 7, 3)])
def test_every_core_count_gets_a_balanced_candidate(shape: tuple[int, int, int, int]) -> None:
    """For every k = 1..16 there is a candidate of exactly k tiles, and the best
    candidate on k cores finishes within 15% of the layer bound (the least
    max(total / k, longest) over the candidates) and no later than on k - 1 cores
    (sooner, up to 8 cores); the candidates' tiles cover the output once (rows, columns
    and channels)."""
    c, h, w, k = shape
    spec = _specs(_graph("conv", c, h, w, c, k, 1, 1))[-1]
    co, oh, ow = spec.out_shape
    cands = candidates(spec, POOL16)
    sizes = {len(x.tiles) for x in cands}
    assert set(range(1, 17)) <= sizes
    lat = [[simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in x.tiles] for x in cands]
    prev = None
    for n in range(1, 17):
        best = min(lpt(lt, n)[1] for lt in lat)
        bound = min(lower_bound(lt, n) for lt in lat)
        assert best <= 1.15 * bound, (n, best, bound)
        assert prev is None or best < prev or (n > 8 and best == prev)
        prev = best
    for x in cands:
        cover = np.zeros((co, oh, ow), np.int64)
        for t in x.tiles:
            h0, h1 = t.rows(oh)
            cover[t.c0:t.c1, h0:h1, t.w0:t.w1] += 1
        assert (cover == 1).all(), x.label
    assert any(x.axis == "tiles" for x in cands)  # two-dimensional and height splits
    assert any(t.rows(oh) != (0, oh) for x in cands for t in x.tiles)


def _cover_once(tiles: tuple[Tile, ...], out_shape: tuple[int, int, int]) -> bool:
    co, oh, ow = out_shape
    cover = np.zeros((co, oh, ow), np.int64)
    for t in tiles:
        h0, h1 = t.rows(oh)
        cover[t.c0:t.c1, h0:h1, t.w0:t.w1] += 1
    return bool((cover == 1).all())


def test_depthwise_partitions_are_refined_by_bisection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A depthwise layer whose guillotine partition into k tiles is far from its bound
    (MobileNet v1's 256x28x28 depthwise 3x3 at k = 14: 1.2x) gets the recursive
    bisection's partition: it covers the output once, its longest tile (simulated) is
    shorter by a tenth, and the layer on k cores comes within 8% of the layer bound."""
    spec = _specs(_graph("conv", 256, 28, 28, 256, 3, 1, 256))[-1]
    k = 14

    def longest(cands: list[tiling.Candidate]) -> int:
        (x,) = [x for x in cands if len(x.tiles) == k]
        assert _cover_once(x.tiles, spec.out_shape)
        return max(simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in x.tiles)

    refined = candidates(spec, POOL16)
    monkeypatch.setattr(tiling, "BISECT_SLACK", float("inf"))
    spec.plan_cache.clear()
    guillotine = candidates(spec, POOL16)
    assert longest(refined) < 0.9 * longest(guillotine)
    lat = [[simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in x.tiles] for x in refined]
    best = min(lpt(lt, k)[1] for lt in lat)
    assert best <= 1.08 * min(lower_bound(lt, k) for lt in lat)


@pytest.mark.parametrize("args, k, gain", [
    (("pool", 256, 35, 35, 256, 3, 1, 1), 15, 1.05),  # Inception v3's 35x35 3x3 pooling
    (("conv", 96, 17, 17, 96, 3, 1, 1), 11, 1.01),  # a 3x3 CONV on a 17x17 map
])
def test_plain_conv_and_pool_partitions_are_refined_by_bisection(
        monkeypatch: pytest.MonkeyPatch, args: tuple[str | int, ...], k: int,
        gain: float) -> None:
    """Layers refined since session 11 (plain CONVs of kernels other than 1x1, POOLs):
    where no partition of the balanced search finishes the layer on k cores near its
    bound, the k-tile candidate is the recursive bisection's; it covers the output
    exactly once and its longest tile is shorter than the guillotine partition's, by
    ``gain``, estimated and simulated."""
    spec = _specs(_graph(*args))[-1]  # type: ignore[arg-type]
    costs = tiling._Costs(spec, POOL16)

    def tiles(cands: list[tiling.Candidate]) -> tuple[Tile, ...]:
        (x,) = [x for x in cands if len(x.tiles) == k]
        assert _cover_once(x.tiles, spec.out_shape)
        return x.tiles

    refined = tiles(candidates(spec, POOL16))
    monkeypatch.setattr(tiling, "BISECT_SLACK", float("inf"))
    spec.plan_cache.clear()
    guillotine = tiles(candidates(spec, POOL16))
    assert refined != guillotine
    est = max(costs(t) or 0 for t in guillotine) / max(costs(t) or 0 for t in refined)
    sim = (max(simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in guillotine)
           / max(simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in refined))
    assert est >= gain and sim >= gain, (est, sim)


def test_wide_first_cut_refines_what_halving_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer whose bisection in halves stays far from its bound is bisected again with a
    first cut of every ``n1 : k - n1`` (session 11): a 3x3 CONV of 128 channels on a 17x17
    map at k = 13 gets a candidate that covers the output exactly once and whose longest
    tile is shorter than the halving bisection's, estimated and simulated."""
    spec = _specs(_graph("conv", 128, 17, 17, 128, 3, 1, 1))[-1]
    costs = tiling._Costs(spec, POOL16)
    k = 13

    def tiles() -> tuple[Tile, ...]:
        spec.plan_cache.clear()
        (x,) = [x for x in candidates(spec, POOL16) if len(x.tiles) == k]
        assert _cover_once(x.tiles, spec.out_shape)
        return x.tiles

    wide = tiles()
    monkeypatch.setattr(tiling, "WIDE_BREADTH", 0)  # no first cut tried: halving only
    halving = tiles()
    assert wide != halving
    est = max(costs(t) or 0 for t in halving) / max(costs(t) or 0 for t in wide)
    sim = (max(simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in halving)
           / max(simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in wide))
    assert est >= 1.05 and sim >= 1.05, (est, sim)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_layer_and_tile(), parts=st.integers(2, 5))
def test_lower_bound_of_parts_bounds_the_longest_part(
        case: tuple[QGraph, tuple[float, ...]], parts: int) -> None:
    """cycles_lower_bound(..., parts=n) of a tile is no more than the longest of any n
    tiles that partition it (here: n near-equal ranges along one axis), which the
    bisection's branch and bound relies on."""
    g, f = case
    spec = _specs(g)[-1]
    co, oh, ow = spec.out_shape
    axis = int(f[0] * 3) % 3
    size = (oh, ow, co)[axis]
    if size < parts:
        return
    bounds = [size * i // parts for i in range(parts + 1)]
    pieces = [Tile(*((0, ow) if axis != 1 else (a, b)), *((0, co) if axis != 2 else (a, b)),
                   *((0, oh) if axis != 0 else (a, b))) for a, b in itertools.pairwise(bounds)]
    try:
        longest = max(tile_cycles(spec, t, POOL16) for t in pieces)
    except TileDoesNotFit:
        return
    assert cycles_lower_bound(spec, Tile(0, ow, 0, co, 0, oh), POOL16, parts) <= longest


def test_single_pixel_layers_are_split_at_any_channel() -> None:
    """A fully connected layer (one output pixel, 1000 channels, bound by loading its
    weights) is balanced on 15 cores by channel ranges that are not multiples of 8 (125
    groups of 8 would leave one core 9 groups, 8% above the average)."""
    b = GraphBuilder((1024, 1, 1), seed=1)
    spec = _specs(b.build([b.conv(b.input, 1000, (1, 1))]))[-1]
    (x,) = [x for x in candidates(spec, POOL16) if len(x.tiles) == 15]
    assert _cover_once(x.tiles, spec.out_shape)
    assert any(t.c0 % 8 for t in x.tiles)
    lat = [simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in x.tiles]
    assert max(lat) <= 1.02 * sum(lat) / 15


@pytest.mark.parametrize("args, k, before, limit", [
    ((512, 14, 14, 512, 3, 1, 512), 15, 1.109, 1.07),  # MobileNet v1's depthwise 3x3
    ((1024, 7, 7, 1024, 1, 1, 1), 15, 1.037, 1.01),  # MobileNet v1's last 1x1 CONV
])
def test_depthwise_and_1x1_layers_are_split_at_any_channel(
        args: tuple[int, ...], k: int, before: float, limit: float) -> None:
    """MobileNet v1's small depthwise and 1x1 layers on 15 cores: the bisection cuts
    channels at any channel (64 or 128 groups of 8 would leave a core a group more than
    the average, or cut rows and reload halos), so the layer comes closer to its bound
    (simulated latencies; ``before``: with cuts at multiples of 8 only)."""
    spec = _specs(_graph("conv", *args))[-1]
    cands = candidates(spec, POOL16)
    (x,) = [x for x in cands if len(x.tiles) == k]
    assert _cover_once(x.tiles, spec.out_shape)
    assert any(t.c0 % 8 for t in x.tiles)
    lat = [[simulate(make_ifp(spec, t, POOL16).insns, POOL16) for t in c.tiles] for c in cands]
    best = min(lpt(lt, k)[1] for lt in lat)
    assert best <= limit * min(lower_bound(lt, k) for lt in lat) < before * min(
        lower_bound(lt, k) for lt in lat)


def _parse(text: str) -> ModuleOp:
    ctx = Context()
    for name, factory in get_all_dialects().items():
        ctx.register_dialect(name, factory)
    ctx.load_dialect(Builtin)
    return Parser(ctx, text).parse_module()


_LAYER = 'builtin.module {{ ifp.layer 0 "c" conv out 16x4x6 macs 1 {{ {cand} }} }}'


def test_tiles_candidate_round_trips_and_verifies() -> None:
    cand = "ifp.candidate tiles parts 3 at [0, 6, 0, 8, 0, 4, 0, 3, 8, 16, 0, 4, 3, 6, 8, 16, 0, 4]"
    m = _parse(_LAYER.format(cand=cand))
    m.verify()
    (layer,) = [op for op in m.ops if isinstance(op, ifp.LayerOp)]
    (c,) = layer.candidates()
    assert c.num_tiles == 3
    assert c.tiles(layer.out_shape)[1] == (0, 3, 8, 16, 0, 4)
    assert cand in str(m)


@pytest.mark.parametrize("at, msg", [
    ("[0, 6, 0, 8, 0, 4, 0, 6, 8, 16, 0, 4]", "must have 6 entries"),
    ("[0, 6, 0, 8, 0, 4, 0, 6, 4, 16, 0, 4, 0, 6, 0, 1, 0, 1]", "tiles 0 and 1 overlap"),
    ("[0, 6, 0, 8, 0, 4, 0, 3, 8, 16, 0, 4, 3, 6, 8, 16, 0, 3]", "cover 360 of the output's 384"),
    ("[0, 6, 0, 8, 0, 4, 0, 3, 8, 16, 0, 4, 3, 7, 8, 16, 0, 4]", "exceeds the layer's output"),
    ("[0, 6, 0, 8, 0, 4, 0, 3, 8, 16, 0, 4, 3, 3, 8, 16, 0, 4]", "tile 2 w=3:3"),
])
def test_tiles_candidate_errors(at: str, msg: str) -> None:
    m = _parse(_LAYER.format(cand=f"ifp.candidate tiles parts 3 at {at}"))
    with pytest.raises(VerifyException, match=msg):
        m.verify()


def test_layers_of_one_shape_share_their_candidates() -> None:
    """layer_candidates computes the candidates once per shape signature and gives every
    layer exactly what candidates() computes for it alone; layers of other geometry,
    activation or kind have other signatures."""
    b = GraphBuilder((32, 14, 14), seed=3)
    x = b.conv(b.input, 32, (3, 3), 1)
    y = b.conv(x, 32, (3, 3), 1)  # same shape as x's conv, other weights
    z = b.conv(y, 32, (1, 1), 1)
    p = b.pool(z, "max", 3, 1, 1)
    specs = _specs(b.build([b.add(p, y)]))
    shared = layer_candidates(specs, POOL16)
    assert shared == [candidates(s, POOL16) for s in specs]
    sigs = [shape_signature(s) for s in specs]
    assert sigs[0] == sigs[1]
    assert len(set(sigs)) == len(sigs) - 1
    assert shared[0] is shared[1]


def test_timing_words_key_the_latency_by_everything_but_ddr_addresses() -> None:
    """Two interior row tiles of a layer differ only in their DDR addresses: equal timing
    words and equal simulated latency; a narrower tile has other timing words."""
    spec = _specs(_graph("conv", 16, 12, 10, 16, 3, 1, 1))[-1]
    a, b = Tile(0, 10, 0, 16, 3, 6), Tile(0, 10, 0, 16, 6, 9)
    ia, ib = make_ifp(spec, a, POOL16).insns, make_ifp(spec, b, POOL16).insns
    wa, wb = encode_batch(ia), encode_batch(ib)
    assert wa != wb
    assert timing_words(wa) == timing_words(wb)
    assert simulate(ia, POOL16) == simulate(ib, POOL16)
    narrow = encode_batch(make_ifp(spec, Tile(0, 5, 0, 16, 3, 6), POOL16).insns)
    assert timing_words(narrow) != timing_words(wa)


@pytest.mark.parametrize("cores", [11, 13, 15])
def test_channel_tiles_of_one_pixel_layers_emulate_bit_exactly(cores: int) -> None:
    """A global pooling and a fully connected layer whose tiles on ``cores`` cores start
    at channels that are not multiples of 8 compute the integer reference exactly."""
    from vfpga.driver import compile_graph
    from vfpga.flow import check_one

    b = GraphBuilder((300, 3, 3), seed=3)
    y = b.conv(b.pool(b.input, "global_avg"), 1000, (1, 1))
    g = b.build([y])
    res = compile_graph(g, POOL16, cores)
    d = res.vfb.dispatch
    run = res.vfb.ifps[d["arg"][d["kind"] == 0]]  # the IFPs the dispatch table runs
    assert (run["c0"] % 8 != 0).any()
    x = np.random.default_rng(5).standard_normal((1, 300, 3, 3)).astype(np.float32)
    rep = check_one(res, POOL16, x, list(range(cores)))
    assert rep.ok, rep.first_mismatch
