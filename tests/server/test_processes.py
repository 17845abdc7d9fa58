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
import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from . import Client, ServerProcess, all_replied, check_rooms, room_messages, until

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

    await all_replied(b.url, clients, rooms, PEOPLE)
    await asyncio.gather(*(c.close() for c in clients))
    return clients, rooms, timings


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
    total = check_rooms(postgres_url, clients, rooms, PEOPLE, PER_PERSON)
    with capsys.disabled():
        print(
            f"\nprocesses: {len(clients)} clients in {ROOMS} rooms over 2 processes, {total} messages stored; "
            f"phase 1 {timings['phase1']:.2f} s; A killed, its {len(clients) // 2} clients on B in "
            f"{timings['moved']:.2f} s; phase 2 {timings['phase2']:.2f} s"
        )


class Person:
    """One WebSocket client that keeps every frame it receives."""

    def __init__(self, url: str, room: dict[str, str], name: str):
        self.url, self.room, self.name = url, room, name
        self.frames: list[dict] = []

    async def __aenter__(self) -> "Person":
        self.ws = await connect(self.url)
        await self.ws.send(json.dumps({"type": "join", **self.room, "name": self.name}))
        self.reader = asyncio.create_task(self.read())
        await until(lambda: any(f["type"] == "joined" for f in self.frames), 10, f"{self.name} joined")
        return self

    async def read(self) -> None:
        async for raw in self.ws:
            self.frames.append(json.loads(raw))

    async def __aexit__(self, *_: object) -> None:
        await self.ws.close()
        self.reader.cancel()

    async def say(self, text: str) -> None:
        await self.ws.send(json.dumps({"type": "say", "text": text}))

    def messages(self, role: str) -> list[str]:
        return [
            f["message"]["content"] for f in self.frames if f["type"] == "message" and f["message"]["role"] == role
        ]

    def settings(self) -> list[dict]:
        return [f["assistant"]["policy"] for f in self.frames if f["type"] == "settings"]


def test_commands_settings_and_the_room_itself_move_between_processes(postgres_url: str, tmp_path: Path) -> None:
    """Ana on A and Ben on B in one room: commands sent on either are answered once and their settings reach both;
    when the deciding process's last client leaves, the other process takes the room over and answers."""
    a = ServerProcess(postgres_url, tmp_path / "a.log", "mention", None, "--settle", "0").start()  # type: ignore[arg-type]
    b = ServerProcess(postgres_url, tmp_path / "b.log", "mention", None, "--settle", "0").start()  # type: ignore[arg-type]

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
            room = {k: v for k, v in (await http.post("/api/rooms")).json().items() if k in ("room", "token")}
        ana = await Person(a.ws_url, room, "Ana").__aenter__()  # A wakes the room first: A decides it
        async with Person(b.ws_url, room, "Ben") as ben:
            await ben.say("!chimein mode mention-only")  # sent to B, answered by A
            await until(lambda: len(ana.messages("assistant")) == len(ben.messages("assistant")) == 1, 10, "answer")
            await until(lambda: ana.settings() and ben.settings(), 10, "settings shown on both processes")
            assert ana.settings()[-1]["mode"] == ben.settings()[-1]["mode"] == "mention-only"
            await ana.say("!chimein mode auto")  # and back, from the deciding process's side
            await until(lambda: len(ben.settings()) == 2 and ben.settings()[-1]["mode"] == "auto", 10, "auto")
            await ben.say("bot, are you there?")
            await until(lambda: len(ana.messages("assistant")) == len(ben.messages("assistant")) == 3, 10, "answer")
            await ana.__aexit__()  # A has no client left in the room: it lets the room go, B takes it over
            await ben.say("bot, anyone deciding here now?")
            await until(lambda: len(ben.messages("assistant")) == 4, 15, "answered after the hand-over")
            assert len(ben.messages("user")) == 4  # nothing twice
        async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
            stored = await room_messages(http, {"room": room["room"], "token": room["token"]})
        replies = [m["reply_to"] for m in stored if m["role"] == "assistant"]
        assert len(replies) == len(set(replies)) == 4

    try:
        asyncio.run(scenario())
    finally:
        a.stop()
        b.stop()
    assert "deciding it here now" in (tmp_path / "b.log").read_text()


