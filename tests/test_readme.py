"""README opens with the two commands, and CI runs exactly the test command it gives."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```\n(.+?)\n```", text)[:2]


def test_readme_opens_with_run_and_test_commands() -> None:
    run, test = readme_commands()
    assert run.endswith("hitl-proxy run")
    assert "pytest" in test


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test = readme_commands()
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[-1] == test


def test_the_example_team_config_is_valid() -> None:
    from proxy_addon.config import load_config

    config = load_config(ROOT / "examples" / "team.yaml")
    assert {r.name for r in config.reviewers} >= {"olivia", "sam", "fiona"}
    assert [rule.name for rule in config.policy][:2] == ["no-deletes", "money-needs-two"]
    assert {agent.task for agent in config.agents} == {
        "lead-routing", "ticket-triage", "invoice-followup"}
