"""`chimein validate`, `template-tokens`, `generate` (chimein/cli/data.py)."""

import json

from typer.testing import CliRunner

from chimein.cli import app
from tests.helpers import write_jsonl
from tests.test_data import GOOD


def test_cli_validate(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [GOOD, GOOD])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD) + "\n" + json.dumps([{"role": "user", "content": "x"}]) + "\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "speaking rate" in ok.output and "50.0%" in ok.output
    res = runner.invoke(app, ["validate", str(good), str(bad)])
    assert res.exit_code == 1
    assert f"{bad}:2: conversation[0].name" in res.output


def test_template_tokens_cli_json():
    res = CliRunner().invoke(app, ["template-tokens", "--model", "mistral-7b", "--template", "zephyr", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["instruction_template_ids"] != data["instruction_template_ids_standalone"]
    assert data["response_template"] == "<|assistant|>"


def test_help_reads_well():
    result = CliRunner().invoke(app, ["generate", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for option in (
        "--out",
        "--n",
        "--base-url",
        "--model",
        "--api-key-env",
        "--topics",
        "--names",
        "--min-turns",
        "--max-turns",
        "--prompt-template",
        "--retries",
        "--concurrency",
        "--seed",
        "--temperature",
    ):
        assert option in result.output
