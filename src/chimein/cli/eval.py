"""`chimein eval`: several models side by side on conversations with gold assistant turns (:mod:`chimein.eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from chimein.cli.options import ModelOptions, backend_from_options, console, model_options, replier_from_options


@model_options(skip=("model",))  # --model here names several models to compare
def eval_(
    options: ModelOptions,
    files: List[Path] = typer.Argument(..., help="JSONL conversations with gold assistant turns"),
    compare: List[str] = typer.Option(
        ["default"],
        "--model",
        "-m",
        "--compare",
        help="models to compare, repeatable or comma-separated: e.g. silent,mention,baseline,default; "
        "DECIDER+REPLIER has a replier write the replies (llamacpp:default+replier)",
    ),
    out: Path = typer.Option(Path("runs/eval"), help="directory for report.json, report.md, turns-*.jsonl, plots"),
    limit: Optional[int] = typer.Option(None, help="only the first N conversations"),
    similarity: bool = typer.Option(True, help="score replies against gold with all-MiniLM-L6-v2"),
    decisions_only: bool = typer.Option(False, help="models with p_speak: decide only, write no replies (fast)"),
    group_by: str = typer.Option("category", help="conversation field for the per-category table (e.g. attack)"),
    judge_base_url: Optional[str] = typer.Option(
        None,
        help="grade replies with a judge model at this OpenAI-compatible "
        "endpoint (rubric: chimein/resources/judge_rubric.md); "
        "default: the facts check against the gold reply",
    ),
    judge_model: str = typer.Option("default", help="the judge's model name at --judge-base-url"),
    judge_api_key_env: str = typer.Option("OPENAI_API_KEY", help="environment variable holding the judge's API key"),
) -> None:
    """Teacher-forced evaluation of when to speak and what to say, several models side by side.

    Turn records are written as the run goes: run the same command again after a kill, or with one more
    model in --model, and finished work is reused.
    """
    from chimein.assistant import check_backend
    from chimein.data import load_conversations
    from chimein.eval.run import evaluate_models, markdown_table

    conversations = load_conversations(*files)[: limit or None]
    names = [m.strip() for value in compare for m in value.split(",") if m.strip()]
    for name in names:  # every name checked before the first model runs (and before anything is written)
        decider, _, replier_name = name.partition("+")
        check_backend(decider, base_url=options.base_url)
        if replier_name:
            from chimein.models import resolve_model

            resolve_model(replier_name)
    grade = None
    if judge_base_url:
        from chimein.eval.replies import Judge

        judge = Judge(judge_base_url, judge_model, api_key_env=judge_api_key_env)
        grade = lambda r: judge.grade(f"{r.speaker}: {r.text}", r.reply, r.gold_reply)  # noqa: E731
    reports = evaluate_models(
        names,
        conversations,
        out,
        [str(f) for f in files],
        lambda m: with_replier(m, options),
        options.eagerness,
        replier_from_options(options, local_by_default=False),
        similarity,
        decisions_only,
        group_by,
        grade,
    )
    console.print(markdown_table(reports), markup=False, highlight=False)
    console.print(f"report written to {out}/report.md")


def with_replier(name: str, options: ModelOptions) -> Any:
    """The backend a model name gives; ``DECIDER+REPLIER`` (``llamacpp:default+replier``) has REPLIER write the
    replies, so that one table compares the deciding model alone with it and a replier."""
    from dataclasses import replace

    from chimein.assistant.core import TwoStage

    decider, _, replier_name = name.partition("+")
    backend = backend_from_options(options.with_model(decider))
    if not replier_name:
        return backend
    return TwoStage(backend, replier_from_options(replace(options, reply_base_url=None, reply_model=replier_name)))
