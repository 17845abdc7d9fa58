"""Data commands: `chimein validate`, `chimein template-tokens`, `chimein generate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from chimein.cli.options import BASE_MODEL_HELP, console, err, fail


def validate(files: List[Path] = typer.Argument(..., help="JSONL files of conversations")) -> None:
    """Check conversation files and print statistics; list every problem as file:line: field: what."""
    from chimein.data import compute_stats, read_conversations

    conversations, problems = [], []
    for f in files:
        c, p = read_conversations(f)
        conversations += c
        problems += p
    for p in problems:
        typer.echo(str(p), err=True)  # plain lines, never wrapped: editors and grep read file:line
    _print_stats(compute_stats(conversations), files)
    if problems:
        err.print(f"[red]{len(problems)} problem(s) found[/red]")
        raise typer.Exit(1)


def _print_stats(stats, files) -> None:
    lo, mean, hi = stats.users_per_conversation
    tlo, tmean, thi = stats.user_turns_per_conversation
    table = Table(title=f"{', '.join(str(f) for f in files)}", show_header=False)
    table.add_row("conversations", str(stats.conversations))
    table.add_row("users per conversation", f"{mean:.1f} (min {lo}, max {hi})")
    table.add_row("user turns", f"{stats.user_turns} ({tmean:.1f} per conversation, min {tlo}, max {thi})")
    table.add_row("assistant turns", str(stats.assistant_turns))
    table.add_row("speaking rate", f"{stats.speaking_rate:.1%} of user turns")
    if stats.topics:
        top = ", ".join(t for t, _ in stats.topics.most_common(5))
        table.add_row("topics", f"{len(stats.topics)} distinct (most frequent: {top})")
    if stats.categories:
        table.add_row("categories", ", ".join(f"{c} {n}" for c, n in stats.categories.most_common()))
    console.print(table)


def template_tokens(
    model: str = typer.Option("smollm2-135m-instruct", help=BASE_MODEL_HELP),
    template: Optional[str] = typer.Option(
        None, help="built-in template (chatml, zephyr, llama-2, openchat, gemma); default: the model's"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Token ids of the user-turn and assistant-turn markers, in context and standalone."""
    from chimein.format import ChatFormat, template_markers
    from chimein.models import load_tokenizer, resolve_model

    resolved = resolve_model(model)
    fmt = ChatFormat.for_tokenizer(load_tokenizer(resolved), template or resolved.template)
    markers = template_markers(fmt)
    ins, res = markers["instruction"], markers["response"]
    if as_json:
        print(
            json.dumps(
                {
                    "model": model,
                    "template": fmt.template_name,
                    "instruction_template": ins.text,
                    "instruction_template_ids": ins.ids_in_context,
                    "instruction_template_ids_standalone": ins.ids_standalone,
                    "response_template": res.text,
                    "response_template_ids": res.ids_in_context,
                    "response_template_ids_standalone": res.ids_standalone,
                    "end_of_turn": fmt.end_of_turn,
                }
            )
        )
        return
    typer.echo(f"{model}, template {fmt.template_name}, end of turn {fmt.end_of_turn!r}")
    for key, m in markers.items():
        typer.echo(f"{key + ' marker':<20} {m.text!r}")
        typer.echo(f"  in context:  {m.ids_in_context}  {m.pieces_in_context}")
        alone = "same" if not m.differs else f"{m.ids_standalone}  {m.pieces_standalone}   <- differs"
        typer.echo(f"  standalone:  {alone}")


