"""The local replier: streaming greedy replies with token probabilities, and the second look before sending."""

import numpy as np
import pytest

from chimein.assistant.prompts import UNSURE, replier_messages, the_question
from chimein.assistant.replier import Answer, LocalReplier, vet
from chimein.data import Message


class ScriptedEngine:
    """An engine over a tiny vocabulary that writes ``script`` (token, probability) by greedy choice."""

    eos_id = 0
    n_ctx = None

    def __init__(self, script):
        self.vocab = ["<eos>"] + [t for t, _ in script] + ["?", "!", "~"]  # the last three: runners-up
        self.script = script
        self.prompts = []

    def new_state(self):
        return {}

    def tokenize(self, text):
        self.prompts.append(text)
        return [len(self.vocab)] * 5  # a prompt: five tokens outside the vocabulary

    def detokenize(self, ids):
        return "".join(self.vocab[i] for i in ids)

    def advance(self, state, ids):
        step = sum(1 for i in ids if i < len(self.vocab))  # tokens written so far
        logits = np.full(len(self.vocab) + 1, -30.0)
        if step < len(self.script):
            p = self.script[step][1]
            logits[step + 1] = np.log(p)
            logits[-4:-1] = np.log((1 - p) / 3)  # the rest, shared by three runners-up
        else:
            logits[0] = 0.0
        return logits, len(ids)


def chat(*lines):
    return [Message("user", text, name) for name, text in lines]


def test_it_streams_the_reply_and_keeps_each_fact_token_probability():
    engine = ScriptedEngine([("It ", 0.5), ("fell ", 0.95), ("in ", 0.99), ("Nov ", 0.9), ("1989", 0.6), (".", 0.97)])
    replier = LocalReplier(engine, render=lambda messages: messages[-1]["content"])
    answer = Answer("")
    pieces = list(replier.stream(chat(("Ana", "bot, when did the berlin wall fall?")), answer=answer))
    assert "".join(pieces) == "It fell in Nov 1989." == answer.text
    assert len(pieces) == 6
    assert answer.fact_probs == pytest.approx([0.9, 0.6], abs=0.01)  # "Nov" and "1989"; "It" is an ordinary opener
    assert answer.confidence == pytest.approx(0.6, abs=0.01)
    assert "berlin wall" in engine.prompts[0]  # the question is restated in the prompt


def test_a_sampled_answer_draws_its_tokens_from_the_model_and_a_greedy_one_never_does():
    engine = ScriptedEngine([("Paris", 0.6)])
    replier = LocalReplier(engine, render=lambda messages: messages[-1]["content"])
    question = chat(("Ana", "bot, what is the capital of France?"))
    assert {replier.answer(question).text for _ in range(5)} == {"Paris"}
    rng = np.random.default_rng(0)
    texts = [replier.answer(question, sample=rng).text for _ in range(200)]
    assert 0.5 < texts.count("Paris") / len(texts) < 0.95  # 0.74 at temperature 0.7
    assert set(texts) - {"Paris"} and set(texts) - {"Paris"} <= {"?", "!", "~", ""}  # the runners-up


def test_reply_sends_a_sure_answer_and_holds_back_a_doubtful_volunteer():
    sure = LocalReplier(ScriptedEngine([("Lima", 0.95), (".", 0.99)]), render=lambda m: m[-1]["content"])
    doubtful = LocalReplier(ScriptedEngine([("Lima", 0.35), (".", 0.99)]), render=lambda m: m[-1]["content"])
    asked = chat(("Ana", "bot, capital of peru?"))
    stuck = chat(("Ana", "capital of peru?"), ("Ben", "no idea, cusco?"))
    assert sure.reply(asked) == "Lima." and sure.reply(stuck) == "Lima."
    assert doubtful.reply(asked) == UNSURE  # asked: an honest "not sure", never the guess
    assert doubtful.reply(stuck) == ""  # nobody asked: silence


def test_drafts_stream_a_sure_answer_and_stop_before_a_doubtful_fact():
    sure = LocalReplier(
        ScriptedEngine([("Lima", 0.95), (" it", 0.9), (" is", 0.99), (".", 0.99)]), render=lambda m: m[-1]["content"]
    )
    drafts = []
    assert sure.reply(chat(("Ana", "bot, capital of peru?")), on_text=drafts.append) == "Lima it is."
    assert drafts == ["Lima", "Lima it", "Lima it is", "Lima it is."]
    doubtful = LocalReplier(
        ScriptedEngine([("It", 0.9), (" is", 0.9), (" 1990", 0.4), (".", 0.99)]), render=lambda m: m[-1]["content"]
    )
    drafts = []
    assert doubtful.reply(chat(("Ana", "bot, when was pluto demoted?")), on_text=drafts.append) == UNSURE
    assert drafts == ["It", "It is"]  # the doubtful year is never shown, even as a draft
    drafts = []
    sure.reply(chat(("Ana", "capital of peru?"), ("Ben", "no idea")), on_text=drafts.append)
    assert drafts == []  # volunteered: nothing is shown before the second look


