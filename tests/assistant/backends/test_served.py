"""Decisions on a serving engine: the requests built for vLLM, p_speak from top logprobs, and the shipped adapter on a
real llama.cpp server agreeing with the in-process llama.cpp decision."""

import math

import pytest

from chimein.assistant import get_backend
from chimein.assistant.backends.served import ServedBackend, ServedFormatError, p_speak_from_logprobs
from chimein.data import Message
from chimein.format import ChatFormat, to_chat_turns
from chimein.markers import find_marker_split
from tests.helpers import decision_server

UNUSED_URL = "http://127.0.0.1:9/v1"  # no request is sent in the tests that build requests only


@pytest.fixture(scope="module")
def fmt(smollm2_tokenizer):
    return ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")


def chat(*turns):
    return [Message("assistant", t) if n == "assistant" else Message("user", t, n) for n, t in turns]


def test_request_arguments_for_vllm(fmt):
    """vLLM with --lora-modules default=...: the model is the module's name, logprobs within --max-logprobs' default,
    token ids as logprob keys, no BOS added to the rendered prompt; the prompt is the in-process decision's tokens."""
    backend = ServedBackend(UNUSED_URL, fmt, model="default")
    msgs = chat(("Ana", "pizza tonight?"), ("assistant", "(silence)"), ("Ben", "bot, what's 7*8?"))
    prompt = backend.prompt(msgs, backend.new_state())
    assert prompt == fmt.render(to_chat_turns(msgs, open_end=True), add_generation_prompt=True)

    args = backend.decision_args(prompt)
    split = find_marker_split(fmt)
    assert fmt.tokenize(args["prompt"]) == fmt.prompt_ids(to_chat_turns(msgs, open_end=True)) + split.shared
    assert args["prompt"].endswith("<|im_start|>assistant\n(")
    assert args["model"] == "default" and args["max_tokens"] == 1 and args["temperature"] == 0.0
    assert 2 <= args["logprobs"] <= 20
    assert args["extra_body"] == {"return_tokens_as_token_ids": True, "add_special_tokens": False}
    assert (
        f"token_id:{split.response}" in backend.response_keys and f"token_id:{split.silence}" in backend.silence_keys
    )

    opening = backend.opening_args(prompt)
    assert opening["prompt"] == prompt + "(response)" and opening["max_tokens"] == 1
    banned = {int(k) for k, v in opening["logit_bias"].items() if v == -100.0}
    assert fmt.tokenizer.convert_tokens_to_ids("<|im_end|>") in banned and set(split.reply_bans) <= banned


def test_p_speak_from_top_logprobs():
    r, s = ("token_id:7", "response"), ("token_id:3", "sil")
    vllm = {"token_id:3": math.log(0.7), "token_id:7": math.log(0.2), "token_id:9": math.log(0.1)}
    assert p_speak_from_logprobs(vllm, r, s) == pytest.approx(0.2 / 0.9)
    llama_cpp = {"sil": math.log(0.7), "response": math.log(0.2), "ok": math.log(0.1)}
    assert p_speak_from_logprobs(llama_cpp, r, s) == pytest.approx(0.2 / 0.9)
    # (response) not listed: it had at most the unlisted mass (0.01), which bounds p_speak from above
    assert p_speak_from_logprobs({"sil": math.log(0.95), "x": math.log(0.04)}, r, s) == pytest.approx(0.01 / 0.96)
    # ... and at most the smallest listed one when the list covers nearly everything
    assert p_speak_from_logprobs({"sil": math.log(0.99), "x": math.log(0.01 - 1e-9)}, r, s) < 0.0101
    with pytest.raises(ServedFormatError, match="neither marker"):
        p_speak_from_logprobs({"hello": -0.1}, r, s)
    with pytest.raises(ServedFormatError, match="no logprobs"):
        p_speak_from_logprobs({}, r, s)


