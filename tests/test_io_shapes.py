"""Graph inputs and outputs in their own ONNX shape (issue 14): an ``(N, C, L)`` sequence
held as the map ``(N, C, 1, L)`` is given and returned as ``(N, C, L)`` by ``vfpga run``,
the pool and the server, from the ONNX shapes the binary records (PROGRAM ``io_shapes``);
the 4-D form stays accepted for inputs. Binaries of models whose tensors users see in
their stored shape do not change."""

from __future__ import annotations

import hashlib

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as th
from click.testing import CliRunner
from serve_util import HW, auth, blob, put_model, thread_server, write_repo
from test_rank3 import line_model

from vfpga.backend.asm import assemble
from vfpga.backend.binary import BinaryFormatError, from_bytes, to_bytes
from vfpga.backend.disasm import disassemble
from vfpga.cli.main import cli
from vfpga.emulator.tensor_layout import accepted_shapes, from_stored, to_stored, user_shape
from vfpga.runtime.pool import ResourcePool
from vfpga.serve.repository import compile_onnx


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def line(tmp_path_factory):  # type: ignore[no-untyped-def]
    """(ONNX path, compiled binary bytes) of the 1-D network ``[1, 4, 40] -> [1, 8, 5]``."""
    d = tmp_path_factory.mktemp("line")
    src = d / "line.onnx"
    onnx.save(line_model(), src)
    return src, compile_onnx(src, HW, {})


def test_binary_records_the_onnx_shapes(line) -> None:  # type: ignore[no-untyped-def]
    vfb = from_bytes(line[1], "line.vfb", HW)
    t_in = next(t for t in vfb.tensors if t.role == "input")
    t_out = next(t for t in vfb.tensors if t.role == "output")
    assert (t_in.shape, t_in.onnx_shape, user_shape(t_in)) == ((1, 1, 40, 4), (1, 4, 40),
                                                               (1, 4, 40))
    assert (t_out.onnx_shape, user_shape(t_out)) == ((1, 8, 5), (1, 8, 5))
    assert accepted_shapes(t_in) == [(1, 4, 40), (1, 4, 1, 40)]
    assert b'{"x":[1,4,40],"y":[1,8,5]}' in line[1]
    # the disassembly keeps them: assembling it gives the same bytes
    assert "onnx_shape=1x4x40" in disassemble(vfb)
    assert to_bytes(assemble(disassemble(vfb), hw=HW)) == line[1]


def test_models_seen_in_their_stored_shape_record_nothing() -> None:
    """An NCHW image in, a class vector out: no ONNX shape differs, the PROGRAM field is
    0 and the bytes are those of a binary without the field."""
    data = blob(0)
    vfb = from_bytes(data, "x", HW)
    assert all(t.onnx_shape is None for t in vfb.tensors)
    assert b"onnx_shape" not in disassemble(vfb).encode()


