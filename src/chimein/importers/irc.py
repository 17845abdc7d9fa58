"""Plain IRC logs, in the three layouts clients and bouncers write (found from the file's first lines):

- irssi: ``12:34 < nick> text`` (``<@nick>`` for an operator), actions ``12:34  * nick waves``, events
  ``12:34 -!- nick [~u@host] has joined #chan``, dates from ``--- Log opened Mon Jan 01 12:00:00 2024`` and
  ``--- Day changed Tue Jan 02 2024``;
- weechat: ``2024-01-01 12:34:56<TAB>nick<TAB>text``, with ``-->``, ``<--`` and ``--`` as the nick of joins,
  parts/quits and other events, `` *`` for actions;
- znc: ``[12:34:56] <nick> text``, actions ``[12:34:56] * nick waves``, events ``[12:34:56] *** Joins: nick``;
  the date is the file name's (``2024-01-01.log``, ``#chan_20240101.log``).

Actions become the nick's message ``/me waves``. Joins, parts, quits, nick changes, modes, topics and notices
are skipped and counted; after a nick change the person keeps the nick they were first seen with. Without
any date, times are read as one day after another (a time earlier than the one before is the next day), and
the conversations carry no start date.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

from chimein.importers.common import Chat, ChatMessage, Export, Progress, no_progress, problem, read_text

T = r"(\d\d:\d\d(?::\d\d)?)"
NICK = r"[@+%&~ ]?([^\s>]+)"
LAYOUTS = {
    "irssi": {
        "message": re.compile(rf"^{T} <{NICK}> ?(.*)$"),
        "action": re.compile(rf"^{T}\s+\* (\S+) ?(.*)$"),
        "event": re.compile(rf"^{T} -!- (.*)$"),
        "notice": re.compile(rf"^{T} -[^\s-][^\s]*- (.*)$"),
    },
    "znc": {
        "message": re.compile(rf"^\[{T}\] <{NICK}> ?(.*)$"),
        "action": re.compile(rf"^\[{T}\] \* (\S+) ?(.*)$"),
        "event": re.compile(rf"^\[{T}\] \*\*\* (.*)$"),
        "notice": re.compile(rf"^\[{T}\] -[^\s-][^\s]*- (.*)$"),
    },
}
WEECHAT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\t([^\t]*)\t(.*)$")
IRSSI_DATE = re.compile(r"^--- (?:Log opened|Day changed) \w{3} (\w{3} \d\d(?: [\d:]{8})? \d{4})$")
IRSSI_MARK = re.compile(r"^--- Log (?:opened|closed) ")
FILE_DATE = re.compile(r"(\d{4})-?(\d\d)-?(\d\d)")
JOINS = re.compile(r"has (joined|left|quit)|^(Joins|Parts|Quits):| (joined|left|quit)\b", re.IGNORECASE)
NICK_CHANGE = re.compile(r"(\S+) is now known as (\S+)", re.IGNORECASE)
WEECHAT_EVENTS = {"-->": "joins, parts and quits", "<--": "joins, parts and quits"}
EXPECTED = (
    "not an IRC log line this reader knows (irssi '12:34 < nick> text', weechat "
    "'2024-01-01 12:34:56<TAB>nick<TAB>text', znc '[12:34:56] <nick> text')"
)


class Nicks:
    """Who is who across nick changes: a person keeps the nick they were first seen with."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    def person(self, nick: str) -> str:
        return self.first.get(nick, nick)

    def event(self, text: str, export: Export) -> None:
        """Count an event line (and follow a nick change)."""
        renamed = NICK_CHANGE.search(text)
        if renamed:
            old, new = renamed.groups()
            self.first[new] = self.person(old)
            export.aliases.setdefault(self.person(old), set()).add(new)  # texts may use the new nick
            export.skipped["nick changes (the person keeps their first nick)"] += 1
        elif JOINS.search(text):
            export.skipped["joins, parts and quits"] += 1
        else:
            export.skipped["other events (modes, topics, netsplits)"] += 1


