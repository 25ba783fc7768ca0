"""Weights stored chunk by chunk (issue 17): a fully connected layer whose weight chunks
would be rows shorter than a DDR burst (VGG-16's fc6: a 7x7 kernel over 512 channels,
5-byte rows) stores its weights ``[chunk][OC][KH][KW][channels of the chunk]``; every
chunk's weight LOAD of every tiling candidate is then one contiguous box, the DATA blob
holds exactly those bytes, and the emulator's results stay the integer reference's."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import run_compiled
from qgraph_builders import GraphBuilder

from vfpga.compiler import ifpgen
from vfpga.compiler.ifpgen import LoopNest, Tile, choose_plan, conv_ifp, weight_chunk
from vfpga.compiler.plan import chunked_weights
from vfpga.driver import compile_graph
from vfpga.emulator import Accelerator
from vfpga.emulator.timing import TimingParams, time_program
from vfpga.errors import CompileError
from vfpga.flow import emulate
from vfpga.hw import load_hw
from vfpga.hw.costs import DDR_BURST_BYTES, burst_bytes
from vfpga.isa.codec import decode
from vfpga.isa.spec import Buffer, Opcode
from vfpga.reference import run_reference

HW = load_hw("pool16")


@pytest.fixture(scope="module")
def fc():  # type: ignore[no-untyped-def]
    """A 7x7 convolution over 512 x 7 x 7 to 64 x 1 x 1 (fc6's shape, fewer outputs:
    weights 1.6 MB, chunked), then a 1x1 one to 32 channels (weights fit wbuf)."""
    b = GraphBuilder((512, 7, 7), seed=5)
    y = b.conv(b.conv(b.input, 64, k=(7, 7), pads=(0, 0, 0, 0)), 32, k=(1, 1), act="none")
    g = b.build([y], "fc")
    return g, compile_graph(g, HW, 4)


def _weight_loads(res, layer: int) -> list[dict[str, int]]:  # type: ignore[no-untyped-def]
    """The fields of every wbuf LOAD of ``layer``'s IFPs (all candidates)."""
    prog = decode(bytes(res.vfb.text))
    mine = np.zeros(len(prog), bool)
    for rec in res.vfb.ifps[res.vfb.ifps["layer"] == layer]:
        mine[int(rec["insn_offset"]) : int(rec["insn_offset"] + rec["insn_count"])] = True
    loads = prog.by_op[Opcode.LOAD]
    to = loads["flags"] & 0b111  # the LOAD's destination buffer (docs/isa.md)
    sel = mine[prog.index_of[Opcode.LOAD]] & (to == int(Buffer.WBUF))
    return [{k: int(r[k]) for k in ("n0", "n1", "n2")} for r in loads[sel]]


def test_fc_layer_is_stored_chunk_by_chunk(fc) -> None:  # type: ignore[no-untyped-def]
    _g, res = fc
    spec0, spec1 = res.layers[0].spec, res.layers[1].spec
    cs = weight_chunk(spec0, HW)
    assert 0 < cs < DDR_BURST_BYTES
    assert weight_chunk(spec1, HW) == 0  # fits wbuf: the whole layout
    assert res.layers[0].candidates > 1
    loads = _weight_loads(res, 0)
    assert loads and all((f["n0"], f["n1"]) == (1, 1) for f in loads)
    assert {f["n2"] % (7 * 7) for f in loads} == {0}
    # every nest of every tile uses the stored chunk
    for t in (Tile(0, 1, 0, 64), Tile(0, 1, 0, 16), Tile(0, 1, 8, 24)):
        assert choose_plan(spec0, t, HW).chunk == cs


def test_data_holds_the_chunked_layout(fc) -> None:  # type: ignore[no-untyped-def]
    _g, res = fc
    plan, spec0 = res.plan, res.layers[0].spec
    cs = weight_chunk(spec0, HW)
    data, std = np.frombuffer(res.vfb.data, np.uint8), np.frombuffer(plan.data, np.uint8)
    assert data.size == std.size
    at = spec0.w_off - plan.data_offset
    n = spec0.node.weight.size
    w = np.ascontiguousarray(spec0.node.weight.transpose(0, 2, 3, 1))
    assert np.array_equal(data[at : at + n].view(np.int8), chunked_weights(w, cs))
    assert not np.array_equal(data[at : at + n], std[at : at + n])
    assert np.array_equal(data[:at], std[:at]) and np.array_equal(data[at + n :], std[at + n :])


def test_chunked_weights_layout() -> None:
    w = np.arange(2 * 1 * 2 * 5, dtype=np.int8).reshape(2, 1, 2, 5)  # [OC][KH][KW][IC]
    got = chunked_weights(w, 2)
    want = np.concatenate([w[..., 0:2].ravel(), w[..., 2:4].ravel(), w[..., 4:5].ravel()])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("cores", [[0], [1, 6, 9, 14]], ids=["1core", "4cores"])
