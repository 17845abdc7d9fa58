"""The assistant as a Matrix bot: it reads every text message of its rooms and speaks only when it decides to.

    export MATRIX_PASSWORD=...
    chimein matrix --homeserver https://matrix.example.org --user @chimein:example.org \\
        --password-env MATRIX_PASSWORD --allow-from @ana:example.org --model default

From Python (what the command does):

    from chimein.assistant import Assistant, get_backend
    from chimein.connectors.matrix import MatrixBot, MatrixSettings

    backend = get_backend()  # the shipped default assistant
    settings = MatrixSettings("https://matrix.example.org", "@chimein:example.org", store_dir, password="...")
    bot = MatrixBot(settings, lambda: Assistant(backend))
    await bot.run()            # until bot.stop()

How it behaves:

- A transport over the room engine (:mod:`chimein.rooms`): one :class:`~chimein.rooms.Room` per Matrix room,
  created when the room's first new message arrives, its assistant seeded with the room's recent history
  (``room_messages``; the bot's own messages become assistant turns) and bounded (cut back to
  ``history_limit`` messages at ``max_history``).
- Every ``m.text`` message from another user is heard, with the sender's display name as speaker name; edits
  (``m.replace`` / ``m.new_content``), notices and the bot's own messages are not.
- Model calls run on the engine's :class:`~chimein.rooms.ModelThread` (backends are not thread-safe; rooms
  take turns, addressed messages first), so the sync loop stays responsive. Pass ``model=`` to share one
  with a web server in the same process.
- Invites are accepted from anyone, or only to ``rooms`` / from ``allow_from`` users when either is given;
  other invites are declined. Messages sent before the bot joined a room are history, never answered.
- Restarts: the login (access token, device id) is saved in ``store_dir/session.json``, written only when
  the bot logs in; the sync token (``next_batch``) and the last answered message per room in ``sync.json``
  (no secrets), and each room's settings in ``rooms.json``, written only when they change. A restarted bot
  restores the login and syncs from the saved token with full state (so display names are known), hearing
  only what arrived since; the last answered message per room is saved with each reply, so even a crash
  between a reply and the next save does not answer a message twice.
- Room controls (:mod:`chimein.assistant.policy`): each room has a policy (``settings.policy`` until the
  room changes it with ``!chimein ...``). Commands are answered by the bot as notices and never shown to
  the model; only members at or above ``command_power_level`` may change settings. Messages within
  ``policy.settle_s`` of each other are decided once; a reply answers (``m.in_reply_to``) the message that
  asked, not the chatter after it. Senders in
  ``bot_users`` (or whose display name matches ``bot_name_pattern``) are heard but never a reason to
  interject, and an exchange with them stops after ``policy.bot_turns`` replies. A reply to, or a thread
  under, one of the bot's messages addresses it. Every decision is logged with its reason.
- Not supported: end-to-end encrypted rooms (the bot cannot read them; it logs a warning).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

try:
    import nio
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("the Matrix bot needs matrix-nio: pip install 'chimein[matrix]'") from e

from chimein.assistant.core import Assistant, Decision, TwoStage
from chimein.assistant.policy import PolicyError, RoomGate, RoomPolicy, is_command
from chimein.data import Message
from chimein.mentions import DEFAULT_ASSISTANT_NAMES
from chimein.rooms import REPLIER_WAIT_S, Incoming, ModelThread, Outcome, Room, set_up_replier

log = logging.getLogger("chimein.matrix")

SESSION_FILE = "session.json"  # the login: written when the bot logs in, never on a decision
SYNC_FILE = "sync.json"  # the sync token and the last answered event per room (no secrets)
ROOMS_FILE = "rooms.json"  # each room's settings, written when they change
COMMAND_ANSWER = "org.chimein.command"
# Room versions whose creators are listed in m.room.power_levels like anyone else; later ones rank them above all.
LISTED_CREATOR_VERSIONS = {str(v) for v in range(1, 12)}
CREATOR_LEVEL = 2**53  # marks the bot's answers to commands: never part of the history


class MatrixBotError(RuntimeError):
    """Login or configuration problems the bot cannot recover from (bad password, wrong store dir, ...)."""


@dataclass
class MatrixSettings:
    homeserver: str  # https://matrix.example.org
    user_id: str  # @chimein:example.org
    store_dir: Path  # session.json lives here: access token, device id, sync token
    password: str | None = field(default=None, repr=False)  # needed only when there is no saved session
    rooms: tuple[str, ...] = ()  # room IDs or aliases: joined at start; invites to them are accepted
    allow_from: tuple[str, ...] = ()  # invites from these users (@u:server) or servers (:server) are accepted
    history_limit: int = 40  # messages of room history a new room's assistant starts from
    max_history: int = 1000  # a room's history is cut back to its last history_limit messages at this length
    timeline_limit: int = 100  # events per room and sync; more than this in one sync are seeded, not heard
    poll_timeout_ms: int = 30_000  # long-poll duration of each sync
    device_name: str = "chimein"
    policy: RoomPolicy = field(default_factory=RoomPolicy)  # a room's settings until it changes them
    bot_users: tuple[str, ...] = ()  # other bots' user IDs: heard, never a reason to interject
    bot_name_pattern: str | None = None  # ... or a regular expression on display names, e.g. "(?i)bot$"
    command_power_level: int = 50  # members below this may ask "!chimein status" but not change settings
    reply_wait_s: float = REPLIER_WAIT_S  # with a replier: how long a question's reply may wait for it

    def __post_init__(self) -> None:
        self.store_dir = Path(self.store_dir).expanduser()
        self.rooms, self.allow_from, self.bot_users = tuple(self.rooms), tuple(self.allow_from), tuple(self.bot_users)
        if self.bot_name_pattern is not None:
            try:
                re.compile(self.bot_name_pattern)
            except re.error as e:
                raise ValueError(f"bot_name_pattern is not a regular expression: {e}") from None
        if not re.fullmatch(r"@[^:\s]+:\S+", self.user_id):
            raise ValueError(f"user must be a full Matrix ID like @bot:example.org, got {self.user_id!r}")
        for entry in self.allow_from:
            if not re.fullmatch(r"@?[^:\s]*:\S+", entry):
                raise ValueError(f"allow_from entries are @user:server or :server, got {entry!r}")
        if self.history_limit < 0 or self.timeline_limit < 1 or self.max_history <= self.history_limit:
            raise ValueError("need history_limit >= 0, timeline_limit >= 1 and max_history > history_limit")


@dataclass
class Heard:
    """One message the bot heard and what it decided (passed to ``on_decision``)."""

    room_id: str
    event_id: str
    sender: str
    name: str
    text: str
    decision: Decision


# -- pure helpers (unit-tested without a server) -------------------------------------------------------------


def invite_allowed(
    room_id: str, inviter: str | None, rooms: Iterable[str] = (), allow_from: Iterable[str] = ()
) -> bool:
    """Accept every invite when neither ``rooms`` nor ``allow_from`` is set; else the room or inviter must match."""
    rooms, allow_from = tuple(rooms), tuple(allow_from)
    if not rooms and not allow_from:
        return True
    if room_id in rooms:
        return True
    if inviter is None:
        return False
    return any(inviter == a if a.startswith("@") else inviter.endswith(a) for a in allow_from)


def is_edit(event: Any) -> bool:
    content = event.source.get("content", {})
    relation = content.get("m.relates_to") or {}
    return relation.get("rel_type") == "m.replace" or "m.new_content" in content


def strip_reply_fallback(body: str) -> str:
    """Drop the ``> <@user> quoted text`` lines that clients put before a reply's own text."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    rest = "\n".join(lines[i:]).strip()
    return rest or body


