"""Block Kit messages for a held write and its outcome, and the modal that asks for a
rejection's note.

Everything shown comes from the approval as stored, so values are already masked. What the
agent wrote (reason, values) is escaped: `<!channel>` or `<https://x|click>` from an agent must
not become a mention or a disguised link in a reviewer's channel. Slack's limits
(https://docs.slack.dev/reference/block-kit/blocks) are constants here and every text is cut
to them, so no approval can produce a message Slack refuses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from review_api.models import Approval, Change, Status, utcnow

MAX_BLOCKS = 50  # per message
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000  # each of a section's fields
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_BUTTON_VALUE = 2000
MAX_CONTEXT_TEXT = 3000
MAX_FALLBACK_TEXT = 4000  # the notification text; Slack allows more, nobody reads it
MAX_PRIVATE_METADATA = 3000  # a modal's private_metadata
MAX_VALUE_CHARS = 200  # one old or new value, as shown
MAX_NOTE_CHARS = 2000  # a rejection note typed in the modal

ACTIONS_BLOCK = "hitl_actions"
APPROVE_ACTION = "hitl_approve"
REJECT_ACTION = "hitl_reject"
OPEN_ACTION = "hitl_open"
REJECT_CALLBACK = "hitl_reject_note"  # the modal's callback_id
NOTE_BLOCK = "hitl_note"
NOTE_INPUT = "hitl_note_input"

Message = dict[str, Any]  # {"text": ..., "blocks": [...]}, as chat.postMessage takes it


@dataclass(frozen=True, slots=True)
class ButtonRef:
    """What a button carries: the approval and the fingerprint of the write it was shown.

    A retried write with another body is another approval with another fingerprint, so a
    button left in the channel for an older one decides nothing new.
    """

    approval_id: str
    fingerprint: str

    def value(self) -> str:
        return json.dumps({"id": self.approval_id, "fp": self.fingerprint},
                          separators=(",", ":"))

    @classmethod
    def parse(cls, value: object) -> ButtonRef | None:
        """None for anything but what `value()` makes."""
        if not isinstance(value, str) or len(value) > MAX_BUTTON_VALUE:
            return None
        try:
            body = json.loads(value)
        except ValueError:
            return None
        if not (isinstance(body, dict) and set(body) == {"id", "fp"}):
            return None
        return cls.of(body["id"], body["fp"])

    @classmethod
    def of(cls, approval_id: object, fingerprint: object) -> ButtonRef | None:
        if isinstance(approval_id, str) and isinstance(fingerprint, str) and (
                approval_id and fingerprint):
            return cls(approval_id, fingerprint)
        return None


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as Slack documents (&, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _shown(value: Any) -> str:
    """One value as a code span: cut, escaped, and with no backtick to end the span early."""
    if value is None:
        return "_(none)_"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=str)
    return "`" + escape(cut(text, MAX_VALUE_CHARS).replace("`", "'")) + "`"


def _change_line(change: Change) -> str:
    where = f" (record {escape(change.record_id)})" if change.record_id else ""
    name = escape(change.field.replace("`", "'"))
    if change.kind == "add":
        return f"• `{name}`{where}: add {_shown(change.new)}"
    if change.kind == "remove":
        return f"• `{name}`{where}: remove {_shown(change.old)}"
    return f"• `{name}`{where}: {_shown(change.old)} → {_shown(change.new)}"


def _lines_within(lines: list[str], limit: int, more: str) -> str:
    """As many whole lines as fit in `limit`, then how many were left for the page."""
    shown: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        tail = len(more.format(len(lines) - index)) + 1
        if used + len(line) + 1 + tail > limit:
            shown.append(more.format(len(lines) - index))
            break
        shown.append(line)
        used += len(line) + 1
    return cut("\n".join(shown), limit)


def title(approval: Approval) -> str:
    what = f"{approval.system or 'Unknown system'} {approval.object_type or 'request'}"
    if approval.record_id:
        what += f" {approval.record_id}"
    elif len(approval.records) > 1:
        what += f" ({len(approval.records)} records)"
    doing = approval.action or approval.operation or approval.method
    return f"{what}: {doing}"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION_TEXT)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context",
            "elements": [{"type": "mrkdwn", "text": cut(text, MAX_CONTEXT_TEXT)}]}


def _detail_blocks(approval: Approval) -> list[dict[str, Any]]:
    """What a reviewer judges the write by: the record, the change, the agent's grounds."""
    facts = [("System", approval.system or "unknown"),
             ("Object", approval.object_type or "unknown"),
             ("Record", approval.record_id or (f"{len(approval.records)} records"
                                               if approval.records else "new")),
             ("Risk", approval.risk.level.value)]
    context = approval.context
    facts += [(label, value) for label, value in (("Agent", context.agent),
                                                  ("Task", context.task)) if value]
    blocks: list[dict[str, Any]] = [_fields(facts)]
    # Which record this is, to a person (a ticket's subject, an invoice's number): an id
    # alone does not tell the reviewer whether it is the customer they think.
    identity = [(field.label, field.value if field.value is not None else "(none)")
                for field in approval.identity]
    if identity:
        blocks.append(_fields(identity))
    if approval.changes:
        lines = [_change_line(change) for change in approval.changes]
        blocks.append(_section("*Changes*\n" + _lines_within(
            lines, MAX_SECTION_TEXT - len("*Changes*\n"), "_…and {} more on the page_")))
    if approval.parameters:
        lines = [f"• `{escape(p.name.replace('`', chr(39)))}` = {_shown(p.value)}"
                 for p in approval.parameters]
        blocks.append(_section("*Also sent*\n" + _lines_within(
            lines, MAX_SECTION_TEXT - len("*Also sent*\n"), "_…and {} more on the page_")))
    if not approval.old_values.known:
        blocks.append(_context(f"Old values unknown: {escape(approval.old_values.reason or '')}"))
    if context.reason:
        blocks.append(_section(f"*Reason*\n{escape(context.reason)}"))
    if context.trigger:
        blocks.append(_section(f"*Trigger*\n{escape(context.trigger)}"))
    if approval.risk.reasons:
        reasons = "; ".join(escape(reason) for reason in approval.risk.reasons)
        blocks.append(_context(f"*{approval.risk.level.value.capitalize()} risk:* {reasons}"))
    return blocks


