"""The one thread that runs every model call, taking turns between callers, addressed messages first.

Backends are not thread-safe and a CPU has few cores, so every room (web, Matrix) and every API client shares
one model thread. A plain FIFO would let one client with many (or long) requests hold every room's answer;
here each caller (``room:ID``, ``matrix:!room``, ``api:ADDRESS``) has its own queue and the thread serves the
queues in turn, one call each. A call marked ``urgent`` (a message that addresses the assistant) is served
before every other one, callers with urgent calls again taking turns: when decisions fall behind, a direct
question does not wait behind forty rooms' chit-chat.

The queue is bounded: past ``max_pending`` calls, :meth:`ModelThread.submit_as` raises :class:`ModelBusy` at
once instead of letting the wait grow without limit (a room's own worker never has more than one call queued).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Executor, Future
from typing import Any, Callable

Call = tuple[Future, Callable[..., Any], tuple, dict]

# How far back busy_share looks, and the share under which the model thread's core is lent to a replier.
BUSY_WINDOW_S = 10.0
LEND_BELOW = 0.05


class ModelBusy(RuntimeError):
    """The model thread has ``max_pending`` calls waiting: come back later."""


class ModelThread(Executor):
    def __init__(self, name: str = "chimein-model", max_pending: int = 1000):
        # Two lines of callers, served urgent first; within each, callers take turns.
        self._urgent: OrderedDict[str, deque[Call]] = OrderedDict()
        self._queues: OrderedDict[str, deque[Call]] = OrderedDict()
        self.max_pending = max_pending
        self._wake = threading.Condition()
        self._stopping = False
        self._running: float | None = None  # when the running call started
        self._ran: deque[tuple[float, float]] = deque()  # (end, seconds) of the calls of the last BUSY_WINDOW_S
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self.submit_as("", fn, *args, **kwargs)

    def submit_as(
        self, caller: str, fn: Callable[..., Any], /, *args: Any, urgent: bool = False, **kwargs: Any
    ) -> Future:
        """Queue ``fn(*args, **kwargs)`` behind ``caller``'s earlier calls (callers take turns; ``urgent``
        calls go before all others). Raises :class:`ModelBusy` when ``max_pending`` calls are waiting."""
        future: Future = Future()
        with self._wake:
            if self._stopping:
                raise RuntimeError("the model thread is shut down")
            if self._count() >= self.max_pending:
                raise ModelBusy(f"the model has {self.max_pending} calls waiting")
            (self._urgent if urgent else self._queues).setdefault(caller, deque()).append((future, fn, args, kwargs))
            self._wake.notify()
        return future

    def promote(self, caller: str) -> bool:
        """Move ``caller``'s waiting calls to the urgent line (a room whose chit-chat call waits when a message
        that addresses the assistant arrives: the question must not wait behind it). True if any moved."""
        with self._wake:
            queue = self._queues.pop(caller, None)
            if not queue:
                return False
            self._urgent.setdefault(caller, deque()).extend(queue)
            return True

    def _count(self) -> int:
        return sum(len(q) for q in self._urgent.values()) + sum(len(q) for q in self._queues.values())

    @property
    def idle(self) -> bool:
        """No call running and none waiting (its core is free for a moment)."""
        return self._running is None and not self._urgent and not self._queues

    def busy_share(self) -> float:
        """The share of the last ``BUSY_WINDOW_S`` seconds it spent running calls."""
        now, running = time.monotonic(), self._running
        while self._ran and self._ran[0][0] < now - BUSY_WINDOW_S:
            self._ran.popleft()
        busy = sum(seconds for _, seconds in list(self._ran))
        if running is not None:
            busy += now - running
        return min(1.0, busy / BUSY_WINDOW_S)

    def pending(self) -> dict[str, int]:
        """Calls waiting per caller (urgent and not)."""
        with self._wake:
            out: dict[str, int] = {}
            for line in (self._urgent, self._queues):
                for caller, queue in line.items():
                    out[caller] = out.get(caller, 0) + len(queue)
            return out

    def _next(self) -> Call | None:
        with self._wake:
            while not self._urgent and not self._queues and not self._stopping:
                self._wake.wait()
            line = self._urgent or self._queues
            if not line:
                return None
            caller, queue = line.popitem(last=False)
            call = queue.popleft()
            if queue:
                line[caller] = queue  # to the back of the line
            return call

    def _run(self) -> None:
        while (call := self._next()) is not None:
            future, fn, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue
            self._running = start = time.monotonic()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - handed to the caller, like ThreadPoolExecutor
                future.set_exception(e)
            finally:
                end = time.monotonic()
                self._ran.append((end, end - start))
                self._running = None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._wake:
            self._stopping = True
            if cancel_futures:
                for line in (self._urgent, self._queues):
                    for queue in line.values():
                        for future, *_ in queue:
                            future.cancel()
                    line.clear()
            self._wake.notify_all()
        if wait:
            self._thread.join()


def lend_idle_cores(replier: Any, model: ModelThread, threads: int = 1, below: float = LEND_BELOW) -> None:
    """Let a local replier use ``threads`` more CPU threads (the decisions' own: ``--threads``) while ``model`` is
    idle and was busy less than ``below`` of the last seconds. On a quiet server a reply is then read and written
    on every core (on 2 cores, its first word in about two thirds of the time). On a busy one it never is: a
    decision arriving during a lent step would share its core with the replier (bench/results/many_rooms.md)."""
    if hasattr(replier, "spare_threads"):
        replier.spare_threads = lambda: threads if model.idle and model.busy_share() < below else 0


def set_up_replier(decider: Any, replier: Any, model: ModelThread) -> None:
    """Set up a server whose ``replier`` writes every reply outside its ``model`` thread (web rooms, the API, Matrix);
    nothing without a replier. The deciding backend only decides: its own reply would be thrown away, and writing
    it holds the model thread every room shares (``decide_only``); where the rules alone decide, it does not run
    (``rules_skip_model``, :func:`chimein.assistant.core.decision_without_the_model`). A failed replier then leaves
    the assistant silent (no local reply to fall back on). The replier is lent the model thread's core while that
    is idle and quiet (:func:`lend_idle_cores`)."""
    if replier is None:
        return
    decider.decide_only = True
    if hasattr(decider, "rules_skip_model"):
        decider.rules_skip_model = True
    lend_idle_cores(replier, model)
