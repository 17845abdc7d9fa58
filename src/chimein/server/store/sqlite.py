"""The store in one SQLite file (the default of `chimein serve`).

WAL mode, ``synchronous=NORMAL``: a committed message survives a crash of the server process (not
necessarily a power cut). One connection shared by the threads that call the store, behind a lock; every
write is a ``BEGIN IMMEDIATE`` transaction, which also serializes writers in other processes on the same
file, so a room's next ``seq`` (the largest plus one) is read and written under SQLite's write lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from chimein.server.store.base import (
    MESSAGE_COLUMNS,
    Migration,
    Room,
    Store,
    StoredMessage,
    StoreError,
    new_room,
    pending,
    valid_message_id,
)

# Version 1 is the schema chimein used before the version table existed, hence IF NOT EXISTS: a database it
# made is upgraded in place by recording the version.
MIGRATIONS: list[Migration] = [
    (
        """CREATE TABLE IF NOT EXISTS rooms (
            id TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            eagerness REAL,
            created REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS messages (
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
        )""",
        """CREATE TABLE IF NOT EXISTS decisions (
            message_id INTEGER PRIMARY KEY REFERENCES messages(id),
            speak INTEGER NOT NULL,
            p_speak REAL,
            reply_id INTEGER REFERENCES messages(id),
            note TEXT NOT NULL DEFAULT '',
            time REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS names (
            room TEXT NOT NULL REFERENCES rooms(id),
            name TEXT NOT NULL,
            owner TEXT NOT NULL,  -- a hash of the key the browser that first used the name keeps
            PRIMARY KEY (room, name)
        )""",
        """CREATE TABLE IF NOT EXISTS settings (
            room TEXT PRIMARY KEY REFERENCES rooms(id),
            policy TEXT NOT NULL,  -- JSON: assistant.policy.RoomPolicy.to_json()
            changed_by TEXT NOT NULL,
            time REAL NOT NULL
        )""",
    ),
]


def probe(path: str | Path) -> None:
    """A StoreError unless a store could open at ``path``: a SQLite file at a schema this chimein knows, or a new
    file in a writable directory. Reads only (nothing is created)."""
    path = Path(path)
    if path.exists():
        try:
            with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as db:
                db.execute("PRAGMA schema_version")
                known = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone()
                current = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] if known else 0
        except sqlite3.Error as e:
            raise StoreError(f"{path}: cannot use it as the rooms' database: {e}") from None
        pending(str(path), current or 0, MIGRATIONS)
    elif not path.parent.is_dir():
        raise StoreError(f"{path}: the directory {path.parent} does not exist")
    elif not os.access(path.parent, os.W_OK):
        raise StoreError(f"{path}: cannot create a file in {path.parent}")


class SqliteStore(Store):
    def __init__(self, db: sqlite3.Connection, location: str):
        self.db, self.location = db, location
        self.lock = threading.RLock()  # one connection, many threads: one statement or transaction at a time

    @classmethod
    def open(cls, path: str | Path, migrations: list[Migration] = MIGRATIONS) -> SqliteStore:
        try:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)  # explicit transactions
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=5000"):
                db.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as e:
            raise StoreError(f"{path}: cannot use it as the rooms' database: {e}") from None
        store = cls(db, str(path))
        try:
            store.migrate(migrations)
        except BaseException:
            db.close()
            raise
        return store

    def migrate(self, migrations: list[Migration]) -> None:
        """Bring the schema to the last of ``migrations``, each in the transaction that records it."""
        with self.transaction():
            self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, time REAL)")
            for version, statements in pending(self.location, self.schema_version(), migrations):
                for statement in statements:
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_version (version, time) VALUES (?, ?)", (version, time.time()))

    def schema_version(self) -> int:
        with self.lock:
            return self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), holding the connection's lock."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def query(self, sql: str, *args: Any) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def run(self, sql: str, *args: Any) -> None:
        with self.lock:
            self.db.execute(sql, args)

    # -- rooms ----------------------------------------------------------------------------------------

    def create_room(self, eagerness: float | None = None) -> Room:
        room = new_room(eagerness)
        self.run(
            "INSERT INTO rooms (id, token, eagerness, created) VALUES (?, ?, ?, ?)",
            room.id,
            room.token,
            room.eagerness,
            time.time(),
        )
        return room

    def room(self, room_id: str) -> Room | None:
        rows = self.query("SELECT id, token, eagerness FROM rooms WHERE id = ?", room_id)
        return Room(*rows[0]) if rows else None

    def set_eagerness(self, room_id: str, eagerness: float | None) -> None:
        self.run("UPDATE rooms SET eagerness = ? WHERE id = ?", eagerness, room_id)

    def names(self, room_id: str) -> list[tuple[str, str]]:
        return self.query("SELECT name, owner FROM names WHERE room = ?", room_id)

    def claim_name(self, room_id: str, name: str, owner: str) -> None:
        self.run("INSERT INTO names (room, name, owner) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", room_id, name, owner)

    def settings(self, room_id: str) -> tuple[dict[str, Any], str, float] | None:
        rows = self.query("SELECT policy, changed_by, time FROM settings WHERE room = ?", room_id)
        return (json.loads(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

    def set_settings(self, room_id: str, policy: dict[str, Any], changed_by: str) -> None:
        self.run(
            "INSERT INTO settings (room, policy, changed_by, time) VALUES (?, ?, ?, ?) ON CONFLICT (room) "
            "DO UPDATE SET policy = excluded.policy, changed_by = excluded.changed_by, time = excluded.time",
            room_id,
            json.dumps(policy),
            changed_by,
            time.time(),
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
        sent_at: float | None = None,
    ) -> tuple[StoredMessage, bool]:
        with self.transaction():
            return self.insert(room_id, name, role, content, client_id, reply_to, sent_at)

    def insert(self, room_id, name, role, content, client_id, reply_to, sent_at) -> tuple[StoredMessage, bool]:
        """Inside a transaction: the message at the room's next seq, or the one already stored under ``client_id``."""
        if client_id is not None:
            row = self.db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND client_id = ?", (room_id, client_id)
            ).fetchone()
            if row:
                return StoredMessage(*row), False
        row = self.db.execute(
            f"INSERT INTO messages (room, seq, name, role, content, time, client_id, reply_to) "
            f"VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE room = ?), ?, ?, ?, ?, ?, ?) "
            f"RETURNING {MESSAGE_COLUMNS}",
            (room_id, room_id, name, role, content, time.time() if sent_at is None else sent_at, client_id, reply_to),
        ).fetchone()
        return StoredMessage(*row), True

    def message(self, room_id: str, message_id: Any) -> StoredMessage | None:
        if not valid_message_id(message_id):
            return None
        rows = self.query(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND id = ?", room_id, message_id)
        return StoredMessage(*rows[0]) if rows else None

    def messages(
        self, room_id: str, after: int = 0, last: int | None = None, first: int | None = None
    ) -> list[StoredMessage]:
        where = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq > ?"
        if last is None:
            rows = self.query(f"{where} ORDER BY seq LIMIT ?", room_id, after, -1 if first is None else first)
        else:
            rows = self.query(f"SELECT * FROM ({where} ORDER BY seq DESC LIMIT ?) ORDER BY seq", room_id, after, last)
        return [StoredMessage(*row) for row in rows]

    def count_after(self, room_id: str, after: int) -> int:
        return self.query("SELECT COUNT(*) FROM messages WHERE room = ? AND seq > ?", room_id, after)[0][0]

    # -- the assistant's decisions --------------------------------------------------------------------

    def undecided(self, room_id: str) -> list[StoredMessage]:
        rows = self.query(
            f"SELECT {', '.join('m.' + c for c in MESSAGE_COLUMNS.split(', '))} FROM messages m "
            f"LEFT JOIN decisions d ON d.message_id = m.id "
            f"WHERE m.room = ? AND m.role = 'user' AND d.message_id IS NULL ORDER BY m.seq",
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
        with self.transaction():  # BEGIN IMMEDIATE: no other writer between the check and the insert
            if self.db.execute("SELECT 1 FROM decisions WHERE message_id = ?", (message_id,)).fetchone():
                return None
            stored = None
            if reply is not None:
                room_id = self.db.execute("SELECT room FROM messages WHERE id = ?", (message_id,)).fetchone()[0]
                stored, _ = self.insert(room_id, reply[0], "assistant", reply[1], None, message_id, None)
            self.db.execute(
                "INSERT INTO decisions (message_id, speak, p_speak, reply_id, note, time) VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, int(speak), p_speak, stored.id if stored else None, note, time.time()),
            )
        return stored

    def decision(self, message_id: int) -> tuple[bool, float | None, int | None, str] | None:
        rows = self.query("SELECT speak, p_speak, reply_id, note FROM decisions WHERE message_id = ?", message_id)
        return (bool(rows[0][0]), *rows[0][1:]) if rows else None
