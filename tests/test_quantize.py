"""Tests of vfpga.quant.quantize_model and the ``vfpga quantize`` command."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from _norm_util import make_model, randomize_zoo, run_ort
from click.testing import CliRunner
from onnx import helper, numpy_helper

from vfpga.errors import FrontendError
from vfpga.frontend import normalize
from vfpga.quant import quantize_model
from vfpga.quant.inputs import resize_bilinear
from vfpga.quant.quantize import image_calibration

RNG = np.random.default_rng(7)


def _w(*shape: int) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return RNG.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)


def small_net() -> onnx.ModelProto:
    """conv+relu x2, concat, maxpool, add, avgpool, gap, gemm, softmax."""
    c = lambda nm, x, o, **a: helper.make_node("Conv", [x, f"{nm}_w", f"{nm}_b"], [o],  # noqa: E731
                                               name=nm, **a)
    nodes = [
        c("c1", "x", "a"), helper.make_node("Relu", ["a"], ["ar"], name="r1"),
        c("c2", "x", "b"), helper.make_node("Relu", ["b"], ["br"], name="r1b"),
        helper.make_node("Concat", ["ar", "br"], ["cat"], name="cat", axis=1),
        helper.make_node("MaxPool", ["cat"], ["mp"], name="mp", kernel_shape=[2, 2],
                         strides=[2, 2]),
        c("c3", "mp", "d", pads=[1, 1, 1, 1]), c("c4", "mp", "e", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["d", "e"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["sr"], name="r2"),
        helper.make_node("AveragePool", ["sr"], ["ap"], name="ap", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["ap"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], name="sm", axis=1),
    ]
    inits = {"c1_w": _w(8, 3, 3, 3), "c1_b": RNG.normal(0, .1, 8).astype(np.float32),
             "c2_w": _w(8, 3, 3, 3), "c2_b": RNG.normal(0, .1, 8).astype(np.float32),
             "c3_w": _w(16, 16, 3, 3), "c3_b": RNG.normal(0, .1, 16).astype(np.float32),
             "c4_w": _w(16, 16, 3, 3), "c4_b": RNG.normal(0, .1, 16).astype(np.float32),
             "fc_w": _w(10, 16), "fc_b": RNG.normal(0, .1, 10).astype(np.float32),
             "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    return make_model(nodes, inits, (1, 3, 16, 16), {"logits": (1, 10), "prob": (1, 10)})


@pytest.fixture(scope="module")
def quantized() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    n = normalize(small_net(), "small")
    return n, quantize_model(n, num_random=8, seed=0)


def _inits(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}


def test_qdq_structure(quantized: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    _, q = quantized
    ops = Counter(n.op_type for n in q.graph.node)
    assert ops["Relu"] == 0, "Relu fused into the producers' output quantization"
    assert ops["Conv"] == 5 and ops["Concat"] == 1 and ops["Add"] == 1
    inits = _inits(q)
    prod = {o: n for n in q.graph.node for o in n.output}
    for n in q.graph.node:
        if n.op_type == "Conv":
            wdq, bdq = prod[n.input[1]], prod[n.input[2]]
            w, ws, wz = (inits[t] for t in wdq.input)
            assert w.dtype == np.int8 and ws.shape == (w.shape[0],) and not wz.any()
            b, bs, _ = (inits[t] for t in bdq.input)
            assert b.dtype == np.int32
            xdq = prod[n.input[0]]
            np.testing.assert_allclose(bs, inits[xdq.input[1]] * ws, rtol=1e-6)
        if n.op_type == "QuantizeLinear":  # uint8 activations (ORT's integer kernels)
            assert inits[n.input[2]].dtype == np.uint8 and inits[n.input[2]].shape == ()
    cat = next(n for n in q.graph.node if n.op_type == "Concat")
    q_out = next(n for n in q.graph.node if n.op_type == "QuantizeLinear"
                 and n.input[0] == cat.output[0])
    for t in cat.input:
        dq = prod[t]
        assert float(inits[dq.input[1]]) == float(inits[q_out.input[1]])
        assert int(inits[dq.input[2]]) == int(inits[q_out.input[2]])


def test_softmax_output_scale_is_one_over_256(
    quantized: tuple[onnx.ModelProto, onnx.ModelProto],
) -> None:
    _, q = quantized
    inits = _inits(q)
    sm = next(n for n in q.graph.node if n.op_type == "Softmax")
    (qn,) = [n for n in q.graph.node
             if n.op_type == "QuantizeLinear" and n.input[0] == sm.output[0]]
    assert float(inits[qn.input[1]]) == 1 / 256 and int(inits[qn.input[2]]) == 0
    x = np.random.default_rng(4).normal(size=(1, 3, 16, 16)).astype(np.float32)
    prob = run_ort(q, x)[1]
    np.testing.assert_allclose(prob.sum(), 1.0, atol=0.03)
    assert np.allclose(prob * 256, np.round(prob * 256), atol=1e-4)


def test_calibration_on_given_inputs() -> None:
    n = normalize(small_net())
    data = [np.random.default_rng(i).normal(size=(1, 3, 16, 16)).astype(np.float32)
            for i in range(3)]
    a = quantize_model(n, calib_data=data)
    assert a.SerializeToString() == quantize_model(n, calib_data=data).SerializeToString()
    assert a.SerializeToString() != quantize_model(n, calib_data=data[:1]).SerializeToString()
    with pytest.raises(FrontendError, match="shape"):
        quantize_model(n, calib_data=[np.zeros((1, 3, 8, 8), np.float32)])
    with pytest.raises(FrontendError, match="empty"):
        quantize_model(n, calib_data=[])


def test_a_handed_off_model_quantizes_the_same_and_is_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``vfpga compile`` hands the fp32 model to the quantizer (ModelHandoff): once it is
    written for onnxruntime the quantizer keeps only its structure (here: every
    initializer without data) and the model leaves the handoff; the QDQ model is the
    same as quantizing a model the caller keeps."""
    from vfpga.quant import quantize as qz

    n = normalize(small_net())
    copy = onnx.ModelProto()
    copy.CopyFrom(n)
    kept = quantize_model(n, num_random=4, seed=3)
    monkeypatch.setattr(qz, "RELEASE_BYTES", 0)
    hand = qz.ModelHandoff(copy)
    del copy
    given = quantize_model(hand, num_random=4, seed=3)
    assert given.SerializeToString() == kept.SerializeToString()
    assert hand.model is None
    with pytest.raises(ValueError, match="already taken"):
        quantize_model(hand, num_random=4, seed=3)


