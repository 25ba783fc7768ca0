"""`vfpga serve` survives a crash: killed with SIGKILL under load from several clients and
restarted on the same state directory, it brings back the same tenants (including one
the operator added over HTTP, not in tenants.toml), models and core allocations; every
request was either answered correctly or failed with an error, none answered wrongly.
SIGTERM drains: requests accepted before it are all answered."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
from serve_util import (
    ProcessServer,
    auth,
    blob,
    put_model,
    solo,
    user_input,
    write_repo,
)

from vfpga.serve.auth import hash_token


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


def view(url: str) -> tuple[list, list]:
    tenants = httpx.get(f"http://{url}/v2/tenants", headers=auth("operator"), timeout=30)
    index = httpx.post(f"http://{url}/v2/repository/index", headers=auth("operator"), timeout=30)
    assert tenants.status_code == 200 and index.status_code == 200
    rows = sorted(tenants.json(), key=lambda t: t["name"])
    for r in rows:
        r.pop("queue"), r.pop("reconfigurations")  # counters of this run
    return rows, index.json()


class Clients:
    """``n`` client threads sending bounded streams of requests to ``self.url`` (which
    the test may change) and checking every answer against the solo outputs."""

    def __init__(self, url: str, jobs: list[tuple[str, str, np.ndarray, bytes]], n: int):
        self.url = url
        self.jobs = jobs
        self.stop = threading.Event()
        self.ok = self.errors = 0
        self.wrong: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(n)]
        for t in self.threads:
            t.start()

    def run(self, i: int) -> None:
        t0 = time.monotonic()
        for k in range(2000):  # bounded in count and time
            if self.stop.is_set() or time.monotonic() - t0 > 120:
                return
            who, model, x, want = self.jobs[(i + k) % len(self.jobs)]
            try:
                r = httpx.post(
                    f"http://{self.url}/v2/models/{model}/infer",
                    json=body(x),
                    headers=auth(who),
                    timeout=30,
                )
            except httpx.HTTPError:
                with self.lock:
                    self.errors += 1
                time.sleep(0.02)
                continue
            with self.lock:
                if r.status_code != 200:
                    self.errors += 1
                    continue
                got = np.array(r.json()["outputs"][0]["data"], np.int8).tobytes()
                if got == want:
                    self.ok += 1
                else:
                    self.wrong.append(f"{who}/{model}: {r.text[:200]}")

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_kill_9_under_load_then_restart(tmp_path: Path) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {"alice": 2, "bob": 3},
        {"small": ("alice", blob(1)), "other": ("bob", blob(2))},
    )
    state = tmp_path / "state"
    jobs = []
    for who, model, b in (
        ("alice", "small", blob(1)),
        ("bob", "other", blob(2)),
        ("carol", "cm", blob(3)),
    ):
        for seed in range(2):
            x = user_input(b, seed)
            jobs.append((who, model, x, solo(b, x)["conv14.out"].tobytes()))
    srv = ProcessServer(repo, state)
    clients = None
    try:
        # the operator changes the state over HTTP: a new tenant, its model, a resize
        r = httpx.post(
            f"http://{srv.url}/v2/tenants",
            headers=auth("operator"),
            timeout=30,
            json={"name": "carol", "cores": 4, "token_sha256": hash_token("carol-token-3")},
        )
        assert r.status_code == 200
        put_model(repo, "cm", "carol", blob(3))
        assert (
            httpx.post(
                f"http://{srv.url}/v2/repository/models/cm/load",
                headers=auth("operator"),
                timeout=60,
            ).status_code
            == 200
        )
        assert (
            httpx.post(
                f"http://{srv.url}/v2/tenants/bob/resize",
                json={"cores": 5},
                headers=auth("operator"),
                timeout=30,
            ).status_code
            == 200
        )
        before = view(srv.url)
        clients = Clients(srv.url, jobs, 4)
        t0 = time.monotonic()
        while clients.ok < 20 and time.monotonic() - t0 < 60:
            time.sleep(0.02)
        assert clients.ok >= 20
        srv.kill()  # SIGKILL under load
        srv = ProcessServer(repo, state)
        clients.url = srv.url
        assert view(srv.url) == before
        n = clients.ok
        t0 = time.monotonic()
        while clients.ok < n + 20 and time.monotonic() - t0 < 60:
            time.sleep(0.02)
        clients.join()
        assert clients.wrong == []
        assert clients.ok >= n + 20
        assert view(srv.url) == before
    finally:
        if clients is not None:
            clients.join()
        srv.kill()


def test_sigterm_drains_accepted_requests(tmp_path: Path) -> None:
    big = blob(7, 128)
    repo = write_repo(tmp_path / "repo", {"alice": 1}, {"big": ("alice", big)})
    x = user_input(big, 0)
    want = solo(big, x)["conv14.out"].tobytes()
    srv = ProcessServer(repo, tmp_path / "state")
    results: list[object] = []
    try:

        def send() -> None:
            try:
                r = httpx.post(
                    f"http://{srv.url}/v2/models/big/infer",
                    json=body(x),
                    headers=auth("alice"),
                    timeout=60,
                )
                results.append(r)
            except httpx.HTTPError as exc:
                results.append(exc)

        threads = [threading.Thread(target=send) for _ in range(12)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        depth = 0.0
        while depth < 4 and time.monotonic() - t0 < 30:
            m = httpx.get(f"http://{srv.url}/metrics", headers=auth("operator"), timeout=10)
            line = next(
                (
                    ln
                    for ln in m.text.splitlines()
                    if ln.startswith('vfpga_queue_depth{tenant="alice"}')
                ),
                "x 0",
            )
            depth = float(line.split()[-1])
        assert depth >= 4
        srv.terminate()
        for t in threads:
            t.join(60)
        assert srv.wait(60) == 0
        answered = [r for r in results if isinstance(r, httpx.Response)]
        assert len(answered) >= 4  # at least those queued when SIGTERM came
        for r in answered:
            assert r.status_code == 200, r.text
            assert np.array(r.json()["outputs"][0]["data"], np.int8).tobytes() == want
    finally:
        srv.kill()
