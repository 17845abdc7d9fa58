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
    SET_SETTINGS,
    Migration,
    Store,
    StoredMessage,
    StoreError,
    pending,
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
            self.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, time REAL NOT NULL)")
            for version, statements in pending(self.location, self.schema_version(), migrations):
                for statement in statements:
                    self.run(statement)
                self.run("INSERT INTO schema_version (version, time) VALUES (%s, %s)", version, time.time())

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[SqliteStore]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), holding the connection's lock."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def query(self, sql: str, *args: Any) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql.replace("%s", "?"), args).fetchall()

    # -- rooms ----------------------------------------------------------------------------------------

    def settings(self, room_id: str) -> tuple[dict[str, Any], str, float] | None:
        rows = self.query("SELECT policy, changed_by, time FROM settings WHERE room = %s", room_id)
        return (json.loads(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

    def set_settings(self, room_id: str, policy: dict[str, Any], changed_by: str) -> None:
        self.run(SET_SETTINGS, room_id, json.dumps(policy), changed_by, time.time())

    # -- messages -------------------------------------------------------------------------------------

    def insert(self, tx, room_id, name, role, content, client_id, reply_to, sent_at) -> tuple[StoredMessage, bool]:
        # tx is this store, inside BEGIN IMMEDIATE: SQLite's write lock keeps every other writer out until COMMIT.
        if client_id is not None:
            rows = tx.query(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = %s AND client_id = %s", room_id, client_id
            )
            if rows:
                return StoredMessage(*rows[0]), False
        rows = tx.query(
            f"INSERT INTO messages (room, seq, name, role, content, time, client_id, reply_to) "
            f"VALUES (%s, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE room = %s), %s, %s, %s, %s, %s, %s) "
            f"RETURNING {MESSAGE_COLUMNS}",
            *(room_id, room_id, name, role, content, time.time() if sent_at is None else sent_at, client_id, reply_to),
        )
        return StoredMessage(*rows[0]), True
