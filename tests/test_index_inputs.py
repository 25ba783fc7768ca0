"""Graph inputs of int64 token ids (issue 14: ``test_Embedding``): an ``Embedding`` is a
``Gather`` of a float table by int64 ids. The ids are stored in the binary as an int64
tensor, read by the Gather's host segment; ``vfpga run``/``check``/``quantize`` generate
valid ids (in ``[0, rows)``, the rows derived from the graph), the pool and the server
take ``INT64`` tensors and refuse out-of-range ids per request."""

from __future__ import annotations

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.http as th
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from serve_util import HW, auth, put_model, thread_server, write_repo

from vfpga.backend.binary import from_bytes, read_vfb
from vfpga.cli.main import cli
from vfpga.emulator.tensor_layout import binary_index_bounds, from_stored, to_stored, user_shape
from vfpga.errors import FrontendError, VfpgaError
from vfpga.quant.index_inputs import check_indices, index_bound
from vfpga.quant.quantize import quantize_model
from vfpga.runtime.pool import ResourcePool
from vfpga.serve.repository import compile_onnx

ROWS, TOKENS, DIM = 10, 6, 8


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


def embed_model() -> onnx.ModelProto:
    """``Gather(table[10, 8], ids[1, 6])`` (the host), then a token-wise ``MatMul`` and
    ``Relu`` (the accelerator)."""
    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((ROWS, DIM)).astype(np.float32), "table")
    w = numpy_helper.from_array((rng.standard_normal((DIM, 12)) * 0.3).astype(np.float32), "w")
    g = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
            helper.make_node("MatMul", ["e", "w"], ["m"], name="proj"),
            helper.make_node("Relu", ["m"], ["y"], name="relu"),
        ],
        "embed_net",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, TOKENS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, TOKENS, 12])],
        [table, w],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def cast_model() -> onnx.ModelProto:
    """int64 ids read by a ``Cast`` (not a Gather): their valid range is unknown."""
    g = helper.make_graph(
        [
            helper.make_node("Cast", ["ids"], ["f"], name="cast", to=TensorProto.FLOAT),
            helper.make_node("Relu", ["f"], ["y"], name="relu"),
        ],
        "cast_net",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, TOKENS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, TOKENS])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.fixture(scope="module")
def embed(tmp_path_factory):  # type: ignore[no-untyped-def]
    """(ONNX path, compiled binary path)."""
    d = tmp_path_factory.mktemp("embed")
    src = d / "embed.onnx"
    onnx.save(embed_model(), src)
    out = d / "embed.vfb"
    res = invoke("compile", str(src), "-o", str(out))
    assert res.exit_code == 0, res.output
    return src, out


@pytest.mark.parametrize("cores", ["1", "16"])
def test_check_passes(embed, cores: str) -> None:  # type: ignore[no-untyped-def]
    res = invoke("check", str(embed[0]), "--cores", cores)
    assert res.exit_code == 0, res.output
    assert "check passed" in res.output
    assert "byte-identical" in res.output


def test_binary_stores_the_ids_as_int64(embed) -> None:  # type: ignore[no-untyped-def]
    res = invoke("compile", str(embed[0]), "-o", str(embed[1]))
    assert "reads the int64 ids of the graph input 'ids'" in res.output
    vfb = read_vfb(embed[1])
    t_in = next(t for t in vfb.tensors if t.role == "input")
    assert t_in.dtype == "int64" and t_in.size == TOKENS * 8
    assert (t_in.scale, t_in.zero_point) == (1.0, 0)
    assert len(vfb.layers) >= 1  # the projection runs on the accelerator
    assert binary_index_bounds(vfb) == {"ids": ROWS}


def _run_ids(tmp_path, vfb, ids: np.ndarray, name: str = "ids.npy"):  # type: ignore[no-untyped-def]
    t_in = next(t for t in read_vfb(vfb).tensors if t.role == "input")
    np.save(tmp_path / name, ids.reshape(user_shape(t_in)))
    out = tmp_path / f"{name}.out.npz"
    return invoke("run", str(vfb), "-i", str(tmp_path / name), "-o", str(out)), out


def test_run_takes_int64_ids_and_matches_onnxruntime(tmp_path, embed) -> None:  # type: ignore[no-untyped-def]
    """The emulator's output on given ids equals onnxruntime's on the QDQ model ``vfpga
    quantize`` writes (the same calibration as the compile), negative ids (from the end,
    as ONNX Gather) included."""
    src, vfb = embed
    ids = np.array([[0, 9, 3, -1, -10, 4]], np.int64)
    res, out = _run_ids(tmp_path, vfb, ids)
    assert res.exit_code == 0, res.output
    got = np.load(out)["y"]
    res = invoke("quantize", str(src), "-o", str(tmp_path / "q.onnx"))
    assert res.exit_code == 0, res.output
    assert "16 random int64 id inputs, uniform over the rows" in res.output
    want = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"ids": ids})[0]
    assert got.dtype == np.float32 and np.array_equal(got.reshape(want.shape), want)


