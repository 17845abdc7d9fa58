"""The OpenAI-compatible backend and the two-stage replier against a real local server (llama.cpp)."""

import pytest

from chimein.assistant.backends.openai_http import OpenAIBackend, OpenAIReplier
from chimein.assistant.backends.rules import MentionBackend
from chimein.assistant.core import Assistant
from chimein.assistant.prompts import REMINDER, baseline_messages
from chimein.data import Message
from tests.helpers import llama_server


def test_baseline_request_shapes():
    msgs = [Message("user", "hi all", "Ana María"), Message("assistant", "hello"), Message("user", "bot?", "Ben")]
    short = baseline_messages(msgs, "short")
    assert short[0]["role"] == "system" and short[1] == {"role": "user", "content": "Ana María: hi all"}
    reminder = baseline_messages(msgs, "reminder", names_in_field=True)
    assert reminder[1] == {"role": "user", "name": "Ana_Mar_a", "content": "hi all"}
    assert reminder[2] == {"role": "system", "content": REMINDER}
    assert [m["role"] for m in reminder] == ["system", "user", "system", "assistant", "user", "system"]


@pytest.fixture(scope="module")
def base_server(tmp_path_factory):
    with llama_server(tmp_path_factory.mktemp("base"), "--n_ctx", "2048") as url:
        yield url


def test_prompted_baseline_against_a_real_server(base_server):
    backend = OpenAIBackend(base_server, "smollm2", style="baseline", variant="reminder", max_tokens=24)
    d = backend.decide(
        [Message("user", "what's the capital of peru?", "Ana"), Message("user", "bot, do you know?", "Ben")]
    )
    assert d.raw and d.tokens_processed > 50
    assert d.speak == (d.text != "")


def test_two_stage_replier_and_its_failure_path(tmp_path):
    """Decide with the mention rule, reply with the served model; then the server dies mid-conversation."""
    ctx = llama_server(tmp_path, "--n_ctx", "2048")
    url = ctx.__enter__()
    try:
        # Greedy, so the reply is repeatable on one machine; the assertions hold for any reply a model writes.
        replier = OpenAIReplier(url, "smollm2", timeout=20, max_tokens=24, temperature=0.0, seed=0)
        bot = Assistant(MentionBackend(), replier=replier)
        assert not bot.hear("Ana", "pizza tonight?").speak
        d = bot.hear("Ben", "bot, what's the capital of peru?")
        assert d.speak and d.text.strip() and d.text != "I'm here: what do you need?" and not d.note
        assert "(response)" not in d.text.lower() and "(silence)" not in d.text.lower()
    finally:
        ctx.__exit__(None, None, None)
    d = bot.hear("Ana", "bot, and of chile?")  # the server is gone
    assert d.speak and d.text == "I'm here: what do you need?" and "replier failed" in d.note
    strict = Assistant(MentionBackend(), replier=OpenAIReplier(url, "smollm2", timeout=5), on_replier_failure="silent")
    assert not strict.hear("Ana", "bot, still there?").speak
