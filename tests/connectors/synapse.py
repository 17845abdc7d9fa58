"""A real Synapse homeserver for tests: loopback only, SQLite, shared-secret registration, no rate limits.

    with SynapseServer.start(tmp_path) as hs:        # ready in ~3 s; stopped (by its PID) on exit
        alice = hs.register("alice", "Alice A.")     # -> a User with user_id, password
        ...                                          # hs.url is http://127.0.0.1:PORT

The pytest fixture ``synapse_server`` starts one per test session in a fresh temp dir on a free port.

This module is loaded by path (see test_matrix.py): a module named ``synapse`` on ``sys.path`` would
shadow the real Synapse package.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port

SHARED_SECRET = "test-shared-secret"
START_TIMEOUT_S = 90  # a cold start takes ~3 s; generous because CI machines may be busy training

_LIMITS = "{per_second: 1000, burst_count: 1000}"
# PORT and DIR are filled in per server; LIMITS relaxes every rate limit the tests could hit.
CONFIG = """\
server_name: "localhost"
public_baseurl: "http://127.0.0.1:PORT/"
pid_file: DIR/homeserver.pid
listeners:
  - {port: PORT, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false,
     resources: [{names: [client], compress: false}]}
database: {name: sqlite3, args: {database: DIR/homeserver.db}}
media_store_path: DIR/media_store
signing_key_path: DIR/localhost.signing.key
log_config: DIR/log.yaml
report_stats: false
registration_shared_secret: "SECRET"
macaroon_secret_key: "test-macaroon-secret"
form_secret: "test-form-secret"
enable_registration: false
enable_metrics: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
presence: {enabled: false}
bcrypt_rounds: 4
rc_message: LIMITS
rc_registration: LIMITS
rc_login: {address: LIMITS, account: LIMITS, failed_attempts: LIMITS}
rc_joins: {local: LIMITS, remote: LIMITS}
rc_joins_per_room: LIMITS
rc_invites: {per_room: LIMITS, per_user: LIMITS, per_issuer: LIMITS}
rc_admin_redaction: LIMITS
""".replace("LIMITS", _LIMITS).replace("SECRET", SHARED_SECRET)

LOG_CONFIG = """\
version: 1
formatters:
  plain: {format: '%(asctime)s %(levelname)s %(name)s: %(message)s'}
handlers:
  file: {class: logging.FileHandler, formatter: plain, filename: DIR/homeserver.log, level: INFO}
loggers:
  synapse.storage.SQL: {level: WARNING}
root: {level: INFO, handlers: [file]}
disable_existing_loggers: false
"""


@dataclass(frozen=True)
class User:
    user_id: str
    password: str
    display_name: str


class SynapseServer:
    """One Synapse process in ``directory``; use :meth:`start` and stop it with :meth:`stop` (or ``with``)."""

    def __init__(self, directory: Path, port: int):
        self.directory, self.port = Path(directory), port
        self.url = f"http://127.0.0.1:{port}"
        self.server_name = "localhost"
        self.process: subprocess.Popen | None = None
        self._names = itertools.count(1)

    @classmethod
    def start(cls, directory: Path, timeout: float = START_TIMEOUT_S) -> "SynapseServer":
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        server = cls(directory, free_port())
        (directory / "homeserver.yaml").write_text(
            CONFIG.replace("PORT", str(server.port)).replace("DIR", str(directory))
        )
        (directory / "log.yaml").write_text(LOG_CONFIG.replace("DIR", str(directory)))
        out = open(directory / "stdout.log", "wb")
        try:
            server.process = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(directory / "homeserver.yaml")],
                cwd=directory,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            )
        finally:
            out.close()
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"Synapse not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in ("stdout.log", "homeserver.log"):
            path = self.directory / name
            if path.exists():
                text += f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def stop(self) -> None:
        """SIGTERM (Synapse exits in under a second), then SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> "SynapseServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _post(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def register(self, name: str, display_name: str, password: str | None = None) -> User:
        """A new user through the shared-secret admin API; ``name`` gets a unique suffix (alice -> alice1)."""
        username = f"{name}{next(self._names)}"
        password = password or f"{username}-pw"
        nonce = self._post("/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(
            SHARED_SECRET.encode(),
            b"\0".join(x.encode() for x in (nonce, username, password, "notadmin")),
            hashlib.sha1,
        ).hexdigest()
        reply = self._post(
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": username,
                "password": password,
                "displayname": display_name,
                "admin": False,
                "mac": mac,
            },
        )
        return User(reply["user_id"], password, display_name)


@pytest.fixture(scope="session")
def synapse_server(tmp_path_factory):
    with SynapseServer.start(tmp_path_factory.mktemp("synapse")) as server:
        yield server
