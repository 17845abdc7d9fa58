"""The store on PostgreSQL (``chimein serve --db postgresql://user@host:5432/db``), shared by any number of processes.

psycopg 3 over a psycopg_pool pool (thread-safe: the event loop and worker threads each borrow a connection for
one short transaction). Connections are in autocommit; what must be atomic runs in an explicit transaction.

How the guarantees hold across processes:
- ``seq``: a message is inserted while holding its room's row lock (``SELECT ... FOR UPDATE`` on ``rooms``),
  which also carries the room's last seq; the next seq is that plus one, written in the same transaction. Writers
  to one room take turns, and a rolled-back insert leaves no gap.
- ``client_id``: looked up after the room's lock is taken, so two resends of one message cannot both insert;
  ``UNIQUE (room, client_id)`` backs it.
- one decision per message (``Store.record_decision``): ``INSERT INTO decisions ... ON CONFLICT DO NOTHING``
  first; only the transaction whose row went in writes the reply. A second one waits for the first to commit, then inserts nothing.
- the schema: migrations run in one transaction under the advisory lock (:data:`SCHEMA_LOCK`), so two processes
  starting at once migrate one after the other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from chimein.server.store.base import (
    MESSAGE_COLUMNS,
    SET_SETTINGS,
    Migration,
    Store,
    StoredMessage,
    StoreError,
    masked,
    pending,
)

# pg_advisory_xact_lock's two-key form (a key space apart from one-key bigint locks): chimein's own class id,
# then 1 for schema migrations. Other chimein locks should take the same class id and another second key.
LOCK_CLASS = 0x63686D  # "chm"
SCHEMA_LOCK = (LOCK_CLASS, 1)
CONNECT_TIMEOUT_S = 10

MIGRATIONS: list[Migration] = [
    (
        """CREATE TABLE rooms (
            id TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            eagerness DOUBLE PRECISION,
            created DOUBLE PRECISION NOT NULL,
            last_seq BIGINT NOT NULL DEFAULT 0  -- the seq of the room's last message; its row lock orders writers
        )""",
        """CREATE TABLE messages (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            room TEXT NOT NULL REFERENCES rooms(id),
            seq BIGINT NOT NULL,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            client_id TEXT,
            reply_to BIGINT REFERENCES messages(id),
            UNIQUE (room, seq),
            UNIQUE (room, client_id)
        )""",
        """CREATE TABLE decisions (
            message_id BIGINT PRIMARY KEY REFERENCES messages(id),
            speak BOOLEAN NOT NULL,
            p_speak DOUBLE PRECISION,
            reply_id BIGINT REFERENCES messages(id),
            note TEXT NOT NULL DEFAULT '',
            time DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE names (
            room TEXT NOT NULL REFERENCES rooms(id),
            name TEXT NOT NULL,
            owner TEXT NOT NULL,  -- a hash of the key the browser that first used the name keeps
            PRIMARY KEY (room, name)
        )""",
        """CREATE TABLE settings (
            room TEXT PRIMARY KEY REFERENCES rooms(id),
            policy JSONB NOT NULL,  -- assistant.policy.RoomPolicy.to_json()
            changed_by TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL
        )""",
    ),
]


@contextmanager
def connection(url: str) -> Iterator[psycopg.Connection]:
    """A connection of its own (outside the pool), autocommit; psycopg's errors become one StoreError line."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            yield conn
    except psycopg.Error as e:
        raise StoreError(f"{masked(url)}: cannot use it as the rooms' database: {describe(e, url)}") from None


def probe(url: str) -> None:
    """A StoreError unless the database answers and its schema is one this chimein knows (nothing is created)."""
    with connection(url) as conn:
        known = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
        current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] if known else 0
    pending(url, current or 0, MIGRATIONS)


class PostgresStore(Store):
    def __init__(self, pool: ConnectionPool, url: str):
        self.pool = pool
        self.url = url  # the connection string as given (with its password, if any): never print it
        self.location = masked(url)

    @classmethod
    def open(cls, url: str, migrations: list[Migration] = MIGRATIONS, max_connections: int = 8) -> PostgresStore:
        """Connect, migrate the schema, then open the pool. A StoreError (password masked) when that fails."""
        with connection(url) as conn:
            migrate(conn, url, migrations)
        pool = ConnectionPool(
            url,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            min_size=1,
            max_size=max_connections,
            name="chimein-store",
            open=True,
        )
        return cls(pool, url)

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.pool.connection() as conn, conn.transaction():
            yield Transaction(conn)

    def query(self, sql: str, *args: Any) -> list[tuple]:
        with self.pool.connection() as conn:
            return Transaction(conn).query(sql, *args)

    # -- rooms ----------------------------------------------------------------------------------------

    def settings(self, room_id: str) -> tuple[dict[str, Any], str, float] | None:
        rows = self.query("SELECT policy, changed_by, time FROM settings WHERE room = %s", room_id)
        return rows[0] if rows else None  # JSONB comes back as a dict

    def set_settings(self, room_id: str, policy: dict[str, Any], changed_by: str) -> None:
        self.run(SET_SETTINGS, room_id, Jsonb(policy), changed_by, time.time())

    # -- messages -------------------------------------------------------------------------------------

    def insert(self, tx, room_id, name, role, content, client_id, reply_to, sent_at) -> tuple[StoredMessage, bool]:
        locked = tx.query("SELECT last_seq FROM rooms WHERE id = %s FOR UPDATE", room_id)  # until COMMIT
        if not locked:
            raise psycopg.errors.ForeignKeyViolation(f"no room {room_id!r}")
        if client_id is not None:  # read after the lock: a resend committed meanwhile is seen here
            rows = tx.query(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = %s AND client_id = %s", room_id, client_id
            )
            if rows:
                return StoredMessage(*rows[0]), False
        seq = locked[0][0] + 1
        tx.query("UPDATE rooms SET last_seq = %s WHERE id = %s", seq, room_id)
        rows = tx.query(
            f"INSERT INTO messages (room, seq, name, role, content, time, client_id, reply_to) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {MESSAGE_COLUMNS}",
            *(room_id, seq, name, role, content, time.time() if sent_at is None else sent_at, client_id, reply_to),
        )
        return StoredMessage(*rows[0]), True


class Transaction:
    """One connection of the pool, inside a transaction or alone (autocommit)."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def query(self, sql: str, *args: Any) -> list[tuple]:
        cursor = self.conn.execute(sql, args)
        return cursor.fetchall() if cursor.description else []


def migrate(conn: psycopg.Connection, url: str, migrations: list[Migration]) -> None:
    """Bring the schema to the last of ``migrations``: one transaction under :data:`SCHEMA_LOCK`."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", SCHEMA_LOCK)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, time DOUBLE PRECISION NOT NULL)"
        )
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        for version, statements in pending(url, current, migrations):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, time) VALUES (%s, %s)", (version, time.time()))


def describe(error: psycopg.Error, url: str) -> str:
    """libpq's message on one line, without the URL's password should libpq have quoted it."""
    text = masked(" ".join(str(error).split()) or type(error).__name__)
    try:
        password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    except psycopg.Error:  # a malformed URL
        password = None
    return text.replace(str(password), "***") if password else text
