"""A Slack workspace export: the zip (or its unpacked folder) with ``users.json``, ``channels.json`` (and
``groups.json``, ``mpims.json``, ``dms.json`` when the export has private channels and direct messages), and
one folder per channel holding one ``YYYY-MM-DD.json`` per day, each a list of messages.

A message is ``{"type": "message", "user": "U123", "text": "...", "ts": "1705312800.000200", ...}``. User ids
become display names (``profile.display_name``, else ``real_name``, else ``name``), and ``<@U123>`` mentions
``@name``; ``<#C1|general>``, ``<!here>``, ``<https://...|label>`` and ``&amp;`` become plain text.
A thread (a message with replies, ``thread_ts``) is a conversation of its own: the parent, then its replies in
order; the channel's other messages form the channel's conversations. Bot posts (``subtype: bot_message``,
or a user that ``users.json`` marks ``is_bot``) are a bot account's. Joins, leaves, topic and name changes
and other ``subtype`` events are skipped and counted; so are file shares without text.
"""

from __future__ import annotations

import html
import re
import zipfile
from datetime import datetime, timezone
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from chimein.importers.common import (
    Chat,
    ChatMessage,
    Export,
    Line,
    Progress,
    expect,
    line_of,
    load_json,
    no_progress,
    problem,
)

KEPT_SUBTYPES = {None, "thread_broadcast", "bot_message", "me_message", "file_share"}
LISTS = {"channels.json": "name", "groups.json": "name", "mpims.json": "name", "dms.json": "id"}
TS = re.compile(r"^\d+(\.\d+)?$")
Where = tuple[str, Line, str]  # file, line, field
LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


class Files:
    """The export's files, from the zip or the folder, by their path relative to the export's top."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            names = [p.relative_to(path).as_posix() for p in path.rglob("*.json")]
            self.zip = None
        else:
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise problem(
                    path, 0, "file", "not a zip file: a Slack export is the zip Slack sends (or its folder)"
                ) from None
            names = [n for n in self.zip.namelist() if n.endswith(".json")]
        top = next(
            (str(PurePosixPath(n).parent) for n in sorted(names, key=len) if PurePosixPath(n).name == "users.json"),
            None,
        )
        if top is None:
            raise problem(
                path,
                0,
                "users.json",
                "missing: a Slack workspace export has users.json, channels.json and a folder per channel",
            )
        self.top = "" if top == "." else top + "/"
        self.names = {n[len(self.top) :] for n in names if n.startswith(self.top)}

    def where(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path.is_dir() else f"{self.path}:{name}"

    def text(self, name: str) -> str:
        raw = (self.path / self.top / name).read_bytes() if self.zip is None else self.zip.read(self.top + name)
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise problem(self.where(name), 0, "file", f"not UTF-8 text: {e.reason} at byte {e.start}") from None

    def json(self, name: str) -> tuple[Any, str]:
        text = self.text(name)
        return load_json(text, self.where(name)), text


def user_names(files: Files) -> tuple[dict[str, str], set[str], dict[str, set[str]]]:
    """Display name by user id, the ids of bot users, and each person's other names (for pseudonyms)."""
    users, _ = files.json("users.json")
    names: dict[str, str] = {}
    bots: set[str] = set()
    aliases: dict[str, set[str]] = {}
    for i, u in enumerate(expect(users, list, files.where("users.json"), 1, "users")):
        u = expect(u, dict, files.where("users.json"), 1, f"users[{i}]")
        profile = u.get("profile") if isinstance(u.get("profile"), dict) else {}
        uid = str(u.get("id"))
        name = profile.get("display_name") or profile.get("real_name") or u.get("real_name") or u.get("name") or uid
        names[uid] = name
        aliases[name] = {
            n
            for n in (u.get("name"), u.get("real_name"), profile.get("real_name"), profile.get("display_name"))
            if n and n != name
        }
        if u.get("is_bot") or uid == "USLACKBOT":
            bots.add(uid)
    return names, bots, aliases


