"""The ``chimein`` command line. Each command parses its options, calls one library function, prints.

    chimein validate data/*.jsonl
    chimein template-tokens --model smollm2-135m-instruct
    chimein train --preset smollm2-135m
    chimein chat                                  # the shipped assistant (llamacpp:default)
    chimein decide < requests.jsonl
    chimein eval data/valid.jsonl --compare silent,mention,baseline,default
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from chimein.assistant import RUNTIME_DEFAULT, RUNTIME_MODEL_HELP

# Deprecation notices from inside transformers/peft say nothing a chimein user can act on.
warnings.filterwarnings("ignore", category=FutureWarning)

app = typer.Typer(help="chimein: a group-chat assistant that knows when to stay silent.", no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)

MODEL_HELP = "default, smollm2-135m-instruct, gemma3-270m, a local dir, an adapter dir, a .gguf file, or a hub id"


def user_errors(command: Callable) -> Callable:
    """Every command's bad input (an unknown model, a missing or malformed file, a bad value) ends as
    ``error: ...`` on stderr and exit code 2, never a traceback."""
    from chimein.data import DataError
    from chimein.models import ModelNotFound

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ModelNotFound, ValueError, OSError) as e:
            # A DataError's own file:line: field: problem lines say it all.
            lines = [str(p) for p in e.problems] if isinstance(e, DataError) else (str(e).strip() or type(e).__name__).splitlines()
            for i, line in enumerate(lines[:21]):
                typer.echo(f"error: {line}" if i == 0 else f"       {line}", err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
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


@app.command("template-tokens")
@user_errors
def template_tokens(
    model: str = typer.Option("smollm2-135m-instruct", help=MODEL_HELP),
    template: Optional[str] = typer.Option(None, help="built-in template (chatml, zephyr, llama-2, openchat, gemma); default: the model's"),
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
        print(json.dumps({
            "model": model, "template": fmt.template_name,
            "instruction_template": ins.text, "instruction_template_ids": ins.ids_in_context,
            "instruction_template_ids_standalone": ins.ids_standalone,
            "response_template": res.text, "response_template_ids": res.ids_in_context,
            "response_template_ids_standalone": res.ids_standalone, "end_of_turn": fmt.end_of_turn,
        }))
        return
    typer.echo(f"{model}, template {fmt.template_name}, end of turn {fmt.end_of_turn!r}")
    for key, m in markers.items():
        typer.echo(f"{key + ' marker':<20} {m.text!r}")
        typer.echo(f"  in context:  {m.ids_in_context}  {m.pieces_in_context}")
        alone = "same" if not m.differs else f"{m.ids_standalone}  {m.pieces_standalone}   <- differs"
        typer.echo(f"  standalone:  {alone}")


@app.command()
@user_errors
def train(
    preset: Optional[str] = typer.Option("smollm2-135m", help="smollm2-135m, gemma3-270m, llama-2-7b-chat, zephyr-7b-beta, openchat-3.5-0106"),
    config: Optional[Path] = typer.Option(None, help="YAML file of training options (overrides the preset)"),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    train_file: Optional[Path] = typer.Option(None, "--train", help="training conversations (JSONL)"),
    output_dir: Optional[Path] = typer.Option(None, "--out", help="run directory"),
    epochs: Optional[float] = typer.Option(None, help="number of epochs"),
    max_steps: Optional[int] = typer.Option(None, help="stop after this many optimizer steps"),
    limit: Optional[int] = typer.Option(None, help="use only the first N training conversations"),
    set_: List[str] = typer.Option([], "--set", help="override any option: --set lora_r=32"),
    resume: bool = typer.Option(False, help="continue from the last checkpoint in the run directory"),
    explain: bool = typer.Option(False, help="print one example with its trained spans in [[brackets]] first"),
    merge: bool = typer.Option(False, help="also write a merged model (base + adapter) to OUT/merged"),
    push_to_hub: Optional[str] = typer.Option(None, help="push adapter and tokenizer to this hub repo (online only)"),
) -> None:
    """Fine-tune with LoRA (QLoRA on CUDA) so the model answers (silence) or (response) after each message."""
    from chimein.train.config import build_config
    from chimein.train.sft import merge_adapter, push_adapter, run

    overrides = {"model": model, "train_file": str(train_file) if train_file else None,
                 "output_dir": str(output_dir) if output_dir else None, "num_train_epochs": epochs,
                 "max_steps": max_steps, "limit": limit}
    cfg = build_config(preset, config, overrides, set_)
    result = run(cfg, resume=resume, explain=explain)
    console.print(f"adapter written to [bold]{result.output_dir}[/bold]: loss {result.train_loss:.4f}, "
                  f"{result.steps} steps, {result.seconds / 60:.1f} min")
    if merge:
        console.print(f"merged model: {merge_adapter(result.output_dir)}")
    if push_to_hub:
        push_adapter(result.output_dir, push_to_hub)


# -- the assistant: chat, decide, eval -------------------------------------------------------------------

ModelOpt = typer.Option(RUNTIME_DEFAULT, "--model", "-m", help=RUNTIME_MODEL_HELP)
BaseUrlOpt = typer.Option(None, help="OpenAI-compatible endpoint for openai:NAME models (e.g. http://127.0.0.1:8080/v1)")
KeyEnvOpt = typer.Option("OPENAI_API_KEY", help="environment variable holding the API key")
StyleOpt = typer.Option("finetuned", help="for openai: models: finetuned (chimein's format) or baseline (the seed's prompt)")
EagerOpt = typer.Option(None, "--eagerness", min=0.0, max=1.0, help="speaking threshold on p_speak, 0-1 (lower speaks more); default: the adapter's F1-optimal one")
ReplyUrlOpt = typer.Option(None, help="two-stage: an OpenAI-compatible endpoint that writes the replies")
ReplyModelOpt = typer.Option(None, help="two-stage: the model name at --reply-base-url")
ReplyKeyOpt = typer.Option("OPENAI_API_KEY", help="two-stage: environment variable holding the replier's API key")


def _backend(model: str, base_url: Optional[str], api_key_env: str, style: str, eagerness: Optional[float]):
    from chimein.assistant import get_backend

    return get_backend(model, base_url=base_url, api_key_env=api_key_env, threshold=eagerness,
                       **({"style": style} if model.startswith("openai:") or base_url else {}))


def _replier(reply_base_url: Optional[str], reply_model: Optional[str], reply_key_env: str):
    if not reply_base_url:
        return None
    from chimein.assistant.backends.openai_http import OpenAIReplier

    return OpenAIReplier(reply_base_url, reply_model or "default", api_key_env=reply_key_env)


@app.command()
@user_errors
def chat(
    model: str = ModelOpt, base_url: Optional[str] = BaseUrlOpt, api_key_env: str = KeyEnvOpt, style: str = StyleOpt,
    eagerness: Optional[float] = EagerOpt, reply_base_url: Optional[str] = ReplyUrlOpt,
    reply_model: Optional[str] = ReplyModelOpt, reply_api_key_env: str = ReplyKeyOpt,
    speaker: str = typer.Option("You", help="your name in the chat (switch with /as NAME)"),
) -> None:
    """An interactive group chat in the terminal: type as several people, the assistant chimes in or not."""
    from chimein.assistant import Assistant
    from chimein.interfaces.tui import run_chat

    with console.status(f"loading {model}...", spinner="dots"):
        backend = _backend(model, base_url, api_key_env, style, eagerness)
    assistant = Assistant(backend, replier=_replier(reply_base_url, reply_model, reply_api_key_env), threshold=eagerness)
    run_chat(assistant, console, speaker=speaker)


@app.command()
@user_errors
def decide(
    model: str = ModelOpt, base_url: Optional[str] = BaseUrlOpt, api_key_env: str = KeyEnvOpt, style: str = StyleOpt,
    eagerness: Optional[float] = EagerOpt, reply_base_url: Optional[str] = ReplyUrlOpt,
    reply_model: Optional[str] = ReplyModelOpt, reply_api_key_env: str = ReplyKeyOpt,
) -> None:
    """JSON lines in, JSON lines out: {"messages": [...]} -> {"speak": ..., "text": ..., "p_speak": ...}.

    One answer per input line, flushed at once. A request that extends an earlier request's conversation
    reuses that conversation's model cache, so sending the growing history after each message stays cheap.
    """
    from chimein.interfaces.decider import JsonLinesDecider

    backend = _backend(model, base_url, api_key_env, style, eagerness)
    JsonLinesDecider(backend, _replier(reply_base_url, reply_model, reply_api_key_env), eagerness).run(sys.stdin, sys.stdout)


@app.command("eval")
@user_errors
def eval_(
    files: List[Path] = typer.Argument(..., help="JSONL conversations with gold assistant turns"),
    compare: List[str] = typer.Option(["default"], "--model", "-m", "--compare",
                                      help="models to compare, repeatable or comma-separated: e.g. silent,mention,baseline,default"),
    out: Path = typer.Option(Path("runs/eval"), help="directory for report.json, report.md, turns-*.jsonl, plots"),
    base_url: Optional[str] = BaseUrlOpt, api_key_env: str = KeyEnvOpt, style: str = StyleOpt,
    eagerness: Optional[float] = EagerOpt, reply_base_url: Optional[str] = ReplyUrlOpt,
    reply_model: Optional[str] = ReplyModelOpt, reply_api_key_env: str = ReplyKeyOpt,
    limit: Optional[int] = typer.Option(None, help="only the first N conversations"),
    similarity: bool = typer.Option(True, help="score replies against gold with all-MiniLM-L6-v2"),
    decisions_only: bool = typer.Option(False, help="models with p_speak: decide only, write no replies (fast)"),
    group_by: str = typer.Option("category", help="conversation field for the per-category table (e.g. attack)"),
) -> None:
    """Teacher-forced evaluation of when to speak and what to say, several models side by side.

    Turn records are written as the run goes: run the same command again after a kill, or with one more
    model in --compare, and finished work is reused.
    """
    from chimein.data import load_conversations
    from chimein.eval.run import evaluate_models, markdown_table

    conversations = load_conversations(*files)[: limit or None]
    reports = evaluate_models(
        [m.strip() for value in compare for m in value.split(",") if m.strip()], conversations, out, [str(f) for f in files],
        lambda m: _backend(m, base_url, api_key_env, style, eagerness), eagerness,
        _replier(reply_base_url, reply_model, reply_api_key_env), similarity, decisions_only, group_by,
    )
    console.print(markdown_table(reports), markup=False, highlight=False)
    console.print(f"report written to {out}/report.md")


# Longer commands live in their own modules.
from chimein.interfaces.export_cmd import export  # noqa: E402
from chimein.interfaces.generate_cmd import generate  # noqa: E402
from chimein.interfaces.matrix_cmd import matrix  # noqa: E402
from chimein.interfaces.serve_cmd import serve  # noqa: E402

for _command in (generate, export, serve, matrix):
    app.command()(user_errors(_command))


@app.command()
def models() -> None:
    """List the registered models."""
    from chimein.models import describe_models

    for name, desc in describe_models():
        console.print(f"[bold]{name}[/bold]  {desc}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
