"""Element's JSON export of a Matrix room (chimein/importers/matrix.py)."""

from tests.importers import SAMPLES, broken_json, import_error, imported, turns


def test_display_names_reply_fallbacks_edits_emotes_and_the_notice_bot():
    result = imported("matrix", "matrix_element_export.json")
    assert result.assistant == "chimein"  # it sends m.notice: a bot account
    (conversation,) = turns(result)
    assert conversation == [
        ("Lena", "why does the borrow checker reject my loop?"),
        ("Omar H.", "paste the error? probably a mutable borrow held across iterations"),  # quote removed
        ("Lena", "chimein: what does E0499 mean?"),
        ("assistant", "E0499: a value was borrowed mutably more than once at the same time."),
        ("Omar H.", "/me nods"),
        ("Omar H.", "use iter_mut instead"),  # the edit's text
        ("Lena", "thanks Omar, that fixed it"),
    ]
    assert result.skipped == {
        "state events, reactions and stickers": 4,
        "images, files, audio and video": 1,
        "edits (applied to the message they edit)": 1,
        "redacted (deleted) messages": 1,
        "undecryptable events": 1,
    }


def test_the_assistant_by_matrix_id(tmp_path):
    result = imported("matrix", "matrix_element_export.json", assistant="@omar:matrix.org")
    assert result.assistant == "Omar H."
    assert turns(result)[0][1] == ("assistant", "paste the error? probably a mutable borrow held across iterations")


def test_a_message_without_a_sender_names_its_line(tmp_path):
    bad, line = broken_json(
        SAMPLES / "matrix_element_export.json",
        tmp_path / "export.json",
        lambda data: data["messages"][3].pop("sender"),
        '"event_id": "$e1"',
    )
    assert import_error("matrix", bad) == f"{bad}:{line}: messages[3].sender: must be a string, got null"
