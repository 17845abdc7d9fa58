"""What the commands share: the assistant's model options (each defined once), building the assistant from
them, and the one way bad input ends: ``error: ...`` on stderr and exit code 2, never a traceback.

Command modules import this module and the library, never :mod:`chimein.cli` (which assembles them).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import typer
from rich.console import Console

from chimein.assistant import RUNTIME_DEFAULT, RUNTIME_MODEL_HELP

console = Console()
err = Console(stderr=True)

# A model to tokenize or train (template-tokens, train): what chimein.models.resolve_model takes.
BASE_MODEL_HELP = "default, smollm2-135m-instruct, gemma3-270m, a local dir, an adapter dir, a .gguf file, or a hub id"

# -- the model options of chat, decide, eval, serve and matrix ---------------------------------------------

KEY_ENV_DEFAULT = "OPENAI_API_KEY"
KEY_ENV_HELP = "environment variable holding the API key of --base-url"

MODEL = typer.Option(RUNTIME_DEFAULT, "--model", "-m", help=RUNTIME_MODEL_HELP)
BASE_URL = typer.Option(None, help="OpenAI-compatible endpoint for openai:NAME models (e.g. http://127.0.0.1:8080/v1)")
API_KEY_ENV = typer.Option(KEY_ENV_DEFAULT, help=KEY_ENV_HELP)
# `serve` has an --api-key-env of its own (the server's key); there the model's key is --model-api-key-env.
MODEL_API_KEY_ENV = typer.Option(KEY_ENV_DEFAULT, "--model-api-key-env", help=KEY_ENV_HELP)
STYLE = typer.Option("finetuned", help="for openai: models: finetuned (chimein's format) or baseline (the seed's prompt)")
EAGERNESS = typer.Option(None, "--eagerness", min=0.0, max=1.0,
                         help="speaking threshold on p_speak, 0-1 (lower speaks more); default: the model's own "
                              "(the shipped adapter's is F1-optimal)")
REPLY_BASE_URL = typer.Option(None, help="two-stage: an OpenAI-compatible endpoint that writes the replies")
REPLY_MODEL = typer.Option(None, help="two-stage: the model name at --reply-base-url")
REPLY_API_KEY_ENV = typer.Option(KEY_ENV_DEFAULT, help="two-stage: environment variable holding the replier's API key")


# -- a new room's settings (serve and matrix; each room then changes its own with !chimein commands) --------

MODE = typer.Option("auto", help="a new room's mode: auto (the model decides), mention-only, quiet")
COOLDOWN = typer.Option(None, help="at most N unprompted messages per M minutes, e.g. 3/10m")
MIN_GAP = typer.Option(0, min=0, help="user messages between two unprompted interjections")
MAX_REPLY_CHARS = typer.Option(600, min=20, help="replies are cut to this many characters")
SETTLE = typer.Option(1.5, min=0.0, help="seconds to wait for more messages before deciding once on the latest")
BOT_TURNS = typer.Option(3, min=0, help="replies in a row to another bot before the assistant stops answering it")


def room_policy(mode: str, cooldown: Optional[str], min_gap: int, max_reply_chars: int, settle: float,
                bot_turns: int) -> Any:
    """The room settings the options give (a RoomPolicy); a bad value is a ValueError naming the flag."""
    from chimein.assistant.policy import PolicyError, RoomPolicy, parse_cooldown

    try:
        return RoomPolicy(mode=mode, cooldown=parse_cooldown(cooldown) if cooldown else None,  # type: ignore[arg-type]
                          min_gap=min_gap, max_reply_chars=max_reply_chars, settle_s=settle, bot_turns=bot_turns)
    except PolicyError as e:
        raise ValueError(f"--mode / --cooldown: {e}") from None


@dataclass(frozen=True)
class ModelOptions:
    """The model options as one command received them."""

    model: str = RUNTIME_DEFAULT
    base_url: Optional[str] = None
    api_key_env: str = KEY_ENV_DEFAULT
    style: str = "finetuned"
    eagerness: Optional[float] = None
    reply_base_url: Optional[str] = None
    reply_model: Optional[str] = None
    reply_api_key_env: str = KEY_ENV_DEFAULT

    def with_model(self, model: str) -> "ModelOptions":
        return replace(self, model=model)


def backend_from_options(options: ModelOptions, **extra: Any) -> Any:
    """The decision backend the options name (``extra`` goes to the backend, e.g. ``state_budget_mb``)."""
    from chimein.assistant import get_backend

    style = {"style": options.style} if options.model.startswith("openai:") or options.base_url else {}
    return get_backend(options.model, base_url=options.base_url, api_key_env=options.api_key_env,
                        threshold=options.eagerness, **style, **extra)


def replier_from_options(options: ModelOptions) -> Any:
    """The two-stage replier, or None when no --reply-base-url was given."""
    if not options.reply_base_url:
        return None
    from chimein.assistant.backends.openai_http import OpenAIReplier

    return OpenAIReplier(options.reply_base_url, options.reply_model or "default", api_key_env=options.reply_api_key_env)


def assistant_from_options(options: ModelOptions, backend: Any = None) -> Any:
    """An :class:`~chimein.assistant.Assistant` on ``backend`` (default: loaded from the options)."""
    from chimein.assistant import Assistant

    backend = backend if backend is not None else backend_from_options(options)
    return Assistant(backend, replier=replier_from_options(options), threshold=options.eagerness)


# -- the log of a long-running command (serve, matrix): one JSON object per line ---------------------------

LOG_FILE = typer.Option(None, "--log-file", dir_okay=False,
                        help="append the log (one JSON object per line: every decision with its reason) to this file "
                             "instead of stderr")


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, and either ``message`` or, for a record logged as
    ``log.info("decision %s", json.dumps(fields))`` (how the rooms log each decision and settings change), the
    ``event`` with the fields themselves, so a reader parses one object per decision, not JSON inside a string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                                 "level": record.levelname.lower(), "logger": record.name}
        fields = _json_fields(record)
        if fields is not None:
            entry.update(event=record.msg[:-3], **fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _json_fields(record: logging.LogRecord) -> Optional[dict[str, Any]]:
    if not (isinstance(record.msg, str) and record.msg.endswith(" %s") and isinstance(record.args, tuple)
            and len(record.args) == 1 and isinstance(record.args[0], str) and record.args[0].startswith("{")):
        return None
    try:
        fields = json.loads(record.args[0])
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def json_log_handler(log_file: Optional[Path]) -> logging.Handler:
    """Where the log goes: ``log_file`` (appended) or stderr, as JSON lines. A file that cannot be opened is a
    ValueError naming --log-file. Install it with :func:`log_json_lines` once the command is ready to run."""
    try:
        handler = logging.FileHandler(log_file, encoding="utf-8") if log_file else logging.StreamHandler(sys.stderr)
    except OSError as e:
        raise ValueError(f"--log-file {log_file}: {e.strerror or e}") from None
    handler.setFormatter(JsonLines())
    return handler


def log_json_lines(handler: logging.Handler, level: str = "INFO") -> None:
    """Send every log record at ``level`` and above (chimein's and the libraries') to ``handler``."""
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


# -- errors -----------------------------------------------------------------------------------------------

MAX_ERROR_LINES = 21


def fail(message: str | list[str], code: int = 2) -> NoReturn:
    """Print ``error: <first line>`` (further lines indented) on stderr and exit with ``code``."""
    lines = message if isinstance(message, list) else (message.strip() or "failed").splitlines()
    for i, line in enumerate(lines[:MAX_ERROR_LINES]):
        typer.echo(f"error: {line}" if i == 0 else f"       {line}", err=True)
    raise typer.Exit(code)


def user_errors(command: Callable) -> Callable:
    """Every command's bad input (an unknown model, a missing or malformed file, a bad value) ends as
    ``error: ...`` on stderr and exit code 2, never a traceback."""
    from chimein.adapter_gguf import ExportError
    from chimein.data import DataError
    from chimein.models import ModelNotFound

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ModelNotFound, ExportError, ValueError, OSError) as e:  # ExportError: an adapter llama.cpp cannot take
            # A DataError's own file:line: field: problem lines say it all.
            fail([str(p) for p in e.problems] if isinstance(e, DataError) else (str(e).strip() or type(e).__name__).splitlines())

    return wrapper
