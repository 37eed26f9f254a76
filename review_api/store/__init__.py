"""The approvals store: one interface (`base.ApprovalStore`), an embedded SQLite backend and a
PostgreSQL backend for replicas. `store_from_url` picks one from `--store`.

`PostgresStore` is imported on first use, so importing review_api needs no PostgreSQL driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from review_api.store.base import (
    DEFAULT_AUDIT_KEY,
    DEFAULT_LEASE,
    GENESIS_HASH,
    KEY_REUSE_WINDOW,
    ApprovalStore,
    AuditHead,
    AuditRow,
    Away,
    Conflict,
    Full,
    HeadListener,
    NotFound,
    ReviewerSession,
    StatusChange,
    StoreError,
    entry_hash,
    session_key_hash,
)
from review_api.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from review_api.store.postgres import PostgresStore

Store = ApprovalStore  # what components are typed against
SQLITE_FILE = "hitl.sqlite3"
POSTGRES_SCHEMES = ("postgresql", "postgres")

__all__ = [
    "DEFAULT_AUDIT_KEY", "DEFAULT_LEASE", "GENESIS_HASH", "KEY_REUSE_WINDOW", "ApprovalStore",
    "AuditHead", "AuditRow", "Away", "Conflict", "Full", "HeadListener", "NotFound",
    "PostgresStore", "ReviewerSession", "SqliteStore", "StatusChange", "Store", "StoreError",
    "entry_hash", "session_key_hash", "store_from_url",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from review_api.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def store_from_url(url: str | None, data_dir: Path, *, audit_key: bytes | None = None,
                   busy_timeout: float = 5.0, lease: float = DEFAULT_LEASE) -> ApprovalStore:
    """The store `--store` names: None for SQLite in the data dir, a file path (or
    sqlite:////absolute/path) for SQLite elsewhere, postgresql:// or postgres:// for
    PostgreSQL (a libpq URL: user, password, host, port, database, ?sslmode=...)."""
    if url is None or not url.strip():
        return SqliteStore(data_dir / SQLITE_FILE, busy_timeout=busy_timeout,
                           audit_key=audit_key, lease=lease)
    scheme = urlsplit(url).scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        from review_api.store.postgres import PostgresStore

        return PostgresStore(url, audit_key=audit_key, lease=lease, checkout_timeout=busy_timeout)
    if scheme == "sqlite":  # SQLAlchemy's spelling: sqlite:///relative, sqlite:////absolute
        rest = url.split(":", 1)[1]
        path = Path(rest[3:] if rest.startswith("///") else rest.lstrip("/"))
        return SqliteStore(path, busy_timeout=busy_timeout, audit_key=audit_key, lease=lease)
    if scheme == "" or len(scheme) == 1:  # a plain path (a Windows drive letter is no scheme)
        return SqliteStore(Path(url), busy_timeout=busy_timeout, audit_key=audit_key,
                           lease=lease)
    raise StoreError(f"--store {url.split('://', 1)[0]}://...: unknown store scheme "
                     f"{scheme!r}; use a SQLite file path or postgresql://user@host/db")
