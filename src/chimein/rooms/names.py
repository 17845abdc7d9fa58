"""Who may pass for whom in a room: names that look alike, names that pass for the assistant, and the bidi
controls that make a message read differently from what it holds."""

from __future__ import annotations

import re
import unicodedata

import confusables

from chimein.mentions import DEFAULT_ASSISTANT_NAMES

# Left-to-right/right-to-left embeddings and overrides (U+202A-202E) and isolates (U+2066-2069): text after
# them is shown reordered ("gnp.exe" shown as "exe.png"), so nobody may send them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
GENERIC_ASSISTANT_NAMES = (*DEFAULT_ASSISTANT_NAMES, "chatbot", "the bot", "the assistant", "the ai")
_BRACKETED = re.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}|<[^>]*>")
_ARTICLE = re.compile(r"^(the|a|an)\s+")


def looks_alike(a: str, b: str) -> bool:
    """Whether two display names could pass for each other: equal after NFKC and case folding, or confusable
    character by character (Unicode's confusables: a Cyrillic "а" for a Latin "a", "rn" for "m")."""
    a, b = unicodedata.normalize("NFKC", a).casefold(), unicodedata.normalize("NFKC", b).casefold()
    return a == b or confusables.is_confusable(a, b)


def bare_names(name: str) -> set[str]:
    """A name without what does not tell people apart: punctuation, symbols, brackets (with or without what
    they hold), a leading article, case and spaces ("The Assistant (real)." -> "assistant", "Chim-ein" -> "chimein")."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    out = set()
    for text in (_BRACKETED.sub(" ", folded), folded):
        words = " ".join("".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text).split())
        out |= {words.replace(" ", ""), _ARTICLE.sub("", words), _ARTICLE.sub("", words).replace(" ", "")}
    return out - {""}


def passes_for_assistant(name: str, assistant_name: str = "assistant") -> bool:
    """Whether a person's name could pass for the assistant: its own name or a generic one (bot, AI, chimein,
    the assistant), looking alike with or without punctuation, brackets, a leading article and spaces."""
    reserved = {assistant_name, *bare_names(assistant_name), *GENERIC_ASSISTANT_NAMES}
    return any(looks_alike(candidate, r) for candidate in {name, *bare_names(name)} for r in reserved)


def has_bidi_control(text: str) -> bool:
    return any(c in BIDI_CONTROLS for c in text)
