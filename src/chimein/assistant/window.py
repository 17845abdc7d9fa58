"""The context overflow policy of the local backend (``backends/local.py``), whatever its engine.

When a room's prompt no longer fits in the token budget, the oldest messages are dropped (whole user turns,
with the assistant turns after them) until the prompt fits in three quarters of the budget. The room's cache
is then rebuilt once, and the next quarter of the budget is cheap again: one rebuild per many messages,
never one per message.
"""

from __future__ import annotations

from typing import Callable

from chimein.data import Message


def fit_window(messages: list[Message], start: int, prompt_ids: Callable[[list[Message]], list[int]],
               budget: int) -> tuple[int, list[int]]:
    """Return the first message kept and the prompt's token ids for ``messages[start:]``."""
    if start >= len(messages):
        start = 0
    ids = prompt_ids(messages[start:])
    if len(ids) <= budget:
        return start, ids
    while len(ids) > budget * 3 // 4:
        nxt = next((i for i in range(start + 1, len(messages)) if messages[i].role == "user"), None)
        if nxt is None or nxt == len(messages) - 1:
            # Only the newest message would be left: keep what fits, cutting its beginning if it is too long.
            return start, ids[-budget:]
        start = nxt
        ids = prompt_ids(messages[start:])
    return start, ids
