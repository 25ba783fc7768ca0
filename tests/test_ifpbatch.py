"""``ifp-lower-to-isa`` generates each tile shape once and patches the DDR addresses of
the other tiles of that shape (vfpga/compiler/ifpbatch.py): the words, the instruction
fields and the buffer usage equal those of generating every tile on its own, for every
layer kind (dense, strided, grouped, depthwise, asymmetric convolutions, pools, adds, a
shuffled output), also when a shape key promises too much (the shape falls back to
tile-by-tile generation); the generator's buffer accounting is still checked."""

from __future__ import annotations

import pytest
from qgraph_builders import GraphBuilder, small_net
from test_static_passes import _fix_concat_quant as _fixed
from xdsl.context import Context

from vfpga.compiler import ifpbatch
from vfpga.compiler.ifpbatch import TileJob, generate_ifps, insn_footprint
from vfpga.compiler.ifpgen import LoopNest, Tile, make_ifp
from vfpga.dialects.dnn_convert import qgraph_to_module
from vfpga.frontend.qgraph import QGraph
from vfpga.hw.config import load_hw
from vfpga.isa.codec import encode_batch
from vfpga.passes.dnn_plan_memory import DnnPlanMemoryPass
from vfpga.passes.dnn_tile import DnnTilePass, layer_specs_of, layers_of, spec_for
from vfpga.passes.ifp_package import IfpPackagePass

POOL16 = load_hw("pool16")


def _grouped_net() -> QGraph:
    """Grouped convolutions whose groups are not multiples of 8 channels (tiles aligned
    to whole groups, channel slices within a group) and a wide input (many column
    tiles)."""
    b = GraphBuilder((12, 9, 40), seed=3)
    x = b.conv(b.input, 36, (3, 3), groups=3)
    x = b.conv(x, 36, (3, 3), s=2, groups=6)
    x = b.conv(x, 72, (1, 1), groups=2, act="none")
    return b.build([x])


def _dilated_upsampled_net() -> QGraph:
    """ISA v3 geometry over a wide input: a dilated convolution, zero-inserting
    (transposed-style) convolutions with stride 1 and 2, whose border padding repeats
    with the upsampling factor across column tiles."""
    b = GraphBuilder((8, 7, 44), seed=5)
    x = b.conv(b.input, 16, (3, 3), dil=(2, 2))
    x = b.conv(x, 16, (3, 3), ups=(2, 2))
    x = b.conv(x, 8, (4, 4), s=2, ups=(2, 2), pads=(1, 1, 1, 1))
    return b.build([x])


def _eltwise_graph() -> QGraph:
    """Mul/Sub/Add of maps, with per-channel broadcast operands (issue 14)."""
    from qdq_models import eltwise_net, normal_inputs, quantize_qdq

    from vfpga.frontend.pipeline import load_model

    qdq = quantize_qdq(eltwise_net(0), normal_inputs((1, 3, 16, 16), 8, 1))
    return load_model(qdq).graph


def _shuffle_graph() -> QGraph:
    """ShuffleNet's unit: a grouped conv writing a shuffled output."""
    import test_compile_shuffle as ts

    from vfpga.frontend.pipeline import load_model

    return load_model(ts._model(False), num_random=2).graph


def _jobs(g: QGraph) -> list[TileJob]:
    """The tile jobs of every package of ``g`` after ``ifp-package``, in pass order."""
    m = qgraph_to_module(g)
    for p in (DnnPlanMemoryPass(), DnnTilePass("pool16"), IfpPackagePass()):
        p.apply(Context(), m)
    specs = layer_specs_of(m)
    jobs = []
    for layer in layers_of(m):
        spec = spec_for(layer, specs)
        for cand in layer.candidates():
            for pkg in cand.packages():
                w0, w1, c0, c1, h0, h1 = pkg.tile
                nest = LoopNest(*(int(pkg.get(n)) for n in ("og", "rb", "chunk", "in_cols")))
                jobs.append(TileJob(spec, Tile(w0, w1, c0, c1), nest, (h0, h1)))
    return jobs


def _assert_tile_by_tile(jobs: list[TileJob]) -> None:
    got = generate_ifps(jobs, POOL16)
    assert len(got) == len(jobs)
    for job, code in zip(jobs, got, strict=True):
        ref = make_ifp(job.spec, job.tile, POOL16, job.plan)
        assert code.words == encode_batch(ref.insns), job
        assert code.insns == ref.insns, job
        assert code.use == insn_footprint(ref.insns) == {b: ref.use.get(b, 0) for b in code.use}


GRAPHS = {
    "small0": lambda: _fixed(small_net(0)),
    "small1": lambda: _fixed(small_net(1, size=33)),
    "grouped": _grouped_net,
    "dilated_upsampled": _dilated_upsampled_net,
    "eltwise": _eltwise_graph,
}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_patched_tiles_equal_tile_by_tile_generation(graph: str) -> None:
    jobs = _jobs(GRAPHS[graph]())
    # the point of the batch: far fewer shapes than tiles
    keys = {(id(j.spec), *ifpbatch.shape_key(j.spec, j.tile, j.plan)) for j in jobs if j.plan}
    assert len(keys) < len(jobs)
    _assert_tile_by_tile(jobs)


def test_shuffled_output_tiles_equal_tile_by_tile_generation() -> None:
    jobs = _jobs(_shuffle_graph())
    assert any(j.spec.out.shuffle for j in jobs)
    _assert_tile_by_tile(jobs)


def test_a_key_that_promises_too_much_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shape key that ignores the border padding and the group alignment puts tiles
    with different streams into one shape: the checks notice, those shapes are
    generated tile by tile, and the result is still exact."""
    results: list[bool] = []
    patch = ifpbatch._patch

    def spy(*args: object) -> bool:
        ok = patch(*args)  # type: ignore[arg-type]
        results.append(ok)
        return ok

    monkeypatch.setattr(
        ifpbatch, "shape_key", lambda spec, t, plan: (t.w1 - t.w0, t.c1 - t.c0, plan.og)
    )
    monkeypatch.setattr(ifpbatch, "_patch", spy)
    _assert_tile_by_tile(_jobs(_grouped_net()) + _jobs(_fixed(small_net(2, size=28))))
    assert False in results and True in results


def test_the_generators_buffer_accounting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(*args: object) -> object:
        code = make_ifp(*args)  # type: ignore[arg-type]
        code.use["ibuf"] += 1
        return code

    monkeypatch.setattr(ifpbatch, "make_ifp", wrong)
    with pytest.raises(AssertionError, match="disagree with its instructions"):
        generate_ifps(_jobs(_fixed(small_net(0))), POOL16)
