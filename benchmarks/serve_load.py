"""Load on ``vfpga serve`` over loopback, and the server's overhead per request.

Run: ``.venv/bin/python benchmarks/serve_load.py [--model mobilenet_v1] [--tenants 3]
[--cores 4] [--clients 6] [--requests 8] [--serial 40] [--max-seconds 300]
[--server process|thread]``.

A server (``vfpga serve`` in a subprocess by default, or uvicorn in a thread of this
process; bound to 127.0.0.1 on a free port, fixed policy) serves one compiled copy of
``--model`` to each of ``--tenants`` tenants with ``--cores`` cores each. Inputs go as
int8 NCHW through the binary-tensor extension, from a lean keep-alive socket client.

1. **Overhead** (about ``--serial`` requests, one client): blocks of warm calls of the
   emulator directly in this process (:meth:`vfpga.runtime.pool.Tenant.infer` on a pool
   of its own, same core count, same input, inputs already in the stored layout) alternate
   with blocks of requests to the server; the first call of each block is dropped (a cold
   cache after switching machines), and every call starts after a 1 ms pause (not timed;
   :data:`PAUSE`). The overhead of a request is its round trip minus the
   direct call of the same input paired with it (the k-th of the other block); reported:
   the median and p90 over requests (goal: median <= 2 ms on MobileNet v1). Also printed:
   the server's phases (its ``Server-Timing`` header: auth, body, decode, queue, run,
   back, encode), the rest of the round trip (uvicorn, the sockets, the client), the
   emulator's time in the server against the direct call, and the **on-CPU time** per
   request of the server's threads (the pool's thread, the others) against the direct
   call's, read from ``/proc/PID/task/TID/schedstat``: a figure that waiting for a core
   behind other jobs does not inflate, unlike the wall-clock ones.
2. **Load**: ``--clients`` threads, spread over the tenants, each sending ``--requests``
   requests back to back (bounded in count and by ``--max-seconds``). Reported:
   requests/s, p50/p99 latency, *lost* requests (no answer, or an error answer) and
   *leaks* (an answer that is not this tenant's own output for this input: another
   tenant's or wrong). Both must be 0.

The compiled binary is cached under ``$VFPGA_BENCH_CACHE`` (see ``_common.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))
from _common import cache_dir, loaded_model

from vfpga.backend.binary import from_bytes, to_bytes
from vfpga.emulator.tensor_layout import from_stored, to_stored, user_shape
from vfpga.hw.config import DEFAULT_HW, load_hw
from vfpga.runtime.pool import ResourcePool
from vfpga.serve.app import Server, create_app, listen_socket
from vfpga.serve.auth import hash_token

GOAL_MS = 2.0
#: warm calls per block of the overhead measurement
BLOCK = 5
#: seconds of pause before each call of the overhead measurement, direct or through the
#: server: every call then starts on a thread that just woke up, as the server's pool
#: thread does for each request (on a loaded machine the kernel's scheduler favours a
#: thread that slept over one that ran back to back, which made the direct calls, and
#: not the server's, pay for the other jobs)
PAUSE = 0.001
OPERATOR = "bench-operator"


def compiled(name: str, cores: int) -> bytes:
    """Bundled model ``name`` compiled for ``cores`` cores of the default hardware, cached
    per hardware fingerprint (a binary of another ISA version or configuration is refused
    by the loader, so a cache from an older checkout is not reused)."""
    hw = load_hw(DEFAULT_HW)
    path = cache_dir() / f"serve-{name}-{cores}-{hw.fingerprint.hex()[:16]}.vfb"
    if path.is_file():
        return path.read_bytes()
    from vfpga.driver import compile_graph

    blob = to_bytes(compile_graph(loaded_model(name).graph, hw, cores).vfb)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return blob


def request_body(name: str, x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    raw = x.tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": list(x.shape),
                    "datatype": "INT8",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return head + raw, {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }


class Client:
    """A lean keep-alive HTTP/1.1 client on a plain socket: each request goes out in one
    ``sendall`` (headers and body together) and the response is read by its
    Content-Length, so the client's own work in the round trip is small (the standard
    library's ``http.client`` sends the body separately and parses headers with the email
    parser: about 3x the client CPU) and the overhead measured is mostly the server's.
    The server always answers with a Content-Length."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.addr = (host, int(port))
        self.host = f"{host}:{port}"
        self.sock = self._connect()
        self.buf = b""
        self.timing = ""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _fresh(self) -> None:
        """Reconnect if the server closed the idle connection (its keep-alive timeout)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable and not self.sock.recv(1, socket.MSG_PEEK):
            self.sock.close()
            self.sock, self.buf = self._connect(), b""

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, int]:
        """(status, body, JSON header length) of one request; the response's
        ``Server-Timing`` header is kept in ``self.timing``. Raises ``OSError`` or
        :class:`BadResponse` if the connection fails."""
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._fresh()
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
            f"{head}\r\n".encode("latin-1")
            + body
        )
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._more()
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        self.buf = self.buf[end + 4 :]
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        if "content-length" not in fields:
            raise BadResponse(f"no Content-Length in the response: {lines[0]}")
        size = int(fields["content-length"])
        while len(self.buf) < size:
            self._more()
        data, self.buf = self.buf[:size], self.buf[size:]
        self.timing = fields.get("server-timing", "")
        n = int(fields.get("inference-header-content-length") or 0)
        return int(lines[0].split()[1]), data, n

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise BadResponse("the server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


class BadResponse(Exception):
    """The server's answer could not be read."""


