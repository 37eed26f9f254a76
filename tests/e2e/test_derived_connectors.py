"""Writes no hand-written connector knew, named from the vendors' own API descriptions.

Each test drives the vendor's own SDK, configured only through its documented settings (the
proxy and its CA), through the real proxy to the fakes (tests/fakes, answering as the shipped
descriptions document), and checks what a reviewer is shown: system, object, operation, record
and the current values fetched through the proxy with the agent's credentials. Then it approves
through the review API and checks the write reached the vendor exactly once and the SDK got the
vendor's answer.

What a reviewer must see is collected with `Reviewer.expect` and asserted at the end of each
test, after the approval has been executed, so one run reports every gap in the held approval
and still proves the write runs exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from github import Auth, Github
from hubspot import HubSpot
from hubspot.crm.associations.v4 import AssociationSpec
from jira import JIRA
from urllib3.util.retry import Retry

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, held, triples
from tests.e2e.test_zendesk_zenpy import agent_env
from tests.fakes.github import FakeGitHub
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.jira import TEAMMATE_ID, FakeJira
from tests.fakes.stripe_api import FakeStripe


class Reviewer:
    """What the reviewer should have been shown, checked once the write has run."""

    def __init__(self, approval: dict[str, Any]) -> None:
        self.approval = approval
        self.gaps: list[str] = []

    def expect(self, condition: bool, what: str) -> None:
        if not condition:
            self.gaps.append(what)

    def names(self, system: str, object_types: tuple[str, ...], operation: str,
              record_id: str | None) -> None:
        """The system, the object as the vendor names it, the operation and the record."""
        a = self.approval
        self.expect(a["system"] == system, f"system {system} (shown: {a['system']!r})")
        self.expect(a["object_type"] in object_types,
                    f"object {' or '.join(object_types)} (shown: {a['object_type']!r})")
        self.expect(a["operation"] == operation,
                    f"operation {operation} (shown: {a['operation']!r})")
        self.expect(a["record_id"] == record_id,
                    f"record {record_id} (shown: {a['record_id']!r})")

    def fetched(self, fetched: bool, what: str) -> None:
        """Old values known, from the record fetched through the proxy."""
        self.expect(self.approval["old_values"]["known"] is True and fetched,
                    f"{what} fetched as the old values (old values: "
                    f"{self.approval['old_values']}, fetched: {fetched})")

    def assert_shown(self) -> None:
        shown = {k: self.approval.get(k) for k in (
            "system", "object_type", "operation", "action", "record_id", "records", "changes",
            "old_values")}
        assert not self.gaps, "the held approval does not show a reviewer:\n- " + "\n- ".join(
            self.gaps) + f"\nit shows: {shown}"


def approve_and_run(proxy: ProxyProcess, approval: dict[str, Any], call: Any) -> Any:
    """Approves, waits for the agent's call to finish, and returns what the SDK returned."""
    assert proxy.decide(approval["id"], "approve").status_code == 200
    call.join()
    assert call.error is None, repr(call.error)
    return call.result


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess) -> ProxyProcess:
    """HTTPS_PROXY and REQUESTS_CA_BUNDLE, as an operator sets them for any agent."""
    agent_env(monkeypatch, proxy)
    return proxy


# ----------------------------------------------------------------------------------- Stripe


@pytest.fixture
def stripe_client(monkeypatch: pytest.MonkeyPatch, agent: ProxyProcess,
                  ) -> Iterator[stripe.StripeClient]:
    # stripe-python verifies against its own bundle unless told otherwise (its documented setting)
    monkeypatch.setattr(stripe, "ca_bundle_path", str(agent.ca_cert))
    http_client = stripe.RequestsClient()
    yield stripe.StripeClient("sk_test_fake_123", http_client=http_client,
                              max_network_retries=0)
    http_client.close()


