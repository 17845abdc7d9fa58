"""Storage for `chimein serve`: rooms, every message, which messages the assistant decided on, names, settings.

    store = open_store("chimein.db")                      # SQLite (store/sqlite.py)
    store = open_store("postgresql://chimein@db:5432/chimein")   # PostgreSQL (store/postgres.py)
    room = store.create_room()
    msg, created = store.add_message(room.id, "Ana", "user", "pizza tonight?", client_id="c1")
    store.record_decision(msg.id, speak=False, p_speak=0.03)

Both engines implement :class:`Store` (base.py) with the same guarantees; each keeps an ordered list of
migrations (``MIGRATIONS``) and a ``schema_version`` table, applied when the store opens.
"""

from __future__ import annotations

from pathlib import Path

from chimein.server.store.base import Room, Store, StoredMessage, StoreError, masked

__all__ = ["Room", "Store", "StoreError", "StoredMessage", "is_postgres_url", "masked", "open_store", "probe"]


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path) -> Store:
    """The store at ``location``: a ``postgresql://`` or ``postgres://`` URL, or else a SQLite file (created if
    missing). Raises :class:`StoreError` when the database cannot be used (the message masks any password)."""
    if is_postgres_url(location):
        from chimein.server.store.postgres import PostgresStore  # psycopg only when it is used

        return PostgresStore.open(str(location))
    from chimein.server.store.sqlite import SqliteStore

    return SqliteStore.open(location)


def probe(location: str | Path) -> None:
    """Check, creating nothing, that :func:`open_store` could use ``location``; a :class:`StoreError` if not."""
    if is_postgres_url(location):
        from chimein.server.store.postgres import probe as probe_postgres

        return probe_postgres(str(location))
    from chimein.server.store.sqlite import probe as probe_sqlite

    return probe_sqlite(location)
