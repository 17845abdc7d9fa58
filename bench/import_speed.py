"""How fast `chimein import` reads a large export: synthetic WhatsApp, Telegram, Slack and IRC exports of the same
messages, with and without --pseudonymize.

    python bench/import_speed.py                 # 100,000 messages per export, writes bench/results/import_speed.json
    python bench/import_speed.py --messages 20000

Each export is written once in its tool's format (four people, short messages, a gap now and then), then
imported in a fresh process (the script re-runs itself) so that peak RSS is that import's alone. The time
covers reading, windowing, pseudonyms and writing the JSONL; not Python's start-up.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from chimein.data import write_conversations
from chimein.importers import WindowOptions, import_chats
from peak import in_fresh_process, peak_rss_mb  # bench/peak.py

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "the a pizza tonight train ticket at 7 maybe lisbon weather hotel check-in yes no idea call me later flight "
    "booked +1 415 555 2671 ana@example.com"
).split()
PEOPLE = ["Ana Lima", "Ben", "Caro", "Dev"]


def messages(n: int) -> list[tuple[datetime, str, str]]:
    rng = random.Random(0)
    t = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
    out = []
    for _ in range(n):
        t += timedelta(minutes=rng.choice([1, 1, 2, 3, 5, 90]))
        out.append((t, rng.choice(PEOPLE), " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14)))))
    return out


def write_exports(n: int, folder: Path) -> dict[str, Path]:
    chat = messages(n)
    whatsapp = folder / "WhatsApp Chat with Trip.txt"
    whatsapp.write_text(
        "".join(
            f"{t.month}/{t.day}/{t.year % 100}, {t.hour % 12 or 12}:{t.minute:02d}\u202f"
            f"{'PM' if t.hour >= 12 else 'AM'} - {who}: {text}\n"
            for t, who, text in chat
        )
    )
    telegram = folder / "result.json"
    telegram.write_text(
        json.dumps(
            {
                "name": "Trip",
                "type": "private_group",
                "id": 1,
                "messages": [
                    {
                        "id": i,
                        "type": "message",
                        "date": t.strftime("%Y-%m-%dT%H:%M:%S"),
                        "date_unixtime": str(int(t.timestamp())),
                        "from": who,
                        "from_id": f"user{PEOPLE.index(who)}",
                        "text": text,
                        "text_entities": [],
                    }
                    for i, (t, who, text) in enumerate(chat, 1)
                ],
            },
            indent=1,
        )
    )
    slack = folder / "slack"
    (slack / "general").mkdir(parents=True)
    (slack / "users.json").write_text(
        json.dumps(
            [
                {"id": f"U{i}", "name": p.lower(), "real_name": p, "profile": {"display_name": p.split()[0]}}
                for i, p in enumerate(PEOPLE)
            ]
        )
    )
    (slack / "channels.json").write_text(json.dumps([{"id": "C1", "name": "general"}]))
    days: dict[str, list] = {}
    for t, who, text in chat:
        days.setdefault(t.strftime("%Y-%m-%d"), []).append(
            {"type": "message", "user": f"U{PEOPLE.index(who)}", "text": text, "ts": f"{t.timestamp():.6f}"}
        )
    for day, posts in days.items():
        (slack / "general" / f"{day}.json").write_text(json.dumps(posts, indent=4))
    irc = folder / "homelab.log"
    lines, day = [f"--- Log opened {chat[0][0]:%a %b %d %H:%M:%S %Y}"], chat[0][0].date()
    for t, who, text in chat:
        if t.date() != day:
            day = t.date()
            lines.append(f"--- Day changed {t:%a %b %d %Y}")
        lines.append(f"{t:%H:%M} < {who.split()[0].lower()}> {text}")
    irc.write_text("\n".join(lines) + "\n")
    return {"whatsapp": whatsapp, "telegram": telegram, "slack": slack, "irc": irc}


def import_one(format: str, path: str, pseudonymize: bool, out: str) -> dict:
    start = time.perf_counter()
    result = import_chats(format, [path], WindowOptions(), pseudonymize=pseudonymize)
    write_conversations(out, result.conversations)
    return {
        "format": format,
        "pseudonymize": pseudonymize,
        "messages": result.messages_read,
        "conversations": len(result.conversations),
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--one", nargs=3, metavar=("FORMAT", "PATH", "PSEUDONYMIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        format, path, pseudonymize = args.one
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(import_one(format, path, pseudonymize == "1", str(Path(tmp) / "out.jsonl"))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for format, path in write_exports(args.messages, Path(tmp)).items():
            for pseudonymize in ("0", "1"):
                row = in_fresh_process(__file__, "--one", format, str(path), pseudonymize)
                row["messages_per_second"] = round(row["messages"] / row["seconds"])
                print(row, file=sys.stderr)
                rows.append(row)
    out = ROOT / "bench" / "results" / "import_speed.json"
    out.write_text(json.dumps({"messages": args.messages, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
