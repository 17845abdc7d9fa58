"""Running the assistant: `chimein chat` (a terminal group chat) and `chimein decide` (JSON lines)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from chimein.cli.options import (API_KEY_ENV, BASE_URL, EAGERNESS, MODEL, REPLY_API_KEY_ENV, REPLY_BASE_URL, REPLY_MODEL,
                                 STYLE, THREADS, ModelOptions, assistant_from_options, backend_from_options, console,
                                 replier_from_options)


def chat(
    model: str = MODEL, base_url: Optional[str] = BASE_URL, api_key_env: str = API_KEY_ENV, style: str = STYLE,
    eagerness: Optional[float] = EAGERNESS, reply_base_url: Optional[str] = REPLY_BASE_URL,
    reply_model: Optional[str] = REPLY_MODEL, reply_api_key_env: str = REPLY_API_KEY_ENV, threads: int = THREADS,
    speaker: str = typer.Option("You", help="your name in the chat (switch with /as NAME)"),
) -> None:
    """An interactive group chat in the terminal: type as several people, the assistant chimes in or not."""
    from chimein.interfaces.tui import run_chat

    options = ModelOptions(model, base_url, api_key_env, style, eagerness, reply_base_url, reply_model, reply_api_key_env,
                           threads=threads)
    with console.status(f"loading {model}...", spinner="dots"):
        backend = backend_from_options(options)
    run_chat(assistant_from_options(options, backend), console, speaker=speaker)


def decide(
    model: str = MODEL, base_url: Optional[str] = BASE_URL, api_key_env: str = API_KEY_ENV, style: str = STYLE,
    eagerness: Optional[float] = EAGERNESS, reply_base_url: Optional[str] = REPLY_BASE_URL,
    reply_model: Optional[str] = REPLY_MODEL, reply_api_key_env: str = REPLY_API_KEY_ENV, threads: int = THREADS,
) -> None:
    """JSON lines in, JSON lines out: {"messages": [...]} -> {"speak": ..., "text": ..., "p_speak": ...}.

    One answer per input line, flushed at once. A request that extends an earlier request's conversation
    reuses that conversation's model cache, so sending the growing history after each message stays cheap.
    """
    from chimein.interfaces.decider import JsonLinesDecider

    options = ModelOptions(model, base_url, api_key_env, style, eagerness, reply_base_url, reply_model, reply_api_key_env,
                           threads=threads)
    backend = backend_from_options(options)
    JsonLinesDecider(backend, replier_from_options(options), eagerness).run(sys.stdin, sys.stdout)
