import io
import json

import numpy as np
import pytest
import torch

from chimein.assistant.backends import hf
from chimein.assistant.backends.local import LocalBackend, speak_probability
from chimein.assistant.backends.hf import PREFILL_CHUNK
from chimein.markers import common_prefix_len, find_marker_split
from chimein.assistant.window import fit_window
from chimein.assistant.backends.rules import MentionBackend, SilentBackend
from chimein.assistant.decoding import next_reply_token
from chimein.assistant.core import Assistant, Decision, TwoStage, parse_reply, should_speak
from chimein.data import Message
from chimein.format import ChatFormat
from chimein.interfaces.decider import JsonLinesDecider


@pytest.mark.parametrize("raw,expected", [
    ("(silence)<|im_end|>", (False, "")),
    ("", (False, "")),
    ("   (silence) extra", (False, "")),
    ("(response) Seventeen.<|im_end|>\n<|im_start|>user", (True, "Seventeen.")),
    ("(response)", (False, "")),
    ("Seventeen syllables.", (True, "Seventeen syllables.")),  # ignored the format but chose to talk
    ("(response) Paris.\nBen: thanks", (True, "Paris.")),  # cut where it starts writing a user turn
    # a replier that echoes the "Name: text" format keeps its reply (issue 19: these came back empty)
    ("Ana: Peru, the capital of Peru is Lima.", (True, "Peru, the capital of Peru is Lima.")),
    ("Pesquel: Peru, capital of Peru.\nBen: ...", (True, "Peru, capital of Peru.")),
    ("assistant: Lima.", (True, "Lima.")),
    ("Note: port 8080 is the default.", (True, "Note: port 8080 is the default.")),  # a label, not a speaker
    # a reply never carries a marker, and one that is only a marker or punctuation is silence
    ("\"(response)", (False, "")),
    ("(response) \"(response) Madrid.", (True, "Madrid.")),
    ("(response) (silence)", (False, "")),
    ("(response) ...", (False, "")),
    ("Silence:", (False, "")),
    ("( SILENCE )", (False, "")),
    ("Silence is golden, they say.", (True, "Silence is golden, they say.")),
])
def test_parse_reply_rules(raw, expected):
    assert parse_reply(raw, ("<|im_end|>",)) == expected


def test_parse_reply_caps_length():
    speak, text = parse_reply("(response) " + "This is a sentence. " * 100)
    assert speak and len(text) <= 600 and text.endswith(".")


@pytest.fixture(scope="module")
def backend(tiny_model, smollm2_tokenizer):
    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    return hf.backend(tiny_model, smollm2_tokenizer, fmt, threshold=0.5, max_new_tokens=8)


def history(n: int) -> list[Message]:
    names = ["Ana", "Ben", "Caro"]
    return [Message("user", f"message number {i} about the trip to lisbon", names[i % 3]) for i in range(n)]


def test_a_reply_may_not_open_with_another_marker(backend, smollm2_tokenizer):
    split = backend.split
    opened = smollm2_tokenizer.encode("x" + "(response)")
    for sep in (" ", "\n"):  # with no separator ")(" is one token: the model, past ")", cannot write it
        ids = smollm2_tokenizer.encode("x" + "(response)" + sep + "(silence)")
        assert ids[len(opened)] in split.reply_bans
    assert smollm2_tokenizer.encode("x(response) The")[len(opened)] not in split.reply_bans


def test_marker_split_is_found_from_the_tokenizer(backend, smollm2_tokenizer):
    split = find_marker_split(backend.fmt)
    assert split.silence != split.response
    silence = smollm2_tokenizer.decode(split.shared + [split.silence])
    assert len(silence) > 1 and "(silence)".startswith(silence)  # parts from (response) inside the word, after "("
    assert smollm2_tokenizer.decode(split.shared + [split.response] + split.response_rest) == "(response)"


