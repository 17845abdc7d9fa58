"""`chimein decide`: the assistant as a JSON-lines filter another program can drive.

Input, one per line:  {"messages": [{"role": "user", "name": "Ana", "content": "..."}, ...]}
Output, one per line: {"speak": true, "text": "...", "p_speak": 0.87}   (p_speak null when unknown)
A bad line gets {"error": "line N: field: what is wrong"} and the loop goes on.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, TextIO

from chimein.assistant.core import Backend, TwoStage
from chimein.data import Message, parse_messages


class JsonLinesDecider:
    """Keeps one model state per conversation seen recently, so a growing history reuses its cache."""

    def __init__(self, backend: Backend, replier: Any = None, threshold: float | None = None, max_sessions: int = 32):
        self.backend = TwoStage(backend, replier) if replier is not None else backend
        self.threshold, self.max_sessions = threshold, max_sessions
        self.sessions: OrderedDict[int, tuple[list[Message], Any]] = OrderedDict()
        self._next = 0

    def _state_for(self, messages: list[Message]) -> Any:
        for key, (seen, state) in reversed(self.sessions.items()):
            if len(seen) <= len(messages) and messages[: len(seen)] == seen:
                self.sessions[key] = (messages, state)
                self.sessions.move_to_end(key)
                return state
        state = self.backend.new_state()
        self.sessions[self._next] = (messages, state)
        self._next += 1
        while len(self.sessions) > self.max_sessions:
            self.sessions.popitem(last=False)
        return state

    def answer(self, line: str, number: int) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as e:
            return {"error": f"line {number}: json: invalid JSON: {e.msg}"}
        if not isinstance(request, dict) or "messages" not in request:
            return {"error": f"line {number}: messages: expected an object with a 'messages' list"}
        messages, problems = parse_messages(request["messages"], may_start_with_assistant=True)
        if problems:
            return {"error": "; ".join(f"line {number}: {f}: {p}" for f, p in problems)}
        if messages[-1].role != "user":
            return {"error": f"line {number}: messages: the last message must be a user message"}
        # A follow-up request carries this one's messages (and the reply, if any) as its prefix, so it finds
        # this session; the backend then reuses the longest common token prefix of its cache.
        decision = self.backend.decide(messages, self._state_for(messages), self.threshold)
        return decision.to_json()

    def run(self, inp: TextIO, out: TextIO) -> None:
        for number, line in enumerate(inp, 1):
            if not line.strip():
                continue
            out.write(json.dumps(self.answer(line, number), ensure_ascii=False) + "\n")
            out.flush()
