"""The CONV ``fsum`` arithmetic (ISA version 5, :mod:`vfpga.isa.float_conv`) against
onnxruntime's ``DequantizeLinear -> ConvTranspose -> QuantizeLinear``.

onnxruntime runs the chain in float32 (an MLAS SGEMM with FMA chains over the input
channels in blocks of 128, col2im adding the kernel taps, then the bias): the module must
reproduce every code, for overlapping kernels (tap order), more than 128 input channels
(K blocks), pads and output padding, per-channel weight scales, on 1 and 2 threads.
"""

from __future__ import annotations

from pathlib import Path

import isa_reference as ref
import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as oh

from vfpga.emulator.float_conv import check_fsum_fields, fsum_conv_insn
from vfpga.isa.float_conv import fsum_conv
from vfpga.isa.spec import PARAM_RECORD_DTYPE

#: (in_c, out_c, h, w, kernel, stride, pad, output_padding)
CASES = [
    (16, 8, 6, 5, 2, 2, 0, 0),
    (20, 6, 5, 5, 3, 2, 1, 1),
    (12, 5, 5, 4, 4, 2, 1, 0),
    (9, 4, 6, 6, 3, 1, 1, 0),
    (200, 8, 4, 3, 2, 2, 0, 0),
    (300, 4, 3, 3, 3, 2, 1, 1),
]


def qdq_convt(
    ci: int, co: int, h: int, w: int, k: int, s: int, p: int, op: int, rng: np.random.Generator
) -> tuple[onnx.ModelProto, dict]:
    """``uint8 -> DQ -> ConvTranspose(DQ(int8 w per channel), DQ(int32 bias)) -> Q``, with
    the quantities the CONV needs."""
    s_in, z_in = np.float32(rng.uniform(0.01, 0.1)), int(rng.integers(0, 60))
    s_w = rng.uniform(0.002, 0.01, co).astype(np.float32)
    s_out, z_out = np.float32(rng.uniform(0.05, 0.3)), int(rng.integers(100, 150))
    wq = rng.integers(-127, 128, (ci, co, k, k)).astype(np.int8)
    s_b = (s_in * s_w).astype(np.float32)
    bq = rng.integers(-3000, 3000, co).astype(np.int32)
    inits = [
        oh.make_tensor("si", TensorProto.FLOAT, [], [s_in]),
        oh.make_tensor("zi", TensorProto.UINT8, [], [z_in]),
        oh.make_tensor("wq", TensorProto.INT8, wq.shape, wq.ravel().tolist()),
        oh.make_tensor("sw", TensorProto.FLOAT, [co], s_w.tolist()),
        oh.make_tensor("zw", TensorProto.INT8, [co], [0] * co),
        oh.make_tensor("bq", TensorProto.INT32, [co], bq.tolist()),
        oh.make_tensor("sb", TensorProto.FLOAT, [co], s_b.tolist()),
        oh.make_tensor("zb", TensorProto.INT32, [co], [0] * co),
        oh.make_tensor("so", TensorProto.FLOAT, [], [s_out]),
        oh.make_tensor("zo", TensorProto.UINT8, [], [z_out]),
    ]
    nodes = [
        oh.make_node("DequantizeLinear", ["x", "si", "zi"], ["xf"]),
        oh.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wf"], axis=1),
        oh.make_node("DequantizeLinear", ["bq", "sb", "zb"], ["bf"], axis=0),
        oh.make_node(
            "ConvTranspose",
            ["xf", "wf", "bf"],
            ["yf"],
            kernel_shape=[k, k],
            strides=[s, s],
            pads=[p] * 4,
            output_padding=[op] * 2,
        ),
        oh.make_node("QuantizeLinear", ["yf", "so", "zo"], ["y"]),
    ]
    g = oh.make_graph(
        nodes,
        "convt",
        [oh.make_tensor_value_info("x", TensorProto.UINT8, [1, ci, h, w])],
        [oh.make_tensor_value_info("y", TensorProto.UINT8, None)],
        inits,
    )
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])
    m.ir_version = 8
    # the CONV form: kernel flipped, channels swapped, pads k-1-p (+ op after), ups = s
    conv = dict(
        w=np.ascontiguousarray(wq.transpose(1, 2, 3, 0)[:, ::-1, ::-1, :]),
        in_scale=float(s_in),
        scale=s_w,
        bias=bq,
        divisor=np.full(co, s_out),
        pad_value=z_in - 128,
        out_zp=z_out - 128,
        stride=(1, 1),
        pads=(k - 1 - p, k - 1 - p + op, k - 1 - p, k - 1 - p + op),
        ups=(s, s),
    )
    return m, conv


