"""The labels of the README's worked example, replayed: the 40 turns a club member labelled first in
`chimein label` (the least sure ones), kept in ``labels.jsonl`` beside this script so the example can be run
again without pressing the keys.

    chimein label club.jsonl -o club.labels.jsonl          # the model proposes; press q when it shows the first turn
    python examples/climbing-club/replay_labels.py club.jsonl club.labels.jsonl

It opens the session that `chimein label` left in ``club.labels.jsonl.progress.jsonl``, gives each labelled
turn the label the member gave (found by conversation id and message index, checked against the message's
text), and writes the dataset as `chimein label` does: `chimein label club.jsonl -o club.labels.jsonl` goes on
from there. ``labels.jsonl``: one line per turn, ``{"id", "message", "text", "speak", "reply"}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from chimein.data import load_conversations
from chimein.label.session import LabelSession, progress_path

LABELS = Path(__file__).with_name("labels.jsonl")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def replay(input_file: Path, output: Path, labels: Path = LABELS) -> str:
    conversations = load_conversations(input_file)
    progress = progress_path(output)
    if not progress.exists():
        fail(f"{progress}: no labelling session; run `chimein label {input_file} -o {output}` first")
    header = json.loads(progress.read_text(encoding="utf-8").splitlines()[0])["header"]
    session = LabelSession.open(conversations, progress, header, header["threshold"])
    where = {c.meta["id"]: n for n, c in enumerate(conversations)}
    for line_number, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), 1):
        label = json.loads(line)
        n = where.get(label["id"])
        messages = conversations[n].messages if n is not None else []
        if label["message"] >= len(messages) or messages[label["message"]].content != label["text"]:
            fail(f"{labels}:{line_number}: id: no such turn in {input_file}: {label['text']!r}")
        if (n, label["message"]) not in session.labels:  # labelled already: a second run changes nothing
            session.label((n, label["message"]), label["speak"], label["reply"])
    written = session.write(output)
    return (
        f"{output}: {written.conversations} conversations, {written.labelled} turns labelled, "
        f"{written.kept_replies} replies kept from the chat, {written.accepted_silences} silences accepted "
        f"from the model, {written.cut_turns} turns cut"
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: python examples/climbing-club/replay_labels.py IN.jsonl OUT.jsonl")
    print(replay(Path(sys.argv[1]), Path(sys.argv[2])))
