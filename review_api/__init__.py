"""Approvals domain and the reviewers' API; knows nothing of the proxy."""

from review_api.app import ReviewApp
from review_api.auth import Reviewer, Reviewers
from review_api.models import Approval, Change, Context, Decision, Proposal, Risk, Status
from review_api.store import Conflict, Full, NotFound, Store, StoreError

__all__ = [
    "Approval",
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
    "Status",
    "Store",
    "StoreError",
]
