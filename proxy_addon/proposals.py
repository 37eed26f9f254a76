"""From a held write to what a reviewer sees: match, fetch current record, diff, risk, policy."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connectors_schemas import BodyShapeError, Match, Matcher, Operation
from proxy_addon import redact
from proxy_addon.diff import Diff, compute_diff
from proxy_addon.policy import Policy, Verdict, WriteFacts
from proxy_addon.risk import assess
from proxy_addon.upstream import UpstreamClient
from review_api.models import Change, Context, OldValues, Proposal, RequestSummary

MAX_SHOWN_TEXT = 64 * 1024


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """A write as the agent sent it; `content` is decoded, `raw_content` is what goes upstream."""

    method: str
    url: str
    host: str
    path: str
    headers: list[tuple[str, str]]
    content: bytes
    raw_content: bytes

    @property
    def content_type(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        return None


def fingerprint(method: str, url: str, raw_content: bytes) -> str:
    """Binds an approval to the exact bytes reviewed: method, full URL and body as sent."""
    digest = hashlib.sha256()
    digest.update(f"{method.upper()}\n{url}\n".encode())
    digest.update(raw_content)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ParsedBody:
    value: Any  # parsed JSON, or None
    problem: str | None  # why it could not be parsed, for the reviewer


def parse_body(write: WriteRequest) -> ParsedBody:
    if not write.content:
        return ParsedBody(None, None)
    content_type = (write.content_type or "").lower()
    looks_json = write.content.lstrip()[:1] in (b"{", b"[")
    if "json" not in content_type and not looks_json:
        return ParsedBody(None, f"the body is not JSON ({content_type or 'no content type'})")
    try:
        return ParsedBody(json.loads(write.content), None)
    except UnicodeDecodeError as exc:
        return ParsedBody(None, f"the body is not valid UTF-8: {exc.reason} at byte {exc.start}")
    except ValueError as exc:
        return ParsedBody(None, f"the body is not valid JSON: {exc}")


def _shown_body(write: WriteRequest, parsed: ParsedBody) -> Any:
    if parsed.value is not None:
        return redact.mask_body(parsed.value)
    if not write.content:
        return None
    text = write.content[:MAX_SHOWN_TEXT].decode("utf-8", errors="replace")
    return text if len(write.content) <= MAX_SHOWN_TEXT else text + "… (truncated)"


def _masked_changes(diff: Diff) -> list[Change]:
    return [
        Change(field=change.field, old=redact.MASK, new=redact.MASK)
        if redact.field_is_secret(change.field)
        else Change(field=change.field, old=redact.mask_body(change.old),
                    new=redact.mask_body(change.new))
        for change in diff.changes
    ]


class ProposalBuilder:
    def __init__(self, matcher: Matcher, upstream: UpstreamClient, policy: Policy) -> None:
        self.matcher = matcher
        self.upstream = upstream
        self.policy = policy

    async def _current_record(self, write: WriteRequest,
                              match: Match) -> tuple[dict[str, Any] | None, str | None]:
        if match.fetch_path is None:
            return None, "this connector has no way to fetch the current record"
        parts = urlsplit(write.url)
        url = urlunsplit((parts.scheme, parts.netloc, match.fetch_path, "", ""))
        fetched = await self.upstream.fetch_json(url, write.headers)
        if fetched.problem is not None:
            return None, fetched.problem
        record = match.unwrap_record(fetched.record)
        if record is None:
            wrapper = f" under {match.spec.wrapper!r}" if match.spec.wrapper else ""
            return None, f"the upstream's answer holds no record{wrapper}"
        return record, None

    async def build(self, write: WriteRequest, context: Context) -> tuple[Proposal, Verdict]:
        parsed = parse_body(write)
        match = self.matcher.match(write.method, write.host, write.path)
        connector = match.system if match else None
        if connector is None and (known := self.matcher.connector_for(write.host)):
            connector = known.system

        diff = Diff([], [])
        old_values = OldValues(known=False, reason="no connector describes this request")
        body_problem = parsed.problem
        if match is not None:
            old_values, diff, body_problem = await self._diff(write, match, parsed)

        risk = assess(match.operation if match else None, diff.changes,
                      match.spec.risk if match else None,
                      old_values_known=old_values.known, recognised=match is not None,
                      body_problem=body_problem)
        verdict = self.policy.decide(WriteFacts(
            system=connector, object_type=match.object_type if match else None,
            operation=match.operation.value if match else None, host=write.host,
            fields=[change.field for change in diff.changes],
        ))
        proposal = Proposal(
            system=connector,
            object_type=match.object_type if match else None,
            operation=match.operation.value if match else None,
            record_id=match.record_id if match else None,
            method=write.method,
            url=redact.mask_url(write.url),
            changes=_masked_changes(diff),
            patch=[redact.mask_body(op) for op in diff.patch],
            old_values=old_values,
            risk=risk,
            context=context,
            request=RequestSummary(
                headers=redact.mask_headers(write.headers),
                content_type=write.content_type,
                body=_shown_body(write, parsed),
                body_bytes=len(write.raw_content),
                problem=body_problem,
            ),
            reviewer_groups=verdict.reviewer_groups,
            rule=verdict.rule,
            fingerprint=fingerprint(write.method, write.url, write.raw_content),
        )
        return proposal, verdict

    async def _diff(self, write: WriteRequest, match: Match,
                    parsed: ParsedBody) -> tuple[OldValues, Diff, str | None]:
        """Old values, the diff, and why the body could not be read (if it could not)."""
        proposed = None
        body_problem = parsed.problem
        if match.operation is not Operation.delete and body_problem is None:
            try:
                proposed = match.proposed_values(parsed.value)
            except BodyShapeError as exc:
                body_problem = f"the body is not a {match.system} {match.object_type}: {exc}"
        if match.operation is Operation.create:
            diff = compute_diff(match.operation, None, proposed or {}, match.spec.update)
            return OldValues(known=True, reason=None), diff, body_problem
        current, problem = await self._current_record(write, match)
        old_values = OldValues(known=current is not None, reason=problem)
        if body_problem is not None:
            return old_values, Diff([], []), body_problem
        diff = compute_diff(match.operation, current, proposed, match.spec.update)
        return old_values, diff, None
