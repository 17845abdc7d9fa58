"""The assistant runtime: one :class:`Assistant` per room, over a backend chosen by name.

:func:`get_backend` builds the backend a ``--model`` value names, from the
:data:`BACKENDS` table: an exact name (``silent``, ``baseline``) or a ``prefix:`` (``llamacpp:default``). A
name that is neither is a local model for transformers (``default``, a registry name, a dir, a hub id).

``RUNTIME_DEFAULT`` (``llamacpp:default``) is what ``chimein chat``, ``decide``, ``serve`` and ``matrix`` run
without ``--model``: the shipped adapter on llama.cpp, lighter than transformers (fp32 weights plus torch),
making the same decisions. ``default`` runs the same adapter with transformers (what training and
``chimein eval`` measure).

Backends load lazily: importing this package pulls in neither torch nor llama_cpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from chimein.assistant.core import Assistant, Backend, Decision, parse_reply

__all__ = [
    "Assistant",
    "Backend",
    "Decision",
    "parse_reply",
    "get_backend",
    "check_backend",
    "load_assistant",
    "BACKENDS",
    "RUNTIME_DEFAULT",
    "RUNTIME_MODEL_HELP",
]

RUNTIME_DEFAULT = "llamacpp:default"
BASELINE_MODEL = "smollm2-135m-instruct"  # the seed's prompted baseline runs on the untuned instruct model
BASELINE_VARIANTS = {"baseline": "short", "baseline-reminder": "reminder"}


@dataclass(frozen=True)
class BackendEntry:
    usage: str  # how it is written on the command line
    help: str
    build: Callable[[str, dict[str, Any]], Backend]  # (the name after the prefix, or the whole name; options)
    needs_model: bool = True  # False for the rules: with --base-url every other name is a served model
    remote: bool = False  # takes --base-url itself (openai:, served:)


def _local_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options of a local backend: the remote-only ones dropped, an unset threshold left to the model."""
    opts = {k: v for k, v in options.items() if k not in ("base_url", "api_key_env")}
    if opts.get("threshold") is None:
        opts.pop("threshold", None)
    return opts


def _baseline_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    opts = {k: v for k, v in _local_options(options).items() if k not in ("threshold", "style")}
    opts.setdefault("max_new_tokens", 40)  # the decision shows in the first tokens; replies stay short
    return {"style": "baseline", "baseline_variant": BASELINE_VARIANTS[name], **opts}


def _llamacpp(name: str, options: dict[str, Any]) -> Backend:
    from chimein.assistant.backends import llamacpp

    if name in BASELINE_VARIANTS:
        # llama.cpp by default for the baseline: its prefix cache makes replaying long conversations affordable.
        return llamacpp.load(BASELINE_MODEL, **_baseline_options(name, options))
    return llamacpp.load(name, **_local_options(options))


def _hf(name: str, options: dict[str, Any]) -> Backend:
    from chimein.assistant.backends import hf

    options = {k: v for k, v in options.items() if k != "threads"}  # llama.cpp's; torch sets its own
    if name in BASELINE_VARIANTS:
        return hf.load(BASELINE_MODEL, **_baseline_options(name, options))
    return hf.load(name, **_local_options(options))


def _silent(name: str, options: dict[str, Any]) -> Backend:
    from chimein.assistant.backends.rules import SilentBackend

    return SilentBackend()


def _mention(name: str, options: dict[str, Any]) -> Backend:
    from chimein.assistant.backends.rules import MentionBackend

    return MentionBackend()


def _openai(name: str, options: dict[str, Any]) -> Backend:
    from chimein.assistant.backends.openai_http import OpenAIBackend

    opts = {k: v for k, v in options.items() if k not in ("threshold", "mode", "threads")}
    base_url = opts.pop("base_url", None)
    if not base_url:
        raise ValueError(f"openai:{name}: an OpenAI-compatible model needs --base-url")
    if opts.get("style") is None:
        opts["style"] = "finetuned"
    return OpenAIBackend(base_url, name, **opts)


