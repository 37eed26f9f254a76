"""Reviewer identities: bearer tokens from the config file, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

_SHA256_HEX = r"^[0-9a-f]{64}$"


class Reviewer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    token: Annotated[str | None, Field(min_length=16, repr=False)] = None
    token_sha256: Annotated[str | None, Field(pattern=_SHA256_HEX, repr=False)] = None
    groups: list[str] = []
    # Who this reviewer is in Slack, for approvals decided there (notifications.slack).
    slack_id: Annotated[str | None, Field(pattern=r"^[UW][A-Z0-9]{2,}$")] = None
    email: Annotated[str | None, Field(pattern=r"^[^@\s]+@[^@\s]+$")] = None

    @model_validator(mode="after")
    def _one_token(self) -> Self:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token or token_sha256")
        return self

    @property
    def digest(self) -> bytes:
        if self.token_sha256 is not None:
            return bytes.fromhex(self.token_sha256)
        assert self.token is not None
        return hashlib.sha256(self.token.encode()).digest()

    def may_decide(self, reviewer_groups: list[str]) -> bool:
        """An approval routed to groups is theirs alone; an unrouted one is anyone's."""
        return not reviewer_groups or bool(set(reviewer_groups) & set(self.groups))


class Reviewers:
    def __init__(self, reviewers: list[Reviewer]) -> None:
        self._by_digest = [(reviewer.digest, reviewer) for reviewer in reviewers]
        self._by_name = {reviewer.name: reviewer for reviewer in reviewers}

    def named(self, name: str) -> Reviewer | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Reviewer]:
        return iter(self._by_name.values())

    def authenticate(self, authorization: str | None) -> Reviewer | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for known, reviewer in self._by_digest:
            # Compare against every token so timing does not tell which one was close.
            if hmac.compare_digest(known, digest):
                found = reviewer
        return found
