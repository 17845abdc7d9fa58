"""Load and faults: 50 WebSocket clients in 10 rooms, 300 messages, the server killed (SIGKILL) mid-burst.

Phase 1: every client sends 3 messages at once; wait until every client has every message of its room.
Crash: every client sends 1 more message and the server process is killed while those are in flight.
It restarts on the same db; clients reconnect, fetch what they missed (join with ``since``) and resend what
was never acknowledged (same ``client_id``, so nothing is stored twice). Phase 2: 2 more messages each.
Then, from the SQLite file: every message stored exactly once, in each sender's order, seqs without gaps;
every "bot" message answered exactly once by the `mention` backend; every client saw every message of its
room. Prints messages per second.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from . import Client, ServerProcess, all_replied, check_rooms, until

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.timeout(300)]

ROOMS, PEOPLE, BEFORE, DURING, AFTER = 10, 5, 3, 1, 2
PER_PERSON = BEFORE + DURING + AFTER


async def scenario(server: ServerProcess) -> tuple[list[Client], list[dict[str, str]], dict[str, float]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        rooms = [(await http.post("/api/rooms")).json() for _ in range(ROOMS)]
    clients = [
        Client(server.ws_url, r["room"], r["token"], f"P{j}", f"r{i}p{j}")
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
    server.kill()  # a crash, with messages in flight
    in_flight = {cid for c in clients for cid, _ in c.sent[BEFORE:]}
    timings["acked"] = len(in_flight & {cid for c in clients for cid in c.acked})
    with sqlite3.connect(server.db) as conn:
        timings["stored"] = sum(
            conn.execute("SELECT 1 FROM messages WHERE client_id = ?", (cid,)).fetchone() is not None
            for cid in in_flight
        )
    start = time.monotonic()
    await asyncio.to_thread(server.start)
    await asyncio.gather(*(c.connect() for c in clients))
    timings["restart"] = time.monotonic() - start

    start = time.monotonic()
    await asyncio.gather(*(c.say(AFTER) for c in clients))
    await until(lambda: all(c.users_seen() >= PEOPLE * PER_PERSON for c in clients), 60, "phase 2 delivered")
    timings["phase2"] = time.monotonic() - start

    await all_replied(server.url, clients, rooms, PEOPLE)
    await asyncio.gather(*(c.close() for c in clients))
    return clients, rooms, timings


def test_fifty_clients_ten_rooms_and_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # No settle time: every message that names the bot gets its own answer (bursts: tests/server/test_policy.py).
    server = ServerProcess(tmp_path / "rooms.db", tmp_path / "server.log", "mention", None, "--settle", "0").start()
    try:
        clients, rooms, timings = asyncio.run(scenario(server))
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "rooms.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    total = check_rooms(str(tmp_path / "rooms.db"), clients, rooms, PEOPLE, PER_PERSON)
    n1, n2 = len(clients) * BEFORE, len(clients) * AFTER
    with capsys.disabled():
        print(
            f"\nload: {len(clients)} clients in {ROOMS} rooms, {len(clients) * PER_PERSON} user messages, {total} stored "
            f"with the replies; each message fanned out to {PEOPLE} clients"
        )
        print(
            f"load: before the crash {n1} messages in {timings['phase1']:.2f} s = {n1 / timings['phase1']:.0f} msg/s "
            f"({n1 * PEOPLE / timings['phase1']:.0f} deliveries/s); after it {n2} in {timings['phase2']:.2f} s = "
            f"{n2 / timings['phase2']:.0f} msg/s; restart + all clients back: {timings['restart']:.2f} s"
        )
        print(
            f"load: at the crash {len(clients) * DURING} messages were in flight: {timings['stored']:.0f} stored, "
            f"{timings['acked']:.0f} of those acknowledged; the rest were resent after the restart"
        )
