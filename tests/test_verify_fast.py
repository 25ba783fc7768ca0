"""The driver's verification (:func:`vfpga.driver.verify_module`: ``ifp`` layers through
:func:`vfpga.dialects.ifp.verify_layer_tree`, packages screened in one loop, candidate
tile lists remembered) catches exactly what xDSL's ``module.verify()`` catches, with the
same message on every chunk of the ``ifp`` verifier's lit test (but a package tile
outside its layer, reported as its candidate's tile mismatch), and on a compiled module
broken one way at a time (there the driver words some generic checks itself)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from qgraph_builders import GraphBuilder
from xdsl.dialects.builtin import BytesAttr, IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Block
from xdsl.utils.exceptions import VerifyException

from vfpga.dialects import dnn, ifp, isa
from vfpga.driver import compile_graph, read_module, verify_module
from vfpga.errors import CompileError
from vfpga.isa.spec import Buffer, Opcode
from vfpga.passes.dnn_tile import layers_of

LIT = Path(__file__).parent / "filecheck" / "ifp" / "verify_errors.mlir"


def _parse(text: str, tmp_path: Path) -> ModuleOp:
    """The module of ``text``, parsed as ``vfpga compile`` reads a ``.mlir`` (unverified)."""
    path = tmp_path / "m.mlir"
    path.write_text(text)
    return read_module(path)


def _verdicts(m: ModuleOp) -> tuple[str, str]:
    """(xDSL's message, the driver's message), "" for none; the driver must raise
    exactly when xDSL does."""
    try:
        m.verify()
        want = ""
    except VerifyException as exc:
        want = str(exc)
    try:
        verify_module(m, "here")
        got = ""
    except CompileError as exc:
        got = str(exc)
    assert bool(want) == bool(got), (want, got)
    return want, got


def _chunks() -> list[str]:
    return [c for c in LIT.read_text().split("// -----") if "CHECK:" in c]


@pytest.mark.parametrize("chunk", _chunks(), ids=lambda c: c.split("CHECK: ")[1][:40])
def test_every_ifp_verifier_error_is_caught_by_the_driver(chunk: str, tmp_path: Path) -> None:
    m = _parse(chunk, tmp_path)
    expected = chunk.split("CHECK: ")[1].splitlines()[0]
    want, got = _verdicts(m)
    assert expected in want
    if "tile exceeds the layer's output" in want:  # the candidate's check comes first
        assert "(the candidate's tiles in order)" in got, got
    else:
        assert got == f"the module does not verify here: {want}"


def _first_package(m: ModuleOp) -> ifp.PackageOp:
    return layers_of(m)[-1].candidates()[0].packages()[0]


def _last_package(m: ModuleOp) -> ifp.PackageOp:
    return layers_of(m)[-1].candidates()[-1].packages()[-1]


def _set(name: str, value: object) -> Callable[[ifp.PackageOp], None]:
    def f(p: ifp.PackageOp) -> None:
        p.properties[name] = value  # type: ignore[assignment]

    return f


def _two_blocks(p: ifp.PackageOp) -> None:
    p.body.add_block(Block())
    p.body.add_block(Block())


def _code_and_ops(p: ifp.PackageOp) -> None:
    p.body.add_block(
        Block(
            [isa.fields_to_op(Opcode.SAVE, {"from": int(Buffer.OBUF), "n0": 1, "n1": 1, "n2": 1})]
        )
    )


def _bad_isa_op(p: ifp.PackageOp) -> None:
    p.set_code(None)
    p.body.add_block(
        Block(
            [
                isa.fields_to_op(
                    Opcode.SAVE, {"core": 1, "from": int(Buffer.OBUF), "n0": 1, "n1": 1, "n2": 1}
                )
            ]
        )
    )


BREAKS: dict[str, Callable[[ifp.PackageOp], None]] = {
    "negative latency": _set("latency", IntegerAttr(-5, 64)),
    "negative core": _set("core", IntegerAttr(-1, 64)),
    "unknown property": _set("junk", IntegerAttr(1, 64)),
    "string core": _set("core", StringAttr("x")),
    "integer code": _set("code", IntegerAttr(3, 64)),
    "code of 65 bytes": _set("code", BytesAttr(bytes(65))),
    "empty code": _set("code", BytesAttr(b"")),
    "obuf over its size": _set("obuf", IntegerAttr(1 << 30, 64)),
    "abuf over its size": _set("abuf", IntegerAttr(1 << 30, 64)),
    "tile off the candidate": _set("c1", IntegerAttr(10**6, 64)),
    "two blocks": _two_blocks,
    "code and isa ops": _code_and_ops,
    "isa op with a core": _bad_isa_op,
}


@pytest.fixture(scope="module")
def module_text() -> str:
    from io import StringIO

    from xdsl.printer import Printer

    b = GraphBuilder((8, 12, 12), seed=0)  # a conv (packages of 2 shapes) and a pool
    g = b.build([b.pool(b.conv(b.input, 16, (3, 3), 1), "max")])
    s = StringIO()
    Printer(stream=s).print_op(compile_graph(g, cores=2).module)
    return s.getvalue()


@pytest.mark.parametrize("where", [_first_package, _last_package])
@pytest.mark.parametrize("what", list(BREAKS), ids=list(BREAKS))
def test_a_broken_package_is_caught_with_the_same_message(
    module_text: str, what: str, where: Callable[[ModuleOp], ifp.PackageOp], tmp_path: Path
) -> None:
    m = _parse(module_text, tmp_path)
    assert _verdicts(m) == ("", "")
    BREAKS[what](where(m))
    want, got = _verdicts(m)
    assert want and got.startswith("the module does not verify here: ")


TILES = """
ifp.layer 0 "p" pool out 16x2x2 macs 0 {
  ifp.candidate tiles parts 2 at [0, 1, 0, 16, 0, 2, 1, 2, 0, 16, 0, 2]
}
"""


def test_a_tile_list_verified_once_is_checked_again_when_it_or_its_layer_changes(
    tmp_path: Path,
) -> None:
    m = _parse(TILES, tmp_path)
    layer = layers_of(m)[0]
    cand = layer.candidates()[0]
    good = cand.at
    assert _verdicts(m) == ("", "")
    assert _verdicts(m) == ("", "")  # the second time from the remembered verdict
    cand.at = dnn.int_array([0, 2, 0, 16, 0, 2, 1, 2, 0, 16, 0, 2])  # overlapping tiles
    assert "tiles 0 and 1 overlap" in _verdicts(m)[1]
    cand.at = good
    layer.out = dnn.int_array([16, 2, 3])  # the same tiles no longer cover the output
    assert "the tiles cover 64 of the output's 96 elements" in _verdicts(m)[1]


def _cand_set(name: str, value: object) -> Callable[[ifp.CandidateOp], None]:
    def f(c: ifp.CandidateOp) -> None:
        c.properties[name] = value  # type: ignore[assignment]

    return f


def _cand_drop(name: str) -> Callable[[ifp.CandidateOp], None]:
    def f(c: ifp.CandidateOp) -> None:
        del c.properties[name]

    return f


def _cand_second_block(c: ifp.CandidateOp) -> None:
    c.body.add_block(Block())


CANDIDATE_BREAKS: dict[str, Callable[[ifp.CandidateOp], None]] = {
    "unknown property": _cand_set("junk", IntegerAttr(1, 64)),
    "integer axis": _cand_set("axis", IntegerAttr(1, 64)),
    "string parts": _cand_set("parts", StringAttr("2")),
    "no at": _cand_drop("at"),
    "no parts": _cand_drop("parts"),
    "string makespan": _cand_set("makespan", StringAttr("9")),
    "a second block": _cand_second_block,
    "at off the layer": _cand_set("at", dnn.int_array([0, 1])),
}


@pytest.mark.parametrize("what", list(CANDIDATE_BREAKS), ids=list(CANDIDATE_BREAKS))
def test_a_broken_candidate_is_caught_with_the_same_message(
    module_text: str, what: str, tmp_path: Path
) -> None:
    m = _parse(module_text, tmp_path)
    CANDIDATE_BREAKS[what](layers_of(m)[-1].candidates()[-1])
    want, got = _verdicts(m)
    if what == "a second block":  # xDSL reports the packages' block first
        assert want and got.endswith("'ifp.candidate' does not contain single-block regions")
    else:
        assert want and got == f"the module does not verify here: {want}"


def test_a_discardable_attribute_on_a_candidate_is_allowed(
    module_text: str, tmp_path: Path
) -> None:
    m = _parse(module_text, tmp_path)
    layers_of(m)[0].candidates()[0].attributes["note"] = StringAttr("mine")
    assert _verdicts(m) == ("", "")
