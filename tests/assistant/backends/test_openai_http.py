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


class FakeCompletions:
    """An endpoint's answer: its text and, when given, each token's log-probability."""

    def __init__(self, tokens: list[tuple[str, float]] | None, text: str | None = None):
        self.tokens, self.text = tokens, text

    def create(self, **request):
        from types import SimpleNamespace as NS

        text = self.text if self.text is not None else "".join(t for t, _ in self.tokens or [])
        logprobs = NS(content=[NS(token=t, logprob=lp) for t, lp in self.tokens]) if self.tokens else None
        self.request = request
        return NS(choices=[NS(message=NS(content=text), logprobs=logprobs)])


def fake_replier(completions: FakeCompletions) -> OpenAIReplier:
    from types import SimpleNamespace as NS

    replier = OpenAIReplier("http://127.0.0.1:9/v1", "big")
    replier.client = NS(chat=NS(completions=completions))
    return replier


def test_an_endpoint_reply_gets_the_same_second_look_as_the_local_replier():
    from chimein.assistant.prompts import UNSURE

    asked = [Message("user", "bot, when did the berlin wall come down?", "Ana")]
    sure = FakeCompletions([("It", -0.01), (" came", -0.01), (" down", -0.02), (" in", -0.01), (" 1989", -0.05)])
    assert fake_replier(sure).reply(asked) == "It came down in 1989"
    assert sure.request["logprobs"] is True
    doubtful = FakeCompletions([("It", -0.01), (" came", -0.01), (" down", -0.02), (" in", -0.01), (" 2013", -1.6)])
    assert fake_replier(doubtful).reply(asked) == UNSURE  # e^-1.6 = 0.20 on the year: "not sure"
    volunteered = [Message("user", "the wall came down in 2013 right?", "Ana"), Message("user", "think so", "Ben")]
    assert fake_replier(doubtful).reply(volunteered) == ""  # unasked and doubtful: silence
    # An endpoint without log-probabilities: its reply as written (the second look needs them).
    assert fake_replier(FakeCompletions(None, "It came down in 2013.")).reply(asked) == "It came down in 2013."


def test_a_served_replier_returns_token_probabilities(base_server):
    from chimein.assistant.replier import second_look

    replier = OpenAIReplier(base_server, "smollm2", timeout=60, max_tokens=24, temperature=0.0, seed=0)
    asked = [
        Message("user", "pizza tonight?", "Ana"),
        Message("user", "bot, how many legs does a spider have?", "Ben"),
    ]
    answer = replier.answer(asked)
    assert answer.tokens and all(0.0 < p <= 1.0 for _, p in answer.tokens)
    assert answer.text and answer.text in "".join(t for t, _ in answer.tokens)
    assert replier.reply(asked) == second_look(answer, asked, volunteer=False)  # greedy: the same answer again
