"""Rule baselines every evaluation is compared with: never speak, and speak iff the assistant is named."""

from __future__ import annotations

from chimein.assistant.core import Decision
from chimein.data import Message
from chimein.mentions import DEFAULT_ASSISTANT_NAMES, mentions_assistant

CANNED_REPLY = "I'm here: what do you need?"


class SilentBackend:
    """Never speaks. Its accuracy looks high (silence dominates); its balanced accuracy is 0.5."""

    supports_probability = False
    threshold = None
    answer_direct_questions = False
    decide_only = False  # nothing is generated anyway

    def new_state(self) -> None:
        return None

    def decide(self, messages: list[Message], state: None = None, threshold: float | None = None) -> Decision:
        return Decision(False, "", None, "")


class MentionBackend:
    """Speaks if and only if the last message names the assistant: what most chat bots ship with."""

    supports_probability = False
    threshold = None
    answer_direct_questions = False
    decide_only = False  # nothing is generated anyway

    def __init__(self, names: tuple[str, ...] = DEFAULT_ASSISTANT_NAMES):
        self.names = names

    def new_state(self) -> None:
        return None

    def decide(self, messages: list[Message], state: None = None, threshold: float | None = None) -> Decision:
        speak = mentions_assistant(messages[-1].content, self.names)
        return Decision(speak, CANNED_REPLY if speak else "", None, "")
