"""`chimein import`: a group's chat exports as chimein conversations (chimein/importers/)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from chimein.cli.options import err
from chimein.importers import FORMATS

FORMAT_HELP = "\n\n".join(f"[bold]{name}[/bold]: {what}" for name, (_, what) in FORMATS.items())


def import_(
    format: str = typer.Argument(
        ..., help=f"the export's format. {FORMAT_HELP}", show_default=False, metavar="FORMAT"
    ),
    files: List[Path] = typer.Argument(..., help="export files (several of one format make one dataset)"),
    out: Path = typer.Option(..., "--out", "-o", help="JSONL file of conversations to write (replaced if it exists)"),
    assistant: Optional[str] = typer.Option(
        None,
        help="the account whose messages are the assistant's turns (a name or id as the export shows it)",
        show_default="the export's bot account, when it has exactly one",
    ),
    gap: float = typer.Option(60.0, help="minutes of silence that end a conversation"),
    max_messages: int = typer.Option(40, help="most messages in one conversation (a longer stretch is cut)"),
    min_messages: int = typer.Option(2, help="fewest messages in a conversation worth writing"),
    pseudonymize: bool = typer.Option(
        False,
        "--pseudonymize",
        help="consistent fake names for people (also in the texts and @mentions); "
        "phone numbers and e-mail addresses masked",
    ),
    phone_region: str = typer.Option(
        "US",
        help="with --pseudonymize: the region whose national phone numbers are "
        "masked (numbers with a +country code are masked anyway)",
    ),
    chat: Optional[List[str]] = typer.Option(
        None, "--chat", help="only this chat, channel or room (repeatable)", show_default="all"
    ),
) -> None:
    """Turn chat exports into chimein conversations (JSONL, what `chimein validate` and `chimein train` read).

    A silence longer than --gap starts a new conversation.
    The assistant's messages become assistant turns; after every other message the assistant stayed silent.
    Lines that are not messages (media, system lines, joins) are counted by reason at the end.
    Details and examples: docs/import.md.
    """
    from chimein.data import write_conversations
    from chimein.importers import WindowOptions, import_chats

    options = WindowOptions(assistant=assistant, gap_minutes=gap, max_messages=max_messages, min_messages=min_messages)
    progress = Progress(
        SpinnerColumn(),
        TextColumn(f"[bold]reading {format}[/bold]"),
        TextColumn("{task.completed} messages"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )  # redirected: no progress lines before the report or an error
    with progress:
        task = progress.add_task("read", total=None)
        result = import_chats(
            format,
            files,
            options,
            pseudonymize=pseudonymize,
            phone_region=phone_region,
            chats=chat or (),
            progress=lambda n: progress.advance(task, n),
        )
    written = write_conversations(out, result.conversations)
    user_turns = sum(c.user_turns for c in result.conversations)
    assistant_turns = sum(c.assistant_turns for c in result.conversations)
    who = f"assistant: {result.assistant}" if result.assistant else "no assistant account: every turn is a silence"
    err.print(
        f"{out}: {written} conversations, {user_turns} user turns, {assistant_turns} assistant turns "
        f"from {result.messages_read} messages ({who})",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if result.skipped:
        table = Table("not written", "count", title="skipped", title_justify="left")
        for reason, count in result.skipped.most_common():
            table.add_row(reason, str(count))
        err.print(table)
