"""One room, whatever carries its messages: a web room, a Matrix room, any connector.

    model = ModelThread()                              # one per process, shared by every room
    room = Room("room:abc", Assistant(backend), RoomGate(policy), model, on_outcomes=show)
    room.seed(history)                                 # the conversation so far (no decision on it)
    room.hear(Incoming(id=17, name="Ana", text="bot, what is the capital of Peru?"))
    answer = await room.command("!chimein quiet 30m", "Ana", may_change=True)

A transport turns its events into :class:`Incoming` and shows the :class:`Outcome` list the room hands to
``on_outcomes``: one per message, the reply (if any) on the message it answers. The room:

- waits out the settle time after a message and decides the burst once (:func:`~chimein.assistant.policy.hear_burst`);
  a message that addresses the assistant ends the wait: it is decided at once,
- runs that decision on the shared :class:`~chimein.rooms.model_thread.ModelThread` (a burst that addresses
  the assistant goes before other rooms' chit-chat; a chit-chat decision that waited longer than ``behind_s``
  for the model is skipped: its messages are heard, with the reason logged; a chit-chat decision still waiting
  when a question arrives in its room is folded into the question's burst, never decided before it),
- lets a two-stage replier rewrite a reply outside the model thread, in the replier's line, while the room goes
  on deciding its next messages (the burst is shown once its reply is written)
  (:mod:`~chimein.rooms.replier_line`: replies to questions first; a volunteered reply that waited longer than
  ``behind_s``, or that a question in its room came after, is skipped with the reason logged; a question's
  reply waits its turn, at most ``replier_wait_s``: past it, or at once when the line is already longer, the room
  says it is too busy to answer that one (never the deciding model's guess), so the replier's line stays bounded),
- answers ``!chimein`` commands (the transport says who may change settings: Matrix power levels),
- keeps ``last_reason`` ("spoke/silent on X's message: why") for ``!chimein status``, logs every decision
  as one JSON object, and bounds its history (cut back to ``keep_history`` messages at ``max_history``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable

from chimein.assistant.core import Assistant, Decision, TwoStage, cut_reply
from chimein.assistant.policy import (
    BURST_REASON,
    Heard,
    PolicyError,
    RoomGate,
    RoomPolicy,
    apply_command,
    hear_burst,
    hear_only,
    parse_command,
)
from chimein.data import Message
from chimein.mentions import addresses_assistant
from chimein.rooms.model_thread import ModelBusy, ModelThread
from chimein.rooms.replier_line import replier_line

log = logging.getLogger("chimein.rooms")

# Chit-chat that waited longer than this for the model, or a volunteered reply for the replier, is skipped.
BEHIND_S = 5.0
# A question's reply waits at most this for its turn at the replier, then the room says so (BUSY_REPLY), at once
# when the line ahead is already longer: with the seconds of writing, the answer or the "busy" comes within about
# 10 s, while the chat is still on it (an answer much later comes after it moved on; the deciding model's own
# answer is often wrong).
REPLIER_WAIT_S = 5.0
BUSY_REPLY = "Sorry, too many questions at once: I can't answer that one now. Ask me again in a minute?"


@dataclass
class Incoming:
    """One message a transport hands to its room."""

    id: Any  # the transport's id for it (a web message id, a Matrix event id): the reply addresses it
    name: str
    text: str
    at: float = field(default_factory=time.time)  # when it was sent (epoch seconds)
    from_bot: bool = False  # another bot: heard, never a reason to interject
    reply_to_assistant: bool = False  # a reply to (or in a thread under) one of the assistant's messages

    def heard(self) -> Heard:
        return Heard(
            self.name, self.text, at=self.at, from_bot=self.from_bot, reply_to_assistant=self.reply_to_assistant
        )


@dataclass
class Outcome:
    """The room's decision on one message; a spoken reply answers (addresses) ``message``."""

    message: Incoming
    decision: Decision
    # Seconds the burst waited for the model, spent on it, and spent waiting for and writing the replier's reply.
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def why(self) -> str:
        return "; ".join(part for part in (self.decision.reason, self.decision.note) if part)

    @property
    def report(self) -> str:
        return f"{'spoke' if self.decision.speak else 'silent'} on {self.message.name}'s message: {self.why or '-'}"


