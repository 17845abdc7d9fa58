"""Slack workspace exports (chimein/importers/slack.py)."""

import shutil
import zipfile

import pytest

from chimein.data import DataError
from chimein.importers.slack import plain_text
from tests.importers import SAMPLES, broken_json, import_error, imported, turns


def zipped(folder, to, top=""):
    with zipfile.ZipFile(to, "w") as z:
        for f in sorted(folder.rglob("*.json")):
            z.write(f, top + f.relative_to(folder).as_posix())
    return to


def test_the_zip_gives_channels_and_threads_with_names_for_ids(tmp_path):
    result = imported("slack", zipped(SAMPLES / "slack_export", tmp_path / "Acme Slack export.zip"))
    assert result.assistant == "chimein"  # users.json marks it is_bot
    by_chat = {
        c.meta["chat"] + " " + c.meta["start"]: [(m.name or "assistant", m.content) for m in c.messages]
        for c in result.conversations
    }
    assert by_chat == {
        "#general 2024-01-15T09:03+00:00": [
            ("priya", "lunch at the thai place? @here"),
            (
                "Mateo Alvarez",
                "sure, 12:30. docs are at the staging wiki (https://wiki.example.com/staging), "
                "ping me at mateo@example.com",
            ),
        ],
        "#general 2024-01-16T09:00+00:00": [
            ("Mateo Alvarez", "anyone seen @priya today?"),
            ("priya", "here! was at the dentist"),
        ],
        # the thread: parent, then its replies in order, the bot's reply an assistant turn
        "#general, thread 1 2024-01-15T09:01+00:00": [
            ("priya", "morning @Mateo Alvarez! is the staging db back up?"),
            ("Mateo Alvarez", "yes since 9, but the replica lags > 5 min"),
            (
                "assistant",
                "Replica lag is usually from a long-running transaction; `SELECT * FROM pg_stat_activity` shows it.",
            ),
        ],
        "#deploys 2024-01-15T10:00+00:00": [("Mateo Alvarez", "deploying api v2.3 now"), ("priya", "go for it")],
    }
    assert result.skipped == {
        "system messages (channel_join)": 1,
        "system messages (channel_topic)": 1,
        "file shares and attachments without text": 2,
    }


def test_the_unpacked_folder_and_a_zip_with_a_top_folder_read_the_same(tmp_path):
    flat = imported("slack", SAMPLES / "slack_export")
    nested = imported("slack", zipped(SAMPLES / "slack_export", tmp_path / "e.zip", top="Acme export Jan 15 2024/"))
    assert turns(flat) == turns(nested) and len(turns(flat)) == 4


def test_only_some_channels():
    result = imported("slack", SAMPLES / "slack_export", chats=["#deploys"])
    assert turns(result) == [[("Mateo Alvarez", "deploying api v2.3 now"), ("priya", "go for it")]]
    assert result.skipped["messages in chats not chosen with --chat"] == 7
    with pytest.raises(
        ValueError, match=r"--chat #random: no chat of that name in the export \(chats: #deploys, #general\)"
    ):
        imported("slack", SAMPLES / "slack_export", chats=["#random"])


@pytest.mark.parametrize(
    "text, plain",
    [
        ("hi <@U1>", "hi @Ana"),
        ("hi <@U9|old name>", "hi @old name"),
        ("see <#C1|general> and <!channel>", "see #general and @channel"),
        ("<https://x.org|docs> and <https://y.org>", "docs (https://x.org) and https://y.org"),
        ("<mailto:a@b.org|a@b.org> &lt;3 &amp; more", "a@b.org <3 & more"),
        ("<!subteam^S1|@oncall> help", "@oncall help"),
    ],
)
def test_slack_markup_becomes_plain_text(text, plain):
    assert plain_text(text, {"U1": "Ana"}) == plain


def test_a_message_without_a_user_names_the_day_file_and_line(tmp_path):
    export = tmp_path / "export"
    shutil.copytree(SAMPLES / "slack_export", export)
    day = export / "deploys" / "2024-01-15.json"
    day, line = broken_json(day, day, lambda messages: messages[1].pop("user"), '"ts": "1705312860.000200"')
    assert (
        import_error("slack", export)
        == f"{day}:{line}: messages[1].user: a message needs the id of the user who wrote it"
    )


def test_not_a_slack_export(tmp_path):
    with pytest.raises(DataError, match="users.json: missing"):
        imported("slack", zipped(SAMPLES / "slack_export" / "general", tmp_path / "x.zip"))
    (tmp_path / "y.zip").write_text("not a zip")
    with pytest.raises(DataError, match="not a zip file"):
        imported("slack", tmp_path / "y.zip")
