"""One local backend over a small engine: the decision, greedy decoding, the context window, the baseline.

The algorithm (``mode="fast"``, the default):
1. Render the room's conversation with the generation prompt (the fine-tuned format, no system prompt),
   fitted into the context window (``assistant/window.py``). The engine keeps the room's cache and runs
   only the tokens it does not hold yet: usually just the newest message.
2. ``(silence)`` and ``(response)`` share their first token(s); after those, the first token where they
   differ decides. ``p_speak`` is the two-way softmax of the model's logits for those two tokens (written
   as a sigmoid of their difference).
3. Speak when ``p_speak >= threshold`` or the message asks the assistant directly (``core.should_speak``);
   only then generate the reply: greedy with a mild repetition penalty (``decoding.py``), after forcing the
   rest of ``(response)``; the reply's first token may be neither an end of turn nor another marker.
   With ``decide_only`` the decision is returned without generating the reply.

``mode="generate"`` (the seed's loop, kept for benchmarks; engines with a ``generate`` method only):
re-encode the whole history and let the engine generate the assistant turn, every message.

Prompted baseline (``style="baseline"``): the seed's system prompt and reminders, the assistant turn
generated (through the room's cache, or by the engine's ``generate`` in ``mode="generate"``), post-filtered.

An engine is small: ``new_state()``, ``advance(state, ids) -> (last logits, tokens run)`` which brings the
room's cache to exactly ``ids``, ``tokenize``, ``detokenize``, ``eos_id`` and ``n_ctx`` (None: no fixed
context). How a room's cache is kept (a transformers ``DynamicCache``, llama.cpp KV cells) is the engine's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from chimein.assistant.core import (
    STUCK_THRESHOLD,
    Decision,
    decision_without_the_model,
    parse_reply,
    should_speak,
    speakers,
)
from chimein.assistant.decoding import next_reply_token
from chimein.assistant.prompts import baseline_messages
from chimein.assistant.window import fit_window
from chimein.data import Message
from chimein.format import RESPONSE, SILENCE, ChatFormat, to_chat_turns
from chimein.markers import find_marker_split

DEFAULT_CONTEXT_TOKENS = 2048  # the window of an engine without a fixed context size
CONTEXT_MARGIN = 16  # tokens kept free past the reply in a fixed context


class Engine(Protocol):
    """A model that runs token ids for one room at a time and keeps each room's cache."""

    eos_id: int | None
    n_ctx: int | None  # context size in tokens, None when the engine has no fixed limit

    def new_state(self) -> Any: ...

    def advance(self, state: Any, ids: list[int]) -> tuple[np.ndarray, int]:
        """Bring the room's cache to exactly ``ids``, running only what it does not hold (at least the last
        token); return the last position's logits over the vocabulary and the number of tokens run."""
        ...

    def tokenize(self, text: str) -> list[int]: ...

    def detokenize(self, ids: list[int]) -> str: ...


@dataclass(eq=False)
class LocalRoom:
    """One room: the engine's cache for it and the first message still inside the context window."""

    kv: Any
    start: int = 0


def speak_probability(response_logit: float, silence_logit: float) -> float:
    """The two-way softmax of the marker logits, ``sigmoid(response - silence)``, without overflow."""
    d = float(response_logit) - float(silence_logit)
    if d >= 0:
        return 1.0 / (1.0 + math.exp(-d))
    e = math.exp(d)
    return e / (1.0 + e)


