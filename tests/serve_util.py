"""Helpers of the `vfpga serve` tests: small binaries, a repository on disk, a server on
127.0.0.1 (ephemeral port) in a thread or a subprocess, always stopped, and the same
model run alone on the pool (the expected outputs)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from qgraph_builders import small_net

from vfpga.backend.binary import from_bytes, to_bytes
from vfpga.driver import compile_graph
from vfpga.emulator.tensor_layout import from_stored, to_stored, user_shape
from vfpga.hw.config import DEFAULT_HW, load_hw
from vfpga.runtime.pool import ResourcePool
from vfpga.serve.app import Server, create_app, listen_socket
from vfpga.serve.auth import hash_token

HW = load_hw(DEFAULT_HW)
OPERATOR_TOKEN = "operator-secret-token"
TOKENS = {"alice": "alice-token-1", "bob": "bob-token-2", "carol": "carol-token-3"}


@cache
def blob(seed: int, size: int = 16) -> bytes:
    """A small compiled binary (13 layers, 16x16x3 input, 10 outputs)."""
    return to_bytes(compile_graph(small_net(seed=seed, size=size), HW, cores=2).vfb)


def corrupt(data: bytes) -> bytes:
    b = bytearray(data)
    b[len(b) // 2] ^= 0x5A
    return bytes(b)


def user_input(data: bytes, seed: int, dtype: str = "int8") -> np.ndarray:
    """A random input of the binary's single input, NCHW as users give it."""
    vfb = from_bytes(data, "x", HW)
    t = next(t for t in vfb.tensors if t.role == "input")
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        return rng.integers(-128, 128, user_shape(t), dtype=np.int8)
    return rng.standard_normal(user_shape(t)).astype(np.float32)


def solo(data: bytes, x: np.ndarray, cores: int = 1) -> dict[str, np.ndarray]:
    """Outputs (user layout) of the binary run alone on a fresh pool."""
    vfb = from_bytes(data, "x", HW)
    t_in = next(t for t in vfb.tensors if t.role == "input")
    pool = ResourcePool(HW)
    t = pool.create_tenant("solo", cores)
    t.deploy(data)
    out = t.infer({t_in.name: to_stored(t_in, x)})
    return {o.name: from_stored(o, out[o.name]) for o in vfb.tensors if o.role == "output"}


def write_repo(
    root: Path,
    tenants: dict[str, int],
    models: dict[str, tuple[str, bytes]],
    extra: dict[str, dict[str, object]] | None = None,
) -> Path:
    """A repository: ``tenants`` name -> cores; ``models`` name -> (tenant, binary)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, cores in tenants.items():
        lines += [
            f"[tenants.{name}]",
            f"cores = {cores}",
            f'token_sha256 = "{hash_token(TOKENS[name])}"',
        ]
        for k, v in (extra or {}).get(name, {}).items():
            lines.append(f"{k} = {v}")
    (root / "tenants.toml").write_text("\n".join(lines) + "\n")
    for name, (tenant, data) in models.items():
        put_model(root, name, tenant, data)
    return root


def put_model(
    root: Path, name: str, tenant: str, data: bytes, version: str = "1", filename: str = "model.vfb"
) -> None:
    (root / name / version).mkdir(parents=True, exist_ok=True)
    (root / name / "config.toml").write_text(f'tenant = "{tenant}"\n')
    (root / name / version / filename).write_bytes(data)


def auth(who: str) -> dict[str, str]:
    token = OPERATOR_TOKEN if who == "operator" else TOKENS[who]
    return {"Authorization": f"Bearer {token}"}


class ThreadServer:
    """A server in this process (uvicorn in a thread); ``url``; ``stop()``."""

    def __init__(
        self,
        repo: Path,
        state: Path,
        policy: str = "fixed",
        request_timeout_s: float = 20.0,
        max_body_bytes: int = 4 << 20,
        backend: Any = None,
    ) -> None:
        self.server = Server(
            repo,
            state,
            HW,
            policy,
            hash_token(OPERATOR_TOKEN),
            request_timeout_s,
            max_body_bytes,
            backend=backend,
        )
        self.server.open()
        sock = listen_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.url = f"127.0.0.1:{self.port}"
        self.uv = uvicorn.Server(
            uvicorn.Config(create_app(self.server), log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.uv.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        t0 = time.monotonic()
        while not self.uv.started:
            if time.monotonic() - t0 > 20 or not self.thread.is_alive():
                self.stop()
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.uv.should_exit = True
        self.thread.join(30)
        self.server.close()


@contextlib.contextmanager
def thread_server(repo: Path, state: Path, **kw: object) -> Iterator[ThreadServer]:
    s = ThreadServer(repo, state, **kw)  # type: ignore[arg-type]
    try:
        yield s
    finally:
        s.stop()


class ProcessServer:
    """``vfpga serve`` in a subprocess on an ephemeral port; ``url``; ``kill()`` (-9),
    ``terminate()`` (SIGTERM) and ``wait()``."""

    def __init__(self, repo: Path, state: Path, policy: str = "fixed") -> None:
        env = dict(os.environ, VFPGA_OPERATOR_TOKEN=OPERATOR_TOKEN, OPENBLAS_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from vfpga.cli.main import main; main()",
                "serve",
                "--repository",
                str(repo),
                "--state-dir",
                str(state),
                "--port",
                "0",
                "--policy",
                policy,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.proc.stderr is not None
        self.lines: list[str] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if "listening on http://" in line:
                self.url = line.rsplit("http://", 1)[1].strip()
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.kill()
        raise RuntimeError("vfpga serve did not start: " + "".join(self.lines))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)
