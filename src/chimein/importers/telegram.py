"""Telegram Desktop's JSON export (``result.json``): one chat (``{"name", "type", "id", "messages"}``) or a full
data export (``{"chats": {"list": [chat, ...]}, "left_chats": {...}}``).

A message is ``{"id", "type": "message", "date", "date_unixtime", "from", "from_id", "text", ...}``; ``text`` is
a string or a list of strings and entities (``{"type": "mention", "text": "@ana"}``), joined in order.
Service messages (``"type": "service"``: joins, pins, title changes, calls) are skipped and counted, and so are
media without a caption (``photo``, ``file``, ``sticker_emoji``...). ``from`` is null for a deleted account,
written as Telegram shows it, "Deleted Account".
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from chimein.importers.common import (
    Chat,
    ChatMessage,
    Export,
    Line,
    Progress,
    expect,
    iso_time,
    line_of,
    load_json,
    no_progress,
    problem,
    read_text,
)

MEDIA_KEYS = ("photo", "file", "media_type", "sticker_emoji", "poll", "location_information", "contact_information")


def joined_text(text: Any, file: Path, line: Line, where: str) -> str:
    if isinstance(expect(text, (str, list), file, line, where), str):
        return text
    parts = text
    out = []
    for i, part in enumerate(parts):
        if isinstance(part, str):
            out.append(part)
        else:
            entity = expect(part, dict, file, line, f"{where}[{i}]")
            out.append(expect(entity.get("text"), str, file, line, f"{where}[{i}].text"))
    return "".join(out)


def message_time(m: dict, file: Path, line: Line, where: str) -> datetime:
    if "date_unixtime" in m:
        stamp = expect(m["date_unixtime"], (str, int), file, line, f"{where}.date_unixtime")
        if not str(stamp).isdigit():
            raise problem(file, line, f"{where}.date_unixtime", f"not a Unix time: {stamp!r}")
        return datetime.fromtimestamp(int(stamp), timezone.utc)
    return iso_time(m.get("date"), file, line, f"{where}.date")


def read_chat(chat: dict, text: str, file: Path, where: str, export: Export, progress: Progress) -> None:
    name = chat.get("name") or chat.get("type") or "Telegram chat"
    messages: list[ChatMessage] = []
    for i, m in enumerate(
        expect(chat.get("messages"), list, file, partial(line_of, text, "name", name), f"{where}.messages")
    ):
        here = f"{where}.messages[{i}]"
        line = partial(line_of, text, "id", m.get("id") if isinstance(m, dict) else None)
        m = expect(m, dict, file, line, here)
        if m.get("type") == "service":
            export.skipped["service messages (joins, pins, title changes, calls)"] += 1
            continue
        if m.get("type") != "message":
            raise problem(file, line, f"{here}.type", f"must be 'message' or 'service', got {m.get('type')!r}")
        body = joined_text(m.get("text", ""), file, line, f"{here}.text").strip()
        if not body:
            export.skipped["media without a caption" if any(k in m for k in MEDIA_KEYS) else "empty messages"] += 1
            continue
        author = m.get("from")
        author = "Deleted Account" if author is None else expect(author, str, file, line, f"{here}.from")
        ids = (str(m["from_id"]),) if m.get("from_id") else ()
        messages.append(ChatMessage(author, body, message_time(m, file, line, here), author_ids=ids))
    progress(len(messages))
    export.chats.append(Chat(str(name), messages))


def read(path: Path, progress: Progress = no_progress) -> Export:
    text = read_text(path)
    data = expect(load_json(text, path), dict, path, 1, "result.json")
    export = Export()
    me = data.get("personal_information")
    if isinstance(me, dict) and me.get("username"):  # the exporter's own @handle: theirs in the texts too
        name = " ".join(str(me[k]) for k in ("first_name", "last_name") if me.get(k))
        export.aliases[name] = {str(me["username"]).lstrip("@")}
    if "messages" in data:
        read_chat(data, text, path, "chat", export, progress)
    elif "chats" in data:
        for key in ("chats", "left_chats"):
            chats = data.get(key, {"list": []})
            for i, chat in enumerate(
                expect(expect(chats, dict, path, 1, key).get("list"), list, path, 1, f"{key}.list")
            ):
                read_chat(
                    expect(chat, dict, path, 1, f"{key}.list[{i}]"), text, path, f"{key}.list[{i}]", export, progress
                )
    else:
        raise problem(
            path,
            1,
            "result.json",
            "neither one chat ('messages') nor a full export ('chats'): is this Telegram Desktop's JSON export?",
        )
    return export
