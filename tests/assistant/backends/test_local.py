"""LocalBackend, the one decision over any engine, driven by a scripted engine: the threshold, decide-only,
the opening bans, the room cache, p_speak as the two-way softmax."""

import numpy as np
import pytest
import torch

from chimein.assistant.backends.local import LocalBackend, speak_probability
from chimein.data import Message
from chimein.format import ChatFormat
from chimein.markers import common_prefix_len, find_marker_split
from tests.helpers import lisbon_chat as history


class ScriptedEngine:
    """A fake engine with scripted logits, to drive LocalBackend's one decision path deterministically.

    At the decision position the two marker logits give ``p_speak``; after the forced ``(response)`` each
    step's logits come from ``reply`` (one {token: score} per step; the end of turn wins once it runs out).
    """

    n_ctx = None

    def __init__(self, fmt, p_speak, reply=()):
        self.fmt, self.p, self.reply = fmt, p_speak, list(reply)
        self.eos_id = fmt.tokenizer.eos_token_id
        self.split = find_marker_split(fmt)
        self.forced = [self.split.response, *self.split.response_rest]
        self.calls = 0

    def new_state(self):
        return {"ids": [], "step": None}

    def tokenize(self, text):
        return self.fmt.tokenize(text)

    def detokenize(self, ids):
        return self.fmt.tokenizer.decode(ids)

    def advance(self, state, ids):
        self.calls += 1
        processed = len(ids) - min(common_prefix_len(state["ids"], ids), len(ids) - 1)
        logits = np.zeros(len(self.fmt.tokenizer), dtype=np.float32)
        if ids[-len(self.forced) :] == self.forced:
            state["step"] = 0
        elif ids[-len(self.split.shared) :] == self.split.shared:
            state["step"] = None
            logits[self.split.response] = np.log(self.p / (1 - self.p))
        else:
            state["step"] += 1
        if state["step"] is not None:
            logits[self.eos_id] = 1.0
            for token, score in (self.reply[state["step"]] if state["step"] < len(self.reply) else {}).items():
                logits[token] = score
        state["ids"] = list(ids)
        return logits, processed


@pytest.fixture(scope="module")
def chatml(smollm2_tokenizer):
    return ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")


def scripted(fmt, p, reply=(), **kwargs):
    engine = ScriptedEngine(fmt, p, reply)
    return engine, LocalBackend(engine, fmt, threshold=0.5, max_new_tokens=8, **kwargs)


def test_local_backend_speaks_at_the_threshold_and_only_then_generates(chatml):
    hello, there = chatml.tokenize("Hello")[0], chatml.tokenize(" there")[0]
    chat = history(3)
    for p, speaks in ((0.7, True), (0.5, True), (0.3, False)):
        engine, backend = scripted(chatml, p, [{hello: 5.0}, {there: 5.0}])
        d = backend.decide(chat, backend.new_state())
        assert d.p_speak == pytest.approx(p, abs=1e-6) and d.speak is speaks
        if speaks:  # one decision pass, the forced marker, then one pass per generated token
            assert (d.raw, d.text, engine.calls) == ("(response)Hello there", "Hello there", 4)
        else:
            assert (d.raw, d.text, engine.calls) == ("(silence)", "", 1)
    engine, backend = scripted(chatml, 0.3, [{hello: 5.0}])
    asked = chat + [Message("user", "bot, how long is the flight to lisbon?", "Ana")]
    assert backend.decide(asked).text == "Hello"  # a direct question is answered below the threshold
    backend.answer_direct_questions = False
    assert not backend.decide(asked).speak


def test_local_backend_decide_only_returns_the_decision_without_a_reply(chatml):
    engine, backend = scripted(chatml, 0.9, [{chatml.tokenize("Hello")[0]: 5.0}], decide_only=True)
    d = backend.decide(history(3))
    assert d.speak and d.text == "" and d.p_speak == pytest.approx(0.9) and engine.calls == 1
    engine.p = 0.1
    assert not backend.decide(history(3)).speak


def test_a_backend_that_only_decides_skips_the_model_where_the_rules_decide(chatml):
    """A server with a replier needs only the decision: where the rules make it whatever p_speak is (a question to
    the assistant, a message to someone else), the model does not run. An evaluation (the default) still gets
    every p_speak."""
    engine, backend = scripted(chatml, 0.1, decide_only=True)
    asked = history(3) + [Message("user", "bot, how long is the flight to lisbon?", "Ana")]
    to_ben = history(3) + [Message("user", "Ben, can you book the hotel?", "Ana")]
    d = backend.decide(asked, backend.new_state())
    assert d.speak and d.p_speak == pytest.approx(0.1) and engine.calls == 1  # the default: the model runs
    backend.rules_skip_model = True
    d = backend.decide(asked, backend.new_state())
    assert d.speak and d.p_speak is None and d.note.endswith("decided without the model") and engine.calls == 1
    d = backend.decide(to_ben, backend.new_state())
    assert not d.speak and d.p_speak is None and engine.calls == 1
    d = backend.decide(history(4), backend.new_state())  # p_speak decides: the model runs
    assert not d.speak and d.p_speak == pytest.approx(0.1) and engine.calls == 2
    backend.decide_only = False  # a reply to write: the model runs
    assert backend.decide(asked, backend.new_state()).p_speak == pytest.approx(0.1) and engine.calls > 2


def test_local_backend_bans_an_empty_reply_or_another_marker_as_the_opening(chatml):
    hello = chatml.tokenize("Hello")[0]
    engine, backend = scripted(chatml, 0.9)
    ban = backend.split.reply_bans[0]
    assert engine.eos_id in backend.opening_bans and set(backend.split.reply_bans) <= backend.opening_bans
    # the end of turn scores best, a marker's opening next: both ruled out for the first token only
    engine.reply = [{engine.eos_id: 10.0, ban: 9.0, hello: 5.0}, {engine.eos_id: 10.0, hello: 5.0}]
    d = backend.decide(history(3))
    assert d.speak and d.raw == "(response)Hello"


def test_local_backend_room_cache_runs_only_the_new_tokens(chatml):
    engine, backend = scripted(chatml, 0.1)
    room, msgs = backend.new_state(), history(6)
    costs = [backend.decide(msgs[: i + 1], room).tokens_processed for i in range(6)]
    assert max(costs[1:]) < 30 < backend.decide(msgs, backend.new_state()).tokens_processed


def test_p_speak_is_the_softmax_of_the_two_marker_logits():
    for r, s in ((2.0, -1.0), (-30.0, 5.0), (800.0, 0.0), (0.0, 800.0)):
        soft = torch.softmax(torch.tensor([r, s], dtype=torch.float64), dim=0)[0].item()
        assert speak_probability(r, s) == pytest.approx(soft, abs=1e-12)