def test_run_makes_valid_random_ids(tmp_path, embed) -> None:  # type: ignore[no-untyped-def]
    res = invoke("run", str(embed[1]))
    assert res.exit_code == 0, res.output
    assert f"using random int64 ids in [0, {ROWS})" in res.output


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (np.array([[0, 1, 2, 3, 4, ROWS]]), f"id {ROWS} at [0, 5"),
        (np.array([[0, 1, 2, 3, -ROWS - 1, 0]]), "is out of range"),
        (np.zeros((1, TOKENS), np.float32), "holds int64 ids; got float32 values"),
    ],
)
def test_run_refuses_bad_ids(tmp_path, embed, ids: np.ndarray, message: str) -> None:  # type: ignore[no-untyped-def]
    res, out = _run_ids(tmp_path, embed[1], ids)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_run_refuses_a_wrong_shape(tmp_path, embed) -> None:  # type: ignore[no-untyped-def]
    np.save(tmp_path / "short.npy", np.zeros((1, 3), np.int64))
    res = invoke("run", str(embed[1]), "-i", str(tmp_path / "short.npy"))
    assert res.exit_code == 2
    assert "input 'ids' takes int64 ids of shape" in res.output


def test_calibration_feeds_valid_ids(tmp_path) -> None:
    """Random calibration draws ids in [0, rows) (never normal floats); ``--calib-dir``
    takes .npy id arrays, checked against the table's rows."""
    src = tmp_path / "embed.onnx"
    onnx.save(embed_model(), src)
    res = invoke("quantize", str(src), "-o", str(tmp_path / "q.onnx"))
    assert res.exit_code == 0, res.output
    ids = tmp_path / "ids"
    ids.mkdir()
    for k in range(3):
        np.save(ids / f"{k}.npy", np.random.default_rng(k).integers(0, ROWS, (1, TOKENS)))
    res = invoke("quantize", str(src), "-o", str(tmp_path / "q2.onnx"), "--calib-dir", str(ids))
    assert res.exit_code == 0, res.output
    np.save(ids / "9.npy", np.full((1, TOKENS), ROWS))
    res = invoke("quantize", str(src), "-o", str(tmp_path / "q3.onnx"), "--calib-dir", str(ids))
    assert res.exit_code == 2
    assert "9.npy (ids for input 'ids'): id 10 at [0, 0] is out of range" in res.output
    assert not (tmp_path / "q3.onnx").exists()


def test_ids_whose_range_the_graph_does_not_tell(tmp_path) -> None:
    """Ids read by a Cast: no range to draw random ids from, so check refuses naming the
    input unless ids are given (calibration and check inputs from .npy files)."""
    src = tmp_path / "cast.onnx"
    onnx.save(cast_model(), src)
    res = invoke("check", str(src))
    assert res.exit_code == 2
    assert "input 'ids' holds int64 ids, and their valid range cannot be derived" in res.output
    ids = tmp_path / "ids"
    ids.mkdir()
    np.save(ids / "a.npy", np.arange(TOKENS).reshape(1, TOKENS) * 1000)
    res = invoke("check", str(src), "--calib-dir", str(ids), "--inputs", str(ids))
    assert res.exit_code == 0, res.output
    assert "check passed" in res.output


def test_index_bound_units() -> None:
    m = embed_model()
    assert index_bound(m, "ids") == ROWS
    assert index_bound(cast_model(), "ids") is None
    axis1 = onnx.ModelProto()
    axis1.CopyFrom(m)
    axis1.graph.node[0].attribute.append(helper.make_attribute("axis", 1))
    assert index_bound(axis1, "ids") == DIM
    with pytest.raises(VfpgaError, match="out of range"):
        check_indices(np.array([ROWS]), ROWS, "x")
    assert check_indices(np.array([-ROWS, ROWS - 1], np.int32), ROWS, "x").dtype == np.int64
    assert check_indices(np.array([10**6]), None, "x")[0] == 10**6  # unknown range
    with pytest.raises(VfpgaError, match="got float64"):
        check_indices(np.array([1.0]), ROWS, "x")
    with pytest.raises(FrontendError, match="cannot be derived"):
        quantize_model(cast_model())


