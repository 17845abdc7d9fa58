"""Every command turns bad input into one `error: ...` line on stderr and exit code 2, never a traceback."""

import pytest
from typer.testing import CliRunner

from chimein.cli import app

runner = CliRunner()


def run(*args: str, stdin: str = ""):
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stderr, result.exception


@pytest.mark.parametrize(
    "command",
    [
        ["chat", "--model", "no-such-model"],
        ["decide", "--model", "no-such-model"],
        ["eval", "EXISTING", "--model", "no-such-model", "--out", "OUT"],
        ["eval", "EXISTING", "--model", "silent,llamacpp:no-such-model", "--out", "OUT"],
        ["serve", "--model", "no-such-model", "--port", "0"],
        ["export", "--model", "no-such-model", "--out", "OUT"],
    ],
)
def test_a_bad_model_name_is_one_clean_error(command, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('[{"role": "user", "name": "Ana", "content": "hi"}]\n')
    command = [str(data) if c == "EXISTING" else str(tmp_path / "out") if c == "OUT" else c for c in command]
    code, stderr, exc = run(*command)
    assert code == 2, (stderr, exc)
    assert stderr.startswith("error: ") and "no-such-model" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing run, nothing written


# `validate` reports problems in the data as its result (exit 1, like a linter); the others refuse bad input (2).
@pytest.mark.parametrize("command, code", [(["eval", "FILE", "--model", "silent"], 2), (["validate", "FILE"], 1)])
def test_a_missing_or_malformed_file_names_the_file_and_line(command, code, tmp_path):
    bad = tmp_path / "notjson.txt"
    bad.write_text("this is not json\n")
    got, stderr, _ = run(*[str(bad) if c == "FILE" else c for c in command])
    assert got == code and f"{bad}:1: json: invalid JSON" in stderr
    got, stderr, _ = run(*[str(tmp_path / "missing.jsonl") if c == "FILE" else c for c in command])
    assert got == code and "missing.jsonl" in stderr and "Traceback" not in stderr


def test_out_of_range_or_unknown_flags_are_one_line_errors():
    for command, flag in (
        (["chat", "--eagerness", "5"], "--eagerness"),
        (["decide", "--eagerness", "-1"], "--eagerness"),
        (["serve", "--no-such-flag"], "--no-such-flag"),
        (["no-such-command"], "no-such-command"),
    ):
        code, stderr, _ = run(*command)
        assert code == 2 and stderr.startswith("error: ") and flag in stderr and stderr.count("\n") == 1, stderr
    code, stdout, _ = run("chat", "--help")[0], runner.invoke(app, ["chat", "--help"]).stdout, None
    assert code == 0 and "--eagerness" in stdout


@pytest.mark.parametrize(
    "command",
    [
        ["chat"],
        ["decide"],
        ["eval", "x.jsonl"],
        ["serve"],
        ["matrix", "--homeserver", "http://127.0.0.1:9", "--user", "@bot:hs"],
    ],
)
def test_every_model_command_takes_threads_and_refuses_zero(command):
    assert "--threads" in runner.invoke(app, [command[0], "--help"]).stdout
    code, stderr, _ = run(*command, "--threads", "0")
    assert code == 2 and stderr.startswith("error: ") and "--threads" in stderr and stderr.count("\n") == 1, stderr


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--mode", "loud"], "--mode"),
        (["--cooldown", "often"], "--cooldown"),
        (["--api-key-env", "CHIMEIN_TEST_UNSET_KEY"], "--api-key-env"),
    ],
)
def test_serve_refuses_bad_room_settings_and_a_missing_key(args, flag):
    code, stderr, _ = run("serve", "--model", "mention", "--port", "0", *args)
    assert code == 2 and stderr.startswith("error: ") and flag in stderr and stderr.count("\n") == 1


def test_train_refuses_an_unknown_option():
    code, stderr, _ = run("train", "--set", "no_such_option=1")
    assert code == 2 and stderr.startswith("error: ") and "no_such_option" in stderr


def test_eval_takes_model_like_every_command(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        '[{"role": "user", "name": "Ana", "content": "bot, hi?"}, {"role": "assistant", "content": "Hi!"}]\n'
    )
    for flags in (
        ["--model", "silent", "--model", "mention"],
        ["--model", "silent,mention"],
        ["--compare", "silent,mention"],
    ):
        code, stderr, exc = run("eval", str(data), *flags, "--out", str(tmp_path / "o"), "--no-similarity")
        assert code == 0, (stderr, exc)
    assert (tmp_path / "o" / "turns-mention.jsonl").exists() and (tmp_path / "o" / "turns-silent.jsonl").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["template-tokens", "--model", "no-such-model"],
        ["train", "--preset", "no-such-preset"],
        ["generate", "--out", "OUT", "--model", "m", "--topics", "MISSING"],
    ],
)
def test_the_other_commands_refuse_bad_input_the_same_way(command, tmp_path):
    command = [
        str(tmp_path / "out.jsonl") if c == "OUT" else str(tmp_path / "missing.txt") if c == "MISSING" else c
        for c in command
    ]
    code, stderr, exc = run(*command)
    assert code == 2, (stderr, exc)
    assert stderr.startswith("error: ") and "Traceback" not in stderr
    assert ("missing.txt" if "generate" in command else "no-such-") in stderr


def test_every_command_goes_through_the_error_handler():
    from chimein.cli import COMMANDS, app

    assert [c.name for c in app.registered_commands] == [name for name, _ in COMMANDS]
    assert all(c.callback.__wrapped__ is command for c, (_, command) in zip(app.registered_commands, COMMANDS))


@pytest.mark.parametrize(
    "args, flag", [(["--log-file", "/no/such/dir/bot.jsonl"], "--log-file"), (["--log-level", "LOUD"], "--log-level")]
)
def test_matrix_refuses_a_log_it_cannot_write(args, flag, tmp_path):
    pytest.importorskip("nio")
    code, stderr, _ = run(
        "matrix",
        "--homeserver",
        "http://127.0.0.1:9",
        "--user",
        "@bot:localhost",
        "--store-dir",
        str(tmp_path),
        "--model",
        "mention",
        *args,
    )
    assert code == 2 and stderr.startswith("error: ") and flag in stderr and stderr.count("\n") == 1, stderr


@pytest.mark.parametrize(
    "args, flag", [([], "--base-url"), (["--base-url", "http://127.0.0.1:9/v1", "--style", "baseline"], "--style")]
)
def test_a_served_model_needs_its_server_and_the_finetuned_format(args, flag):
    code, stderr, _ = run("decide", "--model", "served:default", *args)
    assert code == 2 and stderr.startswith("error: served:default: ") and flag in stderr and "Traceback" not in stderr
