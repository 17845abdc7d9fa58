import json

import pytest
import torch

from chimein.data import load_conversations
from chimein.format import IGNORE_INDEX, ChatFormat
from chimein.train.config import TrainConfig, build_config
from chimein.train.sft import TrainingError, encode_and_check, lora_config, quantization_config, sft_config
from tests.helpers import REPO


@pytest.mark.parametrize("preset", ["llama-2-7b-chat", "zephyr-7b-beta", "openchat-3.5-0106"])
def test_seed_7b_presets_build_the_seed_recipe(preset, tmp_path):
    cfg = build_config(preset, overrides={"output_dir": str(tmp_path)})
    lora = lora_config(cfg, num_layers=32)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (64, 16, 0.1)
    assert lora.layers_to_transform is None
    args = sft_config(cfg, has_eval=False)
    assert args.learning_rate == 2e-4 and args.lr_scheduler_type == "constant"
    assert (
        args.max_grad_norm == 0.3 and args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 2
    )
    assert args.gradient_checkpointing and args.max_length == 1024 and args.warmup_steps == 0.03
    assert (
        cfg.load_in_4bit
        and cfg.template
        == {"llama-2-7b-chat": "llama-2", "zephyr-7b-beta": "zephyr", "openchat-3.5-0106": "openchat"}[preset]
    )


def test_four_bit_is_refused_clearly_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TrainingError, match="needs a CUDA GPU"):
        quantization_config(build_config("zephyr-7b-beta"))


def test_default_lora_adapts_only_the_top_layers():
    lora = lora_config(TrainConfig(), num_layers=30)
    assert lora.layers_to_transform == list(range(20, 30))  # the shipped recipe: the top 10 of 30
    assert set(lora.target_modules) >= {"q_proj", "down_proj"}


def test_every_shipped_training_example_passes_the_mask_checks(smollm2_tokenizer):
    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    convs = load_conversations(REPO / "data" / "train.jsonl")[:60]
    encoded = encode_and_check(convs, fmt)
    assert all(e.trained_tokens > 0 for e in encoded)


def test_packed_sequences_do_not_attend_across_conversations(tiny_model, smollm2_tokenizer, sample_conversations):
    """The training path packs conversations with restarting position_ids and no KV cache."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    encs = [fmt.encode_conversation(c) for c in sample_conversations]
    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    batch = collator([{"input_ids": e.input_ids, "labels": e.labels, "seq_lengths": [len(e.input_ids)]} for e in encs])
    with torch.no_grad():
        packed = tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[
            0
        ]
        second = tiny_model(input_ids=torch.tensor([encs[1].input_ids])).logits[0]
    n0 = len(encs[0].input_ids)
    assert torch.allclose(packed[n0:], second, atol=1e-4)


@pytest.mark.slow
def test_short_real_training_lowers_the_loss_on_assistant_tokens_only(tmp_path):
    """A few steps of the default recipe on the real SmolLM2: loss falls, only assistant tokens carry loss."""
    from chimein.train.sft import run

    data = REPO / "data" / "train.jsonl"
    cfg = build_config(
        "smollm2-135m",
        overrides={
            "output_dir": str(tmp_path / "run"),
            "train_file": str(data),
            "valid_file": None,
            "limit": 2,
            "max_steps": 6,
        },
        # every step sees the same two conversations, so the loss is comparable from step to step
        sets=[
            "gradient_accumulation_steps=2",
            "learning_rate=1e-3",
            "logging_steps=1",
            "save_steps=1000",
            "lora_top_layers=4",
            "warmup_ratio=0.0",
            "lr_scheduler_type=constant",
        ],
    )
    result = run(cfg, progress=False)
    log = [json.loads(l) for l in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 6
    assert losses[-1] < losses[0]  # the same two conversations every step: the loss on them must fall
    for f in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "config.yaml",
        "chimein.json",
        "report.md",
        "tokenizer.json",
    ):
        assert (tmp_path / "run" / f).exists(), f
    assert (
        json.loads((tmp_path / "run" / "adapter_config.json").read_text())["base_model_name_or_path"]
        == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    # Only assistant tokens carried loss: the labels the trainer saw are -100 everywhere else.
    from chimein.models import load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model("smollm2-135m-instruct"))
    enc = ChatFormat.for_tokenizer(tok, "chatml").encode_conversation(load_conversations(data)[0])
    trained = tok.decode([t for t in enc.labels if t != IGNORE_INDEX])
    assert trained.count("(silence)") + trained.count("(response)") == load_conversations(data)[0].user_turns
    assert result.steps == 6