def answer(data: bytes, n: int) -> tuple[str, bytes]:
    """(model name, output bytes) of a binary response."""
    doc = json.loads(data[:n])
    return doc["model_name"], data[n:]


def thread_cpu(pid: int | str, keep: Callable[[str], bool] = lambda tid: True) -> dict[str, float]:
    """On-CPU seconds of each thread ``keep`` accepts of process ``pid`` (thread id ->
    seconds), from Linux's ``/proc/PID/task/TID/schedstat`` (nanoseconds: time spent
    waiting for a core behind other jobs is not counted); empty where not available."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            if keep(tid):
                with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                    ns = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]
                    out[tid] = int(ns) / 1e9
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per thread on-CPU seconds between two :func:`thread_cpu` readings."""
    return {tid: sec - before.get(tid, 0.0) for tid, sec in after.items()}


def phases(header: str) -> dict[str, float]:
    """Phase name -> seconds of a ``Server-Timing`` header (``name;dur=MS, ...``)."""
    out = {}
    for item in header.split(","):
        name, _, dur = item.strip().partition(";dur=")
        if name and dur:
            out[name] = float(dur) / 1e3
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mobilenet_v1")
    ap.add_argument("--tenants", type=int, default=3)
    ap.add_argument("--cores", type=int, default=4)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--serial", type=int, default=40)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument(
        "--server",
        choices=["process", "thread"],
        default="process",
        help="`vfpga serve` in a subprocess (as deployed) or uvicorn in a thread "
        "of this process (its clients then share the server's interpreter)",
    )
    args = ap.parse_args()
    hw = load_hw(DEFAULT_HW)
    t0 = time.perf_counter()
    blob = compiled(args.model, args.cores)
    vfb = from_bytes(blob, args.model, hw)
    t_in = next(t for t in vfb.tensors if t.role == "input")
    t_out = next(t for t in vfb.tensors if t.role == "output")
    print(
        f"{args.model}: {len(blob) / 2**20:.1f} MiB binary, {len(vfb.layers)} layers, input "
        f"{t_in.name} {list(user_shape(t_in))} (ready in {time.perf_counter() - t0:.1f} s)"
    )
    tenants = [f"t{i}" for i in range(args.tenants)]
    rng = np.random.default_rng(0)
    inputs = {t: rng.integers(-128, 128, user_shape(t_in), dtype=np.int8) for t in tenants}
    # the expected answers, and the direct emulator call timed below
    direct_pool = ResourcePool(hw)
    direct = direct_pool.create_tenant("direct", args.cores)
    direct.deploy(blob)
    stored = {t: {t_in.name: to_stored(t_in, x)} for t, x in inputs.items()}

    def call_direct(t: str) -> bytes:
        return from_stored(t_out, direct.infer(stored[t])[t_out.name]).tobytes()

    want = {t: call_direct(t) for t in tenants}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        lines = []
        for t in tenants:
            lines += [
                f"[tenants.{t}]",
                f"cores = {args.cores}",
                f'token_sha256 = "{hash_token("token-" + t)}"',
                "max_queue = 64",
            ]
            (repo / f"m_{t}" / "1").mkdir(parents=True)
            (repo / f"m_{t}" / "config.toml").write_text(f'tenant = "{t}"\n')
            (repo / f"m_{t}" / "1" / "model.vfb").write_bytes(blob)
        (repo / "tenants.toml").write_text("\n".join(lines) + "\n")
        if args.server == "process":
            return in_process_of_its_own(
                args, repo, Path(tmp) / "state", tenants, inputs, want, t_in.name, call_direct
            )
        own = set(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else set()
        server = Server(repo, Path(tmp) / "state", hw, "fixed", hash_token(OPERATOR), 60.0)
        server.open()
        sock = listen_socket("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        uv = uvicorn.Server(
            uvicorn.Config(
                create_app(server), log_level="warning", access_log=False, proxy_headers=False
            )
        )
        th = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        th.start()
        try:
            t_wait = time.monotonic()
            while not uv.started:
                if time.monotonic() - t_wait > 30:
                    raise RuntimeError("the server did not start")
                time.sleep(0.01)
            cpu = (  # (the server's threads, this benchmark's own threads)
                lambda: thread_cpu("self", lambda tid: tid not in own),
                lambda: thread_cpu("self", lambda tid: tid in own),
            )
            return run(args, url, tenants, inputs, want, t_in.name, call_direct, cpu)
        finally:
            uv.should_exit = True
            th.join(60)
            server.close()


def in_process_of_its_own(args, repo, state, tenants, inputs, want, in_name, call_direct) -> int:  # type: ignore[no-untyped-def]
    """Run ``vfpga serve`` as a subprocess (as deployed: the clients do not share its
    interpreter), measure, then SIGTERM it."""
    env = dict(os.environ, VFPGA_OPERATOR_TOKEN=OPERATOR, OPENBLAS_NUM_THREADS="1")
    cmd = [
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
    ]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True
    )
    try:
        assert proc.stderr is not None
        url = None
        t0 = time.monotonic()
        while url is None and time.monotonic() - t0 < 120:
            line = proc.stderr.readline()
            if not line:
                break
            if "listening on " in line:
                url = line.rsplit("listening on ", 1)[1].strip()
        if url is None:
            raise RuntimeError("vfpga serve did not start")
        cpu = (lambda: thread_cpu(proc.pid), lambda: thread_cpu("self"))
        return run(args, url, tenants, inputs, want, in_name, call_direct, cpu)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def run(args, url, tenants, inputs, want, in_name, call_direct, cpu) -> int:  # type: ignore[no-untyped-def]
    """Measure the overhead, then the load; ``cpu``: functions giving the on-CPU seconds
    so far of each thread of (the server, the direct calls' process)."""
    server_cpu, direct_cpu = cpu
    deadline = time.monotonic() + args.max_seconds
    bodies = {t: request_body(in_name, inputs[t]) for t in tenants}

    def post(client: Client, t: str) -> tuple[int, bytes, int]:
        body, headers = bodies[t]
        return client.post(
            f"/v2/models/m_{t}/infer", body, headers | {"Authorization": f"Bearer token-{t}"}
        )

    # -------------------------------------------------------------- overhead
    # Blocks of BLOCK calls, alternating direct / server; the first call of each block
    # is dropped: switching between two emulated machines (two pools' weights and
    # buffers, and with --server process two processes) costs a cold cache, which a server
    # running alone does not pay. The k-th server call of a block is paired with the k-th
    # direct call: the overhead of that request is its round trip minus the direct call.
    t = tenants[0]
    d_times: list[float] = []
    s_times: list[float] = []
    diffs: list[float] = []  # round trip - direct call, per request
    split: dict[str, list[float]] = {}  # the server's phases (Server-Timing), per request
    rest: list[float] = []  # round trip minus every phase the server timed
    cpu_d = cpu_c = 0.0  # on-CPU seconds: direct calls, the client
    cpu_s: dict[str, float] = {}  # on-CPU seconds of each thread of the server
    client = Client(url)
    try:
        for _ in range(2):  # warm-up: first deploy, timing model, connection
            post(client, t)
            call_direct(t)
        for _ in range(max(1, args.serial // BLOCK)):
            if time.monotonic() > deadline:
                break
            d_block, s_block = [], []
            for k in range(BLOCK + 1):
                if k == 1:
                    c0 = direct_cpu()
                time.sleep(PAUSE)
                a = time.perf_counter()
                got = call_direct(t)
                if k:
                    d_block.append(time.perf_counter() - a)
                assert got == want[t]
            cpu_d += sum(cpu_delta(c0, direct_cpu()).values())
            for k in range(BLOCK + 1):
                if k == 1:
                    c0, c1 = server_cpu(), time.thread_time()
                time.sleep(PAUSE)
                a = time.perf_counter()
                status, data, n = post(client, t)
                if k:
                    rtt = time.perf_counter() - a
                    s_block.append(rtt)
                    ph = phases(client.timing)
                    for name, sec in ph.items():
                        split.setdefault(name, []).append(sec)
                    rest.append(rtt - sum(ph.values()))
                assert status == 200 and answer(data, n)[1] == want[t]
            for tid, sec in cpu_delta(c0, server_cpu()).items():
                cpu_s[tid] = cpu_s.get(tid, 0.0) + sec
            cpu_c += time.thread_time() - c1
            d_times += d_block
            s_times += s_block
            diffs += [s - d for s, d in zip(s_block, d_block, strict=True)]
    finally:
        client.close()
    over = statistics.median(diffs) * 1e3

    def ms(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1e3:8.3f} ms"

    print(
        f"\noverhead ({len(diffs)} requests, one client, binary tensors, in blocks of {BLOCK} "
        "warm calls each way):"
    )
    print(f"  emulator called directly  median {ms(d_times)}")
    print(f"  through the server        median {ms(s_times)}")
    print("  the server's phases (Server-Timing), medians:")
    for name, xs in split.items():
        print(f"    {name:8s} {ms(xs)}")
    print(f"    HTTP stack (uvicorn, routing, sending) and the client: {ms(rest)}")
    run_gap = statistics.median(split.get("run", [0.0])) - statistics.median(d_times)
    print(
        f"  the emulator in the server vs called directly: {run_gap * 1e3:+.3f} ms (median "
        "of its run phase minus median direct call)"
    )
    inside = [s - r for s, r in zip(s_times, split.get("run", [0.0] * len(s_times)), strict=True)]
    print(f"  round trip minus the server's own emulator time: median {ms(inside)}")
    low = (min(s_times) - min(d_times)) * 1e3
    print(
        f"  fastest call each way     {min(d_times) * 1e3:8.2f} ms vs {min(s_times) * 1e3:.2f} "
        f"ms: {low:.2f} ms apart (the least disturbed by other jobs on the machine)"
    )
    n = len(diffs)
    if cpu_s:
        # the pool's thread is the busiest; the others answer HTTP (event loop, ...)
        pool_cpu = max(cpu_s.values()) / n
        http_cpu = (sum(cpu_s.values()) / n) - pool_cpu
        direct = cpu_d / n
        print(
            f"  on-CPU time per request (from /proc schedstat; not inflated by waiting for "
            f"a core):\n"
            f"    direct call {direct * 1e3:8.3f} ms\n"
            f"    server: pool thread {pool_cpu * 1e3:.3f} ms ({(pool_cpu - direct) * 1e3:+.3f} "
            f"vs direct), other threads (HTTP) {http_cpu * 1e3:.3f} ms\n"
            f"    the server's CPU overhead {(pool_cpu + http_cpu - direct) * 1e3:.3f} ms; "
            f"the client's CPU {cpu_c / n * 1e3:.3f} ms"
        )
    p90 = sorted(diffs)[min(len(diffs) - 1, int(len(diffs) * 0.9))] * 1e3
    print(
        f"  overhead per request      median {over:8.3f} ms, p90 {p90:.3f} ms  (round trip "
        f"minus the direct call of the same input; goal <= {GOAL_MS} ms: "
        f"{'met' if over <= GOAL_MS else 'NOT met'})"
    )

    # ------------------------------------------------------------------ load
    lat: list[float] = []
    lost = leaks = 0
    lock = threading.Lock()
    others = {v: k for k, v in want.items()}

    def client_loop(i: int) -> None:
        nonlocal lost, leaks
        t = tenants[i % len(tenants)]
        client = Client(url)
        for _ in range(args.requests):
            if time.monotonic() > deadline:
                break
            a = time.perf_counter()
            try:
                status, data, n = post(client, t)
            except (OSError, BadResponse):
                with lock:
                    lost += 1
                client.close()
                client = Client(url)
                continue
            dt = time.perf_counter() - a
            with lock:
                if status != 200:
                    lost += 1
                    continue
                model, out = answer(data, n)
                if model != f"m_{t}" or out != want[t]:
                    leaks += 1
                    print(
                        f"  LEAK: client {i} tenant {t} got {others.get(out, 'a wrong output')}",
                        file=sys.stderr,
                    )
                lat.append(dt)
        client.close()

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
    a = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(args.max_seconds + 60)
    wall = time.perf_counter() - a
    sent = args.clients * args.requests
    lat.sort()
    p50 = lat[len(lat) // 2] * 1e3 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else float("nan")
    print(
        f"\nload: {args.clients} clients over {len(tenants)} tenants x {args.cores} cores, "
        f"{args.requests} requests each ({sent} requests)"
    )
    print(
        f"  answered {len(lat)} in {wall:.2f} s: {len(lat) / wall:.2f} requests/s, "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    print(
        f"  lost requests {lost}, cross-tenant leaks {leaks}, not sent (time bound) "
        f"{sent - len(lat) - lost - leaks}"
    )
    ok = lost == 0 and leaks == 0 and len(lat) == sent
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
