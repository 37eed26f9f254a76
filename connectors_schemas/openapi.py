"""Connector routes derived from a vendor's OpenAPI 3 description: every documented write named.

For each POST/PUT/PATCH/DELETE the description documents, `derive_objects` names the object
type as the vendor does (its schema, or the path's noun where the schema is generic), the
operation (from the method, the path's shape and the vendor's own verbs), the record id (a path
placeholder or a body field) and, where the record exists, the documented GET that returns it:
the same path, or for a sub-resource or action the parent record and the field it changes.
The result is plain connector data (`ObjectSpec`s with full paths from the host root), written
to `derived/<name>.json` by `derive` and merged under the hand-written YAML by `merge`.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connectors_schemas.models import PLACEHOLDER, Connector, ObjectSpec, Operation, Route

SCHEMAS_DIR = Path(__file__).parent
DERIVED_DIR = SCHEMAS_DIR / "derived"
WRITE_VERBS = ("post", "put", "patch", "delete")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader parses Stripe in ~2 s
_GENERIC_NOUNS = 4  # a schema returned under this many resource nouns names none of them

# The vendor's verbs, first word of an operation's summary (or its description's first word).
_CREATE = frozenset({"create", "add", "insert", "new", "upload", "register", "generate",
                     "submit", "store", "load", "associate", "invite", "fork",
                     "import", "copy", "clone", "duplicate", "request", "start", "open"})
_UPDATE = frozenset({"update", "edit", "modify", "change", "set", "replace", "patch",
                     "rename", "configure", "save"})
_DELETE = frozenset({"delete", "remove", "archive", "destroy", "purge", "clear", "unset",
                     "erase", "drop", "gdpr", "disassociate", "unassign"})
# A documented POST is a read only when the vendor's own first verb says so ...
_READ = frozenset({"get", "search", "find", "list", "read", "retrieve", "fetch", "query",
                   "lookup", "count", "parse", "preview", "analyse", "analyze", "evaluate",
                   "check", "validate", "render", "estimate"})
# ... and no word of its summary or operationId names a change.
_CHANGE = _CREATE | _UPDATE | _DELETE | frozenset({
    "send", "move", "merge", "cancel", "void", "pay", "finalize", "capture", "confirm",
    "approve", "reject", "refund", "transition", "assign", "notify", "publish", "schedule",
    "restore", "reset", "revoke", "enable", "disable", "lock", "unlock", "run", "trigger",
    "execute", "dispatch", "upsert", "write", "mark", "close", "reopen", "link", "unlink",
    "sync", "migrate", "reindex", "rerun", "redeliver", "install", "apply"})
_READ_SHAPES = (re.compile(r"/search$"), re.compile(r"/batch/read$"))  # HubSpot's shapes
# A read whose description tells of something it creates or changes is no read.
_SIDE_EFFECT = re.compile(
    r"\b(?:will be|are|is|get|gets|being) (?:created|generated|updated|modified|changed|"
    r"deleted|removed|added|overwritten|replaced|activated|sent)\b|"
    r"\b(?:creates|generates|overwrites)\b", re.IGNORECASE)
_UPSERT = re.compile(r"\b(create or update|create or replace|add or update|upsert|"
                     r"set or update|create or modify)\b", re.IGNORECASE)
_WRAPPER_WORDS = re.compile(
    r"^(?:BatchResponse|BatchInput|CollectionResponse|Paged|PageBean|Simple|Public|Full|"
    r"Minimal|Nullable|Created|Create|Update|New)+|"
    r"(?:Bean|Details|Request|Response|Input|ForCreate|Identifiers|IDs|Ids|Id|Result)+$")
# HubSpot: "Properties values can be cleared by passing an empty string."
_EMPTY_CLEARS = re.compile(r"\bcleared by (?:passing|sending|setting) (?:an? )?empty string",
                           re.IGNORECASE)
_SELECTOR = re.compile(r"\{~([A-Za-z_][A-Za-z0-9_]*)\}")
_IDS_PROPERTY = re.compile(r"^(ids|.*(Ids|IDs|_ids|IdsOrKeys|IdOrKeys))$")
_ID_PROPERTY = re.compile(r"^(id|.*(Id|_id|IdOrKey))$")


class DescriptionError(ValueError):
    """A description that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Spec:
    """One OpenAPI document: its operations resolve references against its own components."""

    source: str
    document: dict[str, Any]

    def resolve(self, node: Any, depth: int = 0) -> Any:
        """A schema with its `$ref` followed (and allOf merged), bounded against cycles."""
        while isinstance(node, dict) and "$ref" in node and depth < 20:
            node = self._target(node["$ref"])
            depth += 1
        if isinstance(node, dict) and "allOf" in node and depth < 20:
            merged: dict[str, Any] = {"properties": {}}
            for part in node["allOf"]:
                resolved = self.resolve(part, depth + 1)
                if isinstance(resolved, dict):
                    merged["properties"].update(resolved.get("properties") or {})
            return merged
        return node

    def _target(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.lstrip("#/").split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(
                node, dict) else None
        return node


@dataclass(frozen=True, slots=True)
class Op:
    method: str  # upper case
    path: str
    operation: dict[str, Any]
    spec: Spec


@dataclass(slots=True)
class Index:
    """Every operation of a description, and which paths have a documented GET."""

    writes: list[Op] = field(default_factory=list)
    gets: dict[str, Op] = field(default_factory=dict)  # by shape: placeholders as {}
    nouns_by_schema: dict[str, set[str]] = field(default_factory=dict)  # answers
    nouns_by_request: dict[str, set[str]] = field(default_factory=dict)  # request bodies
    nouns_by_record: dict[str, set[str]] = field(default_factory=dict)  # GETs of one record


# ---------------------------------------------------------------- reading descriptions


def read_documents(paths: list[str]) -> list[Spec]:
    """Every OpenAPI document in these files (JSON or YAML, .gz, or a .tar.gz of many)."""
    specs: list[Spec] = []
    for path in paths:
        specs += _read_file(Path(path))
    return specs


def _read_file(path: Path) -> list[Spec]:
    try:
        data = path.read_bytes()
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return _read_tar(path, data)
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        return [Spec(path.name, _parse(path.name.removesuffix(".gz"), data))]
    except (OSError, EOFError, tarfile.TarError, UnicodeDecodeError, ValueError,
            yaml.YAMLError) as exc:
        raise DescriptionError(f"description {path}: cannot read it: {exc}") from exc


def _read_tar(path: Path, data: bytes) -> list[Spec]:
    specs = []
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = sorted((m for m in archive.getmembers() if m.isfile()
                          and m.name.endswith((".json", ".yaml", ".yml"))),
                         key=lambda m: m.name)
        for member in members:
            handle = archive.extractfile(member)
            assert handle is not None
            try:
                document = _parse(member.name, handle.read())
            except _NotOpenAPI:
                continue  # e.g. a Postman collection shipped beside the OpenAPI files
            specs.append(Spec(f"{path.name}:{member.name}", document))
    if not specs:
        raise ValueError("the archive holds no OpenAPI 3 document")
    return specs


def _parse(name: str, data: bytes) -> dict[str, Any]:
    text = data.decode("utf-8")
    parsed = json.loads(text) if name.endswith(".json") else yaml.load(text, Loader=_LOADER)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("paths"), dict):
        raise _NotOpenAPI(f"{name} is not an OpenAPI document (no 'paths' mapping)")
    if not str(parsed.get("openapi", "")).startswith("3"):
        raise _NotOpenAPI(f"{name} is not OpenAPI 3 (openapi: {parsed.get('openapi')!r})")
    return parsed