def test_stripe_subscription_update_shows_each_field_before_and_after(
        agent: ProxyProcess, vendors: dict[str, Vendor],
        stripe_client: stripe.StripeClient) -> None:
    fake: FakeStripe = vendors["stripe"].fake
    basic, pro = fake.seed_price(unit_amount=1000), fake.seed_price(unit_amount=5000)
    sid = fake.seed_subscription(fake.seed_customer(), [basic], description="Starter",
                                 metadata={"seats": "5"})
    item = fake.get(sid)["items"]["data"][0]["id"]
    path = f"/v1/subscriptions/{sid}"
    call, approval = held(agent, lambda: stripe_client.v1.subscriptions.update(sid, {
        "description": "Team", "metadata": {"seats": "10"}, "cancel_at_period_end": True,
        "items": [{"id": item, "price": pro, "quantity": 2}]}))
    review = Reviewer(approval)
    review.names("Stripe", ("subscription",), "update", sid)
    review.fetched(len(fake.log.of("GET", path)) == 1, "the subscription")
    shown = triples(approval)
    review.expect(("description", "Starter", "Team") in shown, "description Starter -> Team")
    review.expect(("metadata.seats", "5", "10") in shown, "metadata.seats 5 -> 10")
    review.expect([(old, new) for field, old, new in shown if field == "cancel_at_period_end"]
                  in ([(False, True)], [(False, "true")]), "cancel_at_period_end false -> true")
    # the item changes price and quantity: each shown old -> new, not two opaque blobs
    by_field = {field: (old, new) for field, old, new in shown if field.startswith("items")}
    review.expect(any(field.endswith("price") and old in (basic, fake.get(basic))
                      and new == pro for field, (old, new) in by_field.items()),
                  f"subscription item {item}: price {basic} -> {pro} as one change "
                  f"(shown: {sorted(by_field)})")
    review.expect(any(field.endswith("quantity") and old == 1 and new in (2, "2")
                      for field, (old, new) in by_field.items()),
                  f"subscription item {item}: quantity 1 -> 2 as one change")

    updated = approve_and_run(agent, approval, call)
    assert updated.id == sid and updated.description == "Team"
    assert (updated["items"]["data"][0].price.id, updated["items"]["data"][0].quantity) == (
        pro, 2)
    assert len(fake.log.of("POST", path)) == 1
    assert agent.wait_for_status(approval["id"], "executed")["result"]["status_code"] == 200
    review.assert_shown()


def test_stripe_subscription_cancel_shows_what_is_canceled(
        agent: ProxyProcess, vendors: dict[str, Vendor],
        stripe_client: stripe.StripeClient) -> None:
    fake: FakeStripe = vendors["stripe"].fake
    sid = fake.seed_subscription(fake.seed_customer(), [fake.seed_price(unit_amount=4900)])
    path = f"/v1/subscriptions/{sid}"
    call, approval = held(agent, lambda: stripe_client.v1.subscriptions.cancel(sid, {
        "cancellation_details": {"comment": "too expensive", "feedback": "too_expensive"}}))
    review = Reviewer(approval)
    review.names("Stripe", ("subscription",), "action", sid)
    review.expect(approval["action"] == "cancel", f"action cancel (shown: {approval['action']})")
    review.fetched(len(fake.log.of("GET", path)) == 1, "the subscription")
    shown = triples(approval)
    review.expect(any(field == "status" and old == "active" for field, old, _ in shown),
                  "the subscription's current status (active) as the old value")
    review.expect(("cancellation_details.comment", None, "too expensive") in shown,
                  "the cancellation comment the agent sends (stripe-python puts a DELETE's "
                  "parameters in the URL query)")

    canceled = approve_and_run(agent, approval, call)
    assert (canceled.id, canceled.status) == (sid, "canceled")
    assert canceled.cancellation_details.comment == "too expensive"
    assert len(fake.log.of("DELETE", path)) == 1
    assert fake.get(sid)["status"] == "canceled"
    review.assert_shown()


# ----------------------------------------------------------------------------------- GitHub


@pytest.fixture
def gh(agent: ProxyProcess, vendors: dict[str, Vendor]) -> Iterator[Github]:
    vendors["github"].fake.seed_repo("acme", "app")
    client = Github(auth=Auth.Token("ghp_fake_token_123"), retry=None,
                    seconds_between_requests=0, seconds_between_writes=0)
    yield client
    client.close()


