"""Undo an executed write: a new approval for the inverse write, reviewed like any other."""

from __future__ import annotations

from datetime import timedelta

from proxy_addon.executor import HoldSettings, held_write
from proxy_addon.proposals import ProposalBuilder
from proxy_addon.revert import RevertError, inverse
from proxy_addon.sealing import HeldRequest, Sealer
from review_api.models import Approval, Status, utcnow
from review_api.store import Store


class RevertProposals:
    def __init__(self, store: Store, builder: ProposalBuilder, sealer: Sealer,
                 settings: HoldSettings) -> None:
        self.store = store
        self.builder = builder
        self.sealer = sealer
        self.settings = settings

    async def propose(self, approval_id: str, actor: str) -> Approval:
        """A new approval for the inverse write, linked to the first; RevertError says why
        there is none."""
        original = await self.store.get(approval_id)
        if original.status is not Status.executed:
            raise RevertError(f"only an executed write can be reverted; this one is "
                              f"{original.status.value}")
        sealed, sealed_before = (await self.store.sealed_request(approval_id),
                                 await self.store.sealed_before(approval_id))
        if sealed is None:
            raise RevertError("the original request is no longer kept")
        held = self.sealer.unseal(sealed)
        classification = self.builder.classify(held_write(held, self.settings.max_body))
        if classification is None:
            raise RevertError("no connector describes this write")
        before = self.sealer.unseal_data(sealed_before) if sealed_before else {}
        write = inverse(original, classification, held, before)
        context = original.context.model_copy(update={
            "reason": f"revert of approval {original.id}, asked by {actor}"})
        built = await self.builder.build(write, context)
        if built is None:
            raise RevertError("the inverse write would be a read")
        proposal = built.proposal.model_copy(update={"reverts": original.id})
        created = await self.store.create(
            proposal, actor=actor, expires_at=utcnow() + timedelta(
                seconds=built.verdict.expire_after or self.settings.expire_after),
            sealed_request=self.sealer.seal(HeldRequest(write.method, write.url, write.headers,
                                                        write.raw_content)),
            sealed_before=self.sealer.seal_data(built.before) if built.before else None)
        await self.store.log_event("revert_proposed", original.id, actor,
                                   {"revert_approval_id": created.id})
        return created