class _NotOpenAPI(ValueError):
    """A file that parses but is no OpenAPI 3 document."""


def index(specs: list[Spec]) -> Index:
    """Operations by path; the first document naming a method and path wins (files sorted)."""
    found = Index()
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        for path, item in spec.document["paths"].items():
            if not isinstance(item, dict):
                continue
            for method, operation in item.items():
                if not isinstance(operation, dict) or (method, path) in seen:
                    continue
                seen.add((method, path))
                op = _marked(Op(method.upper(), path, operation, spec))
                if method == "get":
                    found.gets.setdefault(shape(op.path), op)
                elif method in WRITE_VERBS:
                    found.writes.append(op)
    for op in [*found.writes, *found.gets.values()]:
        if name := _schema_name(op, _response_schema(op)):
            found.nouns_by_schema.setdefault(name, set()).add(_noun(op.path))
        if name := _schema_name(op, _request_schema(op)[0]):
            found.nouns_by_request.setdefault(name, set()).add(_noun(op.path))
    for op in found.gets.values():
        segments = _segments(op.path)
        if len(segments) > 1 and _is_param(segments[-1]) and (
                name := _schema_name(op, _response_schema(op))):
            found.nouns_by_record.setdefault(name, set()).add(segments[-2])
    return found


# ---------------------------------------------------------------- reading one operation


def shape(path: str) -> str:
    """The path with every placeholder as `{}`: templates that differ only in names agree."""
    return _SELECTOR.sub("{~}", PLACEHOLDER.sub("{}", path))


