"""`notifications.slack`: where held writes are posted, who the Slack users are, and which
writes Slack may decide. Parsed once at the edge; the rest of the package takes these values."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from review_api.auth import Reviewer
from review_api.models import Risk, RiskLevel

_LEVELS = {RiskLevel.low: 0, RiskLevel.medium: 1, RiskLevel.high: 2}
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackDecisionLimit(_Strict):
    """What a reviewer may decide in Slack; anything beyond it gets only the Open button.

    A Slack message shows a summary; writes that move money or destroy data deserve the page's
    full view (edits, the request, the old record), so by default they are decided there.
    """

    risk: RiskLevel = RiskLevel.high  # the highest risk level decided in Slack
    money: bool = False  # writes that move money may be decided in Slack
    destructive: bool = False  # deletes, merges, archives may be decided in Slack
    customer_facing: bool = True  # writes a customer sees may be decided in Slack

    def allows(self, risk: Risk) -> bool:
        return (_LEVELS[risk.level] <= _LEVELS[self.risk]
                and (self.money or not risk.money)
                and (self.destructive or not risk.destructive)
                and (self.customer_facing or not risk.customer_facing))

    def why_not(self, risk: Risk) -> str | None:
        """Words for the reviewer when `allows` is False: what made it a page-only write."""
        if _LEVELS[risk.level] > _LEVELS[self.risk]:
            return f"its risk is {risk.level.value}"
        for flag, words in (("money", "it moves money"), ("destructive", "it destroys data"),
                            ("customer_facing", "a customer sees it")):
            if getattr(risk, flag) and not getattr(self, flag):
                return words
        return None


class SlackSettings(_Strict):
    bot_token: Annotated[str, Field(min_length=8, repr=False)]  # xoxb-..., scope chat:write
    # The app's signing secret (Basic Information > App Credentials): interactions are HMACs of it.
    signing_secret: Annotated[str, Field(min_length=8, repr=False)]
    channels: dict[str, str] = {}  # reviewer group -> channel id (C...) its writes are posted to
    default_channel: str | None = None  # writes routed to no group, or to groups without one
    api_url: Annotated[str, Field(pattern=r"^https?://.+/$")] = "https://slack.com/api/"
    # The Web API calls go through this HTTP proxy (default: HTTPS_PROXY, as slack_sdk reads it).
    http_proxy: Annotated[str | None, Field(pattern=r"^https?://")] = None
    decide_in_slack_up_to: SlackDecisionLimit = SlackDecisionLimit()
    # Slack user id (U.../W...) or email -> configured reviewer name.
    users: dict[str, str] = {}
    # The workspace (T...) whose users may decide; None: any workspace the app is installed in.
    team_id: Annotated[str | None, Field(pattern=r"^[TE][A-Z0-9]{2,}$")] = None
    timeout: Annotated[float, Field(gt=0, le=60)] = 10.0

    @model_validator(mode="after")
    def _somewhere_to_post(self) -> Self:
        if not self.channels and self.default_channel is None:
            raise ValueError("give channels (reviewer group -> channel id) or default_channel")
        for key in self.users:
            if not (_SLACK_USER_ID.match(key) or _EMAIL.match(key)):
                raise ValueError(f"users: {key!r} is neither a Slack user id (U0123ABCD) "
                                 "nor an email address")
        return self

    def check(self, reviewers: list[Reviewer]) -> None:
        """Names in `users` and groups in `channels` must exist: a typo would silently leave
        a reviewer unable to decide, or a group's writes unposted. ValueError names the key."""
        names = {reviewer.name for reviewer in reviewers}
        keys = [key.lower() for key in self.users]
        if twice := sorted({key for key in keys if keys.count(key) > 1}):
            raise ValueError(f"notifications.slack.users: {twice} given twice")
        groups = {group for reviewer in reviewers for group in reviewer.groups}
        for key, name in self.users.items():
            if name not in names:
                raise ValueError(f"notifications.slack.users: {key} maps to {name!r}, "
                                 f"who is not a configured reviewer ({sorted(names)})")
        for group in self.channels:
            if group not in groups:
                raise ValueError(f"notifications.slack.channels: no reviewer is in group "
                                 f"{group!r} (groups: {sorted(groups)})")