def _fields(facts: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "section",
            "fields": [{"type": "mrkdwn",
                        "text": cut(f"*{escape(label)}*\n{escape(str(value))}", MAX_FIELD_TEXT)}
                       for label, value in facts[:MAX_FIELDS]]}


def _button(text: str, action_id: str, **more: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text},
            "action_id": action_id, **more}


def _actions(approval: Approval, link: str, decide_here: bool) -> dict[str, Any]:
    value = ButtonRef(approval.id, approval.fingerprint).value()
    elements = [_button("Open", OPEN_ACTION, url=link)]
    if decide_here:
        elements = [_button("Approve", APPROVE_ACTION, style="primary", value=value),
                    _button("Reject", REJECT_ACTION, style="danger", value=value),
                    *elements]
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header",
            "text": {"type": "plain_text", "text": cut(text, MAX_HEADER_TEXT)}}


def _when(moment: datetime | None) -> str:
    """Slack shows the reviewer's own time zone; the fallback is UTC."""
    if moment is None:
        return ""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f" <!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def held_message(approval: Approval, link: str, *, decide_here: bool,
                 page_only_because: str | None = None) -> Message:
    """The message posted when a write is held: Approve / Reject / Open, or only Open."""
    blocks = [_header(f"Held for review: {title(approval)}"), *_detail_blocks(approval)]
    blocks.append(_votes_context(approval) or _context(
        f"Needs {approval.quorum} approvals" if approval.quorum > 1 else "Waiting for a reviewer"))
    if not decide_here:
        blocks.append(_context("Decided on the review page"
                               + (f": {escape(page_only_because)}" if page_only_because else "")))
    blocks.append(_actions(approval, link, decide_here))
    return _message(f"Held for review: {title(approval)}", blocks)


