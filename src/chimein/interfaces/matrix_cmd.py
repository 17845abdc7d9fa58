"""`chimein matrix`: placeholder, being written."""

import typer


def matrix() -> None:
    """Run the assistant as a Matrix bot (not written yet)."""
    raise typer.Exit(2)
