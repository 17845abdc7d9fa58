"""What every importer shares: the chat messages a reader returns, the count of what it skipped and why, JSON
reading with line numbers, and the one way an export becomes conversations (who the assistant is, windows at
time gaps).

A reader turns one export file into an :class:`Export`: its chats (a WhatsApp chat, a Slack channel or
thread, an IRC log), each a list of :class:`ChatMessage` in order, and a count of every line or event it did
not keep, by reason. :func:`to_conversations` then cuts each chat into conversation windows in chimein's
format: the assistant's messages become assistant turns, every other message a user turn; a user message with
no assistant message after it is a turn where the assistant stayed silent (what ``(silence)`` means).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Union

from dateutil.parser import isoparse

from chimein.data import Conversation, DataError, Message, Problem

# Invisible direction marks that exports put around names, phone numbers and system texts.
BIDI_MARKS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

Progress = Callable[[int], None]  # called with the number of messages read since the last call


def no_progress(_: int) -> None:
    pass


@dataclass
class ChatMessage:
    author: str  # the display name the export shows
    text: str
    time: datetime | None
    bot: bool = False  # the export flags the author as a bot account
    author_ids: tuple[str, ...] = ()  # other ways the export names the author (user id, handle, Matrix id)


@dataclass
class Chat:
    name: str  # the chat, channel, room or thread, for the conversation's metadata
    messages: list[ChatMessage]
    dated: bool = True  # False when the export gives times but no dates (an IRC log without date lines)


@dataclass
class Export:
    chats: list[Chat] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> messages or lines not kept
    # person -> other spellings the chat's texts may use for them (handles, user names): pseudonymized too
    aliases: dict[str, set[str]] = field(default_factory=dict)

    def add(self, other: "Export") -> None:
        self.chats += other.chats
        self.skipped.update(other.skipped)
        for person, names in other.aliases.items():
            self.aliases.setdefault(person, set()).update(names)


# A line number, or how to find it: searching a large JSON text for every element would cost more than reading it,
# so readers pass ``line_of`` unevaluated and it runs only when there is an error to report.
Line = Union[int, Callable[[], int]]


def problem(file: str | Path, line: Line, where: str, what: str) -> DataError:
    """The error a reader raises for malformed input: ``file:line: field: what``."""
    return DataError([Problem(str(file), line() if callable(line) else line, where, what)])


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # WhatsApp on Windows writes a byte order mark
    except UnicodeDecodeError as e:
        raise problem(path, 0, "file", f"not UTF-8 text: {e.reason} at byte {e.start}") from None


def load_json(text: str, file: str | Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise problem(file, e.lineno, "json", f"invalid JSON: {e.msg} at column {e.colno}") from None


def line_of(text: str, key: str, value: Any) -> int:
    """The line of ``"key": value`` in a JSON text (1 when it is not found): where an element's error is."""
    if value is None:
        return 1
    found = re.search(r'"%s"\s*:\s*%s' % (re.escape(key), re.escape(json.dumps(value, ensure_ascii=False))), text)
    return text.count("\n", 0, found.start()) + 1 if found else 1


def iso_time(value: Any, file: str | Path, line: Line, where: str) -> datetime:
    """An ISO 8601 time as exports write it (fractions of any length, ``Z``; no zone: UTC)."""
    try:
        time = isoparse(expect(value, str, file, line, where))
    except ValueError:
        raise problem(file, line, where, f"not an ISO 8601 time: {value!r}") from None
    return time if time.tzinfo is not None else time.replace(tzinfo=timezone.utc)


KINDS = {str: "a string", list: "a list", dict: "an object", int: "a number", float: "a number"}


