"""Labelling a group's own chats: the model's proposals, the person's labels, the queue, resuming, the dataset.

    session = LabelSession.open(conversations, "mine.labels.progress.jsonl", fingerprint, threshold=0.7)
    # proposals come from chimein.label.propose (the model); then, one key at a time:
    turn = session.current()           # the least sure turn not labelled yet
    session.accept(turn)               # y: the model's proposal stands
    session.label(turn, True, "...")   # e: speak with this reply; session.label(turn, False): silence
    session.skip(turn); session.undo()
    session.write("mine.labels.jsonl") # a dataset `chimein validate` accepts

Every proposal and every label is appended to the progress file (JSON lines, flushed at once), so a killed
session resumes where it stopped: proposals are not asked of the model again, labels and undos are replayed.

The dataset: each conversation's user messages with, after each, the person's label (silence, or the
confirmed reply). A turn the person did not reach keeps the reply the chat already held there (a bot's message
in an export: the group's own record, not the model's guess); else it takes the model's proposal when that
proposal is silence (``accept_silences``: the queue shows the least sure turns first, so the ones left are the
ones the model is surest about); a speak proposal nobody confirmed is never written (its draft is the model's
own reply). A conversation is cut before its first turn without a label (``Written`` counts what was cut).

This module needs no model: the server's labelling page imports it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from chimein.data import Conversation, Message, conversation_to_line


@dataclass(frozen=True)
class Proposal:
    """The model's proposal for one user turn: ``turn`` is the user message's index in its conversation."""

    conversation: int
    turn: int
    speak: bool
    p_speak: float | None
    draft: str = ""  # the model's reply when it proposes to speak

    @property
    def key(self) -> tuple[int, int]:
        return self.conversation, self.turn


@dataclass(frozen=True)
class Label:
    conversation: int
    turn: int
    speak: bool
    text: str = ""

    def __post_init__(self) -> None:
        if self.speak and not self.text.strip():
            raise ValueError("a speaking label needs the reply's text")


@dataclass
class Written:
    """What :meth:`LabelSession.write` wrote: counts of turns by where their label came from."""

    conversations: int = 0
    labelled: int = 0  # turns the person labelled
    kept_replies: int = 0  # turns nobody reached that keep the reply the chat held
    accepted_silences: int = 0  # turns nobody reached whose proposal (silence) was taken
    cut_turns: int = 0  # turns left out: from a conversation's first turn without a label to its end
    omitted_conversations: int = 0  # conversations whose first turn has no label


@dataclass
class LabelSession:
    conversations: list[Conversation]
    threshold: float  # the model's eagerness: the least sure proposals have p_speak nearest it
    progress_file: Path | None = None
    proposals: dict[tuple[int, int], Proposal] = field(default_factory=dict)
    labels: dict[tuple[int, int], Label] = field(default_factory=dict)
    skipped: dict[tuple[int, int], int] = field(default_factory=dict)  # turn -> order in which it was skipped
    history: list[tuple[str, tuple[int, int]]] = field(default_factory=list)  # ("label" | "skip", turn), for undo

    # -- the progress file ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        conversations: list[Conversation],
        progress_file: str | Path,
        fingerprint: dict[str, Any],
        threshold: float,
    ) -> "LabelSession":
        """A session kept in ``progress_file``: a new one, or the one a previous (killed) run left there.
        A file made from other input or another model is refused (ValueError naming it)."""
        path = Path(progress_file)
        session = cls(conversations, threshold, path)
        if not path.exists() or path.stat().st_size == 0:
            session._append({"header": fingerprint})
            return session
        lines = path.read_text(encoding="utf-8").splitlines()
        header = _json_or_none(lines[0]) if lines else None
        if not isinstance(header, dict) or header.get("header") != fingerprint:
            found = header.get("header") if isinstance(header, dict) else None
            raise ValueError(
                f"{path}:1: header: this progress file is for other input or another model "
                f"({_differences(found, fingerprint)}); remove it to start over, or label that input again"
            )
        for n, line in enumerate(lines[1:], 2):
            event = _json_or_none(line)
            if event is None:
                if n == len(lines):
                    break  # a line cut short by a kill: the event it held was never acknowledged
                raise ValueError(f"{path}:{n}: json: not a JSON object; the progress file is damaged")
            session._replay(event, path, n)
        return session

    def _replay(self, event: dict[str, Any], path: Path, n: int) -> None:
        try:
            if "proposal" in event:
                p = Proposal(**event["proposal"])
                self.proposals[p.key] = p
            elif "label" in event:
                self._set_label(Label(**event["label"]))
            elif "skip" in event:
                self._set_skip(tuple(event["skip"]))  # type: ignore[arg-type]
            elif "undo" in event:
                self._pop()
            else:
                raise ValueError(f"unknown event {sorted(event)}")
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{path}:{n}: event: {e}") from None

    def _append(self, event: dict[str, Any]) -> None:
        if self.progress_file is None:
            return
        with open(self.progress_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(event, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- proposals --------------------------------------------------------------------------------------

    def has_proposals(self, conversation: int) -> bool:
        """Whether every user turn of that conversation has its proposal (a resumed session skips it)."""
        return all((conversation, i) in self.proposals for i, _ in self.conversations[conversation].decisions())

    def add_proposals(self, proposals: Iterable[Proposal]) -> None:
        for p in proposals:
            self.proposals[p.key] = p
            self._append({"proposal": asdict(p)})

    # -- the queue --------------------------------------------------------------------------------------

    def uncertainty(self, p: Proposal) -> float:
        """Distance of p_speak from the threshold (0: the model could not be less sure); a proposal without
        p_speak (a backend that gives none) counts as unsure."""
        return 0.0 if p.p_speak is None else abs(p.p_speak - self.threshold)

    def queue(self) -> list[Proposal]:
        """The turns still to label: least sure first, then in reading order; skipped turns after the
        rest, in the order they were skipped."""
        todo = [p for k, p in self.proposals.items() if k not in self.labels]
        fresh = sorted((p for p in todo if p.key not in self.skipped), key=lambda p: (self.uncertainty(p), p.key))
        later = sorted((p for p in todo if p.key in self.skipped), key=lambda p: self.skipped[p.key])
        return fresh + later

    def current(self) -> Proposal | None:
        queue = self.queue()
        return queue[0] if queue else None

    # -- labelling --------------------------------------------------------------------------------------

    def label(self, turn: Proposal | tuple[int, int], speak: bool, text: str = "") -> Label:
        key = turn.key if isinstance(turn, Proposal) else turn
        if key not in self.proposals:
            raise ValueError(f"conversation {key[0]} has no user turn at message {key[1]}")
        label = Label(*key, speak, text.strip() if speak else "")
        self._set_label(label)
        self._append({"label": asdict(label)})
        return label

    def accept(self, turn: Proposal) -> Label:
        """The proposal stands. A speak proposal without a draft has no reply to accept: it must be edited."""
        if turn.speak and not turn.draft.strip():
            raise ValueError("the model proposed to speak but wrote no reply: write one (edit)")
        return self.label(turn, turn.speak, turn.draft)

    def skip(self, turn: Proposal) -> None:
        self._set_skip(turn.key)
        self._append({"skip": list(turn.key)})

    def undo(self) -> Proposal | None:
        """Take back the last label or skip; returns that turn (it is first in the queue again)."""
        if not self.history:
            return None
        key = self._pop()
        self._append({"undo": True})
        return self.proposals[key]

    def _set_label(self, label: Label) -> None:
        key = (label.conversation, label.turn)
        self.labels[key] = label
        self.skipped.pop(key, None)
        self.history.append(("label", key))

    def _set_skip(self, key: tuple[int, int]) -> None:
        self.skipped[key] = len(self.history)
        self.history.append(("skip", key))

    def _pop(self) -> tuple[int, int]:
        if not self.history:
            raise ValueError("undo with nothing to undo")
        kind, key = self.history.pop()
        (self.labels if kind == "label" else self.skipped).pop(key, None)
        return key

    # -- progress and output ----------------------------------------------------------------------------

    def progress(self) -> dict[str, int]:
        return {
            "labelled": len(self.labels),
            "skipped": len(self.skipped),
            "turns": len(self.proposals),
            "left": len(self.proposals) - len(self.labels),
        }

    def context(self, turn: Proposal) -> list[Message]:
        """The conversation up to and including the turn, as the model saw it."""
        return self.conversations[turn.conversation].messages[: turn.turn + 1]

    def dataset(self, accept_silences: bool = True) -> tuple[list[Conversation], Written]:
        out, written = [], Written()
        for c, conv in enumerate(self.conversations):
            messages: list[Message] = []
            turns = conv.decisions()
            for n, (i, held) in enumerate(turns):
                label = self.labels.get((c, i))
                proposal = self.proposals.get((c, i))
                if label is None and held is not None:
                    label = Label(c, i, True, held.content)
                    written.kept_replies += 1
                elif label is None and accept_silences and proposal is not None and not proposal.speak:
                    label = Label(c, i, False)
                    written.accepted_silences += 1
                elif label is not None:
                    written.labelled += 1
                else:
                    written.cut_turns += len(turns) - n
                    break
                messages.append(conv.messages[i])
                if label.speak:
                    messages.append(Message("assistant", label.text))
            if messages:
                out.append(Conversation(messages, {k: v for k, v in conv.meta.items() if k != "source"}))
            else:
                written.omitted_conversations += 1
        written.conversations = len(out)
        return out, written

    def write(self, path: str | Path, accept_silences: bool = True) -> Written:
        """Write the dataset in one go (a temporary file moved into place: a kill never leaves half a file)."""
        conversations, written = self.dataset(accept_silences)
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(conversation_to_line(c) + "\n" for c in conversations), encoding="utf-8")
        os.replace(tmp, path)
        return written


def progress_path(output: str | Path) -> Path:
    """Where a session writing ``output`` keeps its progress: beside it."""
    output = Path(output)
    return output.with_name(output.name + ".progress.jsonl")


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _differences(found: Any, wanted: dict[str, Any]) -> str:
    if not isinstance(found, dict):
        return "no header"
    keys = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
    return ", ".join(f"{k}: {str(found.get(k))[:16]} here, {str(wanted.get(k))[:16]} now" for k in keys)
