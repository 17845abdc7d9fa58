"""Room controls (assistant/policy.py) on a deterministic backend: one test per rule, each fails when it breaks."""

import pytest

from chimein.assistant.core import Assistant, Decision
from chimein.assistant.policy import (
    BURST_REASON,
    Heard,
    hear,
    hear_burst,
    PolicyError,
    RoomGate,
    RoomPolicy,
    apply_command,
    parse_command,
    parse_cooldown,
    parse_duration,
)
from tests.helpers import ScriptedBackend

T0 = 1_000_000.0


def room(policy: RoomPolicy, table: dict[str, float]):
    backend = ScriptedBackend(p_speak=lambda text: table.get(text, 0.0), reply=lambda _: "a reply " * 200)
    bot, gate = Assistant(backend), RoomGate(policy)

    def say(name: str, text: str, at: float = T0, now: float | None = None, **kw) -> Decision:
        return hear(bot, gate, Heard(name, text, at, **kw), now=at if now is None else now)

    return say, backend, bot


def test_auto_mode_speaks_on_p_speak_and_says_why():
    say, _, _ = room(RoomPolicy(), {"no clue tbh": 0.8})
    d = say("Ben", "no clue tbh")
    assert d.speak and d.reason == "p_speak 0.80 >= 0.50"  # the threshold in force: the model's own here
    d = say("Ana", "pizza?")
    assert not d.speak and d.reason == "p_speak 0.00 < 0.50"
    say, _, _ = room(RoomPolicy(eagerness=0.3), {"no clue tbh": 0.4})
    assert say("Ben", "no clue tbh").reason == "p_speak 0.40 >= 0.30"  # the room's eagerness


def test_a_burst_is_decided_once_on_the_question_asked_early_in_it():
    say, backend, bot = room(RoomPolicy(mode="mention-only"), {})
    burst = [Heard("Ana", "bot, what time is it in lisbon?", T0), Heard("Ana", "also hi everyone", T0 + 0.5)]
    first, last = hear_burst(bot, RoomGate(RoomPolicy(mode="mention-only")), burst, now=T0 + 1)
    assert first.speak and first.reason == "addressed"  # the question is answered, though the latest does not ask it
    assert last.reason == BURST_REASON and not last.speak
    assert len(backend.calls) == 1 and backend.calls[0][0][-1] == burst[0].text  # one decision, on the question
    assert [m.content for m in bot.history[-3:]] == [burst[0].text, first.text, burst[1].text]  # the reply follows it


def test_each_message_of_a_burst_counts_for_the_min_gap():
    backend = ScriptedBackend(p_speak=lambda text: 0.9 if text == "no idea" else 0.0)
    bot, gate = Assistant(backend), RoomGate(RoomPolicy(min_gap=3))
    assert hear(bot, gate, Heard("A", "no idea", T0), now=T0).speak
    too_soon = hear_burst(bot, gate, [Heard("B", "hm", T0 + 1), Heard("C", "no idea", T0 + 2)], now=T0 + 2)[-1]
    assert not too_soon.speak and too_soon.reason.startswith("min gap: 2")
    later = hear_burst(bot, gate, [Heard("B", "ok", T0 + 3), Heard("C", "no idea", T0 + 4)], now=T0 + 4)[-1]
    assert later.speak  # four user messages since the last interjection


def test_mention_only_decides_only_when_addressed_and_the_model_still_writes():
    say, backend, bot = room(RoomPolicy(mode="mention-only"), {"no clue tbh": 0.99})
    assert not say("Ben", "no clue tbh").speak and len(backend.calls) == 0
    d = say("Ana", "bot, what's the capital of peru?")
    assert d.speak and d.reason == "addressed" and d.text.startswith("a reply")
    # the unanswered message is still in the history the model saw
    assert "no clue tbh" in backend.calls[-1][0]


def test_quiet_until_a_time_then_back_to_auto():
    say, _, _ = room(RoomPolicy(mode="quiet", quiet_until=T0 + 600), {"no clue": 0.9})
    d = say("Ben", "bot, are you there?", at=T0 + 10)
    assert not d.speak and d.reason == "quiet"
    assert say("Ben", "bot, are you there?", at=T0 + 601).speak


