"""Masks secrets before anything about a request is stored, shown or logged.

Fail closed rather than chase names (DESIGN.md, "Security stance"):
- a header's value is kept only for the headers in SHOWN_HEADERS, known to carry no secret;
  every other value is `***` (Authorization keeps a known scheme: `Bearer ***`);
- a body is kept only in a form the proxy parsed and masked (JSON, NDJSON, urlencoded form,
  multipart/form-data, GraphQL), chosen by its declared content type, never guessed; anything
  else is kept as its content type, size and sha256 alone (`WithheldBody`);
- a value is masked when its name (JSON key, form field, query parameter, GraphQL argument or
  input field, or a variable bound to one) looks secret (`is_secret_name`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import graphql
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from connectors_schemas.bodies import BodyError, parse_form

MASK = "***"
MAX_PARSED = 4 * 1024 * 1024  # bodies larger than this are not parsed, so never shown

# The only headers whose values are kept. Each is protocol plumbing or a vendor's version or
# option switch that no vendor uses to authenticate; a header not listed (a new vendor's
# "X-Whatever-Key") is masked whatever its name says. Account ids (Stripe-Account) stay:
# which account a write lands in is what a reviewer must see, and an id is no credential.
SHOWN_HEADERS = frozenset({
    # HTTP itself
    "accept", "accept-charset", "accept-encoding", "accept-language", "cache-control",
    "connection", "content-encoding", "content-language", "content-length", "content-type",
    "date", "expect", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
    "if-unmodified-since", "origin", "pragma", "prefer", "range", "te", "transfer-encoding",
    "user-agent",
    # method overrides: a reviewer must see what the upstream will do
    "x-http-method", "x-http-method-override", "x-method-override",
    # retries and tracing
    "idempotency-key", "x-idempotency-key", "traceparent", "x-request-id", "x-correlation-id",
    "x-amzn-trace-id",
    # vendors' versions and call options
    "stripe-version", "stripe-account", "stripe-context", "x-github-api-version",
    "notion-version", "intercom-version", "anthropic-version", "anthropic-beta", "openai-beta",
    "openai-organization", "openai-project", "x-api-version", "api-version", "x-ms-version",
    "x-amz-date", "x-amz-target",
    "sforce-call-options", "sforce-auto-assign", "sforce-query-options",
    "sforce-duplicate-rule-header", "sforce-mru", "sforce-enable-pkchunking",
})
# Authorization schemes kept in front of the mask: how the agent authenticated, not with what.
AUTH_SCHEMES = frozenset({
    "basic", "bearer", "digest", "dpop", "negotiate", "ntlm", "token", "bot", "oauth", "hawk",
    "hmac", "mac", "ssws", "apikey", "api-key", "key", "sharedkey", "sharedkeylite",
    "aws4-hmac-sha256", "goog4-hmac-sha256", "zoho-oauthtoken", "klaviyo-api-key",
})
_AUTHORIZATION = frozenset({"authorization", "proxy-authorization"})
# Content-type parameters that describe the encoding; any other parameter's value is masked.
_TYPE_PARAMETERS = frozenset({"charset", "boundary", "type", "version", "profile"})

# Headers that carry credentials whatever their name says (names of query parameters and
# body fields: header values are masked by SHOWN_HEADERS instead).
_SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "apikey", "x-auth-token", "x-access-token", "x-csrf-token", "x-amz-security-token",
    "private-token", "x-shopify-access-token",
})
_SECRET_NAME = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|apikey|auth|credential|private[-_]?key|signature"
    r"|^sig$|^key$|session|jwt|^otp$|^pin$|^cvc$|^cvv$)",
    re.IGNORECASE,
)
# Names that look secret-ish but are not, and that reviewers need to see.
_NOT_SECRET = frozenset({"idempotency-key", "author", "author_id", "authored_at", "synctoken",
                         "sync_token", "next_page_token", "nextpagetoken", "tokens_used"})
# python-multipart logs bytes of a malformed body at warning level: not into our log.
_QUIET = logging.Logger("hitl_proxy.redact.multipart")
_QUIET.disabled = True


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _NOT_SECRET and (
        lowered in _SECRET_HEADERS or bool(_SECRET_NAME.search(lowered))
    )


# -- headers -----------------------------------------------------------------------------------


def shown_content_type(value: str) -> str:
    """The media type and its encoding parameters; any other parameter could carry anything."""
    media, *parameters = value.split(";")
    kept = [media.strip()]
    for parameter in parameters:
        name, sep, _ = parameter.strip().partition("=")
        if name:
            kept.append(parameter.strip() if name.strip().lower() in _TYPE_PARAMETERS
                        else f"{name.strip()}{sep}{MASK}")
    return "; ".join(kept)


def mask_header_value(name: str, value: str) -> str:
    lowered = name.lower()
    if lowered == "content-type":
        return shown_content_type(value)
    if lowered in SHOWN_HEADERS:
        return value
    if lowered in _AUTHORIZATION:
        scheme, _, rest = value.strip().partition(" ")
        # Keep "Basic"/"Bearer" so a reviewer can tell how the agent authenticated.
        if rest and scheme.lower() in AUTH_SCHEMES:
            return f"{scheme} {MASK}"
    return MASK


def mask_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    masked: dict[str, str] = {}
    for name, value in headers:
        value = mask_header_value(name, value)
        masked[name] = f"{masked[name]}, {value}" if name in masked else value
    return masked


# -- GraphQL -------------------------------------------------------------------------------------


def _with(node: graphql.Node, **changes: Any) -> Any:
    """A copy of an AST node with some children replaced (nodes are immutable in 3.3)."""
    return type(node)(**{**{key: getattr(node, key) for key in node.keys}, **changes})


class _SecretArguments(graphql.Visitor):
    """Masks literals bound to secret-named arguments and input fields; notes their variables."""

    def __init__(self) -> None:
        super().__init__()
        self.variables: set[str] = set()
        self.masked = 0

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> graphql.ArgumentNode | None:
        return self._bound(node)

    def enter_object_field(self, node: graphql.ObjectFieldNode,
                           *_: Any) -> graphql.ObjectFieldNode | None:
        return self._bound(node)

    def _bound(self, node: Any) -> Any:
        if not is_secret_name(node.name.value):
            return None
        hidden = self.hidden(node.value)
        return None if hidden is node.value else _with(node, value=hidden)

    def hidden(self, value: graphql.ValueNode) -> graphql.ValueNode:
        """The value with every literal in it masked; its variables noted, not replaced."""
        if isinstance(value, graphql.VariableNode):
            self.variables.add(value.name.value)
            return value
        if isinstance(value, graphql.NullValueNode):
            return value
        if isinstance(value, graphql.ObjectValueNode):
            return _with(value, fields=tuple(_with(field, value=self.hidden(field.value))
                                             for field in value.fields))
        if isinstance(value, graphql.ListValueNode):
            return _with(value, values=tuple(self.hidden(item) for item in value.values))
        self.masked += 1
        return graphql.StringValueNode(value=MASK)


class _SecretDefaults(graphql.Visitor):
    """Masks the default value of every variable bound to a secret (known after the first pass)."""

    def __init__(self, found: _SecretArguments) -> None:
        super().__init__()
        self.found = found

    def enter_variable_definition(self, node: graphql.VariableDefinitionNode,
                                  *_: Any) -> graphql.VariableDefinitionNode | None:
        name = node.variable.name.value
        if node.default_value is None or not (name in self.found.variables
                                              or is_secret_name(name)):
            return None
        return _with(node, default_value=self.found.hidden(node.default_value))


def mask_graphql(query: str, variables: Any = None) -> tuple[str, Any, bool]:
    """The document printed back with secret-bound literals masked, the variables masked, and
    whether anything was masked; GraphQLError when the document does not parse.

    A variable is masked when its name looks secret or it is bound to a secret-named argument
    or input field anywhere in the document (so `$p` in `login(password: $p)`), along with its
    default value. Comments go: `print_ast` does not print them.
    """
    found = _SecretArguments()
    document = graphql.visit(graphql.parse(query, no_location=True), found)
    document = graphql.visit(document, _SecretDefaults(found))
    shown_variables = mask_body(variables)
    if isinstance(shown_variables, dict):
        for name in found.variables:
            if shown_variables.get(name) is not None:
                shown_variables[name] = MASK
                found.masked += 1
    changed = found.masked > 0 or shown_variables != variables
    return graphql.print_ast(document), shown_variables, changed


def _graphql_request(body: dict[str, Any]) -> dict[str, Any]:
    """A {"query", "variables", ...} request with its document and variables masked."""
    variables = body.get("variables")
    if isinstance(variables, str):  # some clients send the variables JSON-encoded
        variables = _json(variables)
    if variables is not None and not isinstance(variables, dict):
        raise ValueError("GraphQL variables that are not an object")
    query, variables, _ = mask_graphql(body["query"], variables)
    shown = mask_body({key: value for key, value in body.items()
                       if key not in ("query", "variables")})
    return {"query": query, **({"variables": variables} if "variables" in body else {}), **shown}


def _looks_graphql(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("query"), str)


def _masked_json(body: Any, graphql_expected: bool) -> tuple[str, Any]:
    """A parsed JSON body masked by key, with any GraphQL request in it masked as GraphQL.

    A JSON object with a string `query` that parses as GraphQL is a GraphQL request; when it
    does not parse it is a plain value (a search box's query), unless the route is GraphQL or
    the object has `variables`/`operationName`: then nothing of it is shown.
    """
    items = body if isinstance(body, list) and body and all(map(_looks_graphql, body)) else None
    if items is not None or _looks_graphql(body):
        try:
            if items is not None:
                return "graphql", [_graphql_request(item) for item in items]
            return "graphql", _graphql_request(body)
        except graphql.GraphQLError:
            if graphql_expected or items is not None or (
                    "variables" in body or "operationName" in body):
                raise
    return "json", mask_body(body)


# -- bodies --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownBody:
    """A body the proxy parsed and masked, in the form it was parsed as."""

    form: str  # json | ndjson | form | multipart | graphql
    value: Any


@dataclass(frozen=True, slots=True)
class WithheldBody:
    """A body the proxy could not parse and mask: only its type, size and hash are kept."""

    content_type: str | None
    size: int
    sha256: str
    reason: str

    def describe(self) -> str:
        kind = self.content_type or "no declared type"
        return f"{self.size:,} bytes of {kind}, sha256 {self.sha256}, not kept: {self.reason}"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a repeated key is refused: servers disagree on which value counts."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError("a JSON object repeats a key")
        found[key] = value
    return found


def _json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_keys)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _masked_text(name: str, value: str) -> str:
    """A form value by its name; a JSON object or list in it is masked by its keys too."""
    if is_secret_name(name):
        return MASK
    if value.lstrip()[:1] in ("{", "["):
        try:
            return json.dumps(mask_body(json.loads(value)), ensure_ascii=False)
        except (ValueError, RecursionError):
            return value
    return value


def form_pairs(text: str) -> list[tuple[str, str]]:
    """The name/value pairs of a urlencoded form, masked; ValueError unless it is one."""
    pieces = [piece for piece in text.split("&") if piece]
    if any("=" not in piece or piece.startswith("=") for piece in pieces):
        raise ValueError("not a urlencoded form: a field without a name or '='")
    pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    return [(name, _masked_text(name, value)) for name, value in pairs]


def _masked_form(text: str) -> Any:
    pairs = form_pairs(text)
    try:
        return mask_body(parse_form(urlencode(pairs)))
    except BodyError:  # keys the nested reading refuses: the flat pairs, masked
        return {name: value for name, value in pairs}


@dataclass(slots=True)
class _Part:
    headers: dict[str, str]
    data: bytearray


def _multipart_parts(content: bytes, boundary: bytes) -> list[_Part]:
    parts: list[_Part] = []
    header: list[bytearray] = [bytearray(), bytearray()]

    def begin() -> None:
        parts.append(_Part({}, bytearray()))

    def header_end() -> None:
        parts[-1].headers[header[0].decode("latin-1").strip().lower()] = (
            header[1].decode("latin-1").strip())
        header[0], header[1] = bytearray(), bytearray()

    parser = MultipartParser(boundary, {
        "on_part_begin": begin,
        "on_part_data": lambda data, start, end: parts[-1].data.extend(data[start:end]),
        "on_header_field": lambda data, start, end: header[0].extend(data[start:end]),
        "on_header_value": lambda data, start, end: header[1].extend(data[start:end]),
        "on_header_end": header_end,
    })
    parser.logger = _QUIET
    parser.write(content)
    if parser.state is not MultipartState.END:
        raise ValueError("the multipart body ends before its closing boundary")
    return parts


def _shown_part(part: _Part) -> dict[str, Any]:
    """A text field by its name; a file, or a part in any other type, as size and hash."""
    _, disposition = parse_options_header(part.headers.get("content-disposition", ""))
    name = disposition.get(b"name", b"").decode("utf-8", "replace") or None
    filename = disposition.get(b"filename")
    part_type = part.headers.get("content-type")
    text = None
    if filename is None and name and media_type(part_type) in ("", "text/plain") and (
            part.headers.get("content-transfer-encoding", "").lower() in ("", "7bit", "8bit",
                                                                           "binary")):
        try:
            text = bytes(part.data).decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is not None and name is not None:
        return {"name": name, "value": _masked_text(name, text)}
    shown: dict[str, Any] = {"name": name}
    if filename is not None:
        shown["filename"] = filename.decode("utf-8", "replace")
    return {**shown, "content_type": shown_content_type(part_type) if part_type else None,
            "bytes": len(part.data), "sha256": hashlib.sha256(part.data).hexdigest()}


def _masked_multipart(content: bytes, content_type: str) -> dict[str, Any]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ValueError("a multipart body without a boundary")
    return {"parts": [_shown_part(part) for part in _multipart_parts(content, boundary)]}


def mask_request_body(content: bytes, content_type: str | None,
                      graphql_expected: bool = False) -> ShownBody | WithheldBody | None:
    """The body in the form the proxy parsed and masked it, or only its type, size and hash.

    The declared content type decides how it is read; nothing is sniffed: a form sent as
    `application/json` is not JSON, so it is withheld. None for an empty body.
    """
    if not content:
        return None
    kind = media_type(content_type)

    def withheld(reason: str) -> WithheldBody:
        return WithheldBody(shown_content_type(content_type) if content_type else None,
                            len(content), hashlib.sha256(content).hexdigest(), reason)

    if len(content) > MAX_PARSED:
        return withheld("too large to mask")
    try:
        if kind == "multipart/form-data":
            return ShownBody("multipart", _masked_multipart(content, content_type or ""))
        text = content.decode("utf-8")
        if kind == "application/x-www-form-urlencoded":
            return ShownBody("form", _masked_form(text))
        if kind == "application/graphql":
            query, _, _ = mask_graphql(text)
            return ShownBody("graphql", {"query": query})
        if "ndjson" in kind or "jsonl" in kind or "json-seq" in kind:
            return ShownBody("ndjson", [_masked_json(_json(line), graphql_expected)[1]
                                        for line in text.splitlines() if line.strip()])
        if "json" in kind:
            form, value = _masked_json(_json(text), graphql_expected)
            return ShownBody(form, value)
    except graphql.GraphQLError:
        return withheld("the GraphQL document does not parse")
    except UnicodeDecodeError:
        return withheld("it is not valid UTF-8")
    except (ValueError, RecursionError):  # invalid or absurdly nested JSON, broken forms
        return withheld(f"it is not valid {kind or 'in any declared type'}")
    return withheld(f"{kind or 'a body without a content type'} is not a form the proxy "
                    "can mask")


def mask_problem(problem: str) -> str:
    """Why a body could not be read, without the GraphQL parser's quotes of the document."""
    if "GraphQL" not in problem:
        return problem  # JSON and form errors name positions and keys, never values
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", problem)


# -- URLs and parsed values ----------------------------------------------------------------------


def _masked_query(pairs: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The pairs with secrets masked, or None when nothing in them is secret."""
    secret = [is_secret_name(name) for name, _ in pairs]
    shown = [(name, MASK if hidden else value)
             for (name, value), hidden in zip(pairs, secret, strict=True)]
    document = next((value for name, value in pairs if name == "query"), None)
    changed = any(secret)
    if document is not None and any(name in ("query", "variables") for name, _ in pairs):
        changed = _masked_graphql_pairs(shown, document) or changed
    return shown if changed else None


def _masked_graphql_pairs(shown: list[tuple[str, str]], document: str) -> bool:
    """GraphQL over GET: `query` and `variables` masked in place; whether anything changed."""
    encoded = next((value for name, value in shown if name == "variables"), None)
    try:
        variables = _json(encoded) if encoded else None
        query, variables, changed = mask_graphql(document, variables)
    except graphql.GraphQLError:
        if encoded is None:
            return False  # a `query` that is not GraphQL: a search box's
        query, variables, changed = MASK, MASK, True
    except (ValueError, RecursionError):
        query, variables, changed = document, MASK, True
    if not changed:
        return False
    for index, (name, _) in enumerate(shown):
        if name == "query":
            shown[index] = (name, query)
        elif name == "variables":
            shown[index] = (name, variables if isinstance(variables, str)
                            else json.dumps(variables, separators=(",", ":")))
    return True


def mask_url(url: str) -> str:
    """The URL (or path) as sent, unless it carries credentials or a secret-named parameter."""
    parts = urlsplit(url)
    # Some servers split on ";" as well as "&": a name hidden after one is masked too.
    pairs = parse_qsl(parts.query.replace(";", "&"), keep_blank_values=True)
    shown = _masked_query(pairs) if pairs else None
    if "@" not in parts.netloc and shown is None:
        return url  # nothing to mask: not re-encoded either (every read's path comes here)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = urlencode(shown, safe="*[]") if shown is not None else parts.query
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_body(value: Any) -> Any:
    """A copy of a parsed JSON body with every secret-named field's value masked."""
    if isinstance(value, dict):
        return {
            key: MASK if is_secret_name(str(key)) and item is not None else mask_body(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_body(item) for item in value]
    return value


def field_is_secret(dotted: str) -> bool:
    return any(is_secret_name(part) for part in dotted.split("."))


def mask_patch_op(op: dict[str, Any]) -> dict[str, Any]:
    """An RFC 6902 operation whose target is secret-named shows no value."""
    masked = mask_body(op)
    if "value" in masked and any(is_secret_name(part) for part in str(op.get("path", "")).split("/")
                                 if part):
        masked["value"] = MASK
    return masked


MAX_SHOWN_CHARS = 16 * 1024  # a longer string is shown as its start, its length and its hash
SHOWN_START = 4096


def clip(value: Any) -> Any:
    """A copy with every very long string cut to its start, its length and its sha256.

    What a reviewer can read of a 10 MB comment is its start; storing, sending and rendering it
    whole (in changes, patch and request, each) is what made one large write cost the proxy
    twenty times its size. The hash still tells one long value from another.
    """
    if isinstance(value, str):
        if len(value) <= MAX_SHOWN_CHARS:
            return value
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return (f"{value[:SHOWN_START]}… [cut: {len(value):,} characters in all, "
                f"sha256 {digest}]")
    if isinstance(value, dict):
        return {key: clip(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clip(item) for item in value]
    return value

