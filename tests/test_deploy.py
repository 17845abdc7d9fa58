"""deploy/compose.yaml: every command it runs is one its programs accept, and its services point at each other."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "compose.yaml"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def flags(argv: list[str]) -> set[str]:
    return {a.split("=")[0] for a in argv if a.startswith("--")}


def help_flags(*command: str) -> set[str]:
    out = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}
    )
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"--[a-z][a-z0-9_-]*", out.stdout))


def test_the_chimein_commands_use_only_options_chimein_has(services: dict) -> None:
    for name in ("chimein",):
        argv = shlex.split(services[name]["command"])
        assert argv[:2] == ["chimein", "serve"]
        known = help_flags(sys.executable, "-m", "chimein.cli", "serve")
        assert flags(argv) <= known, flags(argv) - known
    commented = re.search(r"#   command: (chimein matrix.*\n(?:#     .*\n)*)", COMPOSE.read_text())
    assert commented, "the Matrix bot's example command"
    argv = shlex.split(commented.group(1).replace("#     ", " "))
    known = help_flags(sys.executable, "-m", "chimein.cli", "matrix")
    assert flags(argv) <= known, flags(argv) - known


def test_the_model_servers_use_only_options_llama_cpp_has(services: dict) -> None:
    known = help_flags(sys.executable, "-m", "llama_cpp.server")
    for name in ("decisions", "replies"):
        argv = shlex.split(services[name]["command"])
        assert argv[:3] == ["python", "-m", "llama_cpp.server"]
        assert flags(argv) <= known, (name, flags(argv) - known)


def test_the_services_point_at_each_other(services: dict) -> None:
    argv = shlex.split(services["chimein"]["command"])
    value = {a: b for a, b in zip(argv, argv[1:]) if a.startswith("--")}
    port = {name: value_of(services[name]["command"], "--port") for name in ("decisions", "replies")}
    assert value["--base-url"] == f"http://decisions:{port['decisions']}/v1"
    assert value["--reply-base-url"] == f"http://replies:{port['replies']}/v1"
    assert value["--db"].startswith("postgresql://") and "@postgres:5432/" in value["--db"]
    assert value["--model"] == "served:default"  # decisions on the server, never a model per process
    assert value["--host"] == "0.0.0.0"
    caddyfile = yaml.safe_load(COMPOSE.read_text())["configs"]["caddyfile"]["content"]
    assert f"dynamic a chimein {value['--port']}" in caddyfile


def value_of(command: str, flag: str) -> str:
    argv = shlex.split(command)
    return argv[argv.index(flag) + 1]
