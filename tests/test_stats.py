"""Stats and the ready_to_loosen signal, computed from a recorded history in a real store."""

from pathlib import Path

import pytest

from review_api import Decision, Proposal, Status
from review_api.models import Change, Context, Risk
from review_api.stats import APPROVED, LooseningCriteria, compute_stats
from review_api.store import ApprovalStore, SqliteStore


def proposal(task: str, *, money: bool = False) -> Proposal:
    return Proposal(method="PUT", url="https://x.test/r/1", system="Zendesk",
                    object_type="ticket", fingerprint="f" * 64, rule="support",
                    context=Context(task=task), risk=Risk(money=money), quorum=1)


@pytest.fixture
async def store(tmp_path: Path):
    store = SqliteStore(tmp_path / "hitl.sqlite3")
    await store.open()
    yield store
    await store.close()


async def record(store: ApprovalStore, task: str, decisions: list[str],
                 money: bool = False) -> None:
    for decision in decisions:
        approval = await store.create(proposal(task, money=money))
        await store.decide(approval.id, Decision(decision), "sam", None)


async def test_ready_only_with_volume_no_recent_rejection_and_no_money(
        store: ApprovalStore) -> None:
    await record(store, "ticket-tagging", ["reject"] + ["approve"] * 12)
    await record(store, "lead-routing", ["approve"] * 5)
    await record(store, "invoice-edit", ["approve"] * 12, money=True)
    await record(store, "ticket-triage", ["approve"] * 8 + ["reject"] + ["approve"] * 3)
    stats = compute_stats(await store.list(), LooseningCriteria(min_decisions=10, recent=5))
    by_task = {row["key"]: row for row in stats["by_task"]}

    tagging = by_task["ticket-tagging"]
    assert (tagging["approved"], tagging["rejected"], tagging["rejection_rate"]) == (
        12, 1, round(1 / 13, 4))
    assert tagging["ready_to_loosen"] is True
    assert tagging["median_seconds_to_decision"] is not None

    assert by_task["lead-routing"]["ready_to_loosen"] is False
    assert "only 5 decisions" in by_task["lead-routing"]["reasons"][0]
    assert by_task["invoice-edit"]["ready_to_loosen"] is False
    assert "moves money: stays approval-first" in by_task["invoice-edit"]["reasons"]
    assert by_task["ticket-triage"]["ready_to_loosen"] is False
    assert "1 of the last 5 decisions were rejections" in by_task["ticket-triage"]["reasons"]

    relaxed = compute_stats(await store.list(),
                            LooseningCriteria(min_decisions=10, recent=5, allow_money=True))
    assert {r["key"]: r for r in relaxed["by_task"]}["invoice-edit"]["ready_to_loosen"] is True
    assert [row["key"] for row in stats["by_rule"]] == ["support"]


async def test_a_write_on_its_way_upstream_counts_as_approved_never_as_pending(
        store: ApprovalStore) -> None:
    """Sending, and what sending can end in (stale, outcome unknown), were a reviewer's approval."""
    ids = []
    for _ in range(4):
        approval = await store.create(proposal("ticket-tagging"))
        await store.decide(approval.id, Decision.approve, "sam", None)
        assert await store.claim_for_sending(approval.id, agent_here=True)
        ids.append(approval.id)
    await store.mark_stale(ids[1], "changed since review")
    await store.mark_outcome_unknown(ids[2], "no answer")
    await store.record_result(ids[3], status_code=200)
    await store.create(proposal("ticket-tagging"))  # still pending
    statuses = {a.status for a in await store.list()}
    assert {Status.sending, Status.stale, Status.outcome_unknown, Status.executed} <= statuses
    [row] = compute_stats(await store.list(), LooseningCriteria())["by_task"]
    assert (row["total"], row["approved"], row["pending"], row["rejected"]) == (5, 4, 1, 0)
    assert APPROVED == {Status.approved, Status.sending, Status.executed, Status.failed,
                        Status.outcome_unknown, Status.stale}


async def approve_and_execute(store: ApprovalStore, task: str, **decision: object) -> str:
    approval = await store.create(proposal(task).model_copy(update={
        "changes": [Change(field="tags", old=[], new=["vip"]),
                    Change(field="status", old="open", new="solved")]}))
    await store.decide(approval.id, Decision.approve, "sam", None, **decision)  # type: ignore[arg-type]
    assert await store.claim_for_sending(approval.id, agent_here=True)
    await store.record_result(approval.id, status_code=200)
    return approval.id


async def test_edits_and_reverts_count_against_loosening(store: ApprovalStore) -> None:
    """An edit means the plan was not clear; a revert, that the write was wrong."""
    criteria = LooseningCriteria(min_decisions=10, recent=3, max_edit_rate=0.1,
                                 max_revert_rate=0.05)
    # Task "tagging": 12 approved, 2 edited (values, and only some fields): 17% > 10%.
    await approve_and_execute(store, "tagging", edits=[{"field": "tags", "new": ["gold"]}])
    await approve_and_execute(store, "tagging", approve_fields=["tags"])
    await approve_and_execute(store, "tagging", approve_fields=["status", "tags"])  # whole
    await record(store, "tagging", ["approve"] * 9)
    # Task "triage": 12 approved, one reverted early on (8%), none edited.
    undone = await approve_and_execute(store, "triage")
    await record(store, "triage", ["approve"] * 11)
    # Task "routing": the last decision was reverted; a rejected revert leaves a write standing.
    await record(store, "routing", ["approve"] * 10)
    stood = await approve_and_execute(store, "routing")
    last = await approve_and_execute(store, "routing")
    for original, outcome in ((undone, None), (stood, Decision.reject), (last, None)):
        created = await store.create(proposal("reverts").model_copy(update={"reverts": original}))
        if outcome is not None:
            await store.decide(created.id, outcome, "sue", "it was right")

    by_task = {row["key"]: row for row in
               compute_stats(await store.list(), criteria)["by_task"]}
    tagging, triage, routing = by_task["tagging"], by_task["triage"], by_task["routing"]
    assert (tagging["edited"], tagging["edit_rate"], tagging["reverted"]) == (
        2, round(2 / 12, 4), 0)
    assert tagging["ready_to_loosen"] is False
    assert ("reviewers edited 2 of 12 approved writes (17%; at most 10%): the agent's plan is "
            "not clear enough") in tagging["reasons"]
    assert (triage["edited"], triage["reverted"], triage["revert_rate"]) == (
        0, 1, round(1 / 12, 4))
    assert triage["reasons"] == ["1 of 12 approved writes were reverted later (8%; at most 5%)"]
    assert (routing["reverted"], routing["ready_to_loosen"]) == (1, False)
    assert routing["reasons"] == ["1 of the last 3 decisions were reverted later"]

    lenient = LooseningCriteria(min_decisions=10, recent=3, max_edit_rate=0.2,
                                max_revert_rate=0.1)
    by_task = {row["key"]: row for row in
               compute_stats(await store.list(), lenient)["by_task"]}
    assert by_task["tagging"]["ready_to_loosen"] is True
    assert by_task["tagging"]["reasons"] == [
        "12 decisions, none of the last 3 rejected or reverted, reviewers agree, 2 edited"]
    assert by_task["triage"]["ready_to_loosen"] is True
    assert by_task["routing"]["ready_to_loosen"] is False  # the last one was still undone
