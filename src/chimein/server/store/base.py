"""What every engine of the rooms' store does (the interface), and the records it returns."""

from __future__ import annotations

import abc
import re
import secrets
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

# A URL's password, in its user part or as a query parameter.
_URL_PASSWORD = re.compile(
    r"(?P<head>^[a-z][a-z0-9+.-]*://[^:@/?#]*:)[^@/?#]*(?=@)|(?P<key>[?&]password=)[^&#]*", re.IGNORECASE
)


def masked(location: str) -> str:
    """``location`` fit to print: a URL's password replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: (m["head"] or m["key"]) + "***", location)


def new_room(eagerness: float | None) -> Room:
    """A room with fresh random id and token (12 and 32 URL-safe characters)."""
    return Room(secrets.token_urlsafe(9), secrets.token_urlsafe(24), eagerness)


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

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The version of the schema the database is at (the last migration applied)."""

    # -- rooms ----------------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_room(self, eagerness: float | None = None) -> Room: ...

    @abc.abstractmethod
    def room(self, room_id: str) -> Room | None: ...

    def authorize(self, room_id: Any, token: Any) -> Room | None:
        """The room, if ``token`` is its token; None for an unknown room or a wrong token alike."""
        if not isinstance(room_id, str) or not isinstance(token, str):
            return None
        room = self.room(room_id)
        if room is None or not secrets.compare_digest(room.token.encode(), token.encode()):
            return None
        return room

    @abc.abstractmethod
    def set_eagerness(self, room_id: str, eagerness: float | None) -> None: ...

    @abc.abstractmethod
    def names(self, room_id: str) -> list[tuple[str, str]]:
        """The display names used in a room, with their owners."""

    @abc.abstractmethod
    def claim_name(self, room_id: str, name: str, owner: str) -> None:
        """Record ``owner`` as the name's owner in the room, unless someone already owns it."""

    @abc.abstractmethod
    def settings(self, room_id: str) -> tuple[dict[str, Any], str, float] | None:
        """The room's stored policy (JSON), who set it and when; None when it never changed."""

    @abc.abstractmethod
    def set_settings(self, room_id: str, policy: dict[str, Any], changed_by: str) -> None: ...

    # -- messages -------------------------------------------------------------------------------------

    @abc.abstractmethod
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

    @abc.abstractmethod
    def message(self, room_id: str, message_id: Any) -> StoredMessage | None: ...

    @abc.abstractmethod
    def messages(
        self, room_id: str, after: int = 0, last: int | None = None, first: int | None = None
    ) -> list[StoredMessage]:
        """The room's messages with ``seq > after``, in order; only the ``first`` or the ``last`` N of them when given."""

    @abc.abstractmethod
    def count_after(self, room_id: str, after: int) -> int: ...

    # -- the assistant's decisions --------------------------------------------------------------------

    @abc.abstractmethod
    def undecided(self, room_id: str) -> list[StoredMessage]:
        """User messages of the room the assistant has not decided on yet (e.g. after a crash), in order."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    def decision(self, message_id: int) -> tuple[bool, float | None, int | None, str] | None:
        """The decision on a message: (speak, p_speak, reply_id, note); None when not decided yet."""


def valid_message_id(message_id: Any) -> bool:
    return isinstance(message_id, int) and not isinstance(message_id, bool)


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
