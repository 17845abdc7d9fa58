"""Tests of chimein/importers/: helpers shared by the format tests."""

from __future__ import annotations

from pathlib import Path

from chimein.data import conversation_to_line, parse_line
from chimein.importers import ImportResult, WindowOptions, import_chats

SAMPLES = Path(__file__).resolve().parent / "samples"


def imported(format: str, *files: str | Path, **options) -> ImportResult:
    """Import sample files; every conversation written must be one `chimein validate` accepts."""
    window = {k: options.pop(k) for k in ("assistant", "gap_minutes", "max_messages", "min_messages") if k in options}
    result = import_chats(format, [f if isinstance(f, Path) else SAMPLES / f for f in files], WindowOptions(**window), **options)
    for n, conv in enumerate(result.conversations, 1):
        again, problems = parse_line(conversation_to_line(conv), "out.jsonl", n)
        assert not problems, problems
        assert again.messages == conv.messages
    return result


def turns(result: ImportResult) -> list[list[tuple[str, str]]]:
    """Each conversation as (name or 'assistant', content) pairs."""
    return [[(m.name or "assistant", m.content) for m in c.messages] for c in result.conversations]
