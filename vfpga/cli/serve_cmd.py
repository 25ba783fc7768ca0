"""``vfpga serve --repository DIR --state-dir DIR2 [--hw pool16] [--host 127.0.0.1]
[--port 8000] [--policy fixed|elastic]`` (docs/serving.md)."""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from vfpga.errors import VfpgaError
from vfpga.hw.config import DEFAULT_HW

if TYPE_CHECKING:
    from vfpga.hw.config import HardwareConfig
    from vfpga.serve.app import Server


def _hash_token(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from vfpga.serve.auth import hash_token

    token = sys.stdin.readline().strip()
    if not token:
        raise click.UsageError("--hash-token reads the token from the first line of stdin")
    click.echo(hash_token(token))
    ctx.exit(0)


def operator_hash(token_file: Path | None) -> str | None:
    """The SHA-256 of the operator token: from ``token_file`` (its first line), else from
    ``VFPGA_OPERATOR_TOKEN``; None if neither is set (then no one can manage the server)."""
    from vfpga.serve.auth import hash_token

    if token_file is not None:
        try:
            token = token_file.read_text().strip().splitlines()
        except OSError as exc:
            raise VfpgaError(
                f"--operator-token-file {token_file}: cannot read: {exc.strerror}"
            ) from None
        if not token or not token[0].strip():
            raise VfpgaError(f"--operator-token-file {token_file}: the file is empty")
        return hash_token(token[0].strip())
    env = os.environ.get("VFPGA_OPERATOR_TOKEN", "").strip()
    return hash_token(env) if env else None


_FRONT_OPTIONS = [
    click.option(
        "--repository",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="Model repository: tenants.toml and <model>/config.toml + <version>/model.vfb|onnx.",
    ),
    click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="Where the server keeps its state (SQLite); a restart resumes from it.",
    ),
    click.option(
        "--hw",
        "hw_name",
        default=DEFAULT_HW,
        show_default=True,
        help="Hardware preset or configuration JSON (of every node, in a fleet).",
    ),
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
    click.option(
        "--port",
        default=8000,
        show_default=True,
        type=click.IntRange(0, 65535),
        help="Port (0: any free port; the line 'listening on' says which).",
    ),
    click.option(
        "--operator-token-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="File whose first line is the operator token (default: $VFPGA_OPERATOR_TOKEN).",
    ),
    click.option(
        "--request-timeout",
        default=30.0,
        show_default=True,
        type=click.FloatRange(0.01, 3600),
        help="Run-time budget of a request (s).",
    ),
    click.option(
        "--max-body-mib",
        default=64,
        show_default=True,
        type=click.IntRange(1, 4096),
        help="Largest request body (MiB).",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def front_options(f: F) -> F:
    """The options every KServe v2 front takes (``vfpga serve``, ``vfpga fleet serve``):
    repository, state dir, hardware, address, operator token, budgets."""
    for opt in reversed(_FRONT_OPTIONS):
        f = opt(f)
    return f


def front_setup(
    hw_name: str, operator_token_file: Path | None
) -> tuple[HardwareConfig, str | None]:
    """The hardware and the operator token's hash of a front (a warning on stderr when no
    operator token is set: then no one can manage tenants or the repository)."""
    from vfpga.hw import HardwareConfigError, load_hw

    try:
        hw = load_hw(hw_name)
    except HardwareConfigError as exc:
        raise VfpgaError(str(exc)) from None
    op = operator_hash(operator_token_file)
    if op is None:
        click.echo(
            "warning: no operator token (VFPGA_OPERATOR_TOKEN or "
            "--operator-token-file): tenants and the repository cannot be managed",
            err=True,
        )
    return hw, op


@click.command()
@front_options
@click.option(
    "--policy",
    type=click.Choice(["fixed", "elastic"]),
    default="fixed",
    show_default=True,
    help="fixed: shares never change; elastic: grow busy "
    "tenants from free cores, shrink idle ones back.",
)
@click.option(
    "--hash-token",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_hash_token,
    help="Print the SHA-256 of the token on stdin (for tenants.toml) and exit.",
)
def serve(
    repository: Path,
    state_dir: Path,
    hw_name: str,
    host: str,
    port: int,
    operator_token_file: Path | None,
    request_timeout: float,
    max_body_mib: int,
    policy: str,
) -> None:
    """Serve the repository's models to their tenants over the KServe v2 protocol
    (SIGTERM or Ctrl-C: stop accepting, finish accepted requests, exit)."""
    from vfpga.serve.app import Server

    hw, op = front_setup(hw_name, operator_token_file)
    run_server(
        lambda: Server(repository, state_dir, hw, policy, op, request_timeout, max_body_mib << 20),
        host,
        port,
        request_timeout,
        "vfpga serve",
        f", policy {policy}",
    )


def run_server(
    make: Callable[[], Server],
    host: str,
    port: int,
    request_timeout: float,
    what: str,
    detail: str = "",
) -> None:
    """Listen on ``host:port``, open the server ``make()`` builds, answer HTTP until
    SIGTERM or SIGINT (then drain: accepted requests are answered), close it. The start
    line on stderr reads ``WHAT: N tenant(s), M model(s)DETAIL; listening on http://...``."""
    import uvicorn

    from vfpga.serve.app import create_app, listen_socket

    sock = listen_socket(host, port)
    try:
        server = make()
    except BaseException:
        sock.close()
        raise
    try:
        server.open()
        bound = sock.getsockname()[1]
        app = create_app(server)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # nothing here reads the client's address
            timeout_graceful_shutdown=int(request_timeout) + 10,
        )
        click.echo(
            f"{what}: {len(server.scheduler.specs)} tenant(s), "
            f"{len(server.scheduler.models)} model(s){detail}; listening on "
            f"http://{host}:{bound}",
            err=True,
        )
        # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler that
        # was there before it: make that one a no-op, so a drained server exits 0
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        # everything loaded so far (libraries, models) lives as long as the server: out of
        # the garbage collector's sight, a full collection no longer walks it (~30 ms on
        # MobileNet v1, which landed in some request's latency)
        gc.freeze()
        uvicorn.Server(config).run(sockets=[sock])
        click.echo(f"{what}: stopped (accepted requests answered)", err=True)
    finally:
        sock.close()
        server.close()
