"""`chimein import` (chimein/cli/importers.py): every format's sample export becomes a file `chimein validate`
accepts; bad input is one error line and exit 2."""

import pytest
from typer.testing import CliRunner

from chimein.cli import app
from chimein.data import load_conversations
from chimein.importers import FORMATS
from tests.importers import SAMPLES

runner = CliRunner()

SAMPLE_FILES = {
    "whatsapp": ["whatsapp_android_us.txt", "whatsapp_ios_eu.txt", "whatsapp_android_de.txt", "whatsapp_ios_us.txt"],
    "telegram": ["telegram_chat.json", "telegram_full_export.json"],
    "slack": ["slack_export"],
    "discord": ["discord_homelab_help.json"],
    "matrix": ["matrix_element_export.json"],
    "irc": ["irc_irssi.log", "irc_weechat.log", "irc_znc_2024-01-11.log"],
}


@pytest.mark.parametrize("format", list(FORMATS))
def test_every_format_imports_into_a_file_validate_accepts(format, tmp_path):
    out = tmp_path / "out.jsonl"
    args = ["import", format, *(str(SAMPLES / f) for f in SAMPLE_FILES[format]), "-o", str(out), "--pseudonymize"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    conversations = load_conversations(out)
    assert conversations and f"{out}: {len(conversations)} conversations" in result.stderr
    checked = runner.invoke(app, ["validate", str(out)])
    assert checked.exit_code == 0, checked.output
    assert "skipped" in result.stderr  # every sample has lines that are not messages, counted


def test_the_report_counts_what_was_skipped_by_reason(tmp_path):
    out = tmp_path / "wa.jsonl"
    result = runner.invoke(
        app,
        ["import", "whatsapp", str(SAMPLES / "whatsapp_android_us.txt"), "-o", str(out), "--assistant", "Chimein"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "2 conversations, 10 user turns, 1 assistant turns from 11 messages (assistant: Chimein)" in result.stderr
    for reason, count in [
        ("system lines (encryption notice, joins, leaves, group changes)", 4),
        ("media omitted", 1),
        ("deleted messages", 1),
    ]:
        assert any(reason in line and f" {count} " in line for line in result.stderr.splitlines()), reason


def test_help_lists_the_formats():
    result = runner.invoke(app, ["import", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for name in FORMATS:
        assert f"{name}:" in result.output
    for option in ("--out", "--assistant", "--gap", "--max-messages", "--min-messages", "--pseudonymize", "--chat"):
        assert option in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["nosuch", "FILE"],
            "error: unknown format 'nosuch': choose one of whatsapp, telegram, slack, discord, matrix, irc",
        ),
        (["whatsapp", "MISSING"], "error: MISSING: no such file"),
        (["irc", "FILE"], "error: FILE:1: line: not an IRC log line this reader knows"),
        (["whatsapp", "FILE", "--gap", "0"], "error: --gap must be more than 0 minutes, got 0.0"),
        (
            ["discord", str(SAMPLES / "discord_homelab_help.json"), "--assistant", "nobody"],
            "error: --assistant nobody: nobody of that name wrote in the export",
        ),
        (
            ["whatsapp", str(SAMPLES / "whatsapp_ios_us.txt"), "--pseudonymize", "--phone-region", "XX"],
            "error: --phone-region XX",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(args, message, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("just some notes\n")
    missing = tmp_path / "missing.txt"
    args = [str(bad) if a == "FILE" else str(missing) if a == "MISSING" else a for a in args]
    message = message.replace("MISSING", str(missing)).replace("FILE", str(bad))
    result = runner.invoke(app, ["import", *args, "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message) and "Traceback" not in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