@pytest.mark.parametrize(
    "text,conf,volunteer,speak,sent",
    [
        ("Lima.", 0.9, False, True, "Lima."),
        ("Lima.", 0.3, False, True, UNSURE),
        ("I'm not sure, maybe Lima.", 0.9, False, True, "I'm not sure, maybe Lima."),
        ("Lima.", 0.9, True, True, "Lima."),
        ("Lima.", 0.6, True, False, ""),
        ("I'm not sure.", 0.99, True, False, ""),
        ("", 0.99, False, False, ""),
    ],
)
def test_vet(text, conf, volunteer, speak, sent):
    verdict = vet(Answer(text, tokens=[("X1", conf)]), volunteer)
    assert (verdict.speak, verdict.text) == (speak, sent) and verdict.reason


def test_the_prompt_restates_the_question_after_the_peoples_messages():
    history = chat(("Ana", "how long do guinea pigs live?"), ("Ben", "2 years on average i think")) + [
        Message("assistant", "About 5 to 7 years.")
    ]
    history += chat(("Caro", "nice"), ("Ana", "what's a group of them called?"), ("Ben", "a herd? not sure"))
    system, user = replier_messages(history)
    assert system["role"] == "system" and "guess" in system["content"]
    assert "Ben: 2 years on average i think" in user["content"]
    assert "About 5 to 7 years" not in user["content"]  # its own earlier reply is not shown: it would be repeated
    assert user["content"].endswith("Question: what's a group of them called?")  # not the guess "a herd?"


@pytest.mark.parametrize(
    "lines,question",
    [
        ([("Ana", "bot, how long is the nozomi from tokyo to kyoto?")], "how long is the nozomi from tokyo to kyoto?"),
        (
            [("Ana", "what temp does chicken need to reach?"), ("Ben", "120F i think"), ("Caro", "assistant?")],
            "what temp does chicken need to reach?",
        ),
        ([("Ana", "how many keys on a piano"), ("Ben", "around 87?")], "how many keys on a piano"),  # "?" or not
        ([("Ana", "pizza tonight"), ("Ben", "around 87?")], "around 87?"),  # no real question before it
        (
            [
                ("Ana", "when do the perseids peak?"),
                ("Ben", "he'll also ask how far andromeda is, bot? he asks every time"),
            ],
            "he'll also ask how far andromeda is, bot? he asks every time",
        ),
        (
            [("Ana", "アシスタント、富士山が見えるのはどっち側の席？")],
            "アシスタント、富士山が見えるのはどっち側の席？",
        ),
        (
            [
                ("Ana", "what temperature does chicken need to reach?"),
                ("Ben", "120F i think"),
                ("Ana", "assistant, is that right?"),
            ],
            "what temperature does chicken need to reach?",
        ),  # a check points at the question, not at "is that right?"
        (
            [("Ana", "how long do guinea pigs live?"), ("Ben", "2 years"), ("Ana", "bot are you sure?")],
            "how long do guinea pigs live?",
        ),
    ],
)
def test_the_question(lines, question):
    assert the_question(chat(*lines)) == question


@pytest.fixture(scope="module")
def real_replier():
    from chimein.models import replier_available

    if not replier_available():
        pytest.skip("the replier extra is not installed (make install installs it)")
    from chimein.assistant import replier

    return replier.load("replier")


@pytest.mark.slow
def test_the_local_replier_answers_a_known_fact_and_streams_it(real_replier):
    answer = Answer("")
    pieces = list(
        real_replier.stream(
            chat(("Ana", "pizza tonight?"), ("Ben", "bot, what is the capital of France?")), answer=answer
        )
    )
    assert len(pieces) > 1 and "".join(pieces).strip() == answer.text  # streamed, piece by piece
    assert "Paris" in answer.text and answer.confidence > 0.5
    assert all(0.0 < p <= 1.0 for _, p in answer.tokens)


@pytest.mark.slow
def test_a_lent_core_is_taken_and_given_back_step_by_step_and_the_answer_is_the_same(real_replier):
    """With ``spare_threads`` (a server lends the decisions' core while they are idle) the replier looks before
    every prompt chunk and every token, runs on the threads it was lent, and writes the same answer."""
    import os

    from chimein.assistant.replier import PREFILL_CHUNK

    question = chat(("Ana", "pizza tonight?"), ("Ben", "bot, what is the capital of France?"))
    real_replier.state = real_replier.engine.new_state()
    plain = real_replier.answer(question)
    looks: list[int] = []

    def spare() -> int:
        looks.append(real_replier.engine.llm.n_threads)
        return 1 if len(looks) % 2 else 0  # lent, taken back, lent, ...

    real_replier.spare_threads = spare
    try:
        real_replier.state = real_replier.engine.new_state()
        lent = real_replier.answer(question)
        lent_threads = min(real_replier.threads + 1, os.cpu_count() or 1)
        assert lent.text == plain.text and lent.prompt_tokens == plain.prompt_tokens
        assert len(looks) >= plain.prompt_tokens // PREFILL_CHUNK + len(lent.tokens)
        assert set(looks[1:]) == {real_replier.threads, lent_threads}  # each step ran on what it was given
    finally:
        real_replier.spare_threads = None
        real_replier.engine.set_threads(real_replier.threads)


def test_a_volunteered_reply_must_add_to_the_chat():
    said = "anticlockwise? or clockwise, I always mix it up says Heidi"
    retell = Answer("Heidi always mixes it up.", tokens=[("Heidi", 0.99)])
    fact = Answer("Clockwise closes the valve; anticlockwise opens it.", tokens=[("Clock", 0.95)])
    assert not vet(retell, volunteer=True, context=said).speak
    assert vet(fact, volunteer=True, context=said).speak
    assert vet(retell, volunteer=False, context=said).speak  # asked directly: answered