def generate(
    out: Path = typer.Option(
        ..., "--out", help="JSONL file to append to (created if missing; an existing one is resumed)"
    ),
    n: int = typer.Option(100, "--n", help="number of conversations the file should hold when done"),
    model: str = typer.Option(
        ..., help="model name as the endpoint knows it (a llama.cpp server with one model takes any name)"
    ),
    base_url: Optional[str] = typer.Option(
        None,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (llama.cpp), http://127.0.0.1:11434/v1 "
        "(Ollama), http://127.0.0.1:8000/v1 (vLLM)",
        show_default="$OPENAI_BASE_URL or OpenAI's",
    ),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY", help="environment variable holding the API key (local servers accept any key)"
    ),
    topics: Optional[Path] = typer.Option(None, help="file of topics, one per line", show_default="built-in list"),
    names: Optional[Path] = typer.Option(None, help="file of user names, one per line", show_default="built-in list"),
    min_turns: int = typer.Option(10, help="fewest user messages per conversation"),
    max_turns: int = typer.Option(12, help="most user messages per conversation"),
    min_users: int = typer.Option(2, help="fewest users named in a prompt"),
    max_users: int = typer.Option(3, help="most users named in a prompt"),
    prompt_template: Optional[Path] = typer.Option(
        None,
        help="prompt file replacing the built-in one; Python format fields {topic}, {names}, {turns}, {example}; "
        "literal braces as {{ }}",
        show_default="built-in prompt",
    ),
    retries: int = typer.Option(2, help="extra requests per conversation after an invalid reply, then it is rejected"),
    concurrency: int = typer.Option(1, help="requests in flight at once"),
    seed: int = typer.Option(0, help="seed for topics, names, turn counts and sampling (resume with the same seed)"),
    temperature: float = typer.Option(0.8, help="sampling temperature"),
    max_tokens: int = typer.Option(1500, help="longest reply, in tokens"),
    timeout: float = typer.Option(120.0, help="seconds to wait for one reply"),
    max_items: Optional[int] = typer.Option(
        None, help="give up after trying this many conversations", show_default="2 x missing + 10"
    ),
) -> None:
    """Generate synthetic group chats with any OpenAI-compatible LLM and append them to a JSONL file.

    Every reply is checked like `chimein validate` does (plus turn and user counts) and against the file for
    near-duplicates; invalid replies are asked again --retries times, then rejected; nothing invalid is
    written. Stop it at any time: the same command resumes where it stopped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from chimein.generate import GenerateConfig, GenerateError, generate_file, read_list

    try:
        config = GenerateConfig(
            out=out,
            n=n,
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            topics=read_list(topics) if topics else None,
            names=read_list(names) if names else None,
            min_turns=min_turns,
            max_turns=max_turns,
            min_users=min_users,
            max_users=max_users,
            prompt_template=prompt_template.read_text(encoding="utf-8") if prompt_template else None,
            retries=retries,
            concurrency=concurrency,
            seed=seed,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout=timeout,
            max_items=max_items,
        )
    except OSError as e:
        fail(f"cannot read {e.filename}: {e.strerror}")

    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]generating[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    task = None

    def on_progress(c) -> None:
        nonlocal task
        text = (
            f"[green]ok {c.ok}[/green] [yellow]retried {c.retried}[/yellow] [red]rejected {c.rejected}[/red] "
            f"[magenta]duplicate {c.duplicate}[/magenta]"
        )
        if task is None:
            progress.start()  # only now: option and file errors print without an empty bar
            task = progress.add_task("generate", total=c.target, completed=c.total, counts=text)
        else:
            progress.update(task, completed=c.total, counts=text)

    def log(message: str) -> None:
        progress.console.print(message, style="yellow", highlight=False, markup=False)

    try:
        try:
            counts = generate_file(config, on_progress=on_progress, log=log)
        finally:
            progress.stop()
    except GenerateError as e:
        kept = (
            [e.counts.summary(), "what was written is kept; run the same command again to resume"]
            if e.counts is not None
            else []
        )
        fail([*str(e).splitlines(), *kept])
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: what was written is kept; run the same command again to resume[/yellow]")
        raise typer.Exit(130)
    err.print(counts.summary(), highlight=False, markup=False)
    if not counts.done:
        err.print(
            f"[red]stopped after trying {counts.tried} conversations without reaching {counts.target}: "
            f"raise --max-items or --retries, or use a stronger model[/red]"
        )
        raise typer.Exit(1)
