"""The room engine, one table of room scenarios on the scripted backend (tests/helpers.py).

Each scenario hears bursts (messages sent back to back, within the settle time) and ``!chimein`` commands,
then checks which messages the room answered (a reply answers the message it was decided on), the reasons it
gives, how many model calls it made and what the commands answered. Transports (web rooms, Matrix) only carry
these in and out; their own tests check that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator

import pytest

from chimein.assistant.core import Assistant
from chimein.assistant.policy import BURST_REASON, RoomGate, RoomPolicy
from chimein.data import Message
from chimein.rooms import BUSY_REPLY, Incoming, ModelThread, Outcome, Room, normalize_history
from tests.helpers import ScriptedBackend, lisbon_chat

SETTLE = RoomPolicy(settle_s=0.05)  # a burst: messages heard in the same instant


@contextlib.asynccontextmanager
async def rooms_on_one_model(
    backend: Any, outcomes: list[Outcome], keys: str = "ab", **options: Any
) -> AsyncIterator[tuple[ModelThread, list[Room]]]:
    """Rooms ``room:<key>`` sharing one model thread, each with its own assistant on ``backend``; every outcome
    they show goes to ``outcomes``. Closed, and the thread shut down, on the way out."""
    model = ModelThread()

    async def collect(batch: list[Outcome]) -> None:
        outcomes.extend(batch)

    rooms = [
        Room(f"room:{k}", Assistant(backend), RoomGate(SETTLE), model, on_outcomes=collect, **options) for k in keys
    ]
    try:
        yield model, rooms
    finally:
        for room in rooms:
            await room.close()
        model.shutdown()


@dataclass
class Scenario:
    bursts: list[list[Any]]  # each: messages ("Name", "text", {Incoming fields}) and commands ("Name", "!chimein ...")
    spoke_on: list[str]  # texts of the messages answered, in order
    reasons: dict[str, str] = field(default_factory=dict)  # text -> the start of its decision's reason
    calls: int | None = None  # model calls
    answers: list[str] = field(default_factory=list)  # a part of each command's answer, in order
    policy: RoomPolicy = field(default_factory=lambda: replace(SETTLE))
    room: dict[str, Any] = field(default_factory=dict)  # Room options (max_history, behind_s, ...)
    seed: list[Message] = field(default_factory=list)
    history: list[str] | None = None  # the assistant's history at the end (contents)


def msg(name: str, text: str, **incoming: Any) -> tuple[str, str, dict[str, Any]]:
    return (name, text, incoming)


PERU, BRB = "assistant, what is the capital of Peru?", "brb"
SCENARIOS = {
    "chit-chat is heard, not answered": Scenario(
        [[msg("Ana", "pizza tonight?")]], [], {"pizza tonight?": "p_speak 0.10 < 0.50"}, calls=1
    ),
    "a direct question is answered": Scenario(
        [[msg("Ana", "bot, what time is it?")]], ["bot, what time is it?"], {"bot, what time is it?": "addressed"}
    ),
    "a question then brb: one decision, the reply answers the question": Scenario(
        [[msg("Ana", PERU), msg("Ana", BRB)]],
        [PERU],
        {PERU: "addressed", BRB: BURST_REASON},
        calls=1,
        history=[PERU, f"reply to {PERU}", BRB],
    ),
    "chatter then a question: decided once, on the question": Scenario(
        [[msg("Ben", "so"), msg("Ben", "the trip"), msg("Ana", "bot, when do we leave?")]],
        ["bot, when do we leave?"],
        {"so": BURST_REASON, "the trip": BURST_REASON},
        calls=1,
    ),
    "two direct questions in one burst: both answered": Scenario(
        [[msg("Ana", PERU), msg("Ben", "lol"), msg("Ben", "bot, and of Chile?")]],
        [PERU, "bot, and of Chile?"],
        {"lol": BURST_REASON},
        calls=2,
        history=[PERU, f"reply to {PERU}", "lol", "bot, and of Chile?", "reply to bot, and of Chile?"],
    ),
    "mention-only: unaddressed talk never reaches the model": Scenario(
        [[msg("Ben", "my robot vacuum broke")]],
        [],
        {"my robot vacuum broke": "mode mention-only: not addressed"},
        calls=0,
        policy=RoomPolicy(settle_s=0.05, mode="mention-only"),
    ),
    "mention-only: a question early in a burst is still answered": Scenario(
        [[msg("Ana", "bot, where is the meeting?"), msg("Ana", "also hi all")]],
        ["bot, where is the meeting?"],
        calls=1,
        policy=RoomPolicy(settle_s=0.05, mode="mention-only"),
    ),
    "mention-only: a reply to the assistant addresses it": Scenario(
        [[msg("Ana", "and times three?", reply_to_assistant=True)]],
        ["and times three?"],
        {"and times three?": "reply to assistant"},
        policy=RoomPolicy(settle_s=0.05, mode="mention-only"),
    ),
    "quiet: heard, never answered": Scenario(
        [[msg("Ana", "bot, are you there?")]],
        [],
        {"bot, are you there?": "quiet"},
        calls=0,
        policy=RoomPolicy(settle_s=0.05, mode="quiet"),
    ),
    "another bot is never a reason to interject": Scenario(
        [[msg("OtherBot", "my robot vacuum broke", from_bot=True)]],
        [],
        {"my robot vacuum broke": "another bot, not addressed"},
        calls=0,
    ),
    "a stale message is heard, never answered": Scenario(
        [[msg("Ana", "bot, still there?", at=time.time() - 700)]], [], {"bot, still there?": "stale"}, calls=0
    ),
    "cooldown holds back an unprompted second interjection": Scenario(
        [[msg("Ana", "my robot vacuum broke")], [msg("Ben", "the robot ate a sock")]],
        ["my robot vacuum broke"],
        {"the robot ate a sock": "cooldown: 1 messages"},
        policy=RoomPolicy(settle_s=0.05, cooldown=(1, 10.0)),
    ),
    "a command changes the settings; status tells the last decision": Scenario(
        [[("Ana", "!chimein mode quiet")], [msg("Ana", "bot, are you there?")], [("Ben", "!chimein status")]],
        [],
        {"bot, are you there?": "quiet"},
        calls=0,
        answers=["chimein: mode quiet", "last decision: silent on Ana's message: quiet"],
    ),
    "a member who may not change settings is refused": Scenario(
        [[("Gus", "!chimein mode quiet", False)], [msg("Gus", "bot, are you there?")]],
        ["bot, are you there?"],
        answers=["Gus may not change my settings"],
    ),
    "a bad command is answered with what is allowed": Scenario(
        [[("Ana", "!chimein cooldown three")], [("Ana", "!chimein dance")]],
        [],
        calls=0,
        answers=["cooldown looks like 3/10m", "unknown command 'dance'"],
    ),
    "behind: chit-chat is skipped, a question is not": Scenario(
        [[msg("Ana", "my robot vacuum broke")], [msg("Ana", PERU)]],
        [PERU],
        {"my robot vacuum broke": "skipped: waited"},
        calls=1,
        room={"behind_s": 0.0},
    ),
    "the history is bounded": Scenario(
        [[msg("Ana", t)] for t in ("a", "b", "c", "d", "bot, one more?")],
        ["bot, one more?"],
        room={"max_history": 4, "keep_history": 2},
        history=["c", "d", "bot, one more?", "reply to bot, one more?"],
    ),
    "a seed keeps the latest keep_history messages": Scenario(
        [[msg("Ana", "bot, hi?")]],
        ["bot, hi?"],
        seed=lisbon_chat(9),
        room={"keep_history": 2},
        history=[m.content for m in lisbon_chat(9)[-2:]] + ["bot, hi?", "reply to bot, hi?"],
    ),
    "a seed starting with the assistant is cut to start with a person": Scenario(
        [[msg("Ana", "bot, hi?")]],
        ["bot, hi?"],
        seed=[Message("assistant", "earlier reply"), Message("user", "yo", "Ben")],
        history=["yo", "bot, hi?", "reply to bot, hi?"],
    ),
}


async def run(scenario: Scenario) -> tuple[list[Outcome], list[str], ScriptedBackend, Room]:
    backend, outcomes, answers = ScriptedBackend(), [], []
    model = ModelThread()

    async def collect(batch: list[Outcome]) -> None:
        outcomes.extend(batch)

    room = Room(
        "room:test", Assistant(backend), RoomGate(scenario.policy), model, on_outcomes=collect, **scenario.room
    )
    room.seed(scenario.seed)
    try:
        for n, burst in enumerate(scenario.bursts):
            for i, (name, text, *extra) in enumerate(burst):
                if text.startswith("!chimein"):  # as the transports do: a command goes to command(), never heard
                    answers.append(await room.command(text, name, *extra))
                else:
                    room.hear(Incoming(f"{n}.{i}", name, text, **(extra[0] if extra else {})))
            while not room.idle:
                await asyncio.sleep(0.01)
    finally:
        await room.close()
        model.shutdown()
    return outcomes, answers, backend, room


@pytest.mark.timeout(30)
@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_room_scenarios(scenario: Scenario) -> None:
    outcomes, answers, backend, room = asyncio.run(run(scenario))
    heard = [step[1] for burst in scenario.bursts for step in burst if not step[1].startswith("!chimein")]
    assert [o.message.text for o in outcomes] == heard  # one decision per message, in order
    assert [o.message.text for o in outcomes if o.decision.speak] == scenario.spoke_on
    for o in outcomes:
        if o.decision.speak:
            assert o.decision.text == f"reply to {o.message.text}"  # the reply answers the message it is on
    reasons = {o.message.text: o.decision.reason for o in outcomes}
    for text, reason in scenario.reasons.items():
        assert reasons[text].startswith(reason), (text, reasons[text])
    if scenario.calls is not None:
        assert len(backend.calls) == scenario.calls
    assert len(answers) == len(scenario.answers) and all(part in a for part, a in zip(scenario.answers, answers))
    assert not any("!chimein" in c for contents, _, _ in backend.calls for c in contents)  # commands never reach it
    if scenario.history is not None:
        assert [m.content for m in room.assistant.history] == scenario.history


def test_a_policy_change_is_handed_to_the_transport_once() -> None:
    stored: list[RoomPolicy] = []

    async def scenario() -> list[str]:
        model = ModelThread()

        async def ignore(_: list[Outcome]) -> None:
            pass

        room = Room(
            "room:p",
            Assistant(ScriptedBackend()),
            RoomGate(SETTLE),
            model,
            on_outcomes=ignore,
            on_policy=stored.append,
        )
        try:
            return [
                await room.command("!chimein min-gap 4", "Ana"),
                await room.command("!chimein status", "Ben"),
                await room.command("!chimein quiet 30m", "Ben", may_change=lambda: _refuse("level 0")),
            ]
        finally:
            model.shutdown()

    answers = asyncio.run(scenario())
    assert [p.min_gap for p in stored] == [4] and stored[0].changed_by == "Ana"  # status and the refusal store nothing
    assert answers[2] == "level 0"


async def _refuse(why: str) -> str:
    return why


def test_normalize_history() -> None:
    a, u = Message("assistant", "hi"), Message("user", "yo", "Ana")
    assert normalize_history([a, u, a, Message("assistant", "again")]) == [u, Message("assistant", "hi\nagain")]


class StreamingReplier:
    """Writes "Lima." in three drafts on a question to the assistant; holds back anything volunteered."""

    def reply(self, messages: list[Message], on_text: Any = None) -> str:
        if "bot" not in messages[-1].content:
            return ""
        for draft in ("Li", "Lima", "Lima."):
            if on_text is not None:
                on_text(draft)
        return "Lima."


def test_a_reply_is_shown_as_drafts_while_the_replier_writes_it() -> None:
    from chimein.assistant.core import TwoStage

    drafts: list[tuple[str, str]] = []
    outcomes: list[Outcome] = []

    async def scenario() -> None:
        model = ModelThread()
        backend = ScriptedBackend(p_speak=lambda text: 0.9)  # the decider would speak on both

        async def collect(batch: list[Outcome]) -> None:
            outcomes.extend(batch)

        room = Room(
            "room:d",
            Assistant(backend),
            RoomGate(SETTLE),
            model,
            on_outcomes=collect,
            two_stage=TwoStage(backend, StreamingReplier()),
            on_draft=lambda m, text: drafts.append((m.id, text)),
        )
        try:
            room.hear(Incoming("q", "Ana", "bot, capital of peru?"))
            while not room.idle:
                await asyncio.sleep(0.01)
            room.hear(Incoming("v", "Ben", "i think it's cusco"))
            while not room.idle:
                await asyncio.sleep(0.01)
        finally:
            await room.close()
            model.shutdown()

    asyncio.run(scenario())
    assert drafts == [("q", "Li"), ("q", "Lima"), ("q", "Lima.")]  # on the message that asked, in order
    assert [(o.message.id, o.decision.speak, o.decision.text) for o in outcomes] == [
        ("q", True, "Lima."),
        ("v", False, ""),
    ]


# -- under load: questions first, nothing stale sent after a question ----------------------------------------


class GatedReplier:
    """Writes "answer to <message>", one at a time, each held until ``gate`` is set; records what it answered."""

    concurrent_replies = 1

    def __init__(self, gate: Any = None):
        self.gate, self.wrote = gate, []

    def reply(self, messages: list[Message]) -> str:
        if self.gate is not None:
            self.gate.wait(10)
        self.wrote.append(messages[-1].content)
        return f"answer to {messages[-1].content}"


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_question_is_decided_without_waiting_out_the_settle_time() -> None:
    async def scenario() -> float:
        model, done = ModelThread(), asyncio.get_running_loop().create_future()

        async def collect(batch: list[Outcome]) -> None:
            done.set_result(time.monotonic())

        room = Room(
            "room:q", Assistant(ScriptedBackend()), RoomGate(RoomPolicy(settle_s=5.0)), model, on_outcomes=collect
        )
        try:
            start = time.monotonic()
            room.hear(Incoming("q", "Ana", PERU))
            return await asyncio.wait_for(done, 10) - start
        finally:
            await room.close()
            model.shutdown()

    assert asyncio.run(scenario()) < 1.0  # not the 5 s settle time: chatter is batched, a question is not


def test_chit_chat_waiting_for_the_model_gives_way_to_a_question_in_its_room() -> None:
    """Room A's chit-chat waits for the model (room B holds it); then A's question arrives. The chit-chat is
    heard with the question's burst: one model call for A, none made on the chit-chat before the question."""
    import threading

    gate, outcomes = threading.Event(), []
    backend = ScriptedBackend(gate=gate)

    async def scenario() -> None:
        async with rooms_on_one_model(backend, outcomes, behind_s=None) as (model, (a, b)):
            b.hear(Incoming("b1", "Cy", "hello"))
            await _until(lambda: len(backend.calls) == 1)  # B holds the model
            a.hear(Incoming("a1", "Ana", "my robot vacuum broke"))
            await _until(lambda: model.pending().get("room:a") == 1)
            a.hear(Incoming("a2", "Ana", PERU))
            gate.set()
            await _until(lambda: a.idle and b.idle and len(outcomes) == 3)

    asyncio.run(scenario())
    room_a_calls = [contents for contents, _, _ in backend.calls if contents[-1] != "hello"]
    assert room_a_calls == [["my robot vacuum broke", PERU]]  # decided once, on the question
    by_id = {o.message.id: o.decision for o in outcomes}
    assert by_id["a1"].reason == BURST_REASON and not by_id["a1"].speak
    assert by_id["a2"].speak and by_id["a2"].text == f"reply to {PERU}"


