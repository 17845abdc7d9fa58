"""What every engine of the rooms' store does (the interface), and the records it returns."""

from __future__ import annotations

import abc
import re
import secrets
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any


class StoreError(ValueError):
    """A database the store cannot use: unreachable, malformed location, or a schema newer than this chimein.
    The message names the location with any password masked."""


@dataclass(frozen=True)
class Room:
    id: str
    token: str
    eagerness: float | None = None  # the room's speaking threshold; None: the server's default


@dataclass(frozen=True)
class StoredMessage:
    id: int
    room: str
    seq: int
    name: str
    role: str
    content: str
    time: float
    client_id: str | None = None
    reply_to: int | None = None  # for an assistant message: the id of the message it answers

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "seq": self.seq,
            "name": self.name,
            "role": self.role,
            "content": self.content,
            "time": self.time,
        }
        if self.client_id is not None:
            out["client_id"] = self.client_id
        if self.reply_to is not None:
            out["reply_to"] = self.reply_to
        return out


MESSAGE_COLUMNS = "id, room, seq, name, role, content, time, client_id, reply_to"
SET_SETTINGS = (
    "INSERT INTO settings (room, policy, changed_by, time) VALUES (%s, %s, %s, %s) ON CONFLICT (room) "
    "DO UPDATE SET policy = excluded.policy, changed_by = excluded.changed_by, time = excluded.time"
)

# A URL's password, in its user part or as a query parameter.
_URL_PASSWORD = re.compile(
    r"(?P<head>^[a-z][a-z0-9+.-]*://[^:@/?#]*:)[^@/?#]*(?=@)|(?P<key>[?&]password=)[^&#]*", re.IGNORECASE
)


