"""Approvals domain and the reviewers' API; knows nothing of the proxy."""

from review_api.app import ReviewApp
from review_api.auth import Reviewer, Reviewers
from review_api.models import Approval, Change, Context, Decision, Proposal, Risk, Status
from review_api.store import (
    ApprovalStore,
    Conflict,
    Full,
    NotFound,
    SqliteStore,
    Store,
    StoreError,
    store_from_url,
)

__all__ = [
    "Approval",
    "ApprovalStore",
    "Change",
    "Conflict",
    "Context",
    "Decision",
    "Full",
    "NotFound",
    "Proposal",
    "ReviewApp",
    "Reviewer",
    "Reviewers",
    "Risk",
    "SqliteStore",
    "Status",
    "Store",
    "StoreError",
    "store_from_url",
]
