"""trl's SFTTrainer with one addition: the decision tokens can weigh more in the loss.

Each assistant turn starts with ``(silence)`` or ``(response)``, and one token decides which (see
``markers.py``). Everything after it is reply text. With plain token-averaged loss the decision
is a small share of the trained tokens, so most of the gradient
goes to reply wording a 135M model cannot get right anyway. ``decision_weight`` multiplies the loss of
the first ``decision_tokens`` trained tokens of every assistant span (the shared ``(`` plus the deciding
token); the normalisation stays trl's (per trained token), so weight 1 is exactly SFTTrainer's loss.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from trl import SFTTrainer

IGNORE_INDEX = -100


def decision_positions(labels: torch.Tensor, decision_tokens: int) -> torch.Tensor:
    """Bool mask over ``labels`` (batch, seq): the first ``decision_tokens`` trained tokens of each span."""
    trained = labels != IGNORE_INDEX
    starts = trained & ~F.pad(trained[:, :-1], (1, 0), value=False)
    mask = starts.clone()
    for shift in range(1, decision_tokens):
        mask |= F.pad(starts[:, :-shift], (shift, 0), value=False) & trained
    return mask


class DecisionWeightedSFTTrainer(SFTTrainer):
    def __init__(self, *args: Any, decision_weight: float = 1.0, decision_tokens: int = 1, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.decision_weight, self.decision_tokens = decision_weight, decision_tokens

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
        if self.decision_weight == 1.0 or return_outputs:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        labels = inputs["labels"]
        targets = labels[:, 1:]
        trained = targets != IGNORE_INDEX
        # Logits only where the next token is trained (about a third of the positions in chimein's data):
        # the LM head is a quarter of a 135M model's compute, and it runs through the model's own forward,
        # so peft, DDP and FSDP wrappers see a normal call.
        keep = F.pad(trained, (0, 1), value=False)
        features = {k: v for k, v in inputs.items() if k != "labels"}
        logits = model(**features, use_cache=False, logits_to_keep=keep).logits.float()
        nll = F.cross_entropy(logits, targets[trained], reduction="none")
        decision = decision_positions(labels, self.decision_tokens)[:, 1:][trained]
        weights = torch.where(decision, self.decision_weight, 1.0).to(nll.dtype)
        num_tokens = trained.sum() if num_items_in_batch is None else num_items_in_batch
        loss = (nll * weights).sum() / torch.as_tensor(num_tokens).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())  # as trl does, for DDP
        mode = "train" if model.training else "eval"
        with torch.no_grad():
            self._metrics[mode]["decision_loss"].append(float(nll[decision].mean()) if decision.any() else 0.0)
            self._metrics[mode]["mean_token_accuracy"].append(
                float((logits.argmax(-1) == targets[trained]).float().mean())
            )
        return loss