def _ort(model: onnx.ModelProto, x: np.ndarray, threads: int) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("case", CASES, ids=[f"c{c[0]}k{c[4]}s{c[5]}p{c[6]}" for c in CASES])
def test_fsum_conv_equals_onnxruntime(case: tuple[int, ...]) -> None:
    """Every code of ORT's float32 ConvTranspose chain, with and without a saturating
    output scale, on one and two threads."""
    ci, co, h, w, k, s, p, op = case
    rng = np.random.default_rng(sum(case))
    model, conv = qdq_convt(ci, co, h, w, k, s, p, op, rng)
    for trial in range(3):
        x = rng.integers(0, 256, (1, ci, h, w)).astype(np.uint8)
        want = _ort(model, x, threads=1 + trial % 2)[0]  # [co][oh][ow] uint8
        xi = (x[0].astype(np.int16) - 128).astype(np.int8).transpose(1, 2, 0)
        got = fsum_conv(np.ascontiguousarray(xi), **conv)  # [oh][ow][co] int8
        np.testing.assert_array_equal(got.astype(np.int16) + 128, want.transpose(1, 2, 0))
        # the numpy path (no numba) computes the same codes
        slow = fsum_conv(np.ascontiguousarray(xi), **conv, use_compiled=False)
        np.testing.assert_array_equal(slow, got)


def test_fsum_harness_can_fail() -> None:
    """The comparison above can fail: a unet-sized layer equals ORT, and the same layer
    with a different bias does not."""
    rng = np.random.default_rng(7)
    model, conv = qdq_convt(64, 32, 8, 8, 2, 2, 0, 0, rng)
    x = rng.integers(0, 256, (1, 64, 8, 8)).astype(np.uint8)
    xi = np.ascontiguousarray((x[0].astype(np.int16) - 128).astype(np.int8).transpose(1, 2, 0))
    base = fsum_conv(xi, **conv)
    np.testing.assert_array_equal(
        base.astype(np.int16) + 128, _ort(model, x, 1)[0].transpose(1, 2, 0)
    )
    moved = fsum_conv(xi, **{**conv, "bias": conv["bias"] + 4000})
    assert np.any(moved != base)


# ------------------------------------------------------------------ the instruction


def _fields(**kw: int | float) -> dict:
    f = dict(
        in_h=0,
        in_w=0,
        in_c=0,
        out_c=0,
        groups=1,
        kh=0,
        kw=0,
        stride_h=1,
        stride_w=1,
        pad_t=0,
        pad_b=0,
        pad_l=0,
        pad_r=0,
        pad_value=0,
        out_zp=0,
        act=0,
        act_lo=-128,
        act_hi=127,
        dil_h=0,
        dil_w=0,
        ups_h=0,
        ups_w=0,
        fsum=1,
        acc_in=0,
        acc_out=0,
        in_scale=0.05,
    )
    f.update(kw)
    return f


def _records(rng: np.random.Generator, oc: int) -> np.ndarray:
    rec = np.zeros(oc, PARAM_RECORD_DTYPE)
    rec["bias"] = rng.integers(-5000, 5000, oc)
    rec["scale"] = rng.uniform(0.002, 0.01, oc).astype(np.float32)
    rec["divisor"] = np.float32(0.11)
    return rec


