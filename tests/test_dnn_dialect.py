"""Tests of the ``dnn`` dialect, QGraph <-> IR conversion, the xDSL plugin, ``vfpga-opt``,
the ``dnn-annotate-placement`` pass and ``vfpga import``."""

from __future__ import annotations

import math
import sys
import time
import types
from dataclasses import fields, is_dataclass
from io import StringIO
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from qgraph_builders import GraphBuilder
from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, Builtin, ModuleOp, StringAttr
from xdsl.ir import Block
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from vfpga.backend.binary import to_bytes
from vfpga.compiler.plan import plan_memory
from vfpga.dialects import dnn
from vfpga.dialects.dnn_convert import (
    DnnConversionError,
    module_to_qgraph,
    qgraph_to_module,
)
from vfpga.driver import compile_graph, compile_module, default_pipeline
from vfpga.errors import FrontendError
from vfpga.frontend.qgraph import (
    Act,
    QAdd,
    QConcat,
    QConv,
    QGraph,
    QHostOp,
    QPool,
    QShuffle,
    QTensor,
    shuffle_perm,
)
from vfpga.hw.config import load_hw
from vfpga.passes.dnn_annotate_placement import DnnAnnotatePlacementPass, summarize_placement
from vfpga.passes.dnn_plan_memory import NOTES_ATTR, DnnPlanMemoryPass, plan_from_module
from vfpga.quant.inputs import ImagePrep

# ----------------------------------------------------------------------------- helpers


def assert_same(a: object, b: object, path: str = "g") -> None:
    """Deep equality: every dataclass field, dict entry (any order, like dict ==), list
    item; arrays byte-equal with the same dtype and shape; scalars of the same type."""
    if is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
        for f in fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{path}: not an array"
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{path}: {a.dtype}{a.shape}"
        assert a.tobytes() == b.tobytes(), f"{path}: bytes differ"
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


def ctx() -> Context:
    c = Context()
    c.load_dialect(Builtin)
    c.load_dialect(dnn.Dnn)
    return c


def text_of(m: ModuleOp) -> str:
    out = StringIO()
    Printer(stream=out).print_op(m)
    return out.getvalue()


def parse(text: str) -> ModuleOp:
    return Parser(ctx(), text).parse_module()


def small_graph() -> QGraph:
    """One node of every kind (a channel shuffle after the depthwise conv), odd tensor
    names, every host-attribute kind, a reshape."""
    rng = np.random.default_rng(1)

    def t(n: str, s: tuple[int, ...], sc: float = 0.05, zp: int = -3) -> QTensor:
        return QTensor(n, s, sc, zp)

    tensors = [
        t("input.1", (1, 3, 8, 8), 0.0186, -14),
        t("/c1/out:0", (1, 4, 4, 4)),
        t("dw", (1, 4, 2, 2)),
        t("sh", (1, 4, 2, 2)),
        t("p1", (1, 4, 2, 2)),
        t("p2", (1, 4, 2, 2)),
        t("a1", (1, 4, 2, 2), 0.1 + 0.2, 0),
        t("cat", (1, 8, 2, 2), 0.1 + 0.2, 0),
        t("gap", (1, 8, 1, 1), 1e-20, 127),
        t("fc", (1, 10, 1, 1), 1e-05, 3),
        t("0", (1, 10, 1, 1), 1 / 256, -128),
    ]
    i32 = np.int32
    nodes = [
        QConv(
            "conv1",
            "input.1",
            "/c1/out:0",
            rng.integers(-128, 128, (4, 3, 3, 3), dtype=np.int8),
            np.array([-2, -1, 0, 1 << 30], i32),
            np.array([0, 1, (1 << 31) - 1, 12345], i32),
            np.array([0, 62, 31, 7], i32),
            (2, 2),
            (1, 1, 1, 1),
            1,
            Act("relu", -3, 127),
        ),
        QConv(
            "dw",
            "/c1/out:0",
            "dw",
            np.full((4, 1, 3, 3), -7, np.int8),
            np.zeros(4, i32),
            np.ones(4, i32),
            np.ones(4, i32),
            (2, 2),
            (1, 1, 0, 0),
            groups=4,
            divisor=float(np.float32(0.0235)),
        ),
        QShuffle("shuffle", "dw", "sh", 2),
        QPool("pool1", "sh", "p1", "max"),
        QPool("pool2", "/c1/out:0", "p2", "avg", (3, 3), (2, 2), (1, 1, 1, 1), True),
        QAdd("add", "p1", "p2", "a1", 1 << 20, 3 << 19, 21, Act("relu6", 0, 60)),
        QConcat("", ["a1", "a1"], "cat"),
        QPool("gap", "cat", "gap", "global_avg", (2, 2)),
        QConv(
            "fc",
            "gap",
            "fc",
            rng.integers(-128, 128, (10, 8, 1, 1), dtype=np.int8),
            np.arange(10, dtype=i32),
            np.arange(10, dtype=i32) * 1000,
            np.arange(10, dtype=i32),
        ),
        QHostOp(
            "softmax",
            "Softmax",
            ["fc"],
            "0",
            {
                "axis": 1,
                "neg": -(1 << 62),
                "f": 0.1,
                "ints": [1, -2],
                "floats": [0.25, 1e-9],
                "strs": ["a", "b"],
                "flag": True,
                "empty": [],
                "name": 'x"y\n',
                "tensor": np.arange(6, dtype=np.float32).reshape(2, 3),
            },
            output_float=True,
        ),
    ]
    return QGraph(
        "torch-jit-export",
        ["input.1"],
        ["fc", "0"],
        {x.name: x for x in tensors},
        nodes,
        {"0": (1, 10)},
    )