def expect(value: Any, kind: type | tuple[type, ...], file: str | Path, line: Line, where: str) -> Any:
    """``value`` when it has the type the format documents, else the reader's one-line error."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or isinstance(value, bool):
        wanted = " or ".join(dict.fromkeys(KINDS[k] for k in kinds))
        got = "null" if value is None else type(value).__name__
        raise problem(file, line, where, f"must be {wanted}, got {got}")
    return value


# -- from chat messages to conversations --------------------------------------------------------------------


@dataclass(frozen=True)
class WindowOptions:
    assistant: str | None = None  # the author whose messages are the assistant's; None: the one bot account
    gap_minutes: float = 60.0  # a longer silence starts a new conversation
    max_messages: int = 40  # a window holds at most this many messages
    min_messages: int = 2  # shorter windows are not written (and counted)

    def __post_init__(self) -> None:
        if self.gap_minutes <= 0:
            raise ValueError(f"--gap must be more than 0 minutes, got {self.gap_minutes}")
        if self.max_messages < 2:
            raise ValueError(f"--max-messages must be at least 2, got {self.max_messages}")
        if not 1 <= self.min_messages <= self.max_messages:
            raise ValueError(
                f"--min-messages must be between 1 and --max-messages ({self.max_messages}), got {self.min_messages}"
            )


def names_of(message: ChatMessage) -> set[str]:
    return {n.casefold() for n in (message.author, *message.author_ids)}


def find_assistant(export: Export, assistant: str | None) -> str | None:
    """The display name of the assistant's account: ``assistant`` as an author's name or id, or else the one
    account the export flags as a bot. None when there is neither (every message is then a user turn)."""
    messages = [m for chat in export.chats for m in chat.messages]
    if assistant is not None:
        wanted = assistant.casefold()
        for m in messages:
            if wanted in names_of(m):
                return m.author
        authors = sorted({m.author for m in messages})
        shown = ", ".join(authors[:12]) + (", ..." if len(authors) > 12 else "")
        raise ValueError(
            f"--assistant {assistant}: nobody of that name wrote in the export (authors: {shown or 'none'})"
        )
    bots = sorted({m.author for m in messages if m.bot})
    if len(bots) > 1:
        raise ValueError(
            f"the export has {len(bots)} bot accounts ({', '.join(bots)}): say which one is the "
            f"assistant with --assistant NAME"
        )
    return bots[0] if bots else None


def windows(chat: Chat, options: WindowOptions) -> list[list[ChatMessage]]:
    """The chat cut at every silence longer than the gap, and into pieces of at most ``max_messages``."""
    gap = timedelta(minutes=options.gap_minutes)
    out: list[list[ChatMessage]] = []
    current: list[ChatMessage] = []
    for m in chat.messages:
        previous = current[-1] if current else None
        long_silence = (
            previous is not None and m.time is not None and previous.time is not None and m.time - previous.time > gap
        )
        if current and (long_silence or len(current) >= options.max_messages):
            out.append(current)
            current = []
        current.append(m)
    if current:
        out.append(current)
    return out


def to_conversations(
    export: Export,
    options: WindowOptions,
    assistant: str | None,
    rewrite: Callable[[str], str] = str,
    rename: Callable[[str], str] = str,
    id_prefix: str = "import",
) -> tuple[list[Conversation], Counter]:
    """Every chat of the export as conversation windows; also what was left out, by reason.

    ``assistant``: the author whose messages are the assistant's turns (:func:`find_assistant`); ``rename``
    maps an author to the name written (pseudonyms), ``rewrite`` a message's text. A conversation's id is
    ``id_prefix`` and a digest of what it says: the same in every run, and distinct when files are merged.
    """
    ids: Counter = Counter()
    left_out: Counter = Counter()
    conversations: list[Conversation] = []
    for chat in export.chats:
        for window in windows(chat, options):
            messages: list[Message] = []
            for m in window:
                if m.author != assistant:
                    messages.append(Message("user", rewrite(m.text), rename(m.author)))
                elif not messages:
                    left_out["assistant messages opening a window (a conversation starts with a user)"] += 1
                elif messages[-1].role == "assistant":  # one reply sent as several messages
                    messages[-1] = Message("assistant", messages[-1].content + "\n" + rewrite(m.text))
                    left_out["assistant messages joined to the one before (kept, as one turn)"] += 1
                else:
                    messages.append(Message("assistant", rewrite(m.text)))
            if not messages:
                continue
            if len(messages) < options.min_messages:
                left_out[f"messages in windows shorter than --min-messages {options.min_messages}"] += len(messages)
                continue
            digest = hashlib.sha1(json.dumps([m.to_json() for m in messages]).encode()).hexdigest()[:10]
            ids[digest] += 1
            meta: dict[str, Any] = {
                "id": f"{id_prefix}-{digest}" + (f"-{ids[digest]}" if ids[digest] > 1 else ""),
                "chat": rewrite(chat.name),
            }
            if chat.dated and window[0].time is not None:
                meta["start"] = window[0].time.isoformat(timespec="minutes")
            conversations.append(Conversation(messages, meta))
    return conversations, left_out
