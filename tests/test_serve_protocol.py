"""`vfpga serve` speaks KServe v2: tritonclient's HTTP client, unmodified, against a server
this test starts on 127.0.0.1 (health, metadata, inference with JSON and binary tensors,
an ONNX model compiled at load with float NCHW inputs), and the protocol's refusals
(bad tensors 400, oversized bodies 413, a full queue 429 with Retry-After, the run-time
budget 504)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as th
from qdq_models import classifier
from serve_util import (
    HW,
    auth,
    blob,
    put_model,
    solo,
    thread_server,
    user_input,
    write_repo,
)
from tritonclient.utils import InferenceServerException

from vfpga.serve.app import listen_socket
from vfpga.serve.repository import compile_onnx


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    root = tmp_path_factory.mktemp("serve")
    repo = write_repo(
        root / "repo",
        {"alice": 2, "bob": 3},
        {"small": ("alice", blob(1)), "other": ("bob", blob(2))},
        extra={"alice": {"max_queue": 2}},
    )
    onnx_path = root / "classifier.onnx"
    onnx.save(classifier(seed=3), onnx_path)
    put_model(repo, "cls", "bob", onnx_path.read_bytes(), filename="model.onnx")
    with thread_server(repo, root / "state", request_timeout_s=6.0) as s:
        yield s, onnx_path


def client(s) -> th.InferenceServerClient:  # type: ignore[no-untyped-def]
    return th.InferenceServerClient(s.url, network_timeout=60.0)


def test_health_and_metadata(served) -> None:  # type: ignore[no-untyped-def]
    s, _ = served
    c = client(s)
    assert c.is_server_live() and c.is_server_ready()
    meta = c.get_server_metadata(headers=auth("alice"))
    assert meta["name"] == "vfpga" and "binary_tensor_data" in meta["extensions"]
    m = c.get_model_metadata("small", headers=auth("alice"))
    assert m["inputs"] == [{"name": "input", "datatype": "INT8", "shape": [1, 3, 16, 16]}]
    assert m["outputs"] == [{"name": "conv14.out", "datatype": "INT8", "shape": [1, 10]}]
    assert c.get_model_metadata("small", "1", headers=auth("alice"))["versions"] == ["1"]
    assert c.is_model_ready("small", headers=auth("alice"))
    assert c.is_model_ready("small", "1", headers=auth("alice"))
    assert not c.is_model_ready("small", "7", headers=auth("alice"))
    with pytest.raises(InferenceServerException) as err:
        c.get_model_metadata("small")  # no token
    assert err.value.status() == "401"
    with pytest.raises(InferenceServerException) as err:
        c.get_model_metadata("small", headers=auth("bob"))  # another tenant's model
    assert err.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False])
def test_infer_int8_matches_a_solo_run(served, binary: bool) -> None:  # type: ignore[no-untyped-def]
    s, _ = served
    c = client(s)
    for seed in range(3):
        x = user_input(blob(1), seed)
        inp = th.InferInput("input", list(x.shape), "INT8")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = th.InferRequestedOutput("conv14.out", binary_data=binary)
        r = c.infer("small", [inp], outputs=[out], headers=auth("alice"), request_id=f"r{seed}")
        got = r.as_numpy("conv14.out")
        want = solo(blob(1), x)["conv14.out"]
        assert got.dtype == np.int8 and got.shape == (1, 10)
        assert got.tobytes() == want.tobytes()
        resp = r.get_response()
        assert resp["id"] == f"r{seed}" and resp["model_version"] == "1"
        params = resp["parameters"]
        assert params["vfpga_predicted_latency_s"] > 0 and params["vfpga_cores"] == 2
        out_t = r.get_output("conv14.out")
        assert set(out_t["parameters"]) >= {"scale", "zero_point"}


def test_onnx_model_compiled_at_load_takes_float_nchw(served) -> None:  # type: ignore[no-untyped-def]
    s, onnx_path = served
    c = client(s)
    m = c.get_model_metadata("cls", headers=auth("bob"))
    shape = m["inputs"][0]["shape"]
    assert shape == [1, 3, 16, 16]
    want_blob = compile_onnx(onnx_path, HW, {})
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    inp = th.InferInput(m["inputs"][0]["name"], shape, "FP32")
    inp.set_data_from_numpy(x)
    r = c.infer("cls", [inp], headers=auth("bob"))
    name = m["outputs"][0]["name"]
    want = solo(want_blob, x)[name]
    assert r.as_numpy(name).tobytes() == want.tobytes()


def test_repository_through_tritonclient(served) -> None:  # type: ignore[no-untyped-def]
    s, _ = served
    c = client(s)
    index = c.get_model_repository_index(headers=auth("operator"))
    assert {(m["name"], m["state"]) for m in index} >= {("small", "READY"), ("cls", "READY")}
    c.unload_model("other", headers=auth("operator"))
    assert not c.is_model_ready("other", headers=auth("bob"))
    c.load_model("other", headers=auth("operator"))
    assert c.is_model_ready("other", headers=auth("bob"))
    with pytest.raises(InferenceServerException) as err:
        c.load_model("other", headers=auth("bob"))  # a tenant is not the operator
    assert err.value.status() == "403"


def _post(s, model: str, body: dict | bytes, who: str = "alice", **headers: str):  # type: ignore[no-untyped-def]
    h = auth(who) | headers
    if isinstance(body, dict):
        body = json.dumps(body).encode()  # allows NaN, as a hostile client may send
    return httpx.post(
        f"http://{s.url}/v2/models/{model}/infer", content=body, headers=h, timeout=30
    )


def _tensor(x: np.ndarray, **kw: object) -> dict:
    return {
        "name": "input",
        "shape": list(x.shape),
        "datatype": "INT8",
        "data": x.reshape(-1).tolist(),
    } | kw


def test_bad_tensors_are_400_naming_the_problem(served) -> None:  # type: ignore[no-untyped-def]
    s, _ = served
    x = user_input(blob(1), 0)
    cases = {
        "shape": ({"inputs": [_tensor(x, shape=[1, 16, 16, 3])]}, "shape"),
        "datatype": ({"inputs": [_tensor(x, datatype="INT32")]}, "datatype"),
        "name": ({"inputs": [_tensor(x, name="nope")]}, "not an input"),
        "count": ({"inputs": [_tensor(x, data=[1, 2, 3])]}, "values"),
        "range": ({"inputs": [_tensor(x, data=[300] * x.size)]}, "-128..127"),
        "strings": ({"inputs": [_tensor(x, data=["a"] * x.size)]}, "INT8"),
        "missing": ({"inputs": []}, "missing input"),
        "output": ({"inputs": [_tensor(x)], "outputs": [{"name": "zz"}]}, "not an output"),
        "nan": ({"inputs": [_tensor(x, datatype="FP32", data=[float("nan")] * x.size)]}, None),
    }
    for what, (body, words) in cases.items():
        r = _post(s, "small", body)
        assert r.status_code == 400, (what, r.text)
        if words:
            assert words in r.json()["error"], (what, r.text)
    r = _post(s, "small", b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    deep = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = _post(s, "small", deep)
    assert r.status_code == 400
    deep_data = (
        b'{"inputs": [{"name": "input", "shape": [1, 3, 16, 16], "datatype": "INT8", '
        b'"data": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}]}"
    )
    r = _post(s, "small", deep_data)
    assert r.status_code == 400
    head = (
        b'{"inputs":[{"name":"input","shape":[1,3,16,16],"datatype":"INT8",'
        b'"parameters":{"binary_data_size":768}}]}'
    )
    r = _post(s, "small", head + b"\0" * 100, **{"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 400 and "ends before" in r.json()["error"]
    r = _post(s, "small", b"x" * (5 << 20))
    assert r.status_code == 413
    r = _post(s, "small", b"x", **{"Content-Encoding": "gzip"})
    assert r.status_code == 415
    # the server still answers correctly afterwards
    r = _post(s, "small", {"inputs": [_tensor(x)]})
    assert r.status_code == 200
    got = np.array(r.json()["outputs"][0]["data"], np.int8)
    assert got.tobytes() == solo(blob(1), x)["conv14.out"].tobytes()


def test_infer_route_phases_and_failures(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The inference route (raw ASGI, in front of FastAPI): the Server-Timing header gives
    the server's phases; an unexpected error fails that request alone with a JSON 500;
    other methods on the path are still FastAPI's (405)."""
    s, _ = served
    x = user_input(blob(1), 0)
    r = _post(s, "small/versions/1", {"inputs": [_tensor(x)]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    phases = dict(item.split(";dur=") for item in r.headers["server-timing"].split(", "))
    assert list(phases) == ["auth", "body", "decode", "queue", "run", "back", "encode"]
    assert all(float(v) >= 0 for v in phases.values()) and float(phases["run"]) > 0
    assert float(phases["run"]) / 1e3 == pytest.approx(
        r.json()["parameters"]["vfpga_run_s"], abs=1e-5
    )
    r = httpx.get(f"http://{s.url}/v2/models/small/infer", headers=auth("alice"), timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "POST"

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(s.server.scheduler, "submit", broken)
    r = _post(s, "small", {"inputs": [_tensor(x)]})
    assert r.status_code == 500 and r.json() == {"error": "internal error: RuntimeError"}
    monkeypatch.undo()
    assert _post(s, "small", {"inputs": [_tensor(x)]}).status_code == 200


def test_full_queue_is_429_with_retry_after(served) -> None:  # type: ignore[no-untyped-def]
    s, _ = served
    x = user_input(blob(1), 0)
    hold = threading.Event()
    busy = s.server.scheduler.call(lambda: hold.wait(10))  # the pool's thread is busy
    results: list[httpx.Response] = []

    def send() -> None:
        results.append(_post(s, "small", {"inputs": [_tensor(x)]}))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    while s.server.scheduler.metrics.queue_depth.labels("alice")._value.get() < 2:
        assert time.monotonic() - t0 < 10
        time.sleep(0.01)
    r = _post(s, "small", {"inputs": [_tensor(x)]})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "queue full" in r.json()["error"]
    hold.set()
    busy.result(20)
    for t in threads:
        t.join(30)
    assert [r.status_code for r in results] == [200, 200]


def test_run_time_budget_is_504(served) -> None:  # type: ignore[no-untyped-def]
    s, _ = served
    x = user_input(blob(1), 0)
    busy = s.server.scheduler.call(lambda: time.sleep(8.0))  # past the 6 s budget
    r = _post(s, "small", {"inputs": [_tensor(x)]})
    busy.result(20)
    assert r.status_code == 504 and "budget" in r.json()["error"]
    assert _post(s, "small", {"inputs": [_tensor(x)]}).status_code == 200


def test_metrics(served) -> None:  # type: ignore[no-untyped-def]
    s, _ = served
    x = user_input(blob(1), 0)
    assert _post(s, "small", {"inputs": [_tensor(x)]}).status_code == 200
    r = httpx.get(f"http://{s.url}/metrics", headers=auth("operator"), timeout=10)
    assert r.status_code == 200
    text = r.text
    for name in (
        "vfpga_requests_total",
        "vfpga_request_failures_total",
        "vfpga_queue_depth",
        "vfpga_request_latency_seconds_bucket",
        "vfpga_predicted_accelerator_latency_seconds_bucket",
        "vfpga_cores",
        "vfpga_reconfigurations_total",
        "vfpga_model_deploys_total",
    ):
        assert name in text or name.replace("_total", "") in text, name
    assert 'vfpga_cores{tenant="alice"} 2.0' in text
    assert 'vfpga_model_deploys_total{model="small",tenant="alice"} 1.0' in text


def test_hash_token_and_bad_repository_exit_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vfpga.cli.main import cli
    from vfpga.serve.auth import hash_token

    r = CliRunner().invoke(cli, ["serve", "--hash-token"], input="abc\n")
    assert r.exit_code == 0 and r.output.strip() == hash_token("abc")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tenants.toml").write_text('[tenants.a]\ncores = 99\ntoken_sha256 = "x"\n')
    r = CliRunner().invoke(
        cli,
        ["serve", "--repository", str(repo), "--state-dir", str(tmp_path / "st"), "--port", "0"],
    )
    assert r.exit_code == 2
    assert "error:" in r.output and "tenants.toml" in r.output and "cores" in r.output
    assert "Traceback" not in r.output
    taken = listen_socket("127.0.0.1", 0)
    try:
        port = str(taken.getsockname()[1])
        r = CliRunner().invoke(
            cli,
            [
                "serve",
                "--repository",
                str(repo),
                "--state-dir",
                str(tmp_path / "st"),
                "--port",
                port,
            ],
        )
        assert r.exit_code == 2 and "cannot listen on 127.0.0.1:" in r.output
    finally:
        taken.close()
    r = CliRunner().invoke(
        cli,
        [
            "serve",
            "--repository",
            str(repo),
            "--state-dir",
            str(tmp_path / "st"),
            "--port",
            "0",
            "--operator-token-file",
            str(tmp_path / "nope"),
        ],
    )
    assert r.exit_code == 2 and "operator-token-file" in r.output
    bad_state = tmp_path / "bad_state"
    bad_state.mkdir()
    (bad_state / "state.sqlite").write_bytes(b"this is not a database" * 100)
    r = CliRunner().invoke(
        cli, ["serve", "--repository", str(repo), "--state-dir", str(bad_state), "--port", "0"]
    )
    assert r.exit_code == 2 and "state" in r.output and "Traceback" not in r.output
