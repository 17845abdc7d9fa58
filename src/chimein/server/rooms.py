"""The web transport of `chimein serve`: connected clients, live rooms over the room engine, limits, wire errors.

A :class:`Hub` owns the live rooms. A room wakes up when someone joins it: its engine
:class:`~chimein.rooms.Room` gets an :class:`Assistant` on the ONE shared backend (its per-room state comes
from ``backend.new_state()``), seeded with the room's recent messages, and the user messages it had not
decided on yet (a crash, a restart) are queued again. A room goes back to sleep (its assistant and model
cache are dropped) when its last client has left and it has nothing left to decide.

Everything here runs on the event loop; the engine runs the model calls on the ONE
:class:`~chimein.rooms.ModelThread` shared by every room and the OpenAI endpoint. This module only turns
frames into :class:`~chimein.rooms.Incoming` messages, stores what the engine decides (a reply's
``reply_to`` is the message it answers) and shows it to the room's clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
import re
import time
import unicodedata
from dataclasses import replace
from typing import Any, Awaitable, Callable

from chimein.assistant.core import Assistant, Backend, TwoStage
from chimein.assistant.policy import PolicyError, RoomGate, RoomPolicy, is_command
from chimein.data import Message
from chimein.rooms import (
    BEHIND_S,
    REPLIER_WAIT_S,
    Incoming,
    ModelThread,
    Outcome,
    Room,
    has_bidi_control,
    passes_for_assistant,
)
from chimein.rooms.names import looks_alike
from chimein.server.limits import Limits, TokenBucket
from chimein.server.peers import CLAIM_EVERY_S, SWEEP_EVERY, Alone, PostgresPeers
from chimein.server.store import Room as StoredRoom
from chimein.server.store import Store, StoredMessage

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
    (zero-width joiners in emoji excepted), nothing that passes for the assistant (its name, or a generic one:
    bot, AI, chimein, "the assistant", "assistant (real)")."""
    if not isinstance(raw, str):
        raise WireError("bad_name", "name must be a string", CLOSE_BAD_JOIN)
    name = raw.strip()
    if not 1 <= len(name) <= 32:
        raise WireError("bad_name", "a name is 1 to 32 characters", CLOSE_BAD_JOIN)
    if any(
        (unicodedata.category(c)[0] == "C" and c != "\u200d") or unicodedata.category(c) in ("Zl", "Zp") for c in name
    ):
        raise WireError(
            "bad_name", "a name cannot contain control, formatting or line-break characters", CLOSE_BAD_JOIN
        )
    if passes_for_assistant(name, reserved):
        raise WireError(
            "bad_name", f"{name!r} could pass for the assistant ({reserved!r}): pick a person's name", CLOSE_BAD_JOIN
        )
    return name


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
    if has_bidi_control(text):
        raise WireError(
            "bad_text", "a message cannot contain bidirectional overrides or isolates (U+202A-202E, U+2066-2069)"
        )
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

    def __init__(
        self, send: Callable[[str], Awaitable[None]], close: Callable[[int], Awaitable[None]], limits: Limits
    ):
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
    ordered = sorted(
        messages,
        key=lambda m: (
            position.get(m.reply_to, m.seq) if m.role == "assistant" else m.seq,
            m.role == "assistant",
            m.seq,
        ),
    )
    out = [
        Message("user", m.content, m.name) if m.role == "user" else Message("assistant", m.content) for m in ordered
    ]
    while out and out[0].role != "user":
        out.pop(0)
    return out


