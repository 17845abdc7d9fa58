"""Any OpenAI-compatible chat endpoint: OpenAI, Together, a vLLM or llama.cpp server, Ollama.

Styles:
- ``finetuned``: the fine-tuned format served elsewhere (no system prompt, ``Name: text`` user turns,
  ``(silence)`` / ``(response)`` assistant turns). For example a vLLM server with chimein's adapter:
  ``vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --enable-lora --lora-modules chimein=runs/smollm2-135m``
  (then ``--model chimein``), or ``python -m llama_cpp.server --model base.gguf --lora_path adapter.gguf``.
- ``baseline``: the seed's prompted baseline (system prompt, optional reminders, speaker names), replies
  of ``(silence)`` filtered out.

The API key is read from an environment variable (``OPENAI_API_KEY`` unless told otherwise); local servers
accept any key.
"""

from __future__ import annotations

import math
import os
from typing import Any

from chimein.assistant.core import Decision, parse_reply, speakers
from chimein.assistant.prompts import baseline_messages, replier_messages
from chimein.assistant.replier import Answer, second_look
from chimein.data import Message
from chimein.format import to_chat_turns
from chimein.mentions import mentions_assistant

END_MARKERS = ("<|im_end|>", "</s>", "<end_of_turn>", "<|end_of_turn|>", "<|eot_id|>")


def openai_client(base_url: str, api_key_env: str, timeout: float) -> Any:
    from openai import OpenAI

    return OpenAI(
        base_url=base_url, api_key=os.environ.get(api_key_env) or "not-needed", timeout=timeout, max_retries=0
    )


class OpenAIBackend:
    supports_probability = False
    threshold = None
    answer_direct_questions = False
    decide_only = False  # the decision is the generated turn: there is no cheaper way to get it

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        style: str = "finetuned",
        variant: str = "short",
        names_in_field: bool = False,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_tokens: int = 120,
    ):
        if style not in ("finetuned", "baseline"):
            raise ValueError("style must be 'finetuned' or 'baseline'")
        self.client = openai_client(base_url, api_key_env, timeout)
        self.model, self.style, self.variant = model, style, variant
        self.names_in_field, self.max_tokens = names_in_field, max_tokens

    def new_state(self) -> None:
        return None  # the server keeps its own prefix cache

    def request_messages(self, messages: list[Message]) -> list[dict[str, str]]:
        if self.style == "baseline":
            return baseline_messages(messages, self.variant, self.names_in_field)
        return to_chat_turns(messages, open_end=True)

    def decide(self, messages: list[Message], state: None = None, threshold: float | None = None) -> Decision:
        response = self.client.chat.completions.create(
            model=self.model,
            messages=self.request_messages(messages),
            max_tokens=self.max_tokens,
            temperature=0.0,
        )
        raw = response.choices[0].message.content or ""
        speak, text = parse_reply(raw, END_MARKERS, speakers(messages))
        usage = getattr(response, "usage", None)
        return Decision(speak, text, None, raw, tokens_processed=getattr(usage, "prompt_tokens", 0) or 0)


class OpenAIReplier:
    """Writes the reply when the decider chose to speak (two-stage assistant: decide small, reply strong)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 30.0,
        max_tokens: int = 160,
        temperature: float = 0.2,
        seed: int | None = None,
    ):
        self.client = openai_client(base_url, api_key_env, timeout)
        self.model, self.max_tokens = model, max_tokens
        self.temperature, self.seed = temperature, seed  # temperature 0 (or a seed) makes replies repeatable

    def answer(self, messages: list[Message], volunteer: bool = False) -> Answer:
        """The endpoint's reply with each token's probability (when the endpoint returns log-probabilities:
        OpenAI, vLLM and llama.cpp's server do)."""
        response = self.client.chat.completions.create(
            model=self.model,
            messages=replier_messages(messages, volunteer),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            logprobs=True,
            top_logprobs=1,  # llama.cpp's server sends log-probabilities only when asked for alternatives too
            **({"seed": self.seed} if self.seed is not None else {}),
        )
        choice = response.choices[0]
        speak, text = parse_reply(choice.message.content or "", END_MARKERS, speakers(messages))
        content = getattr(getattr(choice, "logprobs", None), "content", None) or []
        return Answer(text if speak else "", [(t.token, math.exp(t.logprob)) for t in content])

    def reply(self, messages: list[Message], on_text: Any = None) -> str:
        """The Replier protocol. With token probabilities, the same second look as the local replier: "not sure"
        instead of a doubtful fact on a question, silence instead of a doubtful volunteered one."""
        volunteer = not mentions_assistant(messages[-1].content)
        answer = self.answer(messages, volunteer)
        if not answer.tokens:  # an endpoint without log-probabilities: sent as written
            return answer.text
        return second_look(answer, messages, volunteer)
