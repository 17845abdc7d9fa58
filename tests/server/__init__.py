"""Helpers shared by the web tests: in-process rooms (FastAPI's TestClient) and a real `chimein serve` process."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chimein.assistant import get_backend
from chimein.assistant.policy import RoomPolicy
from chimein.server import create_app
from tests.helpers import free_port


class ServerProcess:
    """`chimein serve` in a child process on 127.0.0.1. ``start()`` returns once it answers HTTP;
    ``kill()`` is a crash (SIGKILL), ``stop()`` a clean shutdown. The output goes to ``log``."""

    def __init__(self, db: Path, log: Path, model: str = "mention", port: int | None = None, *extra: str):
        self.db, self.log, self.model, self.port, self.extra = db, log, model, port or free_port(), extra
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 120) -> "ServerProcess":
        cmd = [
            sys.executable,
            "-c",
            "from chimein.cli import app; app()",
            "serve",
            "--model",
            self.model,
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            *self.extra,
        ]
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"chimein serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200 and self.proc.poll() is None:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"chimein serve did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "ServerProcess":
        return self if self.proc is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# -- clients of a real server ----------------------------------------------------------------------------------


class Client:
    """One person: reconnects, rejoins with ``since``, resends unacknowledged messages in order."""

    def __init__(self, url: str, room: str, token: str, name: str, tag: str):
        self.url, self.room, self.token, self.name, self.tag = url, room, token, name, tag
        self.sent: list[tuple[str, str]] = []  # (client_id, text), in sending order
        self.acked: set[str] = set()
        self.seen: dict[int, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self.ws: Any = None
        self.reader: asyncio.Task | None = None

    def users_seen(self) -> int:
        return sum(1 for m in self.seen.values() if m["role"] == "user")

    async def connect(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ws = await connect(self.url, open_timeout=5, close_timeout=1)
                since = max(self.seen, default=0)  # one connection delivers in order: seen is a prefix
                await self.ws.send(
                    json.dumps(
                        {"type": "join", "room": self.room, "token": self.token, "name": self.name, "since": since}
                    )
                )
                joined = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
                assert joined["type"] == "joined", joined
                for m in joined["history"]:
                    self.record(m)
                self.reader = asyncio.create_task(self.read())
                for cid, text in self.sent:
                    if cid not in self.acked:
                        await self.ws.send(json.dumps({"type": "say", "text": text, "client_id": cid}))
                return
            except (OSError, ConnectionClosed, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["type"] == "message":
                    self.record(frame["message"])
                elif frame["type"] == "error":
                    self.errors.append(frame)
        except ConnectionClosed:
            pass

    def record(self, m: dict[str, Any]) -> None:
        assert self.seen.setdefault(m["seq"], m) == m, (self.seen[m["seq"]], m)
        if m.get("client_id"):
            self.acked.add(m["client_id"])

    async def say(self, count: int) -> None:
        for _ in range(count):
            i = len(self.sent)
            text = f"{self.name} message {i}" + (" hey bot, you there?" if i % 3 == 2 else "")
            self.sent.append((f"{self.tag}-{i}", text))
            try:
                await self.ws.send(json.dumps({"type": "say", "text": text, "client_id": f"{self.tag}-{i}"}))
            except ConnectionClosed:
                pass  # resent after the reconnect

    async def close(self) -> None:
        await self.ws.close()
        if self.reader:
            await asyncio.wait_for(self.reader, 5)


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.02)


async def room_messages(http: httpx.AsyncClient, room: dict[str, str]) -> list[dict[str, Any]]:
    r = await http.get(
        f"/api/rooms/{room['room']}/messages",
        params={"limit": 5000},
        headers={"authorization": f"Bearer {room['token']}"},
    )
    return r.json()["messages"]


async def all_replied(url: str, clients: list[Client], rooms: list[dict[str, str]], people: int) -> None:
    """Wait until every stored message that names the bot has a reply and every client has seen all of its room."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        deadline = time.monotonic() + 60
        while True:
            stored = [await room_messages(http, r) for r in rooms]
            bots = sum(1 for msgs in stored for m in msgs if m["role"] == "user" and "bot" in m["content"])
            replies = sum(1 for msgs in stored for m in msgs if m["role"] == "assistant")
            if replies >= bots and all(len(c.seen) == len(stored[i // people]) for i, c in enumerate(clients)):
                return
            assert time.monotonic() < deadline, f"timed out waiting for the replies ({replies} of {bots})"
            await asyncio.sleep(0.05)


def check_rooms(
    location: str, clients: list[Client], rooms: list[dict[str, str]], people: int, per_person: int
) -> int:
    """From the store (SQLite or PostgreSQL): every room's messages stored once, in each sender's order, seqs
    without gaps; every user message decided; every "bot" message answered exactly once; every client saw every
    message of its room. Returns the number of messages stored."""
    from chimein.server.store import open_store

    total = 0
    with open_store(location) as store:
        for i, room in enumerate(rooms):
            rows = store.messages(room["room"])
            assert [m.seq for m in rows] == list(range(1, len(rows) + 1))  # no gaps, no duplicates
            users = [m for m in rows if m.role == "user"]
            assert len(users) == people * per_person
            members = clients[i * people : (i + 1) * people]
            for c in members:  # each message exactly once, in the order its sender sent it
                assert [(m.client_id, m.content) for m in users if m.name == c.name] == c.sent
            bot_ids = {m.id for m in users if "bot" in m.content}
            replied = [m.reply_to for m in rows if m.role == "assistant"]
            assert sorted(replied) == sorted(bot_ids)  # every "bot" message answered exactly once
            assert store.undecided(room["room"]) == []  # every user message decided
            for c in members:  # every client saw every message of its room
                assert {s: (m["name"], m["content"]) for s, m in c.seen.items()} == {
                    m.seq: (m.name, m.content) for m in rows
                }
                assert not c.errors, c.errors
            total += len(rows)
    return total


# -- in-process rooms (FastAPI's TestClient) ----------------------------------------------------------------------------------------------


def make_client(db: Path, backend: Any = None, **kwargs: Any) -> TestClient:
    """A server whose rooms decide on every message at once (no settle time: tests/server/test_policy.py has it)."""
    backend = backend if backend is not None else get_backend("mention")
    kwargs.setdefault("policy", RoomPolicy(settle_s=0))
    return TestClient(create_app(backend, db_path=db, model_name=kwargs.pop("model_name", "mention"), **kwargs))


def new_room(client: TestClient) -> tuple[str, str]:
    r = client.post("/api/rooms")
    assert r.status_code == 201, r.text
    return r.json()["room"], r.json()["token"]


def join(ws: Any, room: str, token: str, name: str, since: int = 0) -> dict:
    ws.send_json({"type": "join", "room": room, "token": token, "name": name, "since": since})
    frame = ws.receive_json()
    assert frame["type"] == "joined", frame
    return frame


def receive(ws: Any, kind: str, limit: int = 20) -> dict:
    """The next frame of type ``kind``, skipping at most ``limit`` others (typing, ...)."""
    for _ in range(limit):
        frame = ws.receive_json()
        if frame["type"] == kind:
            return frame
    raise AssertionError(f"no {kind} frame in {limit} frames")


def say(ws: Any, text: str, client_id: str | None = None) -> dict:
    ws.send_json({"type": "say", "text": text, **({"client_id": client_id} if client_id else {})})
    return receive(ws, "message")["message"]


def closed_with(ws: Any) -> int:
    with pytest.raises(WebSocketDisconnect) as e:
        for _ in range(10):
            ws.receive_json()
    return e.value.code


def rows(db: Path, sql: str, *args: Any) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def wait_until(check: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.02)
    raise AssertionError("timed out waiting")
