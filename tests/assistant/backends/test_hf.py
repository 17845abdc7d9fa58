"""The transformers engine under LocalBackend, on a tiny random Llama with SmolLM2's vocabulary: the cache,
chunked prefill, rooms, the context window, and the seed's naive generate loop."""

import pytest
import torch

from chimein.assistant.backends import hf
from chimein.assistant.backends.hf import PREFILL_CHUNK
from chimein.data import Message
from chimein.format import ChatFormat
from chimein.markers import find_marker_split
from tests.helpers import lisbon_chat as history


def test_a_reply_may_not_open_with_another_marker(tiny_backend, smollm2_tokenizer):
    split = tiny_backend.split
    opened = smollm2_tokenizer.encode("x" + "(response)")
    for sep in (" ", "\n"):  # with no separator ")(" is one token: the model, past ")", cannot write it
        ids = smollm2_tokenizer.encode("x" + "(response)" + sep + "(silence)")
        assert ids[len(opened)] in split.reply_bans
    assert smollm2_tokenizer.encode("x(response) The")[len(opened)] not in split.reply_bans


def test_marker_split_is_found_from_the_tokenizer(tiny_backend, smollm2_tokenizer):
    split = find_marker_split(tiny_backend.fmt)
    assert split.silence != split.response
    silence = smollm2_tokenizer.decode(split.shared + [split.silence])
    assert len(silence) > 1 and "(silence)".startswith(silence)  # parts from (response) inside the word, after "("
    assert smollm2_tokenizer.decode(split.shared + [split.response] + split.response_rest) == "(response)"


def test_cached_p_speak_equals_a_fresh_full_forward(tiny_backend):
    msgs = history(12)
    state = tiny_backend.new_state()
    cached = [tiny_backend.decide(msgs[: i + 1], state, threshold=1.1).p_speak for i in range(len(msgs))]
    fresh = [
        tiny_backend.decide(msgs[: i + 1], tiny_backend.new_state(), threshold=1.1).p_speak for i in range(len(msgs))
    ]
    assert cached == pytest.approx(fresh, abs=1e-5)


def test_a_long_prompt_runs_in_chunks_and_equals_one_full_forward(tiny_backend):
    state = tiny_backend.new_state()
    d = tiny_backend.decide(history(40), state, threshold=1.1)
    assert len(state.kv.ids) > 2 * PREFILL_CHUNK  # the first decision ran several chunks
    with torch.inference_mode():
        logits = tiny_backend.engine.model(input_ids=torch.tensor([state.kv.ids])).logits[0, -1]
    pair = torch.stack([logits[tiny_backend.split.response], logits[tiny_backend.split.silence]]).float()
    assert d.p_speak == pytest.approx(float(torch.softmax(pair, dim=0)[0]), abs=1e-5)


def test_cache_makes_each_message_cost_only_its_own_tokens(tiny_backend):
    msgs = history(10)
    state = tiny_backend.new_state()
    costs = [tiny_backend.decide(msgs[: i + 1], state, threshold=1.1).tokens_processed for i in range(len(msgs))]
    full = tiny_backend.decide(msgs, tiny_backend.new_state(), threshold=1.1).tokens_processed
    assert costs[-1] < 40 < full  # a new message plus the silence turn, not the whole history


def test_speaking_generates_and_the_reply_joins_the_cache(tiny_backend):
    msgs = history(3)
    state = tiny_backend.new_state()
    d = tiny_backend.decide(msgs, state, threshold=0.0)  # threshold 0: always speak
    # the random tiny model writes punctuation, which parse_reply reads as silence: speak iff a reply is left
    assert d.raw.startswith("(response)") and d.p_speak is not None and d.speak == bool(d.text)
    follow = msgs + [Message("assistant", d.text or "ok"), Message("user", "and then?", "Ana")]
    d2 = tiny_backend.decide(follow, state, threshold=1.1)
    assert not d2.speak and d2.tokens_processed < 40


def test_a_direct_question_is_answered_below_the_threshold(tiny_backend):
    asked = history(3) + [Message("user", "bot, how long is the flight to lisbon?", "Ana")]
    told = history(3) + [Message("user", "bot, sit this one out", "Ana")]
    # threshold 1.0: p_speak (a two-way softmax) never reaches it, only the rule can make it speak
    d = tiny_backend.decide(asked, tiny_backend.new_state(), threshold=1.0)
    assert d.raw.startswith("(response)") and d.p_speak < 1.0  # it went on to write a reply
    assert not tiny_backend.decide(told, tiny_backend.new_state(), threshold=1.0).raw.startswith("(response)")
    tiny_backend.answer_direct_questions = False
    try:
        assert not tiny_backend.decide(asked, tiny_backend.new_state(), threshold=1.0).raw.startswith("(response)")
    finally:
        tiny_backend.answer_direct_questions = True


def test_rooms_do_not_mix(tiny_backend):
    a, b = history(6), [Message("user", f"totally different {i}", "Zoe") for i in range(6)]
    sa, sb = tiny_backend.new_state(), tiny_backend.new_state()
    interleaved = []
    for i in range(6):
        interleaved.append(tiny_backend.decide(a[: i + 1], sa, threshold=1.1).p_speak)
        tiny_backend.decide(b[: i + 1], sb, threshold=1.1)
    alone = [
        tiny_backend.decide(a[: i + 1], st, threshold=1.1).p_speak
        for st in [tiny_backend.new_state()]
        for i in range(6)
    ]
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
    fresh = small.decide(msgs[state.start :], small.new_state(), threshold=1.1).p_speak
    assert d.p_speak == pytest.approx(fresh, abs=1e-5)


def test_naive_generate_mode_runs(tiny_model, smollm2_tokenizer):
    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    naive = hf.backend(tiny_model, smollm2_tokenizer, fmt, mode="generate", max_new_tokens=4)
    d = naive.decide(history(3), naive.new_state())
    assert d.p_speak is None and d.tokens_processed > 20


@pytest.mark.slow
def test_the_naive_loop_of_the_real_default_stops_at_the_end_of_its_turn():
    """The seed's loop (generate the whole assistant turn) must stop after "(silence)", not run to the limit."""
    naive = hf.load("default", mode="generate", max_new_tokens=40)
    d = naive.decide(history(4), naive.new_state())
    generated = naive.engine.tokenizer(d.raw.split(naive.fmt.end_of_turn)[0], add_special_tokens=False)["input_ids"]
    assert d.raw.startswith("(silence)") and not d.speak
    assert len(generated) < 10
