"""Training configuration: one dataclass, named presets, YAML files and ``--set key=value`` overrides.

Every run saves the exact config it used (``config.yaml`` in the run directory) next to the adapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def option(default: Any, help: str) -> Any:
    """A config field with its help text (trl's ``field(metadata={"help": ...})``)."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every training option. The defaults ARE the shipped adapter's recipe (the ``smollm2-135m`` preset, chosen
    for 2 CPU cores); ``configs/smollm2-135m.yaml`` and ``resources/default/config.yaml`` are checked equal to it."""

    # what to train
    model: str = option("smollm2-135m-instruct", "base model (registry name, dir, .gguf, hub id)")
    template: str | None = option(None, "built-in chat template; default: the model's registry choice")
    train_file: str = option("data/train.jsonl", "training conversations (JSONL)")
    valid_file: str | None = option("data/valid.jsonl", "validation conversations for eval loss")
    output_dir: str = option("runs/smollm2-135m", "run directory (adapter, logs, report)")
    # Continue training this chimein adapter (a directory: the shipped default's, or a run's) instead of a new
    # LoRA; its own shape (rank, layers, targets) then holds, and the lora_* fields below are not used.
    init_adapter: str | None = option(None, "adapter directory to continue from")
    # LoRA
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA scaling numerator (the update is scaled by alpha / r)")
    # No dropout: on a CPU its random masks were 12% of a training step (a profile; README, the recipe).
    lora_dropout: float = option(0.0, "dropout on the LoRA input")
    target_modules: str | list[str] = option("all-linear", "modules that get LoRA: 'all-linear' or a list of names")
    # Backward stops at the lowest adapted layer: on a CPU the largest single speed-up (bench/train_speed.py).
    lora_top_layers: int | None = option(10, "adapt only the last N transformer layers (None: all)")
    # optimisation
    learning_rate: float = option(3e-4, "peak learning rate")
    lr_scheduler_type: str = option(
        "cosine", "learning-rate schedule (transformers' names: cosine, constant, linear, ...)"
    )
    warmup_ratio: float = option(0.03, "share of the steps spent warming the learning rate up")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    # The decision is about one trained token in eight; weighting it makes the adapter learn when to speak
    # before it learns reply wording (train/trainer.py).
    decision_weight: float = option(
        5.0, "loss weight of the token that decides (silence) vs (response); 1 = plain SFT"
    )
    num_train_epochs: float = option(1.0, "passes over the training data")
    max_steps: int = option(-1, "stop after this many optimizer steps (-1: run the epochs)")
    per_device_train_batch_size: int = option(1, "conversations per device and step")
    gradient_accumulation_steps: int = option(8, "steps accumulated before each optimizer update")
    max_length: int = option(2048, "tokens per training sequence (longer conversations are truncated, with a warning)")
    # Off on CPU: batch size 1 already has no padding, and SDPA with a block mask costs more per token than
    # separate short sequences (bench/train_speed.py). On a GPU with FlashAttention it pays off.
    packing: bool = option(False, "several conversations per sequence, attention kept within each one")
    gradient_checkpointing: bool = option(False, "recompute activations in backward (less memory, slower)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    seed: int = option(42, "random seed")
    # precision and hardware
    load_in_4bit: bool = option(False, "QLoRA: nf4 base weights (bitsandbytes, CUDA only)")
    bf16: bool = option(False, "bf16 compute")
    fp16: bool = option(False, "fp16 compute")
    threads: int | None = option(None, "torch CPU threads (None: all cores)")
    # bookkeeping
    logging_steps: int = option(5, "log the loss every N steps")
    save_steps: int = option(50, "save a checkpoint every N steps")
    eval_steps: int | None = option(None, "evaluate on valid_file every N steps (None: at the end only)")
    limit: int | None = option(None, "use only the first N training conversations (smoke tests)")

    def __post_init__(self) -> None:
        if self.load_in_4bit and (self.bf16 and self.fp16):
            raise ValueError("choose bf16 or fp16 compute, not both")
        if self.decision_weight <= 0:
            raise ValueError("decision_weight must be positive")
        if self.lora_r <= 0:
            raise ValueError("lora_r must be positive")
        if self.packing and self.per_device_train_batch_size != 1:
            raise ValueError(
                "with packing, keep per_device_train_batch_size=1 (each sequence already holds many conversations)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The seed's recipe for 7B chat models on one GPU: QLoRA nf4, LoRA r=64/alpha=16/dropout 0.1, lr 2e-4 constant.
_SEED_7B = dict(
    lora_top_layers=None,
    target_modules="all-linear",
    load_in_4bit=True,
    bf16=True,
    lora_r=64,
    lora_alpha=16,
    lora_dropout=0.1,
    learning_rate=2e-4,
    lr_scheduler_type="constant",
    warmup_ratio=0.03,
    max_grad_norm=0.3,
    per_device_train_batch_size=4,
    gradient_accumulation_steps=2,
    gradient_checkpointing=True,
    max_length=1024,
    packing=False,
    num_train_epochs=1.0,
    decision_weight=1.0,
)

PRESETS: dict[str, dict[str, Any]] = {
    # CPU default: fast on 2 cores, full precision weights dequantized from the shipped GGUF.
    # LoRA on the top 10 layers without dropout (dropout's random masks are a noticeable share of a CPU
    # step). The data mix (data/prepare.py: synthetic chats of several writers + windows of real chat) is
    # several times the old seed set, so one pass over it fits the training-time budget (README: the recipe
    # comparison).
    "smollm2-135m": {},  # the defaults of TrainConfig
    # gemma3-270m keeps the recipe it was set up with: top 15 layers, LoRA dropout 0.05, plain SFT loss.
    "gemma3-270m": dict(
        model="gemma3-270m",
        template="gemma",
        output_dir="runs/gemma3-270m",
        max_length=1536,
        lora_top_layers=15,
        lora_dropout=0.05,
        decision_weight=1.0,
    ),
    "llama-2-7b-chat": dict(
        model="llama-2-7b-chat",
        template="llama-2",
        output_dir="runs/llama-2-7b-chat",
        **_SEED_7B,
    ),
    "zephyr-7b-beta": dict(
        model="zephyr-7b-beta",
        template="zephyr",
        output_dir="runs/zephyr-7b-beta",
        **_SEED_7B,
    ),
    "openchat-3.5-0106": dict(
        model="openchat-3.5-0106",
        template="openchat",
        output_dir="runs/openchat-3.5-0106",
        **_SEED_7B,
    ),
}


def _coerce(value: str, current: Any) -> Any:
    """Turn a ``--set`` string into the type of the field it overrides (YAML rules otherwise)."""
    if isinstance(current, float):
        return float(value)  # YAML reads "3e-4" as a string
    if isinstance(current, bool):
        return bool(yaml.safe_load(value))
    if isinstance(current, int):
        return int(value)
    return yaml.safe_load(value)


def build_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> TrainConfig:
    """Preset, then YAML file, then explicit overrides, then ``key=value`` strings; later wins."""
    values: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if config_file:
        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: a training config must be a mapping of field: value")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    names = {f.name: f for f in dataclasses.fields(TrainConfig)}
    defaults = TrainConfig()
    for item in sets or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        values[key] = _coerce(raw, getattr(defaults, key, None))
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown training option(s): {', '.join(unknown)}; known: {', '.join(names)}")
    return TrainConfig(**values)
