"""Local transformers backend: the fine-tuned format with a one-pass speak probability and a per-room cache.

Fast path (``mode="fast"``, the default):
1. Render the room's conversation with the generation prompt; the room's key/value cache already holds
   everything but the newest message, so only the new tokens are run through the model.
2. ``(silence)`` and ``(response)`` share their first token(s); after those, the first token where they
   differ decides. ``p_speak`` is the two-way softmax of the model's logits for those two tokens.
3. Speak when ``p_speak >= threshold`` or the message asks the assistant directly (``core.should_speak``);
   only then generate the reply (greedy), after forcing ``(response)``.

Naive path (``mode="generate"``, the seed's loop, kept for benchmarks): re-encode the whole history and
generate the assistant turn token by token, every message.

Prompted baseline (``style="baseline"``): the seed's system prompt and reminders, generated, post-filtered.

Context overflow: ``assistant/window.py`` (drop the oldest turns down to 3/4 of ``max_context_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from chimein.assistant.core import STUCK_THRESHOLD, Decision, parse_reply, should_speak
from chimein.assistant.decoding import next_reply_token
from chimein.assistant.prompts import baseline_messages
from chimein.data import Message
from chimein.assistant.markers import adapter_threshold, common_prefix_len, find_marker_split
from chimein.assistant.window import fit_window
from chimein.format import RESPONSE, SILENCE, ChatFormat, to_chat_turns


PREFILL_CHUNK = 256  # tokens per forward pass when a room's cache is (re)built


@dataclass
class RoomCache:
    """One room's model state: the tokens the key/value cache covers, and the cache itself."""

    ids: list[int] = field(default_factory=list)
    cache: Any = None
    start: int = 0  # index of the first message still inside the context window


