"""The context window: long histories are cut before any model work, in time linear in their length."""

from __future__ import annotations

from chimein.assistant.window import fit_window
from chimein.data import Message


def chat(n: int, text: str = "message about the trip to lisbon") -> list[Message]:
    return [Message("user", f"{i} {text}", ["Ana", "Ben", "Caro"][i % 3]) for i in range(n)]


class CountingRender:
    """Ten tokens per message; counts how many messages were rendered in all."""

    def __init__(self) -> None:
        self.calls, self.rendered = 0, 0

    def __call__(self, messages: list[Message]) -> list[int]:
        self.calls += 1
        self.rendered += len(messages)
        return [0] * (10 * len(messages))


def test_a_huge_history_renders_only_about_a_window():
    render = CountingRender()
    start, ids = fit_window(chat(10_000), 0, render, budget=400)
    assert len(ids) <= 400 * 3 // 4 and 10_000 - start == len(ids) // 10
    assert render.calls <= 12  # a bisection, not one render per dropped message
    assert render.rendered <= 12 * 400 // 2  # never more than a window's worth of messages per render


def test_the_window_keeps_as_much_as_fits_in_three_quarters():
    start, ids = fit_window(chat(100), 0, CountingRender(), budget=400)
    assert len(ids) == 300 and start == 70


def test_a_history_that_fits_is_kept_whole_and_rendered_once():
    render = CountingRender()
    assert fit_window(chat(30), 0, render, budget=400) == (0, [0] * 300)
    assert render.calls == 1


def test_long_messages_are_cut_by_characters_before_rendering():
    render = CountingRender()
    msgs = chat(2_000, "x" * 5_000)  # 10 MB of text; each message is far longer than its ten "tokens"
    start, ids = fit_window(msgs, 0, render, budget=400)
    assert render.rendered <= 12 * 2  # 400 tokens x 16 characters hold at most two such messages
    assert start >= 1_998 and len(ids) <= 400


def test_only_the_newest_message_left_is_cut_from_its_beginning():
    ids_of = lambda ms: list(range(1000 * len(ms)))  # noqa: E731 - every message overflows alone
    start, ids = fit_window(chat(5), 0, ids_of, budget=400)
    assert start == 3 and ids == list(range(2000))[-400:]


def test_the_overflow_policy_rebuilds_rarely():
    """Each overflow drops the oldest turns down to 3/4 of the budget, so rebuilds are rare."""
    msgs = chat(200)
    tokens = lambda ms: [0] * (10 * len(ms))  # noqa: E731 - ten tokens per message
    start, rebuilds = 0, 0
    for i in range(len(msgs)):
        new_start, ids = fit_window(msgs[: i + 1], start, tokens, budget=400)
        rebuilds += new_start != start
        start = new_start
        assert len(ids) <= 400
    assert start > 0
    assert rebuilds <= 200 // 9  # one per ~10 messages (a quarter of the budget), never one per message