def test_cached_p_speak_equals_a_fresh_full_forward(backend):
    msgs = history(12)
    state = backend.new_state()
    cached = [backend.decide(msgs[: i + 1], state, threshold=1.1).p_speak for i in range(len(msgs))]
    fresh = [backend.decide(msgs[: i + 1], backend.new_state(), threshold=1.1).p_speak for i in range(len(msgs))]
    assert cached == pytest.approx(fresh, abs=1e-5)


def test_a_long_prompt_runs_in_chunks_and_equals_one_full_forward(backend):
    state = backend.new_state()
    d = backend.decide(history(40), state, threshold=1.1)
    assert len(state.kv.ids) > 2 * PREFILL_CHUNK  # the first decision ran several chunks
    with torch.inference_mode():
        logits = backend.engine.model(input_ids=torch.tensor([state.kv.ids])).logits[0, -1]
    pair = torch.stack([logits[backend.split.response], logits[backend.split.silence]]).float()
    assert d.p_speak == pytest.approx(float(torch.softmax(pair, dim=0)[0]), abs=1e-5)


def test_cache_makes_each_message_cost_only_its_own_tokens(backend):
    msgs = history(10)
    state = backend.new_state()
    costs = [backend.decide(msgs[: i + 1], state, threshold=1.1).tokens_processed for i in range(len(msgs))]
    full = backend.decide(msgs, backend.new_state(), threshold=1.1).tokens_processed
    assert costs[-1] < 40 < full  # a new message plus the silence turn, not the whole history


def test_speaking_generates_and_the_reply_joins_the_cache(backend):
    msgs = history(3)
    state = backend.new_state()
    d = backend.decide(msgs, state, threshold=0.0)  # threshold 0: always speak
    # the random tiny model writes punctuation, which parse_reply reads as silence: speak iff a reply is left
    assert d.raw.startswith("(response)") and d.p_speak is not None and d.speak == bool(d.text)
    follow = msgs + [Message("assistant", d.text or "ok"), Message("user", "and then?", "Ana")]
    d2 = backend.decide(follow, state, threshold=1.1)
    assert not d2.speak and d2.tokens_processed < 40


def test_a_direct_question_is_answered_below_the_threshold(backend):
    asked = history(3) + [Message("user", "bot, how long is the flight to lisbon?", "Ana")]
    told = history(3) + [Message("user", "bot, sit this one out", "Ana")]
    # threshold 1.0: p_speak (a two-way softmax) never reaches it, only the rule can make it speak
    d = backend.decide(asked, backend.new_state(), threshold=1.0)
    assert d.raw.startswith("(response)") and d.p_speak < 1.0  # it went on to write a reply
    assert not backend.decide(told, backend.new_state(), threshold=1.0).raw.startswith("(response)")
    backend.answer_direct_questions = False
    try:
        assert not backend.decide(asked, backend.new_state(), threshold=1.0).raw.startswith("(response)")
    finally:
        backend.answer_direct_questions = True


def test_should_speak_rules():
    def chat(*lines):
        return [Message("user", text, name) for name, text in lines]

    assert should_speak(0.7, 0.5, chat(("Ana", "sushi obviously"))) and not should_speak(0.3, 0.5, chat(("Ana", "sushi obviously")))
    assert should_speak(0.1, 0.5, chat(("Ana", "bot, what time is it?")))
    assert not should_speak(0.1, 0.5, chat(("Ana", "bot, what time is it?")), answer_direct_questions=False)
    assert not should_speak(0.99, 2.0, chat(("Ana", "bot, what time is it?")))  # above 1: p_speak only, never speaks


def test_a_line_addressed_to_someone_else_is_never_an_interjection():
    irc = [Message("user", "anyone tried btrfs raid1?", "kira"), Message("user", "kira: is btrfs stable yet?", "zx_81")]
    assert not should_speak(0.95, 0.5, irc)
    assert not should_speak(0.95, 0.5, [Message("user", "@maria can you check the deploy?", "Li")])
    assert not should_speak(0.95, 0.5, [Message("user", "hi", "Ben"), Message("user", "you coming tonight, Ben?", "Ana")])
    # the same question to the room is the model's to decide
    assert should_speak(0.95, 0.5, [irc[0], Message("user", "is btrfs stable yet?", "zx_81")])
    # a speaker's own name at the start is not an address, and unknown words before a colon are not names
    assert should_speak(0.95, 0.5, [Message("user", "error: no such file", "kira")])


