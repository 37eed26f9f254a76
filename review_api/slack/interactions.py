"""Slack's interaction requests (button clicks, the reject modal's submission) turned into
typed decision requests, or refused with a reason to show.

`SlackInteractions.parse` verifies and reads a request (its replay guard is the one piece of
state, the store's for replicas); `check_decision` applies routing
(`review_api.routing.permission`: groups, escalation, delegation, the owner rule), the risk
limit and the fingerprint to an approval as stored. `review_api.slack.endpoint` puts them
together with the store.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from review_api.auth import Reviewer, Reviewers
from review_api.models import Approval, Decision, Status
from review_api.routing import Permission, permission
from review_api.slack.blocks import (
    APPROVE_ACTION,
    NOTE_BLOCK,
    NOTE_INPUT,
    OPEN_ACTION,
    REJECT_ACTION,
    REJECT_CALLBACK,
    ButtonRef,
)
from review_api.slack.settings import SlackDecisionLimit, SlackSettings
from review_api.store.base import ApprovalStore, Away

WINDOW = 300.0  # Slack's own advice: refuse requests whose timestamp is over five minutes off
MAX_BODY = 64 * 1024  # a block_actions payload with our message is a few KiB


class Refused(StrEnum):
    """Why an interaction decided nothing; `trusted` below says if the user may be told."""

    malformed = "malformed"
    forged = "forged"
    stale_timestamp = "stale_timestamp"
    replay = "replay"
    unmapped = "unmapped"
    not_routed = "not_routed"
    stale_fingerprint = "stale_fingerprint"
    not_pending = "not_pending"
    page_only = "page_only"
    self_approval = "self_approval"
    conflict = "conflict"  # the store refused the vote (already voted, decided meanwhile)
    missing = "missing"
    other_team = "other_team"  # the app is installed in another workspace too


@dataclass(frozen=True, slots=True)
class Where:
    """Where the interaction came from: who clicked, and the message they clicked in."""

    slack_user: str
    channel: str | None = None
    message_ts: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    approval_id: str
    fingerprint: str
    decision: Decision
    note: str | None
    reviewer: Reviewer
    where: Where
    in_modal: bool = False  # from the note modal: a refusal is answered inside it


@dataclass(frozen=True, slots=True)
class NoteRequest:
    """Reject was clicked: open the note modal (views.open with `trigger_id`, valid 3 s)."""

    ref: ButtonRef
    trigger_id: str
    reviewer: Reviewer
    where: Where


@dataclass(frozen=True, slots=True)
class Refusal:
    why: Refused
    reason: str  # for the Slack user (ephemeral message or modal error)
    where: Where | None = None  # None: the request is not trusted, nobody is told
    in_modal: bool = False

    @property
    def trusted(self) -> bool:
        """The request is Slack's own: its user may be answered."""
        return self.where is not None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A genuine interaction that asks nothing of us (the Open link button, a modal closed)."""

    what: str


Interaction = DecisionRequest | NoteRequest | Refusal | Ignored


class ReplayGuard(ABC):
    """Signatures already used, for as long as their timestamp is inside the window.

    A signature covers the timestamp and the body, so within the window it names one request.
    Replicas behind one load balancer share it: `StoreReplayGuard` keeps the signatures in
    the store; the in-memory one serves a single process (and the tests of parsing).
    """

    @abstractmethod
    async def first_use(self, signature: str, expires: float) -> bool:
        """Record `signature` until `expires` (epoch seconds); False if it was seen before."""


class InMemoryReplayGuard(ReplayGuard):
    def __init__(self, clock: Callable[[], float] = time.time, limit: int = 100_000) -> None:
        self._clock = clock
        self._limit = limit
        self._seen: dict[str, float] = {}  # insertion order is about expiry order
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._seen:
            oldest, until = next(iter(self._seen.items()))
            if until > now:
                break
            del self._seen[oldest]

    async def first_use(self, signature: str, expires: float) -> bool:
        async with self._lock:
            self._forget_expired()
            if signature in self._seen:
                return False
            if len(self._seen) >= self._limit:
                # Only Slack can sign, so this means a flood of genuine clicks: refusing one is
                # safer than forgetting a signature that could then be replayed.
                return False
            self._seen[signature] = expires
            return True


class SlackDirectory:
    """Slack users to configured reviewers, by Slack user id or email (case-insensitive).

    From `notifications.slack.users`, and from a reviewer's own `slack_id` / `email` once the
    reviewer config has them (read with getattr so this works before and after).
    """

    def __init__(self, reviewers: list[Reviewer], users: Mapping[str, str]) -> None:
        by_name = {reviewer.name: reviewer for reviewer in reviewers}
        self._by_id: dict[str, Reviewer] = {}
        self._by_email: dict[str, Reviewer] = {}
        for reviewer in reviewers:
            if slack_id := getattr(reviewer, "slack_id", None):
                self._by_id[slack_id] = reviewer
            if email := getattr(reviewer, "email", None):
                self._by_email[email.lower()] = reviewer
        for key, name in users.items():
            if name not in by_name:
                continue  # SlackSettings.check refuses such a config at start
            if "@" in key:
                self._by_email[key.lower()] = by_name[name]
            else:
                self._by_id[key] = by_name[name]

    @property
    def needs_email(self) -> bool:
        return bool(self._by_email)

    def by_id(self, slack_user: str) -> Reviewer | None:
        return self._by_id.get(slack_user)

    def by_email(self, email: str | None) -> Reviewer | None:
        return self._by_email.get(email.lower()) if email else None


EmailOf = Callable[[str], Awaitable[str | None]]  # users.info's profile.email (users:read.email)


class SlackInteractions:
    """Verifies an interaction request and says what it asks for."""

    def __init__(self, settings: SlackSettings, reviewers: list[Reviewer],
                 replay: ReplayGuard, *, email_of: EmailOf | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        # slack_sdk computes the signature; the checks are ours, each with its own reason.
        self._verifier = SignatureVerifier(settings.signing_secret)
        self._replay = replay
        self._clock = clock
        self._directory = SlackDirectory(reviewers, settings.users)
        self._email_of = email_of
        self._team = settings.team_id

    def signature_problem(self, headers: Mapping[str, str], body: bytes) -> Refusal | None:
        """Slack's scheme: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}"), compared in
        constant time, with the timestamp within five minutes of now."""
        lower = {key.lower(): value for key, value in headers.items()}
        timestamp = lower.get("x-slack-request-timestamp", "")
        signature = lower.get("x-slack-signature", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return Refusal(Refused.malformed, "no valid X-Slack-Request-Timestamp")
        if abs(self._clock() - int(timestamp)) > WINDOW:
            return Refusal(Refused.stale_timestamp, "the request's timestamp is more than "
                           "five minutes from now (a replay, or a clock to fix)")
        if not signature.startswith("v0="):
            return Refusal(Refused.forged, "no v0 X-Slack-Signature")
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return Refusal(Refused.malformed, "the body is not UTF-8")
        expected = self._verifier.generate_signature(timestamp=timestamp, body=text) or ""
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return Refusal(Refused.forged, "the signature does not match the signing secret")
        return None

    async def parse(self, headers: Mapping[str, str], body: bytes) -> Interaction:
        """Signature, timestamp and replay first: nothing of an unverified body is read."""
        if len(body) > MAX_BODY:
            return Refusal(Refused.malformed, "the request body is too large")
        if (problem := self.signature_problem(headers, body)) is not None:
            return problem
        lower = {key.lower(): value for key, value in headers.items()}
        signature = lower["x-slack-signature"]
        expires = int(lower["x-slack-request-timestamp"]) + WINDOW
        if not await self._replay.first_use(signature, expires):
            return Refusal(Refused.replay, "this request was already received once")
        payload = _payload(body)
        if payload is None:
            return Refusal(Refused.malformed, "the body has no JSON `payload` form field")
        user = payload.get("user")
        slack_user = user.get("id") if isinstance(user, dict) else None
        if not isinstance(slack_user, str) or not slack_user:
            return Refusal(Refused.malformed, "the payload names no user")
        team = payload.get("team")
        team_id = team.get("id") if isinstance(team, dict) else None
        if self._team is not None and team_id != self._team:
            return Refusal(Refused.other_team, f"this Slack workspace ({team_id}) may not "
                           "decide here", Where(slack_user))
        kind = payload.get("type")
        if kind == "block_actions":
            return await self._block_actions(payload, slack_user)
        if kind == "view_submission":
            return await self._view_submission(payload, slack_user)
        if kind == "view_closed":
            return Ignored("the note modal was closed")
        return Ignored(f"interaction type {kind!r}")

    async def _reviewer(self, slack_user: str) -> Reviewer | None:
        found = self._directory.by_id(slack_user)
        if found is None and self._email_of is not None and self._directory.needs_email:
            found = self._directory.by_email(await self._email_of(slack_user))
        return found

    def _unmapped(self, where: Where, in_modal: bool = False) -> Refusal:
        return Refusal(Refused.unmapped, f"your Slack account ({where.slack_user}) is not "
                       "mapped to a reviewer; ask an admin to add it to "
                       "notifications.slack.users", where, in_modal)

    async def _block_actions(self, payload: dict[str, object], slack_user: str) -> Interaction:
        where = _where(payload, slack_user)
        actions = payload.get("actions")
        action = actions[0] if isinstance(actions, list) and len(actions) == 1 else None
        if not isinstance(action, dict):
            return Refusal(Refused.malformed, "expected exactly one action", where)
        action_id = action.get("action_id")
        if action_id == OPEN_ACTION:
            return Ignored("the Open link")  # Slack reports link clicks too; the browser opens it
        if action_id not in (APPROVE_ACTION, REJECT_ACTION):
            return Ignored(f"action {action_id!r}")
        ref = ButtonRef.parse(action.get("value"))
        if ref is None:
            return Refusal(Refused.malformed, "the button carries no approval", where)
        reviewer = await self._reviewer(slack_user)
        if reviewer is None:
            return self._unmapped(where)
        if action_id == APPROVE_ACTION:
            return DecisionRequest(ref.approval_id, ref.fingerprint, Decision.approve, None,
                                   reviewer, where)
        trigger_id = payload.get("trigger_id")
        if not isinstance(trigger_id, str) or not trigger_id:
            return Refusal(Refused.malformed, "the Reject click carries no trigger_id", where)
        return NoteRequest(ref, trigger_id, reviewer, where)

    async def _view_submission(self, payload: dict[str, object],
                               slack_user: str) -> Interaction:
        view = payload.get("view")
        if not isinstance(view, dict) or view.get("callback_id") != REJECT_CALLBACK:
            return Ignored("a view that is not ours")
        try:
            meta = json.loads(view.get("private_metadata") or "")
        except (TypeError, ValueError):
            meta = None
        if not isinstance(meta, dict):
            meta = {}
        ref = ButtonRef.of(meta.get("id"), meta.get("fp"))
        if ref is None:
            return Refusal(Refused.malformed, "the modal carries no approval",
                           Where(slack_user), in_modal=True)
        where = Where(slack_user, _text(meta.get("channel")), _text(meta.get("ts")))
        reviewer = await self._reviewer(slack_user)
        if reviewer is None:
            return self._unmapped(where, in_modal=True)
        return DecisionRequest(ref.approval_id, ref.fingerprint, Decision.reject,
                               _note(view), reviewer, where, in_modal=True)


def _payload(body: bytes) -> dict[str, object] | None:
    try:
        fields = parse_qs(body.decode(), strict_parsing=True, max_num_fields=4)
        found = json.loads(fields["payload"][0])
    except (ValueError, KeyError, IndexError):
        return None
    return found if isinstance(found, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _where(payload: dict[str, object], slack_user: str) -> Where:
    container = payload.get("container")
    channel = payload.get("channel")
    container = container if isinstance(container, dict) else {}
    channel_id = _text(container.get("channel_id")) or (
        _text(channel.get("id")) if isinstance(channel, dict) else None)
    return Where(slack_user, channel_id, _text(container.get("message_ts")))


def _note(view: dict[str, object]) -> str | None:
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    block = values.get(NOTE_BLOCK) if isinstance(values, dict) else None
    field = block.get(NOTE_INPUT) if isinstance(block, dict) else None
    note = field.get("value") if isinstance(field, dict) else None
    return note.strip() or None if isinstance(note, str) else None


Owners = Mapping[str, str]  # agent name -> the reviewer who runs it


@dataclass(frozen=True, slots=True)
class Check:
    """What `check_decision` found: `why` None when the vote may be cast; `permission` is
    routing's answer (its `on_behalf_of` names an away reviewer a delegate acts for)."""

    why: Refused | None
    reason: str | None
    permission: Permission


