"""The Matrix bot against a real Synapse homeserver (started by the test), with real nio clients as users.

    pip install -e '.[dev]'                      # matrix-nio and matrix-synapse
    python -m pytest tests/connectors/test_matrix.py -q -x

The model is the ``mention`` rule (speaks iff the message names the assistant): deterministic and instant.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

nio = pytest.importorskip("nio", reason="pip install -e '.[dev]' (matrix-nio)")
pytest.importorskip("synapse", reason="pip install -e '.[dev]' (matrix-synapse)")

from chimein.assistant import Assistant, get_backend  # noqa: E402
from chimein.assistant.core import Decision  # noqa: E402
from chimein.assistant.backends.rules import CANNED_REPLY  # noqa: E402
from chimein.data import Message  # noqa: E402
from chimein.rooms import BUSY_REPLY  # noqa: E402
from tests.helpers import OneReplyAtATime  # noqa: E402
from chimein.assistant.policy import BURST_REASON, RoomPolicy  # noqa: E402
from chimein.connectors.matrix import (  # noqa: E402
    MatrixBot,
    MatrixSettings,
    invite_allowed,
    is_edit,
    reply_target,
    strip_reply_fallback,
)

EACH = RoomPolicy(settle_s=0)  # decide on every message as it arrives (the settle time has its own test)


def _load_helpers():
    # By path, under another name: a module called "synapse" on sys.path would shadow the real Synapse.
    spec = importlib.util.spec_from_file_location("chimein_test_synapse", Path(__file__).with_name("synapse.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


synapse_server = _load_helpers().synapse_server  # session fixture: one fresh homeserver for this module's tests

WAIT_S = 30  # upper bound for anything to happen (it takes well under a second on an idle machine)


# -- helpers -------------------------------------------------------------------------------------------------


async def login(hs, user) -> nio.AsyncClient:
    client = nio.AsyncClient(hs.url, user.user_id)
    assert isinstance(await client.login(user.password), nio.LoginResponse)
    return client


async def send(client: nio.AsyncClient, room_id: str, text: str, **extra) -> str:
    response = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text, **extra})
    assert isinstance(response, nio.RoomSendResponse), response
    return response.event_id


async def edit(client: nio.AsyncClient, room_id: str, event_id: str, text: str) -> str:
    return await send(
        client,
        room_id,
        f"* {text}",
        **{
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        },
    )


async def texts_from(client: nio.AsyncClient, room_id: str, sender: str) -> list[str]:
    """The text messages ``sender`` has sent to the room, oldest first (as another member sees them)."""
    response = await client.room_messages(room_id, limit=100, message_filter={"types": ["m.room.message"]})
    assert isinstance(response, nio.RoomMessagesResponse), response
    return [ev.body for ev in reversed(response.chunk) if isinstance(ev, nio.RoomMessageText) and ev.sender == sender]


async def replies_from(client: nio.AsyncClient, room_id: str, sender: str) -> list[tuple[str, str | None]]:
    """``sender``'s text messages in the room as (body, the event it replies to), oldest first."""
    response = await client.room_messages(room_id, limit=100, message_filter={"types": ["m.room.message"]})
    assert isinstance(response, nio.RoomMessagesResponse), response
    return [
        (ev.body, reply_target(ev))
        for ev in reversed(response.chunk)
        if isinstance(ev, nio.RoomMessageText) and ev.sender == sender
    ]


