"""`chimein label`: the current model proposes speak or silence for every user turn; you confirm or correct it.

    chimein label mine.jsonl -o mine.labels.jsonl            # in the terminal, the shipped model proposing
    chimein label mine.jsonl -o mine.labels.jsonl --web      # the same in the browser: http://127.0.0.1:8001
    chimein label mine.jsonl -o mine.labels.jsonl --model runs/mine   # a fine-tuned model proposes

Killed or quit? Run the same command again: the proposals and labels are in OUT.progress.jsonl.
The library behind it: :mod:`chimein.label.session` (the logic), :mod:`chimein.label.propose` (the model).
"""

from __future__ import annotations

from pathlib import Path
import typer

from chimein.cli.options import ModelOptions, backend_from_options, console, err, model_options


@model_options(
    skip=("reply_base_url", "reply_model", "reply_api_key_env")
)  # proposals are decisions; drafts are the model's own
def label(
    options: ModelOptions,
    input_file: Path = typer.Argument(..., help="conversations to label (JSONL in chimein's format)"),
    output: Path = typer.Option(
        ..., "--out", "-o", help="the labelled dataset (JSONL); progress is kept beside it in OUT.progress.jsonl"
    ),
    web: bool = typer.Option(False, "--web", help="label in the browser instead of the terminal"),
    host: str = typer.Option("127.0.0.1", help="--web: address to listen on"),
    port: int = typer.Option(8001, help="--web: port to listen on"),
    accept_silences: bool = typer.Option(
        True,
        help="a turn nobody labelled takes the model's proposal when that is silence "
        "(--no-accept-silences: conversations end before it)",
    ),
) -> None:
    """Label your own chats quickly: least sure turns first, single keys (y n e s u q), resumable."""
    from rich.progress import Progress

    from chimein.data import load_conversations
    from chimein.label.propose import fingerprint, propose
    from chimein.label.session import LabelSession, progress_path

    conversations = load_conversations(input_file)
    if not conversations:
        raise ValueError(f"{input_file}: no conversations to label")
    model = options.model
    with err.status(f"loading {model}...", spinner="dots"):
        backend = backend_from_options(options)
    threshold = backend.threshold if backend.threshold is not None else 0.5
    session = LabelSession.open(
        conversations, progress_path(output), fingerprint(conversations, model, threshold), threshold
    )
    total = sum(c.user_turns for c in conversations)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(f"{model} proposing", total=total, completed=len(session.proposals))
        propose(backend, session, on_turn=lambda: bar.advance(task))
    if web:
        import uvicorn

        from chimein.server.label_page import create_label_app

        app = create_label_app(session, output, accept_silences)
        err.print(
            f"chimein label: open [bold]http://{host}:{port}/[/bold] (keys y n e s u); Ctrl-C when done",
            soft_wrap=True,
        )
        uvicorn.run(app, host=host, port=port, log_level="warning")
    else:
        from rich.prompt import Prompt

        from chimein.interfaces.label_tui import run_labeller

        session.write(output, accept_silences)
        run_labeller(
            session,
            console,
            read_key=lambda: typer.getchar() if hasattr(typer, "getchar") else input()[:1],
            read_reply=lambda draft: Prompt.ask("reply", default=draft or None, console=console) or "",
            on_change=lambda: session.write(output, accept_silences),
        )
    written = session.write(output, accept_silences)
    console.print(
        f"{output}: {written.conversations} conversations, {written.labelled} turns labelled by you, "
        f"{written.kept_replies} replies kept from the chat, "
        f"{written.accepted_silences} silences accepted from the model, {written.cut_turns} turns cut "
        f"(a conversation ends before its first turn without a label), {written.omitted_conversations} "
        "conversations left out (their first turn has none)",
        soft_wrap=True,
    )
