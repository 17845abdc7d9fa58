"""DiscordChatExporter JSON (chimein/importers/discord.py)."""

import json

import pytest

from tests.importers import SAMPLES, broken_json, import_error, imported, turns


def test_nicknames_replies_mentions_and_the_bot_account_as_the_assistant():
    result = imported("discord", "discord_homelab_help.json")
    assert result.assistant == "chimein"  # the only isBot author, no --assistant needed
    (conversation,) = turns(result)
    assert conversation == [
        ("Kira", "is btrfs stable enough for a NAS these days?"),  # the server nickname, not kira_k
        ("devin.r", "@Kira raid1 is fine, avoid raid5/6"),
        ("Kira", "@chimein what's the default btrfs scrub interval on fedora?"),  # <@900> resolved from mentions
        (
            "assistant",
            "Fedora ships a btrfs-scrub timer but leaves it off; enable it with "
            "`systemctl enable --now btrfs-scrub@-.timer` (monthly).",
        ),
        ("Kira", "thanks both, devin.r you saved my weekend"),
    ]
    assert result.conversations[0].meta["chat"] == "Homelab / #help"
    assert result.skipped == {
        "system messages (GuildMemberJoin)": 1,
        "system messages (ChannelPinnedMessage)": 1,
        "attachments, stickers or embeds without text": 1,
    }


def test_two_bot_accounts_need_assistant(tmp_path):
    data = json.loads((SAMPLES / "discord_homelab_help.json").read_text())
    data["messages"][1]["author"] = {
        **data["messages"][1]["author"],
        "name": "MEE6",
        "nickname": None,
        "isBot": True,
        "id": "77",
    }
    two = tmp_path / "two.json"
    two.write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"2 bot accounts \(MEE6, chimein\): say which one is the assistant with --assistant"
    ):
        imported("discord", two)
    result = imported("discord", two, assistant="chimein")
    assert ("MEE6", "is btrfs stable enough for a NAS these days?") in turns(result)[0]  # another bot: a user turn


def test_an_author_missing_names_the_message(tmp_path):
    bad, line = broken_json(
        SAMPLES / "discord_homelab_help.json",
        tmp_path / "bad.json",
        lambda data: data["messages"][4].pop("author"),
        '"id": "1224005"',
    )
    assert import_error("discord", bad) == f"{bad}:{line}: messages[4].author: must be an object, got null"
