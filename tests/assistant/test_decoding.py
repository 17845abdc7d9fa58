"""Greedy reply decoding: the stop token, the opening ban, the repetition penalty."""

import numpy as np

from chimein.assistant.decoding import next_reply_token


def test_reply_decoding_step():
    logits = np.array([0.0, 3.0, 2.0, 1.0])  # token 1 is the stop token and the model's favourite
    assert next_reply_token(logits, []) == 1
    assert next_reply_token(logits, [], banned={1}) == 2  # right after (response): never empty
    assert next_reply_token(np.array([0.0, 0.0, 2.0, 1.8]), [2]) == 3  # 2.0 / 1.3 < 1.8: repetition penalty