def _segments(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


def _is_param(segment: str) -> bool:
    return bool(PLACEHOLDER.fullmatch(segment))


def _selectors(op: Op) -> set[str]:
    """Path parameters that pick a kind, not a record: an enum, or a name ending in "type"
    (HubSpot's objectType); they stay route parameters and never become the record id."""
    found = set()
    for raw in op.operation.get("parameters") or []:
        parameter = op.spec.resolve(raw)
        if not isinstance(parameter, dict) or parameter.get("in") != "path":
            continue
        schema = op.spec.resolve(parameter.get("schema") or {})
        name = str(parameter.get("name", ""))
        if (isinstance(schema, dict) and schema.get("enum")) or name.lower().endswith("type"):
            found.add(name)
    return found | {m[1] for m in PLACEHOLDER.finditer(op.path) if m[1].lower().endswith("type")}


def _join(segments: list[str]) -> str:
    return "/" + "/".join(segments)


def _noun(path: str) -> str:
    """The nearest literal segment naming a resource: `issues` in /repos/{o}/{r}/issues/{n}."""
    literals = [s for s in _segments(path) if not _is_param(s)]
    return literals[-1] if literals else ""


def _words(text: str) -> list[str]:
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [word.lower() for word in re.findall(r"[A-Za-z]+", text)]


def _stem(word: str) -> str:
    """`Cancels` -> cancel, `Finalizes` -> finalize: the verb as an action is named."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _summary(op: Op) -> str:
    summary = op.operation.get("summary") or ""
    if not summary.strip():
        description = re.sub(r"<[^>]+>", " ", op.operation.get("description") or "")
        summary = description.strip().split(".")[0]
    return summary.strip()


def _text(op: Op) -> str:
    return f"{op.operation.get('summary') or ''} {op.operation.get('description') or ''}"


def _verb(op: Op) -> str | None:
    """The vendor's first verb for the operation (its summary, else its description): the
    first of its first words we know as a verb ("Permanently deletes" -> delete)."""
    words = [_stem(w) for w in _first_words(op) if not w.endswith("ly")]
    return words[0] if words else None


def _first_words(op: Op) -> list[str]:
    return [w for w in _words(_summary(op)) if w not in ("bulk", "batch", "currently")]


def _content_schema(container: Any) -> tuple[Any, str | None]:
    content = container.get("content") if isinstance(container, dict) else None
    if not isinstance(content, dict) or not content:
        return None, None
    for media in ("application/json", "application/x-www-form-urlencoded"):
        if media in content:
            return (content[media] or {}).get("schema"), media
    media, value = next(iter(content.items()))
    return (value or {}).get("schema"), media


def _response_schema(op: Op) -> Any:
    responses = op.operation.get("responses") or {}
    for code in sorted(c for c in map(str, responses) if c.startswith("2")):
        response = op.spec.resolve(responses.get(code) or responses.get(int(code)))
        schema, _ = _content_schema(response)
        if schema is not None:
            return schema
    return None


def _request_schema(op: Op) -> tuple[Any, str | None]:
    return _content_schema(op.spec.resolve(op.operation.get("requestBody")))


def _schema_name(op: Op, schema: Any) -> str | None:
    """The component name a schema refers to (through one array), as the vendor spells it."""
    if isinstance(schema, dict) and schema.get("type") == "array":
        schema = schema.get("items")
    if isinstance(schema, dict):
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and len(options) == 1:
                schema = options[0]
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return schema["$ref"].rsplit("/", 1)[-1]
    return None


def _properties(spec: Spec, schema: Any) -> dict[str, Any]:
    resolved = spec.resolve(schema)
    if isinstance(resolved, dict) and resolved.get("type") == "array":
        resolved = spec.resolve(resolved.get("items"))
    if isinstance(resolved, dict):
        for key in ("oneOf", "anyOf"):
            for option in resolved.get(key) or []:
                found = _properties(spec, option)
                if found:
                    return found
        props = resolved.get("properties")
        if isinstance(props, dict):
            return props
    return {}


def _is_array(spec: Spec, schema: Any) -> bool:
    resolved = spec.resolve(schema)
    return isinstance(resolved, dict) and resolved.get("type") == "array"


def _is_map(spec: Spec, schema: Any) -> bool:
    """A free-form object (`additionalProperties`): any field name may sit in it."""
    resolved = spec.resolve(schema)
    return (isinstance(resolved, dict) and bool(resolved.get("additionalProperties"))
            and not resolved.get("properties"))


# ---------------------------------------------------------------- the POST-read rule


def is_documented_read(op: Op) -> bool:
    """A documented POST that only reads: the one rule deciding it, kept conservative.

    A write taken for a read passes unreviewed, so the vendor must say it: no word of the
    summary names a change ("Get ... and update", "Create a saved search" stay writes), and
    the path is one of HubSpot's read shapes (`.../search`, `.../batch/read`) or the
    summary's first word is a read verb. Anything else stays a write; a connector's
    `description.reads` lists the rest.
    """
    if op.method != "POST":
        return False
    if _SIDE_EFFECT.search(_plain(op)):
        return False  # "Retrieve ... If they do not exist, new ones will be created" (Stripe)
    changes = {_stem(word) for word in _words(_summary(op))} & _CHANGE
    if any(pattern.search(op.path) for pattern in _READ_SHAPES):
        return not changes  # `POST /alerts/search` "Create a saved search" stores one
    first = _first_words(op)[:1]
    if not first or _stem(first[0]) not in _READ:
        return False
    return not changes


def _plain(op: Op) -> str:
    """Summary and whole description as text: a side effect may be told anywhere in them."""
    text = f"{op.operation.get('summary') or ''} {op.operation.get('description') or ''}"
    return re.sub(r"<[^>]+>", " ", text)


# ---------------------------------------------------------------- naming


def _clean(name: str) -> str:
    """A schema name as a reviewer reads it: wrapper words and `deleted_` dropped."""
    name = name.removeprefix("deleted_").removeprefix("nullable-")
    for prefix in ("full-", "simple-", "minimal-"):
        name = name.removeprefix(prefix)
    for suffix in ("-simple", "-full", "-minimal", "-with-repo-permissions"):
        name = name.removesuffix(suffix)
    if "-" in name:
        return name.replace("-", "_")
    cleaned = _WRAPPER_WORDS.sub("", name)
    return cleaned or name


def _singular(noun: str) -> str:
    if noun.endswith("ies") and len(noun) > 4:
        return noun[:-3] + "y"
    if noun.endswith("aches"):
        return noun[:-1]  # caches
    if noun.endswith(("sses", "ches", "shes", "xes")):
        return noun[:-2]
    if noun.endswith("s") and not noun.endswith(("ss", "us")):
        return noun[:-1]
    return noun


def _named(found: Index, op: Op | None, schema: Any) -> str | None:
    """The vendor's schema name, unless it is generic (returned under many resource nouns)."""
    if op is None:
        return None
    name = _schema_name(op, schema)
    if not name:
        return None
    # The records one GET answers with name the schema best; failing that, every use does.
    nouns = (found.nouns_by_record.get(name) or found.nouns_by_schema.get(name)
             or found.nouns_by_request.get(name, set()))
    if len(nouns) >= _GENERIC_NOUNS:
        return None
    return _clean(name)


def _object_type(found: Index, path: str, *ops: tuple[Op | None, Any]) -> str:
    """First specific schema among the candidates, else the path's noun (a placeholder
    noun, HubSpot's `{objectType}`, stays a template filled at match time)."""
    for op, schema in ops:
        if (name := _named(found, op, schema)) is not None:
            return name
    segments = _segments(path)
    for index_, segment in reversed(list(enumerate(segments))):
        if _is_param(segment):
            before = segments[index_ - 1] if index_ else ""
            if before and not _is_param(before) and before not in ("objects", "batch"):
                return before.replace("-", "_")  # as the vendor spells it: contacts
            if before in ("objects",):
                return segment  # HubSpot /objects/{objectType}
            continue
    return (_noun(path) or "record").replace("-", "_")


# ---------------------------------------------------------------- deriving one write


@dataclass(slots=True)
class Derived:
    object_type: str
    route: dict[str, Any]


def _get(found: Index, segments: list[str]) -> Op | None:
    """The documented GET of this path, or of its singular spelling (GitHub's git/ref/{ref}
    reads what git/refs/{ref} writes)."""
    own = found.gets.get(shape(_join(segments)))
    if own is None and len(segments) > 1 and _is_param(segments[-1]):
        singular = [*segments[:-2], _singular(segments[-2]), segments[-1]]
        own = found.gets.get(shape(_join(singular)))
    return own


def _get_path(found: Index, segments: list[str]) -> str:
    """The path of `_get`'s answer, in the write's own placeholder names."""
    if found.gets.get(shape(_join(segments))) is None and len(segments) > 1:
        return _join([*segments[:-2], _singular(segments[-2]), segments[-1]])
    return _join(segments)


def _holds_records(found: Index, segments: list[str]) -> bool:
    """Records of their own live below this path (`GET path/{x}` is documented)."""
    child = shape(_join(segments)) + "/{}"
    singular = shape(_join([*segments[:-1], _singular(segments[-1])])) + "/{}"
    return child in found.gets or singular in found.gets


def _record_anchor(found: Index, segments: list[str]) -> int | None:
    """The longest proper prefix ending in a placeholder whose GET is documented."""
    for end in range(len(segments) - 1, 0, -1):
        if _is_param(segments[end - 1]) and _get(found, segments[:end]) is not None:
            return end
    return None


def _collection_anchor(found: Index, segments: list[str]) -> int | None:
    """The longest prefix C with a documented `GET C/{x}`: a collection of fetchable records."""
    for end in range(len(segments) - 1, 0, -1):
        if found.gets.get(shape(_join(segments[:end])) + "/{}") is not None:
            return end
    return None


def _operation(op: Op, default: Operation) -> tuple[Operation, str | None]:
    """The method's default unless the vendor's verb says otherwise."""
    verb = _verb(op)
    summary = _summary(op)
    if _UPSERT.search(summary):
        return Operation.upsert, None
    if op.method == "DELETE":
        if verb is None or verb in _DELETE or verb in _UPDATE or verb in _CREATE:
            return Operation.delete, None
        return Operation.action, verb  # Stripe's DELETE /v1/subscriptions/{id}: cancel
    if verb in _DELETE and default in (Operation.create, Operation.update):
        return Operation.delete, None
    return default, None


def _rename(path: str, record: str | None) -> str:
    """The record's placeholder becomes `{id}` (what the matcher names records by)."""
    names = [m[1] for m in PLACEHOLDER.finditer(path)]
    if record == "id" or ("id" not in names and record is None):
        return path
    path = path.replace("{id}", "{parent_id}")
    if record is None:
        return path
    return path.replace("{" + record + "}", "{id}")


def _fetch(path: str, record: str | None, getter: Op | None = None) -> dict[str, Any]:
    fetch: dict[str, Any] = {"path": _rename(path, record)}
    if getter is not None and (selector := _field_selector(getter)) is not None:
        fetch["query"] = {selector: "{fields}"}
    return fetch


def _field_selector(getter: Op) -> str | None:
    """The GET's query parameter naming the fields it returns (HubSpot's `properties`, Jira's
    `fields`): without it such a GET answers only default fields, and a field it left out would
    read as "no value" where the record holds one."""
    for raw in getter.operation.get("parameters") or []:
        parameter = getter.spec.resolve(raw)
        if (isinstance(parameter, dict) and parameter.get("in") == "query"
                and parameter.get("name") in ("properties", "fields")
                and not re.search(r"\bIDs\b|\bby (?:their )?ids?\b",
                                  str(parameter.get("description") or ""), re.IGNORECASE)):
            return str(parameter["name"])  # named by field name (GitHub's project fields: ids)
    return None


def _body_format(op: Op) -> str | None:
    _, media = _request_schema(op)
    return "form" if media == "application/x-www-form-urlencoded" else None


def _wrapper(op: Op, get: Op | None) -> str | None:
    """A free-form map both the request and the record hold (HubSpot `properties`)."""
    if get is None:
        return None
    request, _ = _request_schema(op)
    sent = _properties(op.spec, request)
    held = _properties(get.spec, _response_schema(get))
    shared = [name for name in sent if name in held]
    if len(shared) == 1 and _is_map(op.spec, sent[shared[0]]) and _is_map(
            get.spec, held[shared[0]]):
        return shared[0]  # the only field both hold is a map: the values sit in it
    return None


def _body_records(op: Op, operation: Operation) -> dict[str, Any]:
    """Where a write naming no record in its path names it in the body."""
    request, _ = _request_schema(op)
    props = _properties(op.spec, request)
    inputs = props.get("inputs")
    if inputs is not None and _is_array(op.spec, inputs):
        item = _properties(op.spec, inputs)
        bulk: dict[str, Any] = {"records_path": "inputs"}
        if "id" in item and operation is not Operation.create:
            bulk["id_field"] = "id"
        if "properties" in item and operation is not Operation.delete:
            bulk["values_path"] = "properties"
        return {"bulk": bulk}
    if operation is Operation.create:
        return {}
    for name, schema in props.items():
        if _IDS_PROPERTY.match(name) and _is_array(op.spec, schema):
            return {"bulk": {"ids_path": name}}
    required = set(op.spec.resolve(request).get("required") or []) if isinstance(
        op.spec.resolve(request), dict) else set()
    ids = [name for name in props if _ID_PROPERTY.match(name) and name in required]
    ids.sort(key=lambda name: (name != "id", not name.lower().startswith("primary")))
    return {"id_from_body": ids[0]} if ids else {}


def _parent_field(found: Index, op: Op, segments: list[str], anchor: int) -> dict[str, Any] | None:
    """A sub-resource that is one field of its parent (labels, assignees, assignee)."""
    tail = segments[anchor:]
    if not tail or len(tail) > 2 or (len(tail) == 2 and not _is_param(tail[1])):
        return None
    noun = tail[0]
    parent = _get(found, segments[:anchor])
    assert parent is not None
    held = _properties(parent.spec, _response_schema(parent))
    own_get = _get(found, segments)
    if len(tail) == 2 and own_get is not None:
        return None  # /customers/{c}/subscriptions/{s}: a record of its own
    target = parent.spec.resolve(held.get(noun))
    if noun in held and (_is_array(parent.spec, held[noun]) or (
            isinstance(target, dict) and target.get("type") != "integer")):
        if not _is_array(parent.spec, held[noun]) and op.method == "POST":
            return None
        return _field_spec(op, noun, tail, array=_is_array(parent.spec, held[noun]))
    free_form = any(_is_map(parent.spec, schema) for schema in held.values())
    if free_form and op.method == "PUT" and own_get is None and len(tail) == 1:
        return _field_spec(op, noun, tail, array=False)  # Jira PUT /issue/{id}/assignee
    return None


def _field_spec(op: Op, noun: str, tail: list[str], array: bool) -> dict[str, Any]:
    request, _ = _request_schema(op)
    props = _properties(op.spec, request)
    spec: dict[str, Any] = {"name": noun}
    if len(tail) == 2:
        spec["value_param"] = PLACEHOLDER.fullmatch(tail[1])[1]  # type: ignore[index]
    elif noun in props:
        spec["value_path"] = noun
    elif noun.split("_")[-1] in props:
        spec["value_path"] = noun.split("_")[-1]  # requested_reviewers <- {"reviewers": [...]}
    elif len([n for n, s in props.items() if _is_array(op.spec, s)]) == 1:
        spec["value_path"] = next(n for n, s in props.items() if _is_array(op.spec, s))
    if op.method == "DELETE":
        spec["mode"] = "remove" if ("value_param" in spec or props) else "clear"
    elif op.method == "POST" and array:
        spec["mode"] = "add"
    return spec


def derive_write(found: Index, op: Op) -> Derived | None:
    """One documented write as a route (None for a POST the read rule says only reads)."""
    derived = _derive(found, _marked(op))
    if derived is None:
        return None
    text = re.sub(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}", lambda m: "{" + m[1].replace("-", "_") + "}",
                  _SELECTOR.sub(r"{\1}", json.dumps(derived.route)))
    route = json.loads(text)
    if route["path"].endswith("/{id}") and _multi_segment(op, derived.route):
        route["path"] = route["path"][:-len("{id}")] + "{id+}"  # GitHub's git/refs/heads/x
    return Derived(_SELECTOR.sub(r"{\1}", derived.object_type), route)


