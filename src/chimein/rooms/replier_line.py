"""The line in front of a replier that writes one reply at a time: replies to addressed messages first.

A local replier (a 1.5B model on the CPU, ``concurrent_replies = 1``) writes one reply at a time, seconds each.
Rooms that reach it in the order they asked would queue a direct question behind every room's volunteered
reply, and volunteered replies pile up faster than it writes them when many rooms talk. Here the rooms wait
on the event loop: a reply to a message that addresses the assistant goes first, and a volunteered reply may
give up waiting (after a time, or when something more pressing happens in its room), so the caller can skip it
and log why. A caller that could not get its turn in time is told so at once, without joining the line: the line
times the replies it hands out, and a wait it can already see is longer than the caller's is not waited out
(under a load the replier cannot keep up with, a question hears "busy" in a second, not after its whole wait).
A replier without ``concurrent_replies`` (one over HTTP) writes as many replies at once as asked.

    line = replier_line(two_stage)                     # one line per replier, shared by every room using it
    if await line.acquire(urgent=False, timeout=5.0, unless=question_waits):
        try: ...write the reply...
        finally: line.release()
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import weakref
from collections import deque
from typing import Any


class ReplierLine:
    def __init__(self, width: int | None = 1) -> None:
        self.width = width  # replies written at once (None: no limit)
        self._waiting: list[tuple[int, int, asyncio.Future]] = []  # (0 urgent / 1 not, arrival, future)
        self._order = itertools.count()
        self.writing = 0
        self.write_s: float | None = None  # how long a turn lasts: a moving average (None: no turn ended yet)
        self._taken: deque[float] = deque()  # when each turn being written was taken, oldest first

    def expected_wait(self, urgent: bool) -> float:
        """Seconds a caller arriving now would wait for its turn, from how long turns have lasted (0 while the
        line is free or no turn has ended yet)."""
        if self.width is None or self.writing < self.width or self.write_s is None:
            return 0.0
        ahead = sum(1 for rank, _, turn in self._waiting if not turn.done() and (rank == 0 or not urgent))
        now = time.monotonic()
        first_free = max(0.0, self.write_s - (now - self._taken[0])) if self._taken else 0.0
        return first_free + ahead * self.write_s / self.width

    async def acquire(self, urgent: bool, timeout: float | None = None, unless: asyncio.Event | None = None) -> bool:
        """Wait for the turn: True once it is ours (then :meth:`release` it); False when ``timeout`` seconds
        passed, or the wait ahead is already longer (:meth:`expected_wait`), or ``unless`` was set first (the
        turn is then not taken)."""
        if unless is not None and unless.is_set():
            return False
        if self.width is None or self.writing < self.width:
            self._take()
            return True
        if timeout is not None and self.expected_wait(urgent) > timeout:
            return False
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

    def _take(self) -> None:
        self.writing += 1
        self._taken.append(time.monotonic())

    def _give_up(self, turn: asyncio.Future) -> None:
        if turn.done() and not turn.cancelled():  # handed the turn as the caller was cancelled: pass it on
            self.release()
        else:
            turn.cancel()

    def release(self) -> None:
        """End our turn: hand it to the next waiter (urgent first, then in arrival order)."""
        if self._taken:  # turns end in about the order they were taken: the oldest one's length is near enough
            lasted = time.monotonic() - self._taken.popleft()
            self.write_s = lasted if self.write_s is None else 0.7 * self.write_s + 0.3 * lasted
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)  # the turn passes straight to that waiter
                self._taken.append(time.monotonic())
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
