"""One tenant's failure fails only its own requests: a binary that faults at run time
(loads far outside its DDR region) and an emulator error of an unexpected type answer
that tenant's requests 500 while another tenant, served at the same time, gets correct
answers; the faulting tenant recovers when a good binary is loaded."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_util import auth, blob, put_model, solo, thread_server, user_input, write_repo
from test_pool import faulting

from vfpga.emulator.machine import Task


def body(x: np.ndarray) -> dict:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": list(x.shape),
                "datatype": "INT8",
                "data": x.reshape(-1).tolist(),
            }
        ]
    }


def together(url: str, jobs: list[tuple[str, str, np.ndarray]]) -> list[httpx.Response]:
    out: list[httpx.Response | None] = [None] * len(jobs)

    def send(i: int) -> None:
        who, model, x = jobs[i]
        out[i] = httpx.post(
            f"http://{url}/v2/models/{model}/infer", json=body(x), headers=auth(who), timeout=60
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


def data(r: httpx.Response) -> bytes:
    return np.array(r.json()["outputs"][0]["data"], np.int8).tobytes()


def test_a_faulting_binary_fails_only_its_tenant(tmp_path: Path) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {"alice": 2, "bob": 3},
        {"bad": ("alice", faulting(blob(1))), "good": ("bob", blob(2))},
    )
    xa, xb = user_input(blob(1), 0), user_input(blob(2), 1)
    want_b = solo(blob(2), xb)["conv14.out"].tobytes()
    with thread_server(repo, tmp_path / "state") as s:
        rs = together(s.url, [("alice", "bad", xa)] * 3 + [("bob", "good", xb)] * 4)
        for r in rs[:3]:
            assert r.status_code == 500 and "inference failed" in r.json()["error"]
        for r in rs[3:]:
            assert r.status_code == 200 and data(r) == want_b
        put_model(repo, "bad", "alice", blob(1))  # the tenant fixes its model
        r = httpx.post(
            f"http://{s.url}/v2/repository/models/bad/load", headers=auth("operator"), timeout=60
        )
        assert r.status_code == 200
        r = together(s.url, [("alice", "bad", xa)])[0]
        assert r.status_code == 200 and data(r) == solo(blob(1), xa)["conv14.out"].tobytes()
        metrics = httpx.get(f"http://{s.url}/metrics", headers=auth("operator")).text
        assert 'vfpga_request_failures_total{model="bad",reason="fault",tenant="alice"} 3.0' in (
            metrics
        )


def test_an_unexpected_error_type_fails_only_its_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_repo(
        tmp_path / "repo", {"alice": 2, "bob": 3}, {"a": ("alice", blob(1)), "b": ("bob", blob(2))}
    )
    step = Task.step

    def broken(self: Task) -> None:
        if self.name.startswith("alice") and self.barriers == 3:
            raise ZeroDivisionError("a bug in a kernel")
        step(self)

    monkeypatch.setattr(Task, "step", broken)
    xa, xb = user_input(blob(1), 0), user_input(blob(2), 1)
    want_b = solo(blob(2), xb)["conv14.out"].tobytes()
    with thread_server(repo, tmp_path / "state") as s:
        rs = together(s.url, [("alice", "a", xa)] * 2 + [("bob", "b", xb)] * 3)
        for r in rs[:2]:
            assert r.status_code == 500 and "ZeroDivisionError" in r.json()["error"]
        for r in rs[2:]:
            assert r.status_code == 200 and data(r) == want_b
        monkeypatch.setattr(Task, "step", step)
        r = together(s.url, [("alice", "a", xa)])[0]
        assert r.status_code == 200 and data(r) == solo(blob(1), xa)["conv14.out"].tobytes()
