"""WhatsApp's "Export chat" text (``WhatsApp Chat with NAME.txt``, ``_chat.txt`` in the iOS zip).

Android writes ``12/31/23, 9:41 PM - Ana: hi`` (a system line has no ``Name:``: ``Ana added Ben``), iOS
``[31/12/2023, 21:41:05] Ana: hi`` (a system or media line's text starts with an invisible U+200E mark).
The date follows the phone's locale: M/D/Y, D/M/Y, D.M.Y or Y-M-D, two- or four-digit years, 24-hour or
12-hour times with AM/PM (often after a narrow no-break space, U+202F). The day/month order is read from the
whole file: a first number above 12 means day first, a second one above 12 month first; a file where both stay
at 12 or below is read day first, except a US-style ``/`` date with AM/PM. A line that does not start with a
date continues the message before it (multi-line messages). Media placeholders (``<Media omitted>``,
``image omitted``, ``<attached: ...>``), system lines and deleted messages are skipped and counted; the
``<This message was edited>`` note is removed from the text.
"""

from __future__ import annotations

import re
import zipfile
from datetime import datetime
from pathlib import Path

from chimein.importers.common import BIDI_MARKS, Chat, ChatMessage, Export, Progress, no_progress, problem, read_text

SPACE = r"[ \u00a0\u202f]"
TIME = rf"(\d{{1,2}})[:.](\d{{2}})(?:[:.](\d{{2}}))?(?:{SPACE}*([AaPp])\.?{SPACE}?[Mm]\.?)?"
DATE = r"(\d{1,4})([./-])(\d{1,2})[./-](\d{1,4})"
ANDROID = re.compile(rf"^{DATE},?{SPACE}+{TIME}{SPACE}+[-\u2013]{SPACE}+(.*)$")
IOS = re.compile(rf"^\[{DATE},?{SPACE}+{TIME}\]{SPACE}+(.*)$")
SYSTEM = "system lines (encryption notice, joins, leaves, group changes)"
EXPECTED = "not a WhatsApp message line ('12/31/23, 9:41 PM - Name: text' or '[31/12/2023, 21:41:05] Name: text')"

# What a text-only export puts where a photo, video, voice note... was (English and a few other locales).
MEDIA = (
    "<media omitted>",
    "image omitted",
    "video omitted",
    "audio omitted",
    "sticker omitted",
    "gif omitted",
    "document omitted",
    "contact card omitted",
    "<medien ausgeschlossen>",
    "<medien weggelassen>",
    "<multimedia omitido>",
    "<archivo omitido>",
    "<médias omis>",
    "<fichier omis>",
    "<mídia oculta>",
    "<mídia omitida>",
    "<media omessi>",
    "<media weggelaten>",
    "bild weggelassen",
    "imagen omitida",
)
ATTACHED = re.compile(r"^<attached: [^>]+>$|\(file attached\)$", re.IGNORECASE)
DELETED = (
    "this message was deleted",
    "you deleted this message",
    "diese nachricht wurde gelöscht",
    "du hast diese nachricht gelöscht",
    "se eliminó este mensaje",
    "eliminaste este mensaje",
    "ce message a été supprimé",
    "mensagem apagada",
    "questo messaggio è stato eliminato",
)
EDITED = re.compile(
    r"\s*\u200e?<(this message was edited|diese nachricht wurde bearbeitet|se editó este mensaje)>\s*$", re.IGNORECASE
)


def date_order(dates: list[tuple[str, str, str, str]], twelve_hour: bool) -> str:
    """'ymd', 'dmy' or 'mdy' for all the dates of one file (first, separator, second, third numbers)."""
    if any(len(a) == 4 for a, _, _, _ in dates):
        return "ymd"
    if any(int(a) > 12 for a, _, _, _ in dates):
        return "dmy"
    if any(int(b) > 12 for _, _, b, _ in dates):
        return "mdy"
    return "mdy" if twelve_hour and all(sep == "/" for _, sep, _, _ in dates) else "dmy"


