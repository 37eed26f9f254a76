"""Config and policy for issue 17's routing: a rule's reminder and escalation reach the
verdict, and an agent's owner must be a configured reviewer (proxy_addon.config, .policy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_addon.config import ConfigError, HitlConfig, Rule, agent_owners, load_config
from proxy_addon.policy import DEFAULT_VERDICT, Policy, WriteFacts

FACTS = WriteFacts(system="QuickBooks", object_type="invoice", operation="update",
                   host="quickbooks.api.intuit.com", fields=["TotalAmt"])


def test_remind_and_escalate_reach_the_verdict() -> None:
    rule = Rule.model_validate({"action": "hold", "reviewers": ["finance"],
                                "remind_after": "15m", "escalate_after": "2h",
                                "escalate_to": ["finance-leads"]})
    verdict = Policy([rule]).decide(FACTS)
    assert (verdict.remind_after, verdict.escalate_after, verdict.escalate_to) == (
        900.0, 7200.0, ["finance-leads"])
    assert (DEFAULT_VERDICT.remind_after, DEFAULT_VERDICT.escalate_to) == (None, [])
    with pytest.raises(ValueError, match="escalate_after and escalate_to go together"):
        Rule.model_validate({"action": "hold", "escalate_after": "1h"})


def test_an_agents_owner_is_a_configured_reviewer(tmp_path: Path) -> None:
    reviewers = [{"name": "dana", "token": "dana-token-0000001", "groups": ["finance"]}]
    config = HitlConfig.model_validate({"reviewers": reviewers, "agents": [
        {"name": "billing-bot", "secret": "billing-bot-secret-1", "owner": "dana"},
        {"name": "helper", "secret": "helper-bot-secret-02"}]})
    config.check()
    assert agent_owners(config) == {"billing-bot": "dana"}
    path = tmp_path / "hitl.yaml"
    path.write_text("reviewers:\n  - {name: dana, token: dana-token-0000001}\n"
                    "agents:\n  - {name: billing-bot, secret: billing-bot-secret-1,"
                    " owner: dan}\n")
    with pytest.raises(ConfigError, match="billing-bot's owner 'dan' is not a configured "
                                          "reviewer; known: \\['dana'\\]"):
        load_config(path)


def test_loosening_rates_reach_the_criteria() -> None:
    from proxy_addon.config import loosening_criteria

    config = HitlConfig.model_validate({"loosening": {"max_edit_rate": 0.2,
                                                      "max_revert_rate": 0.01}})
    criteria = loosening_criteria(config)
    assert (criteria.max_edit_rate, criteria.max_revert_rate) == (0.2, 0.01)
    with pytest.raises(ValueError, match="max_edit_rate"):
        HitlConfig.model_validate({"loosening": {"max_edit_rate": 1.5}})