class LocalBackend:
    """The chimein assistant on a local engine (transformers or llama.cpp)."""

    def __init__(
        self,
        engine: Engine,
        fmt: ChatFormat,
        *,
        threshold: float = 0.5,
        mode: str = "fast",
        style: str = "finetuned",
        baseline_variant: str = "short",
        max_new_tokens: int = 80,
        max_context_tokens: int | None = None,
        answer_direct_questions: bool = True,
        stuck_threshold: float | None = STUCK_THRESHOLD,
        decide_only: bool = False,
        name: str = "local",
    ):
        if mode not in ("fast", "generate"):
            raise ValueError("mode must be 'fast' or 'generate'")
        if style not in ("finetuned", "baseline"):
            raise ValueError("style must be 'finetuned' or 'baseline'")
        if mode == "generate" and not hasattr(engine, "generate"):
            raise ValueError(f"{type(engine).__name__} has no generate mode")
        self.engine, self.fmt, self.name = engine, fmt, name
        self.threshold, self.mode, self.style, self.variant = threshold, mode, style, baseline_variant
        self.max_new_tokens, self.answer_direct_questions = max_new_tokens, answer_direct_questions
        self.stuck_threshold, self.decide_only = stuck_threshold, decide_only
        self.rules_skip_model = False  # see core.decision_without_the_model (a server with a replier sets it)
        if max_context_tokens is None:
            max_context_tokens = (
                engine.n_ctx - max_new_tokens - CONTEXT_MARGIN if engine.n_ctx else DEFAULT_CONTEXT_TOKENS
            )
        self.max_context_tokens = max_context_tokens
        self.supports_probability = style == "finetuned" and mode == "fast"
        self.split = find_marker_split(fmt, engine.tokenize) if style == "finetuned" else None
        self.end_markers = (fmt.end_of_turn,)
        eot = engine.tokenize(fmt.end_of_turn) if fmt.end_of_turn else []
        self.stop_ids = {i for i in (engine.eos_id, eot[0] if len(eot) == 1 else None) if i is not None}
        # A reply's first token may be neither an end of turn nor the start of another marker.
        self.opening_bans = self.stop_ids | set(self.split.reply_bans if self.split else ())

    def new_state(self) -> LocalRoom:
        return LocalRoom(self.engine.new_state())

    def decide(
        self, messages: list[Message], state: LocalRoom | None = None, threshold: float | None = None
    ) -> Decision:
        room = state if state is not None else self.new_state()
        threshold = self.threshold if threshold is None else threshold
        if self.style == "baseline":
            return self._generated_turn(room, self._baseline_prompt(messages), speakers(messages))
        if self.mode == "fast" and (ruled := decision_without_the_model(self, messages, threshold)) is not None:
            return ruled  # the room's cache reads these messages at its next decision
        prompt = self._windowed_prompt(messages, room)
        if self.mode == "generate":
            return self._generated_turn(room, prompt, speakers(messages))
        assert self.split is not None
        decided = prompt + self.split.shared
        logits, processed = self.engine.advance(room.kv, decided)
        p_speak = speak_probability(logits[self.split.response], logits[self.split.silence])
        if not should_speak(p_speak, threshold, messages, self.answer_direct_questions, self.stuck_threshold):
            return Decision(False, "", p_speak, SILENCE, tokens_processed=processed)
        if self.decide_only:
            return Decision(True, "", p_speak, RESPONSE, tokens_processed=processed)
        forced = decided + [self.split.response, *self.split.response_rest]
        raw = RESPONSE + self._greedy(room, forced, self.opening_bans)[0]
        speak, text = parse_reply(raw, self.end_markers, speakers(messages))
        return Decision(speak, text, p_speak, raw, tokens_processed=processed)

    def _windowed_prompt(self, messages: list[Message], room: LocalRoom) -> list[int]:
        render = lambda ms: self.engine.tokenize(
            self.fmt.render(to_chat_turns(ms, open_end=True), add_generation_prompt=True)
        )  # noqa: E731
        room.start, ids = fit_window(messages, room.start, render, self.max_context_tokens)
        return ids

    def _baseline_prompt(self, messages: list[Message]) -> list[int]:
        """The seed's prompted baseline: its system prompt (+ reminders) in the model's chat template."""
        chat = baseline_messages(messages, self.variant)
        text = self.fmt.tokenizer.apply_chat_template(
            chat, chat_template=self.fmt.template, tokenize=False, add_generation_prompt=True
        )
        return self.engine.tokenize(text)

    def _generated_turn(self, room: LocalRoom, prompt: list[int], names: set[str]) -> Decision:
        """The whole assistant turn generated after ``prompt`` and read by ``parse_reply`` (no p_speak)."""
        if self.mode == "generate":
            # No repetition penalty here: transformers applies it to the prompt too, where the end-of-turn
            # token appears after every message, so the model could no longer stop.
            raw = self.engine.detokenize(self.engine.generate(prompt, self.max_new_tokens, self.stop_ids))  # type: ignore[attr-defined]
            processed = len(prompt)
        else:
            raw, processed = self._greedy(room, prompt, ())
        speak, text = parse_reply(raw, self.end_markers, names)
        return Decision(speak, text, None, raw, tokens_processed=processed)

    def _greedy(self, room: LocalRoom, ids: list[int], opening_bans: set[int] | tuple[()]) -> tuple[str, int]:
        """Greedy decoding after ``ids`` through the room's cache (which follows along); the text and the
        prompt tokens the engine had to run."""
        logits, processed = self.engine.advance(room.kv, ids)
        out: list[int] = []
        for _ in range(self.max_new_tokens):
            token = next_reply_token(logits, out, () if out else opening_bans)
            if token in self.stop_ids:
                break
            out.append(token)
            logits, _ = self.engine.advance(room.kv, ids + out)
        return self.engine.detokenize(out), processed