def test_pool_fails_an_out_of_range_request_alone(embed) -> None:  # type: ignore[no-untyped-def]
    data = embed[1].read_bytes()
    vfb = from_bytes(data, "x", HW)
    t_in = next(t for t in vfb.tensors if t.role == "input")
    pool = ResourcePool(HW)
    tenant = pool.create_tenant("a", 2)
    tenant.deploy(data)
    good = to_stored(t_in, np.arange(TOKENS, dtype=np.int64).reshape(user_shape(t_in)))
    bad = to_stored(t_in, np.full(user_shape(t_in), ROWS, np.int64))
    r_bad = tenant.submit({"ids": bad})
    r_float = tenant.submit({"ids": good.astype(np.float32)})
    r_good = tenant.submit({"ids": good})
    pool.run_until_idle()
    assert r_bad.status == "failed" and "out of range" in r_bad.error, r_bad
    assert r_float.status == "failed" and "int64 ids" in r_float.error, r_float
    assert r_good.status == "done", r_good


def test_server_takes_int64_ids_and_refuses_bad_ones(tmp_path, embed) -> None:  # type: ignore[no-untyped-def]
    """KServe v2 ``INT64`` ids: the same output as a solo run; out-of-range ids, another
    datatype or shape are a 400 naming the input, and the server keeps serving."""
    src = embed[0]
    repo = write_repo(tmp_path / "repo", {"alice": 2}, {})
    put_model(repo, "embed", "alice", src.read_bytes(), filename="model.onnx")
    data = compile_onnx(src, HW, {})
    vfb = from_bytes(data, "x", HW)
    t_in = next(t for t in vfb.tensors if t.role == "input")
    t_out = next(t for t in vfb.tensors if t.role == "output")
    shape = list(user_shape(t_in))
    ids = np.array([3, 1, 4, 1, 5, 9], np.int64).reshape(shape)
    pool = ResourcePool(HW)
    solo = pool.create_tenant("solo", 1)
    solo.deploy(data)
    want = from_stored(t_out, solo.infer({"ids": to_stored(t_in, ids)})["y"])
    with thread_server(repo, tmp_path / "state", request_timeout_s=20.0) as s:
        c = th.InferenceServerClient(s.url, network_timeout=60.0)
        meta = c.get_model_metadata("embed", headers=auth("alice"))
        assert meta["inputs"][0]["datatype"] == "INT64"
        for binary in (False, True):
            inp = th.InferInput("ids", shape, "INT64")
            inp.set_data_from_numpy(ids, binary_data=binary)
            r = c.infer("embed", [inp], headers=auth("alice"))
            assert np.array_equal(r.as_numpy("y"), want)
        url = f"{s.url if s.url.startswith('http') else 'http://' + s.url}/v2/models/embed/infer"
        bad_cases = [
            ({"datatype": "INT64", "data": [0, 1, 2, 3, 4, ROWS]}, "out of range"),
            ({"datatype": "INT64", "data": [0, 1, 2, 3, 4, -ROWS - 1]}, "out of range"),
            ({"datatype": "INT64", "data": [0, 1, 2, 3, 4, 2**63]}, "not a list of INT64"),
            ({"datatype": "INT64", "data": [0, 1, 2, 3, 4, 0.5]}, "not a list of INT64"),
            ({"datatype": "FP32", "data": [0.0] * TOKENS}, "use INT64"),
            ({"datatype": "INT8", "data": [0] * TOKENS}, "use INT64"),
        ]
        for body, message in bad_cases:
            item = {"name": "ids", "shape": shape, **body}
            resp = httpx.post(url, json={"inputs": [item]}, headers=auth("alice"), timeout=60)
            assert resp.status_code == 400, (body, resp.text)
            assert message in resp.json()["error"] and "'ids'" in resp.json()["error"]
        assert shape == [1, TOKENS]  # the ONNX shape (the 4-D form is accepted too)
        for other, status in (([1, TOKENS, 1, 1], 200), ([TOKENS], 400), ([1, 2, 3], 400)):
            item = {"name": "ids", "shape": other, "datatype": "INT64", "data": [0] * TOKENS}
            resp = httpx.post(url, json={"inputs": [item]}, headers=auth("alice"), timeout=60)
            assert resp.status_code == status, (other, resp.text)
            if status == 400:
                assert "differs from the model's [1, 6]" in resp.json()["error"]
        inp = th.InferInput("ids", shape, "INT64")
        inp.set_data_from_numpy(ids)
        r = c.infer("embed", [inp], headers=auth("alice"))  # still serving
        assert np.array_equal(r.as_numpy("y"), want)
