"""Slack approvals (issue 17): held writes posted to each group's channel with Approve,
Reject and Open; interactions verified with the signing secret and decided through the store
as on the page; the message updated in place wherever the decision was taken.

- `settings`: `notifications.slack` (tokens, channels, users, what Slack may decide)
- `blocks`: the Block Kit messages and the reject modal
- `interactions`: signature, replay, payload -> typed decision request or refusal; the checks
  (routing's `permission`, the fingerprint, the risk limit)
- `api`: the Web API calls (slack_sdk `WebClient`)
- `poster`: posts and updates messages, following the change feed; `SlackFollower` runs it
  as an addon
- `endpoint`: the interactivity route, tying the above to the store
"""

from review_api.slack.api import MessageRef, SlackApi, SlackError
from review_api.slack.endpoint import PATH, SlackApprovals, SlackReply
from review_api.slack.interactions import (
    DecisionRequest,
    Ignored,
    InMemoryReplayGuard,
    NoteRequest,
    Refusal,
    Refused,
    ReplayGuard,
    SlackInteractions,
    StoreReplayGuard,
    check_decision,
)
from review_api.slack.poster import MessageRefs, SlackFollower, SlackPoster
from review_api.slack.settings import SlackDecisionLimit, SlackSettings

__all__ = [
    "PATH", "DecisionRequest", "Ignored", "InMemoryReplayGuard", "MessageRef", "MessageRefs",
    "NoteRequest", "Refusal", "Refused", "ReplayGuard", "SlackApi", "SlackApprovals",
    "SlackDecisionLimit", "SlackError", "SlackFollower", "SlackInteractions", "SlackPoster",
    "SlackReply", "SlackSettings", "StoreReplayGuard", "check_decision",
]
