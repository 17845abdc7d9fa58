"""Helpers shared by the web tests: a real `chimein serve` process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import free_port


class ServerProcess:
    """`chimein serve` in a child process on 127.0.0.1. ``start()`` returns once it answers HTTP;
    ``kill()`` is a crash (SIGKILL), ``stop()`` a clean shutdown. The output goes to ``log``."""

    def __init__(self, db: Path, log: Path, model: str = "mention", port: int | None = None, *extra: str):
        self.db, self.log, self.model, self.port, self.extra = db, log, model, port or free_port(), extra
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 120) -> "ServerProcess":
        cmd = [sys.executable, "-c", "from chimein.cli import app; app()", "serve", "--model", self.model,
               "--db", str(self.db), "--port", str(self.port), *self.extra]
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chimein serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200 and self.proc.poll() is None:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"chimein serve did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "ServerProcess":
        return self if self.proc is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
