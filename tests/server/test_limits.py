"""What one client can cost the others: names that pass for someone else, the API's key, types, sizes and
rate, and the model thread that serves rooms and API clients in turn."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from chimein.assistant import get_backend
from chimein.assistant.core import Decision
from chimein.data import Message
from chimein.server import create_app
from chimein.server.limits import Limits
from chimein.rooms.names import looks_alike

from . import ServerProcess

pytestmark = pytest.mark.timeout(300)
KEY_A, KEY_B = "a" * 32, "b" * 32


def app_client(tmp_path: Path, **kwargs: Any) -> TestClient:
    return TestClient(
        create_app(get_backend("mention"), db_path=tmp_path / "rooms.db", model_name="mention", **kwargs)
    )


def join_frame(ws: Any, room: str, token: str, name: str, key: str | None) -> dict:
    ws.send_json({"type": "join", "room": room, "token": token, "name": name, **({"key": key} if key else {})})
    return ws.receive_json()


# -- names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [("аssistant", "assistant"), ("ＡＮＡ", "ana"), ("Ana", "ana"), ("Carο", "Caro")])
def test_look_alike_names(a: str, b: str) -> None:
    assert looks_alike(a, b)


def test_distinct_names_do_not_look_alike() -> None:
    assert not looks_alike("Ana", "Anna") and not looks_alike("Ben", "Ana")


def test_nobody_can_pass_for_the_assistant_or_for_someone_in_the_room(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        first = client.post("/api/rooms").json()
        room, token = first["room"], first["token"]
        with client.websocket_connect("/ws") as ws:
            frame = join_frame(ws, room, token, "\u0430ssistant", KEY_A)  # Cyrillic а
            assert frame["code"] == "bad_name" and "assistant" in frame["message"]
        with client.websocket_connect("/ws") as ana:
            assert join_frame(ana, room, token, "Ana", KEY_A)["type"] == "joined"
            for name, key in (
                ("Ana", KEY_B),
                ("ana", None),
                ("\u0410na", KEY_B),
            ):  # another browser, no key, Cyrillic А
                with client.websocket_connect("/ws") as impostor:
                    frame = join_frame(impostor, room, token, name, key)
                    assert frame["type"] == "error" and frame["code"] == "bad_name", (name, frame)
            with client.websocket_connect("/ws") as same_browser:  # a second tab of Ana's browser
                assert join_frame(same_browser, room, token, "Ana", KEY_A)["type"] == "joined"
        with client.websocket_connect("/ws") as later:  # Ana left: her name stays hers in this room
            assert join_frame(later, room, token, "Ana", KEY_B)["code"] == "bad_name"
        other = client.post("/api/rooms").json()
        with client.websocket_connect("/ws") as elsewhere:
            assert join_frame(elsewhere, other["room"], other["token"], "Ana", KEY_B)["type"] == "joined"


# -- the API ----------------------------------------------------------------------------------------------


def ask(client: TestClient, body: Any, **headers: str) -> httpx.Response:
    return client.post("/v1/chat/completions", json=body, headers=headers)


HELLO = {"messages": [{"role": "user", "name": "Ana", "content": "bot, hello?"}]}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"messages": [{"role": "user", "name": 7, "content": "hi"}]}, "messages.0.name"),
        ({"messages": [{"role": "user", "name": "x" * 200, "content": "hi"}]}, "messages.0.name"),
        ({**HELLO, "stream": "yes"}, "stream"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": "hi"}, "messages"),
    ],
)
def test_wrong_types_are_a_400_naming_the_field(tmp_path: Path, body: Any, field: str) -> None:
    with app_client(tmp_path) as client:
        r = ask(client, body)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith(field), r.text


def test_sizes_are_bounded(tmp_path: Path) -> None:
    with app_client(tmp_path, limits=Limits(max_request_bytes=100_000)) as client:
        huge = ask(client, {"messages": [{"role": "user", "content": "x" * 200_000}]})
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
        long = ask(client, {"messages": [{"role": "user", "content": "x" * 2001}]})
        assert long.status_code == 400 and long.json()["error"]["code"] == "too_long"
        chunked = client.post("/v1/chat/completions", content=iter([b'{"messages": "' + b"x" * 60_000] * 2))
        assert chunked.status_code == 413


def test_requests_per_address_are_rate_limited(tmp_path: Path) -> None:
    with app_client(tmp_path, limits=Limits(api_burst=3, api_per_minute=6)) as client:
        codes = [ask(client, HELLO).status_code for _ in range(5)]
        assert codes[:3] == [200] * 3 and codes[3:] == [429, 429]
        limited = ask(client, HELLO)
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1


def test_the_api_key_when_set(tmp_path: Path) -> None:
    with app_client(tmp_path, api_key="s3cret") as client:
        assert ask(client, HELLO).status_code == 401
        assert ask(client, HELLO, authorization="Bearer nope").status_code == 401
        assert client.get("/v1/models").status_code == 401
        ok = ask(client, HELLO, authorization="Bearer s3cret")
        assert ok.status_code == 200 and ok.json()["chimein"]["speak"] is True
        assert client.post("/api/rooms").status_code == 201  # rooms keep their own tokens


def test_wrong_keys_count_against_the_rate_limit(tmp_path: Path) -> None:
    # one request a minute after the burst, so a slow test machine cannot refill the bucket while it runs
    with app_client(tmp_path, api_key="s3cret", limits=Limits(api_burst=20, api_per_minute=1)) as client:
        codes = [ask(client, HELLO, authorization=f"Bearer guess{i}").status_code for i in range(200)]
        assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
        assert ask(client, HELLO, authorization="Bearer s3cret").status_code == 429  # the right key waits its turn too


def retry_after(response: httpx.Response) -> int:
    """The 429's Retry-After header, checked against the seconds its body gives."""
    assert response.status_code == 429, response.text
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1 and response.json()["error"]["message"].endswith(f"retry in {seconds} s")
    return seconds


