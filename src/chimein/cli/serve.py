"""`chimein serve`: group-chat rooms in the browser, where the assistant chimes in, plus an OpenAI-compatible API.

    chimein serve                                   # http://127.0.0.1:8000, the shipped assistant (llama.cpp)
    chimein serve --model mention --db /tmp/rooms.db --port 8080
    PGPASSWORD=... chimein serve --db postgresql://chimein@db.example:5432/chimein   # rooms in PostgreSQL
    chimein serve --eagerness 0.3                   # speak more often than the adapter's default threshold
    chimein serve --mode mention-only --cooldown 3/10m   # new rooms' settings (each room changes its own: !chimein help)
    CHIMEIN_KEY=... chimein serve --host 0.0.0.0 --api-key-env CHIMEIN_KEY   # /v1 needs "Bearer $CHIMEIN_KEY"
    chimein serve --reply-base-url http://127.0.0.1:8081/v1 --reply-model big   # decide small, reply strong

The library behind it is :func:`chimein.server.create_app`; docs/serve.md has the protocol.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Optional

import typer

from chimein.cli.options import (
    LOG_FILE,
    REPLY_WAIT,
    ROOM_CACHE_MB,
    MODEL_API_KEY_ENV,
    ModelOptions,
    RoomOptions,
    backend_from_options,
    err,
    json_log_handler,
    log_json_lines,
    model_options,
    replier_from_options,
    room_options,
)


@model_options(api_key_env=MODEL_API_KEY_ENV)  # --api-key-env is this server's own key
@room_options
def serve(
    options: ModelOptions,
    room: RoomOptions,
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 to accept other machines)"),
    port: int = typer.Option(8000, min=0, max=65535, help="port to listen on (0: any free port)"),
    db: str = typer.Option(
        "chimein.db",
        help="where rooms and messages are kept: a SQLite file (created if missing) or a postgresql://user@host:port/db "
        "URL (password from PGPASSWORD or ~/.pgpass)",
    ),
    api_key_env: Optional[str] = typer.Option(
        None, help="environment variable holding THIS server's API key: /v1 requests must send it as a Bearer token"
    ),
    room_cache_mb: float = ROOM_CACHE_MB,
    reply_wait: float = REPLY_WAIT,
    log_file: Optional[Path] = LOG_FILE,
) -> None:
    """Run the group-chat server: web rooms with the assistant, and POST /v1/chat/completions."""
    import uvicorn

    from chimein.server import create_app
    from chimein.server.app import websocket_max_size
    from chimein.server.limits import Limits
    from chimein.server.store import masked

    policy = room.policy()
    # Everything the user gave is checked before the model loads: a bad address or database is one line, exit 2.
    check_listening_address(host, port)
    check_database(db)
    log_handler = json_log_handler(log_file)
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env, "").strip()
        if not api_key:
            raise ValueError(f"--api-key-env: the environment variable {api_key_env} is empty or unset")
    model = options.model
    with err.status(f"loading {model}...", spinner="dots"):
        backend = backend_from_options(options, room_cache_mb)
    app = create_app(
        backend,
        db_path=db,
        model_name=model,
        eagerness=options.eagerness,
        api_key=api_key,
        policy=policy,
        replier=replier_from_options(options),
        reply_wait_s=reply_wait,
    )
    if api_key is None and not is_loopback(host):
        err.print(
            f"[yellow]warning:[/yellow] listening on {host} without --api-key-env: anyone who can reach this "
            "address can use /v1/chat/completions (and create rooms)",
            soft_wrap=True,
        )
    err.print(
        f"chimein serve: open [bold]http://{host}:{port}/[/bold] to create a room (model {model}, db {masked(db)})",
        soft_wrap=True,
    )
    log_json_lines(log_handler)  # log_config=None: uvicorn's own records are JSON lines too
    uvicorn.run(app, host=host, port=port, ws_max_size=websocket_max_size(Limits()), log_config=None)


def check_listening_address(host: str, port: int) -> None:
    """A ValueError naming --host / --port when the server could not listen there (unknown host, port in use)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as e:
        raise ValueError(f"--host {host} --port {port}: cannot listen there: {e.strerror or e}") from None


def check_database(db: str) -> None:
    """A ValueError naming --db when the rooms' database could not be used (nothing is created here)."""
    from chimein.server.store import StoreError, probe

    try:
        probe(db)
    except StoreError as e:
        raise ValueError(f"--db {e}") from None


def is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
