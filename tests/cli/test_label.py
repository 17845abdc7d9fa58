"""`chimein label` in the terminal: keys fed through the runner; quitting and running again resumes."""

import json

from typer.testing import CliRunner

from chimein.cli import app
from chimein.data import read_conversations
from tests.helpers import write_jsonl

CHAT = {
    "id": "c1",
    "messages": [
        {"role": "user", "name": "Ana", "content": "pizza tonight?"},
        {"role": "user", "name": "Ben", "content": "bot, what's 2+2?"},
        {"role": "user", "name": "Ana", "content": "thx"},
    ],
}


def test_label_in_the_terminal_quit_and_resume(tmp_path):
    data = write_jsonl(tmp_path / "mine.jsonl", [CHAT])
    out = tmp_path / "labels.jsonl"
    command = ["label", str(data), "-o", str(out), "--model", "mention"]
    # mention gives no p_speak: every turn is as unsure as the next, so they come in reading order
    first = CliRunner().invoke(app, command, input="ye" + "Four.\n" + "q")
    assert first.exit_code == 0, first.output
    assert "model: speak" in first.output and "saved; run the same command again" in first.output
    convs, problems = read_conversations(out)
    assert problems == []
    assert [(m.role, m.content) for m in convs[0].messages] == [
        ("user", "pizza tonight?"),
        ("user", "bot, what's 2+2?"),
        ("assistant", "Four."),
        ("user", "thx"),
    ]
    assert "1 silences accepted" in first.output.replace("\n", " ")

    second = CliRunner().invoke(app, command, input="n" + "You're welcome!\n")
    assert second.exit_code == 0, second.output
    assert "every turn is labelled" in second.output
    convs, _ = read_conversations(out)
    assert convs[0].messages[-1].content == "You're welcome!"
    events = [json.loads(line) for line in (tmp_path / "labels.jsonl.progress.jsonl").read_text().splitlines()]
    assert sum("proposal" in e for e in events) == 3  # the model was not asked again
    assert sum("label" in e for e in events) == 3


def test_label_refuses_bad_input_with_one_error_line(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(
        app, ["label", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--model", "mention"]
    )
    assert missing.exit_code == 2 and missing.output.startswith("error: ") and "nope.jsonl" in missing.output
    data = write_jsonl(tmp_path / "mine.jsonl", [CHAT])
    out = tmp_path / "o.jsonl"
    runner.invoke(app, ["label", str(data), "-o", str(out), "--model", "mention"], input="q")
    other = runner.invoke(app, ["label", str(data), "-o", str(out), "--model", "silent"], input="q")
    assert other.exit_code == 2 and "o.jsonl.progress.jsonl:1: header:" in other.output
