"""`chimein matrix`: the assistant as a bot in Matrix rooms (needs ``pip install 'chimein[matrix]'``).

    export MATRIX_PASSWORD=...          # the bot account's password, needed for the first login only
    chimein matrix --homeserver https://matrix.example.org --user @chimein:example.org \\
        --password-env MATRIX_PASSWORD --allow-from @ana:example.org
    chimein matrix ... --rooms '#team:example.org' --eagerness 0.3
    chimein matrix ... --model mention  # no model at all: answers iff named (assistant, bot, ai, chimein)
    chimein matrix ... --mode mention-only --cooldown 3/10m --bot-user @otherbot:example.org

The bot reads every message of the rooms it joins. See docs/matrix.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Optional

import typer

from chimein.cli.options import (
    LOG_FILE,
    REPLY_WAIT,
    ROOM_CACHE_MB,
    ModelOptions,
    RoomOptions,
    backend_from_options,
    fail,
    json_log_handler,
    log_json_lines,
    model_options,
    replier_from_options,
    room_options,
)

MISSING_NIO = "the Matrix bot needs matrix-nio: pip install 'chimein[matrix]'"


@model_options
@room_options
def matrix(
    options: ModelOptions,
    room: RoomOptions,
    homeserver: str = typer.Option(..., help="the homeserver's URL, e.g. https://matrix.example.org"),
    user: str = typer.Option(..., help="the bot's Matrix ID, e.g. @chimein:example.org"),
    password_env: str = typer.Option(
        "MATRIX_PASSWORD", help="environment variable holding the bot's password (first login only)"
    ),
    rooms: List[str] = typer.Option(
        [],
        help="room ID or #alias to join and work in (repeat, or comma-separate); "
        "then only invites to these rooms or from --allow-from are accepted",
    ),
    allow_from: List[str] = typer.Option(
        [], help="accept invites only from this user (@u:server) or server (:server); repeatable"
    ),
    store_dir: Optional[Path] = typer.Option(
        None, help="where the login and sync token are kept (default $CHIMEIN_HOME/matrix)"
    ),
    history: int = typer.Option(40, help="messages of room history each room's assistant starts from"),
    log_level: str = typer.Option("INFO", help="DEBUG also logs message texts"),
    room_cache_mb: float = ROOM_CACHE_MB,
    reply_wait: float = REPLY_WAIT,
    log_file: Optional[Path] = LOG_FILE,
    bot_user: List[str] = typer.Option(
        [], help="another bot's Matrix ID (repeatable): heard, never a reason to interject"
    ),
    bot_name_pattern: Optional[str] = typer.Option(
        None, help="a regular expression on display names that marks other bots, e.g. '(?i)bot$'"
    ),
    command_power_level: int = typer.Option(
        50, help="the power level a member needs to change the bot's settings with !chimein"
    ),
) -> None:
    """Run the assistant as a Matrix bot: it hears every message of its rooms and replies only when it decides to."""
    try:
        from chimein.connectors.matrix import MatrixBotError, MatrixSettings, load_session, run_bot
    except ImportError as e:
        fail(f"{MISSING_NIO} ({e})")
    from chimein.assistant import Assistant
    from chimein.models import chimein_home

    if not isinstance(logging.getLevelName(log_level.upper()), int):
        fail(f"--log-level {log_level}: use DEBUG, INFO, WARNING or ERROR")
    try:
        log_handler = json_log_handler(log_file)
        settings = MatrixSettings(
            homeserver,
            user,
            store_dir or chimein_home() / "matrix",
            password=os.environ.get(password_env),
            rooms=_split(rooms),
            allow_from=_split(allow_from),
            history_limit=history,
            policy=room.policy(),
            bot_users=_split(bot_user),
            bot_name_pattern=bot_name_pattern,
            command_power_level=command_power_level,
            reply_wait_s=reply_wait,
        )
        if not settings.password and not load_session(settings.store_dir, user):
            raise MatrixBotError(f"set ${password_env} to the bot's password (no saved login in {settings.store_dir})")
    except (ValueError, MatrixBotError) as e:
        fail(str(e))
    backend, replier = backend_from_options(options, room_cache_mb), replier_from_options(options)
    log_json_lines(log_handler, log_level)
    logging.getLogger("nio").setLevel(logging.WARNING)
    try:
        run_bot(
            settings, lambda: Assistant(backend, replier=replier, threshold=options.eagerness)
        )  # one replier for all rooms
    except MatrixBotError as e:
        fail(str(e), code=1)


def _split(values: List[str]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())
