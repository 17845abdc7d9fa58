"""Fine-tuning from the shipped default on a group's own chats: the split, the mix, the recipe, before/after."""

import json

import pytest

from chimein.data import load_conversations
from chimein.finetune import comparison_table, continue_config, own_data, prepare, split_holdout, write_before_after
from chimein.models import DEFAULT_ADAPTER_DIR
from tests.helpers import REPO, conv


def chats(n, who="Ana"):
    return [conv((who, f"message {i}"), ("Ben", "ok"), id=f"{who}{i}") for i in range(n)]


def test_the_holdout_is_whole_conversations_seeded_and_in_input_order():
    train, held = split_holdout(chats(10), 0.3, seed=1)
    assert len(held) == 3 and len(train) == 7
    assert {c.meta["id"] for c in train} | {c.meta["id"] for c in held} == {f"Ana{i}" for i in range(10)}
    assert [c.meta["id"] for c in held] == sorted((c.meta["id"] for c in held), key=lambda s: int(s[3:]))
    assert split_holdout(chats(10), 0.3, seed=1)[1] == held
    assert split_holdout(chats(10), 0.3, seed=2)[1] != held
    assert len(split_holdout(chats(3), 0.01)[1]) == 1  # a holdout asked for is never empty
    assert split_holdout(chats(3), 0.0)[1] == []
    with pytest.raises(ValueError, match="leave none to train on"):
        split_holdout(chats(1), 0.5)
    with pytest.raises(ValueError, match="--holdout"):
        split_holdout(chats(3), 1.0)


def test_mix_adds_shipped_chats_per_own_chat():
    split = own_data(chats(10), chats(50, "Zed"), holdout=0.2, mix=2.0)
    assert len(split.train) == 8 and len(split.holdout) == 2 and len(split.mixed_in) == 16
    assert all(c.meta["id"].startswith("Zed") for c in split.mixed_in)
    assert len(own_data(chats(10), chats(5, "Zed"), 0.2, 2.0).mixed_in) == 5  # no more than there are
    assert own_data(chats(10), [], 0.2, 0.0).mixed_in == []
    with pytest.raises(ValueError, match="--mix"):
        own_data(chats(10), [], 0.2, -1)


def test_the_config_continues_the_adapter_with_its_saved_recipe(tmp_path):
    cfg = continue_config(
        "default", tmp_path / "run", tmp_path / "train.jsonl", {"num_train_epochs": 2.0}, ["learning_rate=1e-4"]
    )
    assert cfg.init_adapter == str(DEFAULT_ADAPTER_DIR)
    assert (cfg.decision_weight, cfg.lora_top_layers, cfg.model) == (
        5.0,
        10,
        "smollm2-135m-instruct",
    )  # the shipped recipe
    assert cfg.num_train_epochs == 2.0 and cfg.learning_rate == 1e-4 and cfg.valid_file is None
    with pytest.raises(ValueError, match="--from smollm2-135m-instruct: not a chimein adapter"):
        continue_config("smollm2-135m-instruct", tmp_path, tmp_path / "t.jsonl")


def test_prepare_writes_the_mixed_training_set_and_the_holdout(tmp_path):
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps(c.to_json()) + "\n" for c in chats(10)))
    cfg, split = prepare(
        [mine], "default", tmp_path / "run", holdout=0.2, mix=0.5, mix_file=REPO / "data" / "valid.jsonl"
    )
    trained = load_conversations(cfg.train_file)
    held = load_conversations(tmp_path / "run" / "data" / "holdout.jsonl")
    assert len(trained) == 8 + 4 and len(held) == 2
    assert {c.meta["id"] for c in held}.isdisjoint(c.meta.get("id") for c in trained)
    assert sum(str(c.meta.get("id", "")).startswith("Ana") for c in trained) == 8


def test_the_report_shows_before_and_after(tmp_path):
    def summary(f1):
        return {
            "f1": f1,
            "precision": 0.5,
            "recall": 0.5,
            "false_interjection_rate": 0.01,
            "volunteer_f1": 0.2,
            "named_f1": 0.9,
            "missed_address_rate": 0.1,
        }

    (tmp_path / "report.md").write_text("# Training run\n")
    reports = {"before": summary(0.4), "after": summary(0.6)}
    write_before_after(tmp_path, "default", chats(2), reports)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Training run") and "2 held-out own chats (4 turns)" in md
    assert "| speak F1 | 0.400 | 0.600 |" in md and "| addressed (named) F1 | 0.900 | 0.900 |" in md
    assert json.loads((tmp_path / "before_after.json").read_text())["after"]["f1"] == 0.6
    assert comparison_table(reports).count("\n") == 8


@pytest.mark.slow
def test_train_from_default_changes_the_adapter_and_reports_before_after(tmp_path):
    """A tiny real run of `chimein train --data --from default`: two optimizer steps of the shipped recipe."""
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from chimein.cli import app
    from chimein.export import export
    from chimein.models import resolve_model

    own = load_conversations(REPO / "data" / "heldout-writers.jsonl")[:4]
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps(c.to_json()) + "\n" for c in own))
    run = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(mine),
            "--from",
            "default",
            "--holdout",
            "0.25",
            "--mix",
            "0.5",
            "--mix-file",
            str(REPO / "data" / "train.jsonl"),
            "--out",
            str(run),
            "--max-steps",
            "2",
            "--set",
            "gradient_accumulation_steps=2",
            "--set",
            "save_steps=1000",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "training on 3 of your chats and 2 shipped ones; 1 of yours held out" in result.output
    before, after = (
        load_file(DEFAULT_ADAPTER_DIR / "adapter_model.safetensors"),
        load_file(run / "adapter_model.safetensors"),
    )
    assert before.keys() == after.keys()
    assert any(not (before[k] == after[k]).all() for k in before)  # training moved the shipped weights
    report = json.loads((run / "before_after.json").read_text())
    for when in ("before", "after"):
        assert {"f1", "false_interjection_rate", "volunteer_f1", "named_f1"} <= set(report[when])
        assert report[when]["n"] == sum(c.user_turns for c in split_holdout(own, 0.25)[1])
    assert "| speak F1 |" in (run / "report.md").read_text() and "| speak F1 |" in result.output
    assert json.loads((run / "chimein.json").read_text())["threshold"] == 0.7
    assert resolve_model(str(run)).adapter == run  # serve/matrix/eval --model RUN load it
    exported = export(str(run), tmp_path / "exported", copy_base=False)
    assert exported.adapter.stat().st_size > 100_000


def test_train_refuses_half_of_data_from_with_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from chimein.cli import app

    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps(c.to_json()) + "\n" for c in chats(4)))
    runner = CliRunner()
    for args, says in (
        (["--data", str(mine)], "--data and --from go together"),
        (["--from", "default"], "--data and --from go together"),
        (["--data", str(mine), "--from", "default", "--train", str(mine)], "drop --train"),
        (
            ["--data", str(mine), "--from", "smollm2-135m-instruct", "--out", str(tmp_path / "r")],
            "not a chimein adapter",
        ),
        (["--data", str(tmp_path / "nope.jsonl"), "--from", "default"], "nope.jsonl"),
        (["--data", str(mine), "--from", "default", "--holdout", "0.99"], "--holdout"),
    ):
        result = runner.invoke(app, ["train", *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("error: ") and says in result.output, (args, result.output)
