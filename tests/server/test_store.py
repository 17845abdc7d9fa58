"""The rooms' store on both engines (SQLite and a real PostgreSQL): the same guarantees, threads and processes
writing at once, and the versioned schema (fresh, upgraded in place, refused when newer)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from chimein.server.store import Store, StoreError, is_postgres_url, open_store, probe
from chimein.server.store import postgres as pg_engine
from chimein.server.store import sqlite as sqlite_engine

pytestmark = pytest.mark.timeout(180)

ENGINES = ["sqlite", "postgres"]


@pytest.fixture(params=ENGINES)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives, on each engine."""
    return str(tmp_path / "rooms.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def store(location: str):
    opened = open_store(location)
    yield opened
    opened.close()


def seqs(store: Store, room: str) -> list[int]:
    return [m.seq for m in store.messages(room)]


# -- the guarantees, on both engines ---------------------------------------------------------------------------


def test_a_client_id_is_stored_once_per_room(store: Store) -> None:
    a, b = store.create_room(), store.create_room()
    first, created = store.add_message(a.id, "Ana", "user", "pizza?", client_id="c1")
    again, created_again = store.add_message(a.id, "Ana", "user", "pizza? (resent)", client_id="c1")
    other_room, created_there = store.add_message(b.id, "Ana", "user", "pizza?", client_id="c1")
    assert (created, created_again, created_there) == (True, False, True)
    assert again == first and again.content == "pizza?"  # the earlier message, unchanged
    assert [m.content for m in store.messages(a.id)] == ["pizza?"]
    assert other_room.room == b.id and other_room.seq == 1


def test_seq_counts_each_room_from_one_without_gaps(store: Store) -> None:
    a, b = store.create_room(), store.create_room()
    for i in range(5):
        store.add_message(a.id, "Ana", "user", f"a{i}")
        if i % 2:
            store.add_message(b.id, "Ben", "user", f"b{i}")
    store.add_message(a.id, "Ana", "user", "a-resent", client_id="x")
    store.add_message(a.id, "Ana", "user", "a-resent", client_id="x")  # a resend takes no seq
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):  # a failed insert takes no seq either
        store.add_message(a.id, "Ana", "robot", "nope")
    store.add_message(a.id, "Ana", "user", "last")
    assert seqs(store, a.id) == [1, 2, 3, 4, 5, 6, 7]
    assert seqs(store, b.id) == [1, 2]


def test_a_message_is_decided_and_answered_at_most_once(store: Store) -> None:
    room = store.create_room()
    msg, _ = store.add_message(room.id, "Ana", "user", "bot?")
    quiet, _ = store.add_message(room.id, "Ben", "user", "lol")
    reply = store.record_decision(msg.id, True, 0.9, "addressed", ("assistant", "first"))
    assert reply is not None and (reply.role, reply.reply_to, reply.seq, reply.content) == (
        "assistant",
        msg.id,
        3,
        "first",
    )
    assert store.record_decision(msg.id, True, 0.9, "", ("assistant", "second")) is None
    assert store.record_decision(msg.id, False, 0.1) is None
    assert store.decision(msg.id) == (True, 0.9, reply.id, "addressed")
    assert store.record_decision(quiet.id, False, 0.02, "chit-chat") is None
    assert store.decision(quiet.id) == (False, 0.02, None, "chit-chat")
    assert [m.content for m in store.messages(room.id)] == ["bot?", "lol", "first"]
    assert store.undecided(room.id) == []


def test_undecided_lists_the_user_messages_without_a_decision_in_order(store: Store) -> None:
    room = store.create_room()
    a, _ = store.add_message(room.id, "Ana", "user", "one")
    b, _ = store.add_message(room.id, "Ben", "user", "two")
    c, _ = store.add_message(room.id, "Ana", "user", "three")
    store.record_decision(b.id, True, None, "", ("assistant", "reply to two"))
    assert store.decision(a.id) is None
    assert [m.id for m in store.undecided(room.id)] == [a.id, c.id]  # never the assistant's own message


