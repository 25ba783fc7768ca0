"""``vfpga serve``: the pool as a KServe v2 inference server (FastAPI on uvicorn).

:class:`Server` opens the state (or, on the first start, the repository), owns the
:class:`~vfpga.serve.scheduler.Scheduler` and answers HTTP through :func:`create_app`.
Routes (docs/serving.md):

* open: ``GET /v2/health/live``, ``GET /v2/health/ready``
* any token: ``GET /v2``; a tenant's own models only (others are 404):
  ``GET /v2/models/{m}[/versions/{v}][/ready]``, ``POST /v2/models/{m}[/versions/{v}]/infer``
  (the last on raw ASGI, :mod:`vfpga.serve.infer_route`)
* operator token: ``GET|POST /v2/repository/index``,
  ``POST /v2/repository/models/{m}/load|unload``, ``GET|POST /v2/tenants``,
  ``POST /v2/tenants/{t}/resize``, ``DELETE /v2/tenants/{t}``, ``GET /metrics``
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from vfpga.errors import VfpgaError
from vfpga.hw.config import HardwareConfig
from vfpga.serve.auth import OPERATOR, bearer, identify
from vfpga.serve.backend import Backend, BackendFactory
from vfpga.serve.infer_route import with_infer_route
from vfpga.serve.metrics import Metrics
from vfpga.serve.policy import make_policy
from vfpga.serve.protocol import ProtocolError, tensor_metadata
from vfpga.serve.repository import (
    ModelNotFound,
    ModelSpec,
    ModelVersion,
    model_names,
    read_model,
    read_tenants,
    tenant_spec,
    validate_binary,
)
from vfpga.serve.scheduler import Scheduler
from vfpga.serve.state import State

log = logging.getLogger("vfpga.serve")


class Server:
    """One server instance: hardware, repository, state, scheduler, limits. ``open()``
    restores the state or reads the repository; raises :class:`VfpgaError` naming the
    file if either is bad (nothing is served then)."""

    def __init__(
        self,
        repository: Path,
        state_dir: Path,
        hw: HardwareConfig,
        policy: str = "fixed",
        operator_sha256: str | None = None,
        request_timeout_s: float = 30.0,
        max_body_bytes: int = 64 << 20,
        backend: BackendFactory | None = None,
    ) -> None:
        """``backend``: what runs the requests (default: one pool, :class:`Scheduler`;
        ``vfpga fleet serve`` passes a fleet of them)."""
        self.repository = repository
        self.hw = hw
        self.operator_sha256 = operator_sha256
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        self.metrics = Metrics()
        try:
            self.state = State(state_dir)
        except (sqlite3.Error, OSError) as exc:
            raise VfpgaError(f"--state-dir {state_dir}: cannot open its state: {exc}") from None
        make: BackendFactory = backend or Scheduler
        self.scheduler: Backend = make(
            hw, self.state, self.metrics, make_policy(policy), request_timeout_s
        )
        self.scheduler.operator_sha256 = operator_sha256
        self.cache: dict[str, bytes] = {}

    def open(self) -> None:
        try:
            self._open()
        except ProtocolError as exc:  # a conflict in the repository or the state
            raise VfpgaError(exc.message) from None
        except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:
            raise VfpgaError(
                f"{self.state.path}: not a usable vfpga state ({exc}); move it "
                "away or use another --state-dir"
            ) from None

    def _open(self) -> None:
        try:
            initialized = self.state.initialized(self.hw.fingerprint.hex())
        except ValueError as exc:
            raise VfpgaError(str(exc)) from None
        sched = self.scheduler
        if initialized:
            tenants = self.state.tenants()
            specs = {s.name: s for s, _ in tenants}
            models = []
            for name, tenant, versions in self.state.models():
                if tenant not in specs:
                    raise VfpgaError(
                        f"{self.state.path}: model '{name}' belongs to an unknown "
                        f"tenant '{tenant}'; use a fresh --state-dir"
                    )
                m = ModelSpec(name, tenant)
                for v, sha in versions.items():
                    blob = self.state.binary(sha)
                    source = f"{self.state.path}: model '{name}' version {v}"
                    if blob is None:
                        raise VfpgaError(f"{source}: binary {sha[:16]} is missing")
                    vfb = validate_binary(
                        blob, source, self.hw, specs[tenant].cores, specs[tenant].ddr_mib
                    )
                    m.versions[v] = ModelVersion(v, blob, vfb, sha, source)
                models.append(m)
            sched.restore(tenants, models)
            self.cache = self.state.compile_cache()
            log.info(
                "restored %d tenants and %d models from %s",
                len(tenants),
                len(models),
                self.state.path,
            )
            return
        self.state.reset()
        for spec in read_tenants(self.repository, self.hw.num_cores, sched.capacity):
            sched.add_tenant(spec)
        for name in model_names(self.repository):
            cache: dict[str, bytes] = {}
            m = read_model(self.repository, name, self.hw, sched.specs, cache)
            sched.commit_model(m, cache)
            self.cache.update(cache)
        self.state.mark_initialized(self.hw.fingerprint.hex())

    def close(self) -> None:
        self.scheduler.stop()
        self.state.close()

    # ------------------------------------------------------------------ helpers
    def who(self, request: Request) -> str:
        """The caller (tenant name or :data:`OPERATOR`); 401 without a valid token."""
        return self.caller(request.headers.get("authorization"))

    def caller(self, authorization: str | None) -> str:
        """The holder of the token of an ``Authorization`` header (tenant name or
        :data:`OPERATOR`); 401 without a valid token."""
        who = identify(
            bearer(authorization),
            self.operator_sha256,
            ((n, s.token_sha256) for n, s in self.scheduler.specs.items()),
        )
        if who is None:
            raise ProtocolError(
                401,
                "a valid bearer token is required (Authorization: Bearer TOKEN)",
                {"WWW-Authenticate": "Bearer"},
            )
        return who

    def operator(self, request: Request) -> None:
        if self.who(request) != OPERATOR:
            raise ProtocolError(403, "only the operator token may do this")

    def model(self, who: str, name: str, version: str | None) -> tuple[ModelSpec, str]:
        """Model ``name`` as caller ``who`` may see it; 404 for another tenant's."""
        m = self.scheduler.models.get(name)
        if m is None or (who != OPERATOR and m.tenant != who):
            raise ProtocolError(404, f"no model '{name}' (for this token)")
        v = version or m.latest
        if v not in m.versions:
            raise ProtocolError(
                404,
                f"model '{name}' has no version {v} (versions: {', '.join(sorted(m.versions))})",
            )
        return m, v

    async def body(self, request: Request) -> bytes:
        """The body of ``request`` within the limits (:meth:`read_body`)."""
        h = request.headers
        return await self.read_body(
            h.get("content-encoding"), h.get("content-length"), request.stream()
        )

    async def read_body(
        self, encoding: str | None, length: str | None, chunks: AsyncIterator[bytes]
    ) -> bytes:
        """A body from its ``Content-Encoding`` and ``Content-Length`` headers and its
        chunks: 415 if compressed, 413 past ``max_body_bytes`` (as declared, or as read)."""
        enc = (encoding or "identity").lower()
        if enc != "identity":
            raise ProtocolError(
                415, f"Content-Encoding {enc} is not accepted (send the body uncompressed)"
            )
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            raise ProtocolError(413, f"the body is larger than {self.max_body_bytes} bytes")
        parts, n = [], 0
        async for chunk in chunks:
            n += len(chunk)
            if n > self.max_body_bytes:
                raise ProtocolError(413, f"the body is larger than {self.max_body_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def json_body(self, request: Request) -> dict[str, Any]:
        raw = await self.body(request)
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ProtocolError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ProtocolError(400, "the body must be a JSON object")
        return doc

    async def worker(self, fn: Any) -> Any:
        """Run ``fn`` on the pool's thread and await it."""
        return await asyncio.wrap_future(self.scheduler.call(fn))


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port). Created with
    ``IPPROTO_TCP`` so that asyncio sets ``TCP_NODELAY`` on its connections (a socket of
    protocol 0 keeps Nagle's algorithm, and every small response then waits ~40 ms for
    the client's delayed ACK). Raises :class:`VfpgaError` if the address is taken."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise VfpgaError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise VfpgaError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _error(exc: ProtocolError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)


def create_app(server: Server) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI application of ``server`` (the scheduler starts and drains with it): the
    inference route on raw ASGI (:mod:`vfpga.serve.infer_route`), every other route on
    FastAPI."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.scheduler.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, server.scheduler.stop)

    app = FastAPI(
        title="vfpga serve", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None
    )

    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(VfpgaError)
    async def vfpga_error(request: Request, exc: VfpgaError) -> JSONResponse:
        return _error(ProtocolError(400, str(exc)))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return _error(ProtocolError(500, f"internal error: {type(exc).__name__}"))

    # ------------------------------------------------------------- health
    @app.get("/v2/health/live")
    async def live() -> dict[str, Any]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        ok = server.scheduler.accepting
        return JSONResponse({"ready": ok}, 200 if ok else 503)

    @app.get("/v2")
    async def metadata(request: Request) -> dict[str, Any]:
        server.who(request)
        return {
            "name": "vfpga",
            "version": "0.1.0",
            "extensions": ["binary_tensor_data", "model_repository"],
        }

    # ------------------------------------------------------------- models
    def model_meta(m: ModelSpec, v: str) -> dict[str, Any]:
        vfb = m.versions[v].vfb
        return {
            "name": m.name,
            "versions": sorted(m.versions),
            "platform": "vfpga_vfb",
            "inputs": [tensor_metadata(t) for t in vfb.tensors if t.role == "input"],
            "outputs": [tensor_metadata(t) for t in vfb.tensors if t.role == "output"],
        }

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str, request: Request) -> dict[str, Any]:
        m, v = server.model(server.who(request), name, None)
        return model_meta(m, v)

    @app.get("/v2/models/{name}/versions/{version}")
    async def model_version_metadata(name: str, version: str, request: Request) -> dict[str, Any]:
        m, v = server.model(server.who(request), name, version)
        return model_meta(m, v)

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str, request: Request) -> dict[str, Any]:
        _m, _v = server.model(server.who(request), name, None)
        return {"name": name, "ready": True}

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_version_ready(name: str, version: str, request: Request) -> dict[str, Any]:
        server.model(server.who(request), name, version)
        return {"name": name, "ready": True}

    # --------------------------------------------------------- repository
    @app.api_route("/v2/repository/index", methods=["GET", "POST"])
    async def repository_index(request: Request) -> list[dict[str, Any]]:
        server.operator(request)
        loaded = server.scheduler.models
        rows = []
        for name in sorted(set(model_names(server.repository)) | set(loaded)):
            m = loaded.get(name)
            if m is None:
                rows.append({"name": name, "state": "UNAVAILABLE", "reason": "unloaded"})
            else:
                rows += [
                    {
                        "name": name,
                        "version": v,
                        "state": "READY",
                        "reason": "",
                        "tenant": m.tenant,
                        "sha256": m.versions[v].sha256,
                    }
                    for v in sorted(m.versions)
                ]
        return rows

    @app.post("/v2/repository/models/{name}/load")
    async def load(name: str, request: Request) -> dict[str, Any]:
        server.operator(request)
        await server.json_body(request)
        specs = server.scheduler.specs
        cache = dict(server.cache)
        try:
            m = await run_in_threadpool(
                read_model, server.repository, name, server.hw, specs, cache
            )
        except ModelNotFound as exc:
            raise ProtocolError(404, str(exc)) from None
        except VfpgaError as exc:
            raise ProtocolError(400, str(exc)) from None
        except Exception as exc:  # a hostile model may break a library in any way
            raise ProtocolError(
                400, f"model '{name}' cannot be loaded: {type(exc).__name__}: {exc}"
            ) from None
        new = {k: v for k, v in cache.items() if k not in server.cache}
        await server.worker(lambda: server.scheduler.commit_model(m, new))
        server.cache.update(new)
        return {}

    @app.post("/v2/repository/models/{name}/unload")
    async def unload(name: str, request: Request) -> dict[str, Any]:
        server.operator(request)
        await server.json_body(request)
        await server.worker(lambda: server.scheduler.unload_model(name))
        return {}

    # ------------------------------------------------------------ tenants
    @app.get("/v2/tenants")
    async def tenants(request: Request) -> list[dict[str, Any]]:
        server.operator(request)
        rows: list[dict[str, Any]] = await server.worker(server.scheduler.tenants_view)
        return rows

    @app.post("/v2/tenants")
    async def add_tenant(request: Request) -> dict[str, Any]:
        server.operator(request)
        doc = await server.json_body(request)
        spec = tenant_spec(doc.get("name"), doc, "POST /v2/tenants", server.hw.num_cores)
        cores = await server.worker(lambda: server.scheduler.add_tenant(spec))
        return {"name": spec.name, "allocated_cores": cores}

    @app.post("/v2/tenants/{name}/resize")
    async def resize_tenant(name: str, request: Request) -> dict[str, Any]:
        server.operator(request)
        doc = await server.json_body(request)
        n = doc.get("cores")
        if type(n) is not int:
            raise ProtocolError(400, 'the body must be {"cores": N}')
        cores = await server.worker(lambda: server.scheduler.resize_tenant(name, n))
        return {"name": name, "allocated_cores": cores}

    @app.delete("/v2/tenants/{name}")
    async def remove_tenant(name: str, request: Request) -> dict[str, Any]:
        server.operator(request)
        await server.worker(lambda: server.scheduler.remove_tenant(name))
        return {}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        server.operator(request)
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")

    return with_infer_route(server, app)


__all__ = ["Server", "create_app", "listen_socket"]
