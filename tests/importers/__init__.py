"""Tests of chimein/importers/: helpers shared by the format tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from chimein.data import DataError, conversation_to_line, parse_line
from chimein.importers import ImportResult, WindowOptions, import_chats

SAMPLES = Path(__file__).resolve().parent / "samples"


def imported(format: str, *files: str | Path, **options) -> ImportResult:
    """Import sample files; every conversation written must be one `chimein validate` accepts."""
    window = {k: options.pop(k) for k in ("assistant", "gap_minutes", "max_messages", "min_messages") if k in options}
    result = import_chats(
        format, [f if isinstance(f, Path) else SAMPLES / f for f in files], WindowOptions(**window), **options
    )
    for n, conv in enumerate(result.conversations, 1):
        again, problems = parse_line(conversation_to_line(conv), "out.jsonl", n)
        assert not problems, problems
        assert again.messages == conv.messages
    return result


def import_error(format: str, path: Path) -> str:
    """The one problem importing ``path`` reports, as ``file:line: field: what``."""
    with pytest.raises(DataError) as e:
        imported(format, path)
    assert len(e.value.problems) == 1
    return str(e.value.problems[0])


def broken_json(source: Path, to: Path, change: Callable[[Any], None], marker: str) -> tuple[Path, int]:
    """A copy of a JSON sample changed by ``change``, and the line of ``marker`` in it (where the error is)."""
    data = json.loads(source.read_text())
    change(data)
    to.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    return to, next(n for n, text in enumerate(to.read_text().splitlines(), 1) if marker in text)


def turns(result: ImportResult) -> list[list[tuple[str, str]]]:
    """Each conversation as (name or 'assistant', content) pairs."""
    return [[(m.name or "assistant", m.content) for m in c.messages] for c in result.conversations]
