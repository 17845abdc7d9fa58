"""Running the assistant: `chimein chat` (a terminal group chat) and `chimein decide` (JSON lines)."""

from __future__ import annotations

import sys

import typer

from chimein.cli.options import (
    ModelOptions,
    assistant_from_options,
    backend_from_options,
    console,
    model_options,
    replier_from_options,
)


@model_options
def chat(
    options: ModelOptions,
    speaker: str = typer.Option("You", help="your name in the chat (switch with /as NAME)"),
) -> None:
    """An interactive group chat in the terminal: type as several people, the assistant chimes in or not."""
    from chimein.interfaces.tui import run_chat

    with console.status(f"loading {options.model}...", spinner="dots"):
        backend = backend_from_options(options)
    run_chat(assistant_from_options(options, backend), console, speaker=speaker)


@model_options
def decide(options: ModelOptions) -> None:
    """JSON lines in, JSON lines out: {"messages": [...]} -> {"speak": ..., "text": ..., "p_speak": ...}.

    One answer per input line, flushed at once. A request that extends an earlier request's conversation
    reuses that conversation's model cache, so sending the growing history after each message stays cheap.
    """
    from chimein.interfaces.decider import JsonLinesDecider

    backend = backend_from_options(options)
    JsonLinesDecider(backend, replier_from_options(options), options.eagerness).run(sys.stdin, sys.stdout)