def _multi_segment(op: Op, route: dict[str, Any]) -> bool:
    """The record's parameter may hold slashes (GitHub's `x-multi-segment`)."""
    last = _segments(op.path)[-1] if _segments(op.path) else ""
    found = PLACEHOLDER.fullmatch(last)
    if found is None or not route["path"].endswith("/{id}"):
        return False
    for raw in op.operation.get("parameters") or []:
        parameter = op.spec.resolve(raw)
        if isinstance(parameter, dict) and parameter.get("name") == found[1]:
            return bool(parameter.get("x-multi-segment"))
    return False


def _marked(op: Op) -> Op:
    """Selector placeholders spelt `{~name}`: the rules below read them as literal segments."""
    selectors = _selectors(op)
    if not selectors:
        return op
    path = PLACEHOLDER.sub(lambda m: "{~" + m[1] + "}" if m[1] in selectors else m[0], op.path)
    return Op(op.method, path, op.operation, op.spec)


def _derive(found: Index, op: Op) -> Derived | None:
    segments = _segments(op.path)
    route: dict[str, Any] = {"method": op.method}
    if (body := _body_format(op)) is not None:
        route["body"] = body
    response = _response_schema(op)
    request, _ = _request_schema(op)
    if is_documented_read(op):
        route.update(path=op.path, operation="read")
        return Derived(_object_type(found, op.path, (op, response)), route)
    last = segments[-1] if segments else ""
    anchor = _record_anchor(found, segments)
    if anchor is not None and (field_spec := _parent_field(found, op, segments, anchor)):
        return _field_route(found, op, segments, anchor, field_spec, route)
    own = _get(found, segments)
    if _is_param(last):
        return _record_route(found, op, segments, own, route, response, request)
    if own is not None:
        return _subresource_route(found, op, segments, own, route, response)
    if op.method == "POST" and _holds_records(found, segments) and (
            added := _added_to_parent(found, op, segments, route)):
        return added
    if op.method == "POST" and _holds_records(found, segments):
        route.update(path=_rename(op.path, None), operation="create")  # POST .../git/refs
        getter = _get(found, [*segments, "{x}"]) or found.gets.get(
            shape(_join([*segments[:-1], _singular(segments[-1])])) + "/{}")
        return Derived(_object_type(found, op.path + "/{x}", (op, response), (
            getter, _response_schema(getter) if getter else None)), route)
    if anchor is not None:
        return _action_route(found, op, segments, anchor, route, response)
    if any(_is_param(segment) for segment in segments):
        return _bare_record_route(found, op, segments, route, response, request)
    return _collection_route(found, op, segments, route, response, request)


