"""LoRA / QLoRA supervised fine-tuning with trl's SFTTrainer, loss on assistant turns only.

    chimein train --preset smollm2-135m                      # the CPU default
    chimein train --preset zephyr-7b-beta                    # QLoRA nf4 on one CUDA GPU
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m chimein.cli train --preset zephyr-7b-beta

Steps: load and check the data -> tokenize with chimein's own assistant-only labels (verified before
training) -> pack several conversations per sequence, attention kept inside each one -> SFTTrainer with a
peft LoraConfig -> save adapter, tokenizer, config, log and report in the run directory.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chimein.data import Conversation, load_conversations
from chimein.format import IGNORE_INDEX, ChatFormat, Encoded
from chimein.train.config import TrainConfig


class TrainingError(RuntimeError):
    pass


# -- data -----------------------------------------------------------------------------------------------


def encode_and_check(conversations: list[Conversation], fmt: ChatFormat) -> list[Encoded]:
    """Tokenize every conversation and run the loud mask checks (as trl does for assistant_only_loss):

    every example has trained tokens; the number of assistant spans equals the number of assistant turns;
    each span's tokens decode back to its text, end-of-turn marker included ("or the model may not learn
    to stop", which for chimein means: to stop after "(silence)").
    """
    encoded = []
    for conv in conversations:
        enc = fmt.encode_conversation(conv)
        where = conv.meta.get("source") or conv.meta.get("id") or "conversation"
        if enc.trained_tokens == 0:
            raise TrainingError(f"{where}: no assistant tokens to train on")
        if len(enc.spans) != conv.user_turns:
            raise TrainingError(f"{where}: {len(enc.spans)} assistant spans for {conv.user_turns} user turns")
        trained = fmt.tokenizer.decode([t for t in enc.labels if t != IGNORE_INDEX], skip_special_tokens=False)
        if fmt.end_of_turn and trained.count(fmt.end_of_turn) < len(enc.spans):
            raise TrainingError(
                f"{where}: the end-of-turn marker {fmt.end_of_turn!r} is not inside every trained span"
            )
        encoded.append(enc)
    return encoded


def unpacked(encoded: list[Encoded]) -> list[dict[str, list[int]]]:
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in encoded]


def explain_example(enc: Encoded, tokenizer: Any) -> str:
    """A readable view of one example: trained tokens in [[double brackets]], the rest as is."""
    runs: list[tuple[bool, list[int]]] = []
    for tid, label in zip(enc.input_ids, enc.labels):
        trained = label != IGNORE_INDEX
        if runs and runs[-1][0] == trained:
            runs[-1][1].append(tid)
        else:
            runs.append((trained, [tid]))
    text = (tokenizer.decode(ids, skip_special_tokens=False) for _, ids in runs)
    return "".join(f"[[{t}]]" if trained else t for (trained, _), t in zip(runs, text))


# -- model and trainer ----------------------------------------------------------------------------------


LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # Llama, Mistral, Gemma


def lora_config(cfg: TrainConfig, num_layers: int | None = None) -> Any:
    from peft import LoraConfig

    targets, layers = cfg.target_modules, None
    if cfg.lora_top_layers and num_layers and cfg.lora_top_layers < num_layers:
        layers = list(range(num_layers - cfg.lora_top_layers, num_layers))
        targets = LINEAR_MODULES if targets == "all-linear" else targets  # peft needs a list with layers_to_transform
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        layers_to_transform=layers,
        bias="none",
        task_type="CAUSAL_LM",
    )


def quantization_config(cfg: TrainConfig) -> Any:
    """QLoRA's 4-bit nf4 base weights; refuses clearly where bitsandbytes cannot run."""
    if not cfg.load_in_4bit:
        return None
    import torch

    if not torch.cuda.is_available():
        raise TrainingError(
            "4-bit (QLoRA) training needs a CUDA GPU; on CPU use --set load_in_4bit=false (full precision LoRA)"
        )
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if cfg.bf16 else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute, bnb_4bit_use_double_quant=True
    )


def sft_config(cfg: TrainConfig, has_eval: bool) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=cfg.output_dir,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        max_grad_norm=cfg.max_grad_norm,
        weight_decay=cfg.weight_decay,
        max_length=cfg.max_length,
        # Several conversations per sequence, no padding. trl warns that this needs FlashAttention; with SDPA,
        # transformers builds the block-diagonal mask from the restarting position_ids as long as the model
        # runs without a KV cache (see `run`), and tests/train/test_packing.py checks there is no leakage.
        packing=cfg.packing,
        packing_strategy="bfd",
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=cfg.bf16,
        fp16=cfg.fp16,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if has_eval and cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps,
        per_device_eval_batch_size=1,
        seed=cfg.seed,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not _cuda(),
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass
class TrainResult:
    output_dir: Path
    train_loss: float
    steps: int
    seconds: float
    tokens: int
    trained_tokens: int


