"""The live side of `chimein serve`: connected clients, one assistant worker per room, limits, wire errors.

A :class:`Hub` owns the live rooms. A room wakes up when someone joins it: its :class:`Assistant` is built
from the ONE shared backend (its per-room state comes from ``backend.new_state()``), seeded with the room's
recent messages, and the user messages it had not decided on yet (a crash, a restart) are queued again.
A room goes back to sleep (its assistant and model cache are dropped) when its last client has left and
its queue is empty.

Threads: everything here runs on the event loop except the model calls, which all go to ONE worker thread
(``executor``, a :class:`ModelThread` shared by every room and the OpenAI endpoint: backends are not
thread-safe). Each room has its own queue and worker task, so a room's messages are decided one at a time
in arrival order, while rooms and API clients take turns on the model thread. A message that arrives while the assistant writes a reply is stored,
shown and queued at once; the assistant hears it right after.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
import unicodedata
from dataclasses import replace
from typing import Any, Awaitable, Callable

import confusables

from chimein.assistant.core import Assistant, Backend, Decision, TwoStage, cut_reply
from chimein.assistant.policy import (
    BURST_REASON, Heard, PolicyError, RoomGate, RoomPolicy, apply_command, hear_burst, is_command, parse_command)
from chimein.data import Message
from chimein.server.limits import Limits, TokenBucket
from chimein.server.model_thread import ModelThread
from chimein.server.store import Room, Store, StoredMessage

log = logging.getLogger("chimein.serve")

CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")

# WebSocket close codes (besides 1000 and uvicorn's 1012 on shutdown).
CLOSE_BAD_JOIN, CLOSE_UNAUTHORIZED, CLOSE_JOIN_TIMEOUT, CLOSE_FLOODING, CLOSE_TOO_SLOW = 4400, 4401, 4408, 4429, 4503


class WireError(Exception):
    """An error for the client: ``{"type": "error", "code": ..., "message": ...}``; with ``close`` set,
    the connection is closed with that code afterwards."""

    def __init__(self, code: str, message: str, close: int | None = None, **extra: Any):
        super().__init__(message)
        self.code, self.message, self.close, self.extra = code, message, close, extra

    def to_json(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message, **self.extra}


# -- validation -------------------------------------------------------------------------------------------

def _is_control(c: str) -> bool:
    return unicodedata.category(c) == "Cc"


def validate_name(raw: Any, reserved: str = "assistant") -> str:
    """A display name: 1-32 characters after trimming, no control or invisible formatting characters
    (zero-width joiners in emoji excepted), not the assistant's name."""
    if not isinstance(raw, str):
        raise WireError("bad_name", "name must be a string", CLOSE_BAD_JOIN)
    name = raw.strip()
    if not 1 <= len(name) <= 32:
        raise WireError("bad_name", "a name is 1 to 32 characters", CLOSE_BAD_JOIN)
    if any((unicodedata.category(c)[0] == "C" and c != "\u200d") or unicodedata.category(c) in ("Zl", "Zp") for c in name):
        raise WireError("bad_name", "a name cannot contain control, formatting or line-break characters", CLOSE_BAD_JOIN)
    if looks_alike(name, reserved):
        raise WireError("bad_name", f"{name!r} looks like {reserved!r}, the assistant's name", CLOSE_BAD_JOIN)
    return name


def looks_alike(a: str, b: str) -> bool:
    """Whether two display names could pass for each other: equal after NFKC and case folding, or confusable
    character by character (Unicode's confusables: a Cyrillic "а" for a Latin "a", "rn" for "m")."""
    a, b = unicodedata.normalize("NFKC", a).casefold(), unicodedata.normalize("NFKC", b).casefold()
    return a == b or confusables.is_confusable(a, b)


