"""The model's proposals: one per user turn, from the teacher-forced replay, saved as each conversation is done."""

from chimein.assistant.core import Decision
from chimein.label.propose import fingerprint, propose
from chimein.label.session import LabelSession
from tests.helpers import ScriptedBackend, conv


def chats():
    return [
        conv(("Ana", "pizza tonight?"), ("Ben", "bot, 2+2?"), ("assistant", "Four."), ("Ana", "thx"), id="a"),
        conv(("Cleo", "hi all"), ("Dan", "hey bot"), id="b"),
    ]


def test_every_user_turn_gets_a_proposal_with_the_models_p_speak_and_draft(tmp_path):
    backend = ScriptedBackend()
    session = LabelSession.open(
        chats(), tmp_path / "p.jsonl", fingerprint(chats(), "scripted", 0.5), backend.threshold
    )
    ticks = []
    assert propose(backend, session, on_turn=lambda: ticks.append(1)) == 5
    assert len(ticks) == 5
    got = {k: (p.speak, p.p_speak, p.draft) for k, p in session.proposals.items()}
    assert got == {
        (0, 0): (False, 0.1, ""),
        (0, 1): (True, 0.9, "reply to bot, 2+2?"),
        (0, 3): (False, 0.1, ""),
        (1, 0): (False, 0.1, ""),
        (1, 1): (True, 0.9, "reply to hey bot"),
    }
    # teacher forcing: the turn after the input's assistant reply saw that reply in its history
    assert backend.calls[2][0] == ["pizza tonight?", "bot, 2+2?", "Four.", "thx"]


def test_a_silent_proposal_offers_the_reply_the_chat_already_held(tmp_path):
    backend = ScriptedBackend([Decision(False, p_speak=0.2)] * 3)
    session = LabelSession.open(chats()[:1], tmp_path / "p.jsonl", {}, 0.5)
    propose(backend, session)
    assert session.proposals[(0, 1)].draft == "Four."


def test_a_resumed_session_asks_the_model_only_for_conversations_without_proposals(tmp_path):
    path = tmp_path / "p.jsonl"
    key = fingerprint(chats(), "scripted", 0.5)
    first = LabelSession.open(chats(), path, key, 0.5)
    first.add_proposals(p for p in [])  # nothing yet
    backend = ScriptedBackend()
    propose(backend, first)
    again = LabelSession.open(chats(), path, key, 0.5)
    fresh = ScriptedBackend()
    assert propose(fresh, again) == 0 and fresh.calls == []
    assert again.proposals == first.proposals


def test_the_fingerprint_changes_with_input_model_and_threshold():
    base = fingerprint(chats(), "m", 0.5)
    assert base == fingerprint(chats(), "m", 0.5)
    assert base != fingerprint(chats()[:1], "m", 0.5) and base != fingerprint(chats(), "n", 0.5) != fingerprint(
        chats(), "m", 0.6
    )