def speaker_name(room: Any, user_id: str) -> str:
    """The sender's display name in the room (nio disambiguates duplicates), else the ID's localpart."""
    name = room.user_name(user_id) if room is not None else None
    return name or user_id[1:].split(":", 1)[0]


def reply_target(event: Any) -> str | None:
    """The event a message replies to, or the root of the thread it is in (``m.relates_to``)."""
    relation = event.source.get("content", {}).get("m.relates_to") or {}
    if relation.get("rel_type") == "m.thread":
        return relation.get("event_id")
    return (relation.get("m.in_reply_to") or {}).get("event_id")


def is_command_answer(event: Any) -> bool:
    return bool(event.source.get("content", {}).get(COMMAND_ANSWER))


# -- the bot ----------------------------------------------------------------------------------------------


class MatrixBot:
    """A Matrix client over the room engine: one :class:`~chimein.rooms.Room` per Matrix room.
    ``make_assistant()`` builds a fresh, unseeded assistant; ``model``: the model thread to share (default:
    one of the bot's own)."""

    def __init__(
        self,
        settings: MatrixSettings,
        make_assistant: Callable[[], Assistant],
        on_decision: Callable[[Heard], None] | None = None,
        model: ModelThread | None = None,
    ):
        self.settings = settings
        self.make_assistant = make_assistant
        self.on_decision = on_decision
        self.rooms: dict[str, Room] = {}
        config = nio.AsyncClientConfig(
            encryption_enabled=False, store_sync_tokens=False, max_timeout_retry_wait_time=30
        )
        self.client = nio.AsyncClient(settings.homeserver, settings.user_id, config=config)
        self.ready = asyncio.Event()  # set once logged in and the first sync is handled
        self._stop = asyncio.Event()
        self._own_model = model is None
        self.model = model if model is not None else ModelThread()
        self._session: dict[str, Any] = {}  # the login
        self._sync: dict[str, Any] = {}  # next_batch, answered
        self._policies: dict[str, Any] = {}  # room id -> its settings (RoomPolicy.to_json)
        self._room_ids: set[str] = set()  # settings.rooms, aliases resolved
        self._accepted: set[str] = set()  # invites accepted (the room shows up as joined with the next sync)
        self._warned_encrypted: set[str] = set()
        self._own_events: set[str] = set()  # event IDs of the bot's messages seen or sent (replies to them address it)
        self._bot_names = re.compile(settings.bot_name_pattern) if settings.bot_name_pattern else None
        self._senders: dict[str, str] = {}  # event id -> sender, for the messages a room still has to decide

    @property
    def assistants(self) -> dict[str, Assistant]:
        return {room_id: room.assistant for room_id, room in self.rooms.items()}

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Log in (or restore the saved login), then sync and answer until :meth:`stop` is called."""
        try:
            await self.start()
            while not self._stop.is_set():
                response = await self._next_sync()
                if response is not None:
                    await self._handle_sync(response, initial=False)
            # Messages waiting out their settle time were heard after the saved sync token: decide on them.
            await asyncio.gather(
                *(room.worker for room in self.rooms.values() if room.worker is not None), return_exceptions=True
            )
        finally:
            await self.close()

    def stop(self) -> None:
        """Ask :meth:`run` to finish: a pending long poll is cancelled, a message being handled is finished."""
        self._stop.set()

    async def start(self) -> None:
        self.settings.store_dir.mkdir(parents=True, exist_ok=True)
        self._session = load_session(self.settings.store_dir, self.settings.user_id) or {}
        self._sync = _read_json(self.settings.store_dir / SYNC_FILE) or {
            k: self._session[k] for k in ("next_batch", "answered") if k in self._session
        }  # an older session.json held them
        self._policies = _read_json(self.settings.store_dir / ROOMS_FILE) or {}
        if not self._policies and self._session.get("policies"):  # an older session.json held them
            self._policies = self._session["policies"]
            _write_json(self.settings.store_dir / ROOMS_FILE, self._policies)
        since = None
        if self._session.get("access_token"):
            self.client.restore_login(self.settings.user_id, self._session["device_id"], self._session["access_token"])
            since = self._sync.get("next_batch")
            log.info("restored the login of %s (device %s)", self.settings.user_id, self.client.device_id)
        else:
            await self._login()
        await self._resolve_rooms()
        # With a saved token: only what arrived since, but full state, or display names are unknown after a restart.
        response = await self._sync_or_relogin(since=since, full_state=True, timeout=0)
        if not isinstance(response, nio.SyncResponse):
            raise MatrixBotError(f"the first sync failed: {response}")
        await self._handle_sync(response, initial=since is None)
        await self._join_configured_rooms()
        self.ready.set()

    async def close(self) -> None:
        await asyncio.gather(*(room.close() for room in self.rooms.values()), return_exceptions=True)
        await self.client.close()
        if self._own_model:
            self.model.shutdown(wait=False, cancel_futures=True)

    async def _login(self) -> None:
        if not self.settings.password:
            raise MatrixBotError(f"no saved session in {self.settings.store_dir} and no password to log in with")
        response = await self.client.login(self.settings.password, device_name=self.settings.device_name)
        if not isinstance(response, nio.LoginResponse):
            raise MatrixBotError(f"login as {self.settings.user_id} failed: {response}")
        self._session = {
            "user_id": self.settings.user_id,
            "homeserver": self.settings.homeserver,
            "device_id": response.device_id,
            "access_token": response.access_token,
        }
        save_session(self.settings.store_dir, self._session)
        log.info("logged in as %s (device %s)", self.settings.user_id, response.device_id)

    async def _resolve_rooms(self) -> None:
        """Room IDs of ``settings.rooms`` (aliases resolved), before the first sync handles invites to them."""
        for room in self.settings.rooms:
            if not room.startswith("#"):
                self._room_ids.add(room)
                continue
            resolved = await self.client.room_resolve_alias(room)
            if isinstance(resolved, nio.RoomResolveAliasResponse):
                self._room_ids.add(resolved.room_id)
            else:
                log.warning("cannot resolve %s: %s", room, resolved)

    async def _join_configured_rooms(self) -> None:
        for room_id in sorted(self._room_ids - set(self.client.rooms) - self._accepted):
            response = await self.client.join(room_id)
            if isinstance(response, nio.JoinResponse):
                log.info("joined %s", room_id)
            else:
                log.warning("cannot join %s: %s", room_id, response)

    # -- syncing --------------------------------------------------------------------------------------------

    def _filter(self) -> dict:
        return {"room": {"timeline": {"limit": self.settings.timeline_limit}}, "presence": {"not_types": ["*"]}}

    async def _sync_or_relogin(self, **kwargs: Any) -> nio.SyncResponse | nio.SyncError:
        response = await self.client.sync(sync_filter=self._filter(), **kwargs)
        if isinstance(response, nio.SyncError) and response.status_code == "M_UNKNOWN_TOKEN":
            log.warning("the access token was rejected; logging in again")
            await self._login()
            response = await self.client.sync(sync_filter=self._filter(), **kwargs)
        return response

    async def _next_sync(self) -> nio.SyncResponse | None:
        """One long poll; None when stopped (the poll is cancelled) or when it failed (after a pause)."""
        sync = asyncio.ensure_future(self._sync_or_relogin(timeout=self.settings.poll_timeout_ms))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sync, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not sync.done():
                sync.cancel()
                await asyncio.gather(sync, return_exceptions=True)
        if sync.cancelled():
            return None
        error = sync.exception()
        if isinstance(error, MatrixBotError):
            raise error  # the token was rejected and logging in again failed
        if error is None and isinstance(sync.result(), nio.SyncResponse):
            return sync.result()
        # e.g. a 502 while the server restarts (nio itself retries refused connections and timeouts)
        log.warning("sync failed (%s); retrying in 5 s", error or sync.result())
        try:
            await asyncio.wait_for(self._stop.wait(), 5)
        except asyncio.TimeoutError:
            pass
        return None

    async def _handle_sync(self, response: nio.SyncResponse, initial: bool) -> None:
        for room_id in response.rooms.invite:
            await self._on_invite(room_id)
        for room_id in response.rooms.leave:
            if (left := self.rooms.pop(room_id, None)) is not None:
                await left.close()
                log.info("left %s", room_id)
        for room_id, info in response.rooms.join.items():
            await self._on_timeline(room_id, info.timeline, initial)
        self._sync["next_batch"] = response.next_batch
        self._save_sync()

    async def _on_invite(self, room_id: str) -> None:
        room = self.client.invited_rooms.get(room_id)
        inviter = getattr(room, "inviter", None)
        if invite_allowed(room_id, inviter, self._room_ids | set(self.settings.rooms), self.settings.allow_from):
            response = await self.client.join(room_id)
            if isinstance(response, nio.JoinResponse):
                self._accepted.add(room_id)
                log.info("accepted the invite to %s from %s", room_id, inviter)
            else:
                log.warning("cannot accept the invite to %s from %s: %s", room_id, inviter, response)
        else:
            await self.client.room_leave(room_id)
            log.info("declined the invite to %s from %s (not allowed)", room_id, inviter)

    # -- hearing --------------------------------------------------------------------------------------------

    def _joined_at(self, events: list) -> int:
        """Index after the bot's own join in this timeline (0 if absent): earlier events are history."""
        cut = 0
        for i, ev in enumerate(events):
            if (
                isinstance(ev, nio.RoomMemberEvent)
                and ev.state_key == self.settings.user_id
                and ev.membership == "join"
                and ev.prev_membership != "join"
            ):
                cut = i + 1
        return cut

    def _is_heard(self, event: Any) -> bool:
        return isinstance(event, nio.RoomMessageText) and event.sender != self.settings.user_id and not is_edit(event)

    def _to_message(self, room: Any, event: Any) -> Message | None:
        """A history message: the bot's own text or notice, or another user's text; None for anything else."""
        if isinstance(event, (nio.RoomMessageText, nio.RoomMessageNotice)) and event.sender == self.settings.user_id:
            return None if is_edit(event) or is_command_answer(event) else Message("assistant", event.body)
        if self._is_heard(event) and not is_command(event.body):
            return Message("user", strip_reply_fallback(event.body), speaker_name(room, event.sender))
        return None

    async def _on_timeline(self, room_id: str, timeline: Any, initial: bool) -> None:
        events = list(timeline.events)
        if any(isinstance(ev, nio.MegolmEvent) for ev in events) and room_id not in self._warned_encrypted:
            self._warned_encrypted.add(room_id)
            log.warning("%s is end-to-end encrypted: the bot cannot read it", room_id)
        joined = 0 if initial else self._joined_at(events)
        if joined and (rejoined := self.rooms.pop(room_id, None)) is not None:
            await rejoined.close()  # (re)joined: start over from the room's history
        cut = len(events) if initial else max(joined, self._after_last_answered(room_id, events))
        new = [ev for ev in events[cut:] if self._is_heard(ev)]
        if not new:
            return
        if timeline.limited and room_id in self.rooms:
            log.warning("%s: more than %d events in one sync; the earlier ones were not heard", room_id, len(events))
        room = self.client.rooms.get(room_id)
        self._own_events.update(ev.event_id for ev in events if getattr(ev, "sender", None) == self.settings.user_id)
        engine = self.rooms.get(room_id)
        if engine is None:
            earlier = [m for ev in events[:cut] if (m := self._to_message(room, ev))]
            engine = await self._new_room(room_id, timeline.prev_batch, earlier)
        for event in new:
            if is_command(event.body):
                await self._command(room_id, room, engine, event)
            else:
                engine.hear(
                    Incoming(
                        event.event_id,
                        speaker_name(room, event.sender),
                        strip_reply_fallback(event.body),
                        at=event.server_timestamp / 1000,
                        from_bot=self._is_bot(room, event.sender),
                        reply_to_assistant=await self._replies_to_me(room_id, event),
                    )
                )
                self._senders[event.event_id] = event.sender

    def _policy(self, room_id: str) -> RoomPolicy:
        """The room's stored settings, else the configured ones."""
        stored = self._policies.get(room_id)
        try:
            return RoomPolicy.from_json(stored) if stored else dataclasses.replace(self.settings.policy)
        except (PolicyError, TypeError) as e:
            log.warning("%s: stored settings unreadable (%s); using the configured ones", room_id, e)
            return dataclasses.replace(self.settings.policy)

    async def _power_level(self, room_id: str, user_id: str) -> int:
        """The sender's power level, read from the server when asked (it may have changed since the last sync).
        From room version 12 on, the room's creators outrank everyone and are not listed in the power levels."""
        response = await self.client.room_get_state(room_id)
        if not isinstance(response, nio.RoomGetStateResponse):
            log.warning("%s: cannot read the room state (%s): treating %s as level 0", room_id, response, user_id)
            return 0
        levels: dict[str, Any] = {}
        for event in response.events:
            content = event.get("content", {})
            if (
                event.get("type") == "m.room.create"
                and str(content.get("room_version", "1")) not in LISTED_CREATOR_VERSIONS
            ):
                if user_id == event.get("sender") or user_id in content.get("additional_creators", []):
                    return CREATOR_LEVEL
            elif event.get("type") == "m.room.power_levels" and event.get("state_key") == "":
                levels = content
        level = levels.get("users", {}).get(user_id, levels.get("users_default", 0))
        return level if isinstance(level, int) else 0

    def _is_bot(self, room: Any, user_id: str) -> bool:
        return user_id in self.settings.bot_users or bool(
            self._bot_names and self._bot_names.search(speaker_name(room, user_id))
        )

    async def _replies_to_me(self, room_id: str, event: Any) -> bool:
        target = reply_target(event)
        if target is None:
            return False
        if target not in self._own_events:  # an older message of the bot's (before a restart): ask the server
            response = await self.client.room_get_event(room_id, target)
            if not isinstance(response, nio.RoomGetEventResponse) or response.event.sender != self.settings.user_id:
                return False
            self._own_events.add(target)
        return True

    async def _command(self, room_id: str, room: Any, engine: Room, event: Any) -> None:
        """``!chimein ...``: answered as a notice, never shown to the model; settings change only for members
        at or above ``command_power_level``, and are kept per room across restarts."""
        name = speaker_name(room, event.sender)

        async def refusal() -> str | None:
            level = await self._power_level(room_id, event.sender)
            if level >= self.settings.command_power_level:
                return None
            return (
                f"chimein: only members with power level {self.settings.command_power_level} or more can "
                f"change my settings ({name} has {level})"
            )

        answer = await engine.command(event.body, name, may_change=refusal)
        response = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.notice", "body": answer, COMMAND_ANSWER: True}
        )
        if not isinstance(response, nio.RoomSendResponse):
            log.warning("%s: answering a command failed: %s", room_id, response)

    def _store_policy(self, room_id: str, policy: RoomPolicy) -> None:
        self._policies[room_id] = policy.to_json()
        _write_json(self.settings.store_dir / ROOMS_FILE, self._policies)
        log.info("%s: settings changed by %s: %s", room_id, policy.changed_by, policy.describe())

    def _after_last_answered(self, room_id: str, events: list) -> int:
        """Index after the last event answered before a crash (whose sync token was not saved), else 0."""
        last = self._sync.get("answered", {}).get(room_id)
        ids = [getattr(ev, "event_id", None) for ev in events]
        return ids.index(last) + 1 if last in ids else 0

    async def _new_room(self, room_id: str, prev_batch: str | None, earlier: list[Message]) -> Room:
        history = await self._room_history(room_id, prev_batch) if prev_batch else []
        # backends may build state when an assistant is made: the model thread does it, and the seeding
        assistant = await asyncio.wrap_future(self.model.submit_as(f"matrix:{room_id}", self.make_assistant))
        localpart = self.settings.user_id[1:].split(":", 1)[0]
        gate = RoomGate(
            self._policy(room_id), names=tuple(dict.fromkeys((*DEFAULT_ASSISTANT_NAMES, localpart.lower())))
        )

        async def deliver(outcomes: list[Outcome]) -> None:
            await self._deliver(room_id, outcomes)

        two_stage = assistant.backend if isinstance(assistant.backend, TwoStage) else None
        if two_stage is not None:  # the replier writes outside the model thread (a slow one holds only its room)
            set_up_replier(two_stage.decider, two_stage.replier, self.model)
            assistant = Assistant(two_stage.decider, threshold=assistant.threshold, state=assistant.state)
        engine = Room(
            f"matrix:{room_id}",
            assistant,
            gate,
            self.model,
            on_outcomes=deliver,
            two_stage=two_stage,
            on_policy=lambda policy: self._store_policy(room_id, policy),
            max_history=self.settings.max_history,
            keep_history=self.settings.history_limit,
            replier_wait_s=self.settings.reply_wait_s,
        )
        await asyncio.wrap_future(self.model.submit_as(engine.key, engine.seed, history + earlier))
        self.rooms[room_id] = engine
        log.info("%s: assistant seeded with %d message(s) of history", room_id, len(assistant.history))
        return engine

    async def _room_history(self, room_id: str, before: str) -> list[Message]:
        if not self.settings.history_limit:
            return []
        response = await self.client.room_messages(
            room_id, start=before, limit=self.settings.history_limit, message_filter={"types": ["m.room.message"]}
        )
        if not isinstance(response, nio.RoomMessagesResponse):
            log.warning("%s: no history (%s)", room_id, response)
            return []
        room = self.client.rooms.get(room_id)
        return [m for ev in reversed(response.chunk) if (m := self._to_message(room, ev))]

    async def _deliver(self, room_id: str, outcomes: list[Outcome]) -> None:
        """Send each reply as a reply to the message it answers, then report every decision."""
        for outcome in outcomes:
            decision, event_id = outcome.decision, outcome.message.id
            if decision.speak:
                content = {
                    "msgtype": "m.text",
                    "body": decision.text,
                    "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
                }
                response = await self.client.room_send(room_id, "m.room.message", content)
                if isinstance(response, nio.RoomSendResponse):
                    self._own_events.add(response.event_id)
                else:
                    log.warning("%s: sending the reply failed: %s", room_id, response)
        if any(o.decision.speak for o in outcomes):
            # Once answered, the whole burst is decided: after a crash, none of it is heard again.
            self._sync.setdefault("answered", {})[room_id] = outcomes[-1].message.id
            self._save_sync()
        for outcome in outcomes:
            self._report(room_id, outcome)

    def _report(self, room_id: str, outcome: Outcome) -> None:
        """Log the decision with its reason and tell ``on_decision``."""
        message, decision = outcome.message, outcome.decision
        p = "" if decision.p_speak is None else f" p={decision.p_speak:.2f}"
        log.info(
            "%s: %s -> %s%s (%.2f s): %s",
            room_id,
            message.name,
            "speak" if decision.speak else "silent",
            p,
            decision.latency_s,
            outcome.why or "-",
        )
        log.debug("%s: %s: %r -> %r", room_id, message.name, message.text, decision.text)
        sender = self._senders.pop(message.id, "")
        if self.on_decision is not None:
            self.on_decision(Heard(room_id, message.id, sender, message.name, message.text, decision))

    def _save_sync(self) -> None:
        _write_json(self.settings.store_dir / SYNC_FILE, self._sync)


# -- the session file -------------------------------------------------------------------------------------


def load_session(store_dir: Path, user_id: str) -> dict[str, Any] | None:
    """The saved session for ``user_id``, or None; raises if the store dir belongs to another user."""
    path = Path(store_dir).expanduser() / SESSION_FILE
    if not path.exists():
        return None
    session = json.loads(path.read_text())
    if session.get("user_id") != user_id:
        raise MatrixBotError(f"{path} belongs to {session.get('user_id')}, not {user_id}: use another store dir")
    return session


def save_session(store_dir: Path, session: dict[str, Any]) -> None:
    """Write the login (it holds an access token: readable only by the owner)."""
    _write_json(Path(store_dir) / SESSION_FILE, session)


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, readable only by the owner."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def run_bot(settings: MatrixSettings, make_assistant: Callable[[], Assistant]) -> None:
    """Run until SIGINT or SIGTERM, then save the session and exit cleanly (what ``chimein matrix`` calls)."""

    async def main() -> None:
        bot = MatrixBot(settings, make_assistant)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, bot.stop)
        await bot.run()

    asyncio.run(main())
