"""`chimein label` in the terminal: one turn at a time, least sure first, one key per decision.

    y  accept the model's proposal        n  the opposite (silence, or speak: then type the reply)
    e  speak with an edited reply         s  skip (it comes back after the rest)
    u  undo the last label or skip        q  quit (everything is saved; run the command again to go on)

The logic is :class:`chimein.label.session.LabelSession`; this module only shows a turn and reads keys.
"""

from __future__ import annotations

from typing import Callable

from rich.console import Console
from rich.markup import escape

from chimein.label.session import LabelSession, Proposal

KEYS = "[bold]y[/bold] accept  [bold]n[/bold] opposite  [bold]e[/bold] edit reply  [bold]s[/bold] skip  [bold]u[/bold] undo  [bold]q[/bold] quit"
CONTEXT_MESSAGES = 6  # earlier messages shown above the turn


def show(console: Console, session: LabelSession, turn: Proposal) -> None:
    done = session.progress()
    console.rule(f"turn {done['labelled'] + 1} of {done['turns']}  ({done['skipped']} skipped)")
    context = session.context(turn)
    for m in context[-CONTEXT_MESSAGES - 1 : -1]:
        console.print(f"[dim]{escape(m.name or 'assistant')}: {escape(m.content)}[/dim]", highlight=False)
    last = context[-1]
    console.print(f"[bold]{escape(last.name or '')}: {escape(last.content)}[/bold]", highlight=False)
    p = "?" if turn.p_speak is None else f"{turn.p_speak:.2f}"
    if turn.speak:
        console.print(f"  model: [green]speak[/green] (p={p}): {escape(turn.draft)}", highlight=False)
    else:
        console.print(
            f"  model: [yellow]silent[/yellow] (p={p})" + (f"; draft: {escape(turn.draft)}" if turn.draft else ""),
            highlight=False,
        )
    console.print(KEYS)


def run_labeller(
    session: LabelSession,
    console: Console,
    read_key: Callable[[], str],
    read_reply: Callable[[str], str],
    on_change: Callable[[], None] = lambda: None,
) -> None:
    """Label until the queue is empty or the person quits. ``read_key`` returns one key; ``read_reply(draft)``
    the reply the person typed (empty: cancelled); ``on_change`` runs after every label, skip or undo."""
    while (turn := session.current()) is not None:
        show(console, session, turn)
        key = read_key().lower()
        if key == "q":
            console.print("[dim]saved; run the same command again to go on[/dim]")
            return
        if key == "y" and not (turn.speak and not turn.draft.strip()):
            session.accept(turn)
        elif key == "n" and turn.speak:
            session.label(turn, False)
        elif key in ("e", "n", "y"):  # speak: with the reply the person writes (the draft to start from)
            reply = read_reply(turn.draft).strip()
            if not reply:
                console.print("[dim]no reply: nothing changed[/dim]")
                continue
            session.label(turn, True, reply)
        elif key == "s":
            session.skip(turn)
        elif key == "u":
            if session.undo() is None:
                console.print("[dim]nothing to undo[/dim]")
                continue
        else:
            console.print(f"[red]unknown key {key!r}[/red]")
            continue
        on_change()
    console.print("[bold]every turn is labelled[/bold]")
