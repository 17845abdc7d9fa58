import pytest

from chimein.assistant.core import should_speak
from chimein.data import Message
from chimein.stuck import looks_stuck


@pytest.mark.parametrize(
    "texts, stuck",
    [
        (["what's the deepest point of the ocean called?", "bermuda triangle?", "no clue tbh"], True),
        (["wie hoch ist die Zugspitze?", "keine Ahnung"], True),
        (["quanto tempo leva?", "não faço ideia"], True),
        (["what's the deepest point of the ocean called?"], False),  # nobody has tried yet
        (["what's the deepest point?", "challenger deep, mariana trench"], False),  # answered
        (["pizza tonight", "no idea what i want lol"], False),  # no question to be stuck on
    ],
)
def test_looks_stuck(texts, stuck):
    assert looks_stuck(texts) is stuck


def test_a_stuck_moment_lowers_the_threshold_but_the_model_keeps_a_say():
    chat = [Message("user", "what's the capital of australia?", "Ana"), Message("user", "sydney? no idea", "Ben")]
    assert should_speak(0.1, 0.5, chat)  # 0.1 >= the stuck threshold
    assert not should_speak(0.01, 0.5, chat)  # the model is sure it is not its turn
    assert not should_speak(0.1, 0.5, chat, stuck_threshold=None)  # the rule switched off
    asked_only = chat[:1]
    assert not should_speak(0.1, 0.5, asked_only)  # a question alone is the group's to answer