def test_reply_decoding_step():
    logits = np.array([0.0, 3.0, 2.0, 1.0])  # token 1 is the stop token and the model's favourite
    assert next_reply_token(logits, []) == 1
    assert next_reply_token(logits, [], banned={1}) == 2  # right after (response): never empty
    assert next_reply_token(np.array([0.0, 0.0, 2.0, 1.8]), [2]) == 3  # 2.0 / 1.3 < 1.8: repetition penalty


def test_rooms_do_not_mix(backend):
    a, b = history(6), [Message("user", f"totally different {i}", "Zoe") for i in range(6)]
    sa, sb = backend.new_state(), backend.new_state()
    interleaved = []
    for i in range(6):
        interleaved.append(backend.decide(a[: i + 1], sa, threshold=1.1).p_speak)
        backend.decide(b[: i + 1], sb, threshold=1.1)
    alone = [backend.decide(a[: i + 1], st, threshold=1.1).p_speak for st in [backend.new_state()] for i in range(6)]
    assert interleaved == pytest.approx(alone, abs=1e-5)


def test_long_conversation_overflows_by_dropping_the_oldest_turns(tiny_model, smollm2_tokenizer):
    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    small = hf.backend(tiny_model, smollm2_tokenizer, fmt, max_context_tokens=300)
    msgs = history(80)
    state = small.new_state()
    for i in range(len(msgs)):
        d = small.decide(msgs[: i + 1], state, threshold=1.1)
        assert d.p_speak is not None
        assert len(state.kv.ids) <= 300 + 5
    assert state.start > 0  # old messages were dropped
    # the window decision equals a fresh decision on the same window
    fresh = small.decide(msgs[state.start:], small.new_state(), threshold=1.1).p_speak
    assert d.p_speak == pytest.approx(fresh, abs=1e-5)


def test_naive_generate_mode_runs(tiny_model, smollm2_tokenizer):
    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    naive = hf.backend(tiny_model, smollm2_tokenizer, fmt, mode="generate", max_new_tokens=4)
    d = naive.decide(history(3), naive.new_state())
    assert d.p_speak is None and d.tokens_processed > 20


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
        if ids[-len(self.forced):] == self.forced:
            state["step"] = 0
        elif ids[-len(self.split.shared):] == self.split.shared:
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


class ScriptedBackend:
    """A test double: returns queued decisions."""

    supports_probability = True
    threshold = 0.5
    answer_direct_questions = False
    decide_only = False

    def __init__(self, decisions):
        self.decisions = list(decisions)
        self.seen = []

    def new_state(self):
        return {}

    def decide(self, messages, state, threshold=None):
        self.seen.append((list(messages), threshold))
        return self.decisions.pop(0)


def test_assistant_keeps_history_in_the_trained_format():
    backend = ScriptedBackend([Decision(False), Decision(True, "Seventeen.", 0.9)])
    bot = Assistant(backend, threshold=0.3)
    assert not bot.hear("Ana", "pizza?").speak
    d = bot.hear("Ben", "bot, haiku syllables?")
    assert d.speak and d.text == "Seventeen."
    assert [m.role for m in bot.history] == ["user", "user", "assistant"]
    assert backend.seen[-1][1] == 0.3


class FailingReplier:
    def reply(self, messages):
        raise TimeoutError("replier down")


class GoodReplier:
    def __init__(self):
        self.calls = 0

    def reply(self, messages):
        self.calls += 1
        return "A better answer."


