"""From a held write to what a reviewer sees: match, fetch current record, diff, risk, policy."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from connectors_schemas import (
    BodyError,
    Classification,
    Matcher,
    Operation,
    RiskKind,
    parse_body,
)
from connectors_schemas.identity import identity_of, shown_text
from connectors_schemas.matcher import RecordWrite
from connectors_schemas.models import BodyFormat
from proxy_addon import redact
from proxy_addon.diff import Diff, FieldChange, diff_record
from proxy_addon.edits import support as edit_support
from proxy_addon.offload import OFF_LOOP_BYTES, off_loop
from proxy_addon.policy import Policy, Verdict, WriteFacts
from proxy_addon.risk import assess
from proxy_addon.upstream import UpstreamClient
from review_api.models import (
    Change,
    Context,
    IdentityField,
    OldValues,
    Parameter,
    Proposal,
    RecordRef,
    RequestSummary,
)


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
    query: list[tuple[str, str]] = field(default_factory=list)

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


def _raw_body(write: WriteRequest, classification: Classification | None
              ) -> redact.ShownBody | redact.WithheldBody | None:
    """The body as the proxy parsed and masked it, by its declared type; else only its hash.

    Not the connector's own reading: that one may read a form sent as JSON as a form, and a
    reviewer must not be shown bytes in a form the upstream may read differently.
    """
    graphql = classification is not None and (
        (classification.route.body or classification.spec.body) is BodyFormat.graphql)
    return redact.mask_request_body(write.content, write.content_type, graphql_expected=graphql)


def _request_summary(write: WriteRequest, classification: Classification | None,
                     problem: str | None) -> RequestSummary:
    return summarise_request(write, _raw_body(write, classification), problem)


def summarise_request(write: WriteRequest, body: redact.ShownBody | redact.WithheldBody | None,
                      problem: str | None) -> RequestSummary:
    """What the approval keeps of the request: masked headers, and the body as masked or its
    type, size and hash alone (DESIGN.md, "Security stance"); for REST and MCP writes alike."""
    shown = body if isinstance(body, redact.ShownBody) else None
    return RequestSummary(
        headers=redact.mask_headers(write.headers),
        content_type=redact.shown_content_type(write.content_type)
        if write.content_type else None,
        body=redact.clip(shown.value) if shown else None,
        body_bytes=len(write.raw_content),
        body_sha256=hashlib.sha256(write.raw_content).hexdigest() if write.raw_content else None,
        body_form=shown.form if shown else None,
        body_withheld=body.reason if isinstance(body, redact.WithheldBody) else None,
        problem=redact.mask_problem(problem) if problem else None,
    )


def _masked_changes(diff: Diff, record_id: str | None) -> list[Change]:
    return [
        Change(field=change.field, kind=change.kind, record_id=record_id,
               old=redact.MASK if redact.field_is_secret(change.field) and change.old is not None
               else redact.clip(redact.mask_body(change.old)),
               new=redact.MASK if redact.field_is_secret(change.field) and change.new is not None
               else redact.clip(redact.mask_body(change.new)))
        for change in diff.changes
    ]


def _masked_parameters(diff: Diff, record_id: str | None) -> list[Parameter]:
    return [Parameter(name=name, record_id=record_id,
                      value=redact.MASK if redact.field_is_secret(name) and value is not None
                      else redact.clip(redact.mask_body(value)))
            for name, value in diff.parameters.items()]


def _identity(part: Classification, record: RecordWrite, operation: Operation,
              current: dict[str, Any] | None) -> list[IdentityField]:
    """Which record this is, to a person: from the record as fetched, or for a create from
    what the agent proposes; masked like every other value, a secret field's never shown."""
    source = current if current is not None else (
        record.values if operation is Operation.create else None)
    return [IdentityField(field=found.field, label=found.label,
                          value=redact.MASK if found.value is not None
                          and redact.field_is_secret(found.field)
                          else shown_text(redact.mask_body(found.value)))
            for found in identity_of(part.spec, record.object_type, source)]


def _policy_field(name: str) -> str:
    """`items[si_1].price` as `items.price`: policies and risk hints name a list's fields,
    not its items. The key is all from the first `[` to the last `]` before a dotted field
    (`items[si]1]` is `items`): a key holding brackets never moves the field elsewhere."""
    if "[" not in name:
        return name
    head, _, rest = name.partition("[")
    found = _AFTER_KEY.search(rest)
    return head + (found.group(0) if found else "")


_AFTER_KEY = re.compile(r"(?<=\])\.[^\[\]]*$")


