"""``POST /v2/models/{m}[/versions/{v}]/infer`` on raw ASGI: the server's hot path.

Every inference comes through here, so this route skips what the other routes get from
FastAPI (its middleware stack, the router's scan of every route, dependency solving,
``Request`` and ``Response`` objects): :func:`with_infer_route` puts it in front of the
FastAPI application, which answers every other path. Its answers, errors and limits are
those of the other routes: a :class:`~vfpga.serve.protocol.ProtocolError` becomes its
status and ``{"error": ...}``; an unexpected error of any type is a 500 for this request
alone (logged).

The inputs are decoded on the event loop (off it for bodies above :data:`BIG_BODY`), the
job goes to the backend's queue (:meth:`~vfpga.serve.backend.Backend.submit`), and the
event loop waits on a plain asyncio future that the backend's thread settles through
``call_soon_threadsafe``. The response's ``Server-Timing`` header gives the server's
phases (:func:`server_timing`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vfpga.emulator.tensor_layout import binary_index_bounds
from vfpga.errors import VfpgaError
from vfpga.serve.auth import OPERATOR
from vfpga.serve.protocol import ProtocolError, decode_infer, encode_infer

if TYPE_CHECKING:
    from vfpga.serve.app import Server

log = logging.getLogger("vfpga.serve")

#: the inference paths (names as the other routes match them: no ``/`` inside)
INFER_PATH = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")
#: bodies above this many bytes are decoded off the event loop
BIG_BODY = 1 << 18
#: the request headers the route reads (ASGI gives names in lower case)
_WANTED = {
    k.encode(): k
    for k in (
        "authorization",
        "content-encoding",
        "content-length",
        "inference-header-content-length",
    )
}


class ClientGone(Exception):
    """The client disconnected before its request was read: nothing to answer."""


def server_timing(phases: dict[str, float]) -> str:
    """The ``Server-Timing`` header (W3C) of phase name -> seconds: ``name;dur=MS, ...``
    with durations in milliseconds."""
    return ", ".join(f"{k};dur={v * 1e3:.3f}" for k, v in phases.items())


def error_body(exc: ProtocolError) -> bytes:
    """The JSON body of a refused request (as FastAPI's ``JSONResponse`` writes it)."""
    return json.dumps({"error": exc.message}, ensure_ascii=False, separators=(",", ":")).encode()


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone
        yield msg.get("body", b"")
        if not msg.get("more_body", False):
            return


def _settle(done: asyncio.Future[Any], fut: Future[Any]) -> None:
    """(event loop) Copy the backend's outcome ``fut`` into ``done``."""
    if done.done():  # the request timed out meanwhile
        return
    if fut.cancelled():
        done.set_exception(ProtocolError(500, "the request was cancelled"))
        return
    exc = fut.exception()
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(fut.result())


async def infer(
    server: Server, name: str, version: str | None, headers: dict[str, str], receive: Receive
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Answer one inference: (body, extra headers) of the 200 response; raises
    :class:`ProtocolError` to refuse it, :class:`ClientGone` if the client left."""
    t_auth = time.perf_counter()
    who = server.caller(headers.get("authorization"))
    if who == OPERATOR:
        raise ProtocolError(403, "the operator token cannot infer; use the tenant's token")
    m, v = server.model(who, name, version)
    vfb = m.versions[v].vfb
    ins = [t for t in vfb.tensors if t.role == "input"]
    outs = [t for t in vfb.tensors if t.role == "output"]
    t_body = time.perf_counter()
    raw = await server.read_body(
        headers.get("content-encoding"), headers.get("content-length"), _chunks(receive)
    )
    t_decode = time.perf_counter()
    hl = headers.get("inference-header-content-length")
    if hl is not None and not hl.isdigit():
        raise ProtocolError(400, "Inference-Header-Content-Length must be a byte count")
    header_length = None if hl is None else int(hl)
    bounds = binary_index_bounds(vfb) if any(t.dtype == "int64" for t in ins) else None
    if len(raw) > BIG_BODY:
        req = await run_in_threadpool(decode_infer, raw, header_length, ins, outs, bounds)
    else:
        req = decode_infer(raw, header_length, ins, outs, bounds)
    t_submit = time.perf_counter()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    fut = server.scheduler.submit(who, name, v, req.inputs)
    fut.add_done_callback(lambda f: loop.call_soon_threadsafe(_settle, done, f))
    try:
        async with asyncio.timeout(server.request_timeout_s + 10):
            res = await done
    except TimeoutError:
        raise ProtocolError(504, "no answer within the run-time budget") from None
    t_back = time.perf_counter()
    params = {
        "vfpga_predicted_latency_s": res.predicted_s,
        "vfpga_cycles": res.cycles,
        "vfpga_cores": res.cores,
        "vfpga_context_switches": res.switches,
        "vfpga_queue_s": res.queue_s,
        "vfpga_run_s": res.run_s,
    }
    body, json_len = encode_infer(name, v, req, outs, res.outputs, params)
    phases = {
        "auth": t_body - t_auth,
        "body": t_decode - t_body,
        "decode": t_submit - t_decode,
        "queue": res.queue_s,
        "run": res.run_s,
    }
    if res.finished:
        phases["back"] = t_back - res.finished
    phases["encode"] = time.perf_counter() - t_back
    out = [
        (b"x-vfpga-predicted-latency-s", f"{res.predicted_s:.9f}".encode()),
        (b"server-timing", server_timing(phases).encode()),
    ]
    if json_len is None:
        out.append((b"content-type", b"application/json"))
    else:
        out.append((b"content-type", b"application/octet-stream"))
        out.append((b"inference-header-content-length", str(json_len).encode()))
    return body, out


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-length", str(len(body)).encode()), *headers],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


def with_infer_route(
    server: Server, app: ASGIApp
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI application answering the inference paths (:data:`INFER_PATH`; a method
    other than POST is 405) of ``server`` itself and passing everything else (other paths,
    lifespan) to ``app``."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        match = INFER_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _refuse(send, ProtocolError(405, "inference is POST", {"Allow": "POST"}))
            return
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:  # the first of repeated headers, as Starlette's get
            name = _WANTED.get(k)
            if name is not None and name not in headers:
                headers[name] = v.decode("latin-1")
        try:
            body, extra = await infer(server, match["name"], match["version"], headers, receive)
        except ClientGone:
            return
        except ProtocolError as exc:
            await _refuse(send, exc)
            return
        except VfpgaError as exc:
            await _refuse(send, ProtocolError(400, str(exc)))
            return
        except Exception as exc:  # a bug or a hostile input: this request alone fails
            log.error("POST %s: %s: %s", scope["path"], type(exc).__name__, exc)
            await _refuse(send, ProtocolError(500, f"internal error: {type(exc).__name__}"))
            return
        await _respond(send, 200, body, extra)

    return asgi


async def _refuse(send: Send, exc: ProtocolError) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await _respond(
        send, exc.status, error_body(exc), [(b"content-type", b"application/json"), *headers]
    )


__all__ = ["BIG_BODY", "INFER_PATH", "infer", "server_timing", "with_infer_route"]
