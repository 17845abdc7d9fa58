"""The context overflow policy of the local backend (``backends/local.py``), whatever its engine.

When a room's prompt no longer fits in the token budget, the oldest messages are dropped (whole user turns,
with the assistant turns after them) until the prompt fits in three quarters of the budget. The room's cache
is then rebuilt once, and the next quarter of the budget is cheap again: one rebuild per many messages,
never one per message.

The cost is linear in the history, whatever its length: messages that could never fit are cut before
anything is rendered (each takes at least ``MIN_TOKENS_PER_MESSAGE`` tokens and no tokenizer packs more than
``MAX_CHARS_PER_TOKEN`` characters into a token on average), and the first turn that fits is found by
bisection, a few renders of at most a window each.
"""

from __future__ import annotations

from typing import Callable

from chimein.data import Message

MIN_TOKENS_PER_MESSAGE = 2  # every chat template adds at least a role marker and an end of turn
MAX_CHARS_PER_TOKEN = 16


def fit_window(
    messages: list[Message], start: int, prompt_ids: Callable[[list[Message]], list[int]], budget: int
) -> tuple[int, list[int]]:
    """Return the first message kept and the prompt's token ids for ``messages[start:]``."""
    if start >= len(messages):
        start = 0
    start = max(start, first_that_can_fit(messages, budget))
    ids = prompt_ids(messages[start:])
    if len(ids) <= budget:
        return start, ids
    # Later user turns (never the newest message alone); the prompt shrinks as the start moves on.
    turns = [i for i in range(start + 1, len(messages) - 1) if messages[i].role == "user"]
    fits: tuple[int, list[int]] | None = None
    lo, hi = 0, len(turns)
    while lo < hi:
        mid = (lo + hi) // 2
        candidate = prompt_ids(messages[turns[mid] :])
        if len(candidate) <= budget * 3 // 4:
            fits, hi = (turns[mid], candidate), mid
        else:
            lo = mid + 1
    if fits is not None:
        return fits
    if turns:  # even the last turns do not fit: keep them, cutting the beginning
        start = turns[-1]
        ids = prompt_ids(messages[start:])
    return start, ids[-budget:]


def first_that_can_fit(messages: list[Message], budget: int) -> int:
    """The earliest user turn from which the rest might still fit in ``budget`` tokens (an upper bound on
    what fits, found without rendering anything). The newest message is always kept."""
    chars, count = 0, 0
    for i in range(len(messages) - 1, -1, -1):
        chars += len(messages[i].content) + len(messages[i].name or "")
        count += 1
        if i < len(messages) - 1 and (count * MIN_TOKENS_PER_MESSAGE > budget or chars > budget * MAX_CHARS_PER_TOKEN):
            return next((j for j in range(i + 1, len(messages)) if messages[j].role == "user"), len(messages) - 1)
    return 0
