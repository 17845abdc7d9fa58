"""SQLite storage for `chimein serve`: rooms, every message, and which messages the assistant decided on.

    store = Store.open("chimein.db")
    room = store.create_room()
    msg, created = store.add_message(room.id, "Ana", "user", "pizza tonight?", client_id="c1")
    store.record_decision(msg.id, speak=False, p_speak=0.03)

WAL mode, ``synchronous=NORMAL``: a committed message survives a crash of the server process (not
necessarily a power cut). One connection, used from one thread (the server's event loop); every write is
a short transaction. A message's ``seq`` numbers it within its room (1, 2, 3, ... without gaps). A
``client_id`` makes sending idempotent: the same (room, client_id) is stored once, so a client that
resends after a reconnect never duplicates a message. The ``decisions`` table has one row per user
message the assistant has decided on (its reply, if any, is written in the same transaction), so a
message is never answered twice, across restarts too.
"""

from __future__ import annotations

import secrets
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    eagerness REAL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL REFERENCES rooms(id),
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    time REAL NOT NULL,
    client_id TEXT,
    reply_to INTEGER REFERENCES messages(id),
    UNIQUE (room, seq),
    UNIQUE (room, client_id)
);
CREATE TABLE IF NOT EXISTS decisions (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id),
    speak INTEGER NOT NULL,
    p_speak REAL,
    reply_id INTEGER REFERENCES messages(id),
    note TEXT NOT NULL DEFAULT '',
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    room TEXT NOT NULL REFERENCES rooms(id),
    name TEXT NOT NULL,
    owner TEXT NOT NULL,  -- a hash of the key the browser that first used the name keeps
    PRIMARY KEY (room, name)
);
CREATE TABLE IF NOT EXISTS settings (
    room TEXT PRIMARY KEY REFERENCES rooms(id),
    policy TEXT NOT NULL,  -- JSON: assistant.policy.RoomPolicy.to_json()
    changed_by TEXT NOT NULL,
    time REAL NOT NULL
);
"""

_COLUMNS = "id, room, seq, name, role, content, time, client_id, reply_to"


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


class Store:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    @classmethod
    def open(cls, path: str | Path) -> "Store":
        db = sqlite3.connect(str(path), isolation_level=None)  # autocommit; transactions are explicit
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=5000"):
            db.execute(f"PRAGMA {pragma}")
        db.executescript(SCHEMA)
        return cls(db)

    def close(self) -> None:
        self.db.close()

    # -- rooms ----------------------------------------------------------------------------------------

    def create_room(self, eagerness: float | None = None) -> Room:
        room = Room(secrets.token_urlsafe(9), secrets.token_urlsafe(24), eagerness)
        self.db.execute(
            "INSERT INTO rooms (id, token, eagerness, created) VALUES (?, ?, ?, ?)",
            (room.id, room.token, room.eagerness, time.time()),
        )
        return room

    def room(self, room_id: str) -> Room | None:
        row = self.db.execute("SELECT id, token, eagerness FROM rooms WHERE id = ?", (room_id,)).fetchone()
        return Room(*row) if row else None

    def authorize(self, room_id: Any, token: Any) -> Room | None:
        """The room, if ``token`` is its token; None for an unknown room or a wrong token alike."""
        if not isinstance(room_id, str) or not isinstance(token, str):
            return None
        room = self.room(room_id)
        if room is None or not secrets.compare_digest(room.token.encode(), token.encode()):
            return None
        return room

    def set_eagerness(self, room_id: str, eagerness: float | None) -> None:
        self.db.execute("UPDATE rooms SET eagerness = ? WHERE id = ?", (eagerness, room_id))

    def names(self, room_id: str) -> list[tuple[str, str]]:
        """The display names used in a room, with their owners."""
        return self.db.execute("SELECT name, owner FROM names WHERE room = ?", (room_id,)).fetchall()

    def claim_name(self, room_id: str, name: str, owner: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO names (room, name, owner) VALUES (?, ?, ?)", (room_id, name, owner))

    def settings(self, room_id: str) -> tuple[dict[str, Any], str, float] | None:
        """The room's stored policy (JSON), who set it and when; None when it never changed."""
        row = self.db.execute("SELECT policy, changed_by, time FROM settings WHERE room = ?", (room_id,)).fetchone()
        return (json.loads(row[0]), row[1], row[2]) if row else None

    def set_settings(self, room_id: str, policy: dict[str, Any], changed_by: str) -> None:
        self.db.execute(
            "INSERT INTO settings (room, policy, changed_by, time) VALUES (?, ?, ?, ?) ON CONFLICT (room) "
            "DO UPDATE SET policy = excluded.policy, changed_by = excluded.changed_by, time = excluded.time",
            (room_id, json.dumps(policy), changed_by, time.time()),
        )

    # -- messages -------------------------------------------------------------------------------------

    def add_message(
        self,
        room_id: str,
        name: str,
        role: str,
        content: str,
        client_id: str | None = None,
        reply_to: int | None = None,
    ) -> tuple[StoredMessage, bool]:
        """Store a message at the end of its room; (the message, True), or (the earlier one, False) when
        ``client_id`` was already used in this room."""
        with self._transaction():
            return self._insert(room_id, name, role, content, client_id, reply_to)

    def _insert(self, room_id, name, role, content, client_id, reply_to) -> tuple[StoredMessage, bool]:
        if client_id is not None:
            row = self.db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND client_id = ?", (room_id, client_id)
            ).fetchone()
            if row:
                return StoredMessage(*row), False
        row = self.db.execute(
            f"INSERT INTO messages (room, seq, name, role, content, time, client_id, reply_to) "
            f"VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE room = ?), ?, ?, ?, ?, ?, ?) "
            f"RETURNING {_COLUMNS}",
            (room_id, room_id, name, role, content, time.time(), client_id, reply_to),
        ).fetchone()
        return StoredMessage(*row), True

    def message(self, room_id: str, message_id: Any) -> StoredMessage | None:
        if isinstance(message_id, bool) or not isinstance(message_id, int):
            return None
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id = ?", (room_id, message_id)
        ).fetchone()
        return StoredMessage(*row) if row else None

    def messages(
        self, room_id: str, after: int = 0, last: int | None = None, first: int | None = None
    ) -> list[StoredMessage]:
        """The room's messages with ``seq > after``, in order; only the ``first`` or the ``last`` N of them when given."""
        where = f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND seq > ?"
        if last is None:
            rows = self.db.execute(f"{where} ORDER BY seq LIMIT ?", (room_id, after, -1 if first is None else first))
        else:
            rows = self.db.execute(
                f"SELECT * FROM ({where} ORDER BY seq DESC LIMIT ?) ORDER BY seq", (room_id, after, last)
            )
        return [StoredMessage(*row) for row in rows]

    def count_after(self, room_id: str, after: int) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM messages WHERE room = ? AND seq > ?", (room_id, after)
        ).fetchone()[0]

    # -- the assistant's decisions --------------------------------------------------------------------

    def undecided(self, room_id: str) -> list[StoredMessage]:
        """User messages of the room the assistant has not decided on yet (e.g. after a crash), in order."""
        rows = self.db.execute(
            f"SELECT {', '.join('m.' + c for c in _COLUMNS.split(', '))} FROM messages m "
            f"LEFT JOIN decisions d ON d.message_id = m.id "
            f"WHERE m.room = ? AND m.role = 'user' AND d.message_id IS NULL ORDER BY m.seq",
            (room_id,),
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
        with self._transaction():
            if self.db.execute("SELECT 1 FROM decisions WHERE message_id = ?", (message_id,)).fetchone():
                return None
            stored = None
            if reply is not None:
                room_id = self.db.execute("SELECT room FROM messages WHERE id = ?", (message_id,)).fetchone()[0]
                stored, _ = self._insert(room_id, reply[0], "assistant", reply[1], None, message_id)
            self.db.execute(
                "INSERT INTO decisions (message_id, speak, p_speak, reply_id, note, time) VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, int(speak), p_speak, stored.id if stored else None, note, time.time()),
            )
        return stored

    def _transaction(self) -> "_Transaction":
        return _Transaction(self.db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
