"""The interactivity endpoint (Slack app > Interactivity > Request URL): verify, decide
through the store like the page does (routing's permission, `bulk.record_decision`,
`via="slack"`), and tell the Slack user what happened. Every piece of state it keeps (seen
signatures, message refs) is in the store, so any replica may answer any click.

Slack wants an answer within three seconds and shows nothing of a block_actions answer's
body, so refusals are told with chat.postEphemeral; inside the note modal they are shown as
the modal's field error (`response_action: errors`), which keeps the typed note.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from review_api.auth import Reviewer, Reviewers
from review_api.bulk import record_decision
from review_api.models import Approval, Decision, Status, utcnow
from review_api.slack.api import SlackApi, SlackError
from review_api.slack.blocks import MAX_NOTE_CHARS, NOTE_BLOCK, reject_modal
from review_api.slack.interactions import (
    MAX_BODY,
    Check,
    DecisionRequest,
    Ignored,
    NoteRequest,
    Owners,
    Refusal,
    Refused,
    ReplayGuard,
    SlackInteractions,
    StoreReplayGuard,
    check_decision,
)
from review_api.slack.poster import SlackPoster
from review_api.slack.settings import SlackSettings
from review_api.store.base import ApprovalStore, Conflict, NotFound

logger = logging.getLogger("hitl_proxy")
PATH = "/slack/interactions"


@dataclass(frozen=True, slots=True)
class SlackReply:
    """The HTTP answer to Slack, and what happened (for tests and the log)."""

    status_code: int
    body: dict[str, Any] | None
    outcome: DecisionRequest | NoteRequest | Refusal | Ignored
    decided: Status | None = None  # the approval's status after a vote that went through


class SlackApprovals:
    """`replay` defaults to the store's seen signatures, shared by every replica."""

    def __init__(self, settings: SlackSettings, reviewers: Reviewers,
                 store: ApprovalStore, api: SlackApi, poster: SlackPoster,
                 replay: ReplayGuard | None = None, *, owners: Owners | None = None) -> None:
        self._settings = settings
        self._reviewers = reviewers
        self._store = store
        self._api = api
        self._poster = poster
        self._owners = dict(owners or {})
        self.interactions = SlackInteractions(settings, list(reviewers),
                                              replay or StoreReplayGuard(store),
                                              email_of=api.email_of)

    async def _check(self, approval: Approval, reviewer: Reviewer, fingerprint: str,
                     decision: Decision) -> Check:
        return check_decision(approval, reviewer, fingerprint, decision,
                              self._settings.decide_in_slack_up_to, now=utcnow(),
                              away=await self._store.away(), reviewers=self._reviewers,
                              owners=self._owners)

    async def endpoint(self, request: Request) -> Response:
        """Starlette route: `Route(PATH, slack.endpoint, methods=["POST"])`."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:  # read no more of an unverified body than Slack sends
                return JSONResponse({"error": "the request body is too large"},
                                    status_code=413)
        reply = await self.handle(request.headers, bytes(body))
        if reply.body is None:
            return Response(status_code=reply.status_code)
        return JSONResponse(reply.body, status_code=reply.status_code)

    async def handle(self, headers: Mapping[str, str], body: bytes) -> SlackReply:
        outcome = await self.interactions.parse(headers, body)
        if isinstance(outcome, Refusal):
            return await self._refuse(outcome)
        if isinstance(outcome, Ignored):
            return SlackReply(200, None, outcome)
        if isinstance(outcome, NoteRequest):
            return await self._ask_note(outcome)
        return await self._decide(outcome)

    async def _ask_note(self, ask: NoteRequest) -> SlackReply:
        """Reject clicked: the checks first (why type a note that cannot count?), then the
        modal."""
        try:
            approval = await self._store.get(ask.ref.approval_id)
        except NotFound:
            return await self._refuse(Refusal(Refused.missing,
                                              f"no approval {ask.ref.approval_id}", ask.where))
        check = await self._check(approval, ask.reviewer, ask.ref.fingerprint, Decision.reject)
        if check.why is not None:
            return await self._refuse(Refusal(check.why, check.reason or "", ask.where))
        try:
            await self._api.open_view(ask.trigger_id, reject_modal(
                ask.ref, ask.where.channel, ask.where.message_ts, approval))
        except SlackError as exc:
            logger.warning("%s", exc)
        return SlackReply(200, None, ask)

    async def _decide(self, wanted: DecisionRequest) -> SlackReply:
        try:
            approval = await self._store.get(wanted.approval_id)
        except NotFound:
            return await self._refuse(Refusal(Refused.missing, f"no approval "
                                              f"{wanted.approval_id}", wanted.where,
                                              wanted.in_modal))
        check = await self._check(approval, wanted.reviewer, wanted.fingerprint,
                                  wanted.decision)
        if check.why is not None:
            return await self._refuse(Refusal(check.why, check.reason or "", wanted.where,
                                              wanted.in_modal))
        name = wanted.reviewer.name
        note = wanted.note[:MAX_NOTE_CHARS] if wanted.note else None
        try:
            decided = await record_decision(self._store, wanted.reviewer, approval,
                                            wanted.decision, note, check.permission,
                                            via="slack")
        except Conflict as exc:
            return await self._refuse(Refusal(Refused.conflict, exc.reason, wanted.where,
                                              wanted.in_modal))
        except NotFound:
            return await self._refuse(Refusal(Refused.missing, f"no approval {approval.id}",
                                              wanted.where, wanted.in_modal))
        logger.info("approval %s: %s by %s in Slack (%s)", approval.id, wanted.decision.value,
                    name, wanted.where.slack_user)
        if decided.status is Status.pending:
            approvers = len({v.reviewer for v in decided.votes if v.decision is Decision.approve})
            await self._tell(wanted.where.channel, wanted.where.slack_user,
                             f"Your approval of {decided.id} is counted: {approvers} of "
                             f"{decided.quorum}.")
        # The feed updates the message too (on whichever replica claims the change); this
        # shows the clicker the outcome at once. It never posts: the held change does.
        await self._poster.show(decided, post=False)
        return SlackReply(200, None, wanted, decided.status)

    async def _refuse(self, refusal: Refusal) -> SlackReply:
        if not refusal.trusted:
            logger.warning("Slack interaction refused: %s", refusal.reason)
            return SlackReply(401, {"error": refusal.reason}, refusal)
        assert refusal.where is not None
        if refusal.in_modal:
            return SlackReply(200, {"response_action": "errors",
                                    "errors": {NOTE_BLOCK: refusal.reason[:150]}}, refusal)
        await self._tell(refusal.where.channel, refusal.where.slack_user,
                         f"Nothing was decided: {refusal.reason}")
        return SlackReply(200, None, refusal)

    async def _tell(self, channel: str | None, user: str, text: str) -> None:
        if channel is None:
            return
        try:
            await self._api.ephemeral(channel, user, text)
        except SlackError as exc:
            logger.warning("%s", exc)