def test_reading_messages_after_first_last_and_by_id(store: Store) -> None:
    room, other = store.create_room(), store.create_room()
    for i in range(1, 7):
        store.add_message(room.id, "Ana", "user", str(i))
    sent = store.add_message(room.id, "Ben", "user", "old", sent_at=1000.0)[0]
    assert [m.seq for m in store.messages(room.id, after=2, first=2)] == [3, 4]
    assert [m.seq for m in store.messages(room.id, after=2, last=2)] == [6, 7]
    assert [m.seq for m in store.messages(room.id, after=5)] == [6, 7]
    assert store.count_after(room.id, 4) == 3 and store.count_after(other.id, 0) == 0
    assert store.message(room.id, sent.id) == sent and sent.time == 1000.0
    assert store.message(other.id, sent.id) is None  # ids are looked up within their room
    assert store.message(room.id, True) is None and store.message(room.id, "1") is None
    assert sent.to_json() == {"id": sent.id, "seq": 7, "name": "Ben", "role": "user", "content": "old", "time": 1000.0}


def test_rooms_tokens_names_and_settings(store: Store) -> None:
    room = store.create_room(eagerness=0.3)
    assert store.room(room.id) == room and room.eagerness == 0.3
    assert store.authorize(room.id, room.token) == room
    assert store.authorize(room.id, room.token + "x") is None and store.authorize("nope", room.token) is None
    assert store.authorize(room.id, None) is None
    store.set_eagerness(room.id, None)
    assert store.room(room.id).eagerness is None
    store.claim_name(room.id, "Ana", "key-1")
    store.claim_name(room.id, "Ana", "key-2")  # the first owner keeps it
    store.claim_name(room.id, "Ben", "key-2")
    assert sorted(store.names(room.id)) == [("Ana", "key-1"), ("Ben", "key-2")]
    assert store.settings(room.id) is None
    before = time.time()
    store.set_settings(room.id, {"mode": "quiet", "min_gap": 4}, "Ana")
    store.set_settings(room.id, {"mode": "mention-only", "cooldown": [3, 600]}, "Ben")
    policy, changed_by, changed = store.settings(room.id)
    assert (policy, changed_by) == ({"mode": "mention-only", "cooldown": [3, 600]}, "Ben") and changed >= before


def test_threads_share_one_store(store: Store) -> None:
    """The event loop and worker threads call the same store object at once."""
    room = store.create_room()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(15):
                msg, _ = store.add_message(room.id, f"w{worker}", "user", f"{worker}-{i}", client_id=f"shared-{i}")
                store.record_decision(msg.id, True, None, "", ("assistant", f"by {worker}"))
                store.messages(room.id, last=5)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    messages = store.messages(room.id)
    assert [m.seq for m in messages] == list(range(1, 31))  # 15 messages and one reply each
    assert Counter(m.reply_to for m in messages if m.role == "assistant") == {
        m.id: 1 for m in messages if m.role == "user"
    }


# -- several processes on one database -------------------------------------------------------------------------

PROCESSES, MESSAGES, ROOMS = 4, 12, 3


def hammer(location: str, rooms: list[str], worker: int, start: multiprocessing.synchronize.Barrier) -> None:
    """In its own process: every message under its own client_id, a resend of it, one message every process sends
    under the same client_id, and a decision with a reply on that shared one."""
    store = open_store(location)
    try:
        start.wait(60)
        for i in range(MESSAGES):
            for room in rooms:
                store.add_message(room, f"p{worker}", "user", f"p{worker}-{i}", client_id=f"p{worker}-{i}")
                shared, _ = store.add_message(room, f"p{worker}", "user", f"shared-{i}", client_id=f"shared-{i}")
                store.add_message(room, f"p{worker}", "user", f"p{worker}-{i}", client_id=f"p{worker}-{i}")
                store.record_decision(shared.id, True, 0.9, f"p{worker}", ("assistant", f"answer from p{worker}"))
    finally:
        store.close()


