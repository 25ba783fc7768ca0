"""Tests of vfpga.models (builders, zoo re-weighting, registry, stats) and `vfpga models`."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, numpy_helper

from vfpga.cli.main import cli
from vfpga.errors import VfpgaError
from vfpga.models import (
    ModelInfo,
    export_model,
    get_model_info,
    list_models,
    model_names,
    save_model,
)
from vfpga.models.stats import model_stats
from vfpga.models.zoo import ZOO_MODELS, zoo_path

BUILDERS = ["vgg16", "resnet50", "mobilenet_v1", "inception_v3"]
#: Issue 14's squeeze-excite networks (ISA v3 ELTWISE mul with a per-channel operand)
#: and other issue-14 CNNs (channel Split views).
SE_NETS = ["mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "regnety_style",
           "shufflenet_v2"]
#: Dense-prediction builders (issue 14): several outputs or per-pixel outputs.
DENSE = ["yolo_nano", "deeplab_v3", "unet"]
ZOO = list(ZOO_MODELS)
#: Transformer-style builder models (opset 17; tests/test_xfmr.py)
XFMR = ["convnext_t", "vit_ti16"]
#: Models with more than ~20M parameters or 2 GMACs: whole-network tests marked slow.
BIG = {
    "vgg16",
    "resnet50",
    "inception_v3",
    "zoo-alexnet",
    "zoo-zfnet512",
    "zoo-vgg19",
    "zoo-resnet50",
    "zoo-inception_v2",
    "zoo-densenet121",
}


def _param(name: str) -> object:
    return pytest.param(name, marks=pytest.mark.slow) if name in BIG else name


def _digest(model: onnx.ModelProto) -> str:
    return hashlib.sha256(model.SerializeToString()).hexdigest()


def _float_inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}


def _run_ort(model: onnx.ModelProto, info: ModelInfo, seeds: tuple[int, ...]) -> list[np.ndarray]:
    """Outputs of ``model`` in onnxruntime for one N(0, 1) input per seed (one session)."""
    so = ort.SessionOptions()
    so.log_severity_level = 3  # IR-3 zoo graphs make ORT warn about overridable inputs
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = []
    for seed in seeds:
        x = np.random.default_rng(seed).standard_normal(info.input_shape).astype(np.float32)
        (y,) = sess.run([info.output_name], {info.input_name: x})
        outs.append(np.asarray(y))
    return outs


def _shape(vi: onnx.ValueInfoProto) -> tuple[int, ...]:
    return tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)


# -- registry --------------------------------------------------------------------------


def test_list_models_registry() -> None:
    infos = list_models()
    names = [i.name for i in infos]
    assert names == model_names()
    assert len(set(names)) == len(names)
    builders = [i.name for i in infos if i.source == "builder"]
    assert builders[: len(BUILDERS)] == BUILDERS and set(XFMR) <= set(builders)
    assert set(SE_NETS) <= set(builders)
    assert [i.name for i in infos if i.output_kind in ("detections", "segmentation")] == DENSE
    assert [i.name for i in infos if i.source == "onnx-zoo"] == ZOO
    paper = {"vgg16", "resnet50", "mobilenet_v1", "inception_v3"}
    assert {i.name for i in infos if i.paper} == paper
    for i in infos:
        assert i.input_shape[:2] == (1, 3)
        if i.name not in DENSE:
            assert i.output_shape[:2] == (1, 1000)
            assert i.output_kind in ("logits", "softmax")
        assert i.opset == (9 if i.source == "onnx-zoo" else 17 if i.name in XFMR
                           else 14 if i.name.startswith("mobilenet_v3") else 13)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(VfpgaError) as exc:
        export_model("resnet51")
    msg = str(exc.value)
    assert "resnet51" in msg
    for name in model_names():
        assert name in msg
    with pytest.raises(VfpgaError):
        get_model_info("")


def test_negative_seed_rejected() -> None:
    with pytest.raises(VfpgaError, match="seed"):
        export_model("mobilenet_v1", seed=-1)


# -- every model ----------------------------------------------------------------------


def _check_builder_structure(model: onnx.ModelProto, opset: int) -> None:
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for x in n.input:
            users.setdefault(x, []).append(n)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Conv" and ".se.fc" not in n.name:  # BN after all but SE convs
            assert [u.op_type for u in users[n.output[0]]] == ["BatchNormalization"], n.name
        if n.op_type == "BatchNormalization":  # non-trivial, sane parameters
            gamma, beta, mean, var = (inits[x] for x in n.input[1:5])
            assert not np.allclose(gamma, 1) and not np.allclose(beta, 0)
            assert not np.allclose(mean, 0) and not np.allclose(var, 1)
            assert (var > 0).all() and (gamma > 0).all()
        if n.op_type == "Clip":  # ReLU6 with min/max inputs
            assert float(inits[n.input[1]]) == 0.0 and float(inits[n.input[2]]) == 6.0
    # every intermediate tensor has a static shape recorded
    assert len(model.graph.value_info) == sum(len(n.output) for n in model.graph.node) - 1


def _check_zoo_structure(name: str, model: onnx.ModelProto) -> None:
    original = onnx.load(str(zoo_path(name)))
    g = model.graph
    assert model.ir_version == original.ir_version == 3
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 9)]
    ops = Counter(n.op_type for n in g.node)
    orig_ops = Counter(n.op_type for n in original.graph.node)
    assert "ConstantOfShape" not in ops
    del orig_ops["ConstantOfShape"]
    assert ops == orig_ops  # nothing else in the graph changed
    assert [n.name for n in g.node] == [
        n.name for n in original.graph.node if n.op_type != "ConstantOfShape"
    ]
    assert not any(t.name.endswith("__SHAPE") for t in g.initializer)
    # IR 3: every initializer is still also a graph input, with the right shape
    inputs = {vi.name: vi for vi in g.input}
    for t in g.initializer:
        assert t.name in inputs, t.name
        assert _shape(inputs[t.name]) == tuple(t.dims), t.name
    # each ConstantOfShape became an initializer of exactly the target shape
    orig_inits = {t.name: numpy_helper.to_array(t) for t in original.graph.initializer}
    inits = {t.name: t for t in g.initializer}
    for n in original.graph.node:
        if n.op_type == "ConstantOfShape":
            assert tuple(inits[n.output[0]].dims) == tuple(orig_inits[n.input[0]].tolist())
    # trained float tensors kept by the light export were redrawn too (weights only)
    for tname, value in orig_inits.items():
        if value.dtype == np.float32 and value.size > 1:
            assert not np.array_equal(numpy_helper.to_array(inits[tname]), value), tname
    # params == elements of the placeholder shapes plus the original float tensors
    expected = sum(
        int(np.prod(orig_inits[n.input[0]]))
        for n in original.graph.node
        if n.op_type == "ConstantOfShape"
    )
    expected += sum(v.size for v in orig_inits.values() if v.dtype == np.float32)
    assert model_stats(model).params == expected
    for n in g.node:
        if n.op_type == "BatchNormalization":
            var = numpy_helper.to_array(inits[n.input[4]])
            assert (var > 0).all() and np.isfinite(var).all()


@pytest.mark.parametrize("name", [_param(n) for n in BUILDERS + SE_NETS + ZOO])
def test_model_export_check_run(name: str) -> None:
    info = get_model_info(name)
    model = export_model(name, seed=0)
    onnx.checker.check_model(model, full_check=True)

    g = model.graph
    init_names = {t.name for t in g.initializer}
    data_inputs = [vi for vi in g.input if vi.name not in init_names]
    assert [vi.name for vi in data_inputs] == [info.input_name]
    assert data_inputs[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert _shape(data_inputs[0]) == info.input_shape
    assert [vi.name for vi in g.output] == [info.output_name]
    assert _shape(g.output[0]) == info.output_shape

    if info.source == "builder":
        _check_builder_structure(model, info.opset)
    else:
        _check_zoo_structure(name, model)

    # onnxruntime runs it; the output is finite, not constant, in a sane range
    y, y2 = _run_ort(model, info, seeds=(1, 2))
    assert y.shape == info.output_shape
    assert np.isfinite(y).all()
    assert y.std() > 0 and np.ptp(y) > 0
    if info.output_kind == "logits":
        assert 0.1 < y.std() < 50, y.std()
    else:
        probs = y.reshape(1, 1000)
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
        assert probs.max() < 0.999  # not saturated to one-hot
    assert not np.allclose(y, y2)  # depends on the input

    # deterministic for a seed, different across seeds (every weight tensor)
    digest = _digest(model)
    weights = {
        k: hashlib.sha256(t.raw_data).digest()
        for k, t in _float_inits(model).items()
        if int(np.prod(t.dims)) > 1
    }
    del model
    assert _digest(export_model(name, seed=0)) == digest
    other = _float_inits(export_model(name, seed=1))
    for tname, h in weights.items():
        assert hashlib.sha256(other[tname].raw_data).digest() != h, tname


# -- sizes against published counts ---------------------------------------------------

#: name -> (params excluding BN running mean/var, GMACs); torchvision / paper figures:
#: vgg16_bn 138,365,992; resnet50 25,557,032 and 4.09 GMACs; inception_v3 without the aux
#: head 23,834,568 and 5.71 GMACs; MobileNet v1 paper Table 1: 4.2M params, 569M mult-adds.
PUBLISHED = {
    "mobilenet_v1": (4.2e6, 0.569),
    "resnet50": (25_557_032, 4.09),
    "inception_v3": (23_834_568, 5.71),
    "vgg16": (138_365_992, 15.47),
}


@pytest.mark.parametrize("name", [_param(n) for n in PUBLISHED])
def test_builder_sizes_match_published(name: str) -> None:
    model = export_model(name)
    st = model_stats(model)
    running = sum(
        int(np.prod(t.dims)) for t in model.graph.initializer if t.name.endswith((".mean", ".var"))
    )
    params, gmacs = PUBLISHED[name]
    assert st.params - running == pytest.approx(params, rel=0.01)
    assert st.gmacs == pytest.approx(gmacs, rel=0.005)


def test_inception_v3_architecture_details() -> None:
    """Asymmetric 1x7/7x1 convs, count_include_pad avg pools, unpadded max pools."""
    model = export_model("inception_v3")
    kernels = Counter()
    for n in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Conv":
            kernels[tuple(attrs["kernel_shape"])] += 1
        if n.op_type == "AveragePool":
            assert attrs["count_include_pad"] == 1 and attrs["pads"] == [1, 1, 1, 1]
        if n.op_type == "MaxPool":
            assert attrs["pads"] == [0, 0, 0, 0] and attrs["kernel_shape"] == [3, 3]
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Conv"] == 94 and ops["Concat"] == 11 and ops["AveragePool"] == 9
    assert ops["MaxPool"] == 4
    # 6b-6e: 3 (1,7) + 3 (7,1) each; 7a: one of each; 7b/7c: two (1,3) and two (3,1) each
    assert kernels[(1, 7)] == kernels[(7, 1)] == 4 * 3 + 1
    assert kernels[(1, 3)] == kernels[(3, 1)] == 4


def test_mobilenet_depthwise_and_relu6() -> None:
    model = export_model("mobilenet_v1")
    groups = []
    for n in model.graph.node:
        if n.op_type == "Conv":
            groups.append(next((a.i for a in n.attribute if a.name == "group"), 1))
    assert len(groups) == 27
    assert sum(1 for gr in groups if gr > 1) == 13
    assert Counter(n.op_type for n in model.graph.node)["Clip"] == 27


# -- save / CLI -----------------------------------------------------------------------


def test_save_model_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.onnx"
    assert save_model("zoo-squeezenet", out, seed=4) == out
    assert _digest(onnx.load(str(out))) == _digest(export_model("zoo-squeezenet", seed=4))
    before = out.read_bytes()

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(VfpgaError, match="No space left"):
        save_model("zoo-squeezenet", out, seed=5)
    assert out.read_bytes() == before  # old file untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp file left


def test_cli_list() -> None:
    result = CliRunner().invoke(cli, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in model_names():
        assert name in result.output


def test_cli_export(tmp_path: Path) -> None:
    out = tmp_path / "sq.onnx"
    result = CliRunner().invoke(
        cli, ["models", "export", "zoo-squeezenet", "-o", str(out), "--seed", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert _digest(model) == _digest(export_model("zoo-squeezenet", seed=7))


def test_cli_export_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "x.onnx"
    result = runner.invoke(cli, ["models", "export", "nonet", "-o", str(out)])
    assert result.exit_code != 0
    assert "error: unknown model 'nonet'" in result.output
    assert "mobilenet_v1" in result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert not out.exists()

    result = runner.invoke(
        cli, ["models", "export", "zoo-squeezenet", "-o", str(tmp_path / "missing" / "x.onnx")]
    )
    assert result.exit_code != 0
    assert "does not exist" in result.output
    assert isinstance(result.exception, SystemExit)

    result = runner.invoke(
        cli, ["models", "export", "zoo-squeezenet", "-o", str(out), "--seed", "-1"]
    )
    assert result.exit_code != 0
    assert not out.exists()

    result = runner.invoke(cli, ["models", "export", "zoo-squeezenet"])
    assert result.exit_code != 0
    assert "--output" in result.output


# -- zoo re-weighting on synthetic graphs ----------------------------------------------


def _synthetic(shape_from_constant: bool, weight_consumer: str = "Conv") -> onnx.ModelProto:
    """x (1,2,5,5) -> Conv(W = ConstantOfShape([4,2,3,3]), B = float init) -> Relu -> y;
    optionally a second ConstantOfShape feeding ``weight_consumer`` instead."""
    h = onnx.helper
    nodes = []
    inits = [numpy_helper.from_array(np.full(4, 0.5, np.float32), "B")]
    shape = np.array([4, 2, 3, 3], np.int64)
    if shape_from_constant:
        nodes.append(h.make_node("Constant", [], ["W_shape"], value=numpy_helper.from_array(shape)))
    else:
        inits.append(numpy_helper.from_array(shape, "W_shape"))
    value = numpy_helper.from_array(np.array([0.02], np.float32))
    nodes.append(h.make_node("ConstantOfShape", ["W_shape"], ["W"], value=value))
    if weight_consumer == "Conv":
        nodes.append(h.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]))
    else:
        nodes.append(h.make_node(weight_consumer, ["x", "W"], ["c"], name="odd"))
    nodes.append(h.make_node("Relu", ["c"], ["y"], name="relu"))
    graph = h.make_graph(
        nodes,
        "synthetic",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])],
        initializer=inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("shape_from_constant", [False, True])
def test_reweight_folds_constant_of_shape(shape_from_constant: bool) -> None:
    from vfpga.models.zoo import reweight

    model = _synthetic(shape_from_constant)
    reweight(model, seed=3, label="synthetic")
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu"]
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert sorted(inits) == ["B", "W"]  # W_shape gone
    assert inits["W"].shape == (4, 2, 3, 3) and inits["B"].shape == (4,)
    assert not np.allclose(inits["B"], 0.5)
    # the conv reads the graph input (not rectified): N(0, 1/fan_in), fan_in = 18
    assert 0.1 < float(inits["W"].std()) < 0.4
    assert [vi.name for vi in model.graph.input] == ["x"]  # IR 8: no initializer inputs
    info = ModelInfo("s", "", "onnx-zoo", False, "x", (1, 2, 5, 5), "y", (1, 4, 5, 5), "logits", 13)
    (y,) = _run_ort(model, info, seeds=(0,))
    assert np.isfinite(y).all() and y.std() > 0


def test_reweight_rejects_unknown_weight_slot() -> None:
    from vfpga.models.zoo import reweight

    with pytest.raises(VfpgaError, match=r"odd \(Mul.*not a weight"):
        reweight(_synthetic(False, weight_consumer="Mul"), seed=0, label="synthetic")


def test_reweight_rejects_non_constant_shape() -> None:
    from vfpga.models.zoo import reweight

    model = _synthetic(False)
    del model.graph.initializer[1]  # W_shape becomes a dangling (non-constant) name
    model.graph.input.append(onnx.helper.make_tensor_value_info("W_shape", TensorProto.INT64, [4]))
    with pytest.raises(VfpgaError, match=r"W_shape.*not a constant"):
        reweight(model, seed=0)


# -- dense-prediction builders (issue 14) ----------------------------------------------

#: Op types each dense model must contain (the issue's list for it).
DENSE_OPS = {
    "yolo_nano": {"Sigmoid", "Mul", "MaxPool", "Resize", "Concat", "Add"},
    "deeplab_v3": {"Conv", "GlobalAveragePool", "Resize", "Concat", "Add"},
    "unet": {"ConvTranspose", "MaxPool", "Concat"},
}


@pytest.mark.parametrize("name", DENSE)
def test_dense_model_export_check_run(name: str) -> None:
    info = get_model_info(name)
    model = export_model(name, seed=0)
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    outs = [(info.output_name, info.output_shape), *info.extra_outputs]
    assert [(vi.name, _shape(vi)) for vi in g.output] == outs
    assert DENSE_OPS[name] <= {n.op_type for n in g.node}
    if name == "deeplab_v3":
        dil = {tuple(a.ints) for n in g.node if n.op_type == "Conv" for a in n.attribute
               if a.name == "dilations"}
        assert {(2, 2), (6, 6), (12, 12), (18, 18)} <= dil
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal(info.input_shape).astype(np.float32)
    ys = sess.run(None, {info.input_name: x})
    for y, (_, shape) in zip(ys, outs, strict=True):
        assert y.shape == shape and np.isfinite(y).all() and y.std() > 0
    assert _digest(model) == _digest(export_model(name, seed=0))
    assert _digest(model) != _digest(export_model(name, seed=1))
    assert model_stats(model).macs > 0  # shapes inferred through Resize's scales/sizes


@pytest.mark.slow
@pytest.mark.parametrize("name", DENSE)
def test_dense_model_placement_and_macs(name: str) -> None:
    """The issue's bar for the CNNs: >= 99 % of the MACs on the accelerator. Dilated
    convs, transposed convs, nearest upsampling and (ISA version 4) bilinear Resize run
    there: no host segment (accelerator MACs: every conv's window products; deeplab_v3
    has no zero-inserting conv but the pooling branch's 1x1 broadcast, 0.3 % of its
    MACs, and its final bilinear Resize 8x8 -> 128x128 is one RESIZE layer)."""
    import math

    from vfpga.frontend.pipeline import load_model
    from vfpga.frontend.qgraph import QConv, QHostOp, QResize

    g = load_model(export_model(name), num_random=4).graph
    host = [n for n in g.nodes if isinstance(n, QHostOp)]
    assert host == []
    resizes = [n for n in g.nodes if isinstance(n, QResize)]
    assert [(n.coord, g.tensors[n.output].shape) for n in resizes] == (
        [("pytorch_half_pixel", (1, 6, 128, 128))] if name == "deeplab_v3" else [])
    acc = sum(math.prod(g.tensors[n.output].shape) * math.prod(n.weight.shape[1:])
              for n in g.nodes if isinstance(n, QConv))
    host_macs = sum(int(n.attrs["macs"]) + 4 * math.prod(g.tensors[n.output].shape)
                    for n in host)
    assert acc / (acc + host_macs) >= 0.99, (acc, host_macs)
    convs = [n for n in g.nodes if isinstance(n, QConv)]
    if name == "deeplab_v3":
        assert {n.dilations for n in convs} >= {(2, 2), (6, 6), (12, 12), (18, 18)}
    else:
        assert sum(n.upsample == (2, 2) for n in convs) == (2 if name == "yolo_nano" else 4)
