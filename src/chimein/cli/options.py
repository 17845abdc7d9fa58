"""What the commands share: the assistant's model options (each defined once), building the assistant from
them, and the one way bad input ends: ``error: ...`` on stderr and exit code 2, never a traceback.

Command modules import this module and the library, never :mod:`chimein.cli` (which assembles them).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import sys
import typing
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import typer
from rich.console import Console

from chimein.assistant import RUNTIME_DEFAULT, RUNTIME_MODEL_HELP
from chimein.rooms import REPLIER_WAIT_S

console = Console()
err = Console(stderr=True)

# A model to tokenize or train (template-tokens, train): what chimein.models.resolve_model takes.
BASE_MODEL_HELP = "default, smollm2-135m-instruct, gemma3-270m, a local dir, an adapter dir, a .gguf file, or a hub id"

# -- option groups: declared once, each a dataclass whose fields carry their typer.Option ---------------------


def option_group(group: type, argument: str, skip: tuple[str, ...] = (), **renamed: tuple[str, Any]) -> Callable:
    """Give a command the options declared once as the fields of the dataclass ``group`` (each field's
    ``metadata["option"]``), received as ONE argument, ``argument``, a ``group`` instance (llm's ``tool_options``).
    The command line and --help show each field as its flag. ``skip``: fields the command declares its own way
    (they keep their default); ``renamed``: field -> (parameter name, option) for a command that needs another flag."""

    def decorate(command: Callable) -> Callable:
        types = typing.get_type_hints(group)
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != argument]
        field_of: dict[str, str] = {}
        added = []
        for f in dataclasses.fields(group):
            if f.name in skip:
                continue
            name, option = renamed.get(f.name, (f.name, f.metadata["option"]))
            field_of[name] = f.name
            added.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=types[f.name])
            )

        @functools.wraps(command)
        def with_group(**kwargs: Any) -> Any:
            values = {field_of[name]: kwargs.pop(name) for name in field_of}
            return command(**kwargs, **{argument: group(**values)})

        parameters = [*own, *added]
        with_group.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        with_group.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_group

    return decorate


# -- the model options of chat, decide, eval, serve and matrix ---------------------------------------------

KEY_ENV_DEFAULT = "OPENAI_API_KEY"
KEY_ENV_HELP = "environment variable holding the API key of --base-url"
# `serve` has an --api-key-env of its own (the server's key); there the model's key is --model-api-key-env.
MODEL_API_KEY_ENV = ("model_api_key_env", typer.Option(KEY_ENV_DEFAULT, "--model-api-key-env", help=KEY_ENV_HELP))


def _option(default: Any, *flags: str, **settings: Any) -> Any:
    return field(default=default, metadata={"option": typer.Option(default, *flags, **settings)})


@dataclass(frozen=True)
class ModelOptions:
    """The model options as one command received them (``@model_options`` declares them on the command)."""

    model: str = _option(RUNTIME_DEFAULT, "--model", "-m", help=RUNTIME_MODEL_HELP)
    base_url: Optional[str] = _option(
        None, help="OpenAI-compatible endpoint for openai:NAME models (e.g. http://127.0.0.1:8080/v1)"
    )
    api_key_env: str = _option(KEY_ENV_DEFAULT, help=KEY_ENV_HELP)
    style: str = _option(
        "finetuned", help="for openai: models: finetuned (chimein's format) or baseline (the seed's prompt)"
    )
    eagerness: Optional[float] = _option(
        None,
        "--eagerness",
        min=0.0,
        max=1.0,
        help="speaking threshold on p_speak, 0-1 (lower speaks more); default: the "
        "model's own (the shipped adapter's is F1-optimal)",
    )
    reply_base_url: Optional[str] = _option(
        None, help="two-stage: an OpenAI-compatible endpoint that writes the replies"
    )
    reply_model: Optional[str] = _option(
        None,
        envvar="CHIMEIN_REPLY_MODEL",
        help="who writes the replies: replier (the local Qwen2.5-Coder-1.5B; the default "
        "when chimein[replier] is installed), a .gguf chat model, none (the deciding "
        "model writes them), or with --reply-base-url the model name there",
    )
    reply_api_key_env: str = _option(
        KEY_ENV_DEFAULT, help="two-stage: environment variable holding the replier's API key"
    )
    threads: int = _option(
        1,
        "--threads",
        min=1,
        help="llama.cpp: CPU threads per model context (1 is fastest when "
        "other processes share the cores; see bench/many_rooms.py)",
    )

    def with_model(self, model: str) -> "ModelOptions":
        return replace(self, model=model)


def model_options(command: Callable = None, **settings: Any) -> Callable:  # type: ignore[assignment]
    """``@model_options``: the command takes ``options: ModelOptions``; ``@model_options(skip=..., api_key_env=...)``
    as :func:`option_group`."""
    decorate = option_group(ModelOptions, "options", **settings)
    return decorate(command) if command is not None else decorate


# -- a new room's settings (serve and matrix; each room then changes its own with !chimein commands) --------


@dataclass(frozen=True)
class RoomOptions:
    """A new room's settings as one command received them (``@room_options``)."""

    mode: str = _option("auto", help="a new room's mode: auto (the model decides), mention-only, quiet")
    cooldown: Optional[str] = _option(None, help="at most N unprompted messages per M minutes, e.g. 3/10m")
    min_gap: int = _option(0, min=0, help="user messages between two unprompted interjections")
    max_reply_chars: int = _option(600, min=20, help="replies are cut to this many characters")
    settle: float = _option(1.5, min=0.0, help="seconds to wait for more messages before deciding once on the latest")
    bot_turns: int = _option(3, min=0, help="replies in a row to another bot before the assistant stops answering it")

    def policy(self) -> Any:
        """The room settings (a RoomPolicy); a bad value is a ValueError naming the flag."""
        from chimein.assistant.policy import PolicyError, RoomPolicy, parse_cooldown

        try:
            return RoomPolicy(
                mode=self.mode,
                cooldown=parse_cooldown(self.cooldown) if self.cooldown else None,  # type: ignore[arg-type]
                min_gap=self.min_gap,
                max_reply_chars=self.max_reply_chars,
                settle_s=self.settle,
                bot_turns=self.bot_turns,
            )
        except PolicyError as e:
            raise ValueError(f"--mode / --cooldown: {e}") from None


room_options = option_group(RoomOptions, "room")


def backend_from_options(options: ModelOptions, room_cache_mb: float | None = None) -> Any:
    """The decision backend the options name; ``room_cache_mb`` (``--room-cache-mb``) bounds a llama.cpp
    backend's room caches."""
    from chimein.assistant import get_backend

    extra: dict[str, Any] = {}
    if options.model.startswith("openai:") or options.base_url:
        extra["style"] = options.style
    if room_cache_mb is not None and options.model.startswith("llamacpp:"):
        extra["state_budget_mb"] = room_cache_mb
    return get_backend(
        options.model,
        base_url=options.base_url,
        api_key_env=options.api_key_env,
        threshold=options.eagerness,
        threads=options.threads,
        **extra,
    )


def replier_from_options(options: ModelOptions, local_by_default: bool = True) -> Any:
    """The two-stage replier the options name, or None (the deciding model writes its own replies).

    Without --reply-model and --reply-base-url: the local replier when it is installed (``local_by_default``;
    ``chimein eval`` compares explicitly and passes False)."""
    if options.reply_base_url:
        from chimein.assistant.backends.openai_http import OpenAIReplier

        return OpenAIReplier(
            options.reply_base_url, options.reply_model or "default", api_key_env=options.reply_api_key_env
        )
    name = options.reply_model
    if name == "none":
        return None
    if name is None:
        from chimein.models import replier_available

        if not (local_by_default and replier_available()):
            return None
        name = "replier"
    from chimein.assistant import replier

    return replier.load(name)


def assistant_from_options(options: ModelOptions, backend: Any = None) -> Any:
    """An :class:`~chimein.assistant.Assistant` on ``backend`` (default: loaded from the options)."""
    from chimein.assistant import Assistant

    backend = backend if backend is not None else backend_from_options(options)
    return Assistant(backend, replier=replier_from_options(options), threshold=options.eagerness)


# -- the log of a long-running command (serve, matrix): one JSON object per line ---------------------------

ROOM_CACHE_MB = typer.Option(
    1024.0,
    "--room-cache-mb",
    min=0.0,
    help="llama.cpp: memory for the rooms' caches; past it the least recently used room is re-read from its messages when it speaks again",
)

REPLY_WAIT = typer.Option(
    REPLIER_WAIT_S,
    "--reply-wait",
    min=0.0,
    help="with a replier: seconds a question's reply may wait for its turn; past it, or at once when the replier's line is already longer, the assistant says it is too busy to answer",
)

LOG_FILE = typer.Option(
    None,
    "--log-file",
    dir_okay=False,
    help="append the log (one JSON object per line: every decision with its reason) to this file instead of stderr",
)


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, and either ``message`` or, for a record logged as
    ``log.info("decision %s", json.dumps(fields))`` (how the rooms log each decision and settings change), the
    ``event`` with the fields themselves, so a reader parses one object per decision, not JSON inside a string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = _json_fields(record)
        if fields is not None:
            entry.update(event=record.msg[:-3], **fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _json_fields(record: logging.LogRecord) -> Optional[dict[str, Any]]:
    if not (
        isinstance(record.msg, str)
        and record.msg.endswith(" %s")
        and isinstance(record.args, tuple)
        and len(record.args) == 1
        and isinstance(record.args[0], str)
        and record.args[0].startswith("{")
    ):
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
            fail(
                [str(p) for p in e.problems]
                if isinstance(e, DataError)
                else (str(e).strip() or type(e).__name__).splitlines()
            )

    return wrapper