def masked(location: str) -> str:
    """``location`` fit to print: a URL's password replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: (m["head"] or m["key"]) + "***", location)


class Store(abc.ABC):
    """Rooms, every message, which messages the assistant decided on, names and room settings.

    Guarantees, on every engine and across processes sharing one database: a message is stored once per
    (room, ``client_id``); ``seq`` numbers a room's messages 1, 2, 3, ... without gaps; a user message has at
    most one decision, and its reply (if any) is written in the same transaction, so it is answered at most
    once. Every method is one short transaction and may be called from any thread.
    """

    location: str  # where the data lives, fit to print (a URL's password masked)

    # Opened by chimein.server.store.open_store(location), which picks the engine.

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        """The version of the schema the database is at (the last migration applied)."""
        return self.query("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0]

    @abc.abstractmethod
    def query(self, sql: str, *args: Any) -> list[tuple]:
        """The rows (if any) of one statement on its own; ``%s`` marks a parameter, on every engine."""

    def run(self, sql: str, *args: Any) -> None:
        self.query(sql, *args)

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction: yields an object whose ``query(sql, *args)`` runs inside it; commits at the end,
        rolls back on an exception."""

    @abc.abstractmethod
    def insert(
        self, tx: Any, room_id: str, name: str, role: str, content: str, client_id, reply_to, sent_at
    ) -> tuple[StoredMessage, bool]:
        """Inside ``tx``: the message at the room's next seq, or the one already stored under ``client_id``. Each
        engine makes sure no other writer takes the same seq or stores the same client_id meanwhile."""

    # -- rooms ----------------------------------------------------------------------------------------

    def create_room(self, eagerness: float | None = None) -> Room:
        room = Room(secrets.token_urlsafe(9), secrets.token_urlsafe(24), eagerness)
        self.run(
            "INSERT INTO rooms (id, token, eagerness, created) VALUES (%s, %s, %s, %s)",
            room.id,
            room.token,
            room.eagerness,
            time.time(),
        )
        return room

    def room(self, room_id: str) -> Room | None:
        rows = self.query("SELECT id, token, eagerness FROM rooms WHERE id = %s", room_id)
        return Room(*rows[0]) if rows else None

    def authorize(self, room_id: Any, token: Any) -> Room | None:
        """The room, if ``token`` is its token; None for an unknown room or a wrong token alike."""
        if not isinstance(room_id, str) or not isinstance(token, str):
            return None
        room = self.room(room_id)
        if room is None or not secrets.compare_digest(room.token.encode(), token.encode()):
            return None
        return room

    def set_eagerness(self, room_id: str, eagerness: float | None) -> None:
        self.run("UPDATE rooms SET eagerness = %s WHERE id = %s", eagerness, room_id)

    def names(self, room_id: str) -> list[tuple[str, str]]:
        """The display names used in a room, with their owners."""
        return self.query("SELECT name, owner FROM names WHERE room = %s", room_id)

    def claim_name(self, room_id: str, name: str, owner: str) -> None:
        """Record ``owner`` as the name's owner in the room, unless someone already owns it."""
        self.run(
            "INSERT INTO names (room, name, owner) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", room_id, name, owner
        )

    @abc.abstractmethod
    def settings(self, room_id: str) -> tuple[dict[str, Any], str, float] | None:
        """The room's stored policy (JSON), who set it and when; None when it never changed."""

    @abc.abstractmethod
    def set_settings(self, room_id: str, policy: dict[str, Any], changed_by: str) -> None: ...

    # -- messages -------------------------------------------------------------------------------------

    def add_message(
        self,
        room_id: str,
        name: str,
        role: str,
        content: str,
        client_id: str | None = None,
        reply_to: int | None = None,
        sent_at: float | None = None,
    ) -> tuple[StoredMessage, bool]:
        """Store a message at the end of its room; (the message, True), or (the earlier one, False) when
        ``client_id`` was already used in this room. ``sent_at``: its time (Unix seconds), now by default."""
        with self.transaction() as tx:
            return self.insert(tx, room_id, name, role, content, client_id, reply_to, sent_at)

    def message(self, room_id: str, message_id: Any) -> StoredMessage | None:
        if isinstance(message_id, bool) or not isinstance(message_id, int):
            return None
        rows = self.query(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = %s AND id = %s", room_id, message_id)
        return StoredMessage(*rows[0]) if rows else None

    def messages(
        self, room_id: str, after: int = 0, last: int | None = None, first: int | None = None
    ) -> list[StoredMessage]:
        """The room's messages with ``seq > after``, in order; only the ``first`` or the ``last`` N of them when given."""
        where = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = %s AND seq > %s"
        if last is not None:
            rows = self.query(
                f"SELECT * FROM ({where} ORDER BY seq DESC LIMIT %s) AS tail ORDER BY seq", room_id, after, last
            )
        elif first is not None:
            rows = self.query(f"{where} ORDER BY seq LIMIT %s", room_id, after, first)
        else:
            rows = self.query(f"{where} ORDER BY seq", room_id, after)
        return [StoredMessage(*row) for row in rows]

    def count_after(self, room_id: str, after: int) -> int:
        return self.query("SELECT COUNT(*) FROM messages WHERE room = %s AND seq > %s", room_id, after)[0][0]

    # -- the assistant's decisions --------------------------------------------------------------------

    def undecided(self, room_id: str) -> list[StoredMessage]:
        """User messages of the room the assistant has not decided on yet (e.g. after a crash), in order."""
        rows = self.query(
            f"SELECT {', '.join('m.' + c for c in MESSAGE_COLUMNS.split(', '))} FROM messages m "
            f"LEFT JOIN decisions d ON d.message_id = m.id "
            f"WHERE m.room = %s AND m.role = 'user' AND d.message_id IS NULL ORDER BY m.seq",
            room_id,
        )
        return [StoredMessage(*row) for row in rows]

    def record_decision(
        self,
        message_id: int,
        speak: bool,
        p_speak: float | None = None,
        note: str = "",
        reply: tuple[str, str] | None = None,
    ) -> StoredMessage | None:
        """Record the decision on a user message and store its reply ``(name, text)`` in one transaction.

        Returns the stored reply; None when silent, or when the message was already decided on (then
        nothing is written: a message is answered at most once).
        """
        with self.transaction() as tx:
            # The decision goes in first. A concurrent transaction that inserted the same message_id makes this one
            # wait (PostgreSQL) or never overlaps it (SQLite's write lock); once it commits, nothing is inserted here.
            decided = tx.query(
                "INSERT INTO decisions (message_id, speak, p_speak, note, time) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
                *(message_id, speak, p_speak, note, time.time()),
            )
            if not decided or reply is None:
                return None
            room_id = tx.query("SELECT room FROM messages WHERE id = %s", message_id)[0][0]
            stored, _ = self.insert(tx, room_id, reply[0], "assistant", reply[1], None, message_id, None)
            tx.query("UPDATE decisions SET reply_id = %s WHERE message_id = %s", stored.id, message_id)
        return stored

    def decision(self, message_id: int) -> tuple[bool, float | None, int | None, str] | None:
        """The decision on a message: (speak, p_speak, reply_id, note); None when not decided yet."""
        rows = self.query("SELECT speak, p_speak, reply_id, note FROM decisions WHERE message_id = %s", message_id)
        return (bool(rows[0][0]), *rows[0][1:]) if rows else None


# A migration is the statements that take the schema from the version before it to its own (its index + 1).
Migration = tuple[str, ...]


def pending(location: str, current: int, migrations: list[Migration]) -> list[tuple[int, Migration]]:
    """The migrations a database at version ``current`` still needs, numbered; a StoreError when the
    database is newer than ``migrations`` (a later chimein wrote it: its tables may mean something else)."""
    if current > len(migrations):
        raise StoreError(
            f"{masked(location)}: the database's schema is version {current}, newer than this chimein's "
            f"({len(migrations)}): upgrade chimein to use it"
        )
    return [(version, migrations[version - 1]) for version in range(current + 1, len(migrations) + 1)]
