"""chimein.train.trainer: the decision-weighted loss."""

import torch

from chimein.format import IGNORE_INDEX, ChatFormat
from chimein.train.config import build_config
from chimein.train.sft import sft_config


def test_decision_positions_are_the_marker_tokens_of_every_assistant_turn(smollm2_tokenizer, sample_conversations):
    from chimein.markers import find_marker_split
    from chimein.train.trainer import decision_positions

    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    split = find_marker_split(fmt)
    for conv in sample_conversations:
        enc = fmt.encode_conversation(conv)
        mask = decision_positions(torch.tensor([enc.labels]), len(split.shared) + 1)[0]
        picked = [t for t, m in zip(enc.input_ids, mask.tolist()) if m]
        k = len(split.shared) + 1
        per_turn = [picked[i : i + k] for i in range(0, len(picked), k)]
        gold = [gold is not None for _, gold in conv.decisions()]
        assert len(per_turn) == conv.user_turns == len(gold)
        assert per_turn == [split.shared + [split.response if speak else split.silence] for speak in gold]


def test_decision_weight_multiplies_exactly_the_decision_token_loss(
    tiny_model, smollm2_tokenizer, sample_conversations, tmp_path
):
    """Weight 1 is trl's own loss; weight w adds (w - 1) x the decision tokens' loss, same normalisation."""
    import copy

    from datasets import Dataset

    from chimein.markers import find_marker_split
    from chimein.train.sft import unpacked
    from chimein.train.trainer import DecisionWeightedSFTTrainer, decision_positions

    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    k = len(find_marker_split(fmt).shared) + 1
    ds = Dataset.from_list(unpacked([fmt.encode_conversation(c) for c in sample_conversations]))
    cfg = build_config(None, overrides={"output_dir": str(tmp_path)}, sets=["save_steps=1000"])
    model = copy.deepcopy(tiny_model)  # the trainer patches the model's forward
    trainer = DecisionWeightedSFTTrainer(
        model=model,
        args=sft_config(cfg, has_eval=False),
        train_dataset=ds,
        processing_class=smollm2_tokenizer,
        decision_tokens=k,
    )
    batch = trainer.data_collator([ds[0]])
    labels = batch["labels"]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0, :-1]
        nll = torch.nn.functional.cross_entropy(logits, labels[0, 1:].clamp(min=0), reduction="none")
        trained = labels[0, 1:] != IGNORE_INDEX
        decision = decision_positions(labels, k)[0, 1:]
        plain = trainer.compute_loss(model, dict(batch))
        trainer.decision_weight = 5.0
        weighted = trainer.compute_loss(model, dict(batch))
    n = trained.sum()
    assert torch.isclose(plain, (nll * trained).sum() / n, atol=1e-4)
    assert torch.isclose(weighted, ((nll * trained).sum() + 4.0 * (nll * decision).sum()) / n, atol=1e-4)
    assert decision.sum() == k * sample_conversations[0].user_turns
