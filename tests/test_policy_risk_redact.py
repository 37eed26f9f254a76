import pytest

from connectors_schemas import Operation, RiskHints
from proxy_addon import redact
from proxy_addon.config import Rule, RuleMatch
from proxy_addon.diff import FieldChange
from proxy_addon.policy import Policy, WriteFacts
from proxy_addon.risk import assess
from review_api.models import RiskLevel


def facts(**overrides: object) -> WriteFacts:
    values: dict[str, object] = {"system": "Zendesk", "object_type": "ticket",
                                 "operation": "update", "host": "acme.zendesk.com",
                                 "fields": ["tags"]}
    values.update(overrides)
    return WriteFacts(**values)  # type: ignore[arg-type]


def test_first_matching_rule_wins_and_default_is_hold() -> None:
    policy = Policy([
        Rule(match=RuleMatch(system="zendesk", object="ticket", fields=["tags"]), action="allow"),
        Rule(match=RuleMatch(system="Zendesk"), action="hold", reviewers=["support"]),
        Rule(match=RuleMatch(host="*.example.com"), action="deny", name="no-example"),
    ])
    assert policy.decide(facts()).action == "allow"
    held = policy.decide(facts(fields=["tags", "status"]))
    assert (held.action, held.reviewer_groups, held.rule) == ("hold", ["support"], "policy[1]")
    assert policy.decide(facts(system=None, host="api.example.com")).rule == "no-example"
    default = policy.decide(facts(system=None, host="other.test"))
    assert (default.action, default.rule) == ("hold", "default")


def test_a_fields_rule_never_matches_a_write_with_no_known_fields() -> None:
    policy = Policy([Rule(match=RuleMatch(fields=["tags"]), action="allow")])
    assert policy.decide(facts(fields=[])).action == "hold"


def test_risk_levels_and_reasons() -> None:
    hints = RiskHints(money=["amount"], customer_facing=["comment"])
    low = assess(Operation.update, [FieldChange("status", "open", "solved")], hints,
                 old_values_known=True, recognised=True)
    assert (low.level, low.reasons) == (RiskLevel.low, [])
    money = assess(Operation.update, [FieldChange("amount", 120, 1200),
                                      FieldChange("comment.body", None, "hi")], hints,
                   old_values_known=True, recognised=True)
    assert money.level is RiskLevel.high
    assert money.reasons == ["moves money: amount 120 -> 1200", "customer-visible: comment.body"]
    unknown = assess(None, [], None, old_values_known=False, recognised=False)
    assert unknown.level is RiskLevel.medium
    delete = assess(Operation.delete, [], hints, old_values_known=False, recognised=True)
    assert delete.level is RiskLevel.high and "deletes a record" in delete.reasons


@pytest.mark.parametrize(("name", "value", "masked"), [
    ("Authorization", "Basic dXNlcjpwYXNz", "Basic ***"),
    ("Authorization", "opaque", "***"),
    ("Cookie", "session=abc", "***"),
    ("X-Api-Key", "k", "***"),
    ("Stripe-Account", "acct_1", "acct_1"),
    ("Idempotency-Key", "abc", "abc"),
    # not on the allow-list of headers known to carry no secret: masked whatever the name
    ("Ocp-Apim-Subscription-Key", "k", "***"),
    ("X-Honeycomb-Team", "k", "***"),
    ("X-Acme-Sig", "k", "***"),
])
def test_header_masking(name: str, value: str, masked: str) -> None:
    assert redact.mask_headers([(name, value)]) == {name: masked}


def test_url_and_body_masking() -> None:
    url = "https://user:pw@api.test/v1/x?api_key=s3cret&access_token=t0k&page=2"
    assert redact.mask_url(url) == "https://***@api.test/v1/x?api_key=***&access_token=***&page=2"
    body = {"user": {"name": "A", "password": "p", "api_token": "t", "tokens": None},
            "items": [{"client_secret": "c"}], "author_id": 5}
    assert redact.mask_body(body) == {
        "user": {"name": "A", "password": "***", "api_token": "***", "tokens": None},
        "items": [{"client_secret": "***"}], "author_id": 5}
    assert redact.field_is_secret("user.password") and not redact.field_is_secret("status")


@pytest.mark.parametrize(("match", "facts_overrides", "expected"), [
    ({"agent": "triage-bot"}, {"agent": "triage-bot"}, True),
    ({"agent": ["a", "b"]}, {"agent": "c"}, False),
    ({"task": "ticket-triage"}, {"task": "Ticket-Triage"}, True),
    ({"task": "ticket-triage"}, {"task": None}, False),
    ({"object": "ticket"}, {"object_type": "user"}, False),
    ({"operation": ["update", "delete"]}, {"operation": "delete"}, True),
    ({"action": "void"}, {"operation": "action", "action": "void"}, True),
    ({"risk": "medium"}, {"risk": RiskLevel.high}, True),
    ({"risk": "high"}, {"risk": RiskLevel.medium}, False),
    ({"changes": [{"field": "status", "to": "solved"}]},
     {"changes": [("status", "open", "solved")]}, True),
    ({"changes": [{"field": "status", "to": "solved", "from": "new"}]},
     {"changes": [("status", "open", "solved")]}, False),
    ({"changes": [{"field": "TotalAmt", "above": 1000}]},
     {"changes": [("TotalAmt", "120.00", "1200.00")]}, True),
    ({"changes": [{"field": "TotalAmt", "below": 100}]},
     {"changes": [("TotalAmt", 50, 150)]}, False),
    ({"changes": [{"field": "amount", "increase_above": 500}]},
     {"changes": [("amount", 1000, 1400)]}, False),
    ({"changes": [{"field": "amount", "increase_above": 500}]},
     {"changes": [("amount", None, 600)]}, True),
    ({"changes": [{"field": "status", "to": "solved"}]}, {"changes": []}, False),
])
def test_each_match_key(match: dict, facts_overrides: dict, expected: bool) -> None:
    rule = Rule.model_validate({"match": match, "action": "deny"})
    assert (Policy([rule]).decide(facts(**facts_overrides)).action == "deny") is expected


def test_rule_settings_reach_the_verdict() -> None:
    rule = Rule.model_validate({"match": {}, "action": "hold", "reviewers": ["finance"],
                                "quorum": 2, "hold_timeout": "90s", "expire_after": "1d"})
    verdict = Policy([rule]).decide(facts())
    assert (verdict.quorum, verdict.hold_timeout, verdict.expire_after) == (2, 90.0, 86400.0)


def test_money_threshold_makes_small_moves_medium() -> None:
    hints = RiskHints(money=["TotalAmt"])
    small = assess(Operation.update, [FieldChange("TotalAmt", 120.0, 130.0)], hints,
                   old_values_known=True, recognised=True, money_threshold=50)
    large = assess(Operation.update, [FieldChange("TotalAmt", 120.0, 1200.0)], hints,
                   old_values_known=True, recognised=True, money_threshold=50)
    assert (small.level, large.level) == (RiskLevel.medium, RiskLevel.high)
    assert large.money and large.reasons == ["moves money: TotalAmt 120.0 -> 1200.0"]


def test_an_item_field_is_policed_as_its_lists_field_whatever_its_key_holds() -> None:
    from proxy_addon.proposals import _policy_field

    assert _policy_field("items[si_1].price") == "items.price"
    assert _policy_field("items[si.1]") == "items"
    assert _policy_field("items[si]1]") == "items"  # not items1]: money risk on items holds
    assert _policy_field("items[si]1].quantity") == "items.quantity"
    assert _policy_field("description") == "description"