def test_processes_writing_to_the_same_rooms_leave_no_gap_duplicate_or_second_reply(location: str) -> None:
    with open_store(location) as store:
        rooms = [store.create_room().id for _ in range(ROOMS)]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no connection crosses a fork
    start = context.Barrier(PROCESSES)
    workers = [context.Process(target=hammer, args=(location, rooms, w, start)) for w in range(PROCESSES)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(150)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    with open_store(location) as store:
        for room in rooms:
            messages = store.messages(room)
            user = [m for m in messages if m.role == "user"]
            replies = [m for m in messages if m.role == "assistant"]
            assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
            own = [f"p{w}-{i}" for w in range(PROCESSES) for i in range(MESSAGES)]
            shared = [f"shared-{i}" for i in range(MESSAGES)]
            assert sorted(m.client_id for m in user) == sorted(own + shared)  # each stored exactly once
            for w in range(PROCESSES):  # each process's own messages in the order it sent them
                mine = [m.content for m in user if m.name == f"p{w}" and not m.content.startswith("shared")]
                assert mine == [f"p{w}-{i}" for i in range(MESSAGES)]
            shared_ids = {m.id for m in user if m.client_id.startswith("shared")}
            assert sorted(m.reply_to for m in replies) == sorted(shared_ids)  # exactly one reply each
            for m in replies:
                decision = store.decision(m.reply_to)
                assert decision[2] == m.id and m.content == f"answer from {decision[3]}"  # the winner's own reply


# -- the versioned schema --------------------------------------------------------------------------------------

ENGINE = {"sqlite": sqlite_engine.SqliteStore, "postgres": pg_engine.PostgresStore}
ENGINE_MIGRATIONS = {"sqlite": sqlite_engine.MIGRATIONS, "postgres": pg_engine.MIGRATIONS}

# Two later schema changes, the second needing the first: applied in order, once.
LATER = [("ALTER TABLE rooms ADD COLUMN topic TEXT",), ("CREATE INDEX rooms_by_topic ON rooms (topic)",)]


def engine_of(location: str) -> str:
    return "postgres" if is_postgres_url(location) else "sqlite"


def version_rows(store: Store) -> list[int]:
    return [row[0] for row in store.query("SELECT version FROM schema_version ORDER BY version")]


def test_a_new_database_is_made_at_the_last_version_and_reopening_changes_nothing(location: str) -> None:
    last = len(ENGINE_MIGRATIONS[engine_of(location)])
    with open_store(location) as store:
        assert store.schema_version() == last
        room = store.create_room()
    with open_store(location) as store:
        assert version_rows(store) == list(range(1, last + 1))
        assert store.room(room.id) == room


def test_later_migrations_are_applied_in_order_when_the_store_opens(location: str) -> None:
    engine = engine_of(location)
    with open_store(location) as store:
        room = store.create_room()
        store.add_message(room.id, "Ana", "user", "kept")
    with ENGINE[engine].open(location, ENGINE_MIGRATIONS[engine] + LATER) as store:
        assert version_rows(store) == [1, 2, 3]
        store.run("UPDATE rooms SET topic = 'pizza' WHERE id = %s", room.id)
        assert store.query("SELECT topic FROM rooms") == [("pizza",)]
        assert [m.content for m in store.messages(room.id)] == ["kept"]


def test_a_database_newer_than_this_chimein_is_refused(location: str) -> None:
    engine = engine_of(location)
    ENGINE[engine].open(location, ENGINE_MIGRATIONS[engine] + LATER).close()
    for check in (open_store, probe):
        with pytest.raises(StoreError, match=r"schema is version 3, newer than this chimein's \(1\): upgrade chimein"):
            check(location)


# What chimein wrote before the schema had versions (the store of the first `chimein serve`).
UNVERSIONED_SQLITE = """
CREATE TABLE rooms (id TEXT PRIMARY KEY, token TEXT NOT NULL, eagerness REAL, created REAL NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL REFERENCES rooms(id), seq INTEGER NOT NULL,
    name TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('user', 'assistant')), content TEXT NOT NULL,
    time REAL NOT NULL, client_id TEXT, reply_to INTEGER REFERENCES messages(id),
    UNIQUE (room, seq), UNIQUE (room, client_id)
);
CREATE TABLE decisions (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id), speak INTEGER NOT NULL, p_speak REAL,
    reply_id INTEGER REFERENCES messages(id), note TEXT NOT NULL DEFAULT '', time REAL NOT NULL
);
CREATE TABLE names (room TEXT NOT NULL REFERENCES rooms(id), name TEXT NOT NULL, owner TEXT NOT NULL,
    PRIMARY KEY (room, name));
CREATE TABLE settings (room TEXT PRIMARY KEY REFERENCES rooms(id), policy TEXT NOT NULL, changed_by TEXT NOT NULL,
    time REAL NOT NULL);
INSERT INTO rooms VALUES ('r1', 'secret-token', 0.4, 1000.0);
INSERT INTO messages (room, seq, name, role, content, time, client_id) VALUES ('r1', 1, 'Ana', 'user', 'bot?', 1001.0, 'c1');
INSERT INTO messages (room, seq, name, role, content, time, reply_to) VALUES ('r1', 2, 'assistant', 'assistant', 'yes', 1002.0, 1);
INSERT INTO decisions VALUES (1, 1, 0.8, 2, '', 1002.0);
INSERT INTO settings VALUES ('r1', '{"mode": "quiet"}', 'Ana', 1003.0);
"""


def test_an_unversioned_sqlite_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(UNVERSIONED_SQLITE)
    probe(path)  # usable as it is
    with open_store(path) as store:
        assert store.schema_version() == 1
        assert store.authorize("r1", "secret-token").eagerness == 0.4
        assert [(m.seq, m.content) for m in store.messages("r1")] == [(1, "bot?"), (2, "yes")]
        assert store.decision(1) == (True, 0.8, 2, "")
        assert store.settings("r1") == ({"mode": "quiet"}, "Ana", 1003.0)
        assert store.add_message("r1", "Ana", "user", "bot?", client_id="c1")[1] is False
        assert store.add_message("r1", "Ben", "user", "and now?")[0].seq == 3


def test_processes_opening_a_new_postgres_database_at_once_migrate_it_once(postgres_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    openers = [context.Process(target=open_and_close, args=(postgres_url,)) for _ in range(4)]
    for p in openers:
        p.start()
    for p in openers:
        p.join(120)
    assert [p.exitcode for p in openers] == [0] * 4
    with open_store(postgres_url) as store:
        assert version_rows(store) == [1]


def open_and_close(location: str) -> None:
    open_store(location).close()


def test_unusable_locations_are_one_clear_error_without_the_password(tmp_path: Path) -> None:
    cases = [
        "postgresql://ana:s3cret@127.0.0.1:1/rooms",  # nobody listens on port 1
        "postgres://ana:s3cret@127.0.0.1:notaport/rooms",
        "postgresql://ana@127.0.0.1:1/rooms?password=s3cret&connect_timeout=2",
    ]
    for url in cases:
        for check in (open_store, probe):
            with pytest.raises(StoreError) as e:
                check(url)
            message = str(e.value)
            assert "s3cret" not in message and "***" in message and "\n" not in message, message
            assert message.startswith(url.split("@")[0].replace("s3cret", "***")), message
    (tmp_path / "notes.txt").write_text("not a database" * 100)
    with pytest.raises(StoreError, match="cannot use it as the rooms' database"):
        open_store(tmp_path / "notes.txt")
