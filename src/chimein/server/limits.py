"""The server's limits, shared by the web rooms and the OpenAI-compatible API, and the token bucket behind
its rate limits."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Limits:
    max_message_chars: int = 2000
    max_frame_bytes: int = 32_768  # a bigger WebSocket frame is refused before it is parsed
    burst: int = 10  # frames a connection may send at once ...
    per_second: float = 1.0  # ... and per second after that (token bucket)
    max_strikes: int = 20  # rate-limited frames in a row before the connection is closed
    history: int = 500  # at most this many messages are sent on join
    seed_messages: int = 50  # recent messages the assistant rereads when its room wakes up
    typing_after_s: float = 0.4  # show "typing" when a decision runs longer than this (it is writing)
    join_timeout_s: float = 10.0
    outbox: int = 1000  # frames queued for a client that reads too slowly before it is dropped
    rooms_burst: int = 20  # rooms one address may create at once ...
    rooms_per_second: float = 0.1  # ... and per second after that
    max_request_bytes: int = 1_048_576  # an HTTP body (the API's whole history) is refused past this
    api_history_messages: int = 16  # the API decides on this many latest messages (each call reads them all)
    api_burst: int = 20  # API requests one address may send at once ...
    api_per_minute: float = 120.0  # ... and per minute after that

    def to_json(self) -> dict[str, Any]:
        return {"max_message_chars": self.max_message_chars, "burst": self.burst, "per_second": self.per_second}


class TokenBucket:
    """``burst`` actions at once, then ``per_second``; ``take()`` returns 0 when allowed, else the wait."""

    def __init__(self, burst: int, per_second: float, clock: Callable[[], float] = time.monotonic):
        self.capacity, self.rate, self.clock = float(burst), per_second, clock
        self.tokens, self.at = float(burst), clock()

    def take(self) -> float:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else math.inf
