"""`chimein serve`: placeholder, being written."""

import typer


def serve() -> None:
    """Run the group-chat server (not written yet)."""
    raise typer.Exit(2)