def test_a_volunteered_reply_is_not_sent_after_a_question_that_came_after_it() -> None:
    """Room A volunteers on chit-chat while room B's question holds the replier; A's question then arrives. The
    reply A sends next is the question's, never the stale volunteered one (which is skipped, with its reason)."""
    import threading

    from chimein.assistant.core import TwoStage

    gate, outcomes = threading.Event(), []
    backend = ScriptedBackend(p_speak=lambda text: 0.9)  # the decider volunteers on anything
    replier = GatedReplier(gate)
    two_stage = TwoStage(backend, replier)

    async def scenario() -> None:
        async with rooms_on_one_model(backend, outcomes, two_stage=two_stage) as (_, (a, b)):
            b.hear(Incoming("b1", "Cy", "bot, what is 2+2?"))
            await _until(lambda: len(backend.calls) == 1)
            await asyncio.sleep(0.1)  # B's reply is being written: the replier is taken
            a.hear(Incoming("a1", "Ana", "my robot vacuum broke"))
            await _until(lambda: len(backend.calls) == 2)  # decided: A's volunteered reply waits for the replier
            a.hear(Incoming("a2", "Ana", PERU))
            await _until(lambda: any(o.message.id == "a1" for o in outcomes))
            gate.set()
            await _until(lambda: a.idle and b.idle and len(outcomes) == 3)

    asyncio.run(scenario())
    spoken = [(o.message.id, o.decision.text) for o in outcomes if o.decision.speak]
    assert spoken == [("b1", "answer to bot, what is 2+2?"), ("a2", f"answer to {PERU}")]
    skipped = next(o for o in outcomes if o.message.id == "a1")
    assert skipped.why.endswith("skipped: a message to the assistant came after it")
    assert replier.wrote == ["bot, what is 2+2?", PERU]