@dataclass(frozen=True, slots=True)
class Built:
    proposal: Proposal
    verdict: Verdict
    before: dict[str, dict[str, Any]]  # records as fetched, unmasked: only ever stored sealed


@dataclass(slots=True)
class _PartDiff:
    changes: list[Change] = field(default_factory=list)
    parameters: list[Parameter] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)
    refs: list[RecordRef] = field(default_factory=list)
    identity: dict[str | None, list[IdentityField]] = field(default_factory=dict)
    risk_changes: list[FieldChange] = field(default_factory=list)
    needs_old: bool = False
    problem: str | None = None
    before: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Currents:
    records: dict[str | None, dict[str, Any]]
    problem: str | None  # why some old values are unknown
    not_found: frozenset[str | None] = frozenset()  # upstream said 404: the record does not exist

    def absent(self, record_id: str | None) -> bool:
        """Known not to exist (so an upsert creates it), rather than unknown."""
        return record_id not in self.records and (self.problem is None
                                                  or record_id in self.not_found)


class ProposalBuilder:
    def __init__(self, matcher: Matcher, upstream: UpstreamClient, policy: Policy,
                 money_threshold: float = 0.0) -> None:
        self.matcher = matcher
        self.upstream = upstream
        self.policy = policy
        self.money_threshold = money_threshold

    def classify(self, write: WriteRequest) -> Classification | None:
        return self.matcher.classify(write.method, write.host, write.path, write.query,
                                     write.content, write.content_type)

    async def _fetch(self, write: WriteRequest, classification: Classification) -> _Currents:
        requests = classification.fetch_requests(write.query)
        if classification.fetch_spec is None and not requests:
            return _Currents({}, classification.unfetchable
                             or "this connector has no way to fetch the current record")
        parts = urlsplit(write.url)
        answers = await asyncio.gather(*[
            self.upstream.fetch_json(
                urlunsplit((parts.scheme, parts.netloc, request.path,
                            urlencode(request.query), "")),
                write.headers, method=request.method, json_body=request.json_body)
            for request in requests
        ])
        records: dict[str | None, dict[str, Any]] = {}
        problems = []
        not_found: set[str | None] = set()
        for request, fetched in zip(requests, answers, strict=True):
            if fetched.problem is not None:
                problems.append(fetched.problem)
                if fetched.status_code == 404 and request.graphql is None:
                    not_found.update(request.record_ids)
                continue
            found = classification.records_from(request, fetched.record)
            if not found and request.graphql is not None:
                # GraphQL: errors leave the record unknown; null alone says it does not exist
                why = request.graphql.record(fetched.record)[1]
                if why is None:
                    not_found.update(request.record_ids)
                problems.append(why or f"the upstream has no {request.graphql.object_type} "
                                "with this id")
            elif not found:
                where = classification.spec.record_path or classification.spec.values_path
                problems.append("the upstream's answer holds no record"
                                + (f" under {where!r}" if where else ""))
            records.update(found)
        if classification.unfetchable is not None:
            problems.append(classification.unfetchable)  # records the schema cannot read
        return _Currents(records, problems[0] if problems else None, frozenset(not_found))

    async def _diff_part(self, write: WriteRequest, part: Classification,
                         body_problem: str | None, prefixed: bool) -> _PartDiff:
        """Fetch and diff the records of one request (or one subrequest of a composite)."""
        currents = await self._fetch(write, part)
        return await off_loop(len(write.raw_content) > OFF_LOOP_BYTES, self._diff_records,
                              part, currents, body_problem, prefixed)

    @staticmethod
    def _diff_records(part: Classification, currents: _Currents, body_problem: str | None,
                      prefixed: bool) -> _PartDiff:
        """The changes of each record against its fetched state (CPU only, no I/O)."""
        found = _PartDiff()
        for record in part.records:
            operation = record.operation
            current = currents.records.get(record.record_id)
            if operation is Operation.upsert and (current is not None
                                                  or currents.absent(record.record_id)):
                # The fetched record decides; when the fetch failed it stays an upsert.
                operation = Operation.update if current is not None else Operation.create
            if operation is not Operation.create and current is None:
                found.needs_old = True
            if current is not None and record.record_id is not None:
                found.before[record.record_id] = current
            found.refs.append(RecordRef(object_type=record.object_type,
                                        operation=operation.value,
                                        record_id=record.record_id, action=record.action))
            found.identity[record.record_id] = _identity(part, record, operation, current)
            if body_problem is not None:
                continue
            diff = diff_record(part.spec, record, current, operation, part.route.sets, part.body,
                               route=part.route)
            found.risk_changes += [replace(c, field=_policy_field(c.field)) for c in diff.changes]
            found.changes += _masked_changes(diff, record.record_id)
            found.parameters += _masked_parameters(diff, record.record_id)
            prefix = f"/{record.record_id}" if prefixed else ""
            found.patch += [{**op, "path": prefix + op["path"]} for op in diff.patch]
        if found.needs_old:
            found.problem = currents.problem or "the current record was not found upstream"
        return found

    async def build(self, write: WriteRequest, context: Context) -> Built | None:
        """The proposal and the policy's verdict, or None for a read sent with a write method."""
        large = len(write.raw_content) > OFF_LOOP_BYTES
        classification = await off_loop(large, self.classify, write)
        if classification is not None and classification.read:
            return None
        connector = classification.system if classification else None
        if connector is None and (known := self.matcher.connector_for(write.host)):
            connector = known.system
        changes: list[Change] = []
        parameters: list[Parameter] = []
        patch: list[dict[str, Any]] = []
        refs: list[RecordRef] = []
        before: dict[str, dict[str, Any]] = {}
        identities: list[list[IdentityField]] = []
        old_values = OldValues(known=False, reason="no connector describes this request")
        body_problem = None if classification else _body_problem(write)
        risk_changes: list[FieldChange] = []
        if classification is not None:
            body_problem = classification.body_problem
            parts = await asyncio.gather(*[
                self._diff_part(write, part, body_problem, prefixed=classification.bulk)
                for part in (classification.parts or [classification])])
            for part in parts:
                changes += part.changes
                parameters += part.parameters
                patch += part.patch
                refs += part.refs
                risk_changes += part.risk_changes
                before.update(part.before)
                identities += part.identity.values()
            unknown = [part.problem for part in parts if part.needs_old]
            old_values = OldValues(known=not unknown, reason=unknown[0] if unknown else None)

        single = refs[0] if len(refs) == 1 else None
        operation = single.operation if single else (
            classification.operation.value if classification else None)
        risk = assess(Operation(operation) if operation else None, risk_changes,
                      classification.spec.risk if classification else None,
                      notes=_risk_notes(write, classification),
                      old_values_known=old_values.known,
                      recognised=classification is not None,
                      body_problem=redact.mask_problem(body_problem) if body_problem else None,
                      money_threshold=self.money_threshold)
        verdict = self.policy.decide(WriteFacts(
            system=connector, object_type=classification.object_type if classification else None,
            operation=operation, host=write.host,
            # parameters too: a rule on fields must allow every thing the write sends
            fields=sorted({_policy_field(change.field) for change in changes}
                          | {_policy_field(parameter.name) for parameter in parameters}),
            agent=context.agent, task=context.task,
            action=single.action if single else None, risk=risk.level,
            changes=[(c.field, c.old, c.new) for c in risk_changes],
        ))
        proposal = Proposal(
            system=connector,
            object_type=classification.object_type if classification else None,
            operation=operation,
            record_id=single.record_id if single else None,
            action=single.action if single else None,
            records=refs,
            method=write.method,
            url=redact.mask_url(write.url),
            changes=changes,
            # one record's: a bulk write's records are listed by id, each its own line
            identity=identities[0] if single and len(identities) == 1 else [],
            parameters=parameters,
            patch=[redact.clip(redact.mask_patch_op(op)) for op in patch],
            old_values=old_values,
            risk=risk,
            context=context,
            request=await off_loop(large, _request_summary, write, classification,
                                   body_problem),
            reviewer_groups=verdict.reviewer_groups,
            quorum=verdict.quorum,
            remind_after=verdict.remind_after,
            escalate_after=verdict.escalate_after,
            escalate_to=verdict.escalate_to,
            edit=edit_support(classification),
            rule=verdict.rule,
            fingerprint=await off_loop(large, fingerprint, write.method, write.url,
                                       write.raw_content),
        )
        return Built(proposal, verdict, before)


def _body_problem(write: WriteRequest) -> str | None:
    try:
        parse_body(write.content, write.content_type, BodyFormat.json)
    except BodyError as exc:
        return str(exc)
    return None


def _risk_notes(write: WriteRequest,
                classification: Classification | None) -> list[tuple[RiskKind, str]]:
    if classification is None:
        return []
    notes = [(note.kind, note.reason) for note in classification.route.risk]
    present = {name for name, _ in write.query}
    notes += [(RiskKind.customer_facing, text)
              for name, text in classification.route.notes.items() if name in present]
    return notes
