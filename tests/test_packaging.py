"""The wheel carries everything chimein ships, and an installed wheel (not the checkout) decides with the default."""

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
    )
    return next(out.glob("chimein-*.whl"))


def test_the_wheel_holds_every_shipped_resource(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [
        p.relative_to(ROOT / "src").as_posix()
        for p in (ROOT / "src" / "chimein").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    missing = sorted(set(shipped) - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "chimein/resources/default/adapter_model.safetensors" in names


@pytest.mark.slow
def test_an_installed_wheel_decides_with_the_default(wheel, tmp_path):
    # The virtual environment borrows the installed dependencies (torch, llama-cpp-python) but gets chimein
    # itself only from the wheel; it runs outside the checkout so nothing resolves to src/.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], check=True
    )
    where = subprocess.run(
        [python, "-c", "import chimein; print(chimein.__file__)"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(env_dir) in where, where
    request = {"messages": [{"role": "user", "name": "Ana", "content": "hey bot, what is the capital of Spain?"}]}
    out = subprocess.run(
        [env_dir / "bin" / "chimein", "decide"],
        input=json.dumps(request) + "\n",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    decision = json.loads(out.stdout.strip().splitlines()[-1])
    assert decision["speak"] is True and decision["text"].strip()
    assert "(response)" not in decision["text"] and "(silence)" not in decision["text"]