def test_emulator_is_exact_on_chunked_weights(fc, cores: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Fast path (epoch plans / per-core plans) equals the interpreter byte for byte, and
    the output equals the integer reference."""
    g, res = fc
    if len(cores) != res.vfb.num_cores:
        res = compile_graph(g, HW, len(cores))
    fast, _ = run_compiled(Accelerator(HW, fast=True), g, res.vfb, cores, runs=2)
    slow, _ = run_compiled(Accelerator(HW, fast=False), g, res.vfb, cores)
    assert fast[2], fast[3]
    assert fast == slow
    x = np.random.default_rng(7).standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)
    want = run_reference(g, x)[g.outputs[0]]
    got = emulate(res, HW, x, cores=cores).outputs[g.outputs[0]]
    assert np.array_equal(got, want)


def test_a_nest_with_another_chunk_is_refused(fc) -> None:  # type: ignore[no-untyped-def]
    _g, res = fc
    spec0 = res.layers[0].spec
    cs = weight_chunk(spec0, HW)
    nest = choose_plan(spec0, Tile(0, 1, 0, 64), HW)
    bad = LoopNest(nest.og, nest.rb, cs + 8, nest.in_cols)
    with pytest.raises(CompileError, match=f"stored in chunks of {cs} input channels"):
        conv_ifp(spec0, Tile(0, 1, 0, 64), HW, bad)


def test_burst_bytes() -> None:
    """Each contiguous run of a box moves in whole bursts."""
    b = DDR_BURST_BYTES
    got = burst_bytes(
        np.array([1, 1, 4, 4, 4, 256, 0]),
        np.array([1, 49, 3, 3, 3, 49, 3]),
        np.array([100, 5, 8, 8, 8, 5, 8]),
        np.array([0, 0, 24, 240, 240, 25088, 24]),
        np.array([0, 512, 8, 8, 80, 512, 8]),
    )
    assert got.tolist() == [
        2 * b,  # one run of 100 bytes
        49 * b,  # 49 rows of 5 bytes
        2 * b,  # 4 x 3 x 8 contiguous: one run of 96 bytes
        4 * b,  # 4 runs of 24 bytes (a row's pixels adjacent)
        12 * b,  # 12 runs of 8 bytes
        256 * 49 * b,  # fc6's chunk LOAD before: 12 544 rows of 5 bytes
        0,
    ]


def test_timing_model_charges_bursts(fc, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With bursts charged, the chunk-by-chunk layout's weight LOADs (one box each) take
    far less bus time than the whole layout's short rows; without, the timing model counts
    bytes as the static model does (the default)."""
    g, res = fc
    monkeypatch.setattr(ifpgen, "_weight_chunk", lambda spec, hw: 0)
    whole = compile_graph(g, HW, 4)
    assert weight_chunk(whole.layers[0].spec, HW) == 0
    bursts = TimingParams(burst_bytes=DDR_BURST_BYTES)

    def fc_cycles(vfb, params=None) -> float:  # type: ignore[no-untyped-def]
        """Cycles to the barrier of the chunked layer (layer 0)."""
        st = time_program(vfb, HW, [0, 1, 2, 3], params=params)
        return dict(st.barrier_times)[0] - st.start

    t_chunked, t_whole = fc_cycles(res.vfb, bursts), fc_cycles(whole.vfb, bursts)
    assert t_chunked < 0.8 * t_whole, (t_chunked, t_whole)
    assert fc_cycles(res.vfb) < t_chunked  # every run rounded up to whole bursts
    assert TimingParams().burst_bytes == 0


@pytest.mark.parametrize("cores", ["1", "4"])
def test_vfpga_check_on_an_fc6_like_model(tmp_path, cores: str) -> None:
    """From the user's side: ``vfpga check`` quantizes, compiles (fc6-like layer stored
    chunk by chunk), emulates and compares every layer's bytes with the reference."""
    import onnx
    from click.testing import CliRunner
    from qdq_models import GraphBuilder as OnnxBuilder

    from vfpga.cli.main import cli

    b = OnnxBuilder((1, 512, 7, 7), seed=2)
    y = b.conv(b.relu(b.conv("x", 512, 64, 7, pad=0)), 64, 10, 1, pad=0)
    path = tmp_path / "fc.onnx"
    onnx.save(b.model(y, (1, 10, 1, 1)), path)
    from vfpga.frontend.pipeline import load_model

    specs = compile_graph(load_model(path, num_random=4).graph, HW, int(cores)).layers
    assert weight_chunk(specs[0].spec, HW) > 0  # the 7x7 layer is stored chunk by chunk
    r = CliRunner().invoke(
        cli, ["check", str(path), "--cores", cores, "--calib-random", "4", "--num-inputs", "1"]
    )
    assert r.exit_code == 0, r.output
    assert "check passed" in r.output and "byte-identical" in r.output
