"""`chimein train`: LoRA fine-tuning (:mod:`chimein.train`); with ``--data --from``, a group's own chats
continuing the shipped default, measured before and after (:mod:`chimein.finetune`).

    chimein train --preset smollm2-135m
    chimein train --data mine.jsonl --from default --holdout 0.2 --mix 1 --out runs/mine
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from chimein.cli.options import BASE_MODEL_HELP, console, fail
from chimein.finetune import DEFAULT_HOLDOUT, DEFAULT_MIX, SHIPPED_DATA, measure_before_after, prepare

OWN_RUN_DIR = "runs/own"
FROM_EPOCHS = 2.0  # a group's chats are few: two passes over them (and the shipped chats mixed in)


def train(
    preset: Optional[str] = typer.Option(
        "smollm2-135m", help="smollm2-135m, gemma3-270m, llama-2-7b-chat, zephyr-7b-beta, openchat-3.5-0106"
    ),
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
    data: List[Path] = typer.Option(
        [], "--data", help="your own chats (JSONL, e.g. from chimein label); needs --from"
    ),
    start: Optional[str] = typer.Option(
        None, "--from", help="continue this adapter (default, or a run directory) on --data"
    ),
    holdout: float = typer.Option(
        DEFAULT_HOLDOUT, min=0.0, max=0.95, help="--from: share of your chats held out for before/after"
    ),
    mix: float = typer.Option(
        DEFAULT_MIX, min=0.0, help="--from: shipped training chats added per chat of yours (0: none)"
    ),
    mix_file: Path = typer.Option(Path(SHIPPED_DATA), help="--from: the shipped training data to mix in"),
) -> None:
    """Fine-tune with LoRA (QLoRA on CUDA) so the model answers (silence) or (response) after each message.

    With --data and --from: continue an adapter on your own chats, mixed with the shipped data, and report
    speak-F1, false interjections, volunteer and addressed F1 on your held-out chats before and after."""
    from chimein.train.config import build_config
    from chimein.train.sft import TrainingError, merge_adapter, push_adapter, run

    overrides = {
        "model": model,
        "train_file": str(train_file) if train_file else None,
        "output_dir": str(output_dir) if output_dir else None,
        "num_train_epochs": epochs,
        "max_steps": max_steps,
        "limit": limit,
    }
    split = None
    if bool(data) != bool(start):
        raise ValueError(
            "--data and --from go together: your chats, and the adapter to continue (e.g. --from default)"
        )
    if start:
        if train_file or config or model:
            raise ValueError(
                "--from continues an adapter with its own recipe and model: drop --train, --config and --model"
            )
        overrides.update(output_dir=str(output_dir or OWN_RUN_DIR), num_train_epochs=epochs or FROM_EPOCHS)
        cfg, split = prepare(
            data,
            start,
            overrides["output_dir"],
            holdout=holdout,
            mix=mix,
            mix_file=mix_file,
            overrides={k: v for k, v in overrides.items() if k not in ("model", "train_file")},
            sets=set_,
        )
        console.print(
            f"training on {len(split.train)} of your chats and {len(split.mixed_in)} shipped ones; "
            f"{len(split.holdout)} of yours held out"
        )
    else:
        cfg = build_config(preset, config, overrides, set_)
    try:
        result = run(cfg, resume=resume, explain=explain)
        console.print(
            f"adapter written to [bold]{result.output_dir}[/bold]: loss {result.train_loss:.4f}, "
            f"{result.steps} steps, {result.seconds / 60:.1f} min"
        )
        if start and split is not None and split.holdout:
            from chimein.assistant import get_backend

            console.print(
                measure_before_after(start, result.output_dir, split.holdout, get_backend),
                markup=False,
                highlight=False,
            )
        if merge:
            console.print(f"merged model: {merge_adapter(result.output_dir)}")
        if push_to_hub:
            push_adapter(result.output_dir, push_to_hub)
    except TrainingError as e:  # data the trainer cannot use, QLoRA without CUDA, a failed push
        fail(str(e))