def test_qdq_close_to_fp32(quantized: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    n, q = quantized
    x = np.random.default_rng(5).normal(size=(1, 3, 16, 16)).astype(np.float32)
    (fa, _), (qa, _) = run_ort(n, x), run_ort(q, x)
    assert qa.shape == fa.shape == (1, 10)
    err = np.abs(fa - qa).max() / np.abs(fa).max()
    assert err < 0.1, err


def test_fused_relu_is_not_merged_into_negative_concat_range() -> None:
    # Concat(relu(conv a), conv b): b is negative often; the relu must still clamp a.
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="ca"),
             helper.make_node("Relu", ["a"], ["ar"], name="r"),
             helper.make_node("Conv", ["x", "wb", "bb"], ["b"], name="cb"),
             helper.make_node("Concat", ["ar", "b"], ["y"], name="cat", axis=1)]
    m = make_model(nodes, {"wa": _w(4, 3, 1, 1), "ba": np.zeros(4, np.float32),
                           "wb": _w(4, 3, 1, 1), "bb": np.zeros(4, np.float32)},
                   (1, 3, 8, 8), {"y": (1, 8, 8, 8)})
    # 16 calibration inputs: the test input stays inside the calibrated ranges
    q = quantize_model(normalize(m), num_random=16)
    x = np.random.default_rng(2).normal(size=(1, 3, 8, 8)).astype(np.float32)
    y = run_ort(q, x)[0]
    assert y[:, :4].min() >= 0.0, "ReLU lost"
    assert y[:, 4:].min() < 0.0
    np.testing.assert_allclose(y, run_ort(m, x)[0], atol=0.05 * np.abs(y).max())