class HFBackend:
    supports_probability = True

    def __init__(self, model: Any, tokenizer: Any, fmt: ChatFormat, *, threshold: float = 0.5, mode: str = "fast",
                 style: str = "finetuned", baseline_variant: str = "short", max_new_tokens: int = 80,
                 max_context_tokens: int = 2048, name: str = "hf", answer_direct_questions: bool = True,
                 stuck_threshold: float | None = STUCK_THRESHOLD):
        if mode not in ("fast", "generate"):
            raise ValueError("mode must be 'fast' or 'generate'")
        if style not in ("finetuned", "baseline"):
            raise ValueError("style must be 'finetuned' or 'baseline'")
        self.model, self.tokenizer, self.fmt = model, tokenizer, fmt
        self.threshold, self.mode, self.style, self.variant = threshold, mode, style, baseline_variant
        self.max_new_tokens, self.max_context_tokens, self.name = max_new_tokens, max_context_tokens, name
        self.answer_direct_questions, self.stuck_threshold = answer_direct_questions, stuck_threshold
        self.supports_probability = style == "finetuned" and mode == "fast"
        self.split = find_marker_split(fmt) if style == "finetuned" else None
        eot = fmt.tokenize(fmt.end_of_turn) if fmt.end_of_turn else []
        self.stop_ids = {i for i in [tokenizer.eos_token_id, eot[0] if len(eot) == 1 else None] if i is not None}
        # A reply's first token may be neither an end of turn nor the start of another marker.
        self.opening_bans = self.stop_ids | set(self.split.reply_bans if self.split else ())

    @classmethod
    def load(cls, name: str = "default", template: str | None = None, **kwargs: Any) -> "HFBackend":
        from chimein.models import load_model_and_tokenizer

        model, tokenizer, resolved = load_model_and_tokenizer(name)
        # The prompted baseline has a system prompt, which ChatML renders; the fine-tuned format has none.
        fmt = ChatFormat.for_tokenizer(tokenizer, template or resolved.template)
        if resolved.adapter is not None and "threshold" not in kwargs:
            kwargs["threshold"] = adapter_threshold(resolved.adapter)
        return cls(model, tokenizer, fmt, name=name, **kwargs)

    def new_state(self) -> RoomCache:
        return RoomCache()

    # -- the decision -------------------------------------------------------------------------------

    def decide(self, messages: list[Message], state: RoomCache | None = None, threshold: float | None = None) -> Decision:
        state = state if state is not None else RoomCache()
        threshold = self.threshold if threshold is None else threshold
        if self.style == "baseline":
            return self._generate_baseline(messages)
        prompt_ids = self._windowed_prompt(messages, state)
        if self.mode == "generate":
            raw = self._generate_fresh(prompt_ids)
            speak, text = parse_reply(raw, (self.fmt.end_of_turn,))
            return Decision(speak, text, None, raw, tokens_processed=len(prompt_ids))
        assert self.split is not None
        logits, processed = self._advance(state, prompt_ids + self.split.shared)
        pair = torch.stack([logits[self.split.response], logits[self.split.silence]]).float()
        p_speak = float(torch.softmax(pair, dim=0)[0])
        if not should_speak(p_speak, threshold, messages, self.answer_direct_questions, self.stuck_threshold):
            return Decision(False, "", p_speak, SILENCE, tokens_processed=processed)
        raw = self._generate_reply(state)
        speak, text = parse_reply(RESPONSE + raw, (self.fmt.end_of_turn,))
        return Decision(speak, text, p_speak, RESPONSE + raw, tokens_processed=processed)

    def _windowed_prompt(self, messages: list[Message], state: RoomCache) -> list[int]:
        state.start, ids = fit_window(messages, state.start, lambda ms: self.fmt.prompt_ids(to_chat_turns(ms, open_end=True)),
                                      self.max_context_tokens)
        return ids

    @torch.inference_mode()
    def _advance(self, state: RoomCache, target: list[int]) -> tuple[torch.Tensor, int]:
        """Bring the room's cache to ``target`` running only the tokens it does not hold; last logits."""
        from transformers import DynamicCache

        n = common_prefix_len(state.ids, target)
        if n == len(target):
            n -= 1  # we need the logits of the last position, so re-run at least one token
        if state.cache is None or n == 0:
            state.cache, n = DynamicCache(config=self.model.config), 0
        elif n < state.cache.get_seq_length():
            state.cache.crop(n - state.cache.get_seq_length())  # transformers 5: a negative count removes tokens
        # A rebuild after an overflow runs a whole window: in chunks, so that the attention scores and MLP
        # activations of one chunk are all that is ever held (a 1,500-token pass in one go adds ~250 MB).
        # Only the last position's logits are kept: (tokens x vocabulary) floats would be ~400 MB more.
        for start in range(n, len(target), PREFILL_CHUNK):
            new = torch.tensor([target[start:start + PREFILL_CHUNK]], dtype=torch.long)
            out = self.model(input_ids=new, past_key_values=state.cache, use_cache=True, logits_to_keep=1)
            state.cache = out.past_key_values
        state.ids = list(target)
        return out.logits[0, -1], len(target) - n

    @torch.inference_mode()
    def _generate_reply(self, state: RoomCache) -> str:
        """Greedy continuation after forcing the rest of ``(response)``; the cache follows along."""
        assert self.split is not None
        forced = [self.split.response, *self.split.response_rest]
        logits, _ = self._advance(state, state.ids + forced)
        generated: list[int] = []
        for _ in range(self.max_new_tokens):
            token = next_reply_token(logits.float().numpy(), generated, () if generated else self.opening_bans)
            if token in self.stop_ids:
                break
            generated.append(token)
            logits, _ = self._advance(state, state.ids + [token])
        return self.tokenizer.decode(generated, skip_special_tokens=False)

    @torch.inference_mode()
    def _generate_fresh(self, prompt_ids: list[int]) -> str:
        # No repetition penalty here: transformers applies it to the prompt too, where the end-of-turn token
        # appears after every message, so the model could no longer stop and every turn ran to max_new_tokens.
        out = self.model.generate(
            torch.tensor([prompt_ids]), max_new_tokens=self.max_new_tokens, do_sample=False,
            eos_token_id=list(self.stop_ids) or None, pad_token_id=self.tokenizer.eos_token_id,
        )
        return self.tokenizer.decode(out[0, len(prompt_ids):], skip_special_tokens=False)

    def _generate_baseline(self, messages: list[Message]) -> Decision:
        chat = baseline_messages(messages, self.variant)
        text = self.tokenizer.apply_chat_template(chat, chat_template=self.fmt.template, tokenize=False, add_generation_prompt=True)
        ids = self.fmt.tokenize(text)
        raw = self._generate_fresh(ids)
        speak, reply = parse_reply(raw, (self.fmt.end_of_turn,))
        return Decision(speak, reply, None, raw, tokens_processed=len(ids))
