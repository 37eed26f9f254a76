"""The approval state machine: the transition table and what one vote does."""

from datetime import timedelta

import pytest

from review_api import lifecycle
from review_api.lifecycle import IllegalTransition, VoteKind, check, forgets_sealed, vote
from review_api.models import Decision, Status, utcnow


def test_every_status_has_a_row_and_terminal_ones_lead_nowhere() -> None:
    assert set(lifecycle.TRANSITIONS) == set(Status)
    for status in (Status.rejected, Status.expired, Status.denied, Status.executed,
                   Status.failed, Status.stale):
        assert lifecycle.is_terminal(status)
    assert not lifecycle.is_terminal(Status.outcome_unknown)  # a reviewer resolves it


@pytest.mark.parametrize(("source", "target"), [
    (Status.pending, Status.approved), (Status.approved, Status.sending),
    (Status.approved, Status.failed), (Status.sending, Status.executed),
    (Status.sending, Status.outcome_unknown), (Status.sending, Status.stale),
    (Status.outcome_unknown, Status.executed), (None, Status.pending), (None, Status.denied),
])
def test_legal_transitions_pass(source: Status | None, target: Status) -> None:
    check(source, target)


@pytest.mark.parametrize(("source", "target"), [
    (Status.approved, Status.executed),  # never without being claimed for sending first
    (Status.approved, Status.outcome_unknown),  # nothing was sent: its outcome is known
    (Status.pending, Status.sending), (Status.rejected, Status.approved),
    (Status.executed, Status.failed), (Status.sending, Status.approved),
    (None, Status.approved),
])
def test_an_illegal_transition_raises(source: Status | None, target: Status) -> None:
    with pytest.raises(IllegalTransition, match=f"-> {target.value}|created {target.value}"):
        check(source, target)


def test_only_writes_that_did_not_happen_forget_their_sealed_request() -> None:
    assert {s for s in Status if forgets_sealed(s)} == {
        Status.rejected, Status.expired, Status.denied, Status.failed, Status.stale}


def approve(votes: list, reviewer: str, quorum: int = 1, **options: object):
    return vote(votes, quorum=quorum, expires_at=options.get("expires_at"),  # type: ignore[arg-type]
                decision=Decision.approve, reviewer=reviewer, note=None, now=utcnow())


def test_quorum_counts_distinct_approvers() -> None:
    first = approve([], "sam", quorum=2)
    assert (first.kind, first.status, first.approvals) == (VoteKind.voted, Status.pending, 1)
    repeat = approve(first.votes, "sam", quorum=2)
    assert (repeat.kind, repeat.votes) == (VoteKind.repeat, first.votes)
    second = approve(first.votes, "sue", quorum=2)
    assert (second.kind, second.status, second.approvals) == (VoteKind.decided,
                                                              Status.approved, 2)
    assert [v["reviewer"] for v in second.votes] == ["sam", "sue"]
    assert approve([], "sam", quorum=0).kind is VoteKind.decided  # a quorum of 0 means 1


def test_any_rejection_rejects_and_a_late_vote_expires() -> None:
    first = approve([], "sam", quorum=3)
    rejected = vote(first.votes, quorum=3, expires_at=None, decision=Decision.reject,
                    reviewer="sue", note="no", now=utcnow())
    assert (rejected.kind, rejected.status) == (VoteKind.decided, Status.rejected)
    assert rejected.votes[-1] | {"at": None} == {"reviewer": "sue", "decision": "reject",
                                                 "note": "no", "at": None}
    late = approve([], "sam", expires_at=utcnow() - timedelta(seconds=1))
    assert (late.kind, late.status, late.votes) == (VoteKind.expired, Status.expired, [])


def test_a_delegates_vote_counts_as_the_away_reviewers_and_never_twice() -> None:
    """Quorum 2 routed to finance: A (finance) is away with delegate B. A's own approval and
    B's approval for A are one authority, in either order; B cannot vote twice either."""
    now = utcnow()
    a_first = vote([], quorum=2, expires_at=None, decision=Decision.approve, reviewer="a",
                   note=None, now=now)
    assert a_first.kind is VoteKind.voted
    for_a = vote(a_first.votes, quorum=2, expires_at=None, decision=Decision.approve,
                 reviewer="b", note=None, now=now, on_behalf_of="a")
    assert for_a.kind is VoteKind.repeat and for_a.approvals == 1
    b_first = vote([], quorum=2, expires_at=None, decision=Decision.approve, reviewer="b",
                   note=None, now=now, on_behalf_of="a")
    assert b_first.votes[-1]["on_behalf_of"] == "a"
    assert vote(b_first.votes, quorum=2, expires_at=None, decision=Decision.approve,
                reviewer="a", note=None, now=now).kind is VoteKind.repeat
    assert vote(b_first.votes, quorum=2, expires_at=None, decision=Decision.approve,
                reviewer="b", note=None, now=now).kind is VoteKind.repeat
    second = vote(b_first.votes, quorum=2, expires_at=None, decision=Decision.approve,
                  reviewer="c", note=None, now=now)
    assert second.kind is VoteKind.decided and second.approvals == 2