def plain_text(text: str, names: dict[str, str]) -> str:
    """Slack's markup (mrkdwn) as the reader sees it."""

    def link(found: re.Match) -> str:
        target, label = found.group(1), found.group(2)
        if target.startswith("@"):
            return "@" + names.get(target[1:], label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label if label else "@" + target[1:].split("^")[0]
        if target.startswith("mailto:"):
            return label or target[len("mailto:") :]
        return target if not label or label == target else f"{label} ({target})"

    return html.unescape(LINK.sub(link, text))


def channel_folders(files: Files) -> list[tuple[str, str]]:
    """(display name, folder) of every channel, group and conversation the export lists."""
    out = []
    for listing, key in LISTS.items():
        if listing not in files.names:
            continue
        data, _ = files.json(listing)
        for i, c in enumerate(expect(data, list, files.where(listing), 1, listing.removesuffix(".json"))):
            c = expect(c, dict, files.where(listing), 1, f"{listing.removesuffix('.json')}[{i}]")
            folder = str(c.get(key) or c.get("id"))
            out.append((("#" + folder) if key == "name" else "direct messages", folder))
    if not out:
        raise problem(files.where("channels.json"), 0, "channels.json", "missing: the export lists no channels")
    return out


def read(path: Path, progress: Progress = no_progress) -> Export:
    files = Files(path)
    names, bot_ids, aliases = user_names(files)
    export = Export(aliases=aliases)
    for channel, folder in channel_folders(files):
        days = sorted(n for n in files.names if PurePosixPath(n).parent == PurePosixPath(folder))
        posts: list[tuple[float, str, dict, Where]] = []  # time, ts, message, where it is
        for day in days:
            data, text = files.json(day)
            for i, m in enumerate(expect(data, list, files.where(day), 1, "messages")):
                where = (
                    files.where(day),
                    partial(line_of, text, "ts", m.get("ts") if isinstance(m, dict) else None),
                    f"messages[{i}]",
                )
                m = expect(m, dict, *where)
                ts = expect(m.get("ts"), str, where[0], where[1], f"{where[2]}.ts")
                if not TS.match(ts) or not TS.match(str(m.get("thread_ts", ts))):
                    raise problem(
                        where[0], where[1], f"{where[2]}.ts", f"not a Slack timestamp: {ts!r} / {m.get('thread_ts')!r}"
                    )
                posts.append((float(ts), ts, m, where))
        posts.sort(key=lambda p: p[0])
        replied = {m["thread_ts"] for _, ts, m, _ in posts if m.get("thread_ts") not in (None, ts)}
        streams: dict[str | None, list[ChatMessage]] = {None: []}
        for time, _, m, where in posts:
            kept = message(m, where, names, bot_ids, export)
            if kept is None:
                continue
            kept.time = datetime.fromtimestamp(time, timezone.utc)
            thread = m.get("thread_ts")
            streams.setdefault(thread if thread in replied else None, []).append(kept)
        progress(sum(len(s) for s in streams.values()))
        export.chats.append(Chat(channel, streams.pop(None)))
        for number, messages in enumerate(streams.values(), 1):  # numbered, not by ts: a ts reads as a phone number
            export.chats.append(Chat(f"{channel}, thread {number}", messages))
    return export


def message(m: dict, where: Where, names: dict[str, str], bot_ids: set[str], export: Export) -> ChatMessage | None:
    """The message as a chat message, or None when it is not kept (counted in ``export.skipped``)."""
    file, line, here = where
    subtype = m.get("subtype")
    if subtype not in KEPT_SUBTYPES:
        export.skipped[f"system messages ({subtype})"] += 1
        return None
    body = plain_text(expect(m.get("text", ""), str, file, line, f"{here}.text"), names).strip()
    if subtype == "me_message" and body:
        body = "/me " + body
    if not body:
        export.skipped["file shares and attachments without text"] += 1
        return None
    uid = m.get("user")
    if subtype == "bot_message" or (uid is None and m.get("bot_id")):
        profile = m.get("bot_profile") if isinstance(m.get("bot_profile"), dict) else {}
        author = m.get("username") or profile.get("name") or str(m.get("bot_id"))
        return ChatMessage(author, body, None, bot=True, author_ids=tuple(filter(None, (m.get("bot_id"), uid))))
    if uid is None:
        raise problem(file, line, f"{here}.user", "a message needs the id of the user who wrote it")
    profile = m.get("user_profile") if isinstance(m.get("user_profile"), dict) else {}
    author = names.get(uid) or profile.get("display_name") or profile.get("real_name") or uid
    return ChatMessage(author, body, None, bot=uid in bot_ids or bool(m.get("bot_id")), author_ids=(uid,))
