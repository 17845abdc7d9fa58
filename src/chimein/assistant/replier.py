"""The local replier: a stronger chat model on the machine writes what the assistant says, and says only
what it is sure of.

Decide small, reply strong: the fine-tuned 135M model decides *when* to speak (one forward pass); when it
speaks, this replier (by default Qwen2.5-Coder-1.5B-Instruct, from the ``replier`` extra) writes the words.

1. The prompt (``prompts.replier_messages``): the recent chat as one transcript, the message to answer restated
   on its own, and the rule that the people's guesses may be wrong and an unknown is said, not invented.
2. Greedy decoding through the model's own chat template, one token at a time (so a room can stream it),
   keeping each chosen token's probability.
3. The second look (:func:`vet`): the answer's confidence is the lowest probability among its *fact tokens*
   (tokens with a digit or a capital letter: numbers, dates, names), where invented facts show up as
   uncertain choices. An addressed question gets the answer, or, below ``unsure_below``, an honest
   "I'm not sure" instead of an invented number. A volunteered reply (nobody asked the assistant) is sent only
   when the model is confident and did not hedge; otherwise the assistant stays silent.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from chimein.assistant.core import parse_reply, speakers
from chimein.assistant.prompts import REPLIER_CONTEXT, UNSURE, replier_messages
from chimein.data import Message
from chimein.markers import common_prefix_len

log = logging.getLogger("chimein.replier")

# Below this fact-token probability an answer is a guess (chosen on the valid split: see README, replies).
UNSURE_BELOW = 0.7
# A volunteered reply needs more: nobody asked, so a wrong one costs the most.
VOLUNTEER_ABOVE = 0.7
_CAPITAL = re.compile(r"[A-Z]")
_OPENERS = {
    "the",
    "it",
    "its",
    "it's",
    "yes",
    "no",
    "this",
    "that",
    "these",
    "those",
    "a",
    "an",
    "in",
    "on",
    "at",
    "i",
    "i'm",
    "you",
    "we",
    "they",
    "he",
    "she",
    "there",
    "sure",
    "actually",
    "correct",
    "not",
    "if",
    "for",
    "to",
    "as",
    "so",
    "but",
    "and",
    "or",
    "my",
    "your",
    "their",
    "our",
    "good",
    "great",
    "nope",
    "yep",
    "well",
    "also",
    "however",
}
_HEDGE = re.compile(r"^\W*(i'?m not (?:sure|certain)|i don'?t know|not sure|i'?m unsure|i can'?t say)", re.IGNORECASE)


@dataclass
class Answer:
    """A replier's answer and what its tokens say about it."""

    text: str
    tokens: list[tuple[str, float]] = field(default_factory=list)  # each chosen token's text and probability
    prompt_tokens: int = 0

    @property
    def fact_probs(self) -> list[float]:
        """The probabilities of the fact tokens: a digit or a capital letter (numbers, dates, names), except
        the ordinary words that open sentences ("The", "It", "Yes")."""
        return [
            p
            for piece, p in self.tokens
            if re.search(r"\d", piece) or (_CAPITAL.search(piece) and piece.strip().lower() not in _OPENERS)
        ]

    @property
    def confidence(self) -> float:
        """The lowest fact-token probability (the mean token probability when the answer has no fact token)."""
        facts = self.fact_probs
        if facts:
            return float(min(facts))
        return float(np.mean([p for _, p in self.tokens])) if self.tokens else 0.0

    @property
    def hedged(self) -> bool:
        """The answer itself says it does not know."""
        return _HEDGE.match(self.text) is not None


@dataclass
class Verdict:
    speak: bool
    text: str
    reason: str


def new_words(text: str, context: str) -> float:
    """The share of a reply's content words (four letters or more) that the chat did not already say."""
    words = [w for w in re.findall(r"\w{4,}", text.lower())]
    if not words:
        return 0.0
    said = set(re.findall(r"\w{4,}", context.lower()))
    return sum(w not in said for w in words) / len(words)


# A volunteered reply must say something new: at least this share of its content words are not the chat's
# ("Heidi always mixes it up" only retells the chat).
VOLUNTEER_NEW_WORDS = 0.6


