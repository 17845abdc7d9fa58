"""A real PostgreSQL for tests: Debian's `postgresql` binaries, a cluster made in a temporary directory, loopback only.

    with PostgresServer.start() as pg:            # initdb + pg_ctl start, ~2 s; stopped and removed on exit
        url = pg.create_database()                # postgresql://postgres@127.0.0.1:PORT/test_1

Fixtures: ``postgres_server`` (one cluster per test session) and ``postgres_url`` (a fresh database per test).
``initdb`` refuses to run as root, so as root (here and in CI) the cluster belongs to the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.helpers import free_port

SYSTEM_USER = "postgres"  # the cluster's owner when the tests run as root; also its superuser's name


def postgres_bindir() -> Path:
    """The newest installed /usr/lib/postgresql/N/bin (Debian's layout); fails the test when there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make test` installs Debian's "
            "postgresql package",
            pytrace=False,
        )
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self, directory: Path, bindir: Path, port: int):
        self.directory, self.bindir, self.port = directory, bindir, port
        self.data = directory / "data"
        self.as_root = os.geteuid() == 0
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SYSTEM_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *cmd: str) -> None:
        argv = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self.as_root:
            argv = ["runuser", "-u", SYSTEM_USER, "--", *argv]
        result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120, cwd=self.directory)
        if result.returncode != 0:
            log = self.directory / "server.log"
            raise RuntimeError(
                f"{' '.join(cmd[:2])} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                + (log.read_text()[-3000:] if log.exists() else "")
            )

    @classmethod
    def start(cls) -> PostgresServer:
        bindir = postgres_bindir()
        # Not under pytest's tmp dir: its parents are private to root, and the server may run as `postgres`.
        server = cls(Path(tempfile.mkdtemp(prefix="chimein-pg-")), bindir, free_port())
        if server.as_root:
            shutil.chown(server.directory, SYSTEM_USER, SYSTEM_USER)
        try:
            server._run("initdb", "-D", str(server.data), "-U", SYSTEM_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={server.directory} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            server._run(
                "pg_ctl",
                "-D",
                str(server.data),
                "-l",
                str(server.directory / "server.log"),
                "-w",
                "-o",
                options,
                "start",
            )
        except BaseException:
            shutil.rmtree(server.directory, ignore_errors=True)
            raise
        return server

    def create_database(self) -> str:
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def postgres_server():
    with PostgresServer.start() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer):
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