def chain_graph(n: int, c: int) -> QGraph:
    """``n`` 3x3 convolutions of ``c`` channels on 14x14 (n*c*c*9 weight bytes)."""
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (n, c, c, 3, 3), dtype=np.int8)
    tensors = {"x": QTensor("x", (1, c, 14, 14), 0.1, 0)}
    nodes: list[QConv] = []
    prev = "x"
    for i in range(n):
        out = f"t{i}"
        tensors[out] = QTensor(out, (1, c, 14, 14), 0.1, 0)
        nodes.append(
            QConv(
                f"conv{i}",
                prev,
                out,
                w[i],
                rng.integers(-1000, 1000, c).astype(np.int32),
                rng.integers(0, 1 << 31, c).astype(np.int32),
                rng.integers(20, 40, c).astype(np.int32),
                pads=(1, 1, 1, 1),
                act=Act("relu", 0, 127),
            )
        )
        prev = out
    return QGraph("chain", ["x"], [prev], tensors, list(nodes))


# ------------------------------------------------------------------------- conversion


def test_roundtrip_qgraph_module_qgraph() -> None:
    g = small_graph()
    m = qgraph_to_module(g)
    m.verify()
    assert_same(g, module_to_qgraph(m))


def test_roundtrip_through_text_is_exact_and_canonical() -> None:
    g = small_graph()
    text = text_of(qgraph_to_module(g))
    m2 = parse(text)
    m2.verify()
    assert text_of(m2) == text
    assert_same(g, module_to_qgraph(m2))
    # generic format round trip too
    out = StringIO()
    Printer(stream=out, print_generic_format=True).print_op(m2)
    assert text_of(parse(out.getvalue())) == text


def test_weights_are_hex_or_splat_never_lists() -> None:
    text = text_of(qgraph_to_module(small_graph()))
    assert 'weight 4x3x3x3 "0x' in text
    assert "weight 4x1x3x3 splat -7" in text
    assert not [ln for ln in text.splitlines() if "dnn.conv" in ln and "dense<" in ln]


def test_readonly_views_share_ir_bytes() -> None:
    m = qgraph_to_module(small_graph())
    conv = next(op for op in m.walk() if isinstance(op, dnn.ConvOp))
    w = conv.weight_array()
    assert w.dtype == np.int8 and w.shape == (4, 3, 3, 3)
    with pytest.raises(ValueError):
        w[0, 0, 0, 0] = 1


