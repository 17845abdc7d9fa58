"""Room claims and announcements between `chimein serve` processes, on a real PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import AsyncIterator

from chimein.server.peers import Alone, PostgresPeers, lock_key, peers_for


@contextlib.asynccontextmanager
async def two_processes(
    postgres_url: str,
) -> AsyncIterator[tuple[PostgresPeers, PostgresPeers, dict[str, list[dict]]]]:
    """The peers of two serve processes on one database, started, with what each heard; closed on the way out."""
    heard: dict[str, list[dict]] = {"a": [], "b": []}
    a, b = PostgresPeers(postgres_url), PostgresPeers(postgres_url)
    await a.start(heard["a"].append)
    await b.start(heard["b"].append)
    try:
        yield a, b, heard
    finally:
        await a.close()
        await b.close()


def test_a_sqlite_server_is_alone_and_decides_every_room() -> None:
    peers = peers_for("rooms.db")
    assert isinstance(peers, Alone) and not peers.shared
    assert peers.claim("any-room")
    assert isinstance(peers_for("postgresql://u@127.0.0.1:5/db"), PostgresPeers)


def test_lock_keys_are_signed_64_bit_and_differ_per_room() -> None:
    keys = {lock_key(f"room{i}") for i in range(1000)}
    assert len(keys) == 1000
    assert all(-(2**63) <= k < 2**63 for k in keys)


def test_one_process_claims_a_room_until_it_releases_it(postgres_url: str) -> None:
    async def scenario() -> None:
        async with two_processes(postgres_url) as (a, b, _):
            assert a.claim("r1")
            assert a.claim("r1")  # already its own
            assert not b.claim("r1")
            assert b.claim("r2")
            a.release("r1")
            assert b.claim("r1")
            assert not a.claim("r1")

    asyncio.run(scenario())


def test_a_killed_process_loses_its_rooms_at_once(postgres_url: str) -> None:
    """SIGKILL: no goodbye; PostgreSQL ends the session when its connection closes, and the lock with it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import psycopg, sys, time\n"
            f"c = psycopg.connect({postgres_url!r}, autocommit=True)\n"
            f"c.execute('SELECT pg_advisory_lock(%s)', ({lock_key('r1')},))\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )

    async def scenario() -> None:
        peers = PostgresPeers(postgres_url)
        await peers.start(lambda e: None)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            assert not peers.claim("r1")
            holder.kill()
            holder.wait(10)
            for _ in range(100):  # the backend notices the closed socket within milliseconds
                if peers.claim("r1"):
                    break
                await asyncio.sleep(0.05)
            assert "r1" in peers.claimed
        finally:
            await peers.close()

    try:
        asyncio.run(scenario())
    finally:
        holder.kill()


def test_announcements_reach_the_other_processes_not_the_sender(postgres_url: str) -> None:
    async def scenario() -> None:
        async with two_processes(postgres_url) as (a, b, heard):
            a.publish({"kind": "message", "room": "r1", "id": 7, "reason": "addressed"})
            b.publish({"kind": "typing", "room": "r1", "typing": True})
            a.publish({"kind": "draft", "room": "r1", "reply_to": 7, "text": "x" * 20_000})  # too long: not sent
            for _ in range(100):
                if heard["a"] and heard["b"]:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            assert [(e["kind"], e.get("id")) for e in heard["b"]] == [("message", 7)]
            assert [(e["kind"], e.get("typing")) for e in heard["a"]] == [("typing", True)]

    asyncio.run(scenario())


def test_a_lost_connection_is_made_again_and_its_claims_are_let_go(postgres_url: str) -> None:
    """PostgreSQL ends both of a process's sessions (a restart, a network cut): its claims are gone with them, so
    it must stop counting on them; announcements flow again both ways, and a resync says some may have been lost."""
    import psycopg

    async def scenario() -> None:
        async with two_processes(postgres_url) as (a, b, heard):
            assert a.claim("r1") and not b.claim("r1")
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                pids = [a._locks.info.backend_pid, a._listener.info.backend_pid]
                for pid in pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            await asyncio.sleep(0.2)
            a.publish({"kind": "typing", "room": "r1", "typing": True})  # on a new connection
            assert not a.holds("r1")  # the claim went with the old session
            assert b.claim("r1") and not a.claim("r1")
            for _ in range(100):  # the listener connects again within a second or two
                if any(e["kind"] == "resync" for e in heard["a"]):
                    break
                await asyncio.sleep(0.05)
            assert [e["kind"] for e in heard["a"]] == ["resync"]
            b.publish({"kind": "message", "room": "r1", "id": 3})
            for _ in range(100):
                if len(heard["a"]) == 2 and heard["b"]:
                    break
                await asyncio.sleep(0.05)
            assert heard["a"][-1]["id"] == 3 and [e["kind"] for e in heard["b"]] == ["typing"]

    asyncio.run(scenario())
