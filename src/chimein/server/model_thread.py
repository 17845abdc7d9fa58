"""The one thread that runs every model call of the server, taking turns between callers.

Backends are not thread-safe and a CPU has few cores, so rooms and API clients share one model thread.
A plain FIFO would let one client with many (or long) requests hold every room's answer; here each caller
(``room:ID``, ``api:ADDRESS``) has its own queue and the thread serves the queues in turn, one call each.
A room's answer then waits for at most one call per other busy caller, and each call is bounded (the
history is cut to the context window first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from concurrent.futures import Executor, Future
from typing import Any, Callable


class ModelThread(Executor):
    def __init__(self, name: str = "chimein-model"):
        self._queues: OrderedDict[str, deque[tuple[Future, Callable[..., Any], tuple, dict]]] = OrderedDict()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self.submit_as("", fn, *args, **kwargs)

    def submit_as(self, caller: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)`` behind ``caller``'s earlier calls (callers take turns)."""
        future: Future = Future()
        with self._wake:
            if self._stopping:
                raise RuntimeError("the model thread is shut down")
            self._queues.setdefault(caller, deque()).append((future, fn, args, kwargs))
            self._wake.notify()
        return future

    def pending(self) -> dict[str, int]:
        with self._wake:
            return {caller: len(queue) for caller, queue in self._queues.items()}

    def _next(self) -> tuple[Future, Callable[..., Any], tuple, dict] | None:
        with self._wake:
            while not self._queues and not self._stopping:
                self._wake.wait()
            if not self._queues:
                return None
            caller, queue = self._queues.popitem(last=False)
            call = queue.popleft()
            if queue:
                self._queues[caller] = queue  # to the back of the line
            return call

    def _run(self) -> None:
        while (call := self._next()) is not None:
            future, fn, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - handed to the caller, like ThreadPoolExecutor
                future.set_exception(e)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._wake:
            self._stopping = True
            if cancel_futures:
                for queue in self._queues.values():
                    for future, *_ in queue:
                        future.cancel()
                self._queues.clear()
            self._wake.notify_all()
        if wait:
            self._thread.join()