def _filtered_fetch(found: Index, segments: list[str], record: str) -> dict[str, Any] | None:
    """No GET of the record itself: the collection's documented GET filtered to it by an `id`
    query parameter (Jira's `GET /fieldconfiguration?id=10`), the record found in its list."""
    collection = segments[:-1]
    getter = found.gets.get(shape(_join(collection))) if collection else None
    if getter is None:
        return None
    names = set()
    for raw in getter.operation.get("parameters") or []:
        parameter = getter.spec.resolve(raw)
        if isinstance(parameter, dict) and parameter.get("in") == "query":
            names.add(str(parameter.get("name")))
    query = next((name for name in ("id", record) if name in names), None)
    props = _properties(getter.spec, _response_schema(getter))
    lists = [name for name, value in props.items() if _is_array(getter.spec, value)]
    if query is None or len(lists) != 1:
        return None
    item = _properties(getter.spec, props[lists[0]])
    if "id" not in item:
        return None
    return {"path": _rename(_join(collection), None), "query": {query: "{id}"}, "many": True,
            "record_path": lists[0], "id_field": "id"}


def _list_items(getter: Op) -> tuple[str | None, dict[str, Any]] | None:
    """Where a list GET's answer holds its items (None: the answer is the list), and the item's
    properties; None when it holds no one list of objects."""
    schema = _response_schema(getter)
    if _is_array(getter.spec, schema):
        item = _properties(getter.spec, schema)
        return (None, item) if item else None
    props = _properties(getter.spec, schema)
    lists = [name for name, value in props.items()
             if _is_array(getter.spec, value) and _properties(getter.spec, value)]
    if len(lists) != 1:
        return None
    return lists[0], _properties(getter.spec, props[lists[0]])


def _id_field(record: str, item: dict[str, Any]) -> str | None:
    """The item field a placeholder names: itself, else its last words (`repository_id` -> id,
    `team_slug` -> slug, `associationTypeId` -> typeId); `username` names no `name`."""
    if record in item:
        return record
    words = re.findall(r"[A-Za-z][a-z0-9]*", record)
    by_folded = {name.replace("_", "").lower(): name for name in item}
    for start in range(1, len(words)):
        if (name := by_folded.get("".join(words[start:]).lower())) is not None:
            return name
    if len(words) > 1 and words[-1].lower() in ("id", "key", "name", "slug"):
        return by_folded.get("".join(words[:-1]).lower())  # featureKey -> feature
    return None


def _list_fetch(found: Index, segments: list[str], record: str) -> dict[str, Any] | None:
    """No GET of the record itself: the documented GET of the list it sits in, the record found
    in it by the item field its placeholder names (GitHub's GET .../secrets/{name}/repositories
    for PUT .../repositories/{repository_id}, HubSpot's GET .../associations/{toObjectType},
    Jira's GET /screens/{screenId}/tabs)."""
    collection = segments[:-1]
    getter = found.gets.get(shape(_join(collection))) if collection else None
    if getter is None:
        return _parent_list_fetch(found, collection, record)
    if (items := _list_items(getter)) is None:
        return None
    record_path, item = items
    id_field = _id_field(record, item)
    if id_field is None:
        return None
    fetch: dict[str, Any] = {"path": _rename(_join(collection), None), "many": True,
                             "id_field": id_field}
    if record_path is not None:
        fetch["record_path"] = record_path
    names = set()
    for raw in getter.operation.get("parameters") or []:
        parameter = getter.spec.resolve(raw)
        if isinstance(parameter, dict) and parameter.get("in") == "query":
            names.add(str(parameter.get("name")))
    if "per_page" in names:  # the largest page the vendor serves (GitHub: 100)
        fetch["query"] = {"per_page": "100"}
    return fetch


def _parent_list_fetch(found: Index, collection: list[str], record: str) -> dict[str, Any] | None:
    """No GET of the list either: the parent record's documented GET, when the record it reads
    holds the list under the collection's noun, singular or plural (Jira's GET
    /issuesecurityschemes/{id} holds the `levels` that .../level/{levelId} writes)."""
    if len(collection) < 2 or not _is_param(collection[-2]) or _is_param(collection[-1]):
        return None
    parent = found.gets.get(shape(_join(collection[:-1])))
    if parent is None:
        return None
    held = _properties(parent.spec, _response_schema(parent))
    noun = collection[-1]
    for name in dict.fromkeys((noun, noun + "s", noun + "es", _singular(noun))):
        if name in held and _is_array(parent.spec, held[name]) and (
                id_field := _id_field(record, _properties(parent.spec, held[name]))):
            return {"path": _rename(_join(collection[:-1]), None), "many": True,
                    "record_path": name, "id_field": id_field}
    return None


def _pair(found: Index, op: Op, segments: list[str], route: dict[str, Any]) -> bool:
    """`PUT /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}`:
    no record of its own but the pair of two records, named by both (route updated in place),
    its current state the to-record's entry in the documented list of the from-record's
    associations; the labels sent are added to (or replace) the entry's list."""
    fetch = route["fetch"]
    literals = [s for s in segments[:-1] if not _is_param(s) and not _SELECTOR.fullmatch(s)]
    if literals[-1:] != ["associations"] or not fetch.get("many"):
        return False
    names = re.findall(r"\{(~?[A-Za-z_][A-Za-z0-9_-]*)\}", _join(segments[:-1]))
    own = PLACEHOLDER.fullmatch(segments[-1])[1]  # type: ignore[index]
    route["path"] = _rename(op.path, None)  # the pair has no one id: both name it
    route["record_name"] = "/".join("{" + name + "}" for name in [*names, own])
    fetch["record_key"] = "/".join("{" + name + "}" for name in [*names, "id"])
    request, _ = _request_schema(op)
    getter = found.gets[shape(_join(segments[:-1]))]
    _, item = _list_items(getter) or (None, {})
    arrays = [name for name, value in item.items() if _is_array(getter.spec, value)]
    if op.method != "DELETE" and _is_array(op.spec, request) and len(arrays) == 1:
        route.update(operation="update", field={
            "name": arrays[0], "mode": "add" if _verb(op) in _CREATE else "set"})
        route.pop("action", None)
    elif op.method != "DELETE" and request is None:
        route.update(operation="action", action=_action_name(_verb(op) or "associate"))
    return True


def _linked_get(found: Index, op: Op, segments: list[str], position: int,
                response: Any) -> Op | None:
    """The record's documented GET under another prefix, linked by the schema the write
    answers with (Stripe's POST /v1/test_helpers/refunds/{refund}/expire returns the `refund`
    that GET /v1/refunds/{refund} reads): same noun and placeholder position, one candidate."""
    made = _schema_name(op, response)
    if made is None or position < 1:
        return None
    noun = segments[position - 1]
    candidates = []
    for get in found.gets.values():
        parts = _segments(get.path)
        if (len(parts) >= 2 and _is_param(parts[-1]) and parts[-2] == noun
                and sum(map(_is_param, parts)) == 1
                and _schema_name(get, _response_schema(get)) == made
                and all(s in segments[:position] for s in parts[:-1])):
            candidates.append(get)
    return candidates[0] if len(candidates) == 1 else None


