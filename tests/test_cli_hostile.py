"""Hostile inputs at the command line (issue 12, cases 3, 5-8): every bad binary, model,
scenario, input array or output path gives exit 2 and one ``error:`` line naming the
file, node or key, no traceback, no output file left; outputs respect the umask and take
any legal file name; ``run -i`` takes float inputs NCHW like ``reference --input``."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner, Result
from hostile_seeds import rebuild, seed_binaries
from onnx import TensorProto, helper, numpy_helper
from test_cli_compile import tiny_model

from vfpga.cli.main import cli


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_error(res: Result, *words: str) -> None:
    """Exit 2, no traceback, exactly one ``error:`` line containing ``words``."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.output
    for w in words:
        assert w in errors[0], (w, errors[0])


def only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("bin") / "net.vfb"
    p.write_bytes(seed_binaries()["net12"])
    return p


# --------------------------------------------------------------------- case 3
def test_run_refuses_a_binary_declaring_4_gib_of_ddr(net: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.vfb"
    big.write_bytes(rebuild(net.read_bytes(), ddr_size=4 << 30))
    t0 = time.perf_counter()
    assert_one_error(invoke("run", big), "big.vfb", "4,294,967,296 bytes of DDR", "--ddr-limit")
    assert time.perf_counter() - t0 < 10
    assert_one_error(invoke("run", big, "--ddr-limit", "lots"), "--ddr-limit lots")


def test_objdump_of_dev_zero_and_a_huge_header(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    assert_one_error(invoke("objdump", "/dev/zero"), "/dev/zero", "bad magic")
    blob = bytearray(seed_binaries()["net12"])
    blob[64:72] = (1 << 40).to_bytes(8, "little")
    f = tmp_path / "huge.vfb"
    f.write_bytes(blob)
    assert_one_error(invoke("objdump", f), "huge.vfb", "1,099,511,627,776 bytes")
    assert time.perf_counter() - t0 < 10


# --------------------------------------------------------------------- case 5
def _conv_model(path: Path, *, x_dims: list | None = None, w: np.ndarray | None = None,
                opset: int = 13, **attrs: object) -> Path:
    w = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32) \
        if w is None else w
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims or [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv0", **attrs)
    g = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def hostile_models(d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (model, a word the error must contain)."""
    nan = np.ones((8, 3, 3, 3), np.float32)
    nan[1, 2, 0, 0] = np.nan
    inf = np.ones((8, 3, 3, 3), np.float32)
    inf[0, 0, 0, 0] = np.inf
    t = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[100000, 100000, 3, 3])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv0")], "g",
                          [x], [y], [t])
    huge = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    huge.ir_version = 8
    onnx.save(huge, str(d / "declared_2gb.onnx"))
    return {
        "group_absurd": (_conv_model(d / "ga.onnx", group=100000), "conv0"),
        "group_mismatch": (_conv_model(d / "gm.onnx", group=2), "conv0"),
        "huge_pads": (_conv_model(d / "hp.onnx", pads=[100000] * 4), "pad 100000"),
        "kernel_gt_input": (_conv_model(d / "kg.onnx", x_dims=[1, 3, 2, 2]), "larger than"),
        "opset99": (_conv_model(d / "o99.onnx", opset=99), "opset 99"),
        "declared_2gb": (d / "declared_2gb.onnx", "initializer 'w'"),
        "huge_input": (_conv_model(d / "hi.onnx", x_dims=[1, 3, 100000, 100000]),
                       "--input-shape"),
        "nan_weights": (_conv_model(d / "nan.onnx", w=nan), "nan"),
        "inf_weights": (_conv_model(d / "inf.onnx", w=inf), "inf"),
        "zero_channel": (_conv_model(d / "z.onnx", w=np.zeros((0, 3, 3, 3), np.float32)),
                         "0-channel"),
        "stride_huge": (_conv_model(d / "s.onnx", strides=[100000, 100000]), "stride 100000"),
        "zero_dim": (_conv_model(d / "zd.onnx", x_dims=[1, 3, 0, 16]), "size 0 at axis 2"),
        "dynamic": (_conv_model(d / "dy.onnx", x_dims=["N", 3, "?", "?"]),
                    "'N' at axis 0"),
    }


def test_hostile_models_import_compile_check(tmp_path: Path) -> None:
    for what, (model, word) in hostile_models(tmp_path).items():
        out = tmp_path / "out"
        for cmd in (("import", model, "-o", out), ("compile", model, "-o", out),
                    ("check", model)):
            res = invoke(*cmd)
            assert_one_error(res, model.name, word)
            assert not out.exists(), (what, cmd)


def test_dynamic_dimension_names_the_axis_and_input_shape_fixes_it(tmp_path: Path) -> None:
    m = _conv_model(tmp_path / "dyn.onnx", x_dims=[-1, 3, "h", "w"])
    res = invoke("import", m)
    assert_one_error(res, "size -1 at axis 0", "--input-shape x=1x3x224x224")
    res = invoke("import", m, "--input-shape", "x=1x3x16x16", "--calib-random", "2")
    assert res.exit_code == 0, res.output
    out = tmp_path / "dyn.vfb"
    res = invoke("compile", m, "-o", out, "--input-shape", "x=1x3x16x16", "--calib-random", "2")
    assert res.exit_code == 0 and out.is_file(), res.output
    assert_one_error(invoke("import", m, "--input-shape", "y=1x3x16x16"), "no input 'y'")
    assert_one_error(invoke("import", m, "--input-shape", "x=1x3x0x4"), "--input-shape")


# --------------------------------------------------------------------- case 6
def test_run_output_errors_before_the_emulation(net: Path, tmp_path: Path) -> None:
    assert_one_error(invoke("run", net, "-o", tmp_path / "missing" / "y.npy"),
                     "folder", "does not exist")
    long = "y" * 252 + ".npy"  # 256 bytes
    assert_one_error(invoke("run", net, "-o", tmp_path / long), "256 bytes", "255")
    assert only(tmp_path) == []


def test_legal_long_names_and_the_umask(net: Path, tmp_path: Path) -> None:
    for n in (245, 250, 255):
        out = tmp_path / ("o" * (n - 4) + ".npy")
        res = invoke("run", net, "-o", out)
        assert res.exit_code == 0, res.output
        assert out.is_file()
    old = os.umask(0o027)
    try:
        listing = tmp_path / "list.s"
        assert invoke("objdump", net, "-o", listing).exit_code == 0
        assert listing.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
    assert len(only(tmp_path)) == 4  # no temporary file left


def test_full_disk_leaves_nothing(net: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    out = tmp_path / "y.npy"
    assert_one_error(invoke("run", net, "-o", out), "y.npy", "No space left on device")
    monkeypatch.undo()
    model = tiny_model(tmp_path / "tiny.onnx")
    real_replace = os.replace

    def replace(src: str, dst: object) -> None:
        if str(dst).endswith("t.mlir"):  # the disk fills up as the IR is written
            full()
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    assert_one_error(invoke("import", model, "-o", tmp_path / "t.mlir", "--calib-random", "2"),
                     "t.mlir", "No space left on device")
    assert only(tmp_path) == ["tiny.onnx"]


def test_npy_header_declaring_a_terabyte(net: Path, tmp_path: Path) -> None:
    f = tmp_path / "tb.npy"
    with open(f, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|i1", "fortran_order": False, "shape": (1 << 40,)})
    t0 = time.perf_counter()
    assert_one_error(invoke("run", net, "-i", f), "tb.npy")
    assert time.perf_counter() - t0 < 10


# --------------------------------------------------------------------- case 7
def hostile_scenarios(d: Path, net: Path) -> dict[str, tuple[str | bytes, str]]:
    (d / "folder.vfb").mkdir()
    ok_tenant = f'[[tenant]]\nname = "a"\ncores = 2\nbinary = "{net}"\n'
    return {
        "cores string": ('duration_ms = 5\n[[tenant]]\nname = "a"\ncores = "4"\n'
                         'model = "x"\n', "'cores'"),
        "name number": ('duration_ms = 5\n[[tenant]]\nname = 5\ncores = 4\nmodel = "x"\n',
                        "'name'"),
        "duration string": ('duration_ms = "x"\n' + ok_tenant, "'duration_ms'"),
        "tenant not tables": ('duration_ms = 5\ntenant = 5\n', "'tenant'"),
        "resize not tables": ('duration_ms = 5\nresize = [1]\n' + ok_tenant, "'resize'"),
        "arrive bool": ('duration_ms = 5\n' + ok_tenant + "arrive_ms = true\n", "'arrive_ms'"),
        "missing binary": ('duration_ms = 5\n[[tenant]]\nname = "a"\ncores = 2\n'
                           'binary = "nope.vfb"\n', "nope.vfb"),
        "folder binary": ('duration_ms = 5\n[[tenant]]\nname = "a"\ncores = 2\n'
                          'binary = "folder.vfb"\n', "folder.vfb"),
        "unknown hw": ('duration_ms = 5\nhw = "pool99"\n' + ok_tenant, "pool99"),
        "hw number": ('duration_ms = 5\nhw = 7\n' + ok_tenant, "'hw'"),
        "unknown strategy": ('duration_ms = 5\nstrategy = "best"\n' + ok_tenant, "'strategy'"),
        "non utf-8": (b'duration_ms = 5\n# \xff\xfe\n', "not UTF-8"),
        "duration inf": ("duration_ms = inf\n" + ok_tenant, "'duration_ms'"),
        "duration nan": ("duration_ms = nan\n" + ok_tenant, "'duration_ms'"),
        "duration 1e9": ("duration_ms = 1e9\n" + ok_tenant, "'duration_ms'"),
        "leave inf": ("duration_ms = 5\n" + ok_tenant + "leave_ms = inf\n", "'leave_ms'"),
        "unknown key": ("duration_ms = 5\n" + ok_tenant + "colour = 1\n", "colour"),
    }


def test_hostile_scenarios(net: Path, tmp_path: Path) -> None:
    for what, (text, word) in hostile_scenarios(tmp_path, net).items():
        sc = tmp_path / "s.toml"
        if isinstance(text, bytes):
            sc.write_bytes(text)
        else:
            sc.write_text(text)
        t0 = time.perf_counter()
        res = invoke("pool", "simulate", sc, "--quiet", "--plot", tmp_path / "t.png")
        assert_one_error(res, "s.toml", word)
        assert time.perf_counter() - t0 < 20, what
        assert not (tmp_path / "t.png").exists()
    assert_one_error(invoke("pool", "simulate", tmp_path), "is a folder")


# --------------------------------------------------------------------- case 8
def test_run_takes_float_inputs_nchw_like_reference(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    vfb = tmp_path / "tiny.vfb"
    assert invoke("compile", model, "-o", vfb, "--calib-random", "4").exit_code == 0
    x = tmp_path / "x.npy"
    img = np.random.default_rng(7).standard_normal((1, 3, 16, 16)).astype(np.float32)
    img[:, 0] += 1.5  # channels differ, so a layout mix-up changes the result
    np.save(x, img)
    y, r = tmp_path / "y.npy", tmp_path / "r.npy"
    res = invoke("run", vfb, "-i", x, "--dequantize", "-o", y)
    assert res.exit_code == 0, res.output
    res = invoke("reference", model, "--input", x, "--calib-random", "4", "-o", r)
    assert res.exit_code == 0, res.output
    assert np.load(y).tobytes() == np.load(r).astype(np.float32).tobytes()
    np.save(x, img.transpose(0, 2, 3, 1))  # NHWC: refused, naming the expected layout
    assert_one_error(invoke("run", vfb, "-i", x), "NCHW 1x3x16x16", "1x16x16x3")
    help_text = " ".join(invoke("run", "--help").output.split())
    assert "NCHW as the ONNX model shapes it" in help_text
    # int8 inputs too are NCHW (as vfpga serve takes them): the same answer as the float
    # input quantized by hand
    from vfpga.backend.binary import read_vfb

    t_in = next(t for t in read_vfb(vfb).tensors if t.role == "input")
    q = np.clip(np.rint(img / np.float32(t_in.scale)) + t_in.zero_point, -128, 127)
    np.save(x, q.astype(np.int8))
    y8 = tmp_path / "y8.npy"
    res = invoke("run", vfb, "-i", x, "--dequantize", "-o", y8)
    assert res.exit_code == 0, res.output
    assert np.load(y8).tobytes() == np.load(y).tobytes()
    np.save(x, q.astype(np.int8).transpose(0, 2, 3, 1))  # the stored layout: refused
    assert_one_error(invoke("run", vfb, "-i", x), "an int8 array must be NCHW 1x3x16x16",
                     "the stored NHWC layout?")


def test_run_on_binaries_that_fail_at_load(tmp_path: Path) -> None:
    """Case 2 at the command line: `vfpga run` on each binary the reader accepted before
    (mistyped host ops, tensors whose shape disagrees with their size, ...) prints one
    error line naming the file (it printed a traceback on 11 of 14)."""
    from test_hostile import hostile_variants

    for what, blob in hostile_variants(seed_binaries()).items():
        f = tmp_path / "bad.vfb"
        f.write_bytes(blob)
        res = invoke("run", f)
        assert_one_error(res, "bad.vfb")
        assert what  # every variant is covered


def test_long_scenario_stops_at_its_simulation_budget(net: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Case 7: the longest legal scenario ends (it ran forever on duration_ms = 1e9): the
    simulation budget stops its tenants, and their report says so."""
    import vfpga.runtime.scenario as scenario

    monkeypatch.setattr(scenario, "MAX_SIMULATED_INFERENCES", 40)
    sc = tmp_path / "long.toml"
    sc.write_text(f'duration_ms = 10000\n[[tenant]]\nname = "a"\ncores = 2\nbinary = "{net}"\n')
    res = invoke("pool", "simulate", sc, "--quiet", "--plot", tmp_path / "t.png")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "40" in text and "stopped after" in text