def test_the_replier_answers_questions_first_and_skips_or_falls_back_when_behind() -> None:
    """Four rooms wait for the replier (held by a fifth), in this order: a volunteered reply, a question, a
    volunteered reply in a room with a short behind_s, and a question in a room with a short replier_wait_s. The
    question that waits its turn is written before the volunteered reply that came first; past behind_s the
    volunteered reply is skipped; past replier_wait_s the room says it is too busy for the question (never the
    deciding model's own guess), each with its reason."""
    import threading

    from chimein.assistant.core import TwoStage

    gate, outcomes = threading.Event(), []
    backend = ScriptedBackend(p_speak=lambda text: 0.9)
    replier = GatedReplier(gate)
    two_stage = TwoStage(backend, replier)
    waiting = [
        ("volunteer", "my robot vacuum broke", {}),
        ("asks", "bot, second?", {}),
        ("stale", "the robot ate a sock", {"behind_s": 0.5}),
        ("late", "bot, third?", {"replier_wait_s": 0.5}),
    ]

    async def scenario() -> None:
        model = ModelThread()

        async def collect(batch: list[Outcome]) -> None:
            outcomes.extend(batch)

        def room(key: str, options: dict[str, float]) -> Room:
            options = {"behind_s": 10.0, **options}
            return Room(
                f"room:{key}",
                Assistant(backend),
                RoomGate(SETTLE),
                model,
                on_outcomes=collect,
                two_stage=two_stage,
                **options,
            )

        rooms = {"holder": room("holder", {})} | {key: room(key, options) for key, _, options in waiting}
        try:
            rooms["holder"].hear(Incoming("holder", "Cy", "bot, first?"))
            await _until(lambda: len(backend.calls) == 1)
            await asyncio.sleep(0.1)  # the holder's reply is being written
            for n, (key, text, _) in enumerate(waiting, start=2):
                rooms[key].hear(Incoming(key, "Ana", text))
                await _until(lambda n=n: len(backend.calls) == n)
            await _until(lambda: {"stale", "late"} <= {o.message.id for o in outcomes})  # gave up after 0.5 s
            gate.set()
            await _until(lambda: all(r.idle for r in rooms.values()) and len(outcomes) == 5)
        finally:
            for r in rooms.values():
                await r.close()
            model.shutdown()

    asyncio.run(scenario())
    assert replier.wrote == ["bot, first?", "bot, second?", "my robot vacuum broke"]  # the question went first
    by_id = {o.message.id: o for o in outcomes}
    assert not by_id["stale"].decision.speak and by_id["stale"].why.endswith("for the replier (behind)")
    assert "skipped: waited" in by_id["stale"].why
    assert by_id["late"].decision.speak and by_id["late"].decision.text == BUSY_REPLY
    assert by_id["late"].why.endswith("for the replier (behind): said so")