async def wait_until(condition, task: asyncio.Task | None = None, what: str = "condition") -> None:
    """Poll ``condition()`` (sync or async); fail fast if the bot's task died, and after WAIT_S seconds."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if task is not None and task.done():
            task.result()  # raises the bot's exception
            raise AssertionError(f"the bot stopped before: {what}")
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {WAIT_S} s waiting for: {what}")


class ThreadRecordingMention:
    """The mention rule, noting which thread each decision runs in."""

    def __init__(self):
        self.rule, self.threads = get_backend("mention"), set()
        self.supports_probability, self.threshold, self.answer_direct_questions, self.decide_only = (
            False,
            None,
            False,
            False,
        )

    def new_state(self):
        return self.rule.new_state()

    def decide(self, messages, state, threshold=None):
        self.threads.add(threading.current_thread().name)
        return self.rule.decide(messages, state, threshold)


def mention_bot(settings: MatrixSettings, heard: list) -> MatrixBot:
    backend = ThreadRecordingMention()
    bot = MatrixBot(settings, lambda: Assistant(backend), on_decision=heard.append)
    bot.model_threads = backend.threads
    return bot


async def stop(bot: MatrixBot, task: asyncio.Task) -> None:
    bot.stop()
    await asyncio.wait_for(task, WAIT_S)


# -- against a real homeserver -------------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.timeout(180)
def test_silent_in_chit_chat_replies_when_addressed_and_never_twice_across_a_restart(synapse_server, tmp_path):
    asyncio.run(asyncio.wait_for(_conversation_and_restart(synapse_server, tmp_path / "store"), 150))


async def _conversation_and_restart(hs, store: Path) -> None:
    alice_u, bob_u, bot_u = (
        hs.register("alice", "Alice A."),
        hs.register("bob", "Bob B."),
        hs.register("bot", "chimein"),
    )
    alice, bob = await login(hs, alice_u), await login(hs, bob_u)
    try:
        room = (await alice.room_create(name="lunch", invite=[bob_u.user_id, bot_u.user_id])).room_id
        assert isinstance(await bob.join(room), nio.JoinResponse)
        await send(alice, room, "hey bot, are you there?")  # before the bot joins: history, never answered

        # 1. The bot accepts the invite, sits through chit-chat and an edit, and answers when addressed.
        settings = MatrixSettings(
            hs.url, bot_u.user_id, store, password=bot_u.password, poll_timeout_ms=5000, policy=EACH
        )
        heard: list = []
        bot = mention_bot(settings, heard)
        task = asyncio.create_task(bot.run())
        await wait_until(lambda: room in bot.client.rooms, task, "the bot joins the room")
        login_written = (store / "session.json").stat().st_mtime_ns
        await send(alice, room, "pizza or sushi tonight?")
        sushi = await send(bob, room, "sushi, obviously")
        await edit(bob, room, sushi, "sushi obviously, right bot?")  # an edit that names the bot: not heard
        await send(bob, room, "bot, how many syllables does a haiku have?")
        await wait_until(lambda: len(heard) >= 3, task, "three messages heard")
        assert [(h.name, h.text, h.decision.speak) for h in heard] == [
            ("Alice A.", "pizza or sushi tonight?", False),
            ("Bob B.", "sushi, obviously", False),
            ("Bob B.", "bot, how many syllables does a haiku have?", True),
        ]
        assert await texts_from(bob, room, bot_u.user_id) == [CANNED_REPLY]
        assert bot.assistants[room].history[0] == Message("user", "hey bot, are you there?", "Alice A.")
        assert len(bot.model_threads) == 1 and next(iter(bot.model_threads)).startswith("chimein-model")
        device = bot.client.device_id
        await stop(bot, task)
        assert (store / "session.json").stat().st_mode & 0o777 == 0o600
        # The login (with its access token) is written once; decisions and syncs go to sync.json, no secret in it.
        assert (store / "session.json").stat().st_mtime_ns == login_written
        assert "access_token" not in (store / "sync.json").read_text()

        # 2. While it is away, Alice addresses it. Restarted without a password, it restores its login,
        #    answers that message (with Alice's display name known) and nothing it has already heard.
        await send(alice, room, "ok bot, what about a limerick?")
        heard2: list = []
        bot2 = mention_bot(MatrixSettings(hs.url, bot_u.user_id, store, poll_timeout_ms=5000, policy=EACH), heard2)
        task2 = asyncio.create_task(bot2.run())
        await wait_until(lambda: len(heard2) >= 1, task2, "the message sent while the bot was away")
        assert bot2.client.device_id == device
        before_thanks = json.loads((store / "sync.json").read_text())["next_batch"]
        await send(bob, room, "thanks bot!")
        await wait_until(lambda: len(heard2) >= 2, task2, "a new message after the restart")
        assert [(h.name, h.text, h.decision.speak) for h in heard2] == [
            ("Alice A.", "ok bot, what about a limerick?", True),
            ("Bob B.", "thanks bot!", True),
        ]
        seeded = bot2.assistants[room].history
        assert Message("user", "bot, how many syllables does a haiku have?", "Bob B.") in seeded
        assert Message("assistant", CANNED_REPLY) in seeded
        assert await texts_from(alice, room, bot_u.user_id) == [CANNED_REPLY] * 3
        await stop(bot2, task2)

        # 3. A crash loses the sync token saved after "thanks bot!" was answered: the answered message is
        #    delivered again, and skipped because the last answered event is saved with each reply.
        sync = json.loads((store / "sync.json").read_text())
        (store / "sync.json").write_text(json.dumps({**sync, "next_batch": before_thanks}))
        heard3: list = []
        bot3 = mention_bot(MatrixSettings(hs.url, bot_u.user_id, store, poll_timeout_ms=5000, policy=EACH), heard3)
        task3 = asyncio.create_task(bot3.run())
        await send(alice, room, "one last thing, bot")
        await wait_until(lambda: len(heard3) >= 1, task3, "a message after the crash")
        assert [h.text for h in heard3] == ["one last thing, bot"]
        assert await texts_from(alice, room, bot_u.user_id) == [CANNED_REPLY] * 4
        await stop(bot3, task3)
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.server
@pytest.mark.timeout(120)
def test_invites_only_from_allowed_users(synapse_server, tmp_path):
    async def scenario() -> None:
        carol_u, dave_u, bot_u = (
            synapse_server.register(n, d) for n, d in (("carol", "Carol"), ("dave", "Dave"), ("gate", "bot"))
        )
        carol, dave = await login(synapse_server, carol_u), await login(synapse_server, dave_u)
        try:
            denied = (await dave.room_create(invite=[bot_u.user_id])).room_id
            allowed = (await carol.room_create(invite=[bot_u.user_id])).room_id
            settings = MatrixSettings(
                synapse_server.url,
                bot_u.user_id,
                tmp_path,
                password=bot_u.password,
                allow_from=(carol_u.user_id,),
                poll_timeout_ms=5000,
            )
            bot = MatrixBot(settings, lambda: Assistant(get_backend("mention")))
            task = asyncio.create_task(bot.run())
            await wait_until(lambda: allowed in bot.client.rooms, task, "the allowed invite is accepted")

            async def declined() -> bool:
                state = await dave.room_get_state_event(denied, "m.room.member", bot_u.user_id)
                return isinstance(state, nio.RoomGetStateEventResponse) and state.content.get("membership") == "leave"

            await wait_until(declined, task, "the other invite is declined")
            assert denied not in bot.client.rooms
            await stop(bot, task)
        finally:
            await carol.close()
            await dave.close()

    asyncio.run(asyncio.wait_for(scenario(), 100))


@pytest.mark.server
@pytest.mark.timeout(120)
def test_command_joins_configured_room_answers_and_stops_on_sigterm(synapse_server, tmp_path):
    """`chimein matrix` in a subprocess: --rooms joins the room, the mention model answers, SIGTERM exits 0."""
    erin_u, bot_u = synapse_server.register("erin", "Erin"), synapse_server.register("cli", "chimein")

    async def scenario() -> None:
        erin = await login(synapse_server, erin_u)
        try:
            room = (await erin.room_create(invite=[bot_u.user_id])).room_id
            cmd = [
                sys.executable,
                "-c",
                "from chimein.cli import app; app()",
                "matrix",
                "--homeserver",
                synapse_server.url,
                "--user",
                bot_u.user_id,
                "--password-env",
                "BOT_PW",
                "--rooms",
                room,
                "--model",
                "mention",
                "--store-dir",
                str(tmp_path / "store"),
            ]
            log = open(tmp_path / "bot.log", "wb")
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "BOT_PW": bot_u.password}
            )
            try:

                async def joined() -> bool:
                    members = await erin.joined_members(room)
                    return isinstance(members, nio.JoinedMembersResponse) and bot_u.user_id in {
                        m.user_id for m in members.members
                    }

                await wait_until(joined, what="the bot joins the configured room")
                await send(erin, room, "is the bot online?")

                async def answered() -> bool:
                    assert proc.poll() is None, (tmp_path / "bot.log").read_text()
                    return await texts_from(erin, room, bot_u.user_id) == [CANNED_REPLY]

                await wait_until(answered, what="the reply")
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(proc.wait, WAIT_S) == 0, (tmp_path / "bot.log").read_text()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                log.close()
        finally:
            await erin.close()
        assert (tmp_path / "store" / "session.json").exists()
        assert "speak" in (tmp_path / "bot.log").read_text()  # decisions are logged

    asyncio.run(asyncio.wait_for(scenario(), 100))


# -- room controls against the real homeserver --------------------------------------------------------------


class ThresholdBackend:
    """p_speak 0.9 when the message says "bot", else 0.3; speaks when p >= the threshold (0.5 by default).
    Counts its calls: the model must never see a command."""

    supports_probability, threshold, answer_direct_questions = True, 0.5, False

    def __init__(self):
        self.calls: list[str] = []

    def new_state(self):
        return None

    def decide(self, messages, state, threshold=None):
        self.calls.append(messages[-1].content)
        p = 0.9 if "bot" in messages[-1].content.lower() else 0.3
        speak = p >= (self.threshold if threshold is None else threshold)
        return Decision(speak, f"reply to {messages[-1].content}" if speak else "", p)


async def _policy_bot(hs, store: Path, bot_u, policy: RoomPolicy, **settings_extra):
    backend, heard = ThresholdBackend(), []
    settings = MatrixSettings(
        hs.url, bot_u.user_id, store, password=bot_u.password, poll_timeout_ms=2000, policy=policy, **settings_extra
    )
    bot = MatrixBot(settings, lambda: Assistant(backend), on_decision=heard.append)
    return bot, backend, heard, asyncio.create_task(bot.run())


async def notices_from(client: nio.AsyncClient, room_id: str, sender: str) -> list[str]:
    response = await client.room_messages(room_id, limit=100, message_filter={"types": ["m.room.message"]})
    return [
        ev.body for ev in reversed(response.chunk) if isinstance(ev, nio.RoomMessageNotice) and ev.sender == sender
    ]


@pytest.mark.server
@pytest.mark.timeout(180)
def test_a_reply_to_the_bot_addresses_it_under_mention_only(synapse_server, tmp_path):
    async def scenario() -> None:
        ana_u, bot_u = synapse_server.register("ana2", "Ana"), synapse_server.register("bot2", "chimein")
        ana = await login(synapse_server, ana_u)
        try:
            room = (await ana.room_create(invite=[bot_u.user_id])).room_id
            bot, backend, heard, task = await _policy_bot(
                synapse_server, tmp_path, bot_u, RoomPolicy(mode="mention-only", settle_s=0)
            )
            await wait_until(lambda: room in bot.client.rooms, task, "the bot joins")
            await send(ana, room, "bot, what is 2+2?")
            await wait_until(lambda: len(heard) >= 1, task, "the first answer")
            answer_id = next(iter(bot._own_events))
            await send(
                ana,
                room,
                "> <@bot2> reply\n\nand times three?",
                **{"m.relates_to": {"m.in_reply_to": {"event_id": answer_id}}},
            )
            await send(ana, room, "and what do you all think?")  # not addressed: mention-only holds it back
            await wait_until(lambda: len(heard) >= 3, task, "three decisions")
            assert [(h.text, h.decision.speak, h.decision.reason) for h in heard] == [
                ("bot, what is 2+2?", True, "addressed"),
                ("and times three?", True, "reply to assistant"),
                ("and what do you all think?", False, "mode mention-only: not addressed"),
            ]
            assert await texts_from(ana, room, bot_u.user_id) == [
                "reply to bot, what is 2+2?",
                "reply to and times three?",
            ]
            await stop(bot, task)
        finally:
            await ana.close()

    asyncio.run(asyncio.wait_for(scenario(), 150))


@pytest.mark.server
@pytest.mark.timeout(180)
def test_only_moderators_change_settings_and_they_survive_a_restart(synapse_server, tmp_path):
    async def scenario() -> None:
        mod_u, guest_u, bot_u = (
            synapse_server.register(n, d) for n, d in (("mod3", "Mo"), ("guest3", "Gus"), ("bot3", "chimein"))
        )
        mod, guest = await login(synapse_server, mod_u), await login(synapse_server, guest_u)
        try:
            room = (
                await mod.room_create(invite=[guest_u.user_id, bot_u.user_id])
            ).room_id  # the creator has power 100
            assert isinstance(await guest.join(room), nio.JoinResponse)
            bot, backend, heard, task = await _policy_bot(synapse_server, tmp_path, bot_u, RoomPolicy(settle_s=0))
            await wait_until(lambda: room in bot.client.rooms, task, "the bot joins")
            await send(guest, room, "!chimein mode quiet")
            await wait_until(lambda: notices_from(mod, room, bot_u.user_id), task, "the refusal")
            assert "power level 50" in (await notices_from(mod, room, bot_u.user_id))[0]
            await send(mod, room, "!chimein mode quiet")
            await wait_until(lambda: _count(notices_from(mod, room, bot_u.user_id), 2), task, "the change")
            await stop(bot, task)

            bot, backend, heard, task = await _policy_bot(synapse_server, tmp_path, bot_u, RoomPolicy(settle_s=0))
            await send(guest, room, "!chimein status")
            await wait_until(lambda: _count(notices_from(mod, room, bot_u.user_id), 3), task, "the status")
            notices = await notices_from(mod, room, bot_u.user_id)
            assert (
                notices[1].startswith("chimein: mode quiet")
                and "mode quiet" in notices[2]
                and "last changed by Mo" in notices[2]
            )
            await send(guest, room, "bot, are you there?")  # quiet: heard, not answered
            await wait_until(lambda: len(heard) >= 1, task, "the decision")
            assert heard[0].decision.speak is False and heard[0].decision.reason == "quiet"
            assert not any("chimein" in call for call in backend.calls)  # commands never reach the model
            await stop(bot, task)
            stored = json.loads((tmp_path / "rooms.json").read_text())  # settings in their own file, not the login's
            assert stored[room]["mode"] == "quiet" and "policies" not in (tmp_path / "session.json").read_text()
        finally:
            await mod.close()
            await guest.close()

    asyncio.run(asyncio.wait_for(scenario(), 150))


async def _count(notices, n: int) -> bool:
    return len(await notices) >= n


@pytest.mark.server
@pytest.mark.timeout(180)
def test_another_bot_cannot_keep_it_talking_forever(synapse_server, tmp_path):
    async def scenario() -> None:
        ana_u, other_u, bot_u = (
            synapse_server.register(n, d) for n, d in (("ana4", "Ana"), ("other4", "OtherBot"), ("bot4", "chimein"))
        )
        ana, other = await login(synapse_server, ana_u), await login(synapse_server, other_u)
        try:
            room = (await ana.room_create(invite=[other_u.user_id, bot_u.user_id])).room_id
            assert isinstance(await other.join(room), nio.JoinResponse)
            bot, backend, heard, task = await _policy_bot(
                synapse_server, tmp_path, bot_u, RoomPolicy(settle_s=0, bot_turns=3), bot_users=(other_u.user_id,)
            )
            await wait_until(lambda: room in bot.client.rooms, task, "the bot joins")
            await send(other, room, "lots of bot chatter")  # unprompted: another bot is never a reason to interject
            for i in range(6):  # the other bot answers every reply with another question
                await send(other, room, f"bot, and question {i}?")
                await wait_until(lambda: len(heard) >= i + 2, task, f"decision {i}")
            assert [h.decision.speak for h in heard] == [False, True, True, True, False, False, False]
            assert heard[0].decision.reason == "another bot, not addressed"
            assert heard[-1].decision.reason.startswith("loop guard")
            await send(ana, room, "bot, are you still there?")  # a person: the guard does not apply
            await wait_until(lambda: len(heard) >= 8, task, "a person's question")
            assert heard[-1].decision.speak is True
            await stop(bot, task)
        finally:
            await ana.close()
            await other.close()

    asyncio.run(asyncio.wait_for(scenario(), 150))


@pytest.mark.server
@pytest.mark.timeout(180)
def test_a_burst_is_decided_once_and_the_reply_answers_the_question_in_it(synapse_server, tmp_path):
    async def scenario() -> None:
        ana_u, bot_u = synapse_server.register("ana5", "Ana"), synapse_server.register("bot5", "chimein")
        ana = await login(synapse_server, ana_u)
        try:
            room = (await ana.room_create(invite=[bot_u.user_id])).room_id
            bot, backend, heard, task = await _policy_bot(synapse_server, tmp_path, bot_u, RoomPolicy(settle_s=1.5))
            await wait_until(lambda: room in bot.client.rooms, task, "the bot joins")
            ids = [
                await send(ana, room, text) for text in ("so", "about", "the trip", "bot, when do we leave?", "brb")
            ]
            await wait_until(lambda: len(heard) >= 5, task, "five messages heard")
            # The chatter before the question is decided with it; the question ends the settle time, so "brb"
            # is heard in its burst or decided after it, never answered instead of it.
            assert backend.calls[0] == "bot, when do we leave?" and backend.calls[1:] in ([], ["brb"])
            assert [h.decision.reason for h in heard if not h.decision.speak][:3] == [BURST_REASON] * 3
            assert [h.event_id for h in heard if h.decision.speak] == [ids[3]]
            await wait_until(lambda: replies_from(ana, room, bot_u.user_id), task, "the reply")
            assert await replies_from(ana, room, bot_u.user_id) == [("reply to bot, when do we leave?", ids[3])]
            await stop(bot, task)
        finally:
            await ana.close()

    asyncio.run(asyncio.wait_for(scenario(), 150))


@pytest.mark.server
@pytest.mark.timeout(180)
def test_with_a_replier_a_question_that_cannot_get_it_in_time_hears_the_bot_is_busy(synapse_server, tmp_path):
    """The bot with a replier that writes one reply at a time (held on the first question): the deciding model
    only decides, and the second question, whose turn does not come within ``reply_wait_s``, is told in reply
    to it that the bot is too busy; the first gets the replier's answer once it is written."""
    replier = OneReplyAtATime()

    async def scenario() -> None:
        ana_u, bot_u = synapse_server.register("ana6", "Ana"), synapse_server.register("bot6", "chimein")
        ana = await login(synapse_server, ana_u)
        try:
            room = (await ana.room_create(invite=[bot_u.user_id])).room_id
            backend = ThresholdBackend()
            settings = MatrixSettings(
                synapse_server.url,
                bot_u.user_id,
                tmp_path / "store",
                password=bot_u.password,
                poll_timeout_ms=2000,
                policy=EACH,
                reply_wait_s=0.5,
            )
            bot = MatrixBot(settings, lambda: Assistant(backend, replier=replier))
            task = asyncio.create_task(bot.run())
            await wait_until(lambda: room in bot.client.rooms, task, "the bot joins")
            long_id = await send(ana, room, "bot, a long question?")
            await wait_until(lambda: backend.calls, task, "the first question decided")
            quick_id = await send(ana, room, "bot, a quick one?")

            async def replies(n: int) -> bool:
                return len(await replies_from(ana, room, bot_u.user_id)) >= n

            await wait_until(lambda: replies(1), task, "the busy reply")
            assert await replies_from(ana, room, bot_u.user_id) == [(BUSY_REPLY, quick_id)]
            assert backend.decide_only is True  # the replier writes: the deciding model was asked only to decide
            replier.release.set()
            await wait_until(lambda: replies(2), task, "the replier's answer")
            assert (await replies_from(ana, room, bot_u.user_id))[1] == (
                "strong reply to bot, a long question?",
                long_id,
            )
            await stop(bot, task)
        finally:
            replier.release.set()
            await ana.close()

    asyncio.run(asyncio.wait_for(scenario(), 150))


