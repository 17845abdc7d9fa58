"""Two `chimein serve` processes on one PostgreSQL database: 20 rooms, each room's people spread over both processes.

Phase 1: everyone sends 2 messages; every client must see every message of its room, whichever process stored it.
Crash: everyone sends 1 more and process A is killed (SIGKILL) while those are in flight. A's clients reconnect to
B, fetch what they missed and resend what was never acknowledged (same ``client_id``). B takes over the rooms A
decided (A's advisory locks went with its connection). Phase 2: 2 more messages each. Then, from the database:
every message stored exactly once and in each sender's order, seqs without gaps, every user message decided once,
every "bot" message answered exactly once (the `mention` backend), every client saw every message of its room.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from . import Client, ServerProcess, room_messages, until

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.timeout(300)]

ROOMS, PEOPLE, BEFORE, DURING, AFTER = 20, 4, 2, 1, 2
PER_PERSON = BEFORE + DURING + AFTER


async def scenario(a: ServerProcess, b: ServerProcess) -> tuple[list[Client], list[dict[str, str]], dict[str, float]]:
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
        rooms = [(await http.post("/api/rooms")).json() for _ in range(ROOMS)]
    clients = [
        Client((a if j % 2 == 0 else b).ws_url, r["room"], r["token"], f"P{j}", f"r{i}p{j}")
        for i, r in enumerate(rooms)
        for j in range(PEOPLE)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    timings: dict[str, float] = {}

    start = time.monotonic()
    await asyncio.gather(*(c.say(BEFORE) for c in clients))
    await until(lambda: all(c.users_seen() >= PEOPLE * BEFORE for c in clients), 60, "phase 1 delivered")
    timings["phase1"] = time.monotonic() - start

    await asyncio.gather(*(c.say(DURING) for c in clients))
    await asyncio.sleep(0.01)
    a.kill()  # a crash, with messages in flight
    start = time.monotonic()
    orphans = [c for c in clients if c.url == a.ws_url]
    for c in orphans:
        c.url = b.ws_url
    await asyncio.gather(*(c.connect() for c in orphans))
    timings["moved"] = time.monotonic() - start

    start = time.monotonic()
    await asyncio.gather(*(c.say(AFTER) for c in clients))
    await until(lambda: all(c.users_seen() >= PEOPLE * PER_PERSON for c in clients), 60, "phase 2 delivered")
    timings["phase2"] = time.monotonic() - start

    async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:  # the assistant's last replies
        deadline = time.monotonic() + 60
        while True:
            stored = [await room_messages(http, r) for r in rooms]
            bots = sum(1 for msgs in stored for m in msgs if m["role"] == "user" and "bot" in m["content"])
            replies = sum(1 for msgs in stored for m in msgs if m["role"] == "assistant")
            if replies >= bots and all(len(c.seen) == len(stored[i // PEOPLE]) for i, c in enumerate(clients)):
                break
            assert time.monotonic() < deadline, f"timed out waiting for the replies ({replies} of {bots})"
            await asyncio.sleep(0.05)
    await asyncio.gather(*(c.close() for c in clients))
    return clients, rooms, timings


def check_db(url: str, clients: list[Client], rooms: list[dict[str, str]]) -> int:
    total = 0
    with psycopg.connect(url) as conn:
        for i, room in enumerate(rooms):
            rows = conn.execute(
                "SELECT id, seq, name, role, content, client_id, reply_to FROM messages WHERE room = %s ORDER BY seq",
                (room["room"],),
            ).fetchall()
            assert [r[1] for r in rows] == list(range(1, len(rows) + 1))  # no gaps, no duplicates
            users = [r for r in rows if r[3] == "user"]
            assert len(users) == PEOPLE * PER_PERSON
            members = clients[i * PEOPLE : (i + 1) * PEOPLE]
            for c in members:  # each message exactly once, in the order its sender sent it
                assert [(r[5], r[4]) for r in users if r[2] == c.name] == c.sent
            bot_ids = {r[0] for r in users if "bot" in r[4]}
            replied = [r[6] for r in rows if r[3] == "assistant"]
            assert sorted(replied) == sorted(bot_ids)  # every "bot" message answered exactly once
            decided = conn.execute(
                "SELECT COUNT(*) FROM decisions d JOIN messages m ON m.id = d.message_id WHERE m.room = %s",
                (room["room"],),
            ).fetchone()[0]
            assert decided == len(users)
            for c in members:  # every client saw every message of its room
                assert {s: (m["name"], m["content"]) for s, m in c.seen.items()} == {r[1]: (r[2], r[4]) for r in rows}
                assert not c.errors, c.errors
            total += len(rows)
    return total


def test_two_processes_one_database_and_one_killed(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = ServerProcess(postgres_url, tmp_path / "a.log", "mention", None, "--settle", "0").start()  # type: ignore[arg-type]
    b = ServerProcess(postgres_url, tmp_path / "b.log", "mention", None, "--settle", "0").start()  # type: ignore[arg-type]
    try:
        clients, rooms, timings = asyncio.run(scenario(a, b))
    finally:
        a.stop()
        b.stop()
    total = check_db(postgres_url, clients, rooms)
    with capsys.disabled():
        print(
            f"\nprocesses: {len(clients)} clients in {ROOMS} rooms over 2 processes, {total} messages stored; "
            f"phase 1 {timings['phase1']:.2f} s; A killed, its {len(clients) // 2} clients on B in "
            f"{timings['moved']:.2f} s; phase 2 {timings['phase2']:.2f} s"
        )