def test_every_429_says_when_to_retry_in_its_header_and_body(tmp_path: Path) -> None:
    # 10 requests a minute: one every 6 s (the old body rounded 0.4 s down to "retry in 0 s" against a header of 1)
    with app_client(
        tmp_path, limits=Limits(api_burst=1, api_per_minute=10, rooms_burst=1, rooms_per_second=0.01)
    ) as client:
        assert ask(client, HELLO).status_code == 200
        assert retry_after(ask(client, HELLO)) in (6, 7)
        assert client.post("/api/rooms").status_code == 201
        assert retry_after(client.post("/api/rooms")) in (100, 101)
    with app_client(tmp_path, limits=Limits(api_burst=1, api_per_minute=60 / 0.4)) as client:
        ask(client, HELLO)
        assert retry_after(ask(client, HELLO)) == 1  # 0.4 s: rounded up, in the body too


# -- the model thread -------------------------------------------------------------------------------------


class CostlyBackend:
    """Each decision costs time in proportion to the messages it is given (like reading a prompt)."""

    supports_probability, threshold, answer_direct_questions = True, 0.5, True

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def new_state(self) -> dict:
        return {}

    def decide(self, messages: list[Message], state: Any, threshold: float | None = None) -> Decision:
        self.lengths.append(len(messages))
        time.sleep(min(len(messages), 400) * 0.001)  # a window holds at most ~400 messages
        speak = "bot" in messages[-1].content
        return Decision(speak, "hi" if speak else "", 0.9 if speak else 0.1)


def test_hostile_requests_do_not_hold_a_rooms_answer(tmp_path: Path) -> None:
    """A 1 MB request and 10,000-message histories from one client, while a room asks the assistant."""
    history = {"messages": [{"role": "user", "name": f"u{i % 7}", "content": f"message {i}"} for i in range(10_000)]}
    backend = CostlyBackend()
    with TestClient(create_app(backend, db_path=tmp_path / "rooms.db")) as client:
        made = client.post("/api/rooms").json()
        results: dict[str, Any] = {}

        def flood() -> None:
            results["huge"] = ask(client, {"messages": [{"role": "user", "content": "x" * 1_100_000}]}).status_code
            results["long"] = [ask(client, history).status_code for _ in range(3)]

        attacker = threading.Thread(target=flood)
        attacker.start()
        with client.websocket_connect("/ws") as ws:
            assert join_frame(ws, made["room"], made["token"], "Ana", KEY_A)["type"] == "joined"
            asked = time.monotonic()
            ws.send_json({"type": "say", "text": "bot, are you there?"})
            while (frame := ws.receive_json())["type"] != "message" or frame["message"]["role"] != "assistant":
                pass
            waited = time.monotonic() - asked
        attacker.join(120)
        assert results == {"huge": 413, "long": [200, 200, 200]}
        assert waited < 5, waited
    assert max(backend.lengths) == Limits().api_history_messages  # the model read only the latest messages


@pytest.mark.server
def test_serve_warns_when_open_to_the_network_without_a_key(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "rooms.db", tmp_path / "serve.log", "mention", None, "--host", "0.0.0.0") as server:
        assert httpx.get(server.url + "/healthz").status_code == 200
    assert "without --api-key-env" in (tmp_path / "serve.log").read_text()
