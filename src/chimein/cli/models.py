"""`chimein models`: what ``--model`` takes, the runtime's backends first, then the models they load."""

from __future__ import annotations

from chimein.cli.options import console


def models() -> None:
    """List what --model takes: the runtime's backends (chat, decide, eval, serve, matrix) and the model names."""
    from chimein.assistant import BACKENDS, RUNTIME_DEFAULT
    from chimein.models import describe_models

    console.print("backends (--model of chat, decide, eval, serve, matrix):", highlight=False)
    console.print(
        f"  [bold]{RUNTIME_DEFAULT}[/bold]  the shipped assistant on llama.cpp; the runtime's default", highlight=False
    )
    for entry in BACKENDS.values():
        console.print(f"  [bold]{entry.usage}[/bold]  {entry.help}", highlight=False)
    console.print("models (a NAME above; --model of template-tokens, train, export):", highlight=False)
    for name, desc in describe_models():
        console.print(f"  [bold]{name}[/bold]  {desc}", highlight=False)