def _served(name: str, options: dict[str, Any]) -> Backend:
    from chimein.assistant.backends import served

    opts = {k: v for k, v in options.items() if k not in ("mode", "threads")}  # the server has its own threads
    if not opts.get("base_url"):
        raise ValueError(f"served:{name}: a model on a serving engine needs --base-url")
    if opts.pop("style", None) not in (None, "finetuned"):
        raise ValueError(
            f"served:{name}: --style: the served model is chimein's fine-tuned format; "
            f"for the prompted baseline use openai:{name}"
        )
    return served.load(name, **opts)


# Exact names, and prefixes ending in ":". The order is the order of the --model help.
BACKENDS: dict[str, BackendEntry] = {
    "llamacpp:": BackendEntry(
        "llamacpp:NAME", "NAME on llama.cpp (GGUF); llamacpp:default is the shipped assistant, the lightest", _llamacpp
    ),
    "hf:": BackendEntry(
        "[hf:]NAME",
        "NAME with transformers: default (the shipped adapter), a registry name, a local dir or adapter dir",
        _hf,
    ),
    "silent": BackendEntry("silent", "never speaks (baseline)", _silent, needs_model=False),
    "mention": BackendEntry(
        "mention", "speaks iff the message names the assistant (baseline)", _mention, needs_model=False
    ),
    "baseline": BackendEntry(
        "baseline",
        f"{BASELINE_MODEL} prompted with the seed's short prompt, on llama.cpp (hf:baseline: transformers)",
        lambda name, options: _llamacpp("baseline", options),
    ),
    "baseline-reminder": BackendEntry(
        "baseline-reminder",
        "the same with 'addressed as assistant' + a reminder per message",
        lambda name, options: _llamacpp("baseline-reminder", options),
    ),
    "openai:": BackendEntry("openai:MODEL", "an OpenAI-compatible endpoint, with --base-url", _openai, remote=True),
    "served:": BackendEntry(
        "served:NAME",
        "NAME (default, an adapter dir) on a llama.cpp or vLLM server at --base-url, p_speak from its logprobs",
        _served,
        remote=True,
    ),
}

RUNTIME_MODEL_HELP = "; ".join(f"{e.usage}: {e.help}" for e in BACKENDS.values())


def _lookup(spec: str, options: dict[str, Any]) -> tuple[BackendEntry, str]:
    prefix, sep, rest = spec.partition(":")
    entry = BACKENDS.get(spec) or (BACKENDS.get(prefix + ":") if sep else None)
    if options.get("base_url") and (entry is None or (entry.needs_model and not entry.remote)):
        return BACKENDS["openai:"], spec.removeprefix("openai:")  # a model served at --base-url
    if entry is not None:
        return entry, spec if spec in BACKENDS else rest
    # Anything else must be a model transformers can load.
    from chimein.models import UnknownModelError, resolve_model

    try:
        resolve_model(spec)
    except UnknownModelError as e:
        valid = ", ".join(entry.usage for entry in BACKENDS.values())
        raise UnknownModelError(spec, f"{valid}; a NAME is {e.choices}") from None
    return BACKENDS["hf:"], spec


def get_backend(spec: str = RUNTIME_DEFAULT, **options: Any) -> Backend:
    """Build the backend a ``--model`` value names (see :data:`BACKENDS`).

    ``options``: ``threshold`` (None: the model's default), ``mode``, ``style``, ``base_url``, ``api_key_env``,
    ``threads`` (llama.cpp's CPU threads per context) and any option of the backend itself (e.g. ``max_new_tokens``); each backend takes the ones it uses."""
    entry, name = _lookup(spec, options)
    return entry.build(name, options)


def check_backend(spec: str, **options: Any) -> None:
    """Raise the error :func:`get_backend` would for a name that names nothing, without loading a model
    (``chimein eval -m a,b,c`` checks every name before spending minutes on the first)."""
    entry, name = _lookup(spec, options)
    if entry.build in (_llamacpp, _hf, _served) and name not in BASELINE_VARIANTS:
        from chimein.models import resolve_model

        resolve_model(name)


def load_assistant(
    name: str = RUNTIME_DEFAULT, *, replier: Any = None, threshold: float | None = None, **kwargs: Any
) -> Assistant:
    return Assistant(get_backend(name, **kwargs), replier=replier, threshold=threshold)
