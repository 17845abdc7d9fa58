"""Plain IRC logs: irssi, weechat, znc (chimein/importers/irc.py)."""

from tests.importers import import_error, imported, turns


def test_irssi_dates_from_log_lines_actions_events_and_the_assistant():
    result = imported("irc", "irc_irssi.log", assistant="chimein")
    first, second = turns(result)
    assert first == [
        ("kira", "anyone running zfs on a raspberry pi?"),
        ("nadia", "kira: tried it, 4GB is tight"),  # <@nadia>: the operator's @ is not part of the nick
        ("kira", "/me sighs"),
        ("kira", "chimein: how much RAM does ZFS want per TB?"),
        ("assistant", "The old 1 GB per TB rule is for dedup; without dedup 4 GB total works for a small pool."),
    ]
    # nadia became nadia_away; her "night" after midnight (Day changed) is still nadia's
    assert second == [("kira", "night all"), ("nadia", "night")]
    assert [c.meta["start"] for c in result.conversations] == ["2024-01-08T21:58", "2024-01-08T23:58"]
    assert result.skipped == {
        "joins, parts and quits": 2,
        "other events (modes, topics, netsplits)": 1,
        "nick changes (the person keeps their first nick)": 1,
        "notices": 1,
    }


def test_weechat_tab_separated_lines():
    result = imported("irc", "irc_weechat.log")
    assert turns(result) == [
        [
            ("nadia", "does anyone know if the libera webchat supports SASL?"),
            ("kira", "no idea honestly"),
            ("nadia", "/me shrugs"),
        ]
    ]
    assert result.conversations[0].meta["start"] == "2024-01-10T18:01"
    assert result.skipped == {
        "joins, parts and quits": 2,
        "other events (modes, topics, netsplits)": 1,
        "nick changes (the person keeps their first nick)": 1,
    }


def test_znc_takes_the_date_from_the_file_name():
    result = imported("irc", "irc_znc_2024-01-11.log")
    assert turns(result) == [
        [
            ("kira", "morning"),
            ("nadia", "morning kira, coffee?"),
            ("kira", "/me raises a mug"),
            ("nadia", "standup in 5"),
        ]
    ]
    assert result.conversations[0].meta["start"] == "2024-01-11T09:00"


def test_a_log_without_dates_rolls_over_midnight_and_has_no_start(tmp_path):
    log = tmp_path / "channel.log"
    log.write_text("[23:50:00] <a> late\n[23:55:00] <b> very\n[00:05:00] <a> past midnight\n")
    result = imported("irc", log)
    assert turns(result) == [[("a", "late"), ("b", "very"), ("a", "past midnight")]]  # 10 minutes, not 24 hours back
    assert "start" not in result.conversations[0].meta


def test_an_unknown_line_is_an_error_with_its_line(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("12:00 < a> hi\n12:01 < b> hello\nthis line is from nowhere\n")
    assert import_error("irc", log).startswith(f"{log}:3: line: not an IRC log line this reader knows")