def test_github_issue_labels_added_and_set_against_the_current_labels(
        agent: ProxyProcess, vendors: dict[str, Vendor], gh: Github) -> None:
    fake: FakeGitHub = vendors["github"].fake
    number = fake.seed_issue("acme", "app", title="Flaky login test", labels=["bug", "p2"])
    issue = gh.get_repo("acme/app").get_issue(number)
    path = f"/repos/acme/app/issues/{number}"
    fetches = len(fake.log.of("GET", path))
    call, approval = held(agent, lambda: issue.add_to_labels("bug", "triage"))
    review = Reviewer(approval)
    # "issue", as the hand-written connector names the same record when it is edited
    review.names("GitHub", ("issue",), "update", str(number))
    review.fetched(len(fake.log.of("GET", path)) == fetches + 1, "the issue")
    changes = [(c["field"], c["old"], c["new"], c["kind"]) for c in approval["changes"]]
    # the labels before and after, or only the label really added ("bug" is already there)
    review.expect(changes in ([("labels", ["bug", "p2"], ["bug", "p2", "triage"], "set")],
                              [("labels", None, "triage", "add")]),
                  "labels bug, p2 -> bug, p2, triage (or one added label, triage; adding "
                  "'bug', which the issue already has, is no change)")

    approve_and_run(agent, approval, call)
    assert fake.issue_record("acme", "app", number)["labels"] == ["bug", "p2", "triage"]
    assert len(fake.log.of("POST", f"{path}/labels")) == 1
    assert agent.wait_for_status(approval["id"], "executed")["result"]["status_code"] == 200

    call, approval = held(agent, lambda: issue.set_labels("p1"))
    again = Reviewer(approval)
    again.names("GitHub", ("issue",), "update", str(number))
    again.expect(triples(approval) == [("labels", ["bug", "p2", "triage"], ["p1"])],
                 f"labels bug, p2, triage -> p1 (shown: {triples(approval)})")
    review.gaps += [f"set labels: {gap}" for gap in again.gaps]
    approve_and_run(agent, approval, call)
    assert fake.issue_record("acme", "app", number)["labels"] == ["p1"]
    assert len(fake.log.of("PUT", f"{path}/labels")) == 1
    review.assert_shown()


def test_github_pull_request_review_is_held_and_created_once(
        agent: ProxyProcess, vendors: dict[str, Vendor], gh: Github) -> None:
    fake: FakeGitHub = vendors["github"].fake
    number = fake.seed_pull("acme", "app", head="fix-login", user="monalisa",
                            title="Fix the login race")
    pull = gh.get_repo("acme/app").get_pull(number)
    call, approval = held(agent, lambda: pull.create_review(
        body="Please add a regression test", event="REQUEST_CHANGES"))
    reviewer = Reviewer(approval)
    reviewer.names("GitHub", ("pull_request_review",), "create", None)  # a new record
    assert approval["url"].endswith(f"/repos/acme/app/pulls/{number}/reviews")
    shown = triples(approval)
    reviewer.expect(("event", None, "REQUEST_CHANGES") in shown, "event (new) REQUEST_CHANGES")
    reviewer.expect(("body", None, "Please add a regression test") in shown, "body (new)")

    review = approve_and_run(agent, approval, call)
    [stored] = fake.reviews_of("acme", "app", number)
    assert (review.id, review.state, review.body) == (
        stored["id"], "CHANGES_REQUESTED", "Please add a regression test")
    assert len(fake.log.of("POST", f"/repos/acme/app/pulls/{number}/reviews")) == 1
    reviewer.assert_shown()


# ------------------------------------------------------------------------------------- Jira


