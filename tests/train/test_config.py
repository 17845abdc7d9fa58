"""chimein.train.config: presets, YAML files and --set overrides."""

import pytest

from chimein.train.config import build_config
from tests.helpers import REPO


def test_config_layers_yaml_and_set_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lora_r: 8\nnum_train_epochs: 2\n")
    cfg = build_config("smollm2-135m", f, {"output_dir": "x"}, ["learning_rate=1e-4", "lora_r=4"])
    assert (cfg.lora_r, cfg.num_train_epochs, cfg.learning_rate, cfg.output_dir) == (4, 2.0, 1e-4, "x")
    with pytest.raises(ValueError, match="unknown training option"):
        build_config(None, None, None, ["lora_rank=4"])
    with pytest.raises(ValueError, match="unknown preset"):
        build_config("gpt-9")


def test_the_config_file_and_the_preset_are_the_same_recipe():
    from chimein.models import resolve_model

    preset = build_config("smollm2-135m").to_dict()
    from_file = build_config(None, REPO / "configs" / "smollm2-135m.yaml").to_dict()
    preset["template"] = preset["template"] or resolve_model(preset["model"]).template
    assert from_file == preset


def test_the_shipped_adapter_was_trained_with_the_default_recipe():
    from chimein.models import DEFAULT_ADAPTER_DIR
    from chimein.train.config import TrainConfig

    shipped = build_config(None, DEFAULT_ADAPTER_DIR / "config.yaml").to_dict()
    assert shipped == build_config("smollm2-135m").to_dict() == TrainConfig().to_dict()


def test_every_training_option_has_help():
    import dataclasses

    from chimein.train.config import TrainConfig

    missing = [f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("help")]
    assert missing == []
