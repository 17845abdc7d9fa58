"""The model's proposals for `chimein label`: a teacher-forced pass of :func:`chimein.eval.run.evaluate` over
the conversations (the same replay `chimein eval` measures), one proposal per user turn, written to the
session's progress file conversation by conversation (a killed run asks the model only for the rest).

A speaking proposal comes with the model's reply as its draft; a silent one has none, unless the chat
already held an assistant reply there (a bot's message in an export): that reply is the draft.
"""

from __future__ import annotations

from typing import Any, Callable

from chimein.data import Conversation
from chimein.eval.run import TurnRecord, data_fingerprint, evaluate
from chimein.label.session import LabelSession, Proposal


def fingerprint(conversations: list[Conversation], model: str, threshold: float | None) -> dict[str, Any]:
    """What a session's proposals depend on: the input and the model's name and eagerness."""
    return {"data_sha256": data_fingerprint(conversations), "model": model, "threshold": threshold}


def propose(backend: Any, session: LabelSession, on_turn: Callable[[], None] | None = None) -> int:
    """Ask the model about every turn still without a proposal; returns how many turns it decided."""
    todo = [c for c in range(len(session.conversations)) if not session.has_proposals(c)]
    asked = 0
    for c in todo:  # one conversation at a time, so each is saved as soon as it is done
        conv = session.conversations[c]
        records = evaluate(backend, [conv], threshold=session.threshold, on_turn=on_turn)
        session.add_proposals(_proposal(c, conv, r) for r in records)
        asked += len(records)
    return asked


def _proposal(c: int, conv: Conversation, record: TurnRecord) -> Proposal:
    existing = record.gold_reply  # the reply the chat already held after this turn, if any
    draft = record.reply if record.speak and record.reply else existing
    return Proposal(c, record.index, record.speak, record.p_speak, draft)