def test_a_room_decides_its_next_messages_while_its_reply_waits_for_the_replier() -> None:
    """A question's reply waits for the replier (held); the room's chit-chat after it is decided meanwhile, not
    after the reply. Once the replier writes, the question's reply is shown on the question, and the replier's
    text replaces the local one in the history, before the chit-chat that came after it."""
    import threading

    from chimein.assistant.core import TwoStage

    gate, outcomes = threading.Event(), []
    backend = ScriptedBackend(p_speak=lambda text: 0.9 if "bot" in text else 0.1)
    replier = GatedReplier(gate)
    two_stage = TwoStage(backend, replier)

    async def scenario() -> list[Message]:
        async with rooms_on_one_model(backend, outcomes, keys="a", two_stage=two_stage) as (_, (room,)):
            room.hear(Incoming("q", "Ana", PERU))
            await _until(lambda: len(backend.calls) == 1)
            for n in range(3):
                room.hear(Incoming(f"c{n}", "Ben", f"chit-chat {n}"))
                await _until(lambda: any(o.message.id == f"c{n}" for o in outcomes))
            assert [o.message.id for o in outcomes] == ["c0", "c1", "c2"] and not room.idle  # the reply still waits
            gate.set()
            await _until(lambda: room.idle and len(outcomes) == 4)
            return room.assistant.history

    history = asyncio.run(scenario())
    answer = outcomes[-1]
    assert answer.message.id == "q" and answer.decision.text == f"answer to {PERU}"
    assert [m.content for m in history] == [PERU, f"answer to {PERU}"] + [f"chit-chat {n}" for n in range(3)]


