"""What if this rule were allow: counts against a seeded history in a real store, the predicate
against the policy itself, and `hitl-proxy policy simulate`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from proxy_addon.cli import main
from proxy_addon.policy import Policy
from proxy_addon.proposals import ProposalBuilder, WriteRequest
from proxy_addon.simulate import RuleError, parse_rule, rule_predicate, simulate_rule, simulator
from proxy_addon.upstream import UpstreamClient
from review_api import Decision, Proposal
from review_api.models import Change, Context
from review_api.store import ApprovalStore, SqliteStore
from review_api.store.postgres import PostgresStore
from tests.holding import HOST, Upstream, matcher

TAGS = [Change(field="tags", old=[], new=["vip"])]
SOLVE = [Change(field="status", old="open", new="solved"), *TAGS]
TAGS_ONLY = "{match: {system: Zendesk, fields: [tags]}}"
ANY_TICKET = "{match: {system: Zendesk, object: ticket}}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApprovalStore]:
    if request.param == "sqlite":
        store: ApprovalStore = SqliteStore(tmp_path / "hitl.sqlite3")
    else:
        store = PostgresStore(request.getfixturevalue("postgres_url"), pool_size=2)
    await store.open()
    yield store
    await store.close()


def proposal(number: int, changes: list[Change], reverts: str | None = None) -> Proposal:
    return Proposal(method="PUT", url=f"https://{HOST}/api/v2/tickets/{number}.json",
                    system="Zendesk", object_type="ticket", operation="update",
                    record_id=str(number), changes=changes, fingerprint="f" * 64,
                    context=Context(task="ticket-triage", agent="triage-bot"), reverts=reverts,
                    edit={"edits": True, "partial": True})


async def executed(store: ApprovalStore, number: int, changes: list[Change]) -> str:
    approval = await store.create(proposal(number, changes))
    await store.decide(approval.id, Decision.approve, "sam", None)
    assert await store.claim_for_sending(approval.id, agent_here=True)
    await store.record_result(approval.id, status_code=200)
    return approval.id


async def revert(store: ApprovalStore, original: str, number: int) -> str:
    """As proxy_addon.revert_proposals records one: a linked approval and `revert_proposed`."""
    created = await store.create(proposal(number, TAGS, reverts=original))
    await store.log_event("revert_proposed", original, "sue",
                          {"revert_approval_id": created.id})
    return created.id


async def seed(store: ApprovalStore) -> dict[str, str]:
    """Ten decided writes (seven touch only tags), one pending, one expired."""
    ids: dict[str, str] = {}
    for name, number in (("as-sent", 1), ("rejected", 3), ("edited", 4)):
        ids[name] = (await store.create(proposal(number, TAGS))).id
    ids["executed"] = await executed(store, 2, TAGS)
    await store.decide(ids["as-sent"], Decision.approve, "sam", None)
    await store.decide(ids["rejected"], Decision.reject, "sam", "wrong tag")
    await store.decide(ids["edited"], Decision.approve, "sam", "gold, not vip",
                       edits=[{"field": "tags", "new": ["gold"]}])
    ids["reverted"] = await executed(store, 5, TAGS)
    ids["revert"] = await revert(store, ids["reverted"], 5)  # still pending: it counts
    ids["revert-refused"] = await executed(store, 6, TAGS)
    ids["refused"] = await revert(store, ids["revert-refused"], 6)
    await store.decide(ids["refused"], Decision.reject, "sam", "the tag was right")
    for name, number in (("solve-rejected", 8), ("solve-partial", 9), ("solve", 10)):
        ids[name] = (await store.create(proposal(number, SOLVE))).id
    await store.decide(ids["solve-rejected"], Decision.reject, "sam", None)
    await store.decide(ids["solve-partial"], Decision.approve, "sam", None,
                       approve_fields=["tags"])
    await store.decide(ids["solve"], Decision.approve, "sam", None)
    await store.create(proposal(11, TAGS))  # pending: nobody decided it
    expired = await store.create(proposal(12, TAGS))
    await store.expire(expired.id)
    return ids


async def test_counts_are_exact_against_a_seeded_history(store: ApprovalStore) -> None:
    ids = await seed(store)
    tags = await simulate_rule(store, parse_rule(TAGS_ONLY))
    # Considered: the ten decided writes and the refused revert; the pending revert, the
    # pending write and the expired one nobody decided.
    assert (tags.considered, tags.would_allow) == (10, 7)
    assert (tags.rejected, tags.edited, tags.reverted, tags.as_sent) == (2, 1, 1, 3)
    outcomes = {example.id: example.outcome for example in tags.examples}
    assert outcomes == {ids["rejected"]: "rejected", ids["edited"]: "edited",
                        ids["reverted"]: "reverted", ids["refused"]: "rejected"}
    [rejected] = [e for e in tags.examples if e.id == ids["rejected"]]
    assert (rejected.note, rejected.decided_by, rejected.record_id) == ("wrong tag", "sam", "3")

    ticket = await simulate_rule(store, parse_rule(ANY_TICKET))
    assert (ticket.considered, ticket.would_allow) == (10, 10)
    # Approving only the tags of a status change is an edit, as changing values is.
    assert (ticket.rejected, ticket.edited, ticket.reverted, ticket.as_sent) == (3, 2, 1, 4)
    assert ids["solve-partial"] in {e.id for e in ticket.examples}

    last_two = await simulate_rule(store, parse_rule(ANY_TICKET), last=2)
    assert (last_two.considered, last_two.would_allow, last_two.edited) == (2, 2, 1)
    nothing = await simulate_rule(store, parse_rule("{match: {system: Stripe}}"))
    assert (nothing.considered, nothing.would_allow, nothing.examples) == (10, 0, [])
    assert (await simulator(store)(TAGS_ONLY)).as_json() == tags.as_json()
    # The page passes what the reviewer may see: nothing else is counted or named.
    seen = await simulator(store)(TAGS_ONLY, visible=lambda a: a.record_id != "3")
    assert (seen.considered, seen.would_allow, seen.rejected) == (9, 6, 1)
    assert ids["rejected"] not in {e.id for e in seen.examples}


@pytest.mark.parametrize(("text", "message"), [
    ("{match: {sytem: Zendesk}}", "rule: match.sytem: unknown key"),
    ("{match: {system: Zendesk}, action: hold}", "rule: action: a simulation asks what an "
                                                 "allow rule would let through, got 'hold'"),
    ("{match: {risk: extreme}}", "rule: match.risk: Input should be 'low', 'medium' or"),
    ("[allow]", "rule: expected a mapping"),
    ("{match: {system: [", "rule: not YAML: "),
    ("{escalate_after: 1h}", "rule: (top level): Value error, escalate_after and escalate_to "
                             "go together"),
])
def test_a_rule_that_cannot_be_used_names_the_key(text: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(text)
    assert str(caught.value).startswith(message), caught.value
    assert "\n" not in str(caught.value)


RULES = [
    TAGS_ONLY,
    "{match: {task: ticket-triage, system: Zendesk, object: ticket, fields: [tags]}}",
    "{match: {agent: triage-bot, fields: [status]}}",
    "{match: {system: Zendesk, operation: delete}}",
    "{match: {changes: [{field: status, to: solved}]}}",
    "{match: {changes: [{field: status, from: open, to: pending}]}}",
    "{match: {changes: [{field: priority, to: urgent}], risk: medium}}",
    "{match: {host: '*.zendesk.com', fields: [tags, status]}}",
    "{match: {host: other.example, system: Zendesk}}",
    "{match: {risk: high}}",
    "{match: {object: user}}",
]
WRITES: list[tuple[str, str, dict[str, Any] | None, Context]] = [
    ("PUT", "/api/v2/tickets/1.json", {"ticket": {"tags": ["vip"]}},
     Context(agent="triage-bot", task="ticket-triage")),
    ("PUT", "/api/v2/tickets/1.json", {"ticket": {"status": "solved"}},
     Context(agent="triage-bot", task="ticket-triage")),
    ("PUT", "/api/v2/tickets/1.json", {"ticket": {"status": "pending", "tags": ["a"]}},
     Context(agent="lead-bot")),
    ("PUT", "/api/v2/tickets/1.json", {"ticket": {"priority": "urgent"}}, Context()),
    ("PUT", "/api/v2/tickets/1.json", {"ticket": {"comment": {"body": "Hello"}}},
     Context(agent="triage-bot", task="ticket-triage")),
    ("DELETE", "/api/v2/tickets/1.json", None, Context(agent="triage-bot")),
    ("POST", "/api/v2/tickets.json", {"ticket": {"subject": "New", "tags": ["vip"]}},
     Context(task="ticket-triage")),
]


def write_request(method: str, path: str, body: dict[str, Any] | None) -> WriteRequest:
    content = json.dumps(body).encode() if body is not None else b""
    return WriteRequest(method=method, url=f"http://{HOST}{path}", host=HOST, path=path,
                        headers=[("content-type", "application/json")], content=content,
                        raw_content=content)


async def test_the_predicate_agrees_with_the_policy_on_held_writes(tmp_path: Path) -> None:
    """Each write built by the proxy's own ProposalBuilder under a policy of one rule, stored,
    read back: the simulation's verdict on the stored approval is the policy's at the time."""
    store = SqliteStore(tmp_path / "hitl.sqlite3")
    await store.open()
    agreed: list[bool] = []
    async with Upstream().running() as upstream:
        client = UpstreamClient({HOST: ("127.0.0.1", upstream.port)}, None, timeout=2)
        try:
            for text in RULES:
                rule = parse_rule(text)
                builder = ProposalBuilder(matcher(), client, Policy([rule]))
                predicate = rule_predicate(rule)
                for method, path, body, context in WRITES:
                    built = await builder.build(write_request(method, path, body), context)
                    assert built is not None
                    stored = await store.get((await store.create(built.proposal)).id)
                    allowed = built.verdict.action == "allow"
                    assert predicate(stored) is allowed, (text, method, path, body)
                    agreed.append(allowed)
        finally:
            await client.close()
            await store.close()
    assert agreed.count(True) >= 8 and agreed.count(False) >= 40  # both answers were tested


# -- hitl-proxy policy simulate --------------------------------------------------------------


async def _seed_file(path: Path) -> dict[str, str]:
    store = SqliteStore(path)
    await store.open()
    try:
        return await seed(store)
    finally:
        await store.close()


def test_cli_simulate_prints_the_counts_and_exits_2_on_a_bad_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = asyncio.run(_seed_file(tmp_path / "hitl.sqlite3"))
    where = ["--data-dir", str(tmp_path)]
    assert main(["policy", "simulate", "--rule", TAGS_ONLY, *where]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("of the last 10 decided writes (asked for 500), this rule would have "
                        "let 7 through without review:")
    assert lines[1] == ("  2 a person rejected, 1 a person edited, 1 reverted later; "
                        "3 approved as sent")
    assert f"  {ids['rejected']} Zendesk/ticket/3: rejected (by sam): wrong tag" in lines
    assert f"  {ids['reverted']} Zendesk/ticket/5: reverted (by sam)" in lines

    assert main(["policy", "simulate", "--rule", ANY_TICKET, "--last", "3", "--json",
                 *where]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert {key: numbers[key] for key in ("considered", "would_allow", "rejected", "edited",
                                          "reverted", "as_sent")} == {
        "considered": 3, "would_allow": 3, "rejected": 1, "edited": 1, "reverted": 0,
        "as_sent": 1}
    assert [example["outcome"] for example in numbers["examples"]] == ["rejected", "edited"]

    for args, message in (
            (["--rule", "{match: {sytem: Zendesk}}"], "--rule: rule: match.sytem: unknown key"),
            (["--rule", "{action: deny}"], "--rule: rule: action: a simulation asks"),
            (["--rule", TAGS_ONLY, "--last", "0"], "argument --last: expected a whole number"),
            ([], "the following arguments are required: --rule")):
        assert main(["policy", "simulate", *args, *where]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"hitl-proxy: error: {message}"), err
    assert main(["policy", "simulate", "--rule", TAGS_ONLY,
                 "--data-dir", str(tmp_path / "none")]) == 2
    assert "no hitl.sqlite3 there" in capsys.readouterr().err
