"""The code is formatted by the formatter pinned in pyproject.toml (ruff, line length 119)."""

import shutil
import subprocess

import pytest

from tests.helpers import REPO


def test_the_tree_is_formatted():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: it is pinned in the dev extra (pip install -e '.[dev]')")
    result = subprocess.run(
        [ruff, "format", "--check", "src", "tests", "bench", "data"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
