"""`vfpga fleet` on a local Ray cluster (loopback only): 3 node actors claiming `fpga: 1`
each, 10 tenants behind the KServe v2 front, mixed load from several clients. Every
answer is byte-identical to a solo run of the tenant's binary; then one node is killed
(`ray.kill`) mid-run: its tenants are placed again on the other two nodes (their
binaries re-targeted to the cores they get there), no request is answered wrongly, and
every request that failed was reported as failed (503 with Retry-After)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serve_util import OPERATOR_TOKEN, blob, solo, thread_server, user_input

from vfpga.serve.auth import hash_token

ray = pytest.importorskip("ray")

from vfpga.fleet.cluster import start_ray, stop_ray  # noqa: E402
from vfpga.fleet.controller import FleetController, fleet_backend  # noqa: E402

N_TENANTS = 10
CORES = 3  # 10 x 3 cores fit on two nodes of 16 after one dies
SEEDS = (1, 2, 3)  # the tenants' binaries (each compiled for 2 cores, re-targeted to 3)
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def token(i: int) -> str:
    return f"fleet-tenant-token-{i}"


def headers(i: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(i)}"}


def write_fleet_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    lines = []
    for i in range(N_TENANTS):
        lines += [f"[tenants.t{i}]", f"cores = {CORES}", f'token_sha256 = "{hash_token(token(i))}"']
        (root / f"m{i}" / "1").mkdir(parents=True)
        (root / f"m{i}" / "config.toml").write_text(f'tenant = "t{i}"\n')
        (root / f"m{i}" / "1" / "model.vfb").write_bytes(blob(SEEDS[i % len(SEEDS)]))
    (root / "tenants.toml").write_text("\n".join(lines) + "\n")
    return root


def body(x: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": list(x.shape),
                "datatype": "INT8",
                "data": x.ravel().tolist(),
            }
        ]
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    root = tmp_path_factory.mktemp("fleet")
    repo = write_fleet_repo(root / "repo")
    start_ray(3, num_cpus=1)
    try:
        with thread_server(
            repo, root / "state", request_timeout_s=60.0, backend=fleet_backend(3, probe_s=0.2)
        ) as s:
            yield s
    finally:
        stop_ray()


@cache
def user_x(i: int, k: int) -> np.ndarray:
    """Input ``k`` of tenant ``i``."""
    return user_input(blob(SEEDS[i % len(SEEDS)]), 100 * i + k)


@cache
def want(i: int, k: int) -> bytes:
    """The output of tenant ``i``'s binary on input ``k``, run alone on a fresh pool."""
    return solo(blob(SEEDS[i % len(SEEDS)]), user_x(i, k))["conv14.out"].tobytes()


def infer(url: str, i: int, k: int, timeout: float = 120.0) -> httpx.Response:
    return httpx.post(
        f"http://{url}/v2/models/m{i}/infer",
        json=body(user_x(i, k)),
        headers=headers(i),
        timeout=timeout,
    )


def answer(r: httpx.Response) -> bytes:
    out = r.json()["outputs"][0]
    assert out["name"] == "conv14.out" and out["datatype"] == "INT8"
    return np.asarray(out["data"], dtype=np.int8).reshape(out["shape"]).tobytes()


class Load:
    """``n`` client threads, each sending a bounded stream of requests over the tenants
    (round robin from its own offset) and checking every answer."""

    def __init__(self, url: str, n: int, per_thread: int) -> None:
        self.url = url
        self.ok = 0
        self.failed: list[tuple[int, str]] = []
        self.wrong: list[str] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run, args=(t, per_thread), daemon=True) for t in range(n)
        ]

    def run(self, t: int, count: int) -> None:
        for j in range(count):
            i, k = (t * 3 + j) % N_TENANTS, (t + j) % 3
            try:
                r = infer(self.url, i, k)
            except httpx.HTTPError as exc:  # a transport error is a reported failure too
                with self.lock:
                    self.failed.append((0, type(exc).__name__))
                continue
            with self.lock:
                if r.status_code == 200:
                    if answer(r) == want(i, k):
                        self.ok += 1
                    else:
                        self.wrong.append(f"t{i} input {k}")
                else:
                    self.failed.append((r.status_code, r.headers.get("retry-after", "")))

    def __enter__(self) -> Load:
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for th in self.threads:
            th.join(300)
        assert not any(th.is_alive() for th in self.threads), "a client thread hung"


def controller(s: Any) -> FleetController:
    c = s.server.scheduler
    assert isinstance(c, FleetController)
    return c


def tenants(url: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"http://{url}/v2/tenants", headers=OP, timeout=30)
    assert r.status_code == 200
    return {t["name"]: t for t in r.json()}


