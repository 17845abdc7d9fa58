"""Discord channels exported by DiscordChatExporter as JSON (``--format Json``): ``{"guild", "channel",
"messages": [...]}``, one file per channel.

A message is ``{"id", "type", "timestamp", "content", "author": {"id", "name", "nickname", "isBot"}, "mentions":
[...], "attachments": [...], ...}``. Messages of type ``Default`` and ``Reply`` are kept, under the author's
server nickname (else the account name); every other type (``GuildMemberJoin``, ``ChannelPinnedMessage``,
``ThreadCreated``, calls...) is a system message, skipped and counted, and so are messages with only
attachments, stickers or embeds. A mention left as ``<@123>`` becomes ``@name`` from the message's
``mentions``. An author with ``isBot`` is a bot account (the assistant, when it is the only one).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from chimein.importers.common import (
    Chat,
    ChatMessage,
    Export,
    Progress,
    expect,
    iso_time,
    line_of,
    load_json,
    no_progress,
    read_text,
)

KEPT_TYPES = {"Default", "Reply"}
RAW_MENTION = re.compile(r"<@!?(\d+)>")


def display_name(person: dict) -> str:
    return person.get("nickname") or person.get("name") or f"user {person.get('id')}"


def read(path: Path, progress: Progress = no_progress) -> Export:
    text = read_text(path)
    data = expect(load_json(text, path), dict, path, 1, "export")
    export = Export()
    messages: list[ChatMessage] = []
    for i, m in enumerate(expect(data.get("messages"), list, path, 1, "messages")):
        here = f"messages[{i}]"
        line = partial(line_of, text, "id", m.get("id") if isinstance(m, dict) else None)
        m = expect(m, dict, path, line, here)
        if m.get("type", "Default") not in KEPT_TYPES:
            export.skipped[f"system messages ({m.get('type')})"] += 1
            continue
        author = expect(m.get("author"), dict, path, line, f"{here}.author")
        mentioned = {str(p.get("id")): display_name(p) for p in m.get("mentions") or [] if isinstance(p, dict)}
        body = RAW_MENTION.sub(
            lambda f: "@" + mentioned.get(f.group(1), f.group(0)[2:-1]),
            expect(m.get("content", ""), str, path, line, f"{here}.content"),
        ).strip()
        if not body:
            export.skipped["attachments, stickers or embeds without text"] += 1
            continue
        time = iso_time(m.get("timestamp"), path, line, f"{here}.timestamp")
        name = display_name(author)
        handles = {str(author[k]) for k in ("name", "id") if author.get(k)} - {name}
        export.aliases.setdefault(name, set()).update(handles)
        for p in m.get("mentions") or []:
            if isinstance(p, dict):
                export.aliases.setdefault(display_name(p), set()).update(
                    {str(p[k]) for k in ("name",) if p.get(k)} - {display_name(p)}
                )
        messages.append(ChatMessage(name, body, time, bot=bool(author.get("isBot")), author_ids=tuple(handles)))
    progress(len(messages))
    channel = data.get("channel") if isinstance(data.get("channel"), dict) else {}
    guild = data.get("guild") if isinstance(data.get("guild"), dict) else {}
    export.chats.append(
        Chat(" / ".join(filter(None, (guild.get("name"), "#" + str(channel.get("name", path.stem))))), messages)
    )
    return export
