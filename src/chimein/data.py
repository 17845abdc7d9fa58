"""Conversation data: the interchange format, JSONL reading and writing, validation, statistics.

A conversation is a JSON array of messages, one conversation per line of a JSONL file:

    [{"role": "user", "name": "Ana", "content": "pizza tonight?"},
     {"role": "user", "name": "Ben", "content": "bot, how many syllables in a haiku?"},
     {"role": "assistant", "content": "Seventeen, in lines of 5, 7 and 5."}]

A line may also be an object carrying metadata beside the messages:
``{"id": "...", "topic": "...", "category": "...", "messages": [...]}`` (the shipped dataset uses it).

Rules: the first message is a user message (a history cut from a longer chat, what ``chimein decide`` reads,
may start with the assistant's); no two assistant messages in a row; user messages have a
non-empty name; every content is a non-empty string. An assistant message follows the user message it
reacts to; a user message with no assistant message after it is a turn where the assistant stayed silent.

This module imports nothing else from chimein.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    name: str | None = None  # the speaker's display name; users only

    def to_json(self) -> dict[str, str]:
        out = {"role": self.role}
        if self.name is not None:
            out["name"] = self.name
        out["content"] = self.content
        return out


@dataclass
class Conversation:
    messages: list[Message]
    meta: dict[str, Any] = field(default_factory=dict)  # id, topic, category, ... when the file has them

    @property
    def users(self) -> list[str]:
        return sorted({m.name for m in self.messages if m.role == "user" and m.name})

    @property
    def user_turns(self) -> int:
        return sum(m.role == "user" for m in self.messages)

    @property
    def assistant_turns(self) -> int:
        return sum(m.role == "assistant" for m in self.messages)

    def decisions(self) -> list[tuple[int, Message | None]]:
        """For every user message: its index and the assistant reply that follows it (None = silence)."""
        out = []
        for i, m in enumerate(self.messages):
            if m.role == "user":
                nxt = self.messages[i + 1] if i + 1 < len(self.messages) else None
                out.append((i, nxt if nxt is not None and nxt.role == "assistant" else None))
        return out

    def to_json(self) -> list[dict] | dict:
        msgs = [m.to_json() for m in self.messages]
        return {**self.meta, "messages": msgs} if self.meta else msgs


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, printed as ``file:line: field: what is wrong``."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class DataError(ValueError):
    """Raised by :func:`load_conversations` when a file has problems; carries all of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n".join(str(p) for p in problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) in conversation data:\n{shown}{more}")


def parse_messages(
    raw: Any, where: str = "messages", may_start_with_assistant: bool = False
) -> tuple[list[Message], list[tuple[str, str]]]:
    """Check a decoded list of messages. Returns the messages and a list of (field, problem) pairs.
    ``may_start_with_assistant``: the messages are a window of a longer chat (a request's history), which may
    open with the assistant's reply to a message before it; a conversation to train on may not."""
    problems: list[tuple[str, str]] = []
    if not isinstance(raw, list):
        return [], [(where, f"must be a list of messages, got {type(raw).__name__}")]
    if not raw:
        return [], [(where, "is empty")]
    messages: list[Message] = []
    previous_role = None
    for i, m in enumerate(raw):
        f = f"{where}[{i}]"
        if not isinstance(m, dict):
            problems.append((f, f"must be an object, got {type(m).__name__}"))
            continue
        role, content, name = m.get("role"), m.get("content"), m.get("name")
        extra = sorted(set(m) - {"role", "content", "name"})
        if extra:
            problems.append((f, f"unknown key(s) {', '.join(extra)}"))
        if role not in ("user", "assistant"):
            problems.append((f"{f}.role", f"must be 'user' or 'assistant', got {role!r}"))
            continue
        if not isinstance(content, str) or not content.strip():
            problems.append((f"{f}.content", "must be a non-empty string"))
        if role == "user" and (not isinstance(name, str) or not name.strip()):
            problems.append((f"{f}.name", "a user message needs a non-empty name"))
        if role == "assistant" and name is not None and not isinstance(name, str):
            problems.append((f"{f}.name", "must be a string"))
        if i == 0 and role != "user" and not may_start_with_assistant:
            problems.append((f"{f}.role", "a conversation must start with a user message"))
        if role == "assistant" and previous_role == "assistant":
            problems.append((f"{f}.role", "two assistant messages in a row"))
        previous_role = role
        if isinstance(content, str):
            messages.append(Message(role=role, content=content, name=name if role == "user" else None))
    return messages, problems


