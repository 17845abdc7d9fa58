"""llama.cpp backend (llama-cpp-python): the quantized GGUF base plus chimein's LoRA adapter GGUF.

Same decision as the transformers fast path: one forward pass over the new tokens, ``p_speak`` from the
first token where ``(silence)`` and ``(response)`` differ, generation only when speaking. One ``Llama``
object holds one live sequence; rooms take turns on it. When another room needs the model, the active
room's KV cells are copied out (only the cells its tokens use: ``llama_state_seq_get_data``, about 23 KB per
token for SmolLM2) and copied back when it returns, so each room keeps its prefix cache. The copies live
within ``state_budget_mb``: past it the least recently used room's copy is dropped, and that room is
re-read from its messages when it speaks again (one prefill). The prompt is rendered by the same
:class:`ChatFormat` as in training, then tokenized by llama.cpp itself.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from chimein.assistant.markers import adapter_threshold, common_prefix_len, find_marker_split
from chimein.assistant.window import fit_window
from chimein.assistant.core import STUCK_THRESHOLD, Decision, parse_reply, should_speak
from chimein.assistant.decoding import next_reply_token
from chimein.assistant.prompts import baseline_messages
from chimein.data import Message
from chimein.format import RESPONSE, SILENCE, ChatFormat, to_chat_turns


@dataclass(eq=False)
class LlamaRoom:
    saved: Any = None  # the room's KV cells (a ctypes byte array) while another room holds the model (None: evicted or new)
    ids: list[int] = field(default_factory=list)  # the tokens those cells hold
    start: int = 0  # first message inside the context window


class LlamaCppBackend:
    supports_probability = True

    def __init__(self, llm: Any, fmt: ChatFormat, *, threshold: float = 0.5, max_new_tokens: int = 80,
                 style: str = "finetuned", baseline_variant: str = "short", answer_direct_questions: bool = True,
                 state_budget_mb: float = 256.0, stuck_threshold: float | None = STUCK_THRESHOLD):
        if style not in ("finetuned", "baseline"):
            raise ValueError("style must be 'finetuned' or 'baseline'")
        self.llm, self.fmt, self.threshold, self.max_new_tokens = llm, fmt, threshold, max_new_tokens
        self.style, self.variant, self.answer_direct_questions = style, baseline_variant, answer_direct_questions
        self.stuck_threshold = stuck_threshold
        self.supports_probability = style == "finetuned"
        self.split = find_marker_split(fmt, self.tokenize)
        eot = self.tokenize(fmt.end_of_turn)
        self.stop_ids = {llm.token_eos(), *(eot[:1] if len(eot) == 1 else [])}
        # A reply's first token may be neither an end of turn nor the start of another marker.
        self.opening_bans = self.stop_ids | set(self.split.reply_bans)
        self.max_context_tokens = llm.n_ctx() - max_new_tokens - 16
        self._active: LlamaRoom | None = None
        self.state_budget_bytes = int(state_budget_mb * 2**20)
        # Rooms holding a copy, least recently used first. Weak: a room its caller dropped (a web room gone
        # to sleep, a finished session) frees its copy at once instead of waiting for the budget.
        self._saved: OrderedDict[int, weakref.ref[LlamaRoom]] = OrderedDict()
        self.evictions = 0

    @classmethod
    def load(cls, name: str = "default", *, threshold: float | None = None, n_ctx: int = 4096,
             adapter_gguf: str | None = None, **kwargs: Any) -> "LlamaCppBackend":
        """``name``: a chimein adapter (``default``, a run dir) or a registry/GGUF base model."""
        from llama_cpp import Llama

        from chimein.models import chimein_home, load_tokenizer, resolve_model

        resolved = resolve_model(name)
        if not resolved.gguf_file:
            raise ValueError(f"{name}: the llama.cpp backend needs a GGUF base model")
        lora = adapter_gguf
        if resolved.adapter is not None and lora is None:
            from chimein.export import write_adapter_gguf

            # Convert once and keep it next to the converted models.
            lora_path = chimein_home() / "gguf" / f"{Path(resolved.adapter).resolve().name}-{_mtime(resolved.adapter)}.gguf"
            if not lora_path.exists():
                lora_path.parent.mkdir(parents=True, exist_ok=True)
                write_adapter_gguf(Path(resolved.adapter), Path(resolved.source) / resolved.gguf_file, lora_path)
            lora = str(lora_path)
        llm = Llama(model_path=str(Path(resolved.source) / resolved.gguf_file), lora_path=lora, n_ctx=n_ctx,
                    n_threads=os.cpu_count(), n_threads_batch=os.cpu_count(), logits_all=False, verbose=False)
        fmt = ChatFormat.for_tokenizer(load_tokenizer(resolved), resolved.template)
        if threshold is None:
            threshold = adapter_threshold(resolved.adapter) if resolved.adapter is not None else 0.5
        return cls(llm, fmt, threshold=threshold, **kwargs)

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def new_state(self) -> LlamaRoom:
        return LlamaRoom()

    def _activate(self, room: LlamaRoom) -> None:
        if self._active is room:
            return
        ctx = self.llm._ctx.ctx
        if self._active is not None:
            self._save(self._active, ctx)
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        self.llm.n_tokens = 0
        if room.saved is not None:
            if llama_cpp.llama_state_seq_set_data(ctx, room.saved, len(room.saved), 0) == len(room.saved):
                self.llm.input_ids[: len(room.ids)] = room.ids
                self.llm.n_tokens = len(room.ids)
            self._saved.pop(id(room), None)
            room.saved = None
        self._active = room

    def _save(self, room: LlamaRoom, ctx: Any) -> None:
        """Copy the active room's cells out, then drop the oldest copies past the budget."""
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        # The buffer itself is the copy (no bytes object: each copy of a room is tens of MB).
        saved = buf if n == size else (ctypes.c_uint8 * n).from_buffer_copy(buf)
        room.saved, room.ids = saved, list(self.llm.input_ids[: self.llm.n_tokens])
        key = id(room)
        self._saved[key] = weakref.ref(room, lambda _, key=key: self._saved.pop(key, None))
        while self.saved_bytes > self.state_budget_bytes and len(self._saved) > 1:
            _, oldest_ref = self._saved.popitem(last=False)
            if (oldest := oldest_ref()) is not None:
                oldest.saved, oldest.ids = None, []
                self.evictions += 1

    @property
    def saved_bytes(self) -> int:
        return sum(len(room.saved) for ref in list(self._saved.values()) if (room := ref()) is not None and room.saved is not None)

    def _advance(self, target: list[int]) -> tuple[np.ndarray, int]:
        current = list(self.llm.input_ids[: self.llm.n_tokens])
        n = common_prefix_len(current, target)
        if n == len(target):
            n -= 1
        self.llm.n_tokens = n  # eval() drops the KV cache after n_tokens and appends from there
        self.llm.eval(target[n:])
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),))
        return logits.copy(), len(target) - n

    def _prompt(self, messages: list[Message], room: LlamaRoom) -> list[int]:
        render = lambda ms: self.tokenize(self.fmt.render(to_chat_turns(ms, open_end=True), add_generation_prompt=True))  # noqa: E731
        room.start, ids = fit_window(messages, room.start, render, self.max_context_tokens)
        return ids

    def decide(self, messages: list[Message], state: LlamaRoom | None = None, threshold: float | None = None) -> Decision:
        room = state if state is not None else LlamaRoom()
        threshold = self.threshold if threshold is None else threshold
        self._activate(room)
        if self.style == "baseline":
            return self._baseline(messages)
        logits, processed = self._advance(self._prompt(messages, room) + self.split.shared)
        pair = np.array([logits[self.split.response], logits[self.split.silence]], dtype=np.float64)
        p_speak = float(1.0 / (1.0 + np.exp(pair[1] - pair[0])))
        if not should_speak(p_speak, threshold, messages, self.answer_direct_questions, self.stuck_threshold):
            return Decision(False, "", p_speak, SILENCE, tokens_processed=processed)
        raw = self._generate()
        speak, text = parse_reply(RESPONSE + raw, (self.fmt.end_of_turn,))
        return Decision(speak, text, p_speak, RESPONSE + raw, tokens_processed=processed)

    def _baseline(self, messages: list[Message]) -> Decision:
        """The seed's prompted baseline: system prompt (+ reminders), free generation, post-filtered."""
        chat = baseline_messages(messages, self.variant)
        text = self.fmt.tokenizer.apply_chat_template(chat, chat_template=self.fmt.template, tokenize=False, add_generation_prompt=True)
        logits, processed = self._advance(self.tokenize(text))
        raw = self._generate(logits)
        speak, reply = parse_reply(raw, (self.fmt.end_of_turn,))
        return Decision(speak, reply, None, raw, tokens_processed=processed)

    def _generate(self, logits: np.ndarray | None = None) -> str:
        """Greedy decoding; without ``logits``, first force the rest of the ``(response)`` marker (and then the
        reply gets at least one token)."""
        forced = logits is None
        if forced:
            ids = list(self.llm.input_ids[: self.llm.n_tokens])
            logits, _ = self._advance(ids + [self.split.response, *self.split.response_rest])
        out: list[int] = []
        for _ in range(self.max_new_tokens):
            token = next_reply_token(logits, out, self.opening_bans if forced and not out else ())
            if token in self.stop_ids:
                break
            out.append(token)
            logits, _ = self._advance(list(self.llm.input_ids[: self.llm.n_tokens]) + [token])
        return self.llm.detokenize(out, special=True).decode("utf-8", errors="replace")


def _mtime(path: Any) -> int:
    return int((Path(path) / "adapter_model.safetensors").stat().st_mtime)
