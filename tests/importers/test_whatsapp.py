"""WhatsApp "Export chat" text (chimein/importers/whatsapp.py)."""

import zipfile

import pytest

from chimein.importers.whatsapp import date_order
from tests.importers import SAMPLES, import_error, imported, turns

SYSTEM = "system lines (encryption notice, joins, leaves, group changes)"


def test_android_us_dates_12_hour_times_multi_line_messages_and_the_assistant():
    result = imported("whatsapp", "whatsapp_android_us.txt", assistant="Chimein")
    first, second = turns(result)
    assert first[0] == ("Ana Lima", "ok so flights are booked for the 14th")
    assert (
        "+1 415 555 2671",
        "that's the hotel, check-in from 3pm\nit has a rooftop pool\nand breakfast is included",
    ) in first
    ask = first.index(("Ben", "Chimein, how much is a metro ticket in Lisbon?"))
    assert first[ask + 1][0] == "assistant" and first[ask + 1][1].startswith("A single Carris/Metro ticket")
    assert first[-1] == ("Ana Lima", "Ben, can you mail the booking to ana.lima@example.com")  # the edit note is gone
    # 8:12 PM on the 30th, then 9:41 AM on the 31st: two conversations (M/D/Y, since 31 can only be a day)
    assert result.conversations[0].meta["start"] == "2023-12-30T20:05"
    assert result.conversations[1].meta["start"] == "2023-12-31T09:41"
    assert second[0] == ("Ben", "morning! did anyone check the weather for the 14th?")
    assert result.skipped == {SYSTEM: 4, "media omitted": 1, "deleted messages": 1}
    assert result.messages_read == 11 and result.assistant == "Chimein"


def test_ios_european_dates_invisible_marks_and_media():
    result = imported("whatsapp", "whatsapp_ios_eu.txt")
    (conversation,) = turns(result)
    assert conversation[0] == ("Mãe", "Feliz ano novo a todos!! 🎆")
    assert ("Sofia", "que lindo\nquem tirou a foto?") in conversation
    assert all("omitted" not in text and "attached" not in text for _, text in conversation)
    assert result.conversations[0].meta["start"] == "2023-12-31T21:41"
    assert result.skipped == {SYSTEM: 2, "media omitted": 3, "deleted messages": 1}
    assert result.assistant is None  # no bot in the chat: every turn is a silence, ready to label


def test_android_german_dotted_dates_and_german_system_lines():
    result = imported("whatsapp", "whatsapp_android_de.txt")
    assert turns(result) == [
        [
            ("Jonas", "wer bringt morgen den Beamer mit?"),
            ("Lea", "ich, aber das HDMI-Kabel fehlt"),
            ("Jonas", "ok ich kauf eins"),
        ]
    ]
    assert result.conversations[0].meta["start"] == "2024-01-03T18:21"
    assert result.skipped == {SYSTEM: 2, "media omitted": 1, "deleted messages": 1}


def test_ios_us_narrow_space_before_pm_and_midnight():
    result = imported("whatsapp", "whatsapp_ios_us.txt")
    # 7:17 PM, then 11:58 PM (a gap of hours: a new conversation), then 12:01 AM the next day (3 minutes later)
    assert [c.meta["start"] for c in result.conversations] == ["2024-01-05T19:15", "2024-01-05T23:58"]
    assert turns(result)[1] == [("Kira", "btw the gym closes at 8 on weekends"), ("Sam", "good to know")]


@pytest.mark.parametrize(
    "dates, twelve_hour, order",
    [
        ([("31", "/", "12", "23")], False, "dmy"),
        ([("12", "/", "31", "23")], True, "mdy"),
        ([("1", "/", "5", "24")], True, "mdy"),  # all ambiguous, US style: month first
        ([("1", "/", "5", "24")], False, "dmy"),  # all ambiguous, 24-hour clock: day first
        ([("1", ".", "5", "24")], True, "dmy"),
        ([("2024", "-", "01", "05")], False, "ymd"),
        ([("3", "/", "4", "24"), ("13", "/", "4", "24")], True, "dmy"),  # one date settles the whole file
    ],
)
def test_the_day_month_order_comes_from_the_whole_file(dates, twelve_hour, order):
    assert date_order(dates, twelve_hour) == order


def test_a_file_that_is_not_a_whatsapp_export_is_one_error_with_its_line(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("\nshopping list\n12/30/23, 8:05 PM - Ana: hi\n")
    assert import_error("whatsapp", notes).startswith(f"{notes}:2: line: not a WhatsApp message line")


def test_an_impossible_date_names_the_line(tmp_path):
    bad = tmp_path / "chat.txt"
    bad.write_text("12/30/23, 8:05 PM - Ana: hi\n12/32/23, 8:06 PM - Ben: hey\n")
    assert import_error("whatsapp", bad).startswith(f"{bad}:2: date:")


def test_the_zip_a_phone_shares_reads_like_its_text(tmp_path):
    shared = tmp_path / "WhatsApp Chat - Lisbon trip.zip"
    with zipfile.ZipFile(shared, "w") as z:
        z.write(SAMPLES / "whatsapp_ios_eu.txt", "_chat.txt")
        z.writestr("00000012-PHOTO-2023-12-31-21-42-10.jpg", b"\xff\xd8")
    assert turns(imported("whatsapp", shared)) == turns(imported("whatsapp", "whatsapp_ios_eu.txt"))
