"""`vfpga fleet serve` from the user's side: a subprocess that starts its own Ray instance
on loopback with 2 nodes, answers a tenant's request exactly as a solo run, takes a new
tenant from the operator, drains and exits 0 on SIGTERM, and after a restart on the same
state directory serves the same tenants (nodes are new: tenants are placed again)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from serve_util import OPERATOR_TOKEN, auth, blob, solo, user_input, write_repo

from vfpga.cli.main import cli

pytest.importorskip("ray")


class FleetProcess:
    """`vfpga fleet serve --nodes 2 --port 0` in a subprocess; ``url``; ``stop()``."""

    def __init__(self, repo: Path, state: Path) -> None:
        env = dict(
            os.environ,
            VFPGA_OPERATOR_TOKEN=OPERATOR_TOKEN,
            OPENBLAS_NUM_THREADS="1",
            RAY_USAGE_STATS_ENABLED="0",
        )
        cmd = [sys.executable, "-c", "from vfpga.cli.main import main; main()", "fleet",
               "serve", "--repository", str(repo), "--state-dir", str(state), "--nodes", "2",
               "--port", "0"]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
        )
        assert self.proc.stderr is not None
        self.lines: list[str] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if "listening on http://" in line:
                self.url = "http://" + line.rsplit("http://", 1)[1].strip()
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.stop()
        raise RuntimeError("vfpga fleet serve did not start: " + "".join(self.lines))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(30)


def infer(url: str, who: str, model: str, x: np.ndarray) -> bytes:
    r = httpx.post(
        f"{url}/v2/models/{model}/infer",
        json={"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "INT8",
                          "data": x.ravel().tolist()}]},
        headers=auth(who),
        timeout=120,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.int8).tobytes()


@pytest.mark.slow
def test_fleet_serve_answers_drains_and_restarts_with_its_tenants(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"alice": 4, "bob": 3}, {"small": ("alice", blob(1))})
    x = user_input(blob(1), 3)
    want = solo(blob(1), x)["conv14.out"].tobytes()
    s = FleetProcess(repo, tmp_path / "state")
    try:
        assert "vfpga fleet: 2 tenant(s), 1 model(s), 2 node(s)" in "".join(s.lines)
        assert infer(s.url, "alice", "small", x) == want
        r = httpx.post(
            f"{s.url}/v2/tenants",
            json={"name": "carol", "cores": 16, "token_sha256": "c" * 64},
            headers=auth("operator"),
            timeout=60,
        )
        assert r.status_code == 200, r.text  # node 0 holds alice and bob: carol gets node 1
        assert r.json()["allocated_cores"] == list(range(16, 32))
        r = httpx.post(
            f"{s.url}/v2/tenants",
            json={"name": "dave", "cores": 10, "token_sha256": "d" * 64},
            headers=auth("operator"),
            timeout=60,
        )
        assert r.status_code == 409 and "no node has 10 free cores" in r.json()["error"]
    finally:
        rc = s.stop()
    assert rc == 0, "".join(s.lines)
    assert "vfpga fleet: stopped" in "".join(s.lines)
    s = FleetProcess(repo, tmp_path / "state")
    try:
        assert "vfpga fleet: 3 tenant(s), 1 model(s), 2 node(s)" in "".join(s.lines)
        rows = httpx.get(f"{s.url}/v2/tenants", headers=auth("operator"), timeout=30).json()
        assert {r["name"]: len(r["allocated_cores"]) for r in rows} == {
            "alice": 4,
            "bob": 3,
            "carol": 16,
        }
        assert infer(s.url, "alice", "small", x) == want
    finally:
        assert s.stop() == 0


def test_fleet_serve_refuses_bad_options_before_starting_ray(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        cli, ["fleet", "serve", "--repository", str(tmp_path), "--state-dir", str(tmp_path),
              "--nodes", "0"],
    )  # fmt: skip
    assert r.exit_code == 2 and "--nodes" in r.output
    r = CliRunner().invoke(
        cli, ["fleet", "serve", "--repository", str(tmp_path), "--state-dir", str(tmp_path),
              "--hw", "nonexistent-preset"],
    )  # fmt: skip
    assert r.exit_code == 2 and r.output.startswith("error: ") and "nonexistent-preset" in r.output
