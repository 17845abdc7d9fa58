"""Windows at time gaps and the assistant's turns, the same for every format (chimein/importers/common.py)."""

from datetime import datetime, timedelta

import pytest

from chimein.importers.common import Chat, ChatMessage, Export, WindowOptions, find_assistant, to_conversations

T0 = datetime(2024, 5, 1, 12, 0)


def chat(*lines: tuple[float, str, str], bot: str | None = None) -> Export:
    """lines: (minutes after T0, author, text)."""
    messages = [ChatMessage(a, t, T0 + timedelta(minutes=m), bot=a == bot) for m, a, t in lines]
    return Export(chats=[Chat("room", messages)])


def shapes(export: Export, **options):
    opts = WindowOptions(**options)
    conversations, left_out = to_conversations(export, opts, find_assistant(export, opts.assistant))
    return [[(m.name or "assistant", m.content) for m in c.messages] for c in conversations], left_out


def test_a_silence_longer_than_the_gap_starts_a_new_conversation():
    export = chat((0, "Ana", "a"), (30, "Ben", "b"), (95, "Ana", "c"), (100, "Ben", "d"))
    assert shapes(export)[0] == [[("Ana", "a"), ("Ben", "b")], [("Ana", "c"), ("Ben", "d")]]
    assert shapes(export, gap_minutes=90)[0] == [[("Ana", "a"), ("Ben", "b"), ("Ana", "c"), ("Ben", "d")]]


def test_a_long_stretch_is_cut_at_max_messages():
    export = chat(*[(i, "Ana" if i % 2 else "Ben", str(i)) for i in range(7)])
    got, _ = shapes(export, max_messages=3)
    assert [len(c) for c in got] == [3, 3]  # the last window of one is under --min-messages 2


def test_the_assistants_turns_silences_joined_replies_and_a_window_opened_by_the_bot():
    export = chat(
        (0, "bot", "morning digest"),
        (1, "Ana", "bot, weather?"),
        (1.1, "bot", "Sunny,"),
        (1.2, "bot", "22 degrees."),
        (2, "Ben", "nice"),
        bot="bot",
    )
    got, left_out = shapes(export)
    # a conversation starts with a user; two bot messages in a row are one turn; Ben's message: a silence
    assert got == [[("Ana", "bot, weather?"), ("assistant", "Sunny,\n22 degrees."), ("Ben", "nice")]]
    assert left_out == {
        "assistant messages opening a window (a conversation starts with a user)": 1,
        "assistant messages joined to the one before (kept, as one turn)": 1,
    }


def test_ids_are_digests_of_what_a_conversation_says_and_never_repeat():
    export = chat(
        (0, "Ana", "hi"),
        (1, "Ben", "hi"),
        (200, "Ana", "hi"),
        (201, "Ben", "hi"),
        (400, "Ana", "other"),
        (401, "Ben", "text"),
    )
    ids = [c.meta["id"] for c in to_conversations(export, WindowOptions(), None, id_prefix="irc")[0]]
    assert ids[1] == ids[0] + "-2" and ids[2] != ids[0] and all(i.startswith("irc-") for i in ids)
    assert ids == [c.meta["id"] for c in to_conversations(export, WindowOptions(), None, id_prefix="irc")[0]]


def test_short_windows_are_counted_not_silently_dropped():
    export = chat((0, "Ana", "anyone?"), (200, "Ben", "hi"), (201, "Ana", "hey"))
    got, left_out = shapes(export)
    assert got == [[("Ben", "hi"), ("Ana", "hey")]]
    assert left_out == {"messages in windows shorter than --min-messages 2": 1}


def test_the_assistant_must_be_someone_in_the_export():
    with pytest.raises(
        ValueError, match=r"--assistant Zed: nobody of that name wrote in the export \(authors: Ana, Ben\)"
    ):
        shapes(chat((0, "Ana", "a"), (1, "Ben", "b")), assistant="Zed")


@pytest.mark.parametrize(
    "options, flag",
    [({"gap_minutes": 0}, "--gap"), ({"max_messages": 1}, "--max-messages"), ({"min_messages": 50}, "--min-messages")],
)
def test_bad_window_options_name_the_flag(options, flag):
    with pytest.raises(ValueError, match=flag):
        WindowOptions(**options)