def test_jira_watcher_and_worklog_are_held_against_the_issue(
        agent: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake: FakeJira = vendors["jira"].fake
    key = fake.seed_issue(summary="Nightly export times out", worklogs=[3600])
    jira = JIRA(server="https://acme.atlassian.net",
                basic_auth=("agent@acme.test", "jira-api-token-123"), max_retries=0)
    base = f"/rest/api/2/issue/{key}"  # the jira package speaks v2 unless told otherwise

    def gets(path: str) -> int:
        return len([seen for seen in fake.log.of("GET", path) if seen.path == path])

    call, approval = held(agent, lambda: jira.add_watcher(key, "Mia Krystof"))
    review = Reviewer(approval)
    review.names("Jira", ("Watchers", "watchers", "issue"), "update", key)
    review.fetched(gets(f"{base}/watchers") + gets(base) == 1, "the issue's watchers")
    changes = [(c["field"], c["old"], c["new"], c["kind"]) for c in approval["changes"]]
    review.expect(changes == [("watchers", None, TEAMMATE_ID, "add")],
                  f"one watcher added, {TEAMMATE_ID}")
    answer = approve_and_run(agent, approval, call)
    assert answer.status_code == 204
    assert fake.issue(key)["watchers"] == [fake.me, TEAMMATE_ID]
    assert len(fake.log.of("POST", f"{base}/watchers")) == 1

    fetches = gets(base)
    call, approval = held(agent, lambda: jira.add_worklog(key, timeSpent="2h",
                                                          comment="pairing on the export"))
    worklog_review = Reviewer(approval)
    worklog_review.names("Jira", ("issue", "Worklog", "worklog"), "update", key)
    worklog_review.fetched(gets(base) == fetches + 1, "the issue")
    changes = [(c["field"], c["old"], c["new"], c["kind"]) for c in approval["changes"]]
    worklog_review.expect(changes == [("worklog", None, {
        "timeSpent": "2h", "comment": "pairing on the export"}, "add")],
        "one worklog added: 2h, 'pairing on the export'")
    review.gaps += [f"worklog: {gap}" for gap in worklog_review.gaps]
    worklog = approve_and_run(agent, approval, call)
    [_, stored] = fake.issue(key)["worklogs"]
    assert (worklog.id, worklog.timeSpentSeconds, worklog.comment) == (
        stored["id"], 7200, "pairing on the export")
    assert len(fake.log.of("POST", f"{base}/worklog")) == 1
    jira.close()
    review.assert_shown()


# ---------------------------------------------------------------------------------- HubSpot


def test_hubspot_v4_association_shows_the_pair_and_its_current_labels(
        agent: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake: FakeHubSpot = vendors["hubspot"].fake
    contact = fake.seed("contacts", email="grace@acme.test")
    company = fake.seed("companies", name="Globex")
    fake.seed_association("contacts", contact, "companies", company, [279])  # unlabelled
    client = HubSpot(access_token="pat-na1-fake-token", proxy=agent.proxy_url,
                     ssl_ca_cert=str(agent.ca_cert), retry=Retry(0))
    path = f"/crm/v4/objects/contacts/{contact}/associations/companies/{company}"
    call, approval = held(agent, lambda: client.crm.associations.v4.basic_api.create(
        "contacts", contact, "companies", company, [AssociationSpec(
            association_category="HUBSPOT_DEFINED", association_type_id=1)]))
    review = Reviewer(approval)
    review.expect(approval["system"] == "HubSpot", f"system HubSpot ({approval['system']})")
    review.expect("association" in (approval["object_type"] or "").lower(),
                  f"an association as the object (shown: {approval['object_type']!r}, the "
                  "name of the response schema)")
    review.expect(approval["operation"] in ("create", "update"),
                  f"create (or update) of the association (shown: {approval['operation']!r})")
    ids = {approval["record_id"], *(r["record_id"] for r in approval["records"])}
    review.expect(any(contact in str(i) for i in ids) and any(company in str(i) for i in ids),
                  f"both records, contact {contact} and company {company} (shown: {ids})")
    review.expect(approval["old_values"]["known"] is True
                  and bool(fake.log.of("GET", f"/crm/v4/objects/contacts/{contact}/"
                                              "associations/companies")),
                  "the pair's current associations, from the documented GET "
                  "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType} "
                  f"(old values: {approval['old_values']})")
    review.expect(any(1 in (c["new"] if isinstance(c["new"], list) else [c["new"]])
                      or "1" in str(c["new"]) for c in approval["changes"]),
                  "the association type sent (HUBSPOT_DEFINED 1, Primary) as a new value")

    pair = approve_and_run(agent, approval, call)
    assert (pair.from_object_id, pair.to_object_id, pair.labels) == (contact, company,
                                                                     ["Primary"])
    assert len(fake.log.of("PUT", path)) == 1
    assert fake.associated("contacts", contact, "companies") == {company: [279, 1]}
    review.assert_shown()