def _linked_path(get: Op, placeholder: str) -> str:
    return _join([*_segments(get.path)[:-1], placeholder])


def _bare_record_route(found: Index, op: Op, segments: list[str], route: dict[str, Any],
                       response: Any, request: Any) -> Derived:
    """A write under a record the description documents no GET for (Stripe's test helpers):
    named by its last placeholder, with nothing to fetch."""
    position = max(i for i, segment in enumerate(segments) if _is_param(segment))
    record = PLACEHOLDER.fullmatch(segments[position])[1]  # type: ignore[index]
    tail = segments[position + 1:]
    if op.method == "POST" and _verb(op) in _NEW_VERBS:
        route.update(path=_rename(op.path, None), operation="create")
        return Derived(_object_type(found, op.path, (op, response), (op, request)), route)
    default = {"DELETE": Operation.delete, "POST": Operation.action}.get(op.method,
                                                                         Operation.update)
    operation, action = _operation(op, default)
    if operation is Operation.action and not action:
        action = _action_name(tail[-1]) if tail else (_verb(op) or "post")
    fetch = (_filtered_fetch(found, segments[:position + 1], record)
             or _list_fetch(found, segments[:position + 1], record))
    linked = None if fetch else _linked_get(found, op, segments, position, response)
    if linked is not None:
        fetch = {"path": _rename(_linked_path(linked, segments[position]), record)}
    route.update({"fetch": fetch} if fetch else {"no_fetch": True})
    route.update(path=_rename(op.path, record), operation=operation.value)
    if action:
        route["action"] = action
    return Derived(_object_type(found, _join(segments[:position + 1]), (op, response),
                                (op, request)), route)


def _field_route(found: Index, op: Op, segments: list[str], anchor: int,
                 field_spec: dict[str, Any], route: dict[str, Any]) -> Derived:
    parent = _get(found, segments[:anchor])
    record = PLACEHOLDER.fullmatch(segments[anchor - 1])[1]  # type: ignore[index]
    parent_path = _join(segments[:anchor])
    route.update(path=_rename(op.path, record), operation="update", field=field_spec,
                 fetch=_fetch(parent_path, record))
    assert parent is not None
    return Derived(_object_type(found, parent_path, (parent, _response_schema(parent))), route)


def _record_route(found: Index, op: Op, segments: list[str], own: Op | None,
                  route: dict[str, Any], response: Any, request: Any) -> Derived:
    """A write to `.../{id}`: update, delete, an upsert, or what the vendor's verb says."""
    record = PLACEHOLDER.fullmatch(segments[-1])[1]  # type: ignore[index]
    default = Operation.update
    if op.method == "PUT" and _verb(op) in _CREATE:
        default = Operation.upsert  # PUT .../collaborators/{username}: adds or keeps one
    operation, action = _operation(op, default)
    route.update(path=_rename(op.path, record), operation=operation.value)
    if action:
        route["action"] = action
    if own is not None and operation is not Operation.create:
        route["fetch"] = _fetch(_get_path(found, segments), record, own)
        if (wrapper := _wrapper(op, own)) is not None:
            route["values_path"] = wrapper
    elif operation is not Operation.create:
        fetch = _filtered_fetch(found, segments, record) or _list_fetch(found, segments, record)
        route.update({"fetch": fetch} if fetch else {"no_fetch": True})
        if fetch and _pair(found, op, segments, route):
            return Derived("association", route)
    object_type = _object_type(found, op.path, (own, _response_schema(own) if own else None),
                               (op, response), (op, request))
    return Derived(object_type, route)


def _subresource_route(found: Index, op: Op, segments: list[str], own: Op,
                       route: dict[str, Any], response: Any) -> Derived:
    """A write to a path with its own GET: a collection's create, or a singleton's change."""
    own_schema = _response_schema(own)
    listing = (_is_array(own.spec, own_schema) or _lists_records(own, own_schema)
               or _holds_records(found, segments))
    params = [m[1] for m in PLACEHOLDER.finditer(op.path)]
    if op.method == "POST" and listing and (added := _added_to_parent(found, op, segments,
                                                                      route)):
        return added
    if op.method == "POST" and listing and _verb(op) in _NEW_VERBS:
        route.update(path=_rename(op.path, None), operation="create")
        return Derived(_object_type(found, op.path, (op, response)), route)
    if op.method == "POST" and listing:
        operation, action = _operation(op, Operation.create)
        route.update(path=_rename(op.path, None), operation=operation.value)
        if action:
            route["action"] = action
        if operation is not Operation.create:
            route.update(_body_records(op, operation) or {"no_fetch": True})
        return Derived(_object_type(found, op.path, (op, response)), route)
    record = params[-1] if params else None
    held = _properties(own.spec, own_schema)
    noun = segments[-1]
    if op.method == "POST" and noun in held and _is_array(own.spec, held[noun]) and record:
        route.update(path=_rename(op.path, record), operation="update",  # Jira's watchers
                     field={"name": noun, "mode": "add"}, fetch=_fetch(op.path, record))
        return Derived(_object_type(found, op.path, (own, own_schema)), route)
    default = Operation.action if op.method == "POST" else Operation.update
    request, _ = _request_schema(op)
    if op.method == "POST" and request is None and record:
        verb = _verb(op)
        action = verb if verb and verb not in _CREATE | _UPDATE | _DELETE else _singular(noun)
        route.update(path=_rename(op.path, record), operation="action", action=action,
                     fetch=_fetch(op.path, record))  # Jira's POST .../votes: no body
        return Derived(_object_type(found, op.path, (own, own_schema)), route)
    if op.method == "POST" and _verb(op) in _CREATE:
        default = Operation.update  # adds to a singleton (Jira's watchers): it changes
    operation, action = _operation(op, default)
    if operation is Operation.action and not action:
        action = _verb(op) or _stem(segments[-1])
    route.update(path=_rename(op.path, record), operation=operation.value,
                 fetch=_fetch(op.path, record))
    if action:
        route["action"] = action
    if record is None:
        route["record_name"] = op.path
    return Derived(_object_type(found, op.path, (own, own_schema), (op, response)), route)


_NEW_VERBS = frozenset({"create", "upload", "insert", "new"})  # a record of its own


def _added_to_parent(found: Index, op: Op, segments: list[str],
                     route: dict[str, Any]) -> Derived | None:
    """`POST /issue/{id}/worklog` "Add worklog": unless the vendor says it creates a record
    of its own, an item added to the parent's list, shown against the parent's fetched
    state (a new record under a parent would name no record the reviewer can look up)."""
    anchor = _record_anchor(found, segments)
    if anchor is None or anchor != len(segments) - 1 or _verb(op) in _NEW_VERBS:
        return None
    record = PLACEHOLDER.fullmatch(segments[anchor - 1])[1]  # type: ignore[index]
    request, _ = _request_schema(op)
    props = _properties(op.spec, request)
    noun = segments[-1]
    spec: dict[str, Any] = {"name": noun, "mode": "add"}
    if noun in props:
        spec["value_path"] = noun
    parent_path = _join(segments[:anchor])
    route.update(path=_rename(op.path, record), operation="update", field=spec,
                 fetch=_fetch(parent_path, record))
    parent = _get(found, segments[:anchor])
    assert parent is not None
    return Derived(_object_type(found, parent_path, (parent, _response_schema(parent))), route)


