"""The labelling page of `chimein label --web`: its API in-process, and the keys in a real browser (Playwright,
Debian's Chromium, as tests/server/test_browser.py)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from chimein.data import read_conversations
from chimein.label.session import LabelSession, Proposal
from chimein.server.label_page import create_label_app
from tests.helpers import conv, free_port

HOSTILE = '<img src=x onerror="window.pwned=1">'


def session(tmp_path):
    chats = [
        conv(("Ana", "pizza tonight?"), ("Ben", "bot, how many legs does a spider have?"), ("Cleo", HOSTILE), id="c1")
    ]
    s = LabelSession.open(chats, tmp_path / "out.jsonl.progress.jsonl", {}, threshold=0.5)
    s.add_proposals([Proposal(0, 0, False, 0.05), Proposal(0, 1, True, 0.7, "Six."), Proposal(0, 2, False, 0.45)])
    return s


def test_the_api_labels_the_current_turn_and_writes_the_dataset(tmp_path):
    out = tmp_path / "out.jsonl"
    s = session(tmp_path)
    client = TestClient(create_label_app(s, out))
    state = client.get("/api/turn").json()
    assert state["turn"]["turn"] == 2 and state["turn"]["context"][-1]["content"] == HOSTILE
    assert state["progress"] == {"labelled": 0, "skipped": 0, "turns": 3, "left": 3}
    assert state["written"]["cut_turns"] == 2  # the unconfirmed speak proposal cuts the conversation
    state = client.post("/api/label", json={"conversation": 0, "turn": 2, "action": "accept"}).json()
    state = client.post("/api/label", json={"conversation": 0, "turn": 1, "action": "speak", "text": "Eight."}).json()
    assert state["turn"]["turn"] == 0 and state["written"]["labelled"] == 2
    convs, problems = read_conversations(out)
    assert problems == [] and [m.content for m in convs[0].messages][1:3] == [
        "bot, how many legs does a spider have?",
        "Eight.",
    ]
    state = client.post("/api/undo").json()
    assert state["turn"]["turn"] == 1 and "Eight." not in out.read_text()
    bad = client.post("/api/label", json={"conversation": 0, "turn": 1, "action": "speak", "text": " "})
    assert bad.status_code == 400 and "needs the reply" in bad.json()["error"]["message"]
    assert client.post("/api/label", json={"conversation": 3, "turn": 0, "action": "skip"}).status_code == 400
    wrong = client.post("/api/label", json={"conversation": 0, "turn": 1, "action": "maybe"})
    assert wrong.status_code == 400 and "action" in wrong.json()["error"]["message"]
    assert "content-security-policy" in client.get("/").headers


@pytest.fixture
def page_server(tmp_path):
    """The page on a real port (uvicorn in a thread), over a session with three proposals."""
    import uvicorn

    out = tmp_path / "out.jsonl"
    s = session(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_label_app(s, out), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/turn", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", s, out
    server.should_exit = True
    thread.join(10)


@pytest.mark.server
@pytest.mark.timeout(300)
def test_the_keys_label_turns_in_a_browser(page_server):
    from tests.server.test_browser import CHROMIUM, _playwright

    url, s, out = page_server
    sync_playwright = _playwright()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_selector("#messages .msg.current")
            # least sure first: Cleo's message (p 0.45), shown as text
            assert page.locator("#messages .msg.current .text").text_content() == HOSTILE
            assert page.locator("#messages img").count() == 0 and page.evaluate("window.pwned") is None
            assert page.locator("#proposal .decision").text_content() == "silent"
            page.keyboard.press("n")  # silent proposal -> speak: the reply box opens, empty
            page.wait_for_selector("#reply", state="visible")
            assert page.input_value("#reply") == ""
            page.keyboard.type("That's an image tag, nothing to worry about.")
            page.keyboard.press("Enter")
            page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('1 labelled')")
            assert page.locator("#proposal .draft").text_content() == "Six."  # the next turn: the speak proposal
            page.keyboard.press("e")
            page.wait_for_selector("#reply", state="visible")
            assert page.input_value("#reply") == "Six."  # the draft to edit, without the "e"
            page.fill("#reply", "Eight.")
            page.keyboard.press("Escape")  # cancelled: nothing labelled
            assert page.locator("#reply-form").is_hidden()
            page.keyboard.press("y")  # accept the draft
            page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('2 labelled')")
            page.keyboard.press("u")  # undo it
            page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('1 labelled')")
            page.keyboard.press("s")  # skip it: Ana's turn comes first now
            page.wait_for_function(
                "() => document.querySelector('#messages .msg.current .text').textContent === 'pizza tonight?'"
            )
            page.keyboard.press("y")
            page.wait_for_function(
                "() => document.querySelector('#messages .msg.current .text') && "
                "document.querySelector('#messages .msg.current .text').textContent.startsWith('bot,')"
            )
            page.keyboard.press("n")  # speak proposal -> silence
            page.wait_for_selector("#done", state="visible")
            assert "3 turns labelled" in page.locator("#done-summary").text_content()
            assert errors == []
        finally:
            browser.close()
    assert {k: (l.speak, l.text) for k, l in s.labels.items()} == {
        (0, 2): (True, "That's an image tag, nothing to worry about."),
        (0, 0): (False, ""),
        (0, 1): (False, ""),
    }
    convs, problems = read_conversations(out)
    assert problems == [] and convs[0].messages[-1].content == "That's an image tag, nothing to worry about."