def vet(
    answer: Answer,
    volunteer: bool,
    unsure_below: float = UNSURE_BELOW,
    volunteer_above: float = VOLUNTEER_ABOVE,
    context: str = "",
) -> Verdict:
    """Whether and what to send (see the module's docstring); ``context``: the chat's recent text, which a
    volunteered reply must add to."""
    conf = answer.confidence
    if not answer.text:
        return Verdict(False, "", "the replier wrote nothing")
    if volunteer:
        if answer.hedged:
            return Verdict(False, "", "volunteer: the replier is not sure")
        if context and new_words(answer.text, context) < VOLUNTEER_NEW_WORDS:
            return Verdict(False, "", "volunteer: the reply only retells the chat")
        if conf < volunteer_above:
            return Verdict(False, "", f"volunteer: confidence {conf:.2f} < {volunteer_above:.2f}")
        return Verdict(True, answer.text, f"volunteer: confidence {conf:.2f} >= {volunteer_above:.2f}")
    if answer.hedged:
        return Verdict(True, answer.text, "addressed: the replier says it is not sure")
    if conf < unsure_below:
        return Verdict(True, UNSURE, f"addressed: confidence {conf:.2f} < {unsure_below:.2f}: said so")
    return Verdict(True, answer.text, f"addressed: confidence {conf:.2f}")


def second_look(answer: Answer, messages: list[Message], volunteer: bool) -> str:
    """What to send of ``answer`` to the chat's last message (:func:`vet`, the chat's recent text as context);
    the empty string: stay silent."""
    context = " ".join(m.content for m in messages[-REPLIER_CONTEXT:] if m.role == "user")
    verdict = vet(answer, volunteer, context=context)
    log.info("replier: %s", verdict.reason)
    return verdict.text if verdict.speak else ""


class LocalReplier:
    """A chat model on llama.cpp that writes replies (greedy, streamed) with its token probabilities.

    ``engine``: a :class:`~chimein.assistant.backends.llamacpp.LlamaCppEngine` (any engine with ``advance``,
    ``tokenize``, ``detokenize``, ``eos_id``); ``render``: chat messages -> the prompt text in the model's
    template. Thread-safe: one reply at a time (a lock), so it may run beside the decisions' model thread.
    """

    concurrent_replies = 1  # rooms wait in one line for it (chimein.rooms.replier_line), questions first

    def __init__(
        self,
        engine: Any,
        render: Callable[[list[dict[str, str]]], str],
        *,
        stop_ids: set[int] = frozenset(),
        max_new_tokens: int = 64,
        name: str = "replier",
        threads: int | None = None,
    ):
        self.engine, self.render, self.name, self.threads = engine, render, name, threads
        # Threads it may add for its next step: a server lends the decisions' core while their model thread is
        # idle (chimein.rooms.lend_idle_cores); checked before every token, and every PREFILL_CHUNK prompt tokens
        # while lent, so a decision that arrives waits at most one step beside it.
        self.spare_threads: Callable[[], int] | None = None
        self.max_new_tokens = max_new_tokens
        self.stop_ids = {i for i in (engine.eos_id, *stop_ids) if i is not None}
        self.state = engine.new_state()  # one cache: the system prompt and a room's recent chat are reused
        self.lock = threading.Lock()

    def stream(
        self,
        messages: list[Message],
        volunteer: bool = False,
        answer: Answer | None = None,
        sample: np.random.Generator | None = None,
        temperature: float = 0.7,
    ) -> Iterator[str]:
        """The reply's text as it is written (pieces to append); ``answer`` is filled as it goes. Greedy, or
        with ``sample`` (a random generator) drawn at ``temperature``."""
        answer = answer if answer is not None else Answer("")
        prompt = self.engine.tokenize(self.render(replier_messages(messages, volunteer=volunteer)))
        with self.lock:
            logits, answer.prompt_tokens = self._read(prompt)
            out: list[int] = []
            shown = ""
            for _ in range(self.max_new_tokens):
                probs = softmax(logits)
                if sample is None:
                    token = int(np.argmax(probs))
                else:
                    token = int(sample.choice(len(probs), p=softmax(np.asarray(logits) / temperature)))
                if token in self.stop_ids:
                    break
                out.append(token)
                answer.tokens.append((self.engine.detokenize([token]), float(probs[token])))
                text = self.engine.detokenize(out)
                if not text.endswith("\ufffd") and len(text) > len(shown):  # never half a UTF-8 character
                    yield text[len(shown) :]
                    shown = text
                self._use_spare_threads()
                logits, _ = self.engine.advance(self.state, prompt + out)
        _, answer.text = _clean(self.engine.detokenize(out), messages)

    def _read(self, prompt: list[int]) -> tuple[np.ndarray, int]:
        """Read the prompt (what the cache does not hold yet): in one go on its own threads; in chunks while it has
        threads lent, so it can give them back between two chunks (reading in chunks is slower per token)."""
        read, done = 0, common_prefix_len(self.engine.cached_ids(self.state), prompt) if self.spare_threads else 0
        while True:
            end = min(done + PREFILL_CHUNK, len(prompt)) if self._use_spare_threads() else len(prompt)
            logits, n = self.engine.advance(self.state, prompt[:end])
            read, done = read + n, end
            if done >= len(prompt):
                return logits, read

    def _use_spare_threads(self) -> int:
        """Run the next step on the replier's threads plus those lent now; how many were lent."""
        if self.spare_threads is None or not self.threads:
            return 0
        spare = self.spare_threads()
        self.engine.set_threads(min(self.threads + spare, os.cpu_count() or 1))
        return spare

    def answer(
        self, messages: list[Message], volunteer: bool = False, sample: np.random.Generator | None = None
    ) -> Answer:
        answer = Answer("")
        for _ in self.stream(messages, volunteer, answer, sample):
            pass
        return answer

    def reply(self, messages: list[Message], on_text: Callable[[str], None] | None = None) -> str:
        """The Replier protocol: the answer to the last message, as sent (after :func:`vet`). ``on_text`` sees
        the reply as it is written, on a question to the assistant only (a volunteered reply may yet be held
        back), and only while every fact in it is above the confidence needed: a doubtful fact is never shown,
        even as a draft."""
        from chimein.mentions import mentions_assistant

        volunteer = not mentions_assistant(messages[-1].content)
        answer, text = Answer(""), ""
        for piece in self.stream(messages, volunteer, answer):
            text += piece
            if on_text is not None and not volunteer and all(p >= UNSURE_BELOW for p in answer.fact_probs):
                on_text(text.strip())
        return second_look(answer, messages, volunteer)


