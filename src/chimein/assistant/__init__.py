"""The assistant runtime: one :class:`Assistant` per room, over a backend chosen by name.

Model names understood by :func:`load_backend` (the ``--model`` option everywhere):

| name                         | backend                                                        |
|------------------------------|----------------------------------------------------------------|
| ``silent``                   | never speaks (baseline)                                        |
| ``mention``                  | speaks iff the message names the assistant (baseline)          |
| ``baseline``                 | SmolLM2-135M-Instruct prompted with the seed's short prompt (llama.cpp) |
| ``baseline-reminder``        | the same with "addressed as assistant" + a reminder per message |
| ``hf:baseline[-reminder]``   | the same prompted baseline run with transformers               |
| ``llamacpp:NAME``            | llama.cpp (GGUF) with the fine-tuned format, e.g. ``llamacpp:default`` |
| ``openai:MODEL``             | an OpenAI-compatible endpoint (``base_url`` required)          |
| anything else                | local transformers model: ``default``, a registry name, a dir  |

``RUNTIME_DEFAULT`` (``llamacpp:default``) is what ``chimein chat``, ``decide``, ``serve`` and ``matrix`` run
without ``--model``: the shipped adapter on llama.cpp peaks at about 0.7 GB where transformers needs about
1.1 GB (fp32 weights plus torch), and it makes the same decision on 99.7% of the validation turns.
``default`` runs the same adapter with transformers (what training and ``chimein eval`` measure).

Backends load lazily: importing this package pulls in neither torch nor llama_cpp.
"""

from __future__ import annotations

from typing import Any

from chimein.assistant.core import Assistant, Backend, Decision, parse_reply

__all__ = ["Assistant", "Backend", "Decision", "parse_reply", "load_backend", "load_assistant", "BASELINE_NAMES",
           "RUNTIME_DEFAULT", "RUNTIME_MODEL_HELP"]

BASELINE_NAMES = ("silent", "mention", "baseline", "baseline-reminder")
RUNTIME_DEFAULT = "llamacpp:default"
RUNTIME_MODEL_HELP = ("llamacpp:default (the shipped assistant on llama.cpp, the lightest), default (the same with "
                      "transformers), llamacpp:NAME, a local dir or adapter dir, silent, mention, baseline, "
                      "baseline-reminder, openai:NAME with --base-url")


def load_backend(name: str = RUNTIME_DEFAULT, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 threshold: float | None = None, mode: str = "fast", style: str | None = None, **kwargs: Any) -> Backend:
    """Build the backend a ``--model`` value names (see the table above)."""
    if name == "silent":
        from chimein.assistant.backends.rules import SilentBackend

        return SilentBackend()
    if name == "mention":
        from chimein.assistant.backends.rules import MentionBackend

        return MentionBackend()
    if name.startswith("openai:") or base_url:
        from chimein.assistant.backends.openai_http import OpenAIBackend

        if not base_url:
            raise ValueError(f"{name}: an OpenAI-compatible model needs --base-url")
        return OpenAIBackend(base_url, name.removeprefix("openai:"), api_key_env=api_key_env, style=style or "finetuned", **kwargs)
    if name in ("baseline", "baseline-reminder", "hf:baseline", "hf:baseline-reminder"):
        # The seed's prompted baseline on the untuned SmolLM2-135M-Instruct. llama.cpp by default (its prefix
        # cache makes replaying long conversations affordable); "hf:baseline" runs it with transformers.
        variant = "reminder" if name.endswith("-reminder") else "short"
        kwargs.setdefault("max_new_tokens", 40)  # the decision shows in the first tokens; replies stay short
        if name.startswith("hf:"):
            from chimein.assistant.backends.hf import HFBackend

            return HFBackend.load("smollm2-135m-instruct", style="baseline", baseline_variant=variant, **kwargs)
        from chimein.assistant.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend.load("smollm2-135m-instruct", style="baseline", baseline_variant=variant, **kwargs)
    if name.startswith("llamacpp:"):
        from chimein.assistant.backends.llamacpp import LlamaCppBackend

        opts = {"threshold": threshold} if threshold is not None else {}
        return LlamaCppBackend.load(name.removeprefix("llamacpp:"), **opts, **kwargs)
    from chimein.assistant.backends.hf import HFBackend

    opts = {"threshold": threshold} if threshold is not None else {}
    return HFBackend.load(name, mode=mode, **opts, **kwargs)


def load_assistant(name: str = RUNTIME_DEFAULT, *, replier: Any = None, threshold: float | None = None, **kwargs: Any) -> Assistant:
    return Assistant(load_backend(name, **kwargs), replier=replier, threshold=threshold)
