"""Models whose every node runs on the host (issue 14, host partitioning): the binary has
zero accelerator layers and only host ops; compile, run, check, realloc, objdump/asm, the
pool and the server all handle it like any other binary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import tritonclient.http as th
from click.testing import CliRunner
from onnx import TensorProto, helper
from serve_util import HW, auth, put_model, solo, thread_server, write_repo

from vfpga.backend.binary import BEFORE_FIRST_LAYER, read_vfb
from vfpga.cli.main import cli
from vfpga.runtime.pool import ResourcePool
from vfpga.serve.repository import compile_onnx


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


def softmax_model() -> onnx.ModelProto:
    """One Softmax over a ``(1, 20)`` vector: a host op, nothing for the accelerator."""
    g = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], name="softmax", axis=-1)],
        "softmax_only",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def pixel_shuffle_model() -> onnx.ModelProto:
    """PixelShuffle written as Reshape -> Transpose -> Reshape (a host segment)."""
    shp1 = helper.make_tensor("s1", TensorProto.INT64, [6], [1, 2, 2, 2, 3, 3])
    shp2 = helper.make_tensor("s2", TensorProto.INT64, [4], [1, 2, 6, 6])
    g = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "s1"], ["r"], name="split_blocks"),
            helper.make_node("Transpose", ["r"], ["t"], name="interleave", perm=[0, 1, 4, 2, 5, 3]),
            helper.make_node("Reshape", ["t", "s2"], ["y"], name="merge"),
        ],
        "pixel_shuffle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])],
        [shp1, shp2],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("allhost")
    out = {}
    for name, model in (("softmax", softmax_model()), ("shuffle", pixel_shuffle_model())):
        src = root / f"{name}.onnx"
        onnx.save(model, src)
        vfb = root / f"{name}.vfb"
        res = invoke("compile", str(src), "-o", str(vfb))
        assert res.exit_code == 0, res.output
        assert "host CPU" in res.output and "0 layers" in res.output
        out[name] = src
        out[f"{name}.vfb"] = vfb
    return out


def test_compile_writes_a_binary_of_host_ops_only(compiled) -> None:
    vfb = read_vfb(compiled["softmax.vfb"])
    assert vfb.num_layers == 0 and len(vfb.ifps) == 0 and vfb.num_insns == 0
    (op,) = vfb.host_ops
    assert op.op_type == "Softmax" and op.after_layer == BEFORE_FIRST_LAYER
    # each logical core's dispatch program is its END
    assert [int(k) for k in vfb.dispatch["kind"]] == [2]
    seg = read_vfb(compiled["shuffle.vfb"])
    assert seg.num_layers == 0 and {h.op_type for h in seg.host_ops} == {"OnnxSegment"}


@pytest.mark.parametrize("name", ["softmax", "shuffle"])
@pytest.mark.parametrize("cores", ["1", "16"])
def test_check_passes(compiled, name: str, cores: str) -> None:
    res = invoke("check", str(compiled[name]), "--cores", cores)
    assert res.exit_code == 0, res.output
    assert "check passed" in res.output
    assert "graph outputs are byte-identical" in res.output


def test_run_realloc_and_asm_round_trip(compiled, tmp_path) -> None:
    vfb = compiled["softmax.vfb"]
    res = invoke("run", str(vfb), "-o", str(tmp_path / "one.npy"))
    assert res.exit_code == 0, res.output
    out4 = tmp_path / "r4.vfb"
    res = invoke("realloc", str(vfb), "--cores", "4", "--layers", "-o", str(out4))
    assert res.exit_code == 0, res.output
    assert "no accelerator layer" in res.output
    assert read_vfb(out4).num_cores == 4
    res = invoke("run", str(out4), "-o", str(tmp_path / "four.npy"))
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.load(tmp_path / "one.npy"), np.load(tmp_path / "four.npy"))
    asm = tmp_path / "s.s"
    res = invoke("objdump", str(vfb))
    assert res.exit_code == 0
    asm.write_text(res.output)
    res = invoke("asm", str(asm), "-o", str(tmp_path / "back.vfb"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "back.vfb").read_bytes() == vfb.read_bytes()


def test_pool_deploys_infers_and_resizes(compiled) -> None:
    blob = compiled["shuffle.vfb"].read_bytes()
    x = np.random.default_rng(0).integers(-128, 128, (1, 3, 3, 8), dtype=np.int8)
    pool = ResourcePool(HW)
    t = pool.create_tenant("a", 2)
    t.deploy(blob)
    first = t.infer(x)["y"].copy()
    t.resize(5)
    assert t.infer(x)["y"].tobytes() == first.tobytes()
    # the host segment only moves values: the float output is the dequantized input,
    # pixel-shuffled
    t_in = read_vfb(compiled["shuffle.vfb"]).tensors[0]
    real = (np.float32(t_in.scale) * (x.astype(np.float32) - t_in.zero_point)).ravel()
    assert first.dtype == np.float32
    assert np.array_equal(np.sort(first.ravel()), np.sort(real))


def test_server_serves_an_all_host_onnx_model(compiled, tmp_path) -> None:
    repo = write_repo(tmp_path / "repo", {"alice": 2}, {})
    put_model(repo, "sm", "alice", compiled["softmax"].read_bytes(), filename="model.onnx")
    with thread_server(repo, tmp_path / "state", request_timeout_s=20.0) as s:
        c = th.InferenceServerClient(s.url, network_timeout=60.0)
        m = c.get_model_metadata("sm", headers=auth("alice"))
        shape = m["inputs"][0]["shape"]
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        inp = th.InferInput(m["inputs"][0]["name"], shape, "FP32")
        inp.set_data_from_numpy(x)
        r = c.infer("sm", [inp], headers=auth("alice"))
        y = r.as_numpy(m["outputs"][0]["name"])
        want = solo(compile_onnx(compiled["softmax"], HW, {}), x)[m["outputs"][0]["name"]]
        assert y.tobytes() == want.tobytes()
        p = r.get_response()["parameters"]
        assert p["vfpga_cores"] == 2 and p["vfpga_predicted_latency_s"] == 0
