"""The line in front of a replier that writes one reply at a time: replies to addressed messages first.

A local replier (a 1.5B model on the CPU, ``concurrent_replies = 1``) writes one reply at a time, seconds each.
Rooms that reach it in the order they asked would queue a direct question behind every room's volunteered
reply, and volunteered replies pile up faster than it writes them when many rooms talk. Here the rooms wait
on the event loop: a reply to a message that addresses the assistant goes first, and a volunteered reply may
give up waiting (after a time, or when something more pressing happens in its room), so the caller can skip it
and log why. A replier without ``concurrent_replies`` (one over HTTP) writes as many replies at once as asked.

    line = replier_line(two_stage)                     # one line per replier, shared by every room using it
    if await line.acquire(urgent=False, timeout=5.0, unless=question_waits):
        try: ...write the reply...
        finally: line.release()
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from typing import Any


class ReplierLine:
    def __init__(self, width: int | None = 1) -> None:
        self.width = width  # replies written at once (None: no limit)
        self._waiting: list[tuple[int, int, asyncio.Future]] = []  # (0 urgent / 1 not, arrival, future)
        self._order = itertools.count()
        self.writing = 0

    async def acquire(self, urgent: bool, timeout: float | None = None, unless: asyncio.Event | None = None) -> bool:
        """Wait for the turn: True once it is ours (then :meth:`release` it); False when ``timeout`` seconds
        passed or ``unless`` was set first (the turn is then not taken)."""
        if unless is not None and unless.is_set():
            return False
        if self.width is None or self.writing < self.width:
            self.writing += 1
            return True
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, next(self._order), turn))
        waits: set[asyncio.Future] = {turn}
        if unless is not None:
            waits.add(asyncio.ensure_future(unless.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._give_up(turn)
            raise
        finally:
            for other in waits - {turn}:
                other.cancel()
        if turn.done() and not turn.cancelled():
            return True
        turn.cancel()  # release() passes over it
        return False

    def _give_up(self, turn: asyncio.Future) -> None:
        if turn.done() and not turn.cancelled():  # handed the turn as the caller was cancelled: pass it on
            self.release()
        else:
            turn.cancel()

    def release(self) -> None:
        """End our turn: hand it to the next waiter (urgent first, then in arrival order)."""
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)  # the turn passes straight to that waiter
                return
        self.writing -= 1

    def waiting(self) -> int:
        return sum(1 for *_, turn in self._waiting if not turn.done())


_LINES: weakref.WeakKeyDictionary[Any, ReplierLine] = weakref.WeakKeyDictionary()


def replier_line(replier: Any) -> ReplierLine:
    """The one line in front of ``replier`` (a :class:`~chimein.assistant.core.TwoStage`), shared by every room
    that uses it; dropped with it."""
    line = _LINES.get(replier)
    if line is None:
        line = _LINES[replier] = ReplierLine(getattr(getattr(replier, "replier", replier), "concurrent_replies", None))
    return line
