"""Typed settings of one `hitl-proxy run`, parsed from flags by `cli` and read by `runner` and
`compose`; it imports neither, so imports point one way (cli -> runner -> compose -> settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DB_FILE = "hitl.sqlite3"  # the embedded default store, in the data dir
TRAFFIC_FILE = "traffic.sqlite3"
CA_BUNDLE_FILE = "upstream-ca-bundle.pem"
DEFAULT_HOLD_TIMEOUT = 50.0  # under zenpy's 60 s and stripe-python's 80 s client timeouts


@dataclass
class RunSettings:
    """Everything the flags of `run` say, checked; the config file's values live in HitlConfig."""

    config_path: Path | None
    listen_host: str
    listen_port: int
    review_host: str
    review_port: int
    data_dir: Path
    certs_dir: Path
    mode: str
    upstream_ca: Path | None
    resolve: dict[str, tuple[str, int]]
    hold_timeout: float
    sets: list[str] = field(default_factory=list)
    # --store, else the config's `store:`, else None: SQLite at <data_dir>/hitl.sqlite3.
    store_url: str | None = None

    @property
    def review_url(self) -> str:
        return f"http://{self.review_host}:{self.review_port}"


def without_password(url: str) -> str:
    """A store URL fit for logs and messages: the password (in the authority or libpq's
    `?password=` parameter) replaced by ***, everything else kept so the URL stays recognisable.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.rpartition("@")[2]
    if not password and "password=" not in parts.query:
        return url
    if password:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        parts = parts._replace(query=urlencode(
            [(name, "***" if name == "password" else value) for name, value in query],
            safe="*"))
    return urlunsplit(parts)


def check_store_url(text: str) -> str:
    """Not empty; which URLs the store factory serves (a SQLite path or sqlite:///path,
    postgresql://...), and whether the server answers, is checked at start-up, naming it."""
    if not text.strip():
        raise ValueError("expected a store URL such as postgresql://user@host/db or a SQLite "
                         "file path, got an empty string")
    return text


def store_problem(url: str | None, data_dir: Path, problem: object) -> str:
    """One line naming the store that failed: its URL (password masked), or the data dir for
    the default SQLite store. A driver's multi-line message is joined onto that line."""
    where = f"store {without_password(url)}" if url else f"--data-dir {data_dir}"
    return f"{where}: {' '.join(str(problem).split())}"
