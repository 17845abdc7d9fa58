"""A Matrix room exported by Element ("Export chat", format JSON): ``{"room_name", "room_creator", "topic",
"export_date", "exported_by", "messages": [event, ...]}``, each event as the homeserver sent it.

``m.room.message`` events are kept: ``sender`` (a Matrix id, shown by the display name its ``m.room.member``
event gives, else its local part), ``content.body``, ``origin_server_ts`` (milliseconds). ``m.emote`` becomes
``/me ...``; the quoted fallback of a reply (``> <@ana:example.org> ...``) is removed; an edit
(``m.relates_to.rel_type: m.replace``) replaces the text of the message it edits. Images, files, audio, video,
stickers, reactions, redacted and undecryptable events, and state events (joins, names, topics) are skipped
and counted. A sender of ``m.notice`` messages (what bots send) is a bot account.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from chimein.importers.common import (
    Chat,
    ChatMessage,
    Export,
    Progress,
    expect,
    line_of,
    load_json,
    no_progress,
    read_text,
)

MEDIA = {"m.image", "m.file", "m.audio", "m.video", "m.location"}


def local_part(mxid: str) -> str:
    return mxid[1:].split(":")[0] if mxid.startswith("@") else mxid


def without_reply_fallback(body: str) -> str:
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> <"):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


def read(path: Path, progress: Progress = no_progress) -> Export:
    text = read_text(path)
    data = expect(load_json(text, path), dict, path, 1, "export")
    events = expect(data.get("messages"), list, path, 1, "messages")
    names: dict[str, str] = {}
    for e in events:
        if isinstance(e, dict) and e.get("type") == "m.room.member" and isinstance(e.get("content"), dict):
            if e["content"].get("displayname") and e.get("state_key"):
                names[e["state_key"]] = e["content"]["displayname"]
    export = Export()
    messages: list[ChatMessage] = []
    by_id: dict[str, ChatMessage] = {}
    bots: set[str] = set()
    for i, e in enumerate(events):
        here = f"messages[{i}]"
        if e is None:  # Element writes an event it could not decrypt as null
            export.skipped["undecryptable events"] += 1
            continue
        line = partial(line_of, text, "event_id", e.get("event_id") if isinstance(e, dict) else None)
        e = expect(e, dict, path, line, here)
        kind = e.get("type")
        if kind == "m.room.encrypted":
            export.skipped["undecryptable events"] += 1
            continue
        if kind != "m.room.message":
            export.skipped["state events, reactions and stickers" if kind != "m.room.redaction" else "redactions"] += 1
            continue
        content = expect(e.get("content"), dict, path, line, f"{here}.content")
        if not content:
            export.skipped["redacted (deleted) messages"] += 1
            continue
        relation = content.get("m.relates_to") if isinstance(content.get("m.relates_to"), dict) else {}
        msgtype = content.get("msgtype")
        if msgtype in MEDIA:
            export.skipped["images, files, audio and video"] += 1
            continue
        if relation.get("rel_type") == "m.replace":
            edited = by_id.get(relation.get("event_id"))
            new = content.get("m.new_content") if isinstance(content.get("m.new_content"), dict) else {}
            if edited is not None and isinstance(new.get("body"), str) and new["body"].strip():
                edited.text = new["body"].strip()
            export.skipped["edits (applied to the message they edit)"] += 1
            continue
        body = without_reply_fallback(expect(content.get("body"), str, path, line, f"{here}.content.body")).strip()
        if not body:
            export.skipped["empty messages"] += 1
            continue
        sender = expect(e.get("sender"), str, path, line, f"{here}.sender")
        name = names.get(sender) or local_part(sender)
        if msgtype == "m.emote":
            body = "/me " + body
        if msgtype == "m.notice":
            bots.add(sender)
        ts = expect(e.get("origin_server_ts"), int, path, line, f"{here}.origin_server_ts")
        kept = ChatMessage(
            name, body, datetime.fromtimestamp(ts / 1000, timezone.utc), author_ids=(sender, local_part(sender))
        )
        export.aliases.setdefault(name, set()).update({sender, local_part(sender)} - {name})
        messages.append(kept)
        if isinstance(e.get("event_id"), str):
            by_id[e["event_id"]] = kept
    for m in messages:
        m.bot = m.author_ids[0] in bots
    progress(len(messages))
    export.chats.append(Chat(str(data.get("room_name") or path.stem), messages))
    return export