def _clean(raw: str, messages: list[Message]) -> tuple[bool, str]:
    return parse_reply(raw, (), speakers(messages))


# Prompt tokens read between two looks at the spare threads (a chunk takes a few tenths of a second on one core).
PREFILL_CHUNK = 32


def softmax(logits: np.ndarray) -> np.ndarray:
    """Token probabilities from a model's logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


def default_threads() -> int:
    """Threads for the replier's context: all cores but the one the decisions use (at least one)."""
    return max(1, (os.cpu_count() or 2) - 1)


def load(name: str = "replier", *, n_ctx: int = 2048, threads: int | None = None, **kwargs: Any) -> LocalReplier:
    """The replier ``name`` names (a registry name such as ``replier``, or a .gguf file) on llama.cpp."""
    from pathlib import Path

    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from chimein.assistant.backends.llamacpp import LlamaCppEngine
    from chimein.models import resolve_model

    resolved = resolve_model(name)
    if not resolved.gguf_file:
        raise ValueError(f"{name}: a local replier needs a GGUF model (a registry name or a .gguf file)")
    threads = threads or default_threads()
    llm = Llama(
        model_path=str(Path(resolved.source) / resolved.gguf_file),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        use_mmap=False,  # mapped, its weights were resident twice (the file's pages and llama.cpp's repacked copy): +1.77 GB, not +1.17
        logits_all=False,
        verbose=False,
    )
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ValueError(f"{name}: the GGUF has no chat template; a replier must be a chat model")
    eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", errors="replace")
    bos = (
        llm.detokenize([llm.token_bos()], special=True).decode("utf-8", errors="replace")
        if llm.token_bos() >= 0
        else ""
    )
    formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos, add_generation_prompt=True)
    render = lambda chat: formatter(messages=chat).prompt  # noqa: E731
    engine = LlamaCppEngine(llm, state_budget_mb=0)
    end_of_turn = [t for t in (llm.tokenize(b"<|im_end|>", add_bos=False, special=True),) if len(t) == 1]
    return LocalReplier(engine, render, stop_ids={t[0] for t in end_of_turn}, name=name, threads=threads, **kwargs)
