"""The rule baselines: `mention` speaks iff the message names the assistant; `never` never speaks."""

from chimein.assistant.backends.rules import MentionBackend, SilentBackend
from chimein.data import Message


def test_rule_baselines():
    msgs = [Message("user", "bot, what's the capital of peru?", "Ana")]
    assert MentionBackend().decide(msgs).speak
    assert not MentionBackend().decide([Message("user", "pizza?", "Ana")]).speak
    assert not SilentBackend().decide(msgs).speak