def run(cfg: TrainConfig, resume: bool = False, explain: bool = False, progress: bool = True) -> TrainResult:
    """Train a LoRA adapter as configured and write the run directory."""
    import torch
    import yaml
    from datasets import Dataset
    from transformers.trainer_callback import ProgressCallback

    from chimein.markers import adapter_threshold, find_marker_split
    from chimein.train.trainer import DecisionWeightedSFTTrainer

    from chimein.models import load_causal_lm, load_tokenizer, resolve_model

    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resolved = resolve_model(cfg.model)
    tokenizer = load_tokenizer(resolved)
    fmt = ChatFormat.for_tokenizer(tokenizer, cfg.template or resolved.template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    train_convs = load_conversations(cfg.train_file)[: cfg.limit or None]
    encoded = encode_and_check(train_convs, fmt)
    if explain:
        print(explain_example(encoded[0], tokenizer))
    too_long = sum(len(e.input_ids) > cfg.max_length for e in encoded)
    if too_long:
        print(f"warning: {too_long} conversation(s) longer than max_length={cfg.max_length} tokens will be truncated")
    train_ds = Dataset.from_list(unpacked(encoded))
    eval_ds = None
    if cfg.valid_file and cfg.eval_steps:
        eval_ds = Dataset.from_list(unpacked(encode_and_check(load_conversations(cfg.valid_file), fmt)))

    model = (
        load_causal_lm(resolved, quantization_config=quantization_config(cfg))
        if cfg.load_in_4bit
        else load_causal_lm(resolved)
    )
    # With a KV cache in the forward pass transformers ignores packed position_ids and lets a conversation
    # attend to the one packed before it. Training never needs the cache.
    model.config.use_cache = False
    peft_config = lora_config(cfg, model.config.num_hidden_layers)
    if cfg.init_adapter:
        from peft import PeftModel

        base_path = model.name_or_path
        model, peft_config = PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True), None
        # The adapter names its base by hub id; saving would look that up online (to see whether the embeddings
        # changed). Name the local copy, as a fresh LoRA does; _name_the_base_model writes the hub id back.
        model.peft_config["default"].base_model_name_or_path = base_path
    trainer = DecisionWeightedSFTTrainer(
        model=model,
        args=sft_config(cfg, eval_ds is not None),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        decision_weight=cfg.decision_weight,
        decision_tokens=len(find_marker_split(fmt).shared) + 1,
    )
    if not progress:
        trainer.remove_callback(ProgressCallback)
    start = time.time()
    last = _last_checkpoint(out) if resume else None
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.time() - start

    trainer.model.save_pretrained(out)
    _name_the_base_model(out / "adapter_config.json", cfg.model)
    tokenizer.save_pretrained(out)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    meta: dict[str, Any] = {"base_model": cfg.model, "template": fmt.template_name}
    if cfg.init_adapter:  # the eagerness chosen for the adapter it continues, until one is chosen for this one
        meta.update(threshold=adapter_threshold(cfg.init_adapter), continued_from=cfg.init_adapter)
    (out / "chimein.json").write_text(json.dumps(meta, indent=2))
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trainer.state.log_history))
    tokens = sum(len(e.input_ids) for e in encoded)
    trained = sum(e.trained_tokens for e in encoded)
    res = TrainResult(out, float(result.training_loss), int(result.global_step), seconds, tokens, trained)
    _write_report(out, cfg, res, len(train_convs), trainer.train_dataset.num_rows)
    return res


def _name_the_base_model(adapter_config: Path, model: str) -> None:
    """peft records the path the base was loaded from (chimein's cache of the dequantized GGUF); write the
    registry's hub id instead, so the adapter also loads elsewhere (vLLM, peft, the hub)."""
    from chimein.models import REGISTRY

    spec = REGISTRY.get(model)
    if spec is not None and spec.hub_id:
        data = json.loads(adapter_config.read_text())
        data["base_model_name_or_path"] = spec.hub_id
        adapter_config.write_text(json.dumps(data, indent=2))


def _last_checkpoint(out: Path) -> Path | None:
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return ckpts[-1] if ckpts else None


def _write_report(out: Path, cfg: TrainConfig, res: TrainResult, n_convs: int, n_rows: int) -> None:
    tps = res.tokens * cfg.num_train_epochs / res.seconds if res.seconds else 0.0
    adapter = (
        f"continued from the adapter in {cfg.init_adapter}"
        if cfg.init_adapter
        else f"LoRA r={cfg.lora_r}, alpha={cfg.lora_alpha}, targets={cfg.target_modules}"
    )
    (out / "report.md").write_text(
        f"# Training run: {out.name}\n\n"
        f"- base model: {cfg.model}; {adapter}\n"
        f"- data: {n_convs} conversations from {cfg.train_file}, {res.tokens} tokens ({res.trained_tokens} trained), "
        f"{n_rows} {'packed sequences' if cfg.packing else 'sequences'}\n"
        f"- {res.steps} optimizer steps, {cfg.num_train_epochs} epochs, lr {cfg.learning_rate} ({cfg.lr_scheduler_type})\n"
        f"- final train loss {res.train_loss:.4f}; wall time {res.seconds / 60:.1f} min; about {tps:.0f} tokens/s\n"
    )


def merge_adapter(run_dir: Path) -> Path:
    """Write base + adapter as one plain model (``RUN/merged``), for tools that cannot load adapters."""
    from chimein.models import load_model_and_tokenizer

    model, tokenizer, _ = load_model_and_tokenizer(str(run_dir))
    target = Path(run_dir) / "merged"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def push_adapter(run_dir: Path, repo: str) -> None:
    """Push the adapter and tokenizer to the hub; offline, a clear error and the run directory untouched."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().upload_folder(folder_path=str(run_dir), repo_id=repo, ignore_patterns=["checkpoint-*", "merged/*"])
    except (HfHubHTTPError, OSError) as e:
        raise TrainingError(
            f"could not push {run_dir} to {repo} (offline or not logged in?): {e}. The run directory is intact."
        ) from e