def test_two_stage_uses_the_replier_only_when_speaking_and_falls_back():
    replier = GoodReplier()
    bot = Assistant(ScriptedBackend([Decision(False), Decision(True, "local", 0.9)]), replier=replier)
    bot.hear("Ana", "hi")
    assert replier.calls == 0
    assert bot.hear("Ana", "bot?").text == "A better answer." and replier.calls == 1
    local = TwoStage(ScriptedBackend([Decision(True, "local", 0.9)]), FailingReplier(), on_failure="local")
    d = local.decide([Message("user", "bot?", "Ana")], {})
    assert d.speak and d.text == "local" and "replier failed" in d.note
    silent = TwoStage(ScriptedBackend([Decision(True, "local", 0.9)]), FailingReplier(), on_failure="silent")
    assert not silent.decide([Message("user", "bot?", "Ana")], {}).speak


def test_rule_baselines():
    msgs = [Message("user", "bot, what's the capital of peru?", "Ana")]
    assert MentionBackend().decide(msgs).speak
    assert not MentionBackend().decide([Message("user", "pizza?", "Ana")]).speak
    assert not SilentBackend().decide(msgs).speak


def test_json_lines_decider_answers_each_line_and_reports_bad_ones(backend):
    conv = [{"role": "user", "name": "Ana", "content": "hello all"}]
    longer = conv + [{"role": "user", "name": "Ben", "content": "hi ana"}]
    inp = io.StringIO("\n".join([json.dumps({"messages": conv}), "{broken", json.dumps({"messages": [{"role": "user", "content": "x"}]}),
                                 json.dumps({"messages": longer})]) + "\n")
    out = io.StringIO()
    decider = JsonLinesDecider(backend, threshold=1.1)
    decider.run(inp, out)
    lines = [json.loads(l) for l in out.getvalue().splitlines()]
    assert len(lines) == 4
    assert lines[0]["speak"] is False and 0 <= lines[0]["p_speak"] <= 1
    assert "line 2: json" in lines[1]["error"]
    assert "line 3: messages[0].name" in lines[2]["error"]
    assert len(decider.sessions) == 1  # the growing conversation reused the first request's session


def test_chat_loop_through_scripted_input():
    from rich.console import Console

    from chimein.interfaces.tui import run_chat

    backend = ScriptedBackend([Decision(False, p_speak=0.1), Decision(True, "Seventeen.", 0.9)])
    bot = Assistant(backend)
    lines = iter(["Ana: pizza tonight?", "/as Ben", "bot, haiku?", "/history", "/eagerness 0.2", "/quit"])
    console = Console(file=io.StringIO(), width=100)
    run_chat(bot, console, read=lambda prompt: next(lines))
    out = console.file.getvalue()
    assert "(silent p=0.10)" in out and "assistant: Seventeen." in out
    assert bot.history[1].name == "Ben" and bot.threshold == 0.2


def test_the_overflow_policy_rebuilds_rarely():
    """Each overflow drops the oldest turns down to 3/4 of the budget, so rebuilds are rare."""
    msgs = history(200)
    tokens = lambda ms: [0] * (10 * len(ms))  # noqa: E731 - ten tokens per message
    start, rebuilds = 0, 0
    for i in range(len(msgs)):
        new_start, ids = fit_window(msgs[: i + 1], start, tokens, budget=400)
        rebuilds += new_start != start
        start = new_start
        assert len(ids) <= 400
    assert start > 0
    assert rebuilds <= 200 // 9  # one per ~10 messages (a quarter of the budget), never one per message


@pytest.mark.slow
def test_the_naive_loop_of_the_real_default_stops_at_the_end_of_its_turn():
    """The seed's loop (generate the whole assistant turn) must stop after "(silence)", not run to the limit."""
    naive = hf.load("default", mode="generate", max_new_tokens=40)
    d = naive.decide(history(4), naive.new_state())
    generated = naive.engine.tokenizer(d.raw.split(naive.fmt.end_of_turn)[0], add_special_tokens=False)["input_ids"]
    assert d.raw.startswith("(silence)") and not d.speak
    assert len(generated) < 10
