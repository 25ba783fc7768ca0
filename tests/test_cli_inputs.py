"""Inputs people have (issue 14 item 3), from the user's side: ``vfpga check --inputs DIR``
on .npy arrays and images, ``--calib-method``, and ``--mean/--std`` for ``--calib-dir``
images; then the preprocessing and the top-k metrics as units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image
from test_cli_compile import invoke, tiny_model

from vfpga.errors import FrontendError
from vfpga.quant.inputs import ImagePrep, image_input, npy_input, read_inputs
from vfpga.reference.compare import in_top_k, is_class_vector

SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("inputs") / "tiny.onnx")


def _image(path: Path, h: int, w: int, seed: int) -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(3)
    np.save(d / "a.npy", rng.standard_normal(SHAPE).astype(np.float32))
    np.save(d / "b.npy", rng.standard_normal(SHAPE[1:]).astype(np.float64))  # no batch dim
    _image(d / "c.png", 40, 30, 1)
    _image(d / "d.JPG", 16, 16, 2)
    (d / "README.txt").write_text("not an input")
    return d


def _scales(model: Path) -> dict[str, float]:
    m = onnx.load(str(model))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    return {n.output[0]: float(inits[n.input[1]]) for n in m.graph.node
            if n.op_type == "QuantizeLinear" and inits[n.input[1]].size == 1}


def test_check_on_real_inputs_reports_fp32_agreement(tiny: Path, inputs: Path) -> None:
    r = invoke("check", str(tiny), "--inputs", str(inputs), "--cores", "2",
               "--mean", "0.5", "--std", "0.25,0.25,0.25")
    out = " ".join(r.output.split())
    assert r.exit_code == 0, out
    for k, name in enumerate(["a.npy", "b.npy", "c.png", "d.JPG"]):  # sorted; README skipped
        assert f"input {k} ({name}): all 5 layer outputs and the graph outputs are " \
               "byte-identical to the integer reference" in out
    assert "input 4" not in out
    assert "reference vs onnxruntime (same QDQ model, 4 real inputs): cosine min" in out
    assert "reference vs fp32 model (4 real inputs): cosine min" in out
    assert "top-1 agreement" in out and "top-5 agreement" in out
    assert "check passed" in out


def test_check_inputs_errors_name_the_file(tiny: Path, tmp_path: Path) -> None:
    def one_error(*args: str) -> str:
        r = invoke("check", str(tiny), *args)
        assert r.exit_code == 2, r.output
        lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1, r.output
        return " ".join(r.output.split())

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    out = one_error("--inputs", str(tmp_path / "empty"))
    assert "no input files (expected files ending in .npy, .png" in out
    assert "input directory does not exist" in one_error("--inputs", str(tmp_path / "none"))
    for name, write, want in [
        ("shape", lambda p: np.save(p / "x.npy", np.zeros((1, 3, 8, 8), np.float32)),
         "x.npy: array of shape (1, 3, 8, 8); the model's input has shape (1, 3, 16, 16)"),
        ("pickle", lambda p: np.save(p / "x.npy", np.array([{"a": 1}], dtype=object)),
         "x.npy: not a readable .npy array"),
        ("text", lambda p: (p / "x.npy").write_text("hello"), "x.npy: not a readable .npy"),
        ("nan", lambda p: np.save(p / "x.npy", np.full(SHAPE, np.nan, np.float32)),
         "x.npy: holds NaN or infinite values"),
        ("image", lambda p: (p / "x.png").write_bytes(b"\x89PNG broken"),
         "x.png: cannot read image"),
    ]:
        d = tmp_path / name
        d.mkdir()
        write(d)
        assert want in one_error("--inputs", str(d)), name
    good = tmp_path / "img"
    good.mkdir()
    _image(good / "i.png", 20, 20, 0)
    assert "--mean has 2 values; the model's input has 3 channel(s)" in one_error(
        "--inputs", str(good), "--mean", "0.5,0.5")
    assert "--std 1,0,1: every value must be > 0" in one_error(
        "--inputs", str(good), "--std", "1,0,1")
    assert "--mean 'x': expected comma-separated numbers" in one_error(
        "--inputs", str(good), "--mean", "x")
    assert "images need a model input of shape (1, H, W, 3) or (1, H, W, 1) (layout NHWC)" \
        in one_error("--inputs", str(good), "--layout", "NHWC")
    # preprocessing options without images to apply them to
    assert "--mean, --std and --layout preprocess images: give --calib-dir" in one_error(
        "--std", "0.5")


@pytest.mark.parametrize("cmd", ["compile", "quantize", "import"])
def test_preprocessing_options_need_images(cmd: str, tiny: Path, tmp_path: Path) -> None:
    r = invoke(cmd, str(tiny), "-o", str(tmp_path / "o"), "--mean", "0.5")
    assert r.exit_code == 2
    assert "error: --mean, --std and --layout preprocess images: give --calib-dir" in r.output
    assert not (tmp_path / "o").exists()


def test_calib_method_changes_the_ranges(tiny: Path, tmp_path: Path) -> None:
    scales = {}
    for method in ("minmax", "entropy", "percentile"):
        out = tmp_path / f"{method}.onnx"
        r = invoke("quantize", str(tiny), "-o", str(out), "--calib-method", method,
                   "--calib-random", "4")
        assert r.exit_code == 0, r.output
        name = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}[method]
        assert f"calibration: 4 random normal inputs (seed 0), {name} ranges" in r.output
        scales[method] = _scales(out)
    assert scales["minmax"].keys() == scales["percentile"].keys()
    # percentile clips the outliers: no range is wider than MinMax's, some are narrower
    mm, pc = scales["minmax"], scales["percentile"]
    assert all(pc[t] <= mm[t] * (1 + 1e-6) for t in mm)
    assert any(pc[t] < mm[t] for t in mm), (mm, pc)
    assert scales["entropy"] != mm
    r = invoke("compile", str(tiny), "-o", str(tmp_path / "x.vfb"), "--calib-method", "bogus")
    assert r.exit_code == 2 and "'bogus' is not one of 'minmax', 'entropy', 'percentile'" \
        in r.output
    # the calibrated model still checks bit-exact end to end
    r = invoke("check", str(tiny), "--calib-method", "percentile", "--calib-random", "4")
    assert r.exit_code == 0 and "check passed" in r.output, r.output


def test_mean_std_apply_to_calibration_images(tiny: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        _image(calib / f"{i}.png", 24, 24, i)
    outs = {}
    for key, extra in [("default", []),
                       ("imagenet", ["--mean", "0.485,0.456,0.406",
                                     "--std", "0.229,0.224,0.225"]),
                       ("half", ["--mean", "0.5", "--std", "0.5"])]:
        out = tmp_path / f"{key}.onnx"
        r = invoke("quantize", str(tiny), "-o", str(out), "--calib-dir", str(calib), *extra)
        assert r.exit_code == 0, r.output
        outs[key] = out.read_bytes()
        if key == "half":
            assert "mean 0.5 std 0.5" in " ".join(r.output.split())
    assert outs["default"] == outs["imagenet"]  # ImageNet's constants are the default
    assert outs["default"] != outs["half"]


def test_image_preprocessing_crops_resizes_normalizes(tmp_path: Path) -> None:
    # a 2:1 wide image whose centre square is white and whose sides are black
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 10:30] = 255
    Image.fromarray(img).save(tmp_path / "w.png")
    x = image_input(tmp_path / "w.png", (1, 3, 8, 8), ImagePrep((0.5,), (0.25,)))
    assert x.shape == (1, 3, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x, (1.0 - 0.5) / 0.25)  # only the white square is kept
    y = image_input(tmp_path / "w.png", (1, 8, 16, 3), ImagePrep(layout="NHWC"))
    assert y.shape == (1, 8, 16, 3)  # 2:1 as the image: nothing cropped
    assert y[0, :, 0, 0].max() < 0 < y[0, :, 8, 0].min()  # black left side, white middle
    g = image_input(tmp_path / "w.png", (1, 1, 4, 4), ImagePrep((0.0,), (1.0,)))
    assert g.shape == (1, 1, 4, 4) and np.allclose(g, 1.0)
    with pytest.raises(FrontendError, match=r"shape \(1, 2, 8, 8\)"):
        image_input(tmp_path / "w.png", (1, 2, 8, 8), ImagePrep())
    np.save(tmp_path / "i.npy", np.arange(12, dtype=np.int16).reshape(3, 2, 2))
    v = npy_input(tmp_path / "i.npy", (1, 3, 2, 2))
    assert v.dtype == np.float32 and v.shape == (1, 3, 2, 2) and v[0, 2, 1, 1] == 11
    assert [p.name for p, _ in read_inputs(tmp_path, (1, 3, 2, 2), ImagePrep())] == \
        ["i.npy", "w.png"]


def test_top_k_agreement() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.2, 0.3, 0.0],
                       [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    # row 0: top-5 is {1, 2, 3, 5, 4}; class 0 is sixth; row 1: ties with the fifth count
    assert in_top_k(scores, np.array([4, 6])).tolist() == [True, True]
    assert in_top_k(scores, np.array([0, 0])).tolist() == [False, True]
    assert is_class_vector((1, 1000)) and is_class_vector((1, 10, 1, 1))
    assert not is_class_vector((1, 21, 8, 8)) and not is_class_vector((1, 3))