def validate_key(raw: Any) -> str | None:
    """The browser's secret for its names in a room -> a hash of it (None without a key)."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not KEY.fullmatch(raw):
        raise WireError("bad_request", "key must be 16-128 characters of A-Z a-z 0-9 _ -", CLOSE_BAD_JOIN)
    return hashlib.sha256(raw.encode()).hexdigest()


def validate_text(raw: Any, max_chars: int) -> str:
    if not isinstance(raw, str):
        raise WireError("bad_request", "text must be a string")
    text = raw.replace("\r\n", "\n").strip()
    if not text:
        raise WireError("empty", "the message is empty")
    if len(text) > max_chars:
        raise WireError("too_long", f"a message is at most {max_chars} characters (this one has {len(text)})")
    if any(_is_control(c) and c not in "\n\t" for c in text):
        raise WireError("bad_text", "a message cannot contain control characters")
    return text


def validate_client_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not CLIENT_ID.fullmatch(raw):
        raise WireError("bad_request", "client_id must be 1-64 characters of A-Z a-z 0-9 _ -")
    return raw


def validate_eagerness(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or not 0 <= raw <= 1:
        raise WireError("bad_value", "eagerness is a number from 0 to 1 (or null for the default)")
    return float(raw)


# -- connections ------------------------------------------------------------------------------------------

class Connection:
    """One WebSocket client. Frames go through an outbox drained by :meth:`run_writer`, so a slow client
    never holds up its room; one that falls ``limits.outbox`` frames behind is closed (it can reconnect
    and fetch what it missed)."""

    def __init__(self, send: Callable[[str], Awaitable[None]], close: Callable[[int], Awaitable[None]], limits: Limits):
        self._send, self._close, self.limits = send, close, limits
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.bucket = TokenBucket(limits.burst, limits.per_second)
        self.name: str | None = None
        self.owner: str | None = None  # hash of the join's key: the same browser may rejoin under its name
        self.room: LiveRoom | None = None
        self.closing: int | None = None
        self.strikes = 0

    def push(self, frame: dict[str, Any]) -> None:
        if self.closing is not None:
            return
        if self.outbox.qsize() >= self.limits.outbox:
            self.close(CLOSE_TOO_SLOW, WireError("too_slow", "this client fell too far behind; reconnect to catch up"))
            return
        self.outbox.put_nowait(json.dumps(frame, ensure_ascii=False))

    def close(self, code: int = 1000, error: WireError | None = None) -> None:
        """Send ``error`` (if any), then close; frames already queued go out first."""
        if self.closing is not None:
            return
        if error is not None:
            self.outbox.put_nowait(json.dumps(error.to_json(), ensure_ascii=False))
        self.closing = code
        self.outbox.put_nowait(None)

    async def run_writer(self) -> None:
        try:
            while (frame := await self.outbox.get()) is not None:
                await self._send(frame)
            await self._close(self.closing or 1000)
        except Exception:  # the client went away; the reader sees the disconnect
            pass


# -- rooms ------------------------------------------------------------------------------------------------

def without_commands(messages: list[StoredMessage]) -> list[StoredMessage]:
    """A room's messages minus ``!chimein`` commands and the answers to them (the model never sees them)."""
    commands = {m.id for m in messages if m.role == "user" and is_command(m.content)}
    return [m for m in messages if m.id not in commands and not (m.role == "assistant" and m.reply_to in commands)]


def seed_order(messages: list[StoredMessage]) -> list[Message]:
    """The conversation as the assistant heard it: each reply right after the message it answers (in the
    room, a message can arrive between the two), starting with a user message."""
    position = {m.id: m.seq for m in messages}
    ordered = sorted(messages, key=lambda m: (position.get(m.reply_to, m.seq) if m.role == "assistant" else m.seq,
                                              m.role == "assistant", m.seq))
    out = [Message("user", m.content, m.name) if m.role == "user" else Message("assistant", m.content) for m in ordered]
    while out and out[0].role != "user":
        out.pop(0)
    return out


