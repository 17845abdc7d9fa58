"""Decisions on a serving engine: chimein's fine-tuned model on an OpenAI-compatible server, ``p_speak`` from logprobs.

    python -m llama_cpp.server --model exported/base.gguf --lora_path exported/chimein-lora.gguf --n_ctx 4096
    chimein serve --model served:default --base-url http://127.0.0.1:8000/v1

    vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --enable-lora --max-lora-rank 16 \\
        --lora-modules default=src/chimein/resources/default --max-logprobs 20
    chimein serve --model served:default --base-url http://127.0.0.1:8000/v1

``served:NAME``: NAME is the chimein model the server runs (``default``, an adapter directory). Its tokenizer
and :class:`ChatFormat` render the prompt here, exactly as in-process, and its eagerness default applies; no
weights are loaded here. The request's ``model`` is NAME (vLLM: the name given in ``--lora-modules``;
llama.cpp's server answers any name with its one model).

A decision is one completions request for one token: the conversation rendered with the generation prompt,
then the tokens ``(silence)`` and ``(response)`` share (``(``), with ``logprobs``. Log-probabilities differ
from the logits by one constant, so ``sigmoid(logprob(response) - logprob(silence))`` is the in-process
two-way softmax. A marker the server did not list among its top ``TOP_LOGPROBS`` gets the largest value its
absence allows. Then ``core.should_speak`` decides, as in-process (threshold, the three rules).

Only when speaking (and not ``decide_only``) is the reply asked for, through the completions endpoint (a chat
endpoint cannot continue the assistant turn after ``(response)``): one token with the end of turn and the
openings of another marker banned (``logit_bias``), the in-process rule for a reply's first token, then the
rest greedily to the end of turn. The wording follows the server's own repetition settings, not chimein's.
"""

from __future__ import annotations

import math
from typing import Any

from chimein.assistant.backends.local import CONTEXT_MARGIN, LocalRoom, speak_probability
from chimein.assistant.backends.openai_http import openai_client
from chimein.assistant.core import (
    STUCK_THRESHOLD,
    Decision,
    decision_without_the_model,
    parse_reply,
    should_speak,
    speakers,
)
from chimein.assistant.window import fit_window
from chimein.data import Message
from chimein.format import RESPONSE, SILENCE, ChatFormat, to_chat_turns
from chimein.markers import find_marker_split

# vLLM refuses more than its --max-logprobs (20 by default); llama.cpp's server sorts the whole vocabulary anyway.
TOP_LOGPROBS = 20
BANNED = -100.0  # the OpenAI API's lowest logit bias: the token is never chosen


class ServedFormatError(RuntimeError):
    """The server's answer does not look like chimein's fine-tuned model (no marker among its top tokens)."""


def token_keys(tokenizer: Any, token_id: int) -> tuple[str, str]:
    """How a server names a token in ``top_logprobs``: vLLM with ``return_tokens_as_token_ids`` as
    ``token_id:N``, llama.cpp's server as the token's text."""
    return f"token_id:{token_id}", tokenizer.decode([token_id])


def listed_logprob(top: dict[str, float], keys: tuple[str, ...]) -> float | None:
    return next((top[k] for k in keys if k in top), None)


def p_speak_from_logprobs(
    top: dict[str, float], response_keys: tuple[str, ...], silence_keys: tuple[str, ...]
) -> float:
    """``sigmoid(logprob(response) - logprob(silence))`` from one position's top logprobs.

    A marker missing from the list has at most the smallest listed logprob and at most the mass not listed;
    it gets that bound (so a missing ``(response)`` gives an upper bound on ``p_speak``)."""
    if not top:
        raise ServedFormatError(
            "the server returned no logprobs: does it support logprobs on /v1/completions "
            "(llama-cpp-python: logits_all, its default; vLLM: --max-logprobs)?"
        )
    response, silence = listed_logprob(top, response_keys), listed_logprob(top, silence_keys)
    if response is None and silence is None:
        raise ServedFormatError(
            f"neither marker among the server's top tokens {sorted(top)[:8]}: is it running "
            "chimein's adapter with chimein's chat format?"
        )
    unlisted = 1.0 - sum(math.exp(v) for v in top.values())
    bound = min(min(top.values()), math.log(unlisted) if unlisted > 1e-12 else -27.6)  # -27.6 = log(1e-12)
    return speak_probability(bound if response is None else response, bound if silence is None else silence)


