"""The approvals store: one interface (`base.ApprovalStore`), an embedded SQLite backend and a
PostgreSQL backend for replicas. `store_from_url` picks one from `--store`."""

from review_api.store.base import (
    DEFAULT_AUDIT_KEY,
    DEFAULT_LEASE,
    GENESIS_HASH,
    KEY_REUSE_WINDOW,
    ApprovalStore,
    AuditHead,
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

Store = ApprovalStore  # what components are typed against

__all__ = [
    "DEFAULT_AUDIT_KEY", "DEFAULT_LEASE", "GENESIS_HASH", "KEY_REUSE_WINDOW", "ApprovalStore",
    "AuditHead", "Conflict", "Full", "HeadListener", "NotFound", "ReviewerSession",
    "SqliteStore", "StatusChange", "Store", "StoreError", "entry_hash", "session_key_hash",
]
