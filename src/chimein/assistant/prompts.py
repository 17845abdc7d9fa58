"""The seed's prompted baseline: a system prompt instead of fine-tuning.

Two variants, as in the seed:
- ``short``: one system prompt.
- ``reminder``: the system prompt says the assistant is addressed as "assistant", and a reminder system
  message follows every user message.
Speaker names travel in the OpenAI ``name`` field where the endpoint supports it, and as ``Name: text`` in
the content otherwise (most chat templates drop ``name``).
"""

from __future__ import annotations

import re

from chimein.data import Message
from chimein.format import SILENCE
from chimein.mentions import mentions_assistant

SYSTEM_SHORT = (
    "You are an assistant in a group conversation between multiple users. "
    "Only respond when you can add useful information or when you are directly addressed. "
    f'If you have nothing useful to add, respond with "{SILENCE}".'
)
SYSTEM_ADDRESSED = (
    "You are an assistant in a group conversation between multiple users. The users address you as "
    '"assistant". Respond only when you are addressed as "assistant" or when you can add a useful, '
    f'correct fact that the users are missing. Otherwise respond with "{SILENCE}" and nothing else. '
    "Keep replies to 1-3 sentences."
)
REMINDER = f'Reminder: reply "{SILENCE}" unless you are addressed or can add a useful fact.'

VARIANTS = ("short", "reminder")

# The replier (decide small, reply strong). The question goes in restated on its own, after a few lines of the
# chat as context: shown the chat as turns, a small replier agreed with whatever guess came last, and an
# instruction to say "I'm not sure" made it hedge on what it knew (its token probabilities say that better).
UNSURE = "I'm not sure about that one, sorry."
REPLIER_SYSTEM = (
    "You are a helpful assistant in a group chat. Answer the question in one or two short sentences, the "
    "fact first, in the language of the question. Messages in the chat may contain wrong guesses: answer "
    "from what you know."
)
REPLIER_CONTEXT = 6  # recent messages shown to the replier before the question
REPLIER_MESSAGE_CHARS = 400


def baseline_messages(
    messages: list[Message], variant: str = "short", names_in_field: bool = False
) -> list[dict[str, str]]:
    """The conversation as OpenAI chat messages for the prompted baseline."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown baseline variant {variant!r}; choose {' or '.join(VARIANTS)}")
    out = [{"role": "system", "content": SYSTEM_SHORT if variant == "short" else SYSTEM_ADDRESSED}]
    for m in messages:
        if m.role == "user":
            out.append(_user(m, names_in_field))
            if variant == "reminder":
                out.append({"role": "system", "content": REMINDER})
        else:
            out.append({"role": "assistant", "content": m.content})
    return out


def replier_messages(messages: list[Message], volunteer: bool = False) -> list[dict[str, str]]:
    """The replier's prompt: its instruction, the people's recent messages, the question restated on its own
    (:func:`the_question`). The assistant's own earlier replies are left out: a small replier repeats what it
    sees (asked about the Geminids right after answering about the Perseids, it gave the Perseids' dates
    again). ``volunteer``: nobody asked; the same prompt, since the second look (``replier.vet``) is what holds
    a volunteered reply to a higher standard."""
    recent = [m for m in messages if m.role == "user"][-REPLIER_CONTEXT:]
    lines = [f"{m.name}: {_short(m.content)}" for m in recent]
    return [
        {"role": "system", "content": REPLIER_SYSTEM},
        {
            "role": "user",
            "content": "Recent chat:\n" + "\n".join(lines) + f"\n\nQuestion: {_short(the_question(messages))}",
        },
    ]


_WH = re.compile(
    r"^\W*(?:what|what's|whats|how|when|where|who|whom|which|why|is|are|was|were|does|do|did|can|could|should|"
    r"would|will|has|have|wie|wo|wann|welche[rsn]?|qu[eé]|c[oó]mo|cu[aá]ndo|d[oó]nde|quel(?:le)?s?|combien|o[uù])\b",
    re.IGNORECASE,
)
# Questions that ask even without a "?" ("how many keys on a piano"); "is it ...", "can we ..." need one.
_OPEN_QUESTION = re.compile(r"^\W*(?:what|what's|whats|how|when|where|who|which|why)\b", re.IGNORECASE)
_CHECK = re.compile(
    r"^\W*(?:(?:is|was)\s+(?:that|this|it|he|she)\s+(?:right|true|correct|so)|are\s+(?:you|they|we)\s+sure|"
    r"really|true|correct|right|sure|is\s+(?:that|this)\s+(?:a\s+)?(?:fact|so))\W*$",
    re.IGNORECASE,
)
_ADDRESS = re.compile(
    r"^\W*(?:(?:hey|hi|ok|okay|yo|so|oi)\W+)?(?:the\s+)?@?(?:assistant|bot|ai|chimein)\b\W*", re.IGNORECASE
)


def the_question(messages: list[Message], lookback: int = 8) -> str:
    """The question the group is on, restated on its own, without the assistant's name in front: the last
    message if it asks the assistant something or is a real question; otherwise the most recent real question
    before it. A real question opens with a question word and has four words or more ("around 5?" and
    "a herd? not sure" are guesses, not the question); a check of what was said ("is that right?", "are you
    sure?") points at the question before it too (asked as it stands, the replier agreed)."""
    users = [m.content.strip() for m in messages if m.role == "user"][-lookback:]
    strip = lambda text: _ADDRESS.sub("", text).strip() or text  # noqa: E731
    last = strip(users[-1])
    asks_itself = len(re.findall(r"\w+", last)) >= 2 and not _CHECK.match(last)  # "assistant?" alone points back
    if _asks(last) and asks_itself and (mentions_assistant(users[-1]) or _real_question(last)):
        return last
    for text in reversed(users[:-1]):
        if _real_question(strip(text)) and (_asks(text) or _OPEN_QUESTION.match(strip(text))):
            return strip(text)
    return last


def _asks(text: str) -> bool:
    return "?" in text or "？" in text or "¿" in text


def _real_question(text: str) -> bool:
    return (len(text.split()) >= 4 and _WH.search(text) is not None) or not text.isascii()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REPLIER_MESSAGE_CHARS else text[:REPLIER_MESSAGE_CHARS] + "..."


def _user(m: Message, names_in_field: bool) -> dict[str, str]:
    if names_in_field:
        return {"role": "user", "name": _safe_name(m.name or "user"), "content": m.content}
    return {"role": "user", "content": f"{m.name}: {m.content}"}


def _safe_name(name: str) -> str:
    # OpenAI restricts `name` to [a-zA-Z0-9_-]{1,64}.
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in "_-" else "_" for c in name)[:64]
    return cleaned or "user"