def test_a_question_sent_just_before_everyone_leaves_is_still_answered(postgres_url: str, tmp_path: Path) -> None:
    """Ben asks on B (which does not decide the room) and everyone leaves at once: no process may drop the room
    before the question is decided, whichever of them hears of it last."""
    a = ServerProcess(postgres_url, tmp_path / "a.log", "mention", None, "--settle", "0").start()  # type: ignore[arg-type]
    b = ServerProcess(postgres_url, tmp_path / "b.log", "mention", None, "--settle", "0").start()  # type: ignore[arg-type]

    async def scenario() -> list[dict]:
        async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
            rooms = [
                {k: v for k, v in (await http.post("/api/rooms")).json().items() if k in ("room", "token")}
                for _ in range(5)
            ]
        for room in rooms:
            ana = await Person(a.ws_url, room, "Ana").__aenter__()  # A decides the room
            ben = await Person(b.ws_url, room, "Ben").__aenter__()
            await ben.say("bot, one last question before we go?")
            await asyncio.gather(ben.__aexit__(), ana.__aexit__())
        async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
            deadline = time.monotonic() + 20
            while True:
                stored = [await room_messages(http, room) for room in rooms]
                if all(any(m["role"] == "assistant" for m in msgs) for msgs in stored):
                    return stored
                assert time.monotonic() < deadline, [len(msgs) for msgs in stored]
                await asyncio.sleep(0.1)

    try:
        stored = asyncio.run(scenario())
    finally:
        a.stop()
        b.stop()
    for msgs in stored:
        assert [m["role"] for m in msgs] == ["user", "assistant"]


def test_a_process_that_loses_its_database_session_hands_its_rooms_over(postgres_url: str, tmp_path: Path) -> None:
    """PostgreSQL ends the session holding A's claims (a network cut): A notices; whichever process claims the room
    first decides it (A again, or B, and then A stops deciding it), and a question afterwards is answered once."""
    import psycopg

    a = ServerProcess(postgres_url, tmp_path / "a.log", "mention", None, "--settle", "0").start()  # type: ignore[arg-type]
    b = ServerProcess(postgres_url, tmp_path / "b.log", "mention", None, "--settle", "0").start()  # type: ignore[arg-type]

    async def scenario() -> list[dict]:
        async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
            room = {k: v for k, v in (await http.post("/api/rooms")).json().items() if k in ("room", "token")}
        async with Person(a.ws_url, room, "Ana") as ana, Person(b.ws_url, room, "Ben") as ben:
            await ben.say("bot, who decides?")
            await until(lambda: len(ana.messages("assistant")) == len(ben.messages("assistant")) == 1, 10, "answer")
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                holders = admin.execute("SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory'").fetchall()
                assert len(holders) == 1  # A's claims' session
                admin.execute("SELECT pg_terminate_backend(%s)", holders[0])
                await until(lambda: "lost the claims' connection" in (tmp_path / "a.log").read_text(), 10, "A notices")
                await asyncio.sleep(2.5)  # two turns of the claim loops: A claims the room again, or B takes it
                holders = admin.execute("SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory'").fetchall()
                assert len(holders) == 1  # one decider again
            if "deciding it here now" in (tmp_path / "b.log").read_text():  # B was first: A must have let go
                assert "decided elsewhere now" in (tmp_path / "a.log").read_text()
            await ana.say("bot, and now?")
            await until(lambda: len(ana.messages("assistant")) == len(ben.messages("assistant")) == 2, 10, "answer")
            await asyncio.sleep(1)  # time for a second answer, if there were one
            assert len(ana.messages("assistant")) == len(ben.messages("assistant")) == 2
        async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
            return await room_messages(http, room)

    try:
        stored = asyncio.run(scenario())
    finally:
        a.stop()
        b.stop()
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