# -- without a server ----------------------------------------------------------------------------------------


def test_invite_rules():
    assert invite_allowed("!r:hs", "@anyone:else")  # nothing configured: accept all
    assert invite_allowed("!r:hs", "@ana:hs", allow_from=["@ana:hs"])
    assert invite_allowed("!r:hs", "@ben:corp.example", allow_from=[":corp.example"])
    assert not invite_allowed("!r:hs", "@ben:hs", allow_from=["@ana:hs"])
    assert invite_allowed("!r:hs", "@ben:hs", rooms=["!r:hs"])
    assert not invite_allowed("!other:hs", None, rooms=["!r:hs"])
    with pytest.raises(ValueError, match="full Matrix ID"):
        MatrixSettings("http://hs", "bot", Path("x"))
    with pytest.raises(ValueError, match="allow_from"):
        MatrixSettings("http://hs", "@bot:hs", Path("x"), allow_from=("ana",))


def test_message_helpers():
    class Ev:
        def __init__(self, content):
            self.source = {"content": content}

    assert is_edit(Ev({"body": "* hi", "m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}}))
    assert is_edit(Ev({"body": "* hi", "m.new_content": {"body": "hi"}}))
    assert not is_edit(Ev({"body": "hi", "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}}}))
    assert strip_reply_fallback("> <@ana:hs> pizza?\n> more\n\nsushi") == "sushi"
    assert strip_reply_fallback("plain > text") == "plain > text"
    assert reply_target(Ev({"body": "hi", "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}}})) == "$e"
    assert (
        reply_target(
            Ev(
                {
                    "body": "hi",
                    "m.relates_to": {
                        "rel_type": "m.thread",
                        "event_id": "$root",
                        "m.in_reply_to": {"event_id": "$last"},
                    },
                }
            )
        )
        == "$root"
    )
    assert reply_target(Ev({"body": "hi"})) is None


def test_command_errors(monkeypatch, tmp_path):
    from chimein.cli import app

    runner = CliRunner()
    args = [
        "matrix",
        "--homeserver",
        "http://127.0.0.1:9",
        "--user",
        "@bot:hs",
        "--model",
        "mention",
        "--password-env",
        "NO_SUCH_VAR_FOR_CHIMEIN",
        "--store-dir",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "NO_SUCH_VAR_FOR_CHIMEIN" in result.output
    monkeypatch.delitem(sys.modules, "chimein.connectors.matrix")
    monkeypatch.setitem(sys.modules, "nio", None)  # as if matrix-nio were not installed
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "pip install 'chimein[matrix]'" in result.output


def test_core_cli_does_not_import_nio():
    code = "import sys, chimein, chimein.cli; assert 'nio' not in sys.modules, 'nio imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
