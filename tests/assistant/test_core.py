"""The runtime's core: reading a raw assistant turn, the speaking rule, the Assistant's history, the two-stage
replier."""

import pytest

from chimein.assistant.core import Assistant, Decision, TwoStage, parse_reply, should_speak
from chimein.data import Message
from tests.helpers import ScriptedBackend


@pytest.mark.parametrize(
    "raw,expected",
    [
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
        ('"(response)', (False, "")),
        ('(response) "(response) Madrid.', (True, "Madrid.")),
        ("(response) (silence)", (False, "")),
        ("(response) ...", (False, "")),
        ("Silence:", (False, "")),
        ("( SILENCE )", (False, "")),
        ("Silence is golden, they say.", (True, "Silence is golden, they say.")),
        # a colon in the first words is not a speaker unless it names one (the chat's, the assistant, or one made-up name)
        ("Two options: sushi or pizza.", (True, "Two options: sushi or pizza.")),
        ("https://docs.python.org has it.", (True, "https://docs.python.org has it.")),
        ("At 10:30 on Monday.", (True, "At 10:30 on Monday.")),
        ("Sure!\nStep 1: open the app", (True, "Sure!\nStep 1: open the app")),
        ("Mary Ann: the museum opens at 9.", (True, "the museum opens at 9.")),  # a speaker of the chat
        ("(response) Madrid.\nmary ann: ok", (True, "Madrid.")),
        # a marker or template token inside a reply ends it: none is ever sent
        (
            '(response) In German it is "Hallo", and the phrase is: (silence) 10 min.',
            (True, 'In German it is "Hallo", and the phrase is'),
        ),
        ("3018: (silence)", (True, "3018")),
        ("(response) Lima.<|im_start|>user\nBen: ok", (True, "Lima.")),
        ("(response) Lima. [INST] next", (True, "Lima.")),
        ("(response) (Response) Lima.", (True, "Lima.")),
    ],
)
def test_parse_reply_rules(raw, expected):
    assert parse_reply(raw, ("<|im_end|>",), speakers=["Ana", "Mary Ann"]) == expected


def test_parse_reply_caps_length():
    speak, text = parse_reply("(response) " + "This is a sentence. " * 100)
    assert speak and len(text) <= 600 and text.endswith(".")


def test_should_speak_rules():
    def chat(*lines):
        return [Message("user", text, name) for name, text in lines]

    assert should_speak(0.7, 0.5, chat(("Ana", "sushi obviously"))) and not should_speak(
        0.3, 0.5, chat(("Ana", "sushi obviously"))
    )
    assert should_speak(0.1, 0.5, chat(("Ana", "bot, what time is it?")))
    assert not should_speak(0.1, 0.5, chat(("Ana", "bot, what time is it?")), answer_direct_questions=False)
    assert not should_speak(0.99, 2.0, chat(("Ana", "bot, what time is it?")))  # above 1: p_speak only, never speaks


def test_a_line_addressed_to_someone_else_is_never_an_interjection():
    irc = [
        Message("user", "anyone tried btrfs raid1?", "kira"),
        Message("user", "kira: is btrfs stable yet?", "zx_81"),
    ]
    assert not should_speak(0.95, 0.5, irc)
    assert not should_speak(0.95, 0.5, [Message("user", "@maria can you check the deploy?", "Li")])
    assert not should_speak(
        0.95, 0.5, [Message("user", "hi", "Ben"), Message("user", "you coming tonight, Ben?", "Ana")]
    )
    # the same question to the room is the model's to decide
    assert should_speak(0.95, 0.5, [irc[0], Message("user", "is btrfs stable yet?", "zx_81")])
    # a speaker's own name at the start is not an address, and unknown words before a colon are not names
    assert should_speak(0.95, 0.5, [Message("user", "error: no such file", "kira")])


def test_assistant_keeps_history_in_the_trained_format():
    backend = ScriptedBackend([Decision(False), Decision(True, "Seventeen.", 0.9)])
    bot = Assistant(backend, threshold=0.3)
    assert not bot.hear("Ana", "pizza?").speak
    d = bot.hear("Ben", "bot, haiku syllables?")
    assert d.speak and d.text == "Seventeen."
    assert [m.role for m in bot.history] == ["user", "user", "assistant"]
    assert backend.calls[-1][2] == 0.3


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


class SilentReplier:
    def reply(self, messages):
        return ""


def test_a_replier_with_nothing_it_is_sure_of_keeps_the_assistant_silent():
    """An empty reply is the replier's choice, not a failure: the 135M's own guess is never sent instead."""
    bot = Assistant(ScriptedBackend([Decision(True, "a guess: 2013", 0.9)]), replier=SilentReplier())
    d = bot.hear("Ana", "when did the berlin wall fall")
    assert not d.speak and d.text == "" and "nothing it is sure of" in d.note
    assert bot.history[-1].role == "user"  # nothing joined the history