def layout_of(lines: list[str], path: Path) -> str:
    for n, line in enumerate(lines, 1):
        if not line.strip() or IRSSI_DATE.match(line) or IRSSI_MARK.match(line):
            continue
        if WEECHAT.match(line):
            return "weechat"
        for name, patterns in LAYOUTS.items():
            if any(p.match(line) for p in patterns.values()):
                return name
        raise problem(path, n, "line", EXPECTED)
    raise problem(path, 1, "file", "no IRC log lines in it")


class Clock:
    """Turns the times of a log without dates on every line into datetimes."""

    def __init__(self, start: date | None):
        self.day = start or date(2000, 1, 1)
        self.dated = start is not None
        self.last: datetime | None = None

    def set_day(self, day: date) -> None:
        self.day, self.dated, self.last = day, True, None

    def at(self, hhmm: str) -> datetime:
        parts = [int(p) for p in hhmm.split(":")]
        t = datetime(
            self.day.year, self.day.month, self.day.day, parts[0], parts[1], parts[2] if len(parts) > 2 else 0
        )
        if self.last is not None and t < self.last:  # past midnight with no date line
            self.day += timedelta(days=1)
            t += timedelta(days=1)
        self.last = t
        return t


def read(path: Path, progress: Progress = no_progress) -> Export:
    lines = read_text(path).splitlines()
    layout = layout_of(lines, path)
    in_name = FILE_DATE.search(path.name)
    try:
        clock = Clock(date(int(in_name.group(1)), int(in_name.group(2)), int(in_name.group(3))) if in_name else None)
    except ValueError:
        clock = Clock(None)
    export = Export()
    nicks = Nicks()
    messages: list[ChatMessage] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if layout == "weechat":
            kept = weechat_line(line, path, n, export, nicks)
        else:
            kept = time_only_line(line, layout, clock, path, n, export, nicks)
        if kept is not None:
            kept.author = nicks.person(kept.author)
            messages.append(kept)
    progress(len(messages))
    export.chats.append(Chat(path.stem, messages, dated=layout == "weechat" or clock.dated))
    return export


def weechat_line(line: str, path: Path, n: int, export: Export, nicks: Nicks) -> ChatMessage | None:
    found = WEECHAT.match(line)
    if not found:
        raise problem(path, n, "line", EXPECTED)
    stamp, prefix, text = found.groups()
    time = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    prefix = prefix.strip()
    if prefix in WEECHAT_EVENTS:
        export.skipped[WEECHAT_EVENTS[prefix]] += 1
    elif prefix in ("--", "=!=", ""):
        nicks.event(text, export)
    elif prefix == "*":
        nick, _, action = text.partition(" ")
        return ChatMessage(nick, f"/me {action}".strip(), time)
    elif not text.strip():
        export.skipped["empty messages"] += 1
    else:
        return ChatMessage(prefix.lstrip("@+%&~"), text, time)
    return None


def time_only_line(
    line: str, layout: str, clock: Clock, path: Path, n: int, export: Export, nicks: Nicks
) -> ChatMessage | None:
    dated = IRSSI_DATE.match(line)
    if dated:
        stamp = dated.group(1)
        clock.set_day(datetime.strptime(stamp[:6] + stamp[-5:], "%b %d %Y").date())
        return None
    if IRSSI_MARK.match(line):
        return None
    patterns = LAYOUTS[layout]
    for kind in ("message", "action", "event", "notice"):
        found = patterns[kind].match(line)
        if not found:
            continue
        if kind == "event":
            nicks.event(found.group(2), export)
            return None
        if kind == "notice":
            export.skipped["notices"] += 1
            return None
        time, nick, text = clock.at(found.group(1)), found.group(2), found.group(3).strip()
        if kind == "action":
            return ChatMessage(nick, f"/me {text}".strip(), time)
        if not text:
            export.skipped["empty messages"] += 1
            return None
        return ChatMessage(nick, text, time)
    raise problem(path, n, "line", EXPECTED)
