"""`chimein export`: placeholder, being written."""

import typer


def export() -> None:
    """Export the fine-tuned assistant for llama.cpp and Ollama (not written yet)."""
    raise typer.Exit(2)
