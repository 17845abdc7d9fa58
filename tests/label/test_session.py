"""The labelling logic: queue order, labels, skip and undo, the progress file (resume after a kill), the dataset."""

import json

import pytest

from chimein.data import read_conversations
from chimein.label.session import LabelSession, Proposal, progress_path
from tests.helpers import conv

FINGERPRINT = {"data_sha256": "abc", "model": "scripted", "threshold": 0.5}


def chats():
    return [
        conv(("Ana", "pizza tonight?"), ("Ben", "bot, how many legs does a spider have?"), ("Ana", "lol"), id="a"),
        conv(("Cleo", "anyone know the boiling point of water at altitude?"), ("Dan", "no idea"), id="b"),
    ]


def proposals():
    return [
        Proposal(0, 0, False, 0.05),
        Proposal(0, 1, True, 0.95, "Eight."),
        Proposal(0, 2, False, 0.02),
        Proposal(1, 0, False, 0.45),
        Proposal(1, 1, True, 0.62, "Lower: about 90 C at 3,000 m."),
    ]


def new_session(tmp_path, conversations=None):
    s = LabelSession.open(conversations or chats(), tmp_path / "out.jsonl.progress.jsonl", FINGERPRINT, threshold=0.5)
    s.add_proposals(proposals())
    return s


def test_the_least_sure_turns_come_first_and_skipped_turns_last(tmp_path):
    s = new_session(tmp_path)
    assert [p.key for p in s.queue()] == [(1, 0), (1, 1), (0, 1), (0, 0), (0, 2)]
    s.skip(s.current())
    assert [p.key for p in s.queue()] == [(1, 1), (0, 1), (0, 0), (0, 2), (1, 0)]
    s.accept(s.current())
    assert s.current().key == (0, 1)
    assert s.progress() == {"labelled": 1, "skipped": 1, "turns": 5, "left": 4}


def test_accept_edit_and_flip_make_labels(tmp_path):
    s = new_session(tmp_path)
    by_key = {p.key: p for p in s.queue()}
    assert s.accept(by_key[(0, 1)]).text == "Eight."
    assert s.label(by_key[(1, 0)], True, "  It boils lower up there.  ").text == "It boils lower up there."
    assert s.label(by_key[(1, 1)], False, "ignored").text == ""
    with pytest.raises(ValueError, match="needs the reply"):
        s.label(by_key[(0, 0)], True, "   ")
    with pytest.raises(ValueError, match="no user turn"):
        s.label((0, 7), False)
    with pytest.raises(ValueError, match="wrote no reply"):
        s.accept(Proposal(0, 0, True, 0.9, ""))


def test_undo_takes_back_the_last_label_or_skip(tmp_path):
    s = new_session(tmp_path)
    first = s.current()
    s.label(first, True, "a reply")
    s.skip(s.current())
    assert s.undo().key == (1, 1)  # the skip
    assert s.undo().key == first.key  # the label
    assert s.labels == {} and s.skipped == {} and s.current().key == first.key
    assert s.undo() is None


def test_a_killed_session_resumes_from_its_progress_file(tmp_path):
    s = new_session(tmp_path)
    s.accept(s.current())
    s.skip(s.current())
    s.label(s.current(), True, "Eight legs.")
    s.undo()
    s.label(s.current(), False)
    path = s.progress_file
    with open(path, "a") as f:
        f.write('{"label": {"conversation": 0, "tu')  # the kill came in the middle of a write
    again = LabelSession.open(chats(), path, FINGERPRINT, threshold=0.5)
    assert again.proposals == s.proposals and again.labels == s.labels and again.skipped == s.skipped
    assert [p.key for p in again.queue()] == [p.key for p in s.queue()]
    assert all(again.has_proposals(c) for c in range(2))
    again.undo()  # the resumed history undoes too
    assert (0, 1) not in again.labels


