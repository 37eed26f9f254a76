"""The approval a held write waits on: a retry joins the one already waiting, else a new one
is committed. An Idempotency-Key names one request, as Stripe's rule says."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from proxy_addon.executor import HoldSettings
from proxy_addon.offload import off_loop
from proxy_addon.proposals import Built, WriteRequest
from proxy_addon.sealing import HeldRequest, Sealer
from review_api.models import Approval, Status, utcnow
from review_api.store import Full, Store

logger = logging.getLogger("hitl_proxy")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the write is refused instead of held; nothing was committed."""

    status_code: int
    message: str
    approval_id: str | None = None
    retry_after: str | None = None


async def join_or_create(store: Store, sealer: Sealer, settings: HoldSettings,
                         idempotency_key: str | None, write: WriteRequest, built: Built,
                         large: bool) -> Approval | Refusal:
    """The approval this write waits on, held by this replica (`held_here`, `hold`)."""
    proposal = built.proposal
    key_digest = hashlib.sha256(idempotency_key.encode()).hexdigest() if idempotency_key \
        else None
    if key_digest is not None and (used := await store.key_in_use(
            proposal.context.agent, key_digest)) is not None:
        if used.fingerprint != proposal.fingerprint:
            # Stripe's rule: a key names one request; another body under it is a mistake.
            return Refusal(409, "this Idempotency-Key was already used for a different request "
                                f"(approval {used.id}); use a new key for a new write", used.id)
        if used.status is not Status.pending:
            return Refusal(409, f"this Idempotency-Key's write was already {used.status.value} "
                                f"(approval {used.id}); its status_url tells the outcome",
                           used.id)
    approval = await store.find_pending(proposal.fingerprint, proposal.context.agent,
                                        key_digest)
    if approval is not None:
        # An agent's retry joins the write already waiting; it can execute only once. Its
        # connection is the live one now: an older one held on another replica learns it
        # from this entry's replica (see Executor.release).
        await store.hold(approval.id)
        await store.log_event("retry_joined", approval.id, "proxy", {"replica": store.replica})
        logger.info("retry of %s %s joined approval %s", write.method, proposal.url,
                    approval.id)
        return approval
    sealed = await off_loop(large, sealer.seal,
                            HeldRequest(write.method, write.url, write.headers,
                                        write.raw_content))
    expire_after = built.verdict.expire_after or settings.expire_after
    try:
        approval = await store.create(
            proposal, expires_at=utcnow() + timedelta(seconds=expire_after),
            sealed_request=sealed, idempotency_key=key_digest,
            max_pending=settings.max_pending,
            sealed_before=sealer.seal_data(built.before) if built.before else None,
            max_pending_per_agent=settings.max_pending_per_agent, held_here=True)
    except Full as exc:
        logger.warning("refused %s %s: %s", write.method, proposal.url, exc)
        return Refusal(429, f"too many writes wait for review: {exc}", retry_after="60")
    logger.info("held %s %s as approval %s", write.method, proposal.url, approval.id)
    return approval
