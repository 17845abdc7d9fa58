"""`chimein serve` as a user runs it: flags checked before the model loads, and the decision log (one JSON object
per decision, on stderr or in --log-file)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from websockets.sync.client import connect

from chimein.cli import app
from chimein.server.store import open_store
from chimein.server.store.sqlite import MIGRATIONS, SqliteStore
from tests.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)
from tests.server import ServerProcess

pytestmark = pytest.mark.timeout(180)


def serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", "--model", "mention", *args])
    return result.exit_code, result.stderr


def test_bad_port_database_host_and_log_file_are_one_error_line(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database, just text that is long enough to have a header" * 10)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cases = [
            (["--port", "99999"], "--port"),
            (["--port", "-1"], "--port"),
            (["--port", str(taken.getsockname()[1])], "--port"),
            (["--host", "192.0.2.1", "--port", "0"], "--host"),  # an address of no interface here
            (["--db", "/no/such/dir/x.db", "--port", "0"], "--db"),
            (["--db", str(tmp_path), "--port", "0"], "--db"),  # a directory
            (["--db", str(not_a_db), "--port", "0"], "--db"),
            (["--log-file", "/no/such/dir/log.jsonl", "--port", "0"], "--log-file"),
        ]
        for args, flag in cases:
            code, stderr = serve(*args)
            assert code == 2 and stderr.startswith("error: ") and flag in stderr, (args, stderr)
            assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert not (tmp_path / "x.db").exists()


def test_an_unusable_postgresql_url_or_a_newer_schema_is_one_error_line_without_the_password(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    SqliteStore.open(newer, [*MIGRATIONS, ("ALTER TABLE rooms ADD COLUMN topic TEXT",)]).close()
    for db, problem in [
        ("postgresql://ana:s3cret@127.0.0.1:1/rooms", "Connection refused"),  # nobody listens on port 1
        ("postgres://ana:s3cret@127.0.0.1:notaport/rooms", "notaport"),
        (str(newer), "newer than this chimein's"),
    ]:
        code, stderr = serve("--db", db, "--port", "0")
        assert code == 2 and stderr.startswith(f"error: --db {db.replace('s3cret', '***')}: "), stderr
        assert problem in stderr and stderr.count("\n") == 1 and "s3cret" not in stderr, stderr


def room_conversation(server: ServerProcess) -> None:
    """Two messages in a new room (one the assistant answers), then one API request."""
    room = httpx.post(server.url + "/api/rooms").json()
    with connect(server.ws_url) as ws:
        ws.send(json.dumps({"type": "join", "room": room["room"], "token": room["token"], "name": "Ana"}))
        assert json.loads(ws.recv(10))["type"] == "joined"
        for text in ("nice weather today", "bot, what time is it?"):
            ws.send(json.dumps({"type": "say", "text": text}))
        while True:  # until the assistant's reply to the second message
            frame = json.loads(ws.recv(30))
            if frame["type"] == "message" and frame["message"]["role"] == "assistant":
                break
    answer = httpx.post(
        server.url + "/v1/chat/completions",
        timeout=30,
        json={"messages": [{"role": "user", "name": "Ben", "content": "quiet day"}]},
    )
    assert answer.status_code == 200


def decisions(lines: list[str]) -> list[dict]:
    return [entry for entry in map(json.loads, lines) if entry.get("event") == "decision"]


@pytest.mark.server
def test_every_decision_is_one_json_object_in_the_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "decisions.jsonl"
    server = ServerProcess(
        tmp_path / "rooms.db", tmp_path / "out.txt", "mention", None, "--settle", "0", "--log-file", str(log_file)
    )
    with server:
        room_conversation(server)
    lines = log_file.read_text().splitlines()
    assert all(line.startswith("{") for line in lines)  # every line is one JSON object (uvicorn's too)
    found = decisions(lines)
    assert [(d.get("room") is not None, d["speak"]) for d in found] == [(True, False), (True, True), (False, False)]
    assert found[1]["reason"] == "addressed" and found[2]["api"] == "127.0.0.1"
    # a room's decision says how long it waited for the model and how long the model took
    assert all(d["waited_s"] >= 0 and d["model_s"] >= 0 for d in found[:2])
    assert [d["logger"] for d in found] == ["chimein.rooms", "chimein.rooms", "chimein.serve"]  # the rooms', the API's
    assert all(d["level"] == "info" and "time" in d for d in found)
    assert '"event": "decision"' not in (tmp_path / "out.txt").read_text()  # not also on stderr


@pytest.mark.server
def test_without_a_log_file_the_decisions_go_to_stderr(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "rooms.db", tmp_path / "out.txt", "mention", None, "--settle", "0")
    with server:
        room_conversation(server)
    json_lines = [line for line in (tmp_path / "out.txt").read_text().splitlines() if line.startswith("{")]
    assert [d["speak"] for d in decisions(json_lines)] == [False, True, False]


@pytest.mark.server
def test_a_frame_over_32_kib_gets_the_too_large_error_frame(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "rooms.db", tmp_path / "out.txt", "mention", None, "--settle", "0")
    with server:
        room = httpx.post(server.url + "/api/rooms").json()
        with connect(server.ws_url) as ws:
            ws.send(json.dumps({"type": "join", "room": room["room"], "token": room["token"], "name": "Ana"}))
            assert json.loads(ws.recv(10))["type"] == "joined"
            ws.send(json.dumps({"type": "say", "text": "x" * 40_000}))
            error = json.loads(ws.recv(10))
            assert error["type"] == "error" and error["code"] == "too_large"
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(10))["type"] == "pong"  # the connection goes on


@pytest.mark.server
def test_serve_keeps_its_rooms_in_postgresql(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    # The test cluster trusts loopback connections, so the password is ignored: here only to be kept out of the output.
    url = postgres_url.replace("postgres@", "postgres:s3cret@")
    with ServerProcess(url, tmp_path / "out.txt", "mention", None, "--settle", "0") as server:
        room_conversation(server)
        room = httpx.post(server.url + "/api/rooms").json()["room"]
    output = (tmp_path / "out.txt").read_text()
    assert "s3cret" not in output and "postgres:***@" in output
    with open_store(postgres_url) as store:
        assert store.room(room) is not None  # made over HTTP
        rooms = store.query("SELECT id FROM rooms WHERE id <> %s", room)
        messages = store.messages(rooms[0][0])
        assert [(m.seq, m.role, m.content) for m in messages] == [
            (1, "user", "nice weather today"),
            (2, "user", "bot, what time is it?"),
            (3, "assistant", messages[2].content),
        ]
        assert store.decision(messages[0].id)[0] is False and store.decision(messages[1].id)[2] == messages[2].id
