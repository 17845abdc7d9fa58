"""`chimein serve`: group-chat rooms in the browser, where the assistant chimes in, plus an OpenAI-compatible API.

    chimein serve                                   # http://127.0.0.1:8000, the shipped assistant (llama.cpp)
    chimein serve --model mention --db /tmp/rooms.db --port 8080
    chimein serve --eagerness 0.3                   # speak more often than the adapter's default threshold
    chimein serve --mode mention-only --cooldown 3/10m   # new rooms' settings (each room changes its own: !chimein help)
    CHIMEIN_KEY=... chimein serve --host 0.0.0.0 --api-key-env CHIMEIN_KEY   # /v1 needs "Bearer $CHIMEIN_KEY"
    chimein serve --reply-base-url http://127.0.0.1:8081/v1 --reply-model big   # decide small, reply strong

The library behind it is :func:`chimein.server.create_app`; docs/serve.md has the protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from chimein.assistant import RUNTIME_DEFAULT, RUNTIME_MODEL_HELP
from chimein.interfaces.room_options import (
    BotTurnsOpt, CooldownOpt, MaxReplyOpt, MinGapOpt, ModeOpt, SettleOpt, room_policy)



def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 to accept other machines)"),
    port: int = typer.Option(8000, help="port to listen on"),
    model: str = typer.Option(RUNTIME_DEFAULT, "--model", "-m", help=RUNTIME_MODEL_HELP),
    db: Path = typer.Option(Path("chimein.db"), help="SQLite file with the rooms and their messages (created if missing)"),
    eagerness: Optional[float] = typer.Option(None, "--eagerness", min=0.0, max=1.0, help="speaking threshold on p_speak, 0-1 (lower speaks more); default: the model's own; rooms can change theirs"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint for openai:NAME models"),
    model_api_key_env: str = typer.Option("OPENAI_API_KEY", help="environment variable holding the API key of --base-url"),
    api_key_env: Optional[str] = typer.Option(None, help="environment variable holding THIS server's API key: /v1 requests must send it as a Bearer token"),
    room_cache_mb: float = typer.Option(256.0, min=0.0, help="llama.cpp: memory for idle rooms' caches; past it the least recently used room is re-read from its messages when it speaks again"),
    style: str = typer.Option("finetuned", help="for openai: models: finetuned (chimein's format) or baseline"),
    reply_base_url: Optional[str] = typer.Option(None, help="two-stage: an OpenAI-compatible endpoint that writes the replies"),
    reply_model: Optional[str] = typer.Option(None, help="two-stage: the model name at --reply-base-url"),
    reply_api_key_env: str = typer.Option("OPENAI_API_KEY", help="two-stage: environment variable holding the replier's API key"),
    mode: str = ModeOpt, cooldown: Optional[str] = CooldownOpt, min_gap: int = MinGapOpt,
    max_reply_chars: int = MaxReplyOpt, settle: float = SettleOpt, bot_turns: int = BotTurnsOpt,
) -> None:
    """Run the group-chat server: web rooms with the assistant, and POST /v1/chat/completions."""
    import uvicorn

    import os

    from chimein.interfaces.cli import _backend, _replier, err
    from chimein.server import create_app
    from chimein.server.limits import Limits

    policy = room_policy(mode, cooldown, min_gap, max_reply_chars, settle, bot_turns)
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env, "").strip()
        if not api_key:
            raise ValueError(f"--api-key-env: the environment variable {api_key_env} is empty or unset")
    with err.status(f"loading {model}...", spinner="dots"):
        extra = {"state_budget_mb": room_cache_mb} if model.startswith("llamacpp:") else {}
        backend = _backend(model, base_url, model_api_key_env, style, eagerness, **extra)  # bad names: cli.user_errors
    app = create_app(backend, db_path=db, model_name=model, eagerness=eagerness, api_key=api_key, policy=policy,
                     replier=_replier(reply_base_url, reply_model, reply_api_key_env))
    if api_key is None and not is_loopback(host):
        err.print(f"[yellow]warning:[/yellow] listening on {host} without --api-key-env: anyone who can reach this "
                  "address can use /v1/chat/completions (and create rooms)", soft_wrap=True)
    err.print(f"chimein serve: open [bold]http://{host}:{port}/[/bold] to create a room (model {model}, db {db})", soft_wrap=True)
    uvicorn.run(app, host=host, port=port, ws_max_size=Limits().max_frame_bytes, log_level="info")



def is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
