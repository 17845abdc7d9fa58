"""The llama.cpp runtime stays light: it never imports torch (about 200 MB of a process's memory)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_llamacpp_default_decides_without_importing_torch():
    code = ("import sys\n"
            "from chimein.assistant import get_backend\n"
            "from chimein.data import Message\n"
            "b = get_backend('llamacpp:default')\n"
            "d = b.decide([Message('user', 'pizza or sushi tonight?', 'Ana')], b.new_state(), threshold=1.01)\n"
            "assert d.p_speak is not None\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
