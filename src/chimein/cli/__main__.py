"""``python -m chimein.cli`` (e.g. under ``accelerate launch``)."""

from chimein.cli import app

app()