def normalize_history(messages: list[Message]) -> list[Message]:
    """A seed the assistant can use: it starts with a user message and has no two assistant turns in a row."""
    out: list[Message] = []
    for m in messages:
        if m.role == "assistant" and not out:
            continue
        if m.role == "assistant" and out[-1].role == "assistant":
            out[-1] = Message("assistant", f"{out[-1].content}\n{m.content}")
        else:
            out.append(m)
    return out


class Room:
    """A room's assistant, policy and queue of messages to decide on, with the worker task draining it."""

    def __init__(
        self,
        key: str,
        assistant: Assistant,
        gate: RoomGate,
        model: ModelThread,
        *,
        on_outcomes: Callable[[list[Outcome]], Awaitable[None]],
        on_policy: Callable[[RoomPolicy], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        on_typing: Callable[[bool], None] | None = None,
        typing_after_s: float = 0.4,
        on_draft: Callable[[Incoming, str], None] | None = None,
        two_stage: TwoStage | None = None,
        max_history: int = 1000,
        keep_history: int = 50,
        behind_s: float | None = BEHIND_S,
        replier_wait_s: float | None = REPLIER_WAIT_S,
    ):
        if not 0 <= keep_history < max_history:
            raise ValueError("need 0 <= keep_history < max_history")
        self.key, self.assistant, self.gate, self.model = key, assistant, gate, model
        self.on_outcomes, self.on_policy, self.on_idle, self.on_typing = on_outcomes, on_policy, on_idle, on_typing
        self.on_draft = on_draft
        self.typing_after_s, self.two_stage, self.behind_s = typing_after_s, two_stage, behind_s
        self.max_history, self.keep_history = max_history, keep_history
        # How long a reply to a question may wait for the replier (None: its turn, however long).
        self.replier_wait_s = replier_wait_s
        self.queue: asyncio.Queue[Incoming] = asyncio.Queue()
        # Set while a message that addresses the assistant waits in the queue: it ends the settle time, and
        # the room's chit-chat decision or volunteered reply still waiting gives way to it.
        self.question_waits = asyncio.Event()
        self._questions_queued = self._questions_heard = 0
        self._arrived = asyncio.Event()  # a message was queued (wakes a worker waiting for its replies)
        self.busy = self.typing = False
        self.last_reason = ""
        self.worker: asyncio.Task | None = None

    @property
    def policy(self) -> RoomPolicy:
        return self.gate.policy

    @property
    def idle(self) -> bool:
        return not self.busy and self.queue.empty() and self.worker is None

    def seed(self, messages: list[Message]) -> None:
        """Start from the conversation so far (the latest ``keep_history`` messages), deciding nothing."""
        self.assistant.seed(normalize_history(messages[-self.keep_history :] if self.keep_history else []))

    def hear(self, message: Incoming) -> None:
        """Queue a message; it is decided after the settle time, with the others that arrive meanwhile.
        One that addresses the assistant is decided without waiting out the settle time, and moves the room's
        waiting call (if any) to the model's urgent line, where that call gives way to it: the room decides in
        order, so its question would otherwise wait behind its own chit-chat."""
        self.queue.put_nowait(message)
        self._arrived.set()
        if self.addresses_assistant(message):
            self._questions_queued += 1
            self._questions_heard += 1
            self.question_waits.set()
            if self.busy:
                self.model.promote(self.key)
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work(), name=f"chimein-{self.key}")

    def addresses_assistant(self, message: Incoming | Heard) -> bool:
        """Cheap to tell on the loop: a message to the assistant goes before chit-chat."""
        return message.reply_to_assistant or addresses_assistant(message.text, self.gate.names)

    def _take(self) -> Incoming:
        message = self.queue.get_nowait()
        if self.addresses_assistant(message):
            self._questions_queued -= 1
            if not self._questions_queued:
                self.question_waits.clear()
        return message

    async def close(self) -> None:
        worker = self.worker
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    # -- deciding ---------------------------------------------------------------------------------------------

    async def _work(self) -> None:
        set_aside: list[Incoming] = []  # a chit-chat burst that gave way to a question: decided with it
        # Bursts whose replies wait for (or are being written by) the replier: the room decides its next messages
        # meanwhile, and each burst is shown when its reply is done.
        replying: set[asyncio.Task] = set()
        try:
            while set_aside or not self.queue.empty() or replying:
                if not set_aside and self.queue.empty():
                    self._arrived.clear()
                    arrived = asyncio.ensure_future(self._arrived.wait())
                    try:
                        await asyncio.wait({arrived, *replying}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        arrived.cancel()
                    continue
                burst, gather = set_aside or [self._take()], bool(set_aside)
                set_aside = []
                self.busy = True
                try:
                    if self.policy.settle_s > 0:  # with no settle time, every message is decided on its own
                        gather = True
                        if not self.question_waits.is_set() and not self.addresses_assistant(burst[0]):
                            with contextlib.suppress(asyncio.TimeoutError):
                                await asyncio.wait_for(self.question_waits.wait(), self.policy.settle_s)
                    while gather and not self.queue.empty():
                        burst.append(self._take())
                    outcomes = await self._decide(burst)
                    if outcomes is None:
                        set_aside = burst
                        continue
                    replies = self._replies_to_write(outcomes)
                    if replies:
                        task = asyncio.get_running_loop().create_task(
                            self._finish(outcomes, replies, self._questions_heard)
                        )
                        replying.add(task)
                        task.add_done_callback(replying.discard)
                    else:
                        await self._show(outcomes)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s: could not record the decision on message %s", self.key, burst[-1].id)
                finally:
                    self.busy = False
        finally:
            for task in replying:  # the room is closing: its replies are not written
                task.cancel()
            if self.worker is asyncio.current_task():
                self.worker = None
        if self.on_idle is not None:
            self.on_idle()

    async def _show(self, outcomes: list[Outcome]) -> None:
        self._report(outcomes)
        await self.on_outcomes(outcomes)

    def _replies_to_write(self, outcomes: list[Outcome]) -> list[tuple[int, Message]]:
        """The burst's spoken replies the replier is to write: each outcome's index and the local reply it
        replaces in the history (found again by identity: the room's later messages come after it)."""
        spoken = [i for i, o in enumerate(outcomes) if o.decision.speak]
        if self.two_stage is None or not spoken:
            return []
        local = [m for m in self.assistant.history if m.role == "assistant"][-len(spoken) :]
        return list(zip(spoken, local))

    async def _finish(self, outcomes: list[Outcome], replies: list[tuple[int, Message]], questions: int) -> None:
        """The replier's replies in place of the local ones, then the burst shown. ``questions``: how many
        messages to the assistant the room had heard when the burst was decided."""
        start = time.monotonic()
        try:
            await self._rewrite(outcomes, replies, questions)
        except Exception as e:  # a failing replier never breaks the room: it stays silent on those messages
            log.exception("%s: the replier failed on message %s", self.key, outcomes[-1].message.id)
            for i, local in replies:
                self._drop_from_history(local)
                outcomes[i].decision = replace(outcomes[i].decision, speak=False, text="", note=f"error: {e}")
        outcomes[0].timing["replier_s"] = time.monotonic() - start  # one timing dict per burst
        try:
            await self._show(outcomes)
        except Exception:
            log.exception("%s: could not record the decision on message %s", self.key, outcomes[-1].message.id)

    async def _decide(self, burst: list[Incoming]) -> list[Outcome] | None:
        """The burst's outcomes (spoken replies as the deciding model wrote them), or None when it gave way to a
        question that arrived while it waited."""
        heard = [m.heard() for m in burst]
        urgent = any(self.addresses_assistant(m) for m in burst)  # before other rooms' chit-chat
        timer = (
            asyncio.get_running_loop().call_later(self.typing_after_s, self._set_typing, True)
            if self.on_typing is not None
            else None
        )
        timing: dict[str, float] = {}
        try:
            future = self.model.submit_as(
                self.key, self._decide_now, heard, time.monotonic(), urgent, timing, urgent=urgent
            )
            decisions = await asyncio.wrap_future(future)
            if decisions is None:
                return None
        except ModelBusy as e:  # the room has no call running: hearing here cannot race the model thread
            log.warning("%s: %s; heard without a decision", self.key, e)
            decisions = hear_only(self.assistant, self.gate, heard, f"skipped: {e}")
        except Exception as e:  # a failing model never breaks the room: it stays silent on that burst
            log.exception("%s: the assistant failed on message %s", self.key, burst[-1].id)
            decisions = [Decision(False, reason=BURST_REASON) for _ in burst[:-1]]
            decisions.append(Decision(False, note=f"error: {e}", reason="model error"))
        finally:
            if timer is not None:
                timer.cancel()
            self._set_typing(False)
        return [Outcome(m, d, timing) for m, d in zip(burst, decisions)]

    def _decide_now(
        self, heard: list[Heard], queued_at: float, urgent: bool, timing: dict[str, float]
    ) -> list[Decision] | None:
        """On the model thread: bound the history, then decide the burst, or only hear it when it waited too long;
        None (nothing heard) when a question arrived in the room meanwhile: the burst is decided with it.
        ``timing`` gets the seconds waited for the model and spent on it."""
        if not urgent and self.question_waits.is_set():  # a flag read across threads: no wait on the loop's event
            return None
        start = time.monotonic()
        timing["waited_s"] = waited = start - queued_at
        try:
            if len(self.assistant.history) >= self.max_history:
                self.seed(self.assistant.history)
            if not urgent and self.behind_s is not None and waited > self.behind_s:
                return hear_only(
                    self.assistant, self.gate, heard, f"skipped: waited {waited:.1f} s for the model (behind)"
                )
            return hear_burst(self.assistant, self.gate, heard)
        finally:
            timing["model_s"] = time.monotonic() - start

    async def _rewrite(self, outcomes: list[Outcome], replies: list[tuple[int, Message]], questions: int) -> None:
        """The replier's replies in place of the local ones, written outside the model thread (a slow replier
        holds only this burst: the room goes on deciding). The burst's replies join the replier's line together,
        each waiting from the same moment (a burst with two questions does not wait twice)."""
        await asyncio.gather(*(self._rewrite_one(outcomes[i], local, questions) for i, local in reversed(replies)))

    async def _rewrite_one(self, outcome: Outcome, local: Message, questions: int) -> None:
        """One reply from the replier, once it is this reply's turn in the line. While the replier writes,
        ``on_draft`` is handed the reply so far (on the event loop)."""
        assert self.two_stage is not None
        loop = asyncio.get_running_loop()
        line = replier_line(self.two_stage)
        message, decision = outcome.message, outcome.decision
        asked = self.addresses_assistant(message)
        start = time.monotonic()
        waits = self.replier_wait_s if asked else self.behind_s
        if not await line.acquire(asked, waits, None if asked else self.question_waits):
            waited = time.monotonic() - start
            behind = (
                f"waited {waited:.1f} s for the replier (behind)"
                if waits is None or waited >= waits
                else f"the replier's line was {line.expected_wait(asked):.0f} s long (behind)"
            )
            if asked:  # someone waits for the answer: say it will not come, rather than guess
                outcome.decision = replace(decision, text=BUSY_REPLY, note=f"{behind}: said so")
                self._replace_in_history(local, Message("assistant", BUSY_REPLY))
                return
            asked_since = self._questions_heard > questions or self.question_waits.is_set()
            why = "a message to the assistant came after it" if asked_since else behind
            outcome.decision = replace(decision, speak=False, text="", note=f"skipped: {why}")
            self._drop_from_history(local)
            return
        draft = None
        if self.on_draft is not None:
            draft = lambda text, m=message: loop.call_soon_threadsafe(self.on_draft, m, text)  # noqa: E731
        history, at = self.assistant.history, self._history_index(local)
        # the history up to the message it answers (the room's later messages came after the local reply)
        context = history[:at] if at is not None else [*history, Message("user", message.text, message.name)]
        try:
            decision = await asyncio.to_thread(self.two_stage.rewrite, decision, context, draft)
        finally:
            line.release()
        if decision.speak:
            decision.text = cut_reply(decision.text, self.policy.max_reply_chars)
            self._replace_in_history(local, Message("assistant", decision.text))
        else:
            self._drop_from_history(local)
        outcome.decision = decision

    def _history_index(self, message: Message) -> int | None:
        """Where ``message`` (this very object) is in the history; None once the history was cut back."""
        return next((k for k, m in enumerate(self.assistant.history) if m is message), None)

    def _replace_in_history(self, old: Message, new: Message) -> None:
        if (at := self._history_index(old)) is not None:
            self.assistant.history[at] = new

    def _drop_from_history(self, old: Message) -> None:
        if (at := self._history_index(old)) is not None:
            self.assistant.history.pop(at)

    def _report(self, outcomes: list[Outcome]) -> None:
        decided = [o for o in outcomes if o.decision.reason != BURST_REASON] or outcomes
        self.last_reason = decided[-1].report
        for o in outcomes:
            log.info(
                "decision %s",
                json.dumps(
                    {
                        "room": self.key,
                        "message": o.message.id,
                        "speak": o.decision.speak,
                        "p_speak": o.decision.to_json()["p_speak"],
                        "reason": o.why,
                        **{k: round(v, 3) for k, v in o.timing.items()},
                    },
                    ensure_ascii=False,
                ),
            )

    def _set_typing(self, typing: bool) -> None:
        if typing != self.typing and self.on_typing is not None:
            self.typing = typing
            self.on_typing(typing)

    # -- settings -----------------------------------------------------------------------------------------------

    async def command(self, text: str, who: str, may_change: bool | Callable[[], Awaitable[str | None]] = True) -> str:
        """Answer a ``!chimein ...`` line (never shown to the model). ``may_change``: whether ``who`` may change
        settings, or an async check asked only for a command that changes them (None: allowed; else the
        refusal to answer with, e.g. Matrix's power levels)."""
        try:
            command = parse_command(text)
            if command is None:
                raise PolicyError("not a !chimein command")
            if command.changes_settings:
                refusal = (
                    (None if may_change else f"chimein: {who} may not change my settings")
                    if isinstance(may_change, bool)
                    else await may_change()
                )
                if refusal is not None:
                    return refusal
            policy, answer = apply_command(self.policy, command, who)
        except PolicyError as e:
            return f"chimein: {e}"
        if command.name == "status" and self.last_reason:
            answer += f"; last decision: {self.last_reason}"
        if policy is not self.policy:
            self.set_policy(policy)
        return answer

    def set_policy(self, policy: RoomPolicy) -> None:
        """A new policy for the room, handed to ``on_policy`` (the transport stores it, once per change)."""
        self.gate.policy = policy
        log.info("settings %s", json.dumps({"room": self.key, "by": policy.changed_by, "policy": policy.to_json()}))
        if self.on_policy is not None:
            self.on_policy(policy)
