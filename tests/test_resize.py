"""Bilinear Resize on the accelerator (issue 14, ISA version 4, opcode 8 RESIZE).

The instruction repeats onnxruntime's float32 steps for ``DequantizeLinear ->
Resize(mode=linear) -> QuantizeLinear`` (docs/isa.md, RESIZE): the emulator's kernel must
equal onnxruntime on every code, in every coordinate mode, for integer factors and other
output sizes, with equal input and output quantization (the tie case: half-way weights)
and with different ones; and equal the independent scalar reference of
``tests/isa_reference.py`` on tiles anywhere in the map.
"""

from __future__ import annotations

from pathlib import Path

import isa_reference as ref
import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as oh

from vfpga.emulator.resize import resize as resize_kernel
from vfpga.isa.spec import CoordMode

MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
COORD = {"half_pixel": CoordMode.HALF_PIXEL, "pytorch_half_pixel": CoordMode.PYTORCH_HALF_PIXEL,
         "align_corners": CoordMode.ALIGN_CORNERS, "asymmetric": CoordMode.ASYMMETRIC}
#: (input scale, uint8 input zero point, output scale, uint8 output zero point)
SAME = (0.1, 128, 0.1, 128)
QUANTS = [SAME, (0.05, 100, 0.05, 100), (0.1, 128, 0.13, 120), (0.021, 3, 0.3, 250)]


def qdq_resize_model(c: int, h: int, w: int, out_h: int, out_w: int, mode: str,
                     quant: tuple[float, int, float, int]) -> onnx.ModelProto:
    """``uint8 -> DequantizeLinear -> Resize(linear, sizes) -> QuantizeLinear``."""
    s_in, z_in, s_out, z_out = quant
    inits = [oh.make_tensor("si", TensorProto.FLOAT, [], [s_in]),
             oh.make_tensor("zi", TensorProto.UINT8, [], [z_in]),
             oh.make_tensor("so", TensorProto.FLOAT, [], [s_out]),
             oh.make_tensor("zo", TensorProto.UINT8, [], [z_out]),
             oh.make_tensor("sz", TensorProto.INT64, [4], [1, c, out_h, out_w])]
    nodes = [oh.make_node("DequantizeLinear", ["x", "si", "zi"], ["xf"]),
             oh.make_node("Resize", ["xf", "", "", "sz"], ["yf"], mode="linear",
                          coordinate_transformation_mode=mode),
             oh.make_node("QuantizeLinear", ["yf", "so", "zo"], ["y"])]
    g = oh.make_graph(nodes, "resize",
                      [oh.make_tensor_value_info("x", TensorProto.UINT8, [1, c, h, w])],
                      [oh.make_tensor_value_info("y", TensorProto.UINT8, [1, c, out_h, out_w])],
                      inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def fields(c: int, h: int, w: int, out_h: int, out_w: int, mode: str,
           quant: tuple[float, int, float, int]) -> dict:
    """RESIZE fields of the whole map as one tile."""
    s_in, z_in, s_out, z_out = quant
    f = dict(coord=int(COORD[mode]), in_scale=float(np.float32(s_in)),
             out_scale=float(np.float32(s_out)),
             scale_h=float(np.float32(out_h) / np.float32(h)),
             scale_w=float(np.float32(out_w) / np.float32(w)), in_h=h, in_w=w, c=c,
             out_h=out_h, out_w=out_w, in_y0=0, in_x0=0, out_y0=0, out_x0=0, map_in_h=h,
             map_in_w=w, map_out_h=out_h, map_out_w=out_w, in_zp=z_in - 128,
             out_zp=z_out - 128)
    return f


def ort_run(model: onnx.ModelProto, x_u8: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x_u8})[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(8, 8, 16, 16), (4, 4, 16, 16), (4, 4, 32, 32),
                                  (8, 8, 128, 128), (5, 7, 13, 22), (9, 5, 4, 3),
                                  (6, 5, 6, 10)],
                         ids=["x2", "x4", "x8", "x16", "13x22", "down", "w-only"])