def check_decision(approval: Approval, reviewer: Reviewer, fingerprint: str,
                   decision: Decision, limit: SlackDecisionLimit, *, now: datetime,
                   away: list[Away], reviewers: Reviewers,
                   owners: Owners | None = None) -> Check:
    """May the reviewer cast this vote from Slack? Who may decide is
    `review_api.routing.permission`'s answer, as on every other path; Slack adds the
    fingerprint (the button's write must be the one stored) and the risk limit. Quorum and a
    repeated vote are the store's (`decide`)."""
    denied = Permission(False, None, None)
    if not hmac.compare_digest(approval.fingerprint.encode(), fingerprint.encode()):
        return Check(Refused.stale_fingerprint, f"this button is for an earlier version of "
                     f"{approval.id}: the write was changed or replaced; open it on the page",
                     denied)
    if approval.status is not Status.pending:
        by = f" by {approval.decided_by}" if approval.decided_by else ""
        return Check(Refused.not_pending, f"{approval.id} is already "
                     f"{approval.status.value}{by}", denied)
    allowed = permission(reviewer, approval, now=now, away=away, reviewers=reviewers,
                         owners=dict(owners or {}), decision=decision)
    if not allowed.allowed:
        # Routed but for the owner rule: a refusal of its own kind.
        routed = permission(reviewer, approval, now=now, away=away, reviewers=reviewers,
                            owners={}, decision=decision).allowed
        return Check(Refused.self_approval if routed else Refused.not_routed,
                     allowed.reason or "not allowed", allowed)
    if not limit.allows(approval.risk):
        return Check(Refused.page_only, f"{approval.id} is decided on the review page: "
                     f"{limit.why_not(approval.risk)}", allowed)
    return Check(None, None, allowed)


class StoreReplayGuard(ReplayGuard):
    """The signatures in the store, so every replica behind one load balancer refuses a
    request another already took."""

    def __init__(self, store: ApprovalStore) -> None:
        self._store = store

    async def first_use(self, signature: str, expires: float) -> bool:
        return not await self._store.seen_signature(signature, expires)
