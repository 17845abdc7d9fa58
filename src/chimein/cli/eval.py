"""`chimein eval`: several models side by side on conversations with gold assistant turns (:mod:`chimein.eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from chimein.cli.options import ModelOptions, backend_from_options, console, model_options, replier_from_options


@model_options(skip=("model",))  # --model here names several models to compare
def eval_(
    options: ModelOptions,
    files: List[Path] = typer.Argument(..., help="JSONL conversations with gold assistant turns"),
    compare: List[str] = typer.Option(["default"], "--model", "-m", "--compare",
                                      help="models to compare, repeatable or comma-separated: e.g. silent,mention,baseline,default"),
    out: Path = typer.Option(Path("runs/eval"), help="directory for report.json, report.md, turns-*.jsonl, plots"),
    limit: Optional[int] = typer.Option(None, help="only the first N conversations"),
    similarity: bool = typer.Option(True, help="score replies against gold with all-MiniLM-L6-v2"),
    decisions_only: bool = typer.Option(False, help="models with p_speak: decide only, write no replies (fast)"),
    group_by: str = typer.Option("category", help="conversation field for the per-category table (e.g. attack)"),
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
        check_backend(name, base_url=options.base_url)
    reports = evaluate_models(
        names, conversations, out, [str(f) for f in files],
        lambda m: backend_from_options(options.with_model(m)), options.eagerness,
        replier_from_options(options), similarity, decisions_only, group_by,
    )
    console.print(markdown_table(reports), markup=False, highlight=False)
    console.print(f"report written to {out}/report.md")