@pytest.mark.parametrize("quant", QUANTS, ids=["same", "same2", "other", "other2"])
def test_kernel_equals_onnxruntime(mode: str, size: tuple[int, int, int, int],
                                   quant: tuple[float, int, float, int]) -> None:
    """Every int8 code equals onnxruntime's, whole map, random inputs."""
    h, w, out_h, out_w = size
    c = 3
    rng = np.random.default_rng(hash((mode, size, quant)) % 2**32)
    x_u8 = rng.integers(0, 256, (1, c, h, w), dtype=np.uint8)
    want = ort_run(qdq_resize_model(c, h, w, out_h, out_w, mode, quant), x_u8)
    x = (x_u8.astype(np.int16) - 128).astype(np.int8)[0].transpose(1, 2, 0)
    got = resize_kernel(np.ascontiguousarray(x), fields(c, h, w, out_h, out_w, mode, quant))
    got_u8 = (got.astype(np.int16) + 128).astype(np.uint8).transpose(2, 0, 1)[None]
    assert np.array_equal(got_u8, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scales", [(2.5, 1.5), (0.75, 3.0)])
def test_scales_input_equals_onnxruntime(mode: str, scales: tuple[float, float]) -> None:
    """A ``scales`` input (not ``sizes``) with non-integer values: onnxruntime
    interpolates with the float32 scale itself (not out / in), and so does RESIZE."""
    c, h, w = 2, 6, 7
    out_h, out_w = int(np.float32(scales[0]) * h), int(np.float32(scales[1]) * w)
    m = qdq_resize_model(c, h, w, out_h, out_w, mode, QUANTS[2])
    res = m.graph.node[1]
    res.input[3] = ""
    res.input[2] = "sc"
    m.graph.initializer.append(oh.make_tensor("sc", TensorProto.FLOAT, [4],
                                              [1.0, 1.0, *scales]))
    x_u8 = np.random.default_rng(3).integers(0, 256, (1, c, h, w), dtype=np.uint8)
    want = ort_run(m, x_u8)
    assert want.shape == (1, c, out_h, out_w)
    f = fields(c, h, w, out_h, out_w, mode, QUANTS[2]) | dict(
        scale_h=float(np.float32(scales[0])), scale_w=float(np.float32(scales[1])))
    x = np.ascontiguousarray((x_u8.astype(np.int16) - 128).astype(np.int8)[0].transpose(1, 2, 0))
    got = resize_kernel(x, f)
    assert np.array_equal((got.astype(np.int16) + 128).transpose(2, 0, 1)[None], want)


@pytest.mark.parametrize("mode", MODES)
def test_tiles_equal_the_independent_reference(mode: str) -> None:
    """Output tiles at any offset, computed from the input rows they need, equal the
    scalar exact-rational reference and the whole map's result."""
    rng = np.random.default_rng(7)
    c, h, w, out_h, out_w = 2, 6, 5, 13, 11
    quant = (0.07, 120, 0.05, 131)
    xm = rng.integers(-128, 128, (h, w, c), dtype=np.int8)
    whole = resize_kernel(xm, fields(c, h, w, out_h, out_w, mode, quant))
    for y0, y1, x0, x1 in [(0, 4, 0, 11), (4, 9, 3, 8), (9, 13, 6, 11)]:
        f = fields(c, h, w, out_h, out_w, mode, quant)
        f.update(out_y0=y0, out_h=y1 - y0, out_x0=x0, out_w=x1 - x0)
        full_tile = resize_kernel(xm, f)
        assert np.array_equal(full_tile, whole[y0:y1, x0:x1])
        assert np.array_equal(ref.resize(xm, f), full_tile)
        # only the rows the tile reads: from the smallest to the largest source row
        rows = [r for r in range(h)
                if not np.array_equal(resize_kernel(_without_row(xm, r), f), full_tile)]
        lo, hi = min(rows), max(rows) + 1
        f.update(in_y0=lo, in_h=hi - lo)
        assert np.array_equal(resize_kernel(np.ascontiguousarray(xm[lo:hi]), f), full_tile)


def _without_row(x: np.ndarray, r: int) -> np.ndarray:
    y = x.copy()
    y[r] = np.where(y[r] == 0, 100, 0).astype(np.int8)
    return y


def test_a_tile_without_a_needed_row_is_refused() -> None:
    c, h, w = 1, 4, 4
    f = fields(c, h, w, 8, 8, "half_pixel", SAME) | dict(out_y0=4, out_h=4, in_y0=0, in_h=2)
    with pytest.raises(ValueError,
                       match=r"reads input rows 1\.\.3, the input tile holds rows 0\.\.1"):
        resize_kernel(np.zeros((2, w, c), np.int8), f)


def test_extreme_scales_saturate_without_warnings() -> None:
    """A scale so small that source coordinates overflow clamps to the map's last row; an
    input scale so large that dequantized values overflow saturates, a zero weight times
    an infinite value (NaN) counts as 0: no numpy warning escapes."""
    import warnings

    x = np.array([[[-128], [127]], [[5], [-5]]], np.int8)
    f = fields(1, 2, 2, 4, 4, "half_pixel", (1e38, 128, 1.0, 128)) | dict(scale_h=1e-30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = resize_kernel(x, f)
    assert y.shape == (4, 4, 1) and set(np.unique(y)) <= {-128, 0, 127}


@pytest.mark.parametrize(("change", "message"), [
    (dict(out_scale=0.0), "out_scale"),
    (dict(scale_h=0.0), "scale_h"),
    (dict(map_out_h=7), "extends past map_out_h"),
    (dict(c=0), "'c' = 0"),
])
def test_invalid_fields_are_refused(change: dict, message: str) -> None:
    f = fields(1, 4, 4, 8, 8, "asymmetric", SAME) | change
    with pytest.raises(ValueError, match=message):
        resize_kernel(np.zeros((4, 4, 1), np.int8), f)


# ------------------------------------------------------------------ from the user's side
def _fp32_resize_model(path, ctm: str, out_hw: tuple[int, int] = (20, 20)):  # type: ignore[no-untyped-def]
    """fp32 ``Conv -> Relu -> Resize(linear, sizes) -> Conv`` on a 3x8x8 input."""
    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
                                          * 0.3, "w1"),
             onnx.numpy_helper.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32)
                                          * 0.3, "w2"),
             onnx.numpy_helper.from_array(np.array([1, 8, *out_hw], np.int64), "sizes")]
    nodes = [oh.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Resize", ["r1", "", "", "sizes"], ["u"], name="upsample",
                          mode="linear", coordinate_transformation_mode=ctm),
             oh.make_node("Conv", ["u", "w2"], ["y"], name="conv2")]
    g = oh.make_graph(nodes, "bilinear",
                      [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                      [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, *out_hw])],
                      inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from vfpga.cli.main import cli

    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in res.output
    return res


