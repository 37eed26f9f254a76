"""Which record a held write is about: the connectors' `identify:` fields, the defaults for
derived objects, masking, and the start-up check of the YAML.

Proposals are built by the proxy's own ProposalBuilder against the vendor fakes (tests/fakes)
over real HTTP, so the fields come from the record as each vendor answers it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors_schemas import ConnectorFileError, Matcher, load_connectors
from connectors_schemas.identity import DEFAULT_NAMES, identity_of, label_of, shown_text
from connectors_schemas.loader import load_connector
from connectors_schemas.models import ObjectSpec
from proxy_addon.config import Rule, RuleMatch
from proxy_addon.policy import Policy
from proxy_addon.proposals import ProposalBuilder, WriteRequest
from proxy_addon.upstream import UpstreamClient
from review_api.models import Context, IdentityField, Proposal
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.quickbooks import FakeQuickBooks
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.server import HTTPSFake
from tests.fakes.stripe_api import FakeStripe
from tests.fakes.zendesk import FakeZendesk
from tests.holding import Upstream, matcher


def shown(proposal: Proposal) -> list[tuple[str, str, str | None]]:
    return [(found.field, found.label, found.value) for found in proposal.identity]


class Vendor:
    """A vendor fake served over HTTP, and a ProposalBuilder whose fetches reach it."""

    def __init__(self, host: str, app: Any, policy: Policy | None = None,
                 connectors: Matcher | None = None) -> None:
        self.host = host
        self._server = HTTPSFake(app)
        self._policy = policy or Policy([])
        self._matcher = connectors or matcher()
        self.client: UpstreamClient | None = None

    async def __aenter__(self) -> Vendor:
        self._server.__enter__()
        self.client = UpstreamClient({self.host: ("127.0.0.1", self._server.port)}, None,
                                     timeout=5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.client is not None
        await self.client.close()
        self._server.__exit__(*exc)

    async def propose(self, method: str, path: str, body: bytes | dict[str, Any] | None,
                      headers: list[tuple[str, str]],
                      content_type: str = "application/json") -> Proposal:
        assert self.client is not None
        content = (json.dumps(body).encode() if isinstance(body, dict)
                   else body or b"")
        path_only, _, query = path.partition("?")
        from urllib.parse import parse_qsl
        write = WriteRequest(method=method, url=f"http://{self.host}{path}", host=self.host,
                             path=path_only,
                             headers=[("content-type", content_type), *headers],
                             content=content, raw_content=content, query=parse_qsl(query))
        built = await ProposalBuilder(self._matcher, self.client, self._policy).build(
            write, Context(agent="crm-bot"))
        assert built is not None
        return built.proposal


async def test_a_zendesk_ticket_is_named_by_its_subject_and_requester() -> None:
    zendesk = FakeZendesk()
    zendesk.seed(4812, subject="Printer on fire", requester_id=9001, status="open")
    basic = "Basic " + base64.b64encode(b"agent@acme.test/token:zd-api-token-123").decode()
    async with Vendor("acme.zendesk.com", zendesk.app) as vendor:
        proposal = await vendor.propose("PUT", "/api/v2/tickets/4812.json",
                                        {"ticket": {"status": "solved"}},
                                        [("authorization", basic)])
        created = await vendor.propose("POST", "/api/v2/tickets.json",
                                       {"ticket": {"subject": "New printer", "comment":
                                                   {"body": "please"}}},
                                       [("authorization", basic)])
    assert shown(proposal) == [("subject", "Subject", "Printer on fire"),
                               ("requester_id", "Requester", "9001")]
    # A create is named by what the agent proposes; what it does not send is shown missing.
    assert shown(created) == [("subject", "Subject", "New printer"),
                              ("requester_id", "Requester", None)]


async def test_a_salesforce_lead_is_named_by_name_and_company_even_before_it_has_a_name(
        ) -> None:
    salesforce = FakeSalesforce()
    lead = salesforce.seed_lead(FirstName="Grace", LastName="Hopper", Company="Compilers Inc")
    account = salesforce.seed_account(Name="Acme Corporation")
    bearer = [("authorization", f"Bearer {salesforce.session_id}")]
    base = "/services/data/v60.0/sobjects"
    async with Vendor("acme.my.salesforce.com", salesforce.app) as vendor:
        updated = await vendor.propose("PATCH", f"{base}/Lead/{lead}", {"Status": "Working"},
                                       bearer)
        created = await vendor.propose("POST", f"{base}/Lead",
                                       {"FirstName": "Ada", "LastName": "Lovelace",
                                        "Company": "Engines Ltd"}, bearer)
        renamed = await vendor.propose("PATCH", f"{base}/Account/{account}",
                                       {"Name": "Acme Corp"}, bearer)
    assert shown(updated) == [("Name", "Name", "Grace Hopper"),
                              ("Company", "Company", "Compilers Inc")]
    assert shown(created) == [("Name", "Name", "Ada Lovelace"),
                              ("Company", "Company", "Engines Ltd")]
    # The record as it stands, not as the write would leave it: the change shows the new one.
    assert shown(renamed) == [("Name", "Name", "Acme Corporation")]


async def test_a_quickbooks_invoice_is_named_by_number_customer_and_total() -> None:
    quickbooks = FakeQuickBooks()
    invoice = quickbooks.seed_invoice(DocNumber="1037")
    record = quickbooks.invoices[invoice]
    path = f"/v3/company/{quickbooks.realm_id}/invoice?minorversion=75"
    async with Vendor(quickbooks.host, quickbooks.app) as vendor:
        proposal = await vendor.propose(
            "POST", path, {"Id": invoice, "SyncToken": record["SyncToken"], "sparse": True,
                           "DueDate": "2026-12-31"},
            [("authorization", f"Bearer {quickbooks.access_token}"),
             ("accept", "application/json")])
    assert shown(proposal) == [("DocNumber", "Number", "1037"),
                               ("CustomerRef.name", "Customer", "Amy's Bird Sanctuary"),
                               ("TotalAmt", "Total", str(record["TotalAmt"]))]


async def test_a_hubspot_contact_is_fetched_with_its_name_though_the_write_sends_none(
        ) -> None:
    hubspot = FakeHubSpot()
    contact = hubspot.seed("contacts", firstname="Ada", lastname="Lovelace",
                           email="ada@example.com", lifecyclestage="lead")
    async with Vendor(hubspot.host, hubspot.app) as vendor:
        proposal = await vendor.propose(
            "PATCH", f"/crm/v3/objects/contacts/{contact}",
            {"properties": {"lifecyclestage": "customer"}},
            [("authorization", "Bearer pat-na1-fake-token")])
    assert proposal.old_values.known
    assert [change.field for change in proposal.changes] == ["lifecyclestage"]
    assert shown(proposal) == [("firstname", "First name", "Ada"),
                               ("lastname", "Last name", "Lovelace"),
                               ("email", "Email", "ada@example.com")]


async def test_a_stripe_customer_by_name_and_email_and_a_derived_object_by_the_defaults(
        ) -> None:
    stripe = FakeStripe()
    customer = stripe.seed_customer(name="Jenny Rosen", email="jenny@example.com")
    product = stripe.seed_product(name="Gold Plan")
    auth = [("authorization", f"Bearer {stripe.api_key}")]
    form = "application/x-www-form-urlencoded"
    async with Vendor(stripe.host, stripe.app) as vendor:
        named = await vendor.propose("POST", f"/v1/customers/{customer}",
                                     b"metadata[tier]=gold", auth, form)
        derived = await vendor.propose("POST", f"/v1/products/{product}",
                                       b"active=false", auth, form)
    assert shown(named) == [("name", "Name", "Jenny Rosen"),
                            ("email", "Email", "jenny@example.com")]
    # Products come from Stripe's OpenAPI description alone: the first usual name present.
    assert derived.object_type == "product" and shown(derived) == [
        ("name", "Name", "Gold Plan")]


def test_defaults_take_the_first_usual_name_at_the_top_or_one_level_in() -> None:
    spec = next(spec for spec in load_connectors()["stripe"].objects.values()
                if spec.identify is None)
    assert identity_of(spec, "x", {"id": 1, "email": "a@b.c", "title": "T"})[0].field == "title"
    jira_like = identity_of(spec, "x", {"id": "10001", "fields": {"summary": "Fix login"}})
    assert [(f.field, f.label, f.value) for f in jira_like] == [
        ("fields.summary", "Summary", "Fix login")]
    # Spelled as the vendor spells it; an object or an empty value is no name.
    assert identity_of(spec, "x", {"displayName": "Ada", "name": ""})[0].field == "displayName"
    assert identity_of(spec, "x", {"name": {"first": "A"}, "number": 7})[0].value == 7
    assert identity_of(spec, "x", {"id": 1, "status": "open"}) == []
    assert identity_of(spec, "x", None) == []
    assert DEFAULT_NAMES[:3] == ("name", "title", "subject")
    # `identify: []` says the object has nothing that names it: no default either.
    none = spec.model_copy(update={"identify": []})
    assert identity_of(none, "x", {"name": "Ada"}) == []


def test_every_derived_object_gets_the_defaults_and_every_hand_written_one_names_its_own(
        ) -> None:
    connectors = load_connectors()
    derived = [key for key, spec in connectors["stripe"].objects.items()
               if spec.identify is None and not spec.identify_by_type]
    assert "product" in derived and "customer" not in derived
    for name in ("zendesk", "salesforce", "quickbooks", "hubspot", "stripe", "jira", "github"):
        hand_written = yaml.safe_load(
            (Path(__file__).parents[1] / "connectors_schemas" / f"{name}.yaml").read_text())
        for key, raw in hand_written["objects"].items():
            if raw.get("body") == "graphql":
                continue  # a mutation's object type is known per request: the defaults serve
            assert "identify" in raw or "identify_by_type" in raw, (name, key)


def test_labels_and_shown_values() -> None:
    assert [label_of(name) for name in ("DocNumber", "CustomerRef.name", "display_name",
                                        "hs_lead_status")] == [
        "Doc number", "Name", "Display name", "Hs lead status"]
    assert shown_text({"value": "1", "name": "Amy"}) == "Amy"
    assert shown_text(["a", 2, True]) == "a, 2, true"
    cut = shown_text("x" * 500)
    assert cut is not None and len(cut) == 200 and cut.endswith("…")


CUSTOM = {
    "system": "Acme Desk",
    "hosts": ["desk.acme.test"],
    "objects": {"ticket": {
        "values_path": "ticket",
        "fetch": {"path": "/tickets/{id}"},
        "identify": ["subject", "api_token", {"field": "owner.password", "label": "Owner"},
                     {"field": "link", "label": "Link"}, "note"],
        "routes": [{"method": "PUT", "path": "/tickets/{id}", "operation": "update"}],
    }},
}


@pytest.fixture
def custom(tmp_path: Path) -> Iterator[Matcher]:
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump(CUSTOM))
    yield Matcher({"acme": load_connector(path)})


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    ticket = {"id": 1, "subject": "Printer", "api_token": "tok-s3cret",
              "owner": {"password": "hunter2"}, "note": "n" * 300,
              "link": "https://files.acme.test/t/1?access_token=abc123&page=2"}
    async with Upstream(ticket=ticket).running() as running:
        yield running


async def test_an_identifying_field_that_is_secret_or_carries_one_is_masked(
        custom: Matcher, upstream: Upstream) -> None:
    client = UpstreamClient({"desk.acme.test": ("127.0.0.1", upstream.port)}, None, timeout=5)
    try:
        content = b'{"ticket": {"status": "solved"}}'
        write = WriteRequest(method="PUT", url="http://desk.acme.test/tickets/1",
                             host="desk.acme.test", path="/tickets/1",
                             headers=[("content-type", "application/json")],
                             content=content, raw_content=content)
        built = await ProposalBuilder(custom, client, Policy([])).build(write, Context())
    finally:
        await client.close()
    assert built is not None
    by_field = {found.field: found.value for found in built.proposal.identity}
    assert by_field["subject"] == "Printer"
    assert by_field["api_token"] == "***" and by_field["owner.password"] == "***"
    assert by_field["link"] == "https://files.acme.test/t/1?access_token=***&page=2"
    assert by_field["note"] == "n" * 199 + "…"
    stored = built.proposal.model_dump_json()
    assert "tok-s3cret" not in stored and "hunter2" not in stored and "abc123" not in stored


@pytest.mark.parametrize(("identify", "where", "problem"), [
    (["subject", "subject"], "objects.ticket.identify", "names 'subject' twice"),
    (["sub ject"], "objects.ticket.identify.0.field", "no field path"),
    ([{"field": "a", "label": " "}], "objects.ticket.identify.0.label", "must not be empty"),
    ([{"field": "a", "colour": "red"}], "objects.ticket.identify.0.colour", "Extra inputs"),
    ([f"f{i}" for i in range(7)], "objects.ticket.identify", "at most 6"),
])
def test_a_bad_identify_stops_start_up_naming_file_and_field(
        tmp_path: Path, identify: list[Any], where: str, problem: str) -> None:
    path = tmp_path / "acme.yaml"
    bad = json.loads(json.dumps(CUSTOM))
    bad["objects"]["ticket"]["identify"] = identify
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConnectorFileError) as caught:
        load_connectors(tmp_path / "none", extra_directory=tmp_path)
    message = str(caught.value)
    assert str(path) in message and f"field {where}" in message and problem in message


def test_identify_by_type_is_checked_and_names_the_type(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    bad = json.loads(json.dumps(CUSTOM))
    bad["objects"]["ticket"]["identify_by_type"] = {"Lead": ["Name", "Name"]}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConnectorFileError, match=r"acme.yaml: field objects.ticket."
                                                 r"identify_by_type: .*Lead: names 'Name'"):
        load_connector(path)


def test_a_placeholder_object_picks_its_list_by_type_case_folded() -> None:
    spec = load_connectors()["quickbooks"].objects["entity"]
    assert [item.field for item in spec.identify_for("Invoice") or []] == [
        "DocNumber", "CustomerRef.name", "TotalAmt"]
    assert spec.identify_for("timeactivity") is None  # not named: the defaults
    assert isinstance(spec, ObjectSpec)


async def test_the_verdict_s_reminder_and_escalation_reach_the_proposal() -> None:
    rule = Rule(match=RuleMatch(system="Zendesk"), action="hold", reviewers=["support"],
                remind_after=600, escalate_after=3600, escalate_to=["leads"])
    zendesk = FakeZendesk()
    zendesk.seed(7, subject="Refund")
    basic = "Basic " + base64.b64encode(b"agent@acme.test/token:zd-api-token-123").decode()
    async with Vendor("acme.zendesk.com", zendesk.app, policy=Policy([rule])) as vendor:
        proposal = await vendor.propose("PUT", "/api/v2/tickets/7.json",
                                        {"ticket": {"status": "solved"}},
                                        [("authorization", basic)])
    assert (proposal.remind_after, proposal.escalate_after, proposal.escalate_to) == (
        600, 3600, ["leads"])
    assert proposal.identity == [IdentityField(field="subject", label="Subject", value="Refund"),
                                 IdentityField(field="requester_id", label="Requester",
                                               value=str(zendesk.tickets[7]["requester_id"]))]