def parse_line(text: str, file: str, line: int) -> tuple[Conversation | None, list[Problem]]:
    """Parse one JSONL line (an array of messages, or an object with ``messages`` and metadata)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, [Problem(file, line, "json", f"invalid JSON: {e.msg} at column {e.colno}")]
    meta: dict[str, Any] = {}
    where = "messages"
    if isinstance(obj, dict):
        if "messages" not in obj:
            return None, [Problem(file, line, "messages", "an object line needs a 'messages' list")]
        meta = {k: v for k, v in obj.items() if k != "messages"}
        obj = obj["messages"]
    elif isinstance(obj, list):
        where = "conversation"
    else:
        return None, [Problem(file, line, "conversation", f"must be a list of messages, got {type(obj).__name__}")]
    messages, problems = parse_messages(obj, where)
    found = [Problem(file, line, f, p) for f, p in problems]
    return (Conversation(messages, meta) if not found else None), found


def read_conversations(path: str | Path) -> tuple[list[Conversation], list[Problem]]:
    """Read every line of a JSONL file; never stops at the first problem, never skips a line silently."""
    path = Path(path)
    conversations: list[Conversation] = []
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [], [Problem(str(path), 0, "file", str(e))]
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue  # blank lines carry nothing
        conv, found = parse_line(line, str(path), n)
        problems.extend(found)
        if conv is not None:
            conv.meta.setdefault("source", f"{path.name}:{n}")
            conversations.append(conv)
    return conversations, problems


def load_conversations(*paths: str | Path) -> list[Conversation]:
    """Read conversations from JSONL files; raise :class:`DataError` listing every problem."""
    conversations: list[Conversation] = []
    problems: list[Problem] = []
    for p in paths:
        convs, probs = read_conversations(p)
        conversations.extend(convs)
        problems.extend(probs)
    if problems:
        raise DataError(problems)
    return conversations


def conversation_to_line(conv: Conversation) -> str:
    data = conv.to_json()
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "source"}
        if set(data) == {"messages"}:
            data = data["messages"]
    return json.dumps(data, ensure_ascii=False)


def write_conversations(path: str | Path, conversations: Iterable[Conversation], append: bool = False) -> int:
    """Write conversations as JSONL (append mode flushes each line, so killed work keeps what it wrote)."""
    n = 0
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for conv in conversations:
            f.write(conversation_to_line(conv) + "\n")
            f.flush()
            n += 1
    return n


@dataclass
class Stats:
    conversations: int
    user_turns: int
    assistant_turns: int
    users_per_conversation: tuple[int, float, int]  # min, mean, max
    user_turns_per_conversation: tuple[int, float, int]
    topics: Counter
    categories: Counter

    @property
    def speaking_rate(self) -> float:
        return self.assistant_turns / self.user_turns if self.user_turns else 0.0


def _spread(values: list[int]) -> tuple[int, float, int]:
    return (min(values), statistics.fmean(values), max(values)) if values else (0, 0.0, 0)


def compute_stats(conversations: list[Conversation]) -> Stats:
    return Stats(
        conversations=len(conversations),
        user_turns=sum(c.user_turns for c in conversations),
        assistant_turns=sum(c.assistant_turns for c in conversations),
        users_per_conversation=_spread([len(c.users) for c in conversations]),
        user_turns_per_conversation=_spread([c.user_turns for c in conversations]),
        topics=Counter(c.meta["topic"] for c in conversations if c.meta.get("topic")),
        categories=Counter(c.meta["category"] for c in conversations if c.meta.get("category")),
    )