class LiveRoom:
    """A room with clients: its assistant, its policy, its queue of messages to decide on, and the worker
    draining it."""

    def __init__(self, hub: "Hub", room: Room, assistant: Assistant, gate: RoomGate):
        self.hub, self.id, self.assistant, self.gate = hub, room.id, assistant, gate
        self.clients: set[Connection] = set()
        self.bots: set[str] = set()  # participants who joined as bots (heard, never a reason to interject)
        self.queue: asyncio.Queue[StoredMessage] = asyncio.Queue()
        self.busy = self.typing = False
        self.last_reason = ""
        self.worker: asyncio.Task | None = None

    def start(self) -> None:
        self.worker = asyncio.get_running_loop().create_task(self._work(), name=f"room-{self.id}")

    @property
    def idle(self) -> bool:
        return not self.clients and not self.busy and self.queue.empty()

    def broadcast(self, frame: dict[str, Any]) -> None:
        for client in list(self.clients):
            client.push(frame)

    async def _work(self) -> None:
        while True:
            message = await self.queue.get()
            self.busy = True
            try:
                # A burst (messages within the settle time) is decided once, on its latest message, with
                # the earlier ones heard as context.
                burst = [message]
                if self.gate.policy.settle_s > 0:  # with no settle time, every message is decided on its own
                    await asyncio.sleep(self.gate.policy.settle_s)
                    while not self.queue.empty():
                        burst.append(self.queue.get_nowait())
                await self._decide(burst)
            except Exception:
                log.exception("room %s: could not record the decision on message %s", self.id, message.id)
            finally:
                self.busy = False
            if self.idle:
                self.hub.sleep(self)
                return

    def heard(self, message: StoredMessage) -> Heard:
        replied = self.hub.store.message(self.id, message.reply_to) if message.reply_to is not None else None
        return Heard(message.name, message.content, at=message.time, from_bot=message.name in self.bots,
                     reply_to_assistant=replied is not None and replied.role == "assistant")

    async def _decide(self, burst: list[StoredMessage]) -> None:
        """Decide once on a burst (its earlier messages heard as context) and record a decision for each."""
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.hub.limits.typing_after_s, self._set_typing, True)
        try:
            decisions = await asyncio.wrap_future(self.hub.executor.submit_as(
                f"room:{self.id}", hear_burst, self.assistant, self.gate, [self.heard(m) for m in burst]))
        except Exception as e:  # a failing model never breaks the room: it stays silent on that message
            log.exception("room %s: the assistant failed on message %s", self.id, burst[-1].id)
            decisions = [Decision(False, reason=BURST_REASON) for _ in burst[:-1]]
            decisions.append(Decision(False, note=f"error: {e}", reason="model error"))
        else:
            if decisions[-1].speak and self.hub.two_stage is not None:
                decisions[-1] = await self._rewrite(decisions[-1])
        finally:
            timer.cancel()
        self._set_typing(False)
        for message, decision in zip(burst, decisions):
            self._record(message, decision)

    async def _rewrite(self, decision: Decision) -> Decision:
        """The replier's reply in place of the local one, written outside the model thread (a slow replier
        holds only this room); the history's last message is the local reply until then."""
        assert self.hub.two_stage is not None
        history = self.assistant.history
        decision = await asyncio.to_thread(self.hub.two_stage.rewrite, decision, history[:-1])
        if decision.speak:
            decision.text = cut_reply(decision.text, self.gate.policy.max_reply_chars)
            history[-1] = Message("assistant", decision.text)
        else:
            history.pop()
        return decision

    def _record(self, message: StoredMessage, decision: Decision) -> None:
        """Store the decision (and reply) once, log it with its reason, show the reply."""
        reply = (self.hub.assistant_name, decision.text) if decision.speak else None
        why = "; ".join(part for part in (decision.reason, decision.note) if part)
        stored = self.hub.store.record_decision(message.id, decision.speak, decision.p_speak, why, reply)
        self.last_reason = f"{'spoke' if decision.speak else 'silent'} on {message.name}'s message: {why or '-'}"
        log.info("decision %s", json.dumps({"room": self.id, "message": message.id, "speak": decision.speak,
                                             "p_speak": decision.to_json()["p_speak"], "reason": why}))
        if stored is not None:
            self.broadcast({"type": "message", "message": {**stored.to_json(), "reason": why}})

    def _set_typing(self, typing: bool) -> None:
        if typing != self.typing:
            self.typing = typing
            self.broadcast({"type": "typing", "name": self.hub.assistant_name, "typing": typing})


