"""The other `chimein serve` processes on the same database: which process decides a room, and what they show.

One process alone (SQLite) has no peers: :class:`Alone` decides every room it serves and tells nobody. Several
processes on one PostgreSQL database use :class:`PostgresPeers`:

- **Who decides a room.** The process that holds the room's advisory lock (``pg_try_advisory_lock``, taken on a
  connection of its own). Locks belong to a database session, so a process that dies (even SIGKILL) loses its
  rooms as soon as PostgreSQL sees its connection close; another process serving the room takes the lock on its
  next try (every ``CLAIM_EVERY_S``) and decides what was left undecided. A message is still answered at most
  once: the store's decisions table has one row per message, whoever writes it.
- **What the others show.** Every stored message, typing and draft state and settings change is announced with
  ``NOTIFY chimein`` (after the store's commit); each process LISTENs and shows what concerns its own clients.
  Announcements carry ids, not messages: the receiver reads the message from the store. Clients see their
  room's messages in seq order: a gap (a message announced late, or stored by a process that died before
  announcing it) is read from the store first, and the deciding process hears the undecided ones in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import uuid
from typing import Any, Callable

from chimein.server.store import is_postgres_url

log = logging.getLogger("chimein.serve")

CHANNEL = "chimein"
CLAIM_EVERY_S = 1.0  # how often a process serving a room nobody decides tries to take it
SWEEP_EVERY = 5  # every 5th try, the deciding process also looks for messages stored but never announced
MAX_PAYLOAD_BYTES = 7000  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more

Event = dict[str, Any]


class Alone:
    """One process: it decides every room it serves; there is nobody to tell."""

    shared = False

    def __init__(self) -> None:
        self.origin = f"{os.getpid()}"

    async def start(self, on_event: Callable[[Event], None]) -> None:
        pass

    def publish(self, event: Event) -> None:
        pass

    def claim(self, room_id: str) -> bool:
        return True

    def holds(self, room_id: str) -> bool:
        return True

    def check(self) -> None:
        pass

    def release(self, room_id: str) -> None:
        pass

    async def close(self) -> None:
        pass


def lock_key(room_id: str) -> int:
    """A room's advisory lock: a signed 64-bit number from its id (collisions only share a decider)."""
    return int.from_bytes(hashlib.sha256(f"chimein-room:{room_id}".encode()).digest()[:8], "big", signed=True)


class PostgresPeers:
    """Room claims with advisory locks and announcements with LISTEN/NOTIFY, on two connections of this process."""

    shared = True

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.claimed: set[str] = set()
        self._locks: Any = None  # psycopg.Connection: holds the claims, sends the announcements
        self._listener: Any = None  # psycopg.AsyncConnection: LISTENs
        self._task: asyncio.Task | None = None

    async def start(self, on_event: Callable[[Event], None]) -> None:
        import psycopg

        self._locks = psycopg.connect(self.conninfo, autocommit=True)
        self._listener = await self._listen_on()
        self._task = asyncio.get_running_loop().create_task(self._listen(on_event), name="chimein-peers")

    async def _listen_on(self) -> Any:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        await conn.execute(f"LISTEN {CHANNEL}")
        return conn

    async def _listen(self, on_event: Callable[[Event], None]) -> None:
        """Hand every other process's announcement to ``on_event``. A lost connection is made again (every
        ``CLAIM_EVERY_S``), then ``{"kind": "resync"}`` says announcements may have been missed meanwhile."""
        import psycopg

        while True:
            try:
                async for notify in self._listener.notifies():
                    self._handle(notify.payload, on_event)
            except psycopg.Error as e:
                log.warning("lost the announcements' connection (%s); connecting again", e)
            while True:
                await asyncio.sleep(CLAIM_EVERY_S)
                try:
                    self._listener = await self._listen_on()
                    break
                except psycopg.Error as e:
                    log.warning("could not connect for announcements yet: %s", e)
            on_event({"kind": "resync"})

    def _handle(self, payload: str, on_event: Callable[[Event], None]) -> None:
        try:
            event = json.loads(payload)
            if event.get("origin") != self.origin:
                on_event(event)
        except Exception:  # one bad announcement must not stop the others
            log.exception("could not handle the announcement %r", payload[:200])

    def _execute(self, sql: str, args: tuple) -> Any:
        """On the claims' connection; when that connection was lost, its claims went with it (``claimed`` is
        emptied: the rooms are claimed again or left to their new decider) and it is made again once."""
        import psycopg

        try:
            return self._locks.execute(sql, args).fetchone()
        except psycopg.OperationalError as e:
            log.warning("lost the claims' connection (%s): %d rooms to claim again", e, len(self.claimed))
            self.claimed.clear()
            self._locks = psycopg.connect(self.conninfo, autocommit=True)
            return self._locks.execute(sql, args).fetchone()

    def holds(self, room_id: str) -> bool:
        return room_id in self.claimed

    def check(self) -> None:
        """Find out whether the claims' session is still there (if not, ``claimed`` is emptied)."""
        self._execute("SELECT 1", ())

    def publish(self, event: Event) -> None:
        payload = json.dumps({**event, "origin": self.origin}, ensure_ascii=False)
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            log.warning("announcement too long for NOTIFY (%d bytes); not sent: %s", len(payload), event.get("kind"))
            return
        self._execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def claim(self, room_id: str) -> bool:
        if room_id in self.claimed:
            return True
        row = self._execute("SELECT pg_try_advisory_lock(%s)", (lock_key(room_id),))
        if row and row[0]:
            self.claimed.add(room_id)
            return True
        return False

    def release(self, room_id: str) -> None:
        if room_id in self.claimed:
            self.claimed.discard(room_id)
            self._execute("SELECT pg_advisory_unlock(%s)", (lock_key(room_id),))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener is not None:
            await self._listener.close()
        if self._locks is not None:
            self._locks.close()  # the claims go with the session


def peers_for(db: str) -> Alone | PostgresPeers:
    """The peers of a server on ``db``: PostgreSQL URLs are shared, anything else (a SQLite file) is not."""
    return PostgresPeers(db) if is_postgres_url(db) else Alone()
