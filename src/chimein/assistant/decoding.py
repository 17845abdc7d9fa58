"""Greedy decoding of a reply, one token at a time: the step both local backends share (numpy, no torch)."""

from __future__ import annotations

import numpy as np

REPETITION_PENALTY = 1.3  # mild: small models loop under plain greedy decoding


def next_reply_token(logits: np.ndarray, generated: list[int], stop_ids: set[int], may_stop: bool = True) -> int:
    """The next token: the best score after a repetition penalty on the tokens already generated.

    ``may_stop=False`` rules out the stop tokens, for the first token after a forced ``(response)``: the
    model chose to speak, and an end of turn right there would be an empty reply (read as silence).
    """
    scores = np.array(logits, dtype=np.float32)
    for t in set(generated):
        scores[t] = scores[t] / REPETITION_PENALTY if scores[t] > 0 else scores[t] * REPETITION_PENALTY
    if not may_stop:
        scores[list(stop_ids)] = -np.inf
    return int(np.argmax(scores))
