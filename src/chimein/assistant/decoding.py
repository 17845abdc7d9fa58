"""Greedy decoding of a reply, one token at a time: the step of the local backend whatever its engine (numpy, no torch)."""

from __future__ import annotations

import numpy as np

REPETITION_PENALTY = 1.3  # mild: small models loop under plain greedy decoding


def next_reply_token(logits: np.ndarray, generated: list[int], banned: set[int] | list[int] = ()) -> int:
    """The next token: the best score after a repetition penalty on the tokens already generated.

    ``banned``: tokens ruled out at this step. For the first token after a forced ``(response)`` the
    backend bans the end of turn and the start of another marker: the model chose to speak, and
    "(response)" followed by nothing or by "(silence)" would be an empty reply (read as silence).
    """
    scores = np.array(logits, dtype=np.float32)
    for t in set(generated):
        scores[t] = scores[t] / REPETITION_PENALTY if scores[t] > 0 else scores[t] * REPETITION_PENALTY
    if banned:
        scores[list(banned)] = -np.inf
    return int(np.argmax(scores))