def test_ssa_names_follow_valid_tensor_names() -> None:
    text = text_of(qgraph_to_module(small_graph()))
    assert '%input.1: !dnn.qtensor<1x3x8x8, scale = 0.0186, zp = -14> as "input.1"' in text
    assert '%a1 = dnn.add %p1, %p2 name "add" out "a1"' in text
    assert 'out "/c1/out:0"' in text  # not a valid SSA name: kept in the property


def test_build_speed_resnet50_sized() -> None:
    g = chain_graph(200, 118)  # 200 ops, 25.1 MB of weights
    wbytes = sum(n.weight.nbytes for n in g.nodes if isinstance(n, QConv))
    assert wbytes > 25_000_000
    t0 = time.perf_counter()
    m = qgraph_to_module(g)
    t1 = time.perf_counter()
    m.verify()
    t2 = time.perf_counter()
    back = module_to_qgraph(m)
    t3 = time.perf_counter()
    print(
        f"\n200 convs, {wbytes / 1e6:.1f} MB weights: build {1e3 * (t1 - t0):.0f} ms, "
        f"verify {1e3 * (t2 - t1):.0f} ms, to QGraph {1e3 * (t3 - t2):.0f} ms"
    )
    assert t1 - t0 < 2.0  # measured ~50 ms; generous for a loaded 2-core machine
    assert_same(g, back)


def _graph_with(nodes: list, tensors: list[QTensor], outputs: list[str]) -> QGraph:
    x = QTensor("x", (1, 4, 8, 8), 0.5, 0)
    return QGraph("g", ["x"], outputs, {t.name: t for t in [x, *tensors]}, nodes)


def _conv(name: str, inp: str, out: str, **kw: object) -> QConv:
    args: dict[str, object] = dict(
        weight=np.ones((2, 4, 1, 1), np.int8),
        bias=np.zeros(2, np.int32),
        multiplier=np.ones(2, np.int32),
        shift=np.ones(2, np.int32),
    )
    args.update(kw)
    return QConv(name, inp, out, **args)  # type: ignore[arg-type]


Y = QTensor("y", (1, 2, 8, 8), 0.5, 0)


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (_graph_with([_conv("c", "nope", "y")], [Y], ["y"]), "tensor 'nope' is not in"),
        (
            _graph_with(
                [_conv("c", "z", "y"), QHostOp("h", "Relu", ["x"], "z")],
                [Y, QTensor("z", (1, 4, 8, 8), 0.5, 0)],
                ["y"],
            ),
            "input tensor 'z' is used before it is defined",
        ),
        (
            _graph_with([_conv("c", "x", "y")], [Y, QTensor("junk", (1,), 1.0, 0)], ["y"]),
            "tensors ['junk'] are neither graph inputs nor node outputs",
        ),
        (
            _graph_with([_conv("c", "x", "y"), _conv("d", "x", "y")], [Y], ["y"]),
            "node 'd' (QConv): tensor 'y' is defined twice",
        ),
        (
            _graph_with([_conv("c", "x", "y", bias=np.array([0, 1 << 40]))], [Y], ["y"]),
            "node 'c' (QConv): c: bias has values outside int32",
        ),
        (
            _graph_with([QHostOp("h", "Foo", ["x"], "y", {"bad": {1: 2}})], [Y], ["y"]),
            "node 'h' (QHostOp) attribute 'bad': attribute of type dict is not supported",
        ),
        (
            _graph_with([QHostOp("h", "Foo", ["x"], "y", {"mix": [1, "a"]})], [Y], ["y"]),
            "list attribute must hold only ints, only floats or only strings",
        ),
    ],
)
def test_conversion_errors_name_the_node(graph: QGraph, message: str) -> None:
    with pytest.raises(DnnConversionError) as exc:
        qgraph_to_module(graph)
    assert message in str(exc.value)


