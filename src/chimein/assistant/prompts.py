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

# The replier (decide small, reply strong). The chat goes in as one transcript with the message to answer
# restated, not as turns: in turns a small replier agreed with whatever guess came last.
UNSURE = "I'm not sure about that one, sorry."
REPLIER_SYSTEM = (
    "You are the assistant in a group chat. Reply to the group in one or two short sentences, the fact first, "
    "in the language of the chat. People in the chat may have guessed wrong: rely on what you know, never on their "
    "guesses. If you do not know the answer for certain, say \"I'm not sure\" and do not invent numbers, dates "
    "or names."
)
ASKED = "{name} asked you: \"{text}\"\nYour reply:"
VOLUNTEERED = ("Nobody asked you, but the last message was from {name}: \"{text}\"\nIf the chat is stuck on a question "
               "or states something wrong, give the correct fact. Your reply:")
REPLIER_CONTEXT = 12  # recent messages shown to the replier
REPLIER_MESSAGE_CHARS = 400

def baseline_messages(messages: list[Message], variant: str = "short", names_in_field: bool = False) -> list[dict[str, str]]:
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
    """The replier's prompt: its instruction, the recent chat as a transcript, the last message restated."""
    recent = messages[-REPLIER_CONTEXT:]
    lines = [f"{m.name if m.role == 'user' else 'assistant'}: {_short(m.content)}" for m in recent]
    last = messages[-1]
    ask = (VOLUNTEERED if volunteer else ASKED).format(name=last.name or "someone", text=_short(last.content))
    return [{"role": "system", "content": REPLIER_SYSTEM},
            {"role": "user", "content": "The chat so far:\n" + "\n".join(lines) + "\n\n" + ask}]


_WH = re.compile(r"^\W*(?:what|what's|whats|how|when|where|who|whom|which|why|is|are|was|were|does|do|did|can|could|should|"
                 r"would|will|has|have|wie|was|wo|wann|welche[rsn]?|qu[eé]|c[oó]mo|cu[aá]ndo|d[oó]nde|quel(?:le)?s?|combien|o[uù])\b",
                 re.IGNORECASE)
_ADDRESS = re.compile(r"^\W*(?:(?:hey|hi|ok|okay|yo|so|oi)\W+)?(?:the\s+)?@?(?:assistant|bot|ai|chimein)\b\W*", re.IGNORECASE)


def the_question(messages: list[Message], lookback: int = 8) -> str:
    """The question the group is on, restated on its own: the last message if it asks something; otherwise
    the most recent real question before it (a wh- or yes/no question of four words or more: "around 5?" is
    a guess, not the question), without the assistant's name in front."""
    users = [m.content for m in messages if m.role == "user"][-lookback:]
    strip = lambda text: _ADDRESS.sub("", text).strip() or text  # noqa: E731
    last = strip(users[-1])
    if "?" in last and len(last.split()) >= 3:
        return last
    for text in reversed(users[:-1]):
        text = strip(text)
        if "?" in text and len(text.split()) >= 4 and _WH.search(text):
            return text
    return last


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

