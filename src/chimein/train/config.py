"""Training configuration: one dataclass, named presets, YAML files and ``--set key=value`` overrides.

Every run saves the exact config it used (``config.yaml`` in the run directory) next to the adapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

@dataclass
class TrainConfig:
    # what to train
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "base model (registry name, dir, .gguf, hub id)"})
    template: str | None = field(default=None, metadata={"help": "built-in chat template; default: the model's registry choice"})
    train_file: str = field(default="data/train.jsonl", metadata={"help": "training conversations (JSONL)"})
    valid_file: str | None = field(default="data/valid.jsonl", metadata={"help": "validation conversations for eval loss"})
    output_dir: str = field(default="runs/smollm2-135m", metadata={"help": "run directory (adapter, logs, report)"})
    # Continue training this chimein adapter (a directory: the shipped default's, or a run's) instead of a new
    # LoRA; its own shape (rank, layers, targets) then holds, and the lora_* fields below are not used.
    init_adapter: str | None = field(default=None, metadata={"help": "adapter directory to continue from"})
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    # Adapt only the last N transformer layers: backward then stops there, which on a CPU is the largest
    # single speed-up (bench/train_speed.py measures it).
    lora_top_layers: int | None = 15
    # optimisation
    learning_rate: float = 3e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    # Loss weight of the token that decides (silence) vs (response) in each assistant turn (1 = plain SFT).
    # The decision is about one trained token in eight; weighting it makes the adapter learn when to speak
    # before it learns reply wording (train/trainer.py).
    decision_weight: float = 1.0
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 8
    max_length: int = 2048  # tokens per training sequence (longer conversations are truncated, with a warning)
    # Several conversations per sequence, attention kept within each one. Off on CPU: batch size 1 already
    # has no padding, and SDPA with a block mask costs more per token than separate short sequences
    # (bench/train_speed.py). On a GPU with FlashAttention it pays off.
    packing: bool = False
    gradient_checkpointing: bool = False
    weight_decay: float = 0.0
    seed: int = 42
    # precision and hardware
    load_in_4bit: bool = False  # QLoRA: nf4 base weights (bitsandbytes, CUDA only)
    bf16: bool = False
    fp16: bool = False
    threads: int | None = None  # torch CPU threads; default all cores
    # bookkeeping
    logging_steps: int = 5
    save_steps: int = 50
    eval_steps: int | None = None
    limit: int | None = None  # use only the first N training conversations (smoke tests)

    def __post_init__(self) -> None:
        if self.load_in_4bit and (self.bf16 and self.fp16):
            raise ValueError("choose bf16 or fp16 compute, not both")
        if self.decision_weight <= 0:
            raise ValueError("decision_weight must be positive")
        if self.lora_r <= 0:
            raise ValueError("lora_r must be positive")
        if self.packing and self.per_device_train_batch_size != 1:
            raise ValueError("with packing, keep per_device_train_batch_size=1 (each sequence already holds many conversations)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The seed's recipe for 7B chat models on one GPU: QLoRA nf4, LoRA r=64/alpha=16/dropout 0.1, lr 2e-4 constant.
_SEED_7B = dict(
    load_in_4bit=True, bf16=True, lora_r=64, lora_alpha=16, lora_dropout=0.1, learning_rate=2e-4,
    lr_scheduler_type="constant", warmup_ratio=0.03, max_grad_norm=0.3, per_device_train_batch_size=4,
    gradient_accumulation_steps=2, gradient_checkpointing=True, max_length=1024, packing=False, num_train_epochs=1.0,
)

PRESETS: dict[str, dict[str, Any]] = {
    # CPU default: fast on 2 cores, full precision weights dequantized from the shipped GGUF.
    # LoRA on the top 10 layers without dropout (dropout's random masks are a noticeable share of a CPU
    # step). The data mix (data/prepare.py: synthetic chats of several writers + windows of real chat) is
    # several times the old seed set, so one pass over it fits the training-time budget (README: the recipe
    # comparison).
    "smollm2-135m": dict(model="smollm2-135m-instruct", output_dir="runs/smollm2-135m", num_train_epochs=1.0,
                         decision_weight=5.0, lora_top_layers=10, lora_dropout=0.0),
    "gemma3-270m": dict(model="gemma3-270m", template="gemma", output_dir="runs/gemma3-270m", max_length=1536),
    "llama-2-7b-chat": dict(lora_top_layers=None, target_modules="all-linear", model="llama-2-7b-chat", template="llama-2", output_dir="runs/llama-2-7b-chat", **_SEED_7B),
    "zephyr-7b-beta": dict(lora_top_layers=None, target_modules="all-linear", model="zephyr-7b-beta", template="zephyr", output_dir="runs/zephyr-7b-beta", **_SEED_7B),
    "openchat-3.5-0106": dict(lora_top_layers=None, target_modules="all-linear", model="openchat-3.5-0106", template="openchat", output_dir="runs/openchat-3.5-0106", **_SEED_7B),
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


def build_config(preset: str | None = None, config_file: str | Path | None = None,
                 overrides: dict[str, Any] | None = None, sets: list[str] | None = None) -> TrainConfig:
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
