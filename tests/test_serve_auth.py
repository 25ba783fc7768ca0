"""`vfpga serve` tenancy and security: health is open, everything else needs a token
(401); a tenant sees only its own models (another's is 404); only the operator manages
tenants and the repository (403 for tenants); a corrupt binary is refused at load and
changes nothing (index, state database, outputs)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_util import (
    OPERATOR_TOKEN,
    auth,
    blob,
    corrupt,
    put_model,
    solo,
    thread_server,
    user_input,
    write_repo,
)

from vfpga.serve.auth import hash_token


@pytest.fixture
def served(tmp_path: Path) -> Iterator:
    repo = write_repo(
        tmp_path / "repo",
        {"alice": 2, "bob": 3},
        {"small": ("alice", blob(1)), "other": ("bob", blob(2))},
    )
    with thread_server(repo, tmp_path / "state") as s:
        yield s, repo, tmp_path / "state" / "state.sqlite"


def get(s, path: str, who: str | None = None) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.get(f"http://{s.url}{path}", headers=auth(who) if who else {}, timeout=30)


def post(s, path: str, who: str | None = None, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(f"http://{s.url}{path}", headers=auth(who) if who else {}, timeout=60, **kw)


def infer(s, model: str, who: str, x: np.ndarray) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": list(x.shape),
                "datatype": "INT8",
                "data": x.reshape(-1).tolist(),
            }
        ]
    }
    return post(s, f"/v2/models/{model}/infer", who, json=body)


def snapshot(db: Path) -> list:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            con.execute(q).fetchall()
            for q in (
                "SELECT * FROM tenants ORDER BY name",
                "SELECT * FROM models ORDER BY name",
                "SELECT sha256 FROM binaries ORDER BY sha256",
            )
        ]
    finally:
        con.close()


def test_tokens_and_visibility(served) -> None:  # type: ignore[no-untyped-def]
    s, _, _ = served
    x = user_input(blob(1), 0)
    assert get(s, "/v2/health/live").status_code == 200
    assert get(s, "/v2/health/ready").status_code == 200
    for path in (
        "/v2",
        "/v2/models/small",
        "/v2/models/small/ready",
        "/metrics",
        "/v2/repository/index",
        "/v2/tenants",
    ):
        r = get(s, path)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", path
    assert post(s, "/v2/models/small/infer", json={}).status_code == 401
    bad = httpx.get(f"http://{s.url}/v2", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    basic = httpx.get(f"http://{s.url}/v2", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    # bob cannot see or use alice's model, and is told nothing about it
    assert get(s, "/v2/models/small", "bob").status_code == 404
    assert get(s, "/v2/models/small/ready", "bob").status_code == 404
    r = infer(s, "small", "bob", x)
    assert r.status_code == 404 and "small" in r.json()["error"]
    assert get(s, "/v2/models/other", "bob").status_code == 200
    assert infer(s, "small", "alice", x).status_code == 200
    # the operator manages but does not infer
    assert infer(s, "small", "operator", x).status_code == 403
    for who in ("alice", "bob"):
        assert get(s, "/metrics", who).status_code == 403
        assert get(s, "/v2/tenants", who).status_code == 403
        assert post(s, "/v2/repository/index", who).status_code == 403
        assert post(s, "/v2/repository/models/small/unload", who).status_code == 403
        assert post(s, "/v2/repository/models/other/load", who).status_code == 403
        assert post(s, "/v2/tenants", who, json={}).status_code == 403
        assert post(s, "/v2/tenants/alice/resize", who, json={"cores": 4}).status_code == 403
        r = httpx.delete(f"http://{s.url}/v2/tenants/bob", headers=auth(who))
        assert r.status_code == 403
    assert get(s, "/v2/models/small", "alice").status_code == 200


def test_operator_manages_tenants_and_models(served) -> None:  # type: ignore[no-untyped-def]
    s, repo, db = served
    token = hash_token("carol-token-3")
    r = post(
        s, "/v2/tenants", "operator", json={"name": "carol", "cores": 4, "token_sha256": token}
    )
    assert r.status_code == 200, r.text
    carol_cores = r.json()["allocated_cores"]
    assert len(carol_cores) == 4
    rows = {t["name"]: t for t in get(s, "/v2/tenants", "operator").json()}
    assert not set(rows["alice"]["allocated_cores"]) & set(carol_cores)
    assert not set(rows["bob"]["allocated_cores"]) & set(carol_cores)
    assert "token_sha256" not in rows["carol"]
    # refused: a duplicate, more cores than free, bad fields
    assert (
        post(
            s,
            "/v2/tenants",
            "operator",
            json={"name": "carol", "cores": 1, "token_sha256": "0" * 64},
        ).status_code
        == 409
    )
    assert (
        post(
            s,
            "/v2/tenants",
            "operator",
            json={"name": "dave", "cores": 16, "token_sha256": "1" * 64},
        ).status_code
        == 409
    )
    r = post(s, "/v2/tenants", "operator", json={"name": "dave", "cores": 1, "token_sha256": "x"})
    assert r.status_code == 400 and "token_sha256" in r.json()["error"]
    r = post(
        s,
        "/v2/tenants",
        "operator",
        json={"name": "dave", "cores": 1, "token_sha256": hash_token(OPERATOR_TOKEN)},
    )
    assert r.status_code == 409 and "taken" in r.json()["error"]
    r = post(s, "/v2/tenants", "operator", content=b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    put_model(repo, "cm", "carol", blob(3))
    assert post(s, "/v2/repository/models/cm/load", "operator").status_code == 200
    x = user_input(blob(3), 4)
    r = infer(s, "cm", "carol", x)
    assert r.status_code == 200
    want = solo(blob(3), x)["conv14.out"]
    assert np.array(r.json()["outputs"][0]["data"], np.int8).tobytes() == want.tobytes()
    r = post(s, "/v2/tenants/carol/resize", "operator", json={"cores": 2})
    assert r.status_code == 200 and len(r.json()["allocated_cores"]) == 2
    assert (
        np.array(infer(s, "cm", "carol", x).json()["outputs"][0]["data"], np.int8).tobytes()
        == want.tobytes()
    )
    assert (
        httpx.delete(f"http://{s.url}/v2/tenants/carol", headers=auth("operator")).status_code
        == 200
    )
    assert infer(s, "cm", "carol", x).status_code == 401
    names = {row["name"]: row for row in post(s, "/v2/repository/index", "operator").json()}
    assert names["cm"]["state"] == "UNAVAILABLE"
    assert [t[0] for t in snapshot(db)[0]] == ["alice", "bob"]


def test_corrupt_binary_is_refused_and_changes_nothing(served) -> None:  # type: ignore[no-untyped-def]
    s, repo, db = served
    x = user_input(blob(1), 1)
    before_out = infer(s, "small", "alice", x).json()["outputs"]
    before_index = post(s, "/v2/repository/index", "operator").json()
    before_state = snapshot(db)
    # a reload whose new binary is corrupt
    (repo / "small" / "1" / "model.vfb").write_bytes(corrupt(blob(1)))
    r = post(s, "/v2/repository/models/small/load", "operator")
    assert r.status_code == 400 and "model.vfb" in r.json()["error"]
    # a new model whose binary is corrupt, and one truncated
    put_model(repo, "broken", "alice", corrupt(blob(2)))
    assert post(s, "/v2/repository/models/broken/load", "operator").status_code == 400
    put_model(repo, "short", "alice", blob(2)[:100])
    assert post(s, "/v2/repository/models/short/load", "operator").status_code == 400
    put_model(repo, "junk", "alice", b"\x08\x07garbage" * 50, filename="model.onnx")
    r = post(s, "/v2/repository/models/junk/load", "operator")
    assert r.status_code == 400 and "junk" in r.json()["error"]
    # a model for a tenant that does not exist, and one that is not there
    put_model(repo, "orphan", "zed", blob(2))
    r = post(s, "/v2/repository/models/orphan/load", "operator")
    assert r.status_code == 400 and "zed" in r.json()["error"]
    assert post(s, "/v2/repository/models/nothere/load", "operator").status_code == 404
    assert post(s, "/v2/repository/models/nothere/unload", "operator").status_code == 404
    assert post(s, "/v2/repository/models/..%2f..%2fetc/load", "operator").status_code in (400, 404)
    index = [
        r
        for r in post(s, "/v2/repository/index", "operator").json()
        if r["name"] not in ("broken", "short", "orphan", "junk")
    ]
    assert index == before_index
    assert snapshot(db) == before_state
    assert infer(s, "small", "alice", x).json()["outputs"] == before_out
    # unloading works whatever is now on disk, and is then recorded
    assert post(s, "/v2/repository/models/small/unload", "operator").status_code == 200
    assert infer(s, "small", "alice", x).status_code == 404
    assert snapshot(db) != before_state