def to_datetime(found: re.Match, order: str) -> datetime:
    a, _, b, c, hour, minute, second, half = found.groups()[:8]
    year, month, day = {"ymd": (a, b, c), "dmy": (c, b, a), "mdy": (c, a, b)}[order]
    h = int(hour)
    if half:
        h = h % 12 + (12 if half.lower() == "p" else 0)
    y = int(year)
    return datetime(y + 2000 if y < 100 else y, int(month), int(day), h, int(minute), int(second or 0))


def kept_text(text: str, ios: bool) -> tuple[str, str | None]:
    """The message's text, and why it is not kept (None: it is kept). An attachment with a caption keeps
    the caption."""
    system = ios and text.startswith("\u200e")
    first, _, caption = BIDI_MARKS.sub("", text).partition("\n")
    if ATTACHED.search(first.strip()):
        first, _, caption = caption.partition("\n")
        if not first.strip():
            return "", "media omitted"
    plain = EDITED.sub("", "\n".join(filter(None, (first, caption)))).strip()
    lowered = plain.casefold()
    if not plain or lowered == "null":
        return "", "empty messages"
    if lowered.endswith(MEDIA):
        return "", "media omitted"
    if lowered.rstrip(".") in DELETED:
        return "", "deleted messages"
    if system:
        return "", SYSTEM
    return plain, None


def export_text(path: Path) -> str:
    """The chat's text: the file, or the ``.txt`` inside the zip that iOS and newer Android versions share."""
    if not zipfile.is_zipfile(path):
        return read_text(path)
    with zipfile.ZipFile(path) as z:
        chats = [n for n in z.namelist() if n.endswith(".txt") and not n.startswith("__MACOSX/")]
        if len(chats) != 1:
            raise problem(path, 0, "zip", f"a WhatsApp export zip holds one .txt chat, this one has {len(chats)}")
        try:
            return z.read(chats[0]).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise problem(f"{path}:{chats[0]}", 0, "file", f"not UTF-8 text: {e.reason} at byte {e.start}") from None


def read(path: Path, progress: Progress = no_progress) -> Export:
    lines = export_text(path).splitlines()
    parsed: list[tuple[int, re.Match, bool]] = []  # line number, match, iOS
    for n, line in enumerate(lines, 1):
        bare = line.lstrip("\u200e\u200f\ufeff")  # iOS puts a U+200E before the bracket of system lines
        found = IOS.match(bare) or ANDROID.match(bare)
        if found:
            parsed.append((n, found, bare.startswith("[")))
    if not parsed:
        first = next((n for n, line in enumerate(lines, 1) if line.strip()), 1)
        raise problem(path, first, "line", EXPECTED)
    for n, line in enumerate(lines, 1):
        if n == parsed[0][0]:
            break
        if line.strip():
            raise problem(path, n, "line", EXPECTED)
    twelve = any(f.group(8) for _, f, _ in parsed)
    order = date_order([(f.group(1), f.group(2), f.group(3), f.group(4)) for _, f, _ in parsed], twelve)

    export = Export()
    messages: list[ChatMessage] = []
    starts = [n for n, _, _ in parsed] + [len(lines) + 1]
    for (n, found, ios), following in zip(parsed, starts[1:]):
        try:
            time = to_datetime(found, order)
        except ValueError as e:
            raise problem(path, n, "date", f"{found.group(0)[:30]!r} read as {order.upper()}: {e}") from None
        author, colon, text = found.group(9).partition(": ")  # the name is on the message's first line
        text = "\n".join([text, *lines[n : following - 1]])
        author = BIDI_MARKS.sub("", author).strip()
        if not colon or not author or '"' in author or len(author) > 80:
            export.skipped[SYSTEM] += 1
            continue
        text, why = kept_text(text, ios)
        if why:
            export.skipped[why] += 1
            continue
        messages.append(ChatMessage(author, text, time))
        if len(messages) % 1000 == 0:
            progress(1000)
    progress(len(messages) % 1000)
    name = re.sub(r"^WhatsApp Chat (with |- )?", "", path.stem) if path.stem != "_chat" else "WhatsApp chat"
    export.chats.append(Chat(name, messages))
    return export
