"""Fine-tune from the shipped default on a group's own chats, and show the difference on chats it did not train on.

    chimein train --data mine.jsonl --from default                 # holdout 20%, one shipped chat per own chat
    chimein train --data mine.jsonl --from default --holdout 0.3 --mix 2 --out runs/mine
    chimein serve --model runs/mine                                # the result runs like any adapter dir

Steps: split the group's chats into training and held-out ones (whole conversations, seeded) -> add chats of
the shipped training data (``--mix`` of them per own chat, so the general rules are not forgotten) -> train,
starting from the adapter's weights (``TrainConfig.init_adapter``), with the recipe saved beside that
adapter -> replay the held-out chats with the starting model and with the new one (:func:`chimein.eval.run.evaluate`,
decisions only) and write both summaries: ``before_after.json`` and a table in ``report.md``.

The run directory also holds the data it was trained and measured on (``data/train.jsonl``,
``data/holdout.jsonl``).
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from chimein.data import Conversation, load_conversations, write_conversations
from chimein.eval.run import evaluate, summarize
from chimein.models import resolve_model
from chimein.train.config import TrainConfig, build_config

SHIPPED_DATA = "data/train.jsonl"  # the shipped adapter's training mix (data/prepare.py), in a checkout
DEFAULT_MIX = 1.0
DEFAULT_HOLDOUT = 0.2
# What the before/after table shows, in order (keys of chimein.eval.run.summarize's report).
COMPARED = (
    ("speak F1", "f1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("false interjections", "false_interjection_rate"),
    ("volunteer F1", "volunteer_f1"),
    ("addressed (named) F1", "named_f1"),
    ("missed addresses", "missed_address_rate"),
)


@dataclass
class OwnData:
    train: list[Conversation]  # the group's chats to train on
    holdout: list[Conversation]  # the group's chats kept for before/after
    mixed_in: list[Conversation]  # chats of the shipped data added to the training set


def split_holdout(
    conversations: list[Conversation], fraction: float, seed: int = 0
) -> tuple[list[Conversation], list[Conversation]]:
    """Whole conversations, picked at random (seeded), kept in their input order: (train, held out)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"--holdout: a fraction from 0 to below 1, got {fraction}")
    n = len(conversations)
    k = max(1, round(n * fraction)) if fraction > 0 else 0
    if n - k < 1:
        raise ValueError(f"--holdout {fraction}: {n} conversation(s) leave none to train on")
    held = set(random.Random(seed).sample(range(n), k))
    return [c for i, c in enumerate(conversations) if i not in held], [
        c for i, c in enumerate(conversations) if i in held
    ]


def own_data(
    conversations: list[Conversation], shipped: list[Conversation], holdout: float, mix: float, seed: int = 0
) -> OwnData:
    """The group's chats split, and ``mix`` shipped chats per own training chat drawn at random (all of them
    at most)."""
    if mix < 0:
        raise ValueError(f"--mix: shipped chats per own chat, 0 or more, got {mix}")
    train, held = split_holdout(conversations, holdout, seed)
    k = min(len(shipped), round(len(train) * mix))
    return OwnData(train, held, random.Random(seed).sample(shipped, k))


def continue_config(
    start: str,
    output_dir: str | Path,
    train_file: str | Path,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> TrainConfig:
    """The recipe of the adapter ``start`` names (its saved config.yaml), continuing from its weights."""
    resolved = resolve_model(start)
    if resolved.adapter is None:
        raise ValueError(f"--from {start}: not a chimein adapter (use default or a run directory of chimein train)")
    saved = Path(resolved.adapter) / "config.yaml"
    values = {
        "output_dir": str(output_dir),
        "train_file": str(train_file),
        "init_adapter": str(resolved.adapter),
        **{k: v for k, v in (overrides or {}).items() if v is not None},
    }
    cfg = build_config(None if saved.exists() else "smollm2-135m", saved if saved.exists() else None, values, sets)
    return dataclasses.replace(cfg, valid_file=None)  # the held-out own chats measure it, not the shipped split


def before_after(
    start: str,
    run_dir: str | Path,
    holdout: list[Conversation],
    load: Callable[[str], Any],
    threshold: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Both models replayed on the held-out chats, decisions only (each at its own default threshold)."""
    reports = {}
    for when, name in (("before", start), ("after", str(run_dir))):
        reports[when] = summarize(evaluate(load(name), holdout, threshold=threshold, decisions_only=True))
    return reports


def comparison_table(reports: dict[str, dict[str, Any]]) -> str:
    lines = ["| held-out own chats | before | after |", "|---|---|---|"]
    for title, key in COMPARED:
        lines.append(f"| {title} | {reports['before'][key]:.3f} | {reports['after'][key]:.3f} |")
    return "\n".join(lines)


def write_before_after(
    run_dir: str | Path, start: str, holdout: list[Conversation], reports: dict[str, dict[str, Any]]
) -> None:
    run_dir = Path(run_dir)
    (run_dir / "before_after.json").write_text(
        json.dumps({"before_model": start, "after_model": str(run_dir), **reports}, indent=2)
    )
    turns = sum(c.user_turns for c in holdout)
    report = run_dir / "report.md"
    previous = report.read_text() if report.exists() else ""
    report.write_text(
        previous + f"\n## Before / after on {len(holdout)} held-out own chats ({turns} turns)\n\n"
        f"Before: `{start}`; after: this run. Decisions only, each model at its own threshold.\n\n"
        + comparison_table(reports)
        + "\n"
    )


def measure_before_after(
    start: str, run_dir: str | Path, holdout: list[Conversation], load: Callable[[str], Any]
) -> str:
    """Replay the held-out chats with both models, write ``before_after.json`` and the report's table; the table."""
    reports = before_after(start, run_dir, holdout, load)
    write_before_after(run_dir, start, holdout, reports)
    return comparison_table(reports)


def prepare(
    data: list[str | Path],
    start: str,
    output_dir: str | Path,
    holdout: float = DEFAULT_HOLDOUT,
    mix: float = DEFAULT_MIX,
    mix_file: str | Path = SHIPPED_DATA,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> tuple[TrainConfig, OwnData]:
    """Split and mix the data into ``OUT/data/`` and build the config that continues from ``start``."""
    own = load_conversations(*data)
    if not own:
        raise ValueError(f"--data {', '.join(map(str, data))}: no conversations")
    shipped = load_conversations(mix_file) if mix > 0 else []
    split = own_data(own, shipped, holdout, mix, seed)
    folder = Path(output_dir) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    combined = split.train + split.mixed_in
    random.Random(seed).shuffle(combined)
    write_conversations(folder / "train.jsonl", combined)
    write_conversations(folder / "holdout.jsonl", split.holdout)
    return continue_config(start, output_dir, folder / "train.jsonl", overrides, sets), split
