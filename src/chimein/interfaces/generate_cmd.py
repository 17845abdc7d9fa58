"""`chimein generate`: placeholder, being written."""

import typer


def generate() -> None:
    """Generate synthetic conversations with any OpenAI-compatible LLM (not written yet)."""
    raise typer.Exit(2)
