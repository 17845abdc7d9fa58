"""`chimein models`: the registered model names."""

from __future__ import annotations

from chimein.cli.options import console


def models() -> None:
    """List the registered models."""
    from chimein.models import describe_models

    for name, desc in describe_models():
        console.print(f"[bold]{name}[/bold]  {desc}")
