"""The interactivity endpoint (Slack app > Interactivity > Request URL): verify, decide
through the store like the page does, and tell the Slack user what happened.

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

from review_api.auth import Reviewer
from review_api.models import Decision, Status
from review_api.slack.api import SlackApi, SlackError
from review_api.slack.blocks import MAX_NOTE_CHARS, NOTE_BLOCK, reject_modal
from review_api.slack.interactions import (
    MAX_BODY,
    DecisionRequest,
    Ignored,
    NoteRequest,
    Owners,
    Refusal,
    Refused,
    ReplayGuard,
    SlackInteractions,
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
    def __init__(self, settings: SlackSettings, reviewers: list[Reviewer],
                 store: ApprovalStore, api: SlackApi, poster: SlackPoster,
                 replay: ReplayGuard, *, owners: Owners | None = None) -> None:
        self._settings = settings
        self._store = store
        self._api = api
        self._poster = poster
        self._owners = owners or {}
        self.interactions = SlackInteractions(settings, reviewers, replay,
                                              email_of=api.email_of)

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
        problem = check_decision(approval, ask.reviewer, ask.ref.fingerprint, Decision.reject,
                                 self._settings.decide_in_slack_up_to, self._owners)
        if problem is not None:
            return await self._refuse(Refusal(problem[0], problem[1], ask.where))
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
        problem = check_decision(approval, wanted.reviewer, wanted.fingerprint,
                                 wanted.decision, self._settings.decide_in_slack_up_to,
                                 self._owners)
        if problem is not None:
            return await self._refuse(Refusal(problem[0], problem[1], wanted.where,
                                              wanted.in_modal))
        name = wanted.reviewer.name
        note = wanted.note[:MAX_NOTE_CHARS] if wanted.note else None
        try:
            decided = await self._store.decide(approval.id, wanted.decision, name, note)
        except Conflict as exc:
            return await self._refuse(Refusal(Refused.conflict, exc.reason, wanted.where,
                                              wanted.in_modal))
        # After the vote, never before: a refused vote must not label a later one. The feed
        # may show the decision first without it; the show() below corrects the label.
        await self._poster.origins.record(approval.id, name, "slack")
        logger.info("approval %s: %s by %s in Slack (%s)", approval.id, wanted.decision.value,
                    name, wanted.where.slack_user)
        if decided.status is Status.pending:
            approvers = len({v.reviewer for v in decided.votes if v.decision is Decision.approve})
            await self._tell(wanted.where.channel, wanted.where.slack_user,
                             f"Your approval of {decided.id} is counted: {approvers} of "
                             f"{decided.quorum}.")
        await self._poster.show(decided)
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