@pytest.mark.parametrize(
    "geo",
    [
        dict(kh=2, kw=2, ups_h=2, ups_w=2, pad_t=1, pad_b=1, pad_l=1, pad_r=1),
        dict(kh=3, kw=3, ups_h=2, ups_w=2, pad_t=1, pad_b=2, pad_l=1, pad_r=2, act=1, act_lo=-20),
        dict(kh=4, kw=3, ups_h=3, ups_w=2, pad_t=2, pad_b=0, pad_l=1, pad_r=1, stride_h=2),
        dict(kh=3, kw=3, dil_h=2, dil_w=1, pad_t=2, pad_b=2, pad_l=1, pad_r=1, act=3),
    ],
    ids=["k2s2", "k3s2op1-relu", "k4x3-ups3x2-stride2", "dilated-table"],
)
@pytest.mark.parametrize("in_c", [5, 130])
def test_kernel_equals_the_independent_reference(geo: dict, in_c: int) -> None:
    """The emulator's kernel (word fields, records, activation table) equals the scalar
    exact-rational reference of tests/isa_reference.py, with two channel blocks too."""
    rng = np.random.default_rng(in_c + len(geo))
    h, w, oc = 3, 4, 3
    f = _fields(in_h=h, in_w=w, in_c=in_c, out_c=oc, pad_value=-7, out_zp=5, **geo)
    x = rng.integers(-128, 128, (h, w, in_c)).astype(np.int8)
    wq = rng.integers(-127, 128, (oc, f["kh"], f["kw"], in_c)).astype(np.int8)
    rec = _records(rng, oc)
    table = rng.integers(-128, 128, 256).astype(np.int8)
    praw = np.frombuffer(rec.tobytes() + (table.tobytes() if f["act"] == 3 else b""), np.uint8)
    got = fsum_conv_insn(x, wq, praw, f)
    want = ref.fsum_conv(x, wq, rec, f, table if f["act"] == 3 else None)
    np.testing.assert_array_equal(got, want)


def test_compiled_and_numpy_sums_agree_on_float32_values() -> None:
    """The compiled tap sums (llvm.fma) and the numpy ones (exact fma_f32) give the same
    float32 sums bit for bit, on random values of many magnitudes (ties and cancellations
    included), so the codes cannot differ either."""
    from vfpga.isa.float_conv import _kernel, _sums_numpy

    sums = _kernel()
    if sums is None:
        # numba is a declared dependency, so this never skips in CI; without it the
        # emulator has only the numpy path, which the other tests here check
        pytest.skip("numba unavailable: the compiled tap sums do not exist to compare; "
                    "the numpy path is tested by the other cases")
    rng = np.random.default_rng(11)
    for in_c in (3, 200):
        xf = (
            rng.standard_normal((4, 5, in_c)) * 2.0 ** rng.integers(-20, 20, (4, 5, in_c))
        ).astype(np.float32)
        wt = (
            rng.standard_normal((2, 3, in_c, 6)) * 2.0 ** rng.integers(-20, 20, (2, 3, in_c, 6))
        ).astype(np.float32)
        ridx = np.array([[0, 1, 2, 3], [1, 2, 3, 3]])
        rreal = np.array([[True, True, False, True], [True, True, True, False]])
        cidx = np.array([[0, 1, 2, 4], [1, 1, 3, 4], [0, 2, 4, 4]])
        creal = np.array(
            [[True, True, True, True], [False, True, True, True], [True, True, True, False]]
        )
        a = np.zeros((4, 4, 6), np.float32)
        b = np.zeros((4, 4, 6), np.float32)
        sums(xf, wt, ridx, rreal, cidx, creal, 128, a)
        _sums_numpy(xf, wt, ridx, rreal, cidx, creal, 128, b)
        np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))


