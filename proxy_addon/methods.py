"""What counts as a read: an allow-list of methods, after every override a server might honour.

A read is exactly GET, HEAD or OPTIONS; every other method token (MERGE, PROPPATCH, PURGE,
X-WRITE, a lowercase "get") is a write. Override headers and `_method` parameters can only make
a request more of a write, never less: a GET overridden to anything else is a write, a POST
overridden to GET stays a POST (the server may ignore the override).
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote_to_bytes

from mitmproxy import http

from proxy_addon.mcp import MCP_METHOD_NAMES

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Query (and form) parameters that frameworks such as Rails, Laravel and Symfony read as the
# method; compared case-insensitively.
OVERRIDE_PARAMETERS = frozenset({"_method", "_httpmethod", "x-http-method-override",
                                 "x-http-method", "x-method-override"})  # _HttpMethod: Salesforce
_NAMED_OVERRIDE = re.compile(
    rb"(^|[^a-z0-9_-])(" + b"|".join(re.escape(name.encode()) for name in sorted(
        OVERRIDE_PARAMETERS)) + rb")([^a-z0-9_-]|$)")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 5.6.2


class MethodOverrideError(ValueError):
    """An override that does not name exactly one method: refused, never guessed."""


def _is_override_header(name: str) -> bool:
    # X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, X-Original-Method,
    # X-Forwarded-Method...: any header naming a method is taken as one a server might honour.
    return "method" in name.lower()


def overrides(request: http.Request) -> list[str]:
    """Every method override the request carries: headers, query and (for forms) body fields."""
    # MCP's `Mcp-Method` names a JSON-RPC method (tools/call), not an HTTP one: exempt for
    # exactly the MCP method names (an allow-list); any other value is taken as an override.
    found = [value for name, value in request.headers.items(multi=True)
             if _is_override_header(name)
             and not (name.lower() == "mcp-method" and value in MCP_METHOD_NAMES)]
    path = request.path.lower()
    if "method" in path or "%" in path:  # the cheap test first: every read passes here
        found += [value for name, value in query_pairs(request)
                  if name.lower() in OVERRIDE_PARAMETERS]
    raw = request.raw_content
    # Rack reads a POST with no content type as a form too.
    if (_media_type(request) in ("application/x-www-form-urlencoded", "") and raw
            and (b"method" in raw.lower() or b"%" in raw)
            and "content-encoding" not in request.headers):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        found += [value for name, value in parse_qsl(text, keep_blank_values=True)
                  if name.lower() in OVERRIDE_PARAMETERS]
    return found


def _media_type(request: http.Request) -> str:
    """As Rack reads it: up to the first `;` or `,`."""
    return re.split(r"[;,]", request.headers.get("content-type", ""), maxsplit=1)[0].strip(
        ).lower()


def query_pairs(request: http.Request) -> list[tuple[str, str]]:
    """The query's parameters split on `&` and `;`, as some servers (Rack 2) split them."""
    _, _, query = request.path.partition("?")
    return parse_qsl(query.partition("#")[0].replace(";", "&"), keep_blank_values=True)


def body_may_override(request: http.Request) -> bool:
    """A body in which a framework could find a method override that `overrides` did not read:
    a `_method` key in JSON (Laravel, Rails read it), any multipart or encoded form naming one.
    Such a request is never let through as a read."""
    raw = request.raw_content
    if not raw:
        return False
    lowered = raw.lower()
    kind = _media_type(request)
    encoded = request.headers.get("content-encoding", "identity").strip().lower() != "identity"
    if encoded and kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return True  # compressed: the names cannot be seen without inflating it
    if b"method" not in lowered and b"\\u" not in raw and b"%" not in raw:
        return False
    if "json" in kind or raw.lstrip()[:1] == b"{":
        try:
            body = json.loads(raw)
        except ValueError:
            return b"method" in lowered
        return isinstance(body, dict) and any(
            str(key).lower() in OVERRIDE_PARAMETERS for key in body)
    if kind in ("application/x-www-form-urlencoded", ""):
        return False  # parsed as a form by `overrides`, the way Rack reads it
    # Multipart, text, anything else: a lenient server may still find a `_method` in it.
    return bool(_NAMED_OVERRIDE.search(unquote_to_bytes(lowered)))


def effective_method(request: http.Request) -> str:
    """The method to classify the request by; MethodOverrideError for an ambiguous override."""
    # As sent: mitmproxy's `request.method` upper-cases it, but methods are case-sensitive
    # and a server may take "get" for anything.
    method = request.data.method.decode("utf-8", "surrogateescape")
    named = []
    for value in overrides(request):
        token = value.strip()
        if not _TOKEN.match(token):
            raise MethodOverrideError(
                f"a method override must name exactly one method, got {value!r}")
        named.append(token.upper())
    writes = [token for token in named if token not in READ_METHODS]
    if writes:
        return writes[0]
    return method


def is_read(method: str) -> bool:
    """Exactly GET, HEAD or OPTIONS, as sent (methods are case-sensitive, RFC 9110 9.1)."""
    return method in READ_METHODS