def test_conversion_error_output_shapes_not_outputs() -> None:
    g = _graph_with([_conv("c", "x", "y")], [Y], ["y"])
    g.output_shapes = {"x": (1, 256)}
    with pytest.raises(DnnConversionError, match="not graph outputs"):
        qgraph_to_module(g)


def test_module_to_qgraph_needs_one_graph() -> None:
    with pytest.raises(DnnConversionError, match=r"exactly one dnn\.graph"):
        module_to_qgraph(ModuleOp([]))


# ----------------------------------------------------------------------- verification


def test_verifier_names_op_and_problem() -> None:
    g = _graph_with([_conv("conv7", "x", "y", weight=np.ones((2, 3, 1, 1), np.int8))], [Y], ["y"])
    m = qgraph_to_module(g)
    with pytest.raises(VerifyException, match=r'dnn\.conv "conv7": input has 4 channels'):
        m.verify()


def test_verifier_multiplier_and_shift_ranges() -> None:
    g = _graph_with([_conv("c", "x", "y", shift=np.array([1, 63], np.int32))], [Y], ["y"])
    with pytest.raises(VerifyException, match=r"shift\[1\] = 63 is outside \[0, 62\]"):
        qgraph_to_module(g).verify()
    g = _graph_with([_conv("c", "x", "y", multiplier=np.array([-1, 1], np.int32))], [Y], ["y"])
    with pytest.raises(VerifyException, match=r"multiplier\[0\] = -1 is outside \[0, 2\*\*31\)"):
        qgraph_to_module(g).verify()


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan, 0.1, 1e300])
def test_conversion_rejects_a_divisor_that_is_not_a_positive_float32(bad: float) -> None:
    g = _graph_with([_conv("c", "x", "y", divisor=bad)], [Y], ["y"])
    with pytest.raises(DnnConversionError, match=r"node 'c' \(QConv\): divisor .* float32"):
        qgraph_to_module(g)


def test_verifier_divisor() -> None:
    from xdsl.dialects.builtin import Float64Type, FloatAttr

    g = _graph_with([_conv("c", "x", "y", divisor=0.5)], [Y], ["y"])
    m = qgraph_to_module(g)
    m.verify()
    conv = next(op for op in m.walk() if isinstance(op, dnn.ConvOp))
    assert conv.divisor_value == 0.5 and "divisor 0.5 " in text_of(m)
    conv.properties["divisor"] = FloatAttr(-0.5, dnn.Float32Type())
    with pytest.raises(VerifyException, match=r'dnn\.conv "c": divisor must be finite and > 0'):
        m.verify()
    conv.properties["divisor"] = FloatAttr(math.inf, dnn.Float32Type())
    with pytest.raises(VerifyException, match="divisor must be finite and > 0, got inf"):
        m.verify()
    conv.properties["divisor"] = FloatAttr(2.0, Float64Type())
    with pytest.raises(VerifyException, match="divisor must be an f32 value"):
        m.verify()
    del conv.properties["divisor"]
    m.verify()
    assert conv.divisor_value == 1.0 and "divisor" not in text_of(m)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 0x7F7FFFFF))
def test_divisor_text_roundtrips_exactly(bits: int) -> None:
    """Every positive finite float32 prints as text that parses back to the same value."""
    d = float(np.array([bits], np.uint32).view(np.float32)[0])
    g = _graph_with([_conv("c", "x", "y", divisor=d)], [Y], ["y"])
    back = module_to_qgraph(parse(text_of(qgraph_to_module(g))))
    assert isinstance(back.nodes[0], QConv)
    assert back.nodes[0].divisor == d


def test_format_f32_is_short_and_exact() -> None:
    assert dnn.format_f32(float(np.float32(0.1))) == "0.1"
    assert dnn.format_f32(3.0) == "3.0"
    assert dnn.format_f32(float(np.float32(1e-40))) == "1.0e-40"
    for v in (float(np.float32(0.0235)), 2.0**-149, float(np.finfo(np.float32).max)):
        assert float(np.float32(float(dnn.format_f32(v)))) == v


