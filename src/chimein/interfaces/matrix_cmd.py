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

from chimein.assistant import RUNTIME_DEFAULT, RUNTIME_MODEL_HELP
from chimein.interfaces.room_options import (
    BotTurnsOpt, CooldownOpt, MaxReplyOpt, MinGapOpt, ModeOpt, SettleOpt, room_policy)

MISSING_NIO = "the Matrix bot needs matrix-nio: pip install 'chimein[matrix]'"


def matrix(
    homeserver: str = typer.Option(..., help="the homeserver's URL, e.g. https://matrix.example.org"),
    user: str = typer.Option(..., help="the bot's Matrix ID, e.g. @chimein:example.org"),
    password_env: str = typer.Option("MATRIX_PASSWORD", help="environment variable holding the bot's password (first login only)"),
    rooms: List[str] = typer.Option([], help="room ID or #alias to join and work in (repeat, or comma-separate); "
                                              "then only invites to these rooms or from --allow-from are accepted"),
    allow_from: List[str] = typer.Option([], help="accept invites only from this user (@u:server) or server (:server); repeatable"),
    model: str = typer.Option(RUNTIME_DEFAULT, "--model", "-m", help=RUNTIME_MODEL_HELP),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint for openai:NAME models"),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="environment variable holding the API key"),
    style: str = typer.Option("finetuned", help="for openai: models: finetuned (chimein's format) or baseline"),
    eagerness: Optional[float] = typer.Option(None, "--eagerness", min=0.0, max=1.0, help="speaking threshold on p_speak, 0-1 (lower speaks more)"),
    reply_base_url: Optional[str] = typer.Option(None, help="two-stage: an OpenAI-compatible endpoint that writes the replies"),
    reply_model: Optional[str] = typer.Option(None, help="two-stage: the model name at --reply-base-url"),
    reply_api_key_env: str = typer.Option("OPENAI_API_KEY", help="two-stage: environment variable holding the replier's API key"),
    store_dir: Optional[Path] = typer.Option(None, help="where the login and sync token are kept (default $CHIMEIN_HOME/matrix)"),
    history: int = typer.Option(40, help="messages of room history each room's assistant starts from"),
    log_level: str = typer.Option("INFO", help="DEBUG also logs message texts"),
    mode: str = ModeOpt, cooldown: Optional[str] = CooldownOpt, min_gap: int = MinGapOpt,
    max_reply_chars: int = MaxReplyOpt, settle: float = SettleOpt, bot_turns: int = BotTurnsOpt,
    bot_user: List[str] = typer.Option([], help="another bot's Matrix ID (repeatable): heard, never a reason to interject"),
    bot_name_pattern: Optional[str] = typer.Option(None, help="a regular expression on display names that marks other bots, e.g. '(?i)bot$'"),
    command_power_level: int = typer.Option(50, help="the power level a member needs to change the bot's settings with !chimein"),
) -> None:
    """Run the assistant as a Matrix bot: it hears every message of its rooms and replies only when it decides to."""
    try:
        from chimein.interfaces.matrix import MatrixBotError, MatrixSettings, load_session, run_bot
    except ImportError as e:
        typer.echo(f"error: {MISSING_NIO} ({e})", err=True)
        raise typer.Exit(2)
    from chimein.assistant import Assistant
    from chimein.interfaces.cli import _backend, _replier
    from chimein.models import chimein_home

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nio").setLevel(logging.WARNING)
    try:
        settings = MatrixSettings(homeserver, user, store_dir or chimein_home() / "matrix", password=os.environ.get(password_env),
                                  rooms=_split(rooms), allow_from=_split(allow_from), history_limit=history,
                                  policy=room_policy(mode, cooldown, min_gap, max_reply_chars, settle, bot_turns),
                                  bot_users=_split(bot_user), bot_name_pattern=bot_name_pattern,
                                  command_power_level=command_power_level)
        if not settings.password and not load_session(settings.store_dir, user):
            raise MatrixBotError(f"set ${password_env} to the bot's password (no saved login in {settings.store_dir})")
    except (ValueError, MatrixBotError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    backend = _backend(model, base_url, api_key_env, style, eagerness)
    replier = _replier(reply_base_url, reply_model, reply_api_key_env)
    try:
        run_bot(settings, lambda: Assistant(backend, replier=replier, threshold=eagerness))
    except MatrixBotError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)


def _split(values: List[str]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())