def _lists_records(op: Op, schema: Any) -> bool:
    """A list answer wrapped in an object (`{"results": [...]}`, Stripe's `{"data": []}`)."""
    props = _properties(op.spec, schema)
    arrays = [name for name, value in props.items() if _is_array(op.spec, value)]
    return bool(arrays) and any(name in ("data", "results", "values", "items", "issues",
                                         "worklogs", "comments", "records") for name in arrays)


def _action_route(found: Index, op: Op, segments: list[str], anchor: int,
                  route: dict[str, Any], response: Any) -> Derived:
    """`POST /v1/invoices/{invoice}/finalize`: an action on the record the path names."""
    record = PLACEHOLDER.fullmatch(segments[anchor - 1])[1]  # type: ignore[index]
    target = anchor
    middle = _get(found, segments[:-1])
    if len(segments) - anchor > 1 and middle is not None and not (
            _is_array(middle.spec, _response_schema(middle))
            or _holds_records(found, segments[:-1])):
        target = len(segments) - 1  # /charges/{charge}/dispute/close acts on the dispute
    record_path = _join(segments[:target])
    made = _schema_name(op, response)
    if op.method == "POST" and _verb(op) in _NEW_VERBS and made in found.nouns_by_record:
        route.update(path=_rename(op.path, None), operation="create")  # .../attachments
        return Derived(_object_type(found, op.path, (op, response)), route)
    operation, action = _operation(op, Operation.action)
    if operation is Operation.action and not action:
        action = _action_name(segments[target] if target < len(segments) else segments[-1])
    route.update(path=_rename(op.path, record), operation=operation.value,
                 fetch=_fetch(record_path, record))
    if action:
        route["action"] = action
    owner = _get(found, segments[:target])
    assert owner is not None
    return Derived(_object_type(found, record_path, (owner, _response_schema(owner)),
                                (op, response)), route)


def _action_name(segment: str) -> str:
    name = segment.replace("-", "_")
    return _stem(name) if name.endswith("es") else name  # dispatches -> dispatch


def _collection_route(found: Index, op: Op, segments: list[str], route: dict[str, Any],
                      response: Any, request: Any) -> Derived:
    """No record in the path: a create, or a write naming its records in the body."""
    collection = _collection_anchor(found, segments)
    tail = segments[collection:] if collection is not None else segments[-1:]
    verb_segment = tail[-1].replace("-", "_") if tail else ""
    default = Operation.create if op.method == "POST" else Operation.update
    if op.method == "DELETE":
        default = Operation.delete
    named = _verb_operation(verb_segment)
    operation, action = _operation(op, named or default)
    if operation is Operation.delete and op.method == "POST" and named is None:
        pass  # HubSpot's POST .../batch/archive: "Archive a batch of contacts by ID" deletes
    elif named is None and collection is not None and op.method != "DELETE" and tail:
        operation, action = Operation.action, _action_name(tail[-1])  # /issue/archive
    elif named is Operation.action:
        action = _action_name(tail[-1])
    route.update(path=_rename(op.path, None), operation=operation.value)
    if action:
        route["action"] = action
    holder = _join(segments[:collection]) if collection is not None else op.path
    object_source: list[tuple[Op | None, Any]] = [(op, response), (op, request)]
    if collection is not None:  # the records of the collection, not the request's wrapper
        getter = found.gets.get(shape(holder) + "/{}")
        object_source = [(getter, _response_schema(getter) if getter else None)]
    object_type = _object_type(found, holder + ("/{id}" if collection is not None else ""),
                               *object_source)
    if operation is Operation.create:
        return Derived(object_type, route)
    records = _body_records(op, operation)
    route.update(records)
    if records and collection is not None:
        route["fetch"] = {"path": _join(segments[:collection]) + "/{id}"}
    elif not records:
        own = _get(found, segments)
        if own is not None:
            route.update(record_name=op.path, fetch={"path": op.path})
        else:
            route["no_fetch"] = True
    return Derived(object_type, route)


def _verb_operation(segment: str) -> Operation | None:
    """A path segment that is itself the verb (`batch/update`, `gdpr-delete`, `merge`)."""
    words = set(segment.split("_"))
    if words & {"upsert"}:
        return Operation.upsert
    if words & {"create", "add"}:
        return Operation.create
    if words & {"update"}:
        return Operation.update
    if words & {"delete", "remove", "purge"}:
        return Operation.delete
    return None


# ---------------------------------------------------------------- the derived file


def derive_objects(specs: list[Spec]) -> dict[str, Any]:
    """Every documented write of the descriptions as connector objects, by object type."""
    found = index(specs)
    objects: dict[str, dict[str, Any]] = {}
    for op in sorted(found.writes, key=lambda o: (o.path, o.method)):
        derived = derive_write(found, op)
        if derived is None:
            continue
        key = derived.object_type
        entry = objects.setdefault(key, {"object_type": key, "routes": []})
        entry["routes"].append(derived.route)
        if _EMPTY_CLEARS.search(_text(op)):  # the vendor stores "" as no value
            entry["empty_is_absent"] = True
    return {"objects": dict(sorted(objects.items()))}


def validate_derived(data: Any, where: str) -> dict[str, ObjectSpec]:
    """The derived objects as models; a problem names the file and the field."""
    try:
        objects = data["objects"]
        items = list(objects.items())
    except (KeyError, TypeError, AttributeError) as exc:
        raise DescriptionError(f"{where}: expected {{'objects': {{...}}}}") from exc
    validated = {}
    for key, value in items:
        try:
            validated[key] = ObjectSpec.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(part) for part in (key, *first["loc"]))
            raise DescriptionError(f"{where}: field {loc}: {first['msg']}") from exc
    return validated


def derived_path(name: str) -> Path:
    return DERIVED_DIR / f"{name}.json"


def render(data: dict[str, Any]) -> str:
    """The derived file's text: stable, so a fresh derivation can be compared byte for byte."""
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def derive(connector_name: str, directory: Path = SCHEMAS_DIR) -> Path:
    """Derive `directory/<name>.yaml`'s OpenAPI description into derived/<name>.json.

    Reads the connector file itself, not the loaded connector: the derived file it names may
    not exist yet, and a derivation depends on the description alone (so a test can check the
    shipped file against a fresh one).
    """
    path = directory / f"{connector_name}.yaml"
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise DescriptionError(f"connector file {path}: cannot read it: {exc}") from exc
    description = raw.get("description") if isinstance(raw, dict) else None
    openapi = description.get("openapi") if isinstance(description, dict) else None
    if not openapi:
        raise DescriptionError(f"connector file {path}: no description.openapi to derive from")
    files = [openapi] if isinstance(openapi, str) else list(openapi)
    target = directory / (description.get("derived") or f"derived/{connector_name}.json")
    data = derive_objects(read_documents([str(path.parent / file) for file in files]))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(data), encoding="utf-8")
    return target