def _votes_context(approval: Approval) -> dict[str, Any] | None:
    approvers = sorted({vote.reviewer for vote in approval.votes
                        if vote.decision.value == "approve"})
    if approval.status is not Status.pending or not approvers:
        return None
    return _context(f"{len(approvers)} of {approval.quorum} approvals: "
                    + ", ".join(escape(name) for name in approvers))


OUTCOMES = {  # by status value, so statuses added later only need a line here
    "approved": "Approved",
    "sending": "Approved, being sent",
    "executed": "Approved and sent",
    "failed": "Approved, but not sent",
    "outcome_unknown": "Approved; whether it was sent is unknown",
    "stale": "Approved, not sent: the record changed after review",
    "rejected": "Rejected",
    "expired": "Expired: nobody decided in time",
    "denied": "Denied by policy",
}
WHERE = {"slack": "in Slack", "page": "on the review page", "api": "through the API",
         "cli": "from the command line"}


def outcome_message(approval: Approval, link: str, *, via: str | None) -> Message:
    """The message once decided, replacing the held one: outcome, who, when and where."""
    outcome = OUTCOMES.get(approval.status.value, approval.status.value)
    who = approval.decided_by if approval.status.value not in ("expired", "denied") else None
    where = WHERE.get(via or "", "on the review page or through the API")
    line = f"*{outcome}*"
    if who:
        line += f" by {escape(who)} {where}"
    line += _when(approval.decided_at)
    if approval.note:
        line += f"\n>{escape(cut(approval.note, 500))}"
    if approval.result is not None and approval.result.status_code is not None:
        line += f"\nUpstream answered {approval.result.status_code}"
    elif approval.result is not None and approval.result.error:
        line += f"\n{escape(cut(approval.result.error, 300))}"
    blocks = [_header(f"{outcome}: {title(approval)}"), *_detail_blocks(approval),
              _section(line),
              {"type": "actions", "block_id": ACTIONS_BLOCK,
               "elements": [_button("Open", OPEN_ACTION, url=link)]}]
    return _message(f"{outcome}: {title(approval)}", blocks)


def _waited(approval: Approval, now: datetime) -> str:
    minutes = max(0, int((now - approval.created_at).total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def nudge_text(approval: Approval, event: str, now: datetime | None = None) -> str:
    """The thread reply of a reminder or an escalation (plain mrkdwn, no buttons: the
    message above keeps them)."""
    waited = _waited(approval, now or utcnow())
    if event == "escalated":
        groups = ", ".join(escape(group) for group in approval.escalate_to) or "more reviewers"
        return (f":rotating_light: Escalated: waiting {waited} for review; "
                f"{groups} may now decide it too.")
    return f":alarm_clock: Reminder: waiting {waited} for review."


def _message(text: str, blocks: list[dict[str, Any]]) -> Message:
    # The detail blocks are few and fixed; the bound holds by construction and stays checked.
    assert len(blocks) <= MAX_BLOCKS
    return {"text": cut(text, MAX_FALLBACK_TEXT), "blocks": blocks}


def reject_modal(ref: ButtonRef, channel: str | None, message_ts: str | None,
                 approval: Approval) -> dict[str, Any]:
    """The view views.open shows for Reject: a note, and the button's reference carried in
    private_metadata (Slack returns it unchanged in the view_submission)."""
    metadata = json.dumps({"id": ref.approval_id, "fp": ref.fingerprint, "channel": channel,
                           "ts": message_ts}, separators=(",", ":"))
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": metadata[:MAX_PRIVATE_METADATA],
        "title": {"type": "plain_text", "text": "Reject the write"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _section(f"*{escape(title(approval))}*\nThe agent is told your note."),
            {"type": "input", "block_id": NOTE_BLOCK, "optional": True,
             "label": {"type": "plain_text", "text": "Note"},
             "element": {"type": "plain_text_input", "action_id": NOTE_INPUT,
                         "multiline": True, "max_length": MAX_NOTE_CHARS}},
        ],
    }
