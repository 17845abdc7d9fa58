"""`chimein chat`: a group chat in the terminal. Type as several people; the assistant chimes in or not.

Ana: pizza or sushi tonight?          a message from Ana
/as Ben                               later plain lines are Ben's
/history  /reset  /eagerness 0.3  /help  /quit
"""

from __future__ import annotations

import re
from typing import Callable

from rich.console import Console

from chimein.assistant.core import Assistant

HELP = """[bold]Type[/bold] "Name: message" to speak as Name, or just a message to speak as the current speaker.
[bold]/as NAME[/bold]        switch the current speaker
[bold]/history[/bold]        show the conversation so far
[bold]/reset[/bold]          start a new conversation
[bold]/eagerness [P][/bold]  show or set the speaking threshold (0-1: lower speaks more; probability backends)
[bold]/quit[/bold]           leave"""

# A name is one to three words before the first colon ("Ana:", "Mary Jane:"), not a clause ("note: ...").
LINE = re.compile(r"^\s*([\w.'-]+(?: [\w.'-]+){0,2}):\s+(.+)$")


def split_line(line: str, current: str) -> tuple[str, str]:
    """``"Ana: hi"`` -> ("Ana", "hi"); a line without a ``Name:`` prefix is the current speaker's."""
    m = LINE.match(line)
    if m and m.group(1)[0].isupper():
        return m.group(1), m.group(2).strip()
    return current, line.strip()


def run_chat(
    assistant: Assistant,
    console: Console | None = None,
    read: Callable[[str], str] = input,
    speaker: str = "You",
    assistant_name: str = "assistant",
) -> None:
    console = console or Console()
    console.print(
        f"[dim]Group chat with the {assistant_name}. /help for commands. Speaking as [bold]{speaker}[/bold].[/dim]"
    )
    while True:
        try:
            line = read(f"{speaker}> ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not line.strip():
            continue
        if line.startswith("/"):
            cmd, _, arg = line[1:].strip().partition(" ")
            if cmd in ("quit", "exit", "q"):
                return
            if cmd == "help":
                console.print(HELP)
            elif cmd == "as" and arg.strip():
                speaker = arg.strip()
                console.print(f"[dim]now speaking as [bold]{speaker}[/bold][/dim]")
            elif cmd == "history":
                for m in assistant.history:
                    who = (
                        f"[bold cyan]{assistant_name}[/bold cyan]"
                        if m.role == "assistant"
                        else f"[bold]{m.name}[/bold]"
                    )
                    console.print(f"{who}: {m.content}", highlight=False)
            elif cmd == "reset":
                assistant.reset()
                console.print("[dim]conversation reset[/dim]")
            elif cmd == "eagerness":
                _eagerness(assistant, arg.strip(), console)
            else:
                console.print(f"[red]unknown command /{cmd}[/red] (/help)")
            continue
        name, text = split_line(line, speaker)
        with console.status("[dim]...[/dim]", spinner="dots"):
            decision = assistant.hear(name, text)
        p = "" if decision.p_speak is None else f" p={decision.p_speak:.2f}"
        if decision.speak:
            console.print(f"[bold cyan]{assistant_name}[/bold cyan]: {decision.text}", highlight=False)
        else:
            console.print(f"[dim]  (silent{p})[/dim]")
        if decision.note:
            console.print(f"[yellow]{decision.note}[/yellow]")


def _eagerness(assistant: Assistant, arg: str, console: Console) -> None:
    if not assistant.decider.supports_probability:
        console.print("[yellow]this backend gives no speaking probability, so eagerness does not apply[/yellow]")
        return
    current = assistant.threshold if assistant.threshold is not None else assistant.decider.threshold
    if not arg:
        console.print(f"eagerness threshold: {current:.2f} (speak when p_speak >= threshold; lower = chattier)")
        return
    try:
        value = float(arg)
        if not 0.0 <= value <= 1.0:
            raise ValueError
    except ValueError:
        console.print("[red]eagerness takes a number between 0 and 1[/red]")
        return
    assistant.threshold = value
    console.print(f"eagerness threshold set to {value:.2f}")
