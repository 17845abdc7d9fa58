"""`chimein models` lists every name --model takes."""

from typer.testing import CliRunner

from chimein.cli import app


def test_models_lists_the_runtime_default_the_rules_and_the_registry():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    for name in (
        "llamacpp:default",
        "mention",
        "silent",
        "baseline",
        "openai:MODEL",
        "default",
        "smollm2-135m-instruct",
    ):
        assert name in names, (name, result.stdout)
