"""Does a message name or address the assistant? Plain rules, shared by the `mention` baseline and eval.

This module imports nothing else from chimein.
"""

from __future__ import annotations

import re

DEFAULT_ASSISTANT_NAMES = ("assistant", "bot", "ai", "chimein")


def _names_pattern(names: tuple[str, ...]) -> str:
    return "|".join(re.escape(n) for n in sorted({n.lower() for n in names}, key=len, reverse=True))


def mentions_assistant(text: str, names: tuple[str, ...] = DEFAULT_ASSISTANT_NAMES) -> bool:
    """The ``mention`` rule: the message names the assistant ("assistant", "bot", "AI", "@assistant",
    the configured name), word-bounded and case-insensitive."""
    return re.search(rf"(?<![\w@])@?(?:{_names_pattern(names)})(?!\w)", text, re.IGNORECASE) is not None


def addresses_assistant(text: str, names: tuple[str, ...] = DEFAULT_ASSISTANT_NAMES) -> bool:
    """Direct address, a stricter rule than a mention (used for the missed-address rate):
    ``@name`` anywhere; the name opening the message (after an optional hey/hi/ok/yo/so/oi and "the");
    the name closing it after a comma ("..., bot?"); or "can/could/would/will the bot ...".
    """
    n = _names_pattern(names)
    patterns = (
        rf"(?<![\w@])@(?:{n})(?!\w)",
        rf"^\W*(?:(?:hey|hi|hello|ok|okay|yo|so|oi|right|quick q)\W+)?(?:the\s+)?(?:{n})(?!\w)",
        rf",\s*(?:the\s+)?(?:{n})\W*$",
        rf"\b(?:can|could|would|will)\s+(?:the\s+|you\s+)?(?:{n})(?!\w)",
    )
    return any(re.search(p, text.strip(), re.IGNORECASE) for p in patterns)


def asks_the_assistant(text: str, names: tuple[str, ...] = DEFAULT_ASSISTANT_NAMES) -> bool:
    """A direct address that asks something (WHEN-TO-SPEAK rule 1: always answered): :func:`addresses_assistant`
    and a question mark. "thanks bot" and "ok bot, sit this one out" are addressed but ask nothing."""
    return "?" in text and addresses_assistant(text, names)