# ---------------------------------------------------------------- merging under the YAML


def _segments_match(hand: list[str], derived: list[str]) -> bool:
    """A hand-written template reaches every request of a derived one."""
    for index_, segment in enumerate(hand):
        found = PLACEHOLDER.fullmatch(segment)
        if found and found[2]:  # {id+}: the rest of the path
            return index_ < len(derived)
        if index_ >= len(derived):
            return False
        if found is None and (segment != derived[index_] or _is_param(derived[index_])):
            return False
    return len(hand) == len(derived)


def _covered(hand: list[tuple[Route, ObjectSpec]], route: Route) -> bool:
    """The hand-written file already speaks for this write (it wins).

    The same method and template (placeholder names aside), or a hand-written template whose
    placeholder takes the derived literal (HubSpot `/{type}/{id}` for `/contacts/{contactId}`)
    with the same operation, or both bulk writes listing their records in the body (HubSpot's
    `/{type}/batch/archive`, a bulk delete, for `/contacts/batch/archive`); a literal meaning
    something else (Jira's `/issue/archive` against `/issue/{id}`) is no cover.
    """
    derived = _segments(route.path)
    for candidate, _spec in hand:
        if candidate.method != route.method or candidate.from_root != route.from_root:
            continue
        if shape(candidate.path) == shape(route.path):
            return True
        if _segments_match(_segments(candidate.path), derived) and (
                candidate.operation is route.operation
                or (candidate.bulk is not None and route.bulk is not None)):
            return True  # a bulk write of the same records: the hand-written meaning wins
    return False


def _base_patterns(connector: Connector) -> list[re.Pattern[str]]:
    patterns = []
    for base in connector.base_paths:
        if not base:
            continue
        regex = "".join(re.escape(part) if i % 2 == 0 else "[^/]+"
                        for i, part in enumerate(re.split(r"\{[^}]+\}", base)))
        patterns.append(re.compile(f"^{regex}(?=/)"))
    return patterns


def _under_base(connector: Connector, route: Route,
                patterns: list[re.Pattern[str]]) -> Route:
    """A derived full path as the connector's routes are written: under its base path when
    one covers it (so Jira's /rest/api/3 routes serve /2 and /latest too), else from root."""
    if "" in connector.base_paths:
        return route
    for pattern in patterns:
        found = pattern.match(route.path)
        if found is None:
            continue
        fetch = route.fetch
        if fetch is not None:
            if not pattern.match(fetch.path):
                continue
            fetch = fetch.model_copy(update={"path": pattern.sub("", fetch.path, count=1)})
        return route.model_copy(update={"path": route.path[found.end():], "fetch": fetch})
    return route.model_copy(update={"from_root": True})


def _same_type(left: str, right: str) -> bool:
    if PLACEHOLDER.fullmatch(left) and PLACEHOLDER.fullmatch(right):
        return True
    return left.replace("_", "").lower() == right.replace("_", "").lower()


def _allowed_read(connector: Connector, route: Route, full_path: str) -> Route:
    reads = connector.description.reads if connector.description else []
    if f"{route.method} {full_path}" in reads and route.operation is not Operation.read:
        return Route(method=route.method, path=route.path, operation=Operation.read,
                     from_root=route.from_root, body=route.body)
    return route


def _inherit_fetch(route: Route, spec: ObjectSpec) -> Route:
    """A derived fetch takes the hand-written object's query (HubSpot `?properties=`)."""
    if route.fetch is None or spec.fetch is None or route.fetch.query:
        return route
    fetch = route.fetch.model_copy(update={"query": spec.fetch.query,
                                           "keep_query": spec.fetch.keep_query})
    return route.model_copy(update={"fetch": fetch})


def merge(connector: Connector, derived: dict[str, ObjectSpec]) -> Connector:
    """The hand-written connector with the derived routes it does not speak for.

    Hand-written routes come first and win; a derived route whose object type is a
    hand-written object's joins that object (inheriting values_path, read_only, risk, ...);
    other derived objects follow under their own names.
    """
    hand = [(route, spec) for spec in connector.objects.values() for route in spec.routes]
    hand_types = {key: spec.object_type or key for key, spec in connector.objects.items()}
    objects = {key: spec.model_copy() for key, spec in connector.objects.items()}
    extra: dict[str, ObjectSpec] = {}
    patterns = _base_patterns(connector)
    by_method: dict[str, list[tuple[Route, ObjectSpec]]] = {}
    for pair in hand:
        by_method.setdefault(pair[0].method, []).append(pair)
    for key, spec in derived.items():
        object_type = spec.object_type or key
        owner = next((name for name, own in hand_types.items()
                      if _same_type(own, object_type)), None)
        routes = []
        for route in spec.routes:
            placed = _allowed_read(connector, _under_base(connector, route, patterns),
                                   route.path)
            if _covered(by_method.get(placed.method, []), placed):
                continue
            if owner is not None:
                placed = _inherit_fetch(placed, objects[owner])
                if not _same_type(hand_types[owner], object_type) or PLACEHOLDER.search(
                        object_type):
                    placed = placed.model_copy(update={"object_type": object_type})
            routes.append(placed)
        if not routes:
            continue
        if owner is not None:
            objects[owner] = objects[owner].model_copy(
                update={"routes": [*objects[owner].routes, *routes]})
        else:
            name = key if key not in objects else f"{key}~derived"
            extra[name] = spec.model_copy(update={"routes": routes})
    return connector.model_copy(update={"objects": {**objects, **extra}})


def counts(data: dict[str, Any]) -> Counter[str]:
    """Operations in a derived file, for a one-line summary."""
    return Counter(route["operation"] for obj in data["objects"].values()
                   for route in obj["routes"])


def site_connector(system: str, hosts: list[str], files: list[str], base_path: str,
                   where: str) -> Connector:
    """A site's own API as a connector, from its OpenAPI file alone (no YAML of its own).

    `where` names the config file and field; every problem is raised as a
    ConnectorFileError starting with it, so start-up stops with exit 2 saying which.
    """
    from connectors_schemas.loader import ConnectorFileError

    try:
        data = derive_objects(read_documents(files))
        objects = validate_derived(data, ", ".join(files))
        if not objects:
            raise DescriptionError(f"{', '.join(files)} documents no write operation")
        connector = Connector(system=system, hosts=hosts, base_path=base_path, objects={
            "_": ObjectSpec(routes=[Route(method="POST", path="/", operation=Operation.read)])})
        merged = merge(connector, objects)
        own = {key: spec for key, spec in merged.objects.items() if key != "_"}
        return merged.model_copy(update={"objects": own})
    except (DescriptionError, ValidationError) as exc:
        raise ConnectorFileError(f"{where}: {exc}") from exc