@pytest.mark.parametrize(
    "bad, msg",
    [
        (dict(acc_in=1), "cannot chain partial sums"),
        (dict(acc_out=1), "cannot chain partial sums"),
        (dict(groups=2, in_c=2, out_c=2), "fsum needs groups=1"),
        (dict(in_scale=float("inf")), "invalid in_scale=inf"),
        (dict(in_scale=0.0), "invalid in_scale=0.0"),
        (dict(fsum=0), r"in_scale=0.05 is set without fsum"),
    ],
)
def test_invalid_fsum_words_are_refused(bad: dict, msg: str) -> None:
    """A word the fsum CONV cannot run is refused with the reason (the emulator turns
    the ValueError into a fault naming the instruction)."""
    f = _fields(in_h=2, in_w=2, in_c=1, out_c=1, kh=1, kw=1) | bad
    with pytest.raises(ValueError, match=msg):
        check_fsum_fields(f)


def test_invalid_records_are_refused() -> None:
    rng = np.random.default_rng(0)
    f = _fields(in_h=2, in_w=2, in_c=1, out_c=2, kh=1, kw=1)
    x = np.zeros((2, 2, 1), np.int8)
    wq = np.ones((2, 1, 1, 1), np.int8)
    rec = _records(rng, 2)
    rec["divisor"][1] = 0.0
    with pytest.raises(ValueError, match=r"divisor=0\.0 in the record of output channel 1"):
        fsum_conv_insn(x, wq, np.frombuffer(rec.tobytes(), np.uint8), f)
    rec = _records(rng, 2)
    rec["scale"][0] = np.nan
    with pytest.raises(ValueError, match=r"scale=nan in the record of output channel 0"):
        fsum_conv_insn(x, wq, np.frombuffer(rec.tobytes(), np.uint8), f)


# ------------------------------------------------------------------ end to end


def test_conv_transposes_compile_to_fsum_words() -> None:
    """The three ConvTranspose shapes of U-Nets / FPNs lower to fsum CONVs (the nearest
    2x upsampling, a depthwise CONV of ones, stays an integer one); their words carry the
    flag and the input scale; the emulator equals the reference at every layer on 1 and 3
    cores, and the reference equals onnxruntime on every code of 10 inputs."""
    from test_spatial_ops import CT, HW, _onnx

    from vfpga import flow
    from vfpga.driver import compile_graph
    from vfpga.frontend.pipeline import load_model
    from vfpga.frontend.qgraph import QConv
    from vfpga.isa.codec import decode
    from vfpga.isa.spec import Opcode
    from vfpga.reference.compare import compare_with_ort, random_inputs

    lm = load_model(_onnx(None, CT, size=6), num_random=4)
    convs = [n for n in lm.graph.nodes if isinstance(n, QConv)]
    fs = [n.fsum_in_scale is not None for n in convs]
    assert fs == [False, False, False, True, True, True]
    cmp = compare_with_ort(
        lm.graph, lm.qdq, random_inputs(lm.qdq, 10, seed=3), onnx_int8=lm.lowered.onnx_int8
    )
    assert cmp.identical_int8 == 1.0
    x = random_inputs(lm.qdq, 1, seed=5)[0]
    for cores in (1, 3):
        res = compile_graph(lm.graph, HW, cores)
        rep = flow.check_one(res, HW, x)
        assert all(lc.identical == 1.0 for lc in rep.layers) and rep.outputs_equal
        words = decode(res.vfb.text).by_op[Opcode.CONV]
        flag = np.asarray(words["flags"]) & 0x10
        assert np.array_equal(flag != 0, np.asarray(words["in_scale"]) != 0)
        assert flag.any() and not flag.all()
        scales = {float(np.float32(n.fsum_in_scale)) for n in convs if n.fsum_in_scale}
        assert set(np.asarray(words["in_scale"])[flag != 0].tolist()) <= scales