def test_served_models_by_name(fmt):
    backend = get_backend("served:default", base_url=UNUSED_URL, threshold=None)
    assert isinstance(backend, ServedBackend) and backend.supports_probability and backend.answer_direct_questions
    assert backend.threshold == pytest.approx(0.7)  # the shipped adapter's own eagerness default, as in-process
    assert get_backend("served:default", base_url=UNUSED_URL, threshold=0.3).threshold == 0.3
    with pytest.raises(ValueError, match="needs --base-url"):
        get_backend("served:default")
    with pytest.raises(ValueError, match="--style"):
        get_backend("served:default", base_url=UNUSED_URL, style="baseline")


# -- against a real llama.cpp server running the shipped adapter -------------------------------------------------

TURNS = [
    chat(("Ana", "pizza or sushi tonight?")),
    chat(("Ana", "pizza or sushi tonight?"), ("Ben", "sushi obviously, the place on 5th")),
    chat(
        ("Ana", "pizza or sushi tonight?"),
        ("Ben", "sushi obviously"),
        ("Ana", "bot, how many syllables does a haiku have?"),
    ),
    chat(("Ben", "what's the deepest point of the ocean called?"), ("Ana", "no clue tbh")),
    chat(("Ana", "lol the bot was so slow yesterday")),
    chat(("Cleo", "assistant, what's the capital of australia?")),
    chat(("Ana", "is the train at 9 or 10?"), ("Ben", "Ana, are you coming too?")),
]


@pytest.fixture(scope="module")
def served_url(tmp_path_factory):
    with decision_server(tmp_path_factory.mktemp("served")) as url:
        yield url


@pytest.mark.slow
@pytest.mark.server
def test_served_p_speak_agrees_with_in_process(served_url):
    from chimein.assistant.backends import llamacpp

    served = get_backend("served:default", base_url=served_url, threshold=None)
    local = llamacpp.load("default")
    never = 1.1  # a threshold above 1: p_speak only, no reply
    pairs = [
        (served.decide(msgs, threshold=never).p_speak, local.decide(msgs, threshold=never).p_speak) for msgs in TURNS
    ]
    for (p_served, p_local), msgs in zip(pairs, TURNS):
        assert p_served == pytest.approx(p_local, abs=0.005), msgs[
            -1
        ].content  # logprobs are exact on llama.cpp's server
    # the same decision at the shared eagerness default, with the same rules
    for msgs in TURNS:
        assert served.decide(msgs).speak == local.decide(msgs).speak, msgs[-1].content
    spread = [p for p, _ in pairs]
    assert max(spread) - min(spread) > 0.1  # the turns span a range of p_speak, so agreeing is not trivial


@pytest.mark.slow
@pytest.mark.server
def test_a_served_room_stays_silent_on_chit_chat_and_answers_a_question(served_url):
    from chimein.assistant import Assistant

    bot = Assistant(get_backend("served:default", base_url=served_url, threshold=None))
    assert not bot.hear("Ana", "pizza or sushi tonight?").speak
    assert not bot.hear("Ben", "sushi obviously, the place on 5th").speak
    d = bot.hear("Ana", "bot, how many syllables does a haiku have?")
    assert d.speak and d.text.strip() and d.p_speak is not None
    assert "(response)" not in d.text and "(silence)" not in d.text and "<|im_end|>" not in d.text


@pytest.mark.slow
@pytest.mark.server
def test_served_room_controls(served_url):
    """Eagerness, the rules and decide_only work on the served p_speak as in-process."""
    backend = get_backend("served:default", base_url=served_url, threshold=None)
    backend.decide_only = True
    chit_chat = chat(("Ana", "pizza or sushi tonight?"))
    for_ben = chat(("Ana", "is the train at 9 or 10?"), ("Ben", "hm"), ("Ana", "Ben, are you coming too?"))
    assert backend.decide(chit_chat, threshold=0.0).speak  # the eagerness slider all the way down
    d = backend.decide(chit_chat, threshold=0.0)
    assert d.text == "" and d.raw == "(response)"  # decide_only: no reply asked for
    assert not backend.decide(for_ben, threshold=0.0).speak  # rule 2: someone else's question
    question = chat(("Ana", "bot, what's 7*8?"))
    assert backend.decide(question, threshold=0.99).speak  # rule 1: a direct question is answered
    backend.answer_direct_questions = False
    p = backend.decide(question, threshold=1.1).p_speak
    assert backend.decide(question, threshold=min(1.0, p + 0.05)).speak is False
