"""`chimein serve`: rooms, history, auth, limits, persistence, the assistant's worker, the OpenAI-compatible API.

In-process tests use FastAPI's TestClient (its event loop runs in a background thread, so room workers run
while a test waits); the OpenAI-client tests run a real `chimein serve` process on a free port.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from chimein.data import Message
from chimein.server.limits import Limits, TokenBucket
from chimein.server.rooms import seed_order, validate_name
from chimein.server.store import open_store
from chimein.server.openai_api import chat_messages, parse_request

from tests.helpers import ScriptedBackend

from . import ServerProcess, make_client, new_room, join, receive, say, closed_with, rows, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "rooms.db"


@pytest.fixture
def client(db: Path):
    with make_client(db) as c:
        yield c


# -- rooms and history ------------------------------------------------------------------------------------


def test_two_people_see_each_other_and_joining_shows_history(client: TestClient) -> None:
    room, token = new_room(client)
    with client.websocket_connect("/ws") as ana:
        joined = join(ana, room, token, "Ana")
        assert joined["history"] == [] and joined["assistant"]["supports_eagerness"] is False
        first = say(ana, "hello, anyone here?")
        assert (first["seq"], first["name"], first["role"], first["content"]) == (
            1,
            "Ana",
            "user",
            "hello, anyone here?",
        )
        with client.websocket_connect("/ws") as ben:
            assert [m["content"] for m in join(ben, room, token, "Ben")["history"]] == ["hello, anyone here?"]
            say(ben, "hi Ana")
            live = receive(ana, "message")["message"]
            assert (live["name"], live["content"], live["seq"]) == ("Ben", "hi Ana", 2)


def test_rooms_are_isolated_and_since_skips_what_a_client_has(client: TestClient) -> None:
    (a, ta), (b, tb) = new_room(client), new_room(client)
    assert a != b and ta != tb and len(ta) >= 32
    with client.websocket_connect("/ws") as ws:
        join(ws, a, ta, "Ana")
        for text in ("one", "two", "three"):
            say(ws, text)
    with client.websocket_connect("/ws") as ws:
        assert join(ws, b, tb, "Ben")["history"] == []
    with client.websocket_connect("/ws") as ws:
        assert [m["content"] for m in join(ws, a, ta, "Ana", since=1)["history"]] == ["two", "three"]


def test_a_room_needs_its_token(client: TestClient) -> None:
    room, token = new_room(client)
    wrong = token[:-1] + ("y" if token.endswith("x") else "x")
    for bad_room, bad_token in ((room, wrong), (room, ""), ("nope", token), (room, None), (room, token + "x")):
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "join", "room": bad_room, "token": bad_token, "name": "Eve"})
            assert ws.receive_json() == {
                "type": "error",
                "code": "unauthorized",
                "message": "unknown room or wrong token",
            }
            assert closed_with(ws) == 4401
    url = f"/api/rooms/{room}/messages"
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": token}):
        r = client.get(url, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.get(url, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == {"room": room, "messages": []}


def test_the_first_frame_must_be_a_join(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "say", "text": "hi"})
        assert ws.receive_json()["code"] == "not_joined"
        assert closed_with(ws) == 4400


def test_the_join_must_come_in_time(db: Path) -> None:
    with make_client(db, limits=Limits(join_timeout_s=0.3)) as client:
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_json()["code"] == "join_timeout"
            assert closed_with(ws) == 4408


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "x" * 33,
        "a\x00b",
        "tab\there",
        "line\u2028break",
        "rtl\u202eoverride",
        "Assistant",
        "bot",
        "AI",
        "chimein",
        "the assistant",
        "assistant.",
        "assistant (real)",
        "[Bot]",
        42,
        None,
    ],
)
def test_bad_names_are_refused(client: TestClient, name: Any) -> None:
    room, token = new_room(client)
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "join", "room": room, "token": token, "name": name})
        assert ws.receive_json()["code"] == "bad_name"
        assert closed_with(ws) == 4400


def test_good_names_are_trimmed() -> None:
    assert validate_name("  Ana Maria  ") == "Ana Maria"
    assert [validate_name(n) for n in ("Robot Ron", "Ai Weiwei", "Sam (bot fan)")] == [
        "Robot Ron",
        "Ai Weiwei",
        "Sam (bot fan)",
    ]
    assert validate_name("x" * 32) == "x" * 32
    assert validate_name("Zoë 👩‍💻") == "Zoë 👩‍💻"


def test_bad_messages_get_clear_errors_and_the_connection_stays(db: Path) -> None:
    with make_client(db, limits=Limits(max_message_chars=50, max_frame_bytes=1000, burst=50)) as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ws:
            join(ws, room, token, "Ana")
            cases = [
                ({"type": "say", "text": "x" * 51, "client_id": "c1"}, "too_long"),
                ({"type": "say", "text": "  \n "}, "empty"),
                ({"type": "say", "text": "bell\x07"}, "bad_text"),
                *(({"type": "say", "text": f"see gnp{c}.exe"}, "bad_text") for c in "\u202a\u202e\u2066\u2069"),
                ({"type": "say", "text": ["not", "text"]}, "bad_request"),
                ({"type": "say", "text": "ok", "client_id": "has space"}, "bad_request"),
                ({"type": "dance"}, "unknown_type"),
                ({"type": "eagerness", "value": 0.5}, "not_supported"),
                ({"type": "say", "text": "y" * 2000}, "too_large"),
            ]
            for frame, code in cases:
                ws.send_json(frame)
                error = receive(ws, "error")
                assert error["code"] == code and error["message"], error
            ws.send_json({"type": "say", "text": "x" * 51, "client_id": "c1"})
            assert receive(ws, "error")["client_id"] == "c1"  # the client knows which message failed
            ws.send_text("not json")
            assert receive(ws, "error")["code"] == "bad_json"
            ws.send_bytes(b"{}")
            assert receive(ws, "error")["code"] == "bad_frame"
            assert say(ws, "x" * 50)["seq"] == 1  # still connected; nothing bad was stored
        assert rows(db, "SELECT COUNT(*) FROM messages") == [(1,)]


def test_rate_limit_per_connection(db: Path) -> None:
    with make_client(db, limits=Limits(burst=3, per_second=0.01, max_strikes=3)) as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ws:
            join(ws, room, token, "Ana")
            for i in range(3):
                say(ws, f"message {i}")
            ws.send_json({"type": "say", "text": "one too many", "client_id": "late"})
            error = receive(ws, "error")
            assert error["code"] == "rate_limited" and error["client_id"] == "late" and error["retry_after"] > 0
            with client.websocket_connect("/ws") as other:  # the limit is per connection
                join(other, room, token, "Ben")
                say(other, "I can still talk")
            ws.send_json({"type": "ping"})
            assert receive(ws, "error")["code"] == "rate_limited"
            ws.send_json({"type": "ping"})
            assert receive(ws, "error")["code"] == "rate_limited"
            assert closed_with(ws) == 4429  # kept flooding
        assert [r[0] for r in rows(db, "SELECT content FROM messages ORDER BY seq")] == [
            "message 0",
            "message 1",
            "message 2",
            "I can still talk",
        ]


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(2, 1.0, clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0, 0] and bucket.take() == pytest.approx(1.0)
    now[0] = 1.0
    assert bucket.take() == 0 and bucket.take() > 0


def test_a_resent_message_is_stored_once(client: TestClient, db: Path) -> None:
    room, token = new_room(client)
    with client.websocket_connect("/ws") as ws:
        join(ws, room, token, "Ana")
        first = say(ws, "hello", client_id="abc-1")
    with client.websocket_connect("/ws") as ws:  # reconnected: resends what it had not seen acknowledged
        join(ws, room, token, "Ana", since=1)
        again = say(ws, "hello", client_id="abc-1")
        assert again == first
        assert say(ws, "next", client_id="abc-2")["seq"] == 2
    assert rows(db, "SELECT seq, content, client_id FROM messages") == [(1, "hello", "abc-1"), (2, "next", "abc-2")]


def test_pages_and_errors_are_plain(client: TestClient) -> None:
    for path in ("/", "/r/someroom"):
        r = client.get(path)
        assert r.status_code == 200 and 'id="messages"' in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "innerHTML" not in client.get("/static/app.js").text
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/api/rooms/x/messages", params={"after": "many"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_room_creation_is_rate_limited(db: Path) -> None:
    with make_client(db, limits=Limits(rooms_burst=2, rooms_per_second=0.001)) as client:
        assert [client.post("/api/rooms").status_code for _ in range(3)] == [201, 201, 429]


# -- the assistant in a room ------------------------------------------------------------------------------


def test_the_assistant_is_silent_in_chitchat_and_answers_when_named(client: TestClient, db: Path) -> None:
    room, token = new_room(client)
    with client.websocket_connect("/ws") as ws:
        join(ws, room, token, "Ana")
        say(ws, "pizza or sushi tonight?")
        say(ws, "sushi obviously")
        asked = say(ws, "bot, are you there?")
        reply = receive(ws, "message")["message"]  # had it answered the chit-chat, that reply would come first
        assert (reply["role"], reply["name"], reply["reply_to"], reply["seq"]) == (
            "assistant",
            "assistant",
            asked["id"],
            4,
        )
        assert reply["content"]
    decided = rows(
        db,
        "SELECT m.content, d.speak, d.reply_id FROM decisions d JOIN messages m ON m.id = d.message_id ORDER BY m.seq",
    )
    assert decided == [
        ("pizza or sushi tonight?", 0, None),
        ("sushi obviously", 0, None),
        ("bot, are you there?", 1, reply["id"]),
    ]


def test_decisions_run_on_one_model_thread_and_a_message_during_a_reply_is_heard(db: Path) -> None:
    gate = threading.Event()
    backend = ScriptedBackend(gate=gate)
    with make_client(db, backend, limits=Limits(typing_after_s=0.05)) as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ana, client.websocket_connect("/ws") as ben:
            join(ana, room, token, "Ana")
            join(ben, room, token, "Ben")
            say(ana, "bot, what is 2+2?")
            receive(ben, "message")
            assert receive(ana, "typing")["typing"] is True  # it is taking long: it is writing
            say(ben, "while it thinks: I'm here too")  # stored and shown at once; the model is still busy
            assert receive(ana, "message")["message"]["content"] == "while it thinks: I'm here too"
            gate.set()
            frames = [ana.receive_json(), ana.receive_json()]
            assert frames[0] == {"type": "typing", "name": "assistant", "typing": False}
            assert frames[1]["message"]["content"] == "reply to bot, what is 2+2?"
            wait_until(lambda: len(backend.calls) == 2)
    first, second = backend.calls
    assert second[0] == ["bot, what is 2+2?", "reply to bot, what is 2+2?", "while it thinks: I'm here too"]
    assert first[1] == second[1] and first[1].startswith("chimein-model")


def test_rooms_share_one_backend_and_one_thread(db: Path) -> None:
    backend = ScriptedBackend()
    with make_client(db, backend) as client:
        rooms = [new_room(client) for _ in range(3)]
        for room, token in rooms:
            with client.websocket_connect("/ws") as ws:
                join(ws, room, token, "Ana")
                say(ws, "bot, hello")
                assert receive(ws, "message")["message"]["role"] == "assistant"
        assert len({thread for _, thread, _ in backend.calls}) == 1 and len(backend.calls) == 3
        assert all(contents == ["bot, hello"] for contents, _, _ in backend.calls)  # one history per room


def test_eagerness_is_per_room_shared_live_and_kept(db: Path) -> None:
    backend = ScriptedBackend()
    with make_client(db, backend, model_name="scripted") as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ana, client.websocket_connect("/ws") as ben:
            info = join(ana, room, token, "Ana")["assistant"]
            assert {k: info[k] for k in ("name", "model", "supports_eagerness", "eagerness", "default_eagerness")} == {
                "name": "assistant",
                "model": "scripted",
                "supports_eagerness": True,
                "eagerness": 0.5,
                "default_eagerness": 0.5,
            }
            assert info["policy"]["mode"] == "auto" and info["settings"].startswith("mode auto")
            join(ben, room, token, "Ben")
            for bad in (1.5, -0.1, "high", True):
                ana.send_json({"type": "eagerness", "value": bad})
                assert receive(ana, "error")["code"] == "bad_value"
            ana.send_json({"type": "eagerness", "value": 0.05})
            settings = receive(ben, "settings")
            assert settings["by"] == "Ana" and settings["assistant"]["eagerness"] == 0.05
            say(ben, "anything at all")  # p = 0.1 >= 0.05: it speaks now
            assert receive(ben, "message")["message"]["role"] == "assistant"
    with make_client(db, backend) as client:  # a restart keeps the room's setting
        with client.websocket_connect("/ws") as ws:
            assert join(ws, room, token, "Ana")["assistant"]["eagerness"] == 0.05
            assert backend.calls[-1][2] == 0.05
            ws.send_json({"type": "eagerness", "value": None})  # back to the server's default
            assert receive(ws, "settings")["assistant"]["eagerness"] == 0.5
            say(ws, "quiet again")
            wait_until(lambda: len(backend.calls) == 2)
    assert backend.calls[-1][2] is None  # None: the backend's own threshold


def test_history_survives_a_restart(db: Path) -> None:
    with make_client(db) as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ws:
            join(ws, room, token, "Ana")
            say(ws, "remember me")
            say(ws, "hey bot, still there?")
            receive(ws, "message")
    with make_client(db) as client:
        with client.websocket_connect("/ws") as ws:
            history = join(ws, room, token, "Ben")["history"]
            assert [(m["seq"], m["name"], m["content"]) for m in history] == [
                (1, "Ana", "remember me"),
                (2, "Ana", "hey bot, still there?"),
                (3, "assistant", history[2]["content"]),
            ]
            assert say(ws, "and after the restart")["seq"] == 4
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]


def test_a_restart_never_answers_twice_and_decides_what_it_missed(db: Path, tmp_path: Path) -> None:
    store = open_store(db)
    room = store.create_room()
    answered, _ = store.add_message(room.id, "Ana", "user", "bot, answered before the crash?")
    store.record_decision(answered.id, True, None, "", ("assistant", "yes"))
    missed, _ = store.add_message(room.id, "Ana", "user", "bot, did you hear this one?")  # stored, then a crash
    old, _ = store.add_message(room.id, "Ben", "user", "bot, old news", sent_at=time.time() - 3600)
    store.close()
    # `old` is too stale to answer, so it is skipped; `missed` comes after it, which does not happen in practice,
    # but it shows the rule is per message.
    backend = ScriptedBackend()
    for _ in range(2):
        with make_client(db, backend) as client:
            with client.websocket_connect("/ws") as ws:
                join(ws, room.id, room.token, "Ana")
                wait_until(lambda: rows(db, "SELECT COUNT(*) FROM decisions")[0][0] == 3)
    assert [c[0][-1] for c in backend.calls] == ["bot, did you hear this one?"]  # decided once, over two restarts
    replies = rows(db, "SELECT reply_to, content FROM messages WHERE role = 'assistant' ORDER BY seq")
    assert replies == [(answered.id, "yes"), (missed.id, "reply to bot, did you hear this one?")]
    assert rows(db, "SELECT note FROM decisions WHERE message_id = ?", old.id) == [
        ("skipped: too old when the room woke up",)
    ]


def test_seed_order_puts_each_reply_after_its_message(db: Path) -> None:
    store = open_store(db)
    room = store.create_room()
    a, _ = store.add_message(room.id, "Ana", "user", "bot, one?")
    b, _ = store.add_message(room.id, "Ben", "user", "meanwhile")
    store.record_decision(a.id, True, None, "", ("assistant", "one!"))
    assert [m.content for m in seed_order(store.messages(room.id))] == ["bot, one?", "one!", "meanwhile"]


# -- the OpenAI-compatible API ----------------------------------------------------------------------------


def test_chat_messages_names_and_roles() -> None:
    msgs = chat_messages(
        parse_request(
            {
                "messages": [
                    {"role": "system", "content": "be nice"},
                    {"role": "assistant", "content": "a leading assistant turn is dropped"},
                    {"role": "user", "name": "Ana", "content": "pizza?"},
                    {"role": "user", "content": "Ben Li: sushi!"},
                    {"role": "assistant", "content": "Sushi it is."},
                    {"role": "user", "content": [{"type": "text", "text": "see http://x.y: no name here"}]},
                    {"role": "assistant", "content": "trailing turns after the last user message are dropped"},
                ]
            }
        )
    )
    assert msgs == [
        Message("user", "pizza?", "Ana"),
        Message("user", "sushi!", "Ben Li"),
        Message("assistant", "Sushi it is."),
        Message("user", "see http://x.y: no name here", "user"),
    ]
    for bad in (
        None,
        [],
        [{"role": "assistant", "content": "hi"}],
        ["x"],
        [{"role": "robot", "content": "hi"}],
        [{"role": "user", "content": 5}],
        [{"role": "user", "name": 7, "content": "hi"}],
        [{"role": "user", "name": "x" * 200, "content": "hi"}],
        [{"role": "user", "content": "x" * 2001}],
    ):
        with pytest.raises(ValueError):
            chat_messages(parse_request({"messages": bad}))


def test_chat_completions_in_process(client: TestClient) -> None:
    silent = client.post(
        "/v1/chat/completions",
        json={"model": "mention", "messages": [{"role": "user", "name": "Ana", "content": "pizza or sushi?"}]},
    ).json()
    assert silent["object"] == "chat.completion" and silent["id"].startswith("chatcmpl-")
    assert silent["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert silent["chimein"] == {"speak": False, "p_speak": None}
    spoken = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Ana: bot, hi"}]}
    ).json()
    assert spoken["choices"][0]["message"]["content"] and spoken["chimein"]["speak"] is True
    for body, code in (
        ({"messages": []}, "invalid_request"),
        ([1, 2], "invalid_request"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "invalid_request"),
        ({"messages": [{"role": "user", "name": 7, "content": "hi"}]}, "invalid_request"),
        ({"messages": [{"role": "system", "content": "hi"}]}, "invalid_messages"),
    ):
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == code
    r = client.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("serve")
    with ServerProcess(tmp / "rooms.db", tmp / "server.log", "mention") as proc:
        yield proc


@pytest.mark.server
def test_openai_client_against_a_running_server(server: ServerProcess) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    assert [m.id for m in client.models.list()] == ["mention"]
    chat = [
        {"role": "user", "name": "Ana", "content": "pizza or sushi tonight?"},
        {"role": "user", "name": "Ben", "content": "sushi obviously"},
    ]
    silent = client.chat.completions.create(model="mention", messages=chat)
    assert silent.choices[0].message.content == "" and silent.choices[0].finish_reason == "stop"
    assert silent.model_extra["chimein"] == {"speak": False, "p_speak": None}
    spoken = client.chat.completions.create(
        model="mention", messages=chat + [{"role": "user", "content": "Ana: bot, settle it"}]
    )
    assert spoken.choices[0].message.content and spoken.model_extra["chimein"]["speak"] is True


@pytest.mark.server
def test_openai_client_streaming(server: ServerProcess) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    chunks = list(
        client.chat.completions.create(
            model="mention",
            stream=True,
            messages=[{"role": "user", "name": "Ana", "content": "hey bot, tell me something"}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text and chunks[-1].choices[0].finish_reason == "stop"
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[-1].model_extra["chimein"]["speak"] is True
    silent = list(
        client.chat.completions.create(
            model="mention", stream=True, messages=[{"role": "user", "name": "Ana", "content": "nice weather"}]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in silent) == ""
    assert silent[-1].choices[0].finish_reason == "stop" and silent[-1].model_extra["chimein"]["speak"] is False
    raw = httpx.post(
        server.url + "/v1/chat/completions",
        timeout=30,
        json={"stream": True, "messages": [{"role": "user", "name": "Ana", "content": "quiet"}]},
    )
    assert raw.headers["content-type"].startswith("text/event-stream") and raw.text.endswith("data: [DONE]\n\n")


def test_serve_rejects_a_bad_eagerness() -> None:
    from chimein.cli import app

    result = CliRunner().invoke(app, ["serve", "--model", "mention", "--eagerness", "2"])
    assert result.exit_code == 2


def test_a_reply_streams_into_the_room_as_drafts_and_the_deciding_model_writes_none(tmp_path: Path) -> None:
    class StreamingReplier:
        def reply(self, messages: list, on_text: Any = None) -> str:
            for draft in ("Li", "Lima"):
                if on_text is not None:
                    on_text(draft)
            return "Lima."

    backend = ScriptedBackend()
    with make_client(tmp_path / "rooms.db", backend, replier=StreamingReplier()) as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ws:
            join(ws, room, token, "Ana")
            asked = say(ws, "bot, capital of peru?")
            frames = []
            while not (frames and frames[-1]["type"] == "message" and frames[-1]["message"]["role"] == "assistant"):
                frames.append(ws.receive_json())
    drafts = [f for f in frames if f["type"] == "draft"]
    assert [d["text"] for d in drafts] == ["Li", "Lima"]
    assert all(d["reply_to"] == asked["id"] for d in drafts)
    assert frames[-1]["message"]["content"] == "Lima."  # the stored reply follows its drafts
    assert backend.calls and backend.wrote == []  # the deciding model only decided: the replier wrote the reply