def test_conv_transpose_of_a_1x1_map_sums_integers() -> None:
    """On a 1x1 input map onnxruntime's SGEMM takes its matrix-vector kernel, whose
    summation order fsum does not describe: that ConvTranspose keeps the exact integer
    sums (ISA version 3)."""
    from vfpga.frontend.pipeline import load_model
    from vfpga.frontend.qgraph import QConv

    rng = np.random.default_rng(1)
    w = onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), "w")
    b = onnx.numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    g = oh.make_graph(
        [
            oh.make_node(
                "ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[2, 2], strides=[2, 2]
            )
        ],
        "ct1",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 1, 1])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2])],
        [w, b],
    )
    lm = load_model(oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]), num_random=4)
    convs = [n for n in lm.graph.nodes if isinstance(n, QConv)]
    assert convs and all(n.fsum_in_scale is None for n in convs)


# ------------------------------------------------------------------ from the CLI


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from vfpga.cli.main import cli

    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in res.output
    return res


def _fp32_convt_model(path: Path) -> Path:
    """fp32 ``Conv -> Relu -> ConvTranspose(k3 s2 p1 op1) -> Relu -> ConvTranspose(k2 s2)``."""
    rng = np.random.default_rng(4)

    def init(name: str, shape: tuple[int, ...], s: float) -> onnx.TensorProto:
        return onnx.numpy_helper.from_array(
            (rng.standard_normal(shape) * s).astype(np.float32), name
        )

    inits = [
        init("w1", (8, 3, 3, 3), 0.3),
        init("b1", (8,), 0.1),
        init("wt1", (8, 6, 3, 3), 0.3),
        init("bt1", (6,), 0.1),
        init("wt2", (6, 4, 2, 2), 0.3),
        init("bt2", (4,), 0.1),
    ]
    nodes = [
        oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        oh.make_node(
            "ConvTranspose",
            ["r1", "wt1", "bt1"],
            ["t1"],
            name="up1",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            output_padding=[1, 1],
        ),
        oh.make_node("Relu", ["t1"], ["r2"], name="relu2"),
        oh.make_node(
            "ConvTranspose",
            ["r2", "wt2", "bt2"],
            ["y"],
            name="up2",
            kernel_shape=[2, 2],
            strides=[2, 2],
        ),
    ]
    g = oh.make_graph(
        nodes,
        "convt",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32])],
        inits,
    )
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_cli_compile_check_objdump_asm_and_hostile_words(tmp_path: Path) -> None:
    """``vfpga compile --strict`` puts both ConvTransposes on the accelerator, ``vfpga
    check`` passes on 1 and 4 cores with every int8 output identical to onnxruntime, the
    disassembly shows the fsum words and assembles back to the same bytes; a word whose
    fsum fields are invalid fails the run with one error naming the instruction."""
    model = _fp32_convt_model(tmp_path / "m.onnx")
    out = tmp_path / "m.vfb"
    res = _invoke("compile", str(model), "-o", str(out), "--strict")
    assert res.exit_code == 0, res.output
    for cores in ("1", "4"):
        res = _invoke("check", str(model), "--cores", cores)
        assert res.exit_code == 0, res.output
        assert "check passed" in res.output and "identical int8 outputs 100.00%" in res.output
    res = _invoke("objdump", str(out), "-s")
    assert res.exit_code == 0
    text = res.output
    assert text.count("fsum=1") >= 2 and "in_scale=" in text
    (tmp_path / "m.s").write_text(text)
    assert _invoke("asm", str(tmp_path / "m.s"), "-o", str(tmp_path / "again.vfb")).exit_code == 0
    assert (tmp_path / "again.vfb").read_bytes() == out.read_bytes()
    for old, new, message in [
        ("fsum=1", "fsum=0", "is set without fsum (it must be 0)"),
        ("acc_out=0 fsum=1", "acc_out=1 fsum=1", "cannot chain partial sums"),
    ]:
        (tmp_path / "bad.s").write_text(text.replace(old, new, 1))
        assert (
            _invoke("asm", str(tmp_path / "bad.s"), "-o", str(tmp_path / "bad.vfb")).exit_code == 0
        )
        res = _invoke("run", str(tmp_path / "bad.vfb"), "-o", str(tmp_path / "y.npy"))
        assert res.exit_code == 2 and not (tmp_path / "y.npy").exists()
        (err,) = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert "CONV" in err and message in err, err
