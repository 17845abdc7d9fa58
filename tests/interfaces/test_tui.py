"""`chimein chat`: the terminal chat loop through scripted input."""

import io

from rich.console import Console

from chimein.assistant.core import Assistant, Decision
from chimein.interfaces.tui import run_chat
from tests.helpers import ScriptedBackend


def test_chat_loop_through_scripted_input():
    backend = ScriptedBackend([Decision(False, p_speak=0.1), Decision(True, "Seventeen.", 0.9)])
    bot = Assistant(backend)
    lines = iter(["Ana: pizza tonight?", "/as Ben", "bot, haiku?", "/history", "/eagerness 0.2", "/quit"])
    console = Console(file=io.StringIO(), width=100)
    run_chat(bot, console, read=lambda prompt: next(lines))
    out = console.file.getvalue()
    assert "(silent p=0.10)" in out and "assistant: Seventeen." in out
    assert bot.history[1].name == "Ben" and bot.threshold == 0.2