def test_qtensor_type_rejects_bad_quantization() -> None:
    with pytest.raises(VerifyException, match="zero point"):
        dnn.QTensorType((1, 2), 0.5, 128)
    with pytest.raises(VerifyException, match="scale"):
        dnn.QTensorType((1, 2), math.inf, 0)
    with pytest.raises(VerifyException, match="dimension"):
        dnn.QTensorType((1, 0), 0.5, 0)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False))
def test_scale_text_roundtrips_exactly(scale: float) -> None:
    t = dnn.QTensorType((1, 3), scale, -5)
    text = f'dnn.graph @g(%x: {t} as "x") {{\n  dnn.return %x : {t}\n}}'
    m = parse(text)
    arg_t = next(op for op in m.walk() if isinstance(op, dnn.GraphOp)).block.args[0].type
    assert isinstance(arg_t, dnn.QTensorType)
    assert arg_t.scale_value == scale


# --------------------------------------------------------------------- pass & plugin


def test_annotate_placement_pass_and_summary() -> None:
    m = qgraph_to_module(small_graph())
    DnnAnnotatePlacementPass().apply(ctx(), m)
    m.verify()
    convs = [op for op in m.walk() if isinstance(op, dnn.ConvOp)]
    # conv1: 4 out channels x 4x4 outputs x 3 in channels x 3x3 kernel
    assert convs[0].attributes["macs"] == dnn.i64_attr(4 * 16 * 27)
    s = summarize_placement(m)
    assert (s.accel_ops, s.host_ops, s.host_op_names) == (9, 1, ("softmax",))
    shuffle = next(op for op in m.walk() if isinstance(op, dnn.ShuffleOp))
    assert shuffle.attributes["macs"] == dnn.i64_attr(0)
    assert shuffle.attributes["placement"] == StringAttr("accel")
    assert s.accel_macs == 4 * 16 * 27 + 4 * 4 * 9 + 10 * 8
    # annotations survive the text round trip and leave the QGraph unchanged
    m2 = parse(text_of(m))
    assert summarize_placement(m2) == s
    assert_same(small_graph(), module_to_qgraph(m2))


def test_universe_and_entry_point() -> None:
    from xdsl.universe import Universe

    from vfpga.universe import VFPGA_UNIVERSE

    assert VFPGA_UNIVERSE.all_dialects["dnn"]() is dnn.Dnn
    assert VFPGA_UNIVERSE.all_passes["dnn-annotate-placement"]() is DnnAnnotatePlacementPass
    multi = Universe.get_multiverse()
    assert "dnn" in multi.all_dialects, "entry point missing: pip install --no-deps -e ."
    assert "dnn-annotate-placement" in multi.all_passes


def test_vfpga_opt_runs_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vfpga.cli.opt import main

    src = tmp_path / "g.mlir"
    src.write_text(text_of(qgraph_to_module(small_graph())))
    main([str(src), "-p", "dnn-annotate-placement"])
    out = capsys.readouterr().out
    assert '{placement = "host", macs = 0 : i64}' in out
    assert '{placement = "accel", macs = 1728 : i64}' in out


