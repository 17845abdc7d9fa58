"""The transformers engine: a causal LM with one key/value cache per room (the decision is ``local.py``'s).

A room's cache (:class:`RoomCache`) holds the tokens it covers; advancing to new ids crops it back to the
common prefix and runs the rest in chunks of ``PREFILL_CHUNK`` tokens. ``generate`` is the seed's naive
loop (``mode="generate"``): no cache, the whole prompt re-encoded by ``model.generate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from chimein.assistant.backends.local import LocalBackend
from chimein.format import ChatFormat
from chimein.markers import adapter_threshold, common_prefix_len

PREFILL_CHUNK = 256  # tokens per forward pass when a room's cache is (re)built


@dataclass
class RoomCache:
    """One room's model state: the tokens the key/value cache covers, and the cache itself."""

    ids: list[int] = field(default_factory=list)
    cache: Any = None


class TransformersEngine:
    n_ctx = None  # the window is chosen by the backend (max_context_tokens)

    def __init__(self, model: Any, tokenizer: Any, fmt: ChatFormat):
        self.model, self.tokenizer, self.fmt = model, tokenizer, fmt
        self.eos_id: int | None = tokenizer.eos_token_id

    def new_state(self) -> RoomCache:
        return RoomCache()

    def tokenize(self, text: str) -> list[int]:
        return self.fmt.tokenize(text)

    def detokenize(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    @torch.inference_mode()
    def advance(self, state: RoomCache, target: list[int]) -> tuple[np.ndarray, int]:
        from transformers import DynamicCache

        n = common_prefix_len(state.ids, target)
        if n == len(target):
            n -= 1  # we need the logits of the last position, so re-run at least one token
        if state.cache is None or n == 0:
            state.cache, n = DynamicCache(config=self.model.config), 0
        elif n < state.cache.get_seq_length():
            state.cache.crop(n - state.cache.get_seq_length())  # transformers 5: a negative count removes tokens
        # A rebuild after an overflow runs a whole window: in chunks, so that the attention scores and MLP
        # activations of one chunk are all that is ever held. Only the last position's logits are kept, not
        # (tokens x vocabulary) floats.
        for start in range(n, len(target), PREFILL_CHUNK):
            new = torch.tensor([target[start : start + PREFILL_CHUNK]], dtype=torch.long)
            out = self.model(input_ids=new, past_key_values=state.cache, use_cache=True, logits_to_keep=1)
            state.cache = out.past_key_values
        state.ids = list(target)
        return out.logits[0, -1].float().numpy(), len(target) - n

    @torch.inference_mode()
    def generate(self, prompt_ids: list[int], max_new_tokens: int, stop_ids: set[int]) -> list[int]:
        """The naive loop: ``model.generate`` greedy from scratch; the new tokens, the stop token included."""
        out = self.model.generate(
            torch.tensor([prompt_ids]),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=list(stop_ids) or None,
            pad_token_id=self.tokenizer.eos_token_id,
        )
        return out[0, len(prompt_ids) :].tolist()


def backend(model: Any, tokenizer: Any, fmt: ChatFormat, **kwargs: Any) -> LocalBackend:
    """A :class:`LocalBackend` over an already loaded transformers model (``LocalBackend`` options)."""
    kwargs.setdefault("name", "hf")
    return LocalBackend(TransformersEngine(model, tokenizer, fmt), fmt, **kwargs)


def load(name: str = "default", template: str | None = None, **kwargs: Any) -> LocalBackend:
    """Load a model by name (``default``, a registry name, a dir, an adapter dir) with transformers.

    The prompted baseline (``style="baseline"``) runs the seed's naive loop unless ``mode`` says otherwise."""
    from chimein.models import load_model_and_tokenizer

    model, tokenizer, resolved = load_model_and_tokenizer(name)
    # The prompted baseline has a system prompt, which ChatML renders; the fine-tuned format has none.
    fmt = ChatFormat.for_tokenizer(tokenizer, template or resolved.template)
    if resolved.adapter is not None and kwargs.get("threshold") is None:
        kwargs["threshold"] = adapter_threshold(resolved.adapter)
    if kwargs.get("threshold") is None:
        kwargs.pop("threshold", None)
    if kwargs.get("mode") is None:
        kwargs["mode"] = "generate" if kwargs.get("style") == "baseline" else "fast"
    return backend(model, tokenizer, fmt, name=name, **kwargs)
