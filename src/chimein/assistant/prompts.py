"""The seed's prompted baseline: a system prompt instead of fine-tuning.

Two variants, as in the seed:
- ``short``: one system prompt.
- ``reminder``: the system prompt says the assistant is addressed as "assistant", and a reminder system
  message follows every user message.
Speaker names travel in the OpenAI ``name`` field where the endpoint supports it, and as ``Name: text`` in
the content otherwise (most chat templates drop ``name``).
"""

from __future__ import annotations

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

REPLIER_SYSTEM = (
    "You are a helpful assistant taking part in a group chat. Someone in the group needs you now. "
    "Answer the group briefly: 1-3 sentences, the fact first, friendly, no filler, no lists."
)


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


def replier_messages(messages: list[Message], names_in_field: bool = False) -> list[dict[str, str]]:
    """Prompt for a separate replier: the conversation with speaker names and a brief-answer instruction."""
    return [{"role": "system", "content": REPLIER_SYSTEM}] + [
        _user(m, names_in_field) if m.role == "user" else {"role": "assistant", "content": m.content} for m in messages
    ]


def _user(m: Message, names_in_field: bool) -> dict[str, str]:
    if names_in_field:
        return {"role": "user", "name": _safe_name(m.name or "user"), "content": m.content}
    return {"role": "user", "content": f"{m.name}: {m.content}"}


def _safe_name(name: str) -> str:
    # OpenAI restricts `name` to [a-zA-Z0-9_-]{1,64}.
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in "_-" else "_" for c in name)[:64]
    return cleaned or "user"

