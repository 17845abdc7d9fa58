"""`chimein train`: LoRA fine-tuning (:mod:`chimein.train`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from chimein.cli.options import BASE_MODEL_HELP, console, fail


def train(
    preset: Optional[str] = typer.Option("smollm2-135m", help="smollm2-135m, gemma3-270m, llama-2-7b-chat, zephyr-7b-beta, openchat-3.5-0106"),
    config: Optional[Path] = typer.Option(None, help="YAML file of training options (overrides the preset)"),
    model: Optional[str] = typer.Option(None, help=BASE_MODEL_HELP),
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
    from chimein.train.sft import TrainingError, merge_adapter, push_adapter, run

    overrides = {"model": model, "train_file": str(train_file) if train_file else None,
                 "output_dir": str(output_dir) if output_dir else None, "num_train_epochs": epochs,
                 "max_steps": max_steps, "limit": limit}
    cfg = build_config(preset, config, overrides, set_)
    try:
        result = run(cfg, resume=resume, explain=explain)
        console.print(f"adapter written to [bold]{result.output_dir}[/bold]: loss {result.train_loss:.4f}, "
                      f"{result.steps} steps, {result.seconds / 60:.1f} min")
        if merge:
            console.print(f"merged model: {merge_adapter(result.output_dir)}")
        if push_to_hub:
            push_adapter(result.output_dir, push_to_hub)
    except TrainingError as e:  # data the trainer cannot use, QLoRA without CUDA, a failed push
        fail(str(e))
