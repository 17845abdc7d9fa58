"""The option groups: declared once (ModelOptions, RoomOptions), on every command that takes them, and received
by the command as one object."""

import dataclasses
import json

import pytest
import typer.main
from typer.testing import CliRunner

from chimein.cli import app
from chimein.cli.options import ModelOptions, RoomOptions, replier_from_options

runner = CliRunner()


def flags(command: str) -> set[str]:
    """The long flags a command takes."""
    return {
        opt for p in typer.main.get_command(app).commands[command].params for opt in p.opts if opt.startswith("--")
    }


def group_flags(group: type) -> set[str]:
    return {"--" + f.name.replace("_", "-") for f in dataclasses.fields(group)}


@pytest.mark.parametrize(
    "command, expected",
    [
        ("chat", group_flags(ModelOptions)),
        ("decide", group_flags(ModelOptions)),
        ("eval", group_flags(ModelOptions)),  # its own --model takes several
        ("matrix", group_flags(ModelOptions) | group_flags(RoomOptions)),
        (
            "serve",
            group_flags(ModelOptions) - {"--api-key-env"}
            | {"--model-api-key-env", "--api-key-env"}
            | group_flags(RoomOptions),
        ),
    ],
)
def test_every_command_takes_the_whole_group(command, expected):
    assert expected <= flags(command)


def test_the_command_receives_the_options_the_user_gave():
    chat = [{"role": "user", "name": "Ana", "content": "bot, what time is it?"}]
    result = runner.invoke(app, ["decide", "--model", "mention"], input=json.dumps({"messages": chat}) + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["speak"] is True  # the mention rule ran: --model reached the backend
    result = runner.invoke(app, ["serve", "--model", "mention", "--port", "0", "--cooldown", "often"])
    assert result.exit_code == 2 and "--cooldown" in result.stderr  # the room group reached RoomOptions.policy()


def test_reply_model_none_and_an_endpoint(monkeypatch):
    assert replier_from_options(ModelOptions(reply_model="none")) is None
    from chimein.assistant.backends.openai_http import OpenAIReplier

    assert isinstance(
        replier_from_options(ModelOptions(reply_base_url="http://127.0.0.1:9/v1", reply_model="big")), OpenAIReplier
    )
    assert replier_from_options(ModelOptions(), local_by_default=False) is None  # chimein eval compares explicitly


@pytest.mark.slow
def test_the_local_replier_writes_the_replies_by_default_when_installed():
    from chimein.assistant.replier import LocalReplier
    from chimein.models import replier_available

    if not replier_available():
        pytest.skip("the replier extra is not installed (make install installs it)")
    assert isinstance(replier_from_options(ModelOptions()), LocalReplier)