def test_a_stale_message_is_heard_never_answered():
    say, _, bot = room(RoomPolicy(stale_after_s=60), {})
    d = say("Ana", "bot, what's 2+2?", at=T0, now=T0 + 61)
    assert not d.speak and d.reason.startswith("stale") and bot.history[-1].content == "bot, what's 2+2?"


def test_cooldown_holds_back_unprompted_replies_but_not_direct_questions():
    say, _, _ = room(RoomPolicy(cooldown=(2, 10.0)), {"idk": 0.9, "no idea": 0.9, "not sure": 0.9})
    assert say("A", "idk", at=T0).speak
    assert say("B", "no idea", at=T0 + 60).speak
    held = say("C", "not sure", at=T0 + 120)
    assert not held.speak and held.reason.startswith("cooldown") and "0.90" in held.reason
    assert say("A", "bot, who is right?", at=T0 + 130).speak  # addressed: the cooldown does not apply
    assert say("C", "not sure", at=T0 + 11 * 60).speak  # the window has passed


def test_min_gap_between_unprompted_interjections():
    say, _, _ = room(RoomPolicy(min_gap=3), {"idk": 0.9})
    assert say("A", "idk").speak
    assert not say("B", "idk").speak and not say("C", "idk").speak
    assert say("A", "idk").speak


def test_reply_length_is_capped_at_a_sentence_end_when_possible():
    say, _, _ = room(RoomPolicy(max_reply_chars=100), {"idk": 0.9})
    d = say("A", "idk")
    assert d.speak and len(d.text) <= 103


def test_other_bots_never_trigger_an_interjection_and_a_bot_exchange_stops():
    say, _, _ = room(RoomPolicy(bot_turns=2), {"beep": 0.99})
    assert not say("otherbot", "beep", from_bot=True).speak
    assert say("otherbot", "bot, are you a bot?", from_bot=True).speak
    assert say("otherbot", "bot, really?", from_bot=True).speak
    stopped = say("otherbot", "bot, really really?", from_bot=True)
    assert not stopped.speak and stopped.reason.startswith("loop guard")
    say("Ana", "lol")  # a person speaks: the count starts again
    assert say("otherbot", "bot, still there?", from_bot=True).speak


def test_a_reply_to_the_assistant_counts_as_addressing_it():
    say, _, _ = room(RoomPolicy(mode="mention-only"), {})
    d = say("Ana", "and in winter?", reply_to_assistant=True)
    assert d.speak and d.reason == "reply to assistant"
    assert not say("Ana", "and in winter?").speak


def test_commands_parse_apply_and_refuse_bad_values():
    policy = RoomPolicy()
    assert parse_command("hello") is None and parse_command("!chimein").name == "status"
    quiet, answer = apply_command(policy, parse_command("!chimein quiet 30m"), "Ana", now=T0)
    assert quiet.mode == "quiet" and quiet.quiet_until == T0 + 1800 and quiet.changed_by == "Ana" and "quiet" in answer
    assert apply_command(quiet, parse_command("!chimein resume"), "Ben", now=T0)[0].mode == "auto"
    assert apply_command(policy, parse_command("!chimein mode mention-only"), "Ana")[0].mode == "mention-only"
    assert apply_command(policy, parse_command("!chimein eagerness 0.3"), "Ana")[0].eagerness == 0.3
    assert apply_command(policy, parse_command("!chimein cooldown 3/10m"), "Ana")[0].cooldown == (3, 10.0)
    assert apply_command(policy, parse_command("!chimein min-gap 4"), "Ana")[0].min_gap == 4
    status, line = apply_command(quiet, parse_command("!chimein status"), "Cy", now=T0 + 60)
    assert status is quiet and "quiet for 29 more min" in line and "last changed by Ana" in line
    for bad in (
        "!chimein eagerness 5",
        "!chimein mode loud",
        "!chimein cooldown lots",
        "!chimein min-gap -1",
        "!chimein dance",
    ):
        with pytest.raises(PolicyError):
            apply_command(policy, parse_command(bad), "Ana")


def test_policy_round_trips_through_json_and_validates():
    p = RoomPolicy(mode="quiet", quiet_until=T0, eagerness=0.4, cooldown=(3, 10.0), min_gap=2)
    assert RoomPolicy.from_json(p.to_json()) == p
    with pytest.raises(PolicyError):
        RoomPolicy(eagerness=1.5)
    assert parse_duration("2h") == 7200 and parse_duration("90s") == 90 and parse_cooldown("1/1h") == (1, 60.0)