class Hub:
    """All live rooms of one server, over one store, one backend and one model thread."""

    def __init__(self, store: Store, backend: Backend, executor: ModelThread, *, replier: Any = None,
                 eagerness: float | None = None, limits: Limits = Limits(), assistant_name: str = "assistant",
                 model_name: str = "chimein", policy: RoomPolicy | None = None):
        self.store, self.backend, self.executor = store, backend, executor
        self.two_stage = TwoStage(backend, replier) if replier is not None else None
        self.eagerness, self.limits, self.assistant_name, self.model_name = eagerness, limits, assistant_name, model_name
        self.supports_eagerness = backend.supports_probability
        self.live: dict[str, LiveRoom] = {}
        self.policy = policy if policy is not None else RoomPolicy()  # a new room's settings

    def default_eagerness(self) -> float | None:
        return self.eagerness if self.eagerness is not None else self.backend.threshold

    # -- the protocol -------------------------------------------------------------------------------------

    def join(self, conn: Connection, frame: dict[str, Any]) -> None:
        """``{"type": "join", "room", "token", "name", "since"}``: check, then send the history after ``since``."""
        if frame.get("type") != "join":
            raise WireError("not_joined", "the first frame must be {\"type\": \"join\", ...}", CLOSE_BAD_JOIN)
        room = self.store.authorize(frame.get("room"), frame.get("token"))
        if room is None:
            raise WireError("unauthorized", "unknown room or wrong token", CLOSE_UNAUTHORIZED)
        name, owner = validate_name(frame.get("name"), self.assistant_name), validate_key(frame.get("key"))
        self._check_name_free(room.id, name, owner)
        since = frame.get("since", 0)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise WireError("bad_request", "since must be a message seq (an integer >= 0)", CLOSE_BAD_JOIN)
        live = self.live.get(room.id) or self._wake(room)
        history = self.store.messages(room.id, after=since, last=self.limits.history)
        if owner is not None:
            self.store.claim_name(room.id, name, owner)
        if frame.get("bot") is True:
            live.bots.add(name)
        conn.name, conn.owner, conn.room = name, owner, live
        live.clients.add(conn)  # no await since the read above: no message can fall between the two
        conn.push({"type": "joined", "room": room.id, "name": name, "history": [m.to_json() for m in history],
                   "truncated": self.store.count_after(room.id, since) > len(history), "typing": live.typing,
                   "assistant": self._assistant_info(live), "limits": self.limits.to_json()})

    def _check_name_free(self, room_id: str, name: str, owner: str | None) -> None:
        """Nobody may take a name that passes for one someone else uses in the room (now or before): the
        first browser to use a name keeps it (by its key); a client without a key gets only unused names."""
        live = self.live.get(room_id)
        present = [(c.name, c.owner) for c in (live.clients if live else ()) if c.name]
        for other, other_owner in [*self.store.names(room_id), *present]:
            if (owner is None or other_owner != owner) and looks_alike(name, other):
                raise WireError("bad_name", f"someone in this room already goes by {other!r}: pick another name", CLOSE_BAD_JOIN)

    def handle(self, conn: Connection, frame: dict[str, Any]) -> None:
        """A frame after the join: ``say``, ``eagerness`` or ``ping``. Raises :class:`WireError`."""
        wait = conn.bucket.take()
        if wait:
            conn.strikes += 1
            close = CLOSE_FLOODING if conn.strikes >= self.limits.max_strikes else None
            raise WireError("rate_limited", "too many messages: slow down", close, retry_after=round(wait, 2),
                            **_echo_client_id(frame))
        conn.strikes = 0
        kind = frame.get("type")
        if kind == "say":
            self.say(conn, frame.get("text"), frame.get("client_id"), frame.get("reply_to"))
        elif kind == "eagerness":
            self.set_eagerness(conn, frame.get("value"))
        elif kind == "ping":
            conn.push({"type": "pong"})
        else:
            raise WireError("unknown_type", f"unknown frame type {kind!r}: use say, eagerness or ping")

    def say(self, conn: Connection, text: Any, client_id: Any = None, reply_to: Any = None) -> None:
        assert conn.room is not None and conn.name is not None
        try:
            text, client_id = validate_text(text, self.limits.max_message_chars), validate_client_id(client_id)
            if reply_to is not None and (isinstance(reply_to, bool) or not isinstance(reply_to, int)):
                raise WireError("bad_request", "reply_to must be the id of a message in this room")
        except WireError as e:
            e.extra.update(_echo_client_id({"client_id": client_id}))
            raise
        live = conn.room
        if reply_to is not None and self.store.message(live.id, reply_to) is None:
            reply_to = None  # a reply to something no longer here is an ordinary message
        message, created = self.store.add_message(live.id, conn.name, "user", text, client_id, reply_to)
        if not created:  # a resend after a reconnect: show it to the sender again, store nothing
            conn.push({"type": "message", "message": message.to_json()})
            return
        live.broadcast({"type": "message", "message": message.to_json()})
        if is_command(text):
            self._command(live, message)
        else:
            live.queue.put_nowait(message)

    def _command(self, live: LiveRoom, message: StoredMessage) -> None:
        """``!chimein ...``: answered here, never passed to the model; a change is stored and shown to all."""
        command = None
        try:
            command = parse_command(message.content)
            assert command is not None
            policy, answer = apply_command(live.gate.policy, command, message.name)
        except PolicyError as e:
            policy, answer = live.gate.policy, f"chimein: {e}"
        if command is not None and command.name == "status" and live.last_reason:
            answer += f"; last decision: {live.last_reason}"
        if policy is not live.gate.policy:
            self._set_policy(live, policy)
        stored = self.store.record_decision(message.id, True, None, "command", (self.assistant_name, answer))
        if stored is not None:
            live.broadcast({"type": "message", "message": {**stored.to_json(), "reason": "command"}})

    def _set_policy(self, live: LiveRoom, policy: RoomPolicy) -> None:
        live.gate.policy = policy
        self.store.set_settings(live.id, policy.to_json(), policy.changed_by or "?")
        log.info("settings %s", json.dumps({"room": live.id, "by": policy.changed_by, "policy": policy.to_json()}))
        live.broadcast({"type": "settings", "by": policy.changed_by, "assistant": self._assistant_info(live)})

    def set_eagerness(self, conn: Connection, value: Any) -> None:
        if not self.supports_eagerness:
            raise WireError("not_supported", f"the model {self.model_name!r} has no speaking probability to threshold")
        assert conn.room is not None
        live, value = conn.room, validate_eagerness(value)
        self.store.set_eagerness(live.id, value)
        self._set_policy(live, replace(live.gate.policy, eagerness=value, changed_by=conn.name, changed_at=time.time()))

    def leave(self, conn: Connection) -> None:
        live, conn.room = conn.room, None
        if live is None:
            return
        live.clients.discard(conn)
        if live.idle:
            self.sleep(live)

    # -- waking and sleeping --------------------------------------------------------------------------------

    def _wake(self, room: Room) -> LiveRoom:
        policy = self.room_policy(room)
        pending = [m for m in self.store.undecided(room.id) if not is_command(m.content)]  # commands: answered when sent
        now = time.time()
        fresh = [m for m in pending if now - m.time <= policy.stale_after_s]
        for m in pending:
            if now - m.time > policy.stale_after_s:
                self.store.record_decision(m.id, False, note="skipped: too old when the room woke up")
        upto = fresh[0].seq - 1 if fresh else None
        recent = self.store.messages(room.id, after=max(0, (upto or 0) - self.limits.seed_messages)) if upto is not None \
            else self.store.messages(room.id, last=self.limits.seed_messages)
        assistant = Assistant(self.backend, threshold=self.eagerness)  # the replier runs outside: LiveRoom._rewrite
        assistant.seed(seed_order(without_commands([m for m in recent if upto is None or m.seq <= upto])))
        live = self.live[room.id] = LiveRoom(self, room, assistant, RoomGate(policy))
        for m in fresh:
            live.queue.put_nowait(m)
        live.start()
        return live

    def room_policy(self, room: Room) -> RoomPolicy:
        """The room's stored settings, else the server's (with the room's eagerness from before settings)."""
        stored = self.store.settings(room.id)
        if stored is not None:
            try:
                return RoomPolicy.from_json(stored[0])
            except (PolicyError, TypeError) as e:
                log.warning("room %s: stored settings unreadable (%s); using the server's", room.id, e)
        return replace(self.policy, eagerness=room.eagerness) if room.eagerness is not None else replace(self.policy)

    def sleep(self, live: LiveRoom) -> None:
        if self.live.get(live.id) is live:
            del self.live[live.id]
        if live.worker is not None and live.worker is not asyncio.current_task():
            live.worker.cancel()

    async def close(self) -> None:
        workers = [live.worker for live in self.live.values() if live.worker is not None]
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self.live.clear()

    def _assistant_info(self, live: LiveRoom) -> dict[str, Any]:
        default, policy = self.default_eagerness(), live.gate.policy
        return {"name": self.assistant_name, "model": self.model_name, "supports_eagerness": self.supports_eagerness,
                "eagerness": policy.eagerness if policy.eagerness is not None else default, "default_eagerness": default,
                "policy": policy.to_json(), "settings": policy.describe()}


def _echo_client_id(frame: dict[str, Any]) -> dict[str, Any]:
    cid = frame.get("client_id")
    return {"client_id": cid} if isinstance(cid, str) and CLIENT_ID.fullmatch(cid) else {}
