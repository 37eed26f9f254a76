"""Masks secrets before anything about a request is stored, shown or logged.

Fail closed rather than chase names (DESIGN.md, "Security stance"):
- a header's value is kept only for the headers in SHOWN_HEADERS, known to carry no secret;
  every other value is `***` (Authorization keeps a known scheme: `Bearer ***`);
- a body is kept only in a form the proxy parsed and masked (JSON, NDJSON, urlencoded form,
  multipart/form-data, GraphQL), chosen by its declared content type, never guessed; anything
  else is kept as its content type, size and sha256 alone (`WithheldBody`);
- a value is masked when its name (JSON key, form field, query parameter, GraphQL argument or
  input field, or a variable bound to one) looks secret (`is_secret_name`), or any bracket
  segment of it does (`is_secret_field`: `card[cvc]` is `cvc` to the server that nests it);
- a GraphQL document is masked as GraphQL wherever it travels (JSON, a form's or multipart's
  `query` field, the URL); one that looks like GraphQL but does not parse is never shown;
- a string value that is a URL is masked as a URL (userinfo, secret-named parameters).
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

from connectors_schemas.bodies import AmbiguousBodyError, BodyError, parse_form

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
# `[-_. +]`: PHP reads `api.key` and `api+key` (a space) as `api_key`.
_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|pwd|secret|token|api[-_. +]?key|apikey|auth|credential"
    r"|private[-_. +]?key|access[-_. +]?key|(^|[-_. +])key[-_. +]?id$|signature|assertion"
    r"|cookie|hmac|code[-_. +]?verifier"
    r"|^sig$|^key$|session|jwt|^otp$|^pin$|^cvc$|^cvv$)",
    re.IGNORECASE,
)
# Secret only beside a `grant_type` (an OAuth token request): elsewhere a `code` is a code.
_GRANT_SECRETS = frozenset({"code", "device_code"})
_NAME_SEGMENTS = re.compile(r"[\[\].]")
# Names a GraphQL server reads a document and its variables from (case-folded, as they do).
_GRAPHQL_NAMES = frozenset({"query", "variables"})
# How a document starts (after ignored tokens), or a write keyword a lenient parser may run.
_GRAPHQL_START = re.compile(
    r"(?:[\s,\ufeff]|#[^\n\r]*)*(?:\{|(?:query|mutation|subscription|fragment)(?![_0-9A-Za-z]))")
_WRITE_KEYWORD = re.compile(r"(?<![_0-9A-Za-z])(mutation|subscription)(?![_0-9A-Za-z])")
MAX_URL_DEPTH = 4  # URLs inside URLs deeper than this are masked whole
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


def is_secret_field(name: str) -> bool:
    """A field name is secret when it is, or any of its bracket or dotted segments is: servers
    that nest `card[cvc]` or `x.key` store the value under `cvc` or `key`."""
    return is_secret_name(name) or any(
        is_secret_name(segment) for segment in _NAME_SEGMENTS.split(name) if segment)


def _grant_secret(name: str, grant: bool) -> bool:
    return grant and name.casefold() in _GRANT_SECRETS


def looks_like_graphql(text: str) -> bool:
    """Whether a server might run this as GraphQL though our parser refuses it: then it is
    withheld, never shown as plain text."""
    return bool(_GRAPHQL_START.match(text) or _WRITE_KEYWORD.search(text))


class Unmaskable(ValueError):
    """Part of a body reads as GraphQL or nested JSON the proxy cannot mask: withhold it all."""


# -- headers -----------------------------------------------------------------------------------


def shown_content_type(value: str) -> str:
    """The first media type and its encoding parameters; any other parameter (or a second
    type after a comma, which some servers read) could carry anything."""
    media, *parameters = value.split(",", 1)[0].split(";")
    kept = [media.strip()]
    for parameter in parameters:
        name, sep, _ = parameter.strip().partition("=")
        if name:
            kept.append(parameter.strip() if name.strip().lower() in _TYPE_PARAMETERS
                        else f"{name.strip()}{sep}{MASK}")
    return "; ".join(kept)


_ORIGIN = re.compile(r"null|[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@\\]+")


def shown_origin(value: str) -> str:
    """An Origin is a scheme, host and port; userinfo or a path in it could carry a secret."""
    if _ORIGIN.fullmatch(value):
        return value
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return MASK
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return origin if _ORIGIN.fullmatch(origin) else MASK


def mask_header_value(name: str, value: str) -> str:
    lowered = name.lower()
    if lowered == "content-type":
        return shown_content_type(value)
    if lowered == "origin":
        return shown_origin(value)
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

    def enter_string_value(self, node: graphql.StringValueNode,
                           *_: Any) -> graphql.StringValueNode | None:
        shown = _shown_string(node.value)
        if shown == node.value:
            return None
        self.masked += 1
        return graphql.StringValueNode(value=shown)

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


def _shown_document(text: str) -> str:
    """A `query` string found anywhere: masked as GraphQL when it looks like GraphQL (MASK when
    it then does not parse), else as any string."""
    if not looks_like_graphql(text):
        return _shown_string(text)
    try:
        query, _, changed = mask_graphql(text)
    except (graphql.GraphQLError, RecursionError):
        return MASK
    return query if changed or "#" in text else text


def _without_bound_variables(body: dict[str, Any], graphql_expected: bool) -> dict[str, Any]:
    """A GraphQL request without a document (a persisted query): nothing says which variable
    binds to a password, so none is shown."""
    shown = mask_body(body)
    variables = body.get("variables")
    if isinstance(variables, dict) and (graphql_expected or "extensions" in body
                                        or "operationName" in body):
        shown["variables"] = {name: MASK if value is not None else None
                              for name, value in variables.items()}
    elif isinstance(variables, str) and (graphql_expected or "extensions" in body):
        shown["variables"] = MASK
    return shown


def _masked_json(body: Any, graphql_expected: bool) -> tuple[str, Any]:
    """A parsed JSON body masked by key, with any GraphQL request in it masked as GraphQL.

    A JSON object with a string `query` that parses as GraphQL is a GraphQL request; when it
    does not parse it is a plain value (a search box's query), unless the route is GraphQL,
    the object has `variables`/`operationName`, or the string looks like GraphQL: then
    nothing of it is shown. In a batch each item that looks like a request is one on its own
    (servers run them one by one), and one that does not parse withholds the batch.
    """
    if isinstance(body, list) and any(map(_looks_graphql, body)):
        return "graphql", [_graphql_request(item) if _looks_graphql(item)
                           else _without_bound_variables(item, graphql_expected)
                           if isinstance(item, dict) else mask_body(item) for item in body]
    if _looks_graphql(body):
        try:
            return "graphql", _graphql_request(body)
        except graphql.GraphQLError:
            if graphql_expected or "variables" in body or "operationName" in body or (
                    looks_like_graphql(body["query"])):
                raise
    if isinstance(body, dict):
        return "json", _without_bound_variables(body, graphql_expected)
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


def _masked_text(value: str, depth: int = 0) -> str:
    """A form, multipart or query value: JSON in it masked by key (a GraphQL request in it as
    GraphQL), a URL masked as a URL; the value as sent when nothing in it is masked."""
    if value.lstrip()[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except RecursionError as exc:
            raise Unmaskable("a value holds JSON nested too deeply to mask") from exc
        except ValueError:
            return _shown_string(value, depth)  # text that starts with a brace
        _, masked = _masked_json(parsed, False)
        return value if masked == parsed else json.dumps(masked, ensure_ascii=False)
    return _shown_string(value, depth)


def _masked_pairs(pairs: list[tuple[str, str]], graphql_expected: bool = False,
                  withhold: bool = True, depth: int = 0) -> list[tuple[str, str]]:
    """Name/value pairs (a form, multipart text fields, a URL's query) masked the one way.

    By name (`is_secret_field`; `code` beside `grant_type`), by what a value holds, and every
    `query`/`variables` pair (case-folded) as GraphQL. A document that looks like GraphQL
    (or sits on a GraphQL route) but does not parse raises Unmaskable when `withhold`, else
    every document and variables value reads MASK.
    """
    grant = any(name.casefold() == "grant_type" for name, _ in pairs)
    shown = [(name, MASK if is_secret_field(name) or _grant_secret(name, grant)
              else _masked_text(value, depth)) for name, value in pairs]
    if any(name.casefold() in _GRAPHQL_NAMES for name, _ in pairs):
        try:
            _mask_graphql_pairs(pairs, shown, graphql_expected)
        except Unmaskable:
            if withhold:
                raise
            shown = [(name, MASK if name.casefold() in _GRAPHQL_NAMES else value)
                     for name, value in shown]
    return shown


def _mask_graphql_pairs(pairs: list[tuple[str, str]], shown: list[tuple[str, str]],
                        graphql_expected: bool) -> None:
    """Each `query` masked as a document, each `variables` by what it binds to in the one
    document; with no document, or more than one (servers differ on which runs), every
    variables value reads MASK. Unmaskable for a document a server might run unparsed."""
    documents = [index for index, (name, _) in enumerate(pairs) if name.casefold() == "query"]
    variables = [index for index, (name, _) in enumerate(pairs)
                 if name.casefold() == "variables"]
    parsed: list[str] = []
    for index in documents:
        name, text = pairs[index]
        if is_secret_field(name):
            continue
        try:
            query, _, changed = mask_graphql(text)
        except (graphql.GraphQLError, RecursionError) as exc:
            if graphql_expected or variables or looks_like_graphql(text):
                raise Unmaskable("a `query` field looks like GraphQL but does not parse") from exc
            continue  # a search box's query: shown as any value
        parsed.append(text)
        shown[index] = (name, query if changed or "#" in text else text)
    for index in variables:
        name, encoded = pairs[index]
        shown[index] = (name, _bound_variables(parsed[0], encoded)
                        if len(parsed) == 1 == len(documents) else MASK)


def _bound_variables(document: str, encoded: str) -> str:
    """Variables as JSON text, masked by what they bind to in the document; MASK unless they
    are a JSON object (nothing else binds by name)."""
    try:
        variables = _json(encoded)
    except (ValueError, RecursionError):
        return MASK
    if not isinstance(variables, dict):
        return MASK
    _, masked, changed = mask_graphql(document, variables)
    return json.dumps(masked, separators=(",", ":"), ensure_ascii=False) if changed else encoded


def form_pairs(text: str, graphql_expected: bool = False) -> list[tuple[str, str]]:
    """The name/value pairs of a urlencoded form, masked; ValueError unless it is one."""
    pieces = [piece for piece in text.split("&") if piece]
    if any("=" not in piece or piece.startswith("=") for piece in pieces):
        raise ValueError("not a urlencoded form: a field without a name or '='")
    pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    if ";" in text:  # some servers split on ";" too: a name behind one is a field to them
        names = {name for name, _ in pairs}
        if any(name not in names and (is_secret_field(name) or name.casefold() in _GRAPHQL_NAMES)
               for name, _ in parse_qsl(text.replace(";", "&"), keep_blank_values=True)):
            raise Unmaskable("a secret-named or GraphQL field follows a ';', which some servers "
                             "split on")
    return _masked_pairs(pairs, graphql_expected)


def _masked_form(text: str, graphql_expected: bool = False) -> Any:
    pairs = form_pairs(text, graphql_expected)
    try:
        return mask_body(parse_form(urlencode(pairs)))
    except AmbiguousBodyError as exc:  # servers read it differently: show none of the readings
        raise Unmaskable(f"servers read this form differently ({exc})") from exc
    except BodyError:  # keys the nested reading refuses: the flat pairs, masked
        return dict(pairs)


@dataclass(slots=True)
class _Part:
    headers: dict[str, str]
    data: bytearray
    repeated: bool = False  # a header came twice: servers differ on which one counts


def _multipart_parts(content: bytes, boundary: bytes) -> list[_Part]:
    parts: list[_Part] = []
    header: list[bytearray] = [bytearray(), bytearray()]

    def begin() -> None:
        parts.append(_Part({}, bytearray()))

    def header_end() -> None:
        name = header[0].decode("latin-1").strip().lower()
        parts[-1].repeated |= name in parts[-1].headers
        parts[-1].headers[name] = header[1].decode("latin-1").strip()
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


_PARAMETER = re.compile(r';\s*([^\s=;]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"(?=\s*(?:;|$))|[^;]*))?')


def _disposition(value: str) -> list[tuple[str, str]] | None:
    """A Content-Disposition's parameters in order, repeats kept (python-multipart keeps the
    last `name` and drops `filename*`); None when a quoted value is broken, which servers
    would split differently."""
    found = []
    for match in _PARAMETER.finditer(value, value.find(";") if ";" in value else len(value)):
        raw = (match[2] or "").strip()
        if raw.startswith('"') and not (len(raw) > 1 and raw.endswith('"')):
            return None
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        found.append((match[1].casefold(), raw))
    return found


@dataclass(frozen=True, slots=True)
class _Reading:
    """What a part is to a server: a text field (name and text) or anything else (`shown`)."""

    name: str | None
    text: str | None
    shown: dict[str, Any]


def _read_part(part: _Part) -> _Reading:
    """A text field by its name; a file, a part in any other type, or one servers could read
    differently (a repeated header or name, `name*`), as size and hash alone."""
    part_type = part.headers.get("content-type")
    digest: dict[str, Any] = {
        "content_type": shown_content_type(part_type) if part_type else None,
        "bytes": len(part.data), "sha256": hashlib.sha256(part.data).hexdigest()}
    parameters = _disposition(part.headers.get("content-disposition", ""))
    keys = [key for key, _ in parameters or []]
    names = [value for key, value in parameters or [] if key == "name"]
    if parameters is None or part.repeated or "name*" in keys or any(
            keys.count(key) > 1 for key in ("name", "filename", "filename*")):
        return _Reading(None, None, {"name": None, **digest,
                                     "withheld": "servers could read this part differently"})
    name = names[0] if names else None
    filename = next((value for key, value in parameters if key == "filename"), None)
    if filename is None:
        filename = next((value for key, value in parameters if key == "filename*"), None)
    text = None
    if filename is None and name and media_type(part_type) in ("", "text/plain") and (
            part.headers.get("content-transfer-encoding", "").lower() in ("", "7bit", "8bit",
                                                                           "binary")):
        try:
            text = bytes(part.data).decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is not None:
        return _Reading(name, text, {})
    return _Reading(name, None, {"name": name, **({"filename": filename} if filename is not None
                                                  else {}), **digest})


def _masked_multipart(content: bytes, content_type: str,
                      graphql_expected: bool = False) -> dict[str, Any]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ValueError("a multipart body without a boundary")
    readings = [_read_part(part) for part in _multipart_parts(content, boundary)]
    # The text fields masked together, as a form's pairs: `query` with its `variables`.
    masked = iter(_masked_pairs([(reading.name or "", reading.text) for reading in readings
                                 if reading.text is not None], graphql_expected))
    return {"parts": [{"name": reading.name, "value": next(masked)[1]}
                      if reading.text is not None else reading.shown for reading in readings]}


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
            return ShownBody("multipart", _masked_multipart(content, content_type or "",
                                                            graphql_expected))
        text = content.decode("utf-8")
        if kind == "application/x-www-form-urlencoded":
            return ShownBody("form", _masked_form(text, graphql_expected))
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
    except Unmaskable as exc:
        return withheld(str(exc))
    except UnicodeDecodeError:
        return withheld("it is not valid UTF-8")
    except (ValueError, RecursionError):  # invalid or absurdly nested JSON, broken forms
        return withheld(f"it is not valid {kind or 'in any declared type'}")
    return withheld(f"{kind or 'a body without a content type'} is not a form the proxy "
                    "can mask")


def mask_problem(problem: str) -> str:
    """Why a body could not be read, without the GraphQL parser's quotes of the document.

    After "Syntax Error:" the parser names the token it choked on, which may be a secret (and
    may hold an apostrophe, so no pattern of quotes can find its end): none of it is kept.
    """
    if "GraphQL" not in problem:
        return problem  # JSON and form errors name positions and keys, never values
    head, syntax, _ = problem.partition("Syntax Error:")
    if syntax:
        return f"{head}Syntax Error (what the parser found is not shown: it may be a secret)."
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", problem)


# -- URLs and parsed values ----------------------------------------------------------------------


def _masked_query(pairs: list[tuple[str, str]], depth: int = 0) -> list[tuple[str, str]] | None:
    """The pairs with secrets masked, or None when nothing in them is secret."""
    try:
        shown = _masked_pairs(pairs, withhold=False, depth=depth)
    except (ValueError, RecursionError, graphql.GraphQLError):  # a value too odd to mask
        shown = [(name, MASK) for name, _ in pairs]
    return shown if shown != pairs else None


def mask_url(url: str) -> str:
    """The URL (or path) as sent, unless it carries credentials, a secret-named parameter,
    a GraphQL document or a fragment (`#access_token=`: never sent, often a token)."""
    return _mask_url(url, 0)


def _mask_url(url: str, depth: int) -> str:
    parts = urlsplit(url)
    # Some servers split on ";" as well as "&": a name hidden after one is masked too.
    pairs = parse_qsl(parts.query.replace(";", "&"), keep_blank_values=True)
    shown = _masked_query(pairs, depth) if pairs else None
    if "@" not in parts.netloc and shown is None and not parts.fragment:
        return url  # nothing to mask: not re-encoded either (every read's path comes here)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = urlencode(shown, safe="*[]") if shown is not None else parts.query
    return urlunsplit(parts._replace(netloc=netloc, query=query,
                                     fragment=MASK if parts.fragment else ""))


def _shown_string(value: str, depth: int = 0) -> str:
    """A string value; one that is a URL (`https://u:S@x`, `?access_token=S`) masked as one."""
    if "//" not in value:
        return value  # the cheap test first: most strings are no URL
    try:
        parts = urlsplit(value.strip())
    except ValueError:  # a URL no client could send as it is: too odd to show
        return MASK
    if not parts.netloc:
        return value
    return MASK if depth >= MAX_URL_DEPTH else _mask_url(value, depth + 1)


def mask_body(value: Any) -> Any:
    """A copy of a parsed JSON body with every secret-named field's value masked, a GraphQL
    document under `query` masked as GraphQL and a URL in a string masked as a URL."""
    if isinstance(value, dict):
        grant = any(str(key).casefold() == "grant_type" for key in value)
        return {
            key: MASK if item is not None and (is_secret_field(str(key))
                                               or _grant_secret(str(key), grant))
            else _shown_document(item) if isinstance(item, str) and str(key).casefold() == "query"
            else mask_body(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_body(item) for item in value]
    if isinstance(value, str):
        return _shown_string(value)
    return value


def field_is_secret(dotted: str) -> bool:
    """A shown field (`user.password`, `items[si_1].token`, a JSON key `card[cvc]`) is secret
    when any dotted or bracket segment of it is, as `is_secret_field` reads a body's keys."""
    return is_secret_field(dotted)


def mask_patch_op(op: dict[str, Any]) -> dict[str, Any]:
    """An RFC 6902 operation whose target is secret-named shows no value."""
    masked = mask_body(op)
    if "value" in masked and any(is_secret_field(part)
                                 for part in str(op.get("path", "")).split("/") if part):
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

