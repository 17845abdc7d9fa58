"""The llama.cpp runtime stays light: once its tokenizer is converted (the first use reads it out of the GGUF
with transformers, which imports torch), it never imports torch (about 200 MB of a process's memory)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_llamacpp_default_decides_without_importing_torch():
    code = (
        "import sys\n"
        "from chimein.assistant import get_backend\n"
        "from chimein.data import Message\n"
        "b = get_backend('llamacpp:default')\n"
        "d = b.decide([Message('user', 'pizza or sushi tonight?', 'Ana')], b.new_state(), threshold=1.01)\n"
        "assert d.p_speak is not None\n"
        "print('torch' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().splitlines()[-1] == "False"
