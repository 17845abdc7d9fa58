"""`chimein label` in the terminal, driven by a script of keys."""

import io

from rich.console import Console

from chimein.interfaces.label_tui import run_labeller
from chimein.label.session import LabelSession, Proposal
from tests.helpers import conv


def session(tmp_path):
    chats = [conv(("Ana", "pizza tonight?"), ("Ben", "bot, how many legs does a spider have?"), ("Cleo", "no idea"))]
    s = LabelSession.open(chats, tmp_path / "p.jsonl", {}, threshold=0.5)
    s.add_proposals([Proposal(0, 0, False, 0.1), Proposal(0, 1, True, 0.8, "Six."), Proposal(0, 2, False, 0.4)])
    return s


def drive(s, keys, replies=()):
    keys, replies, saves = iter(keys), iter(replies), []
    console = Console(file=io.StringIO(), width=120)
    drafts = []

    def read_reply(draft):
        drafts.append(draft)
        return next(replies)

    run_labeller(s, console, lambda: next(keys), read_reply, on_change=lambda: saves.append(1))
    return console.file.getvalue(), drafts, len(saves)


def test_keys_label_the_least_sure_turns_first(tmp_path):
    s = session(tmp_path)
    # queue: (0,2) p=0.4, (0,1) p=0.8, (0,0) p=0.1. n on a silent proposal asks for a reply; e edits the draft.
    out, drafts, saves = drive(s, ["n", "e", "x", "y"], ["The Challenger Deep.", "Eight."])
    assert s.labels[(0, 2)].text == "The Challenger Deep." and s.labels[(0, 1)].text == "Eight."
    assert not s.labels[(0, 0)].speak
    assert drafts == ["", "Six."] and saves == 3
    assert "unknown key 'x'" in out and "every turn is labelled" in out
    assert (
        out.index("model: silent (p=0.40)") < out.index("model: speak (p=0.80)") < out.index("model: silent (p=0.10)")
    )
    assert "model: speak (p=0.80): Six." in out


def test_skip_undo_quit_and_an_empty_reply_change_nothing_else(tmp_path):
    s = session(tmp_path)
    out, _, saves = drive(s, ["u", "s", "y", "u", "n", "e", "q"], [""])
    # s skips (0,2); y accepts (0,1) "Six."; u takes it back; n on (0,1) (speak) = silence; e on (0,0) cancelled
    assert "nothing to undo" in out and "no reply: nothing changed" in out and "saved" in out
    assert list(s.labels) == [(0, 1)] and not s.labels[(0, 1)].speak
    assert list(s.skipped) == [(0, 2)] and saves == 4
    assert s.current().key == (0, 0)
