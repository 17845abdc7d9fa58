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


# How a request opens when it has no question mark, as people write in IRC-style chat: a question word
# ("assistant, which release"), a polite modal ("could you send me the link"), or a verb asking for information
# or an action ("tell us", "explain", "check the logs"). "sit this one out", "stop" and "thanks" are not requests.
REQUEST_OPENING = re.compile(
    r"(?:(?:please|pls|plz)\s+)?(?:"
    r"(?:what|which|who|whom|whose|where|when|why|how)\b"
    r"|(?:can|could|would|will)\s+(?:you|u)\b"
    r"|(?:tell|explain|send|give|show|find|check|look\s+up|summari[sz]e|remind|list|write|translate|compare|share"
    r"|post|link|fetch|calculate|compute|convert|define|describe|recommend|suggest|search|help)\b)",
    re.IGNORECASE,
)


def asks_the_assistant(text: str, names: tuple[str, ...] = DEFAULT_ASSISTANT_NAMES) -> bool:
    """A direct address that asks something (WHEN-TO-SPEAK rule 1: always answered): :func:`addresses_assistant`
    and either a question mark or a request ("assistant, which release", "bot can you check the logs",
    "bot, explain ...", "can the AI check ..."). "thanks bot" and "ok bot, sit this one out" are addressed
    but ask nothing."""
    if not addresses_assistant(text, names):
        return False
    if "?" in text:
        return True
    n = _names_pattern(names)
    stripped = text.strip()
    if re.search(rf"\b(?:can|could|would|will)\s+(?:the\s+)?(?:{n})(?!\w)", stripped, re.IGNORECASE):
        return True  # "can the AI check the time zone"
    # What the message says besides the address: after an opening one, or before a closing ", bot" / "@bot".
    rest = re.sub(
        rf"^\W*(?:(?:hey|hi|hello|ok|okay|yo|so|oi|right|quick q)\W+)?(?:the\s+)?@?(?:{n})(?!\w)[\s,:;.!-]*",
        "",
        stripped,
        flags=re.IGNORECASE,
    )
    rest = re.sub(rf"[\s,]*(?<!\w)@?(?:{n})\W*$", "", rest, flags=re.IGNORECASE)
    return REQUEST_OPENING.match(rest) is not None


# @handles that address the whole room, not one person.
GROUP_HANDLES = ("here", "channel", "everyone", "all", "room")


def addressed_person(
    text: str, speakers: tuple[str, ...] | list[str] = (), names: tuple[str, ...] = DEFAULT_ASSISTANT_NAMES
) -> str | None:
    """The person a message is addressed to, if it opens or closes by addressing someone other than the
    assistant: an ``@handle`` (not ``@here``/``@everyone``), or the name of someone in the chat used
    IRC-style (``kira: is btrfs stable?``), as a vocative (``Ben, are you coming?``, ``you coming, Ben?``),
    after a greeting (``hey sam, ...``). WHEN-TO-SPEAK: such a line is theirs to answer.
    Returns the name as written, or None (also when the message addresses the assistant)."""
    if addresses_assistant(text, names):
        return None
    stripped = text.strip()
    assistant = {n.lower() for n in names}
    handle = re.match(r"^@([\w.\-]+)", stripped) or re.search(r"(?<![\w@])@([\w.\-]+)\W*$", stripped)
    if handle and handle.group(1).lower() not in assistant | set(GROUP_HANDLES):
        return handle.group(1)
    people = sorted(
        {s.strip() for s in speakers if s and s.strip() and s.strip().lower() not in assistant}, key=len, reverse=True
    )
    if not people:
        return None
    who = "|".join(re.escape(p) for p in people)
    opening = re.match(rf"^(?:(?:hey|hi|hello|ok|okay|yo|oi|so)\W+)?@?({who})\s*[:,]", stripped, re.IGNORECASE)
    closing = re.search(rf",\s*@?({who})\W*$", stripped, re.IGNORECASE)
    found = opening or closing
    return found.group(1) if found else None
