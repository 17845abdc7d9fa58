"""Importers: the chat exports people have, as chimein conversations (``chimein import FORMAT FILE... -o OUT``).

    from chimein.importers import import_chats, WindowOptions
    result = import_chats("whatsapp", ["WhatsApp Chat with Family.txt"], WindowOptions(gap_minutes=90),
                          pseudonymize=True)
    result.conversations, result.skipped

One module per format reads its files into chat messages (:mod:`.common`); the windows, the assistant's turns
and the pseudonyms are the same for every format. This package imports nothing from chimein but the data
layer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from chimein.data import Conversation
from chimein.importers import discord, irc, matrix, slack, telegram, whatsapp
from chimein.importers.common import (
    Chat,
    Export,
    Progress,
    WindowOptions,
    find_assistant,
    no_progress,
    to_conversations,
)
from chimein.importers.pseudonymize import Pseudonymizer

__all__ = ["FORMATS", "ImportResult", "WindowOptions", "import_chats"]

# name -> (reader, what the file is)
FORMATS: dict[str, tuple[Callable[[Path, Progress], Export], str]] = {
    "whatsapp": (whatsapp.read, 'WhatsApp "Export chat" text file, Android or iOS, any date locale'),
    "telegram": (telegram.read, "Telegram Desktop JSON export (result.json), one chat or the full export"),
    "slack": (slack.read, "Slack workspace export: the zip (or its unpacked folder)"),
    "discord": (discord.read, "DiscordChatExporter JSON, one file per channel"),
    "matrix": (matrix.read, "Element's JSON room export (Export chat > JSON)"),
    "irc": (irc.read, "plain IRC logs: irssi, weechat or znc"),
}


@dataclass
class ImportResult:
    conversations: list[Conversation]
    messages_read: int
    assistant: str | None  # the account whose messages are the assistant's turns
    skipped: Counter = field(default_factory=Counter)  # reason -> lines, events or messages not written


def import_chats(
    format: str,
    paths: Iterable[str | Path],
    options: WindowOptions = WindowOptions(),
    *,
    pseudonymize: bool = False,
    phone_region: str = "US",
    chats: Iterable[str] = (),
    progress: Progress = no_progress,
) -> ImportResult:
    """Read export files of one format and cut them into conversations.

    ``chats``: keep only the chats, channels or rooms of these names (``#general`` or ``general``), counting
    the others' messages as skipped. Raises :class:`chimein.data.DataError` for a malformed file and
    ValueError for a bad option.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    read = FORMATS[format][0]
    export = Export()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ValueError(f"{path}: no such file")
        export.add(read(path, progress))
    wanted = {c.casefold().lstrip("#"): c for c in chats}
    if wanted:

        def key(chat: Chat) -> str:  # a Slack thread goes with its channel
            return chat.name.casefold().lstrip("#").split(",")[0]

        missing = [shown for name, shown in wanted.items() if name not in {key(c) for c in export.chats}]
        if missing:
            names = sorted({c.name.split(",")[0] for c in export.chats})
            raise ValueError(
                f"--chat {missing[0]}: no chat of that name in the export (chats: {', '.join(names[:20])})"
            )
        export.skipped["messages in chats not chosen with --chat"] += sum(
            len(c.messages) for c in export.chats if key(c) not in wanted
        )
        export.chats = [c for c in export.chats if key(c) in wanted]
    messages_read = sum(len(c.messages) for c in export.chats)
    assistant = find_assistant(export, options.assistant)
    rename: Callable[[str], str] = str
    rewrite: Callable[[str], str] = str
    if pseudonymize:
        people = {m.author: set(m.author_ids) for c in export.chats for m in c.messages if m.author != assistant}
        for person, names in export.aliases.items():
            people.setdefault(person, set()).update(names)
        keep = {assistant} if assistant else set()
        keep |= {n for c in export.chats for m in c.messages if m.author == assistant for n in m.author_ids}
        people.pop(assistant, None)
        pseudonyms = Pseudonymizer(people, keep=keep, region=phone_region)
        rename, rewrite = pseudonyms.name, pseudonyms.text
    conversations, left_out = to_conversations(
        export, options, assistant, rewrite=rewrite, rename=rename, id_prefix=format
    )
    return ImportResult(conversations, messages_read, assistant, export.skipped + left_out)