def test_cli_compile_check_objdump_asm(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``vfpga compile`` places an align_corners resize 8x8 -> 20x20 (a non-integer
    factor) on the accelerator, ``vfpga check`` passes on 1 and 4 cores (emulator ==
    reference at every layer, reference == onnxruntime), and the disassembly names the
    RESIZE words and assembles back to the same bytes."""
    model = _fp32_resize_model(tmp_path / "m.onnx", "align_corners")
    out = tmp_path / "m.vfb"
    res = _invoke("compile", str(model), "-o", str(out), "--strict")
    assert res.exit_code == 0, res.output
    assert "1 resize" in res.output and "host CPU" in res.output
    for cores in ("1", "4"):
        res = _invoke("check", str(model), "--cores", cores)
        assert res.exit_code == 0, res.output
        assert "check passed" in res.output and "identical int8 outputs 100.00%" in res.output
    text = tmp_path / "m.s"
    res = _invoke("objdump", str(out), "-s")
    assert res.exit_code == 0
    text.write_text(res.output)
    assert "resize " in res.output and "coord=align_corners" in res.output
    assert _invoke("asm", str(text), "-o", str(tmp_path / "again.vfb")).exit_code == 0
    assert (tmp_path / "again.vfb").read_bytes() == out.read_bytes()


def test_cli_unsupported_linear_resize_goes_to_the_host_and_strict_names_it(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = _fp32_resize_model(tmp_path / "m.onnx", "tf_half_pixel_for_nn", (16, 16))
    out = tmp_path / "m.vfb"
    res = _invoke("compile", str(model), "-o", str(out), "--strict")
    (err,) = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2
    assert "'upsample' (Resize)" in err and "'tf_half_pixel_for_nn' is not supported" in err
    assert not out.exists()
    res = _invoke("compile", str(model), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "host segments" in res.output and "upsample" in res.output


# ------------------------------------------------------------------ hand-written program
ASM = Path(__file__).parent / "data" / "asm" / "resize.s"


def _run_asm(tmp_path: Path, text: str) -> tuple[object, np.ndarray | None]:
    """Assemble ``text`` and run it on the emulator with a seeded int8 input; the CLI
    result and the NCHW output (None when the run failed)."""
    src, vfb, out = tmp_path / "p.s", tmp_path / "p.vfb", tmp_path / "y.npy"
    src.write_text(text)
    assert _invoke("asm", str(src), "-o", str(vfb)).exit_code == 0
    x = np.random.default_rng(0).integers(-128, 128, (1, 2, 4, 4)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    res = _invoke("run", str(vfb), "-i", str(tmp_path / "x.npy"), "-o", str(out))
    return res, (np.load(out) if out.exists() else None)


def test_hand_written_resize_program_runs_on_the_emulator(tmp_path: Path) -> None:
    """tests/data/asm/resize.s: two bands of a 2x half_pixel resize, each loading only
    the input rows it reads, equal the whole-map kernel and onnxruntime."""
    res, y = _run_asm(tmp_path, ASM.read_text())
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    x = np.load(tmp_path / "x.npy")
    quant = (0.05, 125, 0.05, 125)
    want = resize_kernel(np.ascontiguousarray(x[0].transpose(1, 2, 0)),
                         fields(2, 4, 4, 8, 8, "half_pixel", quant))
    assert y is not None and np.array_equal(y[0], want.transpose(2, 0, 1))
    ort_y = ort_run(qdq_resize_model(2, 4, 4, 8, 8, "half_pixel", quant),
                    (x.astype(np.int16) + 128).astype(np.uint8))
    assert np.array_equal(y.astype(np.int16) + 128, ort_y)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("in_h=3 in_w=4 c=2 out_h=4 out_w=8 in_y0=1", "in_h=2 in_w=4 c=2 out_h=4 out_w=8 in_y0=2",
     "instruction #4 RESIZE (layer 0): the output tile reads input rows 1..3, the input "
     "tile holds rows 2..3"),
    ("out_h=4 out_w=8 in_y0=1 out_y0=4 map_in_h=4 map_in_w=4 map_out_h=8 ",
     "out_h=8000 out_w=8 in_y0=1 out_y0=4 map_in_h=4 map_in_w=4 map_out_h=9000 ",
     "instruction #4 (RESIZE, core 0, layer 0): the output is 128,000 bytes, more than "
     "65,536"),
    ("out_scale=0.05 scale_h=2.0 scale_w=2.0 in_h=3 in_w=4 c=2 out_h=4 out_w=8 in_y0=1",
     "out_scale=0.0 scale_h=2.0 scale_w=2.0 in_h=3 in_w=4 c=2 out_h=4 out_w=8 in_y0=1",
     "instruction #4 RESIZE (layer 0): 'out_scale' must be non-zero"),
])
def test_hostile_resize_words_fail_with_one_clear_error(tmp_path: Path, old: str, new: str,
                                                       message: str) -> None:
    text = ASM.read_text()
    assert old in text
    res, y = _run_asm(tmp_path, text.replace(old, new))
    out = res.output  # type: ignore[attr-defined]
    assert res.exit_code == 2 and y is None  # type: ignore[attr-defined]
    (err,) = [line for line in out.splitlines() if line.startswith("error:")]
    assert message in err


@pytest.mark.parametrize("mode", ["pytorch_half_pixel", "align_corners"])
def test_small_buffers_split_a_resize_into_many_bands(mode: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With 4 KiB of ibuf and 2 KiB of obuf an 8-channel 8x8 -> 37x29 resize runs in
    bands of a few rows, each loading the input rows its source coordinates read
    (compiler/resize_geometry.py): the emulator equals the reference at every layer on 1
    and 5 cores, and the IFPs stay within the buffers."""
    from vfpga import flow
    from vfpga.driver import compile_graph
    from vfpga.frontend.pipeline import load_model
    from vfpga.hw import load_hw
    from vfpga.hw.config import HardwareConfig
    from vfpga.isa.codec import decode
    from vfpga.isa.spec import Opcode
    from vfpga.reference.compare import random_inputs

    d = load_hw("pool16").to_dict()
    d.update(name="small", buffers={"ibuf": 4096, "wbuf": 8192, "pbuf": 1024, "obuf": 2048,
                                    "abuf": 8192})
    hw = HardwareConfig.from_dict(d)
    path = _fp32_resize_model(tmp_path / "m.onnx", mode, (37, 29))
    lm = load_model(onnx.load(str(path)), num_random=4)
    x = random_inputs(lm.qdq, 1, seed=2)[0]
    for cores in (1, 5):
        res = compile_graph(lm.graph, hw, cores)
        prog = decode(res.vfb.text)
        rs = prog.by_op[Opcode.RESIZE]
        assert len(rs) >= 8 and int(rs["out_h"].min()) < 37  # some tiles run in bands
        assert int(res.vfb.ifps["ibuf"].max()) <= 4096 and int(res.vfb.ifps["obuf"].max()) <= 2048
        rep = flow.check_one(res, hw, x)
        assert all(lc.identical == 1.0 for lc in rep.layers) and rep.outputs_equal
