"""The README's worked example (examples/climbing-club/): the shipped WhatsApp export imports into the
conversations the README shows, and the labelling step on it (`chimein label`, then the member's recorded labels
replayed) writes a dataset `chimein validate` accepts. Training on it is tested in tests/test_finetune.py."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from chimein.cli import app
from chimein.data import load_conversations

EXAMPLE = Path(__file__).parents[1] / "examples" / "climbing-club"
EXPORT = EXAMPLE / "WhatsApp Chat with Crux Climbing Club.txt"
PEOPLE = ("Maya", "Tomasz", "Priya R", "Dev", "Hannah", "Luis")

runner = CliRunner()


def imported(tmp_path):
    out = tmp_path / "club.jsonl"
    result = runner.invoke(
        app, ["import", "whatsapp", str(EXPORT), "--assistant", "Bolt", "--pseudonymize", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out, result


def replies_after(conversations, text):
    """The reply after the user message ``text`` (None: silence), in the one conversation that has it."""
    (found,) = [
        reply.content if reply else None
        for c in conversations
        for i, reply in c.decisions()
        if c.messages[i].content == text
    ]
    return found


def test_the_export_imports_into_the_conversations_the_readme_shows(tmp_path):
    out, result = imported(tmp_path)
    assert f"{out}: 63 conversations, 390 user turns, 33 assistant turns from 424 messages (assistant: Bolt)" in (
        result.stderr
    )
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    conversations = load_conversations(out)
    names = {m.name for c in conversations for m in c.messages if m.role == "user"}
    assert len(names) == 6 and not names & set(PEOPLE)  # pseudonyms for all six members
    text = out.read_text()
    assert "maya.okafor@example.org" not in text and "<email>" in text
    # the group's habit: Bolt is asked by its name, which the shipped default's rules do not know
    assert replies_after(conversations, "Bolt, what's a EU 42 in UK sizes?").startswith("EU 42 is about a UK 8")
    assert replies_after(conversations, "thanks Bolt") == "You're welcome! Have a great trip! 🧗"
    assert replies_after(conversations, "Bolt, you there? what do banks usually charge for a club account?") is None


def test_labelling_the_example_writes_a_dataset_validate_accepts(tmp_path):
    club, _ = imported(tmp_path)
    labels = tmp_path / "club.labels.jsonl"
    # `mention` proposes without a model (the README's run used the shipped default); q quits at the first turn
    first = runner.invoke(app, ["label", str(club), "-o", str(labels), "--model", "mention"], input="q")
    assert first.exit_code == 0, first.output
    replay = [sys.executable, str(EXAMPLE / "replay_labels.py"), str(club), str(labels)]
    done = subprocess.run(replay, capture_output=True, text=True, check=True)
    assert "63 conversations, 40 turns labelled" in done.stdout
    assert runner.invoke(app, ["validate", str(labels)]).exit_code == 0
    conversations = load_conversations(labels)
    recorded = [json.loads(line) for line in (EXAMPLE / "labels.jsonl").read_text().splitlines()]
    by_id = {c.meta["id"]: dict(c.decisions()) for c in conversations}
    for label in recorded:  # every recorded label is in the dataset
        reply = by_id[label["id"]][label["message"]]
        assert (reply.content if reply else "") == label["reply"]
    # a turn nobody labelled keeps Bolt's answer from the chat
    permit = replies_after(conversations, "Bolt, do we need a permit to boulder in Fontainebleau?")
    assert permit.startswith("No, bouldering in the forest is free")
    again = subprocess.run(replay, capture_output=True, text=True, check=True)  # replaying twice changes nothing
    assert again.stdout == done.stdout


def test_replaying_labels_on_other_input_is_one_error_line(tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(
        json.dumps({"id": "x", "messages": [{"role": "user", "name": "Ana", "content": "hi"}]}) + "\n",
        encoding="utf-8",
    )
    labels = tmp_path / "o.labels.jsonl"
    assert runner.invoke(app, ["label", str(other), "-o", str(labels), "--model", "mention"], input="q").exit_code == 0
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "replay_labels.py"), str(other), str(labels)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "labels.jsonl:1: id: no such turn" in done.stderr
