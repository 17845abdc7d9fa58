"""`chimein eval` (chimein/cli/eval.py)."""

import json

from typer.testing import CliRunner

from chimein.cli import app
from tests.helpers import write_jsonl


def test_cli_eval_compare_writes_the_report(tmp_path, sample_conversations):
    f = write_jsonl(tmp_path / "v.jsonl", [c.to_json() for c in sample_conversations])
    res = CliRunner().invoke(
        app, ["eval", str(f), "--compare", "silent,mention", "--out", str(tmp_path / "ev"), "--no-similarity"]
    )
    assert res.exit_code == 0, res.output
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "| silent |" in md and "| mention |" in md and "balanced_accuracy" in md
    # per conversation category: c1 (addressed) all right; c2 (stuck) misses the gold reply, speaks on 1 of 2 silent turns
    assert "| mention | 1.00 / 0.00 | 0.00 / 0.50 |" in md
    # mention speaks on 2 of the 7 turns ("bot, how many...", "lol the bot was slow"), silent on none
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["agreement"] == {
        "silent vs mention": round(5 / 7, 4)
    }
    # the same records, grouped by another field: nothing re-runs (the turn files are reused)
    res = CliRunner().invoke(
        app,
        ["eval", str(f), "--compare", "mention", "--out", str(tmp_path / "ev"), "--no-similarity", "--group-by", "id"],
    )
    assert res.exit_code == 0, res.output
    assert "| mention | 1.00 / 0.00 | 0.00 / 0.50 |" in (tmp_path / "ev" / "report.md").read_text()
    assert "c1 (" in (tmp_path / "ev" / "report.md").read_text()
