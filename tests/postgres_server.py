"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temp dir, one port.

The PostgreSQL store and traffic record are tested against a real server, not a mock: their
behaviour under concurrency, locks and a server going away is the point of the tests. One server
runs per test session (starting one costs about a second); each test gets a fresh database.
Tests may `stop()` and `start()` (or `restart()`) the server mid-test to simulate PostgreSQL
going down; the port and socket dir stay the same, so URLs handed out stay valid.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

# initdb and postgres refuse to run as root; Debian's package creates this system user.
_UNPRIVILEGED_USER = "postgres"
START_TIMEOUT = 20  # seconds: a cold start on a loaded CI runner is a few seconds at most

INSTALL_HINT = (
    "PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found in "
    "/usr/lib/postgresql/*/bin nor via `pg_config --bindir`. Install them with "
    "`apt-get install postgresql` (Debian/Ubuntu); the PostgreSQL store tests need a real server."
)


class PostgresUnavailable(RuntimeError):
    """The test server could not be found or started; the message says why and what to do."""


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort /usr/lib/postgresql/<version>/bin by version number, so 16 beats 9.6."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def _has_server_binaries(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))


def find_bindir() -> Path:
    """The newest installed PostgreSQL server's bin dir, or PostgresUnavailable with a hint."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bindir in candidates:
        if _has_server_binaries(bindir):
            return bindir
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and _has_server_binaries(bindir):
            return bindir
    raise PostgresUnavailable(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class _RunAs:
    """Who the server's processes run as: ourselves, or `postgres` when we are root."""

    user: str | None
    uid: int
    gid: int

    @classmethod
    def for_current_process(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls(user=None, uid=os.geteuid(), gid=os.getegid())
        try:
            entry = pwd.getpwnam(_UNPRIVILEGED_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, and initdb refuses root: the `{_UNPRIVILEGED_USER}` system "
                f"user (created by Debian's postgresql package) is missing. {INSTALL_HINT}"
            ) from None
        return cls(user=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


class PostgresServer:
    """One PostgreSQL cluster in its own temp dir, listening on 127.0.0.1:<port>."""

    def __init__(self, bindir: Path | None = None, *, start_timeout: int = START_TIMEOUT) -> None:
        self.bindir = bindir or find_bindir()
        self.start_timeout = start_timeout
        self._run_as = _RunAs.for_current_process()
        # Not under pytest's tmp_path: its parent is 0700 root, which `postgres` cannot enter.
        self.base = Path(tempfile.mkdtemp(prefix="hitl-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log = self.base / "server.log"
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"  # the superuser initdb creates (-U), whoever runs the server
        self._initialised = False

    # -- processes -------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run one of the server binaries as the unprivileged user, output captured."""
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGDATA", None)
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base,
            env=env,
            check=False,
            user=self._run_as.uid if self._run_as.user else None,
            group=self._run_as.gid if self._run_as.user else None,
            extra_groups=[] if self._run_as.user else None,
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _initdb(self) -> None:
        self.socket_dir.mkdir()
        if self._run_as.user:
            for path in (self.base, self.socket_dir):
                os.chown(path, self._run_as.uid, self._run_as.gid)
        result = self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "-A", "trust",
            "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions",
            timeout=60,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"initdb failed ({result.returncode}) in {self.data}:\n{result.stdout}\n"
                f"{result.stderr}"
            )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            # A test server's data is thrown away: durability only costs time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/postgres_server.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._initialised = True

    def start(self) -> None:
        """Start the server (initialising the cluster the first time); no-op if it runs."""
        if not self._initialised:
            self._initdb()
        if self.is_running():
            return
        try:
            result = self._run(
                "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log),
                "-w", "-t", str(self.start_timeout),
                timeout=self.start_timeout + 10,
            )
        except subprocess.TimeoutExpired:
            raise PostgresUnavailable(
                f"PostgreSQL did not start within {self.start_timeout}s on port {self.port}; "
                f"server log {self.log}:\n{self._log_tail()}"
            ) from None
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"PostgreSQL did not start on 127.0.0.1:{self.port} (pg_ctl exit "
                f"{result.returncode}: {result.stderr.strip() or result.stdout.strip()}); "
                f"server log {self.log}:\n{self._log_tail()}"
            )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server. mode: "fast" (clean shutdown, clients disconnected) or "immediate"
        (like a crash: no shutdown checkpoint, recovery on next start)."""
        if not self._initialised or not self.is_running():
            return
        result = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w",
                           timeout=60)
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"pg_ctl stop failed ({result.returncode}): {result.stderr.strip()}\n"
                f"{self._log_tail()}"
            )

    def restart(self, mode: str = "fast") -> None:
        """Stop then start again on the same port: clients see their connections drop."""
        self.stop(mode)
        self.start()

    def is_running(self) -> bool:
        if not self._initialised:
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data), timeout=30).returncode == 0

    def destroy(self) -> None:
        """Stop the server and delete its temp dir."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL for one database on this server (TCP on loopback, trust auth)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """CREATE DATABASE and return its URL; the name is random unless given."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE, disconnecting whoever is still connected (a test's leftover pool)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _unavailable(reason: str) -> NoReturn:
    """Fail (never skip: skipped tests hide a missing dependency) with what to do."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must have PostgreSQL (.ci/run installs it): {reason}", pytrace=False)
    pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session, deleted at the end."""
    try:
        server = PostgresServer()
        server.start()
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (its URL); dropped afterwards."""
    postgres_server.start()  # a previous test may have stopped it
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(PostgresUnavailable):
            postgres_server.start()  # this test may have left it stopped
        postgres_server.drop_database(url.rsplit("/", 1)[1])