class ServedBackend:
    """chimein's decision and reply, with the model on an OpenAI-compatible server (llama.cpp's, vLLM)."""

    supports_probability = True

    def __init__(
        self,
        base_url: str,
        fmt: ChatFormat,
        *,
        model: str,
        threshold: float = 0.5,
        answer_direct_questions: bool = True,
        stuck_threshold: float | None = STUCK_THRESHOLD,
        decide_only: bool = False,
        max_new_tokens: int = 80,
        context_tokens: int = 4096,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        name: str | None = None,
    ):
        self.client = openai_client(base_url, api_key_env, timeout)
        self.fmt, self.model, self.name = fmt, model, name or f"served:{model}"
        self.threshold, self.answer_direct_questions = threshold, answer_direct_questions
        self.stuck_threshold, self.decide_only, self.max_new_tokens = stuck_threshold, decide_only, max_new_tokens
        self.rules_skip_model = False  # see core.decision_without_the_model (a server with a replier sets it)
        # The same window as in-process on a context of ``context_tokens`` (start llama.cpp's server with that --n_ctx).
        self.max_context_tokens = context_tokens - max_new_tokens - CONTEXT_MARGIN
        split = find_marker_split(fmt)
        tokenizer = fmt.tokenizer
        self.shared_text = tokenizer.decode(split.shared)
        self.response_keys = token_keys(tokenizer, split.response)
        self.silence_keys = token_keys(tokenizer, split.silence)
        eot = fmt.tokenize(fmt.end_of_turn) if fmt.end_of_turn else []
        stops = {i for i in (tokenizer.eos_token_id, eot[0] if len(eot) == 1 else None) if i is not None}
        self.opening_bans = sorted(stops | set(split.reply_bans))
        self.stop = [fmt.end_of_turn] if fmt.end_of_turn else None

    def new_state(self) -> LocalRoom:
        return LocalRoom(None)  # the server keeps its own cache; the room keeps its window's start

    def prompt(self, messages: list[Message], room: LocalRoom) -> str:
        """The conversation as in-process: rendered with the generation prompt, fitted into the window."""
        rendered: dict[int, tuple[str, list[int]]] = {}

        def prompt_ids(ms: list[Message]) -> list[int]:
            text = self.fmt.render(to_chat_turns(ms, open_end=True), add_generation_prompt=True)
            rendered[len(ms)] = text, self.fmt.tokenize(text)
            return rendered[len(ms)][1]

        room.start, ids = fit_window(messages, room.start, prompt_ids, self.max_context_tokens)
        text, whole = rendered[len(messages) - room.start]
        # fit_window cuts the beginning of the tokens when even the newest turns alone do not fit.
        return text if len(whole) == len(ids) else self.fmt.tokenizer.decode(ids)

    def completion_args(self, prompt: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
        """Arguments of one greedy completions request. vLLM: token ids as keys of ``top_logprobs`` and no BOS
        added to a prompt that is already rendered; llama.cpp's server ignores both."""
        return {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "extra_body": {"return_tokens_as_token_ids": True, "add_special_tokens": False},
            **extra,
        }

    def decision_args(self, prompt: str) -> dict[str, Any]:
        return self.completion_args(prompt + self.shared_text, 1, logprobs=TOP_LOGPROBS)

    def opening_args(self, prompt: str) -> dict[str, Any]:
        return self.completion_args(prompt + RESPONSE, 1, logit_bias={str(i): BANNED for i in self.opening_bans})

    def decide(
        self, messages: list[Message], state: LocalRoom | None = None, threshold: float | None = None
    ) -> Decision:
        room = state if state is not None else self.new_state()
        threshold = self.threshold if threshold is None else threshold
        if (ruled := decision_without_the_model(self, messages, threshold)) is not None:
            return ruled
        prompt = self.prompt(messages, room)
        answer = self.client.completions.create(**self.decision_args(prompt))
        listed = answer.choices[0].logprobs
        top = listed.top_logprobs[0] if listed is not None and listed.top_logprobs else {}
        p_speak = p_speak_from_logprobs(top, self.response_keys, self.silence_keys)
        processed = getattr(answer.usage, "prompt_tokens", 0) or 0
        if not should_speak(p_speak, threshold, messages, self.answer_direct_questions, self.stuck_threshold):
            return Decision(False, "", p_speak, SILENCE, tokens_processed=processed)
        if self.decide_only:
            return Decision(True, "", p_speak, RESPONSE, tokens_processed=processed)
        opening = self.client.completions.create(**self.opening_args(prompt)).choices[0].text
        rest = (
            self.client.completions.create(
                **self.completion_args(prompt + RESPONSE + opening, self.max_new_tokens - 1, stop=self.stop)
            )
            .choices[0]
            .text
        )
        raw = RESPONSE + opening + rest
        speak, text = parse_reply(raw, (self.fmt.end_of_turn,), speakers(messages))
        return Decision(speak, text, p_speak, raw, tokens_processed=processed)


def load(name: str = "default", *, base_url: str, threshold: float | None = None, **kwargs: Any) -> ServedBackend:
    """``name``: the chimein model the server runs (``default``, an adapter dir); only its tokenizer is loaded."""
    from chimein.markers import adapter_threshold
    from chimein.models import load_tokenizer, resolve_model

    resolved = resolve_model(name)
    fmt = ChatFormat.for_tokenizer(load_tokenizer(resolved), resolved.template)
    if threshold is None:
        threshold = adapter_threshold(resolved.adapter) if resolved.adapter is not None else 0.5
    return ServedBackend(base_url, fmt, model=name, threshold=threshold, **kwargs)