def test_deterministic_and_seeded() -> None:
    n = normalize(small_net())
    a = quantize_model(n, num_random=3, seed=1)
    b = quantize_model(n, num_random=3, seed=1)
    c = quantize_model(n, num_random=3, seed=2)
    assert a.SerializeToString() == b.SerializeToString()
    assert a.SerializeToString() != c.SerializeToString()


def test_progress_is_reported() -> None:
    seen: list[tuple[int, int]] = []
    quantize_model(normalize(small_net()), num_random=3, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (3, 3) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_image_calibration(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(3):
        arr = np.random.default_rng(i).integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    data = image_calibration(tmp_path, (1, 3, 16, 16))
    assert len(data) == 3 and all(d.shape == (1, 3, 16, 16) and d.dtype == np.float32
                                  for d in data)
    white = np.ones((5, 7, 3), np.float32)
    np.testing.assert_allclose(resize_bilinear(white, 9, 4), np.ones((9, 4, 3)))
    q = quantize_model(normalize(small_net()), calib="dir", calib_dir=tmp_path)
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)


def test_calibration_errors(tmp_path: Path) -> None:
    n = normalize(small_net())
    with pytest.raises(FrontendError, match="no calibration images"):
        quantize_model(n, calib="dir", calib_dir=tmp_path)
    with pytest.raises(FrontendError, match="does not exist"):
        quantize_model(n, calib="dir", calib_dir=tmp_path / "nope")
    with pytest.raises(FrontendError, match=">= 1"):
        quantize_model(n, num_random=0)
    with pytest.raises(FrontendError, match="unknown calibration"):
        quantize_model(n, calib="imagenet")


# -- CLI ------------------------------------------------------------------------------------
def _cli(args: list[str]) -> tuple[int, str]:
    from vfpga.cli.main import cli

    r = CliRunner().invoke(cli, args)
    return r.exit_code, r.output


def test_cli_quantize(tmp_path: Path) -> None:
    src = tmp_path / "net.onnx"
    onnx.save(small_net(), str(src))
    out = tmp_path / "out" / "net.qdq.onnx"
    code, text = _cli(["quantize", str(src), "-o", str(out), "--calib-random", "2", "--seed", "3"])
    assert code == 0, text
    assert "quantized nodes:" in text and "Conv 5" in text
    q = onnx.load(str(out))
    assert any(n.op_type == "DequantizeLinear" for n in q.graph.node)
    assert [p.name for p in out.parent.iterdir()] == ["net.qdq.onnx"], "no temp files left"


def test_cli_errors(tmp_path: Path) -> None:
    src = tmp_path / "net.onnx"
    onnx.save(small_net(), str(src))
    out = tmp_path / "o.onnx"
    code, text = _cli(["quantize", str(tmp_path / "missing.onnx"), "-o", str(out)])
    assert code == 2 and "error:" in text and "no such file" in text and "Traceback" not in text
    empty = tmp_path / "empty"
    empty.mkdir()
    code, text = _cli(["quantize", str(src), "-o", str(out), "--calib-dir", str(empty)])
    assert code == 2 and "no calibration images" in text
    # an op of an unknown domain: not on the accelerator, and no runtime knows it either
    bad = make_model([helper.make_node("Frobnicate", ["x"], ["y"], name="frob",
                                       domain="com.example")], {}, (1, 3, 4, 4),
                     {"y": (1, 3, 4, 4)})
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    code, text = _cli(["quantize", str(tmp_path / "bad.onnx"), "-o", str(out)])
    assert code == 2 and "bad.onnx" in text and "com.example" in text
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["squeezenet", "resnet50", "densenet121"])
def test_zoo_quantizes_and_runs(name: str) -> None:
    n = normalize(randomize_zoo(name, seed=1, strip_softmax=False), name)
    q = quantize_model(n, num_random=2)
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    (y,) = run_ort(q, x)
    assert y.shape[1] == 1000 and np.isfinite(y).all()