def test_progress_of_other_input_or_a_damaged_file_is_refused(tmp_path):
    s = new_session(tmp_path)
    with pytest.raises(
        ValueError, match=r"progress.jsonl:1: header: .*other input or another model.*model: scripted here"
    ):
        LabelSession.open(chats(), s.progress_file, {**FINGERPRINT, "model": "other"}, threshold=0.5)
    lines = s.progress_file.read_text().splitlines()
    s.progress_file.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"progress.jsonl:2: json"):
        LabelSession.open(chats(), s.progress_file, FINGERPRINT, threshold=0.5)


def test_the_dataset_holds_labels_accepted_silences_and_cuts_at_an_unconfirmed_speak(tmp_path):
    s = new_session(tmp_path)
    by_key = {p.key: p for p in s.queue()}
    s.label(by_key[(1, 0)], False)
    s.label(by_key[(1, 1)], True, "About 90 C at 3,000 m.")
    out = tmp_path / "out.jsonl"
    written = s.write(out)
    convs, problems = read_conversations(out)
    assert problems == []
    # conversation a: turn 0 accepted silence, turn 1 is an unconfirmed speak proposal -> cut there
    assert [m.content for m in convs[0].messages] == ["pizza tonight?"]
    assert convs[0].meta["id"] == "a"
    assert [(m.role, m.content) for m in convs[1].messages] == [
        ("user", "anyone know the boiling point of water at altitude?"),
        ("user", "no idea"),
        ("assistant", "About 90 C at 3,000 m."),
    ]
    assert (written.labelled, written.accepted_silences, written.cut_turns, written.conversations) == (2, 1, 2, 2)
    strict = s.dataset(accept_silences=False)[1]
    assert strict.omitted_conversations == 1 and strict.cut_turns == 3


def test_labels_replace_the_replies_the_input_held(tmp_path):
    chat = [conv(("Ana", "bot, 2+2?"), ("assistant", "5"), ("Ben", "ok"), id="x")]
    s = LabelSession.open(chat, tmp_path / "p.jsonl", FINGERPRINT, threshold=0.5)
    s.add_proposals([Proposal(0, 0, True, 0.9, "5"), Proposal(0, 2, False, 0.1)])
    s.label((0, 0), True, "4")
    convs, _ = s.dataset()
    assert [m.content for m in convs[0].messages] == ["bot, 2+2?", "4", "ok"]
    assert json.loads(s.progress_file.read_text().splitlines()[0]) == {"header": FINGERPRINT}


def test_a_turn_nobody_reached_keeps_the_reply_the_chat_held(tmp_path):
    # an export's bot answered "Bolt, ...?" where the model proposes silence, and "bot, ...?" where it proposes to
    # speak: unlabelled, both keep the chat's own reply (never the model's silence or its unconfirmed draft)
    chat = [
        conv(
            ("Ana", "Bolt, 6A in V grades?"),
            ("assistant", "About V3."),
            ("Ben", "bot, and 7a?"),
            ("assistant", "V6."),
            ("Ana", "nice"),
            id="x",
        )
    ]
    s = LabelSession.open(chat, tmp_path / "p.jsonl", FINGERPRINT, threshold=0.5)
    s.add_proposals(
        [Proposal(0, 0, False, 0.1, "About V3."), Proposal(0, 2, True, 0.9, "V5."), Proposal(0, 4, False, 0.0)]
    )
    convs, written = s.dataset()
    assert [(m.role, m.content) for m in convs[0].messages] == [
        ("user", "Bolt, 6A in V grades?"),
        ("assistant", "About V3."),
        ("user", "bot, and 7a?"),
        ("assistant", "V6."),
        ("user", "nice"),
    ]
    assert (written.kept_replies, written.accepted_silences, written.cut_turns, written.labelled) == (2, 1, 0, 0)
    s.label((0, 0), False)  # a label still replaces the chat's reply
    assert [m.content for m in s.dataset()[0][0].messages][:2] == ["Bolt, 6A in V grades?", "bot, and 7a?"]


def test_the_progress_file_sits_beside_the_output(tmp_path):
    assert progress_path(tmp_path / "mine.jsonl") == tmp_path / "mine.jsonl.progress.jsonl"