class LiveRoom:
    """A room with clients in this process: the connections it shows its messages to, the participants who joined
    as bots and, when this process decides the room (see :mod:`chimein.server.peers`), the engine's :class:`Room`.
    A room decided elsewhere has no engine here: it only shows what the deciding process announces."""

    def __init__(self, hub: "Hub", room: StoredRoom, policy: RoomPolicy):
        self.hub, self.id, self.stored = hub, room.id, room
        self.clients: set[Connection] = set()
        self.bots: set[str] = set()  # participants who joined as bots (heard, never a reason to interject)
        self.engine: Room | None = None
        self.policy = policy  # the room's settings while another process decides it
        self.remote_typing = False
        self.heard: set[int] = set()  # user messages handed to the engine (a message is heard once)
        latest = hub.store.messages(room.id, last=1)
        self.shown = latest[0].seq if latest else 0  # the last seq shown to this process's clients

    @property
    def idle(self) -> bool:
        return not self.clients and (self.engine is None or self.engine.idle)

    @property
    def typing(self) -> bool:
        return self.engine.typing if self.engine is not None else self.remote_typing

    @property
    def current_policy(self) -> RoomPolicy:
        return self.engine.policy if self.engine is not None else self.policy

    def decide(self) -> None:
        """Become the room's decider: an engine seeded with the recent messages; the user messages nobody decided
        on yet (a crash, a restart, a process that died) are heard again, the stale ones recorded as skipped."""
        hub, store, policy = self.hub, self.hub.store, self.policy
        pending = store.undecided(self.id)
        now = time.time()
        fresh = [m for m in pending if now - m.time <= policy.stale_after_s]
        for m in pending:
            if now - m.time > policy.stale_after_s:
                store.record_decision(m.id, False, note="skipped: too old when the room woke up")
        upto = fresh[0].seq - 1 if fresh else None
        recent = (
            store.messages(self.id, after=max(0, upto - hub.limits.seed_messages))
            if upto is not None
            else store.messages(self.id, last=hub.limits.seed_messages)
        )
        self.engine = Room(
            f"room:{self.id}",
            Assistant(hub.backend, threshold=hub.eagerness),  # the replier runs outside: the engine's two_stage
            RoomGate(policy),
            hub.executor,
            on_outcomes=self._record,
            on_policy=self.store_policy,
            on_idle=self._maybe_sleep,
            on_typing=self._show_typing,
            on_draft=self._show_draft,
            typing_after_s=hub.limits.typing_after_s,
            two_stage=hub.two_stage,
            keep_history=hub.limits.seed_messages,
            behind_s=hub.behind_s,
            replier_wait_s=hub.replier_wait_s,
        )
        self.engine.seed(seed_order(without_commands([m for m in recent if upto is None or m.seq <= upto])))
        self.catch_up()
        for m in fresh:
            self.hear(m)

    def broadcast(self, frame: dict[str, Any]) -> None:
        for client in list(self.clients):
            client.push(frame)

    def show(self, message: StoredMessage, reason: str | None = None) -> None:
        """Show a stored message to this process's clients, in seq order: messages stored by other processes
        that were not announced here yet are read from the store and shown first."""
        if message.seq <= self.shown:
            return
        if message.seq > self.shown + 1:
            gap = self.hub.store.messages(self.id, after=self.shown, first=message.seq - self.shown - 1)
            for earlier in gap:
                self.broadcast({"type": "message", "message": earlier.to_json()})
            self.hear_undecided(gap)  # stored by a process that died before announcing them
        frame = message.to_json()
        if reason is not None:
            frame["reason"] = reason
        self.broadcast({"type": "message", "message": frame})
        self.shown = message.seq

    async def stop_deciding(self) -> None:
        """Another process decides the room now (this one lost its claim): what the engine still held is left to
        that process, which hears it from the store."""
        engine, self.engine = self.engine, None
        if engine is not None:
            self.policy = engine.policy
            await engine.close()
        self.heard.clear()

    def catch_up(self) -> None:
        """Show whatever the store holds beyond what this process's clients were shown (messages a process that
        died stored but never announced)."""
        latest = self.hub.store.messages(self.id, last=1)
        if latest:
            self.show(latest[0])

    def hear_undecided(self, among: list[StoredMessage] | None = None) -> int:
        """Hear the room's user messages nobody has decided on (only those ``among`` the given ones), when this
        process decides the room; how many it heard."""
        if self.engine is None or (among is not None and all(m.role != "user" or m.id in self.heard for m in among)):
            return 0
        undecided = self.hub.store.undecided(self.id)
        if among is not None:
            wanted = {m.id for m in among}
            undecided = [m for m in undecided if m.id in wanted]
        fresh = [m for m in undecided if m.id not in self.heard]
        for m in fresh:
            self.hear(m)
        return len(fresh)

    def hear(self, message: StoredMessage) -> None:
        """A user message for the engine (this process decides the room): a command is answered, anything else
        decided."""
        if self.engine is None or message.id in self.heard:
            return
        self.heard.add(message.id)
        if is_command(message.content):
            self.hub.answer_command(self, message)
            return
        replied = self.hub.store.message(self.id, message.reply_to) if message.reply_to is not None else None
        self.engine.hear(
            Incoming(
                message.id,
                message.name,
                message.content,
                at=message.time,
                from_bot=message.name in self.bots,
                reply_to_assistant=replied is not None and replied.role == "assistant",
            )
        )

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Store each decision once (a reply answers the message it was decided on) and show the replies."""
        for outcome in outcomes:
            decision, why = outcome.decision, outcome.why
            reply = (self.hub.assistant_name, decision.text) if decision.speak else None
            stored = self.hub.store.record_decision(outcome.message.id, decision.speak, decision.p_speak, why, reply)
            if stored is not None:
                self.hub.announce(self, stored, why)

    def store_policy(self, policy: RoomPolicy) -> None:
        self.hub.store.set_settings(self.id, policy.to_json(), policy.changed_by or "?")
        self.policy = policy
        self.hub.peers.publish({"kind": "settings", "room": self.id})
        self.show_settings(policy.changed_by)

    def show_settings(self, by: str | None) -> None:
        self.broadcast({"type": "settings", "by": by, "assistant": self.hub.assistant_info(self)})

    def _show_typing(self, typing: bool) -> None:
        self.broadcast({"type": "typing", "name": self.hub.assistant_name, "typing": typing})
        self.hub.peers.publish({"kind": "typing", "room": self.id, "typing": typing})

    def _show_draft(self, message: Incoming, text: str) -> None:
        """The reply so far, while the replier writes it; the stored message that follows replaces it."""
        frame = {"type": "draft", "name": self.hub.assistant_name, "reply_to": message.id, "text": text}
        self.broadcast(frame)
        self.hub.peers.publish({"kind": "draft", "room": self.id, "reply_to": message.id, "text": text})

    def _maybe_sleep(self) -> None:
        if self.idle:
            self.hub.sleep(self)


class Hub:
    """All live rooms of one server, over one store, one backend and one model thread."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        executor: ModelThread,
        *,
        replier: Any = None,
        eagerness: float | None = None,
        limits: Limits = Limits(),
        assistant_name: str = "assistant",
        model_name: str = "chimein",
        policy: RoomPolicy | None = None,
        behind_s: float | None = BEHIND_S,
        replier_wait_s: float | None = REPLIER_WAIT_S,
        peers: Alone | PostgresPeers | None = None,
    ):
        self.store, self.backend, self.executor, self.behind_s = store, backend, executor, behind_s
        self.replier_wait_s = replier_wait_s
        self.peers = peers if peers is not None else Alone()
        self.two_stage = TwoStage(backend, replier) if replier is not None else None
        self.eagerness, self.limits, self.assistant_name, self.model_name = (
            eagerness,
            limits,
            assistant_name,
            model_name,
        )
        self.supports_eagerness = backend.supports_probability
        self.live: dict[str, LiveRoom] = {}
        self._commands: set[asyncio.Task] = set()
        self.policy = policy if policy is not None else RoomPolicy()  # a new room's settings
        self._claimer: asyncio.Task | None = None

    async def start(self) -> None:
        """Hear the other processes on the database (if any), and take over rooms nobody decides."""
        await self.peers.start(self.on_event)
        if self.peers.shared:
            self._claimer = asyncio.get_running_loop().create_task(self._claim_rooms(), name="chimein-claims")

    async def _claim_rooms(self) -> None:
        """Take over the rooms served here that nobody decides (their decider left or died); now and then, catch up
        with what a process that died stored in the rooms decided here without announcing it."""
        for turn in itertools.count(1):
            await asyncio.sleep(CLAIM_EVERY_S)
            try:
                self.peers.check()
            except Exception:  # the database is away: the rooms keep going on what they hold
                log.exception("could not reach the database for the rooms' claims")
                continue
            for live in list(self.live.values()):
                try:
                    if live.engine is None and self.peers.claim(live.id):
                        log.info("room %s: deciding it here now", live.id)
                        live.policy = self.room_policy(live.stored)
                        live.decide()
                    elif live.engine is not None and not self.peers.holds(live.id) and not self.peers.claim(live.id):
                        log.warning(
                            "room %s: lost its claim with the database connection; decided elsewhere now", live.id
                        )
                        await live.stop_deciding()
                    elif live.engine is not None and turn % SWEEP_EVERY == 0:
                        live.catch_up()
                        live.hear_undecided()
                    if live.idle:
                        self.sleep(live)  # a room kept awake for its undecided messages
                except Exception:
                    log.exception("room %s: could not take it over", live.id)

    def default_eagerness(self) -> float | None:
        return self.eagerness if self.eagerness is not None else self.backend.threshold

    # -- the protocol -------------------------------------------------------------------------------------

    def join(self, conn: Connection, frame: dict[str, Any]) -> None:
        """``{"type": "join", "room", "token", "name", "since"}``: check, then send the history after ``since``."""
        if frame.get("type") != "join":
            raise WireError("not_joined", 'the first frame must be {"type": "join", ...}', CLOSE_BAD_JOIN)
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
        conn.push(
            {
                "type": "joined",
                "room": room.id,
                "name": name,
                "history": [m.to_json() for m in history],
                "truncated": self.store.count_after(room.id, since) > len(history),
                "typing": live.typing,
                "assistant": self.assistant_info(live),
                "limits": self.limits.to_json(),
            }
        )

    def _check_name_free(self, room_id: str, name: str, owner: str | None) -> None:
        """Nobody may take a name that passes for one someone else uses in the room (now or before): the
        first browser to use a name keeps it (by its key); a client without a key gets only unused names."""
        live = self.live.get(room_id)
        present = [(c.name, c.owner) for c in (live.clients if live else ()) if c.name]
        for other, other_owner in [*self.store.names(room_id), *present]:
            if (owner is None or other_owner != owner) and looks_alike(name, other):
                raise WireError(
                    "bad_name", f"someone in this room already goes by {other!r}: pick another name", CLOSE_BAD_JOIN
                )

    def handle(self, conn: Connection, frame: dict[str, Any]) -> None:
        """A frame after the join: ``say``, ``eagerness`` or ``ping``. Raises :class:`WireError`."""
        wait = conn.bucket.take()
        if wait:
            conn.strikes += 1
            close = CLOSE_FLOODING if conn.strikes >= self.limits.max_strikes else None
            raise WireError(
                "rate_limited",
                "too many messages: slow down",
                close,
                retry_after=round(wait, 2),
                **_echo_client_id(frame),
            )
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
            live.show(message)
            live.hear_undecided([message])  # first sent to a process that died before announcing it
            return
        self.announce(live, message)
        live.hear(message)  # when this process decides the room; else its decider hears the announcement

    def announce(self, live: LiveRoom, message: StoredMessage, reason: str | None = None) -> None:
        """A message just stored: shown to this process's clients, announced to the other processes."""
        live.show(message, reason)
        self.peers.publish({"kind": "message", "room": live.id, "id": message.id, "reason": reason})

    def answer_command(self, live: LiveRoom, message: StoredMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._command(live, message))
        self._commands.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._commands.discard)

    async def _command(self, live: LiveRoom, message: StoredMessage) -> None:
        """``!chimein ...``: answered by the engine, never passed to the model; a change is stored and shown to all."""
        assert live.engine is not None
        answer = await live.engine.command(message.content, message.name)
        stored = self.store.record_decision(message.id, True, None, "command", (self.assistant_name, answer))
        if stored is not None:
            self.announce(live, stored, "command")

    def on_event(self, event: dict[str, Any]) -> None:
        """What another process on the database did in a room that has clients here."""
        kind = event.get("kind")
        if kind == "resync":  # announcements may have been lost: read what the rooms hold
            for live in list(self.live.values()):
                live.catch_up()
                live.hear_undecided()
            return
        live = self.live.get(event.get("room", ""))
        if live is None:
            return
        if kind == "message":
            message = self.store.message(live.id, event.get("id"))
            if message is not None:
                live.show(message, event.get("reason"))
                if message.role == "user":
                    live.hear(message)
        elif kind == "typing" and live.engine is None:
            live.remote_typing = bool(event.get("typing"))
            live.broadcast({"type": "typing", "name": self.assistant_name, "typing": live.remote_typing})
        elif kind == "draft" and live.engine is None:
            live.broadcast(
                {
                    "type": "draft",
                    "name": self.assistant_name,
                    "reply_to": event.get("reply_to"),
                    "text": event.get("text"),
                }
            )
        elif kind == "settings":
            live.policy = self.room_policy(self.store.room(live.id) or live.stored)
            if live.engine is not None:
                live.engine.gate.policy = live.policy  # stored by the process that changed it
            live.show_settings(live.policy.changed_by)

    def set_eagerness(self, conn: Connection, value: Any) -> None:
        if not self.supports_eagerness:
            raise WireError("not_supported", f"the model {self.model_name!r} has no speaking probability to threshold")
        assert conn.room is not None
        live, value = conn.room, validate_eagerness(value)
        self.store.set_eagerness(live.id, value)
        policy = replace(live.current_policy, eagerness=value, changed_by=conn.name, changed_at=time.time())
        if live.engine is not None:
            live.engine.set_policy(policy)  # stores, shows and announces it
        else:
            live.store_policy(policy)

    def leave(self, conn: Connection) -> None:
        live, conn.room = conn.room, None
        if live is None:
            return
        live.clients.discard(conn)
        if live.idle:
            self.sleep(live)

    # -- waking and sleeping --------------------------------------------------------------------------------

    def _wake(self, room: StoredRoom) -> LiveRoom:
        live = self.live[room.id] = LiveRoom(self, room, self.room_policy(room))
        if self.peers.claim(room.id):
            live.decide()
        return live

    def room_policy(self, room: StoredRoom) -> RoomPolicy:
        """The room's stored settings, else the server's (with the room's eagerness from before settings)."""
        stored = self.store.settings(room.id)
        if stored is not None:
            try:
                return RoomPolicy.from_json(stored[0])
            except (PolicyError, TypeError) as e:
                log.warning("room %s: stored settings unreadable (%s); using the server's", room.id, e)
        return replace(self.policy, eagerness=room.eagerness) if room.eagerness is not None else replace(self.policy)

    def sleep(self, live: LiveRoom) -> None:
        """Drop a room nobody here is in. With other processes on the database, not while it holds user messages
        nobody decided: a process that stored a message and lost its clients at once, or a decider the message's
        announcement had not reached yet, must not leave it undecided. The room then decides them here (or waits
        for its decider to, retried by the claim loop) and sleeps once they are decided."""
        if self.peers.shared and live.clients == set() and self._keeps_awake(live):
            return
        if self.live.get(live.id) is live:
            del self.live[live.id]
        if live.engine is not None:
            worker = live.engine.worker
            if worker is not None and worker is not asyncio.current_task():
                worker.cancel()
            self.peers.release(live.id)

    def _keeps_awake(self, live: LiveRoom) -> bool:
        undecided = [
            m for m in self.store.undecided(live.id) if time.time() - m.time <= live.current_policy.stale_after_s
        ]
        if not undecided:
            return False
        if live.engine is None:
            if self.peers.claim(live.id):
                live.decide()  # hears them
            return True  # else decided elsewhere: the claim loop looks again
        waiting = [m for m in undecided if m.id not in live.heard]
        for m in waiting:
            live.hear(m)
        return bool(waiting)

    async def close(self) -> None:
        if self._claimer is not None:
            self._claimer.cancel()
            await asyncio.gather(self._claimer, return_exceptions=True)
        engines = [live.engine for live in self.live.values() if live.engine is not None]
        await asyncio.gather(*(engine.close() for engine in engines), return_exceptions=True)
        self.live.clear()
        await self.peers.close()

    def assistant_info(self, live: LiveRoom) -> dict[str, Any]:
        default, policy = self.default_eagerness(), live.current_policy
        return {
            "name": self.assistant_name,
            "model": self.model_name,
            "supports_eagerness": self.supports_eagerness,
            "eagerness": policy.eagerness if policy.eagerness is not None else default,
            "default_eagerness": default,
            "policy": policy.to_json(),
            "settings": policy.describe(),
        }


def _echo_client_id(frame: dict[str, Any]) -> dict[str, Any]:
    cid = frame.get("client_id")
    return {"client_id": cid} if isinstance(cid, str) and CLIENT_ID.fullmatch(cid) else {}