def test_vfpga_opt_error_exits_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vfpga.cli.opt import main

    src = tmp_path / "bad.mlir"
    g = _graph_with([_conv("conv7", "x", "y", weight=np.ones((2, 3, 1, 1), np.int8))], [Y], ["y"])
    src.write_text(text_of(qgraph_to_module(g)))
    with pytest.raises(SystemExit) as exc:
        main([str(src)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'vfpga-opt: error: dnn.conv "conv7": input has 4 channels' in err
    assert "Traceback" not in err


# -------------------------------------------------------------------- channel shuffle


@pytest.mark.parametrize(("c", "g"), [(1, 1), (6, 1), (6, 2), (6, 3), (6, 6), (240, 4), (48, 8)])
def test_shuffle_perm_is_the_reshape_transpose_reshape(c: int, g: int) -> None:
    """``ShuffleOp.perm`` == ``shuffle_perm`` == ShuffleNet's Reshape-Transpose-Reshape."""
    t = dnn.QTensorType((1, c, 2, 3), 0.5, 1)
    block = Block(arg_types=[t])
    op = dnn.ShuffleOp(block.args[0], t, name="s", out="s", groups=g)
    op.verify()
    x = np.random.default_rng(c * 10 + g).integers(-128, 128, (2, c, 2, 3), dtype=np.int8)
    onnx_like = x.reshape(2, g, c // g, 2, 3).transpose(0, 2, 1, 3, 4).reshape(2, c, 2, 3)
    assert np.array_equal(x[:, op.perm()], onnx_like)
    assert np.array_equal(op.perm(), shuffle_perm(c, g))
    assert sorted(op.perm().tolist()) == list(range(c))
    assert op.macs() == 0


def _shuffle_graph(groups: int, out_t: QTensor | None = None) -> QGraph:
    """x (1x4x8x8) -> grouped 1x1 conv "c" -> y -> shuffle "s" -> z."""
    y = QTensor("y", (1, 4, 8, 8), 0.25, 3)
    conv = _conv(
        "c",
        "x",
        "y",
        weight=np.ones((4, 2, 1, 1), np.int8),
        bias=np.zeros(4, np.int32),
        multiplier=np.ones(4, np.int32),
        shift=np.ones(4, np.int32),
        groups=2,
    )
    z = out_t or QTensor("z", (1, 4, 8, 8), 0.25, 3)
    return _graph_with([conv, QShuffle("s", "y", "z", groups)], [y, z], ["z"])


def test_shuffle_converts_both_ways_and_prints_groups() -> None:
    g = _shuffle_graph(2)
    m = qgraph_to_module(g)
    m.verify()
    text = text_of(m)
    assert 'dnn.shuffle %y name "s" out "z" groups 2 : (' in text
    back = module_to_qgraph(parse(text))
    assert_same(g, back)
    assert isinstance(back.nodes[1], QShuffle) and back.nodes[1].groups == 2


@pytest.mark.parametrize(
    ("groups", "out_t", "message"),
    [
        (3, None, r'dnn\.shuffle "s": 4 input channels are not divisible by groups 3'),
        (0, None, r'dnn\.shuffle "s": groups must be >= 1, got 0'),
        (-2, None, "groups must be >= 1"),
        (2, QTensor("z", (1, 4, 8, 8), 0.5, 3), r"result has scale 0\.5, zp 3; a shuffle keeps"),
        (2, QTensor("z", (1, 4, 8, 8), 0.25, 4), r"result has scale 0\.25, zp 4; a shuffle keeps"),
        (2, QTensor("z", (1, 4, 4, 16), 0.25, 3), r"result shape \[1, 4, 4, 16\] must equal"),
    ],
)
def test_shuffle_verifier(groups: int, out_t: QTensor | None, message: str) -> None:
    m = qgraph_to_module(_shuffle_graph(groups, out_t))
    with pytest.raises(VerifyException, match=message):
        m.verify()


def _planned(g: QGraph) -> ModuleOp:
    m = qgraph_to_module(g)
    DnnPlanMemoryPass().apply(Context(), m)
    m.verify()
    return m


def _same_places(m: ModuleOp, g: QGraph) -> None:
    """The plan read back from the IR places every tensor as the planner does, including
    which tensors are stored shuffled."""
    want = plan_memory(g)
    got = plan_from_module(m)
    assert sorted(got.places) == sorted(want.places)
    for t, p in want.places.items():
        q = got.places[t]
        fields_p = (p.offset, p.c_stride, p.shuffle, p.shuffle_c)
        assert (q.offset, q.c_stride, q.shuffle, q.shuffle_c) == fields_p, t
    assert got.consts == want.consts
    assert [n.name for n in got.graph.nodes] == [n.name for n in want.graph.nodes]


def test_plan_memory_shuffle_of_a_conv_needs_no_copy() -> None:
    g = _shuffle_graph(2)
    g.outputs = ["w"]
    g.tensors["w"] = QTensor("w", (1, 2, 8, 8), 0.5, 0)
    g.nodes.append(_conv("d", "z", "w"))
    m = _planned(g)
    ops = {op.node_name.data: op for op in m.walk() if isinstance(op, dnn.DnnNodeOp)}
    assert sorted(ops) == ["c", "d", "s"]  # no copy layer
    assert NOTES_ATTR not in m.attributes
    # the producer writes straight into the shuffle's storage
    assert ops["c"].attributes["ddr_offset"] == ops["s"].attributes["ddr_offset"]
    _same_places(m, g)
    p = plan_from_module(m).places["y"]
    assert (p.shuffle, p.shuffle_c) == (2, 4)
    assert [p.channel_pos(c) for c in range(4)] == [0, 2, 1, 3]


def test_plan_memory_copies_in_front_of_shuffles_and_rewires_them() -> None:
    """A shuffle of the graph input and one of a tensor with two readers each read a
    copy layer; the IR survives printing and a second run adds nothing."""
    g = _shuffle_graph(2)
    t = g.tensors
    t["xs"] = QTensor("xs", (1, 4, 8, 8), 0.5, 0)
    t["w"] = QTensor("w", (1, 2, 8, 8), 0.5, 0)
    t["v"] = QTensor("v", (1, 2, 8, 8), 0.5, 0)
    g.nodes += [
        QShuffle("sx", "x", "xs", 4),
        _conv("d", "xs", "w"),
        _conv("e", "y", "v", weight=np.ones((2, 4, 1, 1), np.int8)),  # y: a second reader
    ]
    g.outputs = ["z", "w", "v"]
    m = _planned(g)
    graph = next(op for op in m.walk() if isinstance(op, dnn.GraphOp))
    shuffles = {op.node_name.data: op for op in graph.node_ops() if isinstance(op, dnn.ShuffleOp)}
    copies = [op for op in graph.node_ops() if "plan_copy" in op.attributes]
    assert len(copies) == 2
    for name in ("s", "sx"):
        src = shuffles[name].input.owner
        assert isinstance(src, dnn.ConvOp) and "plan_copy" in src.attributes
        assert src.next_op is shuffles[name]
    notes = [n.data for n in cast(ArrayAttr[StringAttr], m.attributes[NOTES_ATTR]).data]
    assert len(notes) == 2 and all("channel shuffle" in n for n in notes)
    _same_places(m, g)
    text = text_of(m)
    m2 = parse(text)
    m2.verify()
    assert text_of(m2) == text
    DnnPlanMemoryPass().apply(Context(), m2)
    assert text_of(m2) == text


def test_compile_module_with_shuffles_equals_compile_graph() -> None:
    """The pipeline on a module parsed from printed IR (whose plan is read back from the
    printed attributes) emits the same binary as in process, so the shuffled SAVEs
    survive the IR."""
    b = GraphBuilder((8, 10, 10), 0)

    def shuffle(x: str, groups: int) -> str:
        y = f"{x}.shuffled"
        src = b.tensors[x]
        b.tensors[y] = QTensor(y, src.shape, src.scale, src.zero_point)
        b.nodes.append(QShuffle(f"shuffle{len(b.nodes)}", x, y, groups))
        return y

    y = shuffle(b.conv(b.input, 12, (1, 1), groups=4), 4)
    y = b.conv(y, 12, (3, 3), groups=12)
    v = b.conv(shuffle(b.input, 2), 12, (1, 1))  # a graph input: copied first
    g = b.build([b.add(y, v)])
    hw = load_hw("pool16")
    m = qgraph_to_module(g)
    DnnPlanMemoryPass().apply(Context(), m)
    m2 = parse(text_of(m))
    from vfpga.dialects import derived
    from vfpga.passes.dnn_plan_memory import DDR_SIZE_ATTR, PLAN_KEY

    assert derived.lookup(m2, PLAN_KEY, m2.attributes[DDR_SIZE_ATTR]) is None
    passes = default_pipeline("pool16", 3).replace("dnn-plan-memory,", "")
    got = compile_module(m2, hw, passes=passes).vfb
    assert to_bytes(got) == to_bytes(compile_graph(g, hw, 3).vfb)


# ---------------------------------------------------------------------- vfpga import


@pytest.fixture
def fake_frontend(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Stand-in for ``vfpga.frontend.pipeline.load_qgraph`` that records its arguments."""
    calls: dict[str, object] = {}

    def load_qgraph(path: str, **kwargs: object) -> tuple[QGraph, object]:
        calls["path"], calls["kwargs"] = path, kwargs
        if path.endswith("broken.onnx"):
            raise FrontendError(f"{path}: node 'Foo_3' (Foo): unsupported op type")
        return small_graph(), object()

    import vfpga.frontend.pipeline as real

    mod = types.ModuleType("vfpga.frontend.pipeline")
    mod.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
    mod.load_qgraph = load_qgraph  # type: ignore[attr-defined]
    mod.DEFAULT_CALIB_RANDOM = 16  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vfpga.frontend.pipeline", mod)
    return calls


def test_import_prints_ir(tmp_path: Path, fake_frontend: dict[str, object]) -> None:
    from vfpga.cli.main import cli

    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    res = CliRunner().invoke(cli, ["import", str(model), "--calib-random", "4", "--seed", "7"])
    assert res.exit_code == 0, res.output
    assert fake_frontend["kwargs"] == {"calib": "random", "num_random": 4, "calib_dir": None,
                                       "seed": 7, "input_shapes": None,
                                       "calib_method": "minmax", "image_prep": ImagePrep()}
    assert_same(small_graph(), module_to_qgraph(parse(res.stdout)))


def test_import_writes_file(tmp_path: Path, fake_frontend: dict[str, object]) -> None:
    from vfpga.cli.main import cli

    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    out = tmp_path / "m.mlir"
    res = CliRunner().invoke(cli, ["import", str(model), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert fake_frontend["kwargs"] == {"calib": "random", "num_random": 16, "calib_dir": None,
                                       "seed": 0, "input_shapes": None,
                                       "calib_method": "minmax", "image_prep": ImagePrep()}
    assert_same(small_graph(), module_to_qgraph(parse(out.read_text())))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlir", "m.onnx"]  # no temp left


def test_import_frontend_error_is_clean(tmp_path: Path, fake_frontend: dict[str, object]) -> None:
    from vfpga.cli.main import cli

    model = tmp_path / "broken.onnx"
    model.write_bytes(b"")
    out = tmp_path / "x.mlir"
    res = CliRunner().invoke(cli, ["import", str(model), "-o", str(out)])
    assert res.exit_code == 2
    assert "error: " in res.output and "node 'Foo_3' (Foo): unsupported op type" in res.output
    assert res.exc_info is not None and res.exc_info[0] is SystemExit
    assert not out.exists()


@pytest.mark.slow
def test_import_real_zoo_model(tmp_path: Path) -> None:
    """The real frontend on the onnx package's SqueezeNet: import, verify, exact round trip
    through the written text, and the placement pass finds the accelerator MACs."""
    import onnx

    from vfpga.cli.main import cli
    from vfpga.frontend.pipeline import load_qgraph

    model = Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"
    out = tmp_path / "sq.mlir"
    res = CliRunner().invoke(cli, ["import", str(model), "-o", str(out), "--calib-random", "2"])
    assert res.exit_code == 0, res.output
    m = parse(out.read_text())
    m.verify()
    g, _ = load_qgraph(str(model), num_random=2)
    assert_same(g, module_to_qgraph(m))
    DnnAnnotatePlacementPass().apply(ctx(), m)
    s = summarize_placement(m)
    assert s.accel_ops == sum(isinstance(n, QConv | QPool | QAdd | QConcat) for n in g.nodes)
    assert s.accel_macs > 300_000_000  # SqueezeNet 1.0: ~0.8 GMAC
