"""Room controls in web rooms: in-room commands, settle-time bursts, replies as address, bots, reasons."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from chimein.assistant.policy import BURST_REASON, RoomPolicy

from tests.helpers import OneReplyAtATime, ScriptedBackend

from . import join, make_client, new_room, receive, rows, say, wait_until

pytestmark = pytest.mark.timeout(120)


def assistant_message(ws: Any) -> dict:
    for _ in range(20):
        frame = receive(ws, "message")
        if frame["message"]["role"] == "assistant":
            return frame["message"]
    raise AssertionError("no assistant message")


def test_commands_are_answered_by_the_room_stored_and_never_reach_the_model(tmp_path: Path) -> None:
    db, backend = tmp_path / "rooms.db", ScriptedBackend()
    with make_client(db, backend, model_name="scripted") as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ana, client.websocket_connect("/ws") as ben:
            join(ana, room, token, "Ana")
            join(ben, room, token, "Ben")
            say(ana, "!chimein mode mention-only")
            answer = assistant_message(ana)
            assert answer["content"].startswith("chimein: mode mention-only") and answer["reason"] == "command"
            settings = receive(ben, "settings")
            assert settings["by"] == "Ana" and settings["assistant"]["policy"]["mode"] == "mention-only"
            assert "last changed by Ana" in settings["assistant"]["settings"]
            say(ben, "!chimein cooldown three")
            assert "cooldown looks like 3/10m" in assistant_message(ben)["content"]
            say(ben, "!chimein dance")  # an unknown command: answered, and the connection stays
            assert "unknown command 'dance'" in assistant_message(ben)["content"]
            say(ben, "anything with bot in it")  # p = 0.9 but not addressed: mention-only holds it back
            wait_until(
                lambda: rows(
                    db,
                    "SELECT note FROM decisions d JOIN messages m ON m.id = d.message_id "
                    "WHERE m.content = 'anything with bot in it'",
                )
            )
            say(ben, "!chimein status")
            status = assistant_message(ben)["content"]
            assert (
                "mode mention-only" in status and "last decision: silent on Ben's message: mode mention-only" in status
            )
    assert not any("chimein" in " ".join(contents) for contents, _, _ in backend.calls)  # never shown to the model
    with make_client(db, backend, model_name="scripted") as client:  # kept across a restart
        with client.websocket_connect("/ws") as ws:
            assert join(ws, room, token, "Ana")["assistant"]["policy"]["mode"] == "mention-only"
            say(ws, "assistant, are you there?")
            assert assistant_message(ws)["content"] == "reply to assistant, are you there?"
    assert not any("!chimein" in c for contents, _, _ in backend.calls for c in contents)  # nor after the restart


def test_a_question_then_chatter_is_answered_on_the_question(tmp_path: Path) -> None:
    """A direct question followed at once by "brb", within the settle time: the reply's reply_to is the question,
    not "brb" (the question ends the settle time; the burst rules themselves are the engine's: tests/rooms)."""
    db, backend = tmp_path / "rooms.db", ScriptedBackend()
    question = "assistant, what is the capital of Peru?"
    with make_client(db, backend, model_name="scripted", policy=RoomPolicy(settle_s=0.5)) as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ws:
            join(ws, room, token, "Ana")
            ws.send_json({"type": "say", "text": question})
            ws.send_json({"type": "say", "text": "brb"})
            frames = [receive(ws, "message")["message"] for _ in range(3)]  # the two messages and the reply
            wait_until(lambda: len(rows(db, "SELECT 1 FROM decisions")) == 2)
    asked = next(m for m in frames if m["content"] == question)
    replies = [m for m in frames if m["role"] == "assistant"]
    assert len(replies) == 1 and replies[0]["reply_to"] == asked["id"]
    assert replies[0]["content"] == f"reply to {question}"
    notes = dict(rows(db, "SELECT m.content, d.note FROM decisions d JOIN messages m ON m.id = d.message_id"))
    assert notes[question] == "addressed"
    assert notes["brb"] in (BURST_REASON, "p_speak 0.10 < 0.50")  # heard with the question, or decided after it


def test_a_reply_to_the_assistant_addresses_it(tmp_path: Path) -> None:
    db, backend = tmp_path / "rooms.db", ScriptedBackend()
    with make_client(db, backend, model_name="scripted", policy=RoomPolicy(settle_s=0, mode="mention-only")) as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as ws:
            join(ws, room, token, "Ana")
            say(ws, "assistant, what is 2+2?")
            first = assistant_message(ws)
            ws.send_json({"type": "say", "text": "and times three?", "reply_to": first["id"]})
            assert assistant_message(ws)["reason"] == "reply to assistant"
            say(ws, "and times four?")  # not a reply: mention-only stays silent
            wait_until(lambda: len(rows(db, "SELECT 1 FROM decisions")) == 3)
    assert rows(db, "SELECT note FROM decisions ORDER BY message_id")[-1] == ("mode mention-only: not addressed",)


def test_another_bot_never_triggers_an_interjection_and_an_exchange_stops(tmp_path: Path) -> None:
    db, backend = tmp_path / "rooms.db", ScriptedBackend()
    with make_client(db, backend, model_name="scripted", policy=RoomPolicy(settle_s=0, bot_turns=2)) as client:
        room, token = new_room(client)
        with client.websocket_connect("/ws") as bot:
            bot.send_json({"type": "join", "room": room, "token": token, "name": "OtherBot", "bot": True})
            assert bot.receive_json()["type"] == "joined"
            say(bot, "lots of bot talk here")  # p = 0.9, unprompted: held back because a bot said it
            for i in range(4):
                say(bot, f"assistant, question {i}?")
            wait_until(lambda: len(rows(db, "SELECT 1 FROM decisions")) == 5)
    notes = [n for (n,) in rows(db, "SELECT note FROM decisions ORDER BY message_id")]
    assert notes[0] == "another bot, not addressed"
    assert notes[1:3] == ["addressed", "addressed"] and all(n.startswith("loop guard") for n in notes[3:])


def test_a_slow_replier_holds_only_its_own_room(tmp_path: Path) -> None:
    """The replier (a stronger model over HTTP) writes outside the model thread: while it takes its time on one
    room's answer, another room is decided and answered."""
    release, finished = threading.Event(), threading.Event()

    class SlowReplier:
        model = "slow"

        def reply(self, messages: list) -> str:
            if "long" in messages[-1].content:
                release.wait(10)
                finished.set()
            return f"strong reply to {messages[-1].content}"

    backend = ScriptedBackend()
    with make_client(tmp_path / "rooms.db", backend, model_name="scripted", replier=SlowReplier()) as client:
        (room_a, token_a), (room_b, token_b) = new_room(client), new_room(client)
        with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
            join(a, room_a, token_a, "Ana")
            join(b, room_b, token_b, "Ben")
            say(a, "bot, a long question?")
            wait_until(lambda: len(backend.calls) == 1)  # room A decided; its replier is writing
            say(b, "bot, a quick one?")
            assert assistant_message(b)["content"] == "strong reply to bot, a quick one?"
            assert not finished.is_set()  # room B was answered while room A's replier still waited
            release.set()
            assert assistant_message(a)["content"] == "strong reply to bot, a long question?"


def test_a_question_that_cannot_get_the_replier_in_time_hears_the_assistant_is_busy(tmp_path: Path) -> None:
    """``serve --reply-wait`` (``create_app(reply_wait_s=...)``) reaches every room: while a replier that writes
    one reply at a time is held by one room's question, another room's question is told after that wait that
    the assistant is too busy, instead of waiting for it."""
    from chimein.rooms import BUSY_REPLY

    backend, replier = ScriptedBackend(), OneReplyAtATime()
    with make_client(tmp_path / "rooms.db", backend, replier=replier, reply_wait_s=0.3) as client:
        (room_a, token_a), (room_b, token_b) = new_room(client), new_room(client)
        with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
            join(a, room_a, token_a, "Ana")
            join(b, room_b, token_b, "Ben")
            say(a, "bot, a long question?")
            wait_until(lambda: len(backend.calls) == 1)
            asked = say(b, "bot, a quick one?")
            busy = assistant_message(b)
            assert busy["content"] == BUSY_REPLY and busy["reply_to"] == asked["id"]
            replier.release.set()
            assert assistant_message(a)["content"] == "strong reply to bot, a long question?"
