"""Telegram Desktop's JSON export (chimein/importers/telegram.py)."""

import re

from tests.importers import SAMPLES, broken_json, import_error, imported, turns


def test_one_chat_text_as_string_or_entity_list_service_and_media_skipped():
    result = imported("telegram", "telegram_chat.json", assistant="Chimein Bot")
    (conversation,) = turns(result)
    assert conversation == [
        ("Marta Nowak", "who's bringing Catan on friday?"),
        ("Tomasz", "@marta_n I can, and Ticket to Ride too"),  # entities joined in order
        ("Marta Nowak", "/ask how long does a game of Catan take?"),
        ("assistant", "Usually 60 to 120 minutes with 3-4 players."),
        ("Deleted Account", "count me in"),  # "from": null
    ]
    meta = dict(result.conversations[0].meta)
    assert re.fullmatch(r"telegram-[0-9a-f]{10}", meta.pop("id"))
    assert meta == {"chat": "Board games night", "start": "2024-02-09T19:01+00:00"}
    # the next day's lone message is a window of one: counted, not written
    assert result.skipped == {
        "service messages (joins, pins, title changes, calls)": 2,
        "media without a caption": 2,
        "messages in windows shorter than --min-messages 2": 1,
    }


def test_the_assistant_can_be_named_by_its_from_id():
    result = imported("telegram", "telegram_chat.json", assistant="user7000000001")
    assert result.assistant == "Chimein Bot"


def test_a_full_export_gives_every_chat_and_can_be_narrowed_to_some():
    everything = imported("telegram", "telegram_full_export.json")
    assert [c.meta["chat"] for c in everything.conversations] == ["Tomasz", "Climbing crew"]
    one = imported("telegram", "telegram_full_export.json", chats=["climbing crew"])
    assert turns(one) == [[("Ola", "wall is open till 22 today"), ("Marta Nowak", "see you at 7")]]
    assert one.skipped["messages in chats not chosen with --chat"] == 2


def test_a_message_of_the_wrong_shape_names_its_line_and_field(tmp_path):
    bad, line = broken_json(
        SAMPLES / "telegram_chat.json",
        tmp_path / "result.json",
        lambda data: data["messages"][2].update(text=42),
        '"id": 3,',
    )
    assert import_error("telegram", bad) == f"{bad}:{line}: chat.messages[2].text: must be a string or a list, got int"


def test_not_json_is_one_error(tmp_path):
    bad = tmp_path / "result.json"
    bad.write_text('{"name": "x",\n "messages": [}')
    assert import_error("telegram", bad).startswith(f"{bad}:2: json: invalid JSON")