def test_a_burst_with_two_questions_waits_for_the_replier_once() -> None:
    """Two questions in one burst, the replier held by another room: both replies wait in the line from the same
    moment, so both hear that the assistant is busy after one wait, not one wait after the other."""
    import threading

    from chimein.assistant.core import TwoStage

    gate, outcomes = threading.Event(), []
    backend = ScriptedBackend(p_speak=lambda text: 0.9 if "bot" in text else 0.1)
    two_stage = TwoStage(backend, GatedReplier(gate))
    wait = 1.0

    async def scenario() -> float:
        async with rooms_on_one_model(backend, outcomes, keys="ab", two_stage=two_stage, replier_wait_s=wait) as (
            _,
            (holder, room),
        ):
            holder.hear(Incoming("h", "Cy", "bot, first?"))
            await _until(lambda: len(backend.calls) == 1)
            start = time.monotonic()
            room.hear(Incoming("q1", "Ana", "bot, second?"))
            room.hear(Incoming("q2", "Ben", "bot, third?"))
            await _until(lambda: {"q1", "q2"} <= {o.message.id for o in outcomes})
            took = time.monotonic() - start
            gate.set()
            return took

    took = asyncio.run(scenario())
    busy = [o for o in outcomes if o.message.id in ("q1", "q2")]
    assert [o.decision.text for o in busy] == [BUSY_REPLY, BUSY_REPLY]
    assert wait <= took < 1.8 * wait  # one wait (one after the other would be two)