def test_fleet_on_ray(fleet: Any) -> None:
    """The phases share one fleet (each starts from the layout the previous one left):
    the tests of one module may run on different xdist workers, so they are one test."""
    steady_load_answers_like_solo_runs(fleet)
    a_resize_beyond_the_node_moves_the_tenant(fleet)
    a_node_killed_mid_run_loses_no_answer_and_its_tenants_are_placed_again(fleet)


def steady_load_answers_like_solo_runs(fleet: Any) -> None:
    for i in range(N_TENANTS):  # the expected outputs, before any load
        for k in range(3):
            want(i, k)
    rows = tenants(fleet.url)
    assert len(rows) == N_TENANTS
    # best fit: the nodes fill one after the other (5 x 3 cores each), one stays free
    per_node = [sum(r["node"] == n for r in rows.values()) for n in range(3)]
    assert sorted(per_node) == [0, 5, 5]
    for r in rows.values():
        assert len(r["allocated_cores"]) == CORES
    with Load(fleet.url, n=4, per_thread=15) as load:
        pass
    assert load.wrong == [] and load.failed == [] and load.ok == 60
    # a tenant sees only its own model
    r = httpx.post(
        f"http://{fleet.url}/v2/models/m1/infer",
        json=body(user_x(1, 0)),
        headers=headers(0),
        timeout=30,
    )
    assert r.status_code == 404
    # a request's response carries the node's predicted latency on the tenant's cores
    r = infer(fleet.url, 0, 0)
    assert r.status_code == 200 and r.json()["parameters"]["vfpga_cores"] == CORES


def a_resize_beyond_the_node_moves_the_tenant(fleet: Any) -> None:
    before = tenants(fleet.url)
    full = [n for n in range(3) if sum(r["node"] == n for r in before.values()) == 5]
    name = max(n for n, r in before.items() if r["node"] == full[-1])
    i = int(name[1:])
    r = httpx.post(
        f"http://{fleet.url}/v2/tenants/{name}/resize", json={"cores": 8}, headers=OP, timeout=60
    )
    assert r.status_code == 200, r.text
    after = tenants(fleet.url)[name]
    assert after["node"] not in full and len(after["allocated_cores"]) == 8
    for k in range(3):  # re-deployed on the new node, re-targeted to 8 cores
        r = infer(fleet.url, i, k)
        assert r.status_code == 200 and answer(r) == want(i, k)
        assert r.json()["parameters"]["vfpga_cores"] == 8
    r = httpx.post(
        f"http://{fleet.url}/v2/tenants/{name}/resize",
        json={"cores": CORES},
        headers=OP,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert tenants(fleet.url)[name]["node"] == after["node"]  # shrinks in place
    r = infer(fleet.url, i, 0)
    assert r.status_code == 200 and answer(r) == want(i, 0)
    assert r.json()["parameters"]["vfpga_cores"] == CORES
    # a share no node can hold is refused and changes nothing
    other = min(n for n, r in before.items() if r["node"] == full[0])
    r = httpx.post(
        f"http://{fleet.url}/v2/tenants/{other}/resize", json={"cores": 16}, headers=OP, timeout=60
    )
    assert r.status_code == 409 and "no node has 16 free cores" in r.json()["error"]
    assert tenants(fleet.url)[other] == before[other]


def a_node_killed_mid_run_loses_no_answer_and_its_tenants_are_placed_again(fleet: Any) -> None:
    ctl = controller(fleet)
    before = tenants(fleet.url)
    victim = max(range(3), key=lambda n: sum(r["node"] == n for r in before.values()))
    moved = sorted(name for name, r in before.items() if r["node"] == victim)
    assert moved
    with Load(fleet.url, n=4, per_thread=25) as load:
        t0 = time.monotonic()
        while load.ok < 10 and time.monotonic() - t0 < 120:  # kill mid-run
            time.sleep(0.05)
        ray.kill(ctl.node_handle(victim))
    print(f"node {victim} killed: {load.ok} answered (all correct), {len(load.failed)} failed")
    assert load.wrong == []
    assert all(status == 503 and retry for status, retry in load.failed), load.failed
    assert load.ok + len(load.failed) == 100
    # every tenant of the dead node is placed again on a live node, with its share
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        after = tenants(fleet.url)
        if all(after[n]["node"] not in (None, victim) for n in moved):
            break
        time.sleep(0.2)
    assert all(after[n]["node"] not in (None, victim) for n in moved), after
    assert all(len(r["allocated_cores"]) == CORES for r in after.values())
    for name, r in after.items():  # the others stayed where they were
        if name not in moved:
            assert r["node"] == before[name]["node"]
    assert any(e["event"] == "node_failed" and e["node"] == victim for e in ctl.events)
    # and every tenant answers exactly as a solo run again
    for i in range(N_TENANTS):
        for k in range(3):
            r = infer(fleet.url, i, k)
            assert r.status_code == 200, r.text
            assert answer(r) == want(i, k)