def _resealed(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with ``old`` replaced by ``new`` (same length) and the SHA-256 trailer
    recomputed: a well-formed file with hostile content."""
    assert len(old) == len(new) and data.count(old) == 1
    body = data[:-32].replace(old, new)
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b'[1,8,5]', b'[1,8,6]', "ONNX shape [1, 8, 6] must have 1..8 positive dimensions "
                                 "holding its 40 elements"),
        (b'[1,8,5]', b'[1,0,5]', "positive dimensions"),
        (b'"y":[1', b'"z":[1', "PROGRAM io_shapes: no tensor 'z'"),
        (b'{"x":', b'["x":', "PROGRAM io_shapes: not JSON"),
        (b'[1,4,40]', b'"1,4,40"', "is not a list of integers"),
    ],
)
def test_hostile_io_shapes_are_refused(tmp_path, line, old: bytes, new: bytes,
                                       message: str) -> None:
    bad = _resealed(line[1], old, new)
    with pytest.raises(BinaryFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_bytes(bad, "bad.vfb", HW)
    (tmp_path / "bad.vfb").write_bytes(bad)
    res = invoke("run", str(tmp_path / "bad.vfb"))
    assert res.exit_code == 2 and res.output.startswith("error: ") and "Traceback" not in res.output


def test_run_takes_and_gives_the_onnx_shape(tmp_path, line) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "line.vfb").write_bytes(line[1])
    x = np.random.default_rng(5).standard_normal((1, 4, 40)).astype(np.float32)
    outs = []
    for k, arr in enumerate((x, x.reshape(1, 4, 1, 40))):
        np.save(tmp_path / f"x{k}.npy", arr)
        res = invoke("run", str(tmp_path / "line.vfb"), "-i", str(tmp_path / f"x{k}.npy"),
                     "-o", str(tmp_path / f"y{k}.npy"))
        assert res.exit_code == 0, res.output
        outs.append(np.load(tmp_path / f"y{k}.npy"))
    assert outs[0].shape == (1, 8, 5) and np.array_equal(outs[0], outs[1])
    np.save(tmp_path / "bad.npy", x.reshape(1, 4, 40, 1))
    res = invoke("run", str(tmp_path / "line.vfb"), "-i", str(tmp_path / "bad.npy"))
    assert res.exit_code == 2 and "must be NCHW 1x4x40 for input 'x'" in res.output


def test_pool_and_server_use_the_onnx_shape(tmp_path, line) -> None:  # type: ignore[no-untyped-def]
    """Metadata and responses in the ONNX shapes; a request in the ONNX shape and one in
    the 4-D form answer the same; another shape is a 400."""
    src, data = line
    vfb = from_bytes(data, "x", HW)
    t_in = next(t for t in vfb.tensors if t.role == "input")
    t_out = next(t for t in vfb.tensors if t.role == "output")
    x = np.random.default_rng(6).standard_normal((1, 4, 40)).astype(np.float32)
    tenant = ResourcePool(HW).create_tenant("solo", 1)
    tenant.deploy(data)
    want = from_stored(t_out, tenant.infer({"x": to_stored(t_in, x)})["y"])
    assert want.shape == (1, 8, 5)
    repo = write_repo(tmp_path / "repo", {"alice": 2}, {})
    put_model(repo, "line", "alice", src.read_bytes(), filename="model.onnx")
    with thread_server(repo, tmp_path / "state", request_timeout_s=20.0) as s:
        c = th.InferenceServerClient(s.url, network_timeout=60.0)
        meta = c.get_model_metadata("line", headers=auth("alice"))
        assert [int(d) for d in meta["inputs"][0]["shape"]] == [1, 4, 40]
        assert [int(d) for d in meta["outputs"][0]["shape"]] == [1, 8, 5]
        for arr in (x, x.reshape(1, 4, 1, 40)):
            inp = th.InferInput("x", list(arr.shape), "FP32")
            inp.set_data_from_numpy(arr)
            r = c.infer("line", [inp], headers=auth("alice"))
            assert np.array_equal(r.as_numpy("y"), want)
        url = f"http://{s.url}/v2/models/line/infer"
        item = {"name": "x", "shape": [1, 4, 40, 1], "datatype": "FP32", "data": [0.0] * 160}
        resp = httpx.post(url, json={"inputs": [item]}, headers=auth("alice"), timeout=60)
        assert resp.status_code == 400
        assert "differs from the model's [1, 4, 40]" in resp.json()["error"]


def poisson_model() -> onnx.ModelProto:
    """PyTorch's ``PoissonNLLLoss(reduction='none')`` export: ``exp(x) - target * x`` with
    a constant target of 3 rows, so the ``(1, 5)`` input gives a ``(3, 5)`` output."""
    from onnx import TensorProto, helper, numpy_helper

    target = numpy_helper.from_array(
        np.random.default_rng(7).uniform(0, 2, (3, 5)).astype(np.float32), "t")
    g = helper.make_graph(
        [
            helper.make_node("Exp", ["x"], ["e"], name="exp"),
            helper.make_node("Mul", ["t", "x"], ["m"], name="mul"),
            helper.make_node("Sub", ["e", "m"], ["y"], name="sub"),
        ],
        "poisson",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
        [target],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("cores", ["1", "16"])
def test_rows_broadcast_from_a_constant_check_and_run(tmp_path, cores: str) -> None:
    """A host output with more rows than the batch-1 input (a constant broadcasts): held
    flat, checked byte for byte, and given in its ONNX shape ``(3, 5)``."""
    src = tmp_path / "poisson.onnx"
    onnx.save(poisson_model(), src)
    res = invoke("check", str(src), "--cores", cores)
    assert res.exit_code == 0, res.output
    assert "check passed" in res.output and "identical int8 outputs 100.00%" in res.output
    vfb = tmp_path / "p.vfb"
    assert invoke("compile", str(src), "-o", str(vfb), "--cores", cores).exit_code == 0
    res = invoke("run", str(vfb), "-o", str(tmp_path / "y.npy"))
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "y.npy").shape == (3, 5)
