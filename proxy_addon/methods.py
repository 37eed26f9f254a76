"""What counts as a read: an allow-list of methods, after every override a server might honour.

A read is exactly GET, HEAD or OPTIONS; every other method token (MERGE, PROPPATCH, PURGE,
X-WRITE, a lowercase "get") is a write. Override headers and `_method` parameters can only make
a request more of a write, never less: a GET overridden to anything else is a write, a POST
overridden to GET stays a POST (the server may ignore the override).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from mitmproxy import http

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Query (and form) parameters that frameworks such as Rails, Laravel and Symfony read as the
# method; compared case-insensitively.
OVERRIDE_PARAMETERS = frozenset({"_method", "_httpmethod", "x-http-method-override",
                                 "x-http-method", "x-method-override"})  # _HttpMethod: Salesforce
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 5.6.2


class MethodOverrideError(ValueError):
    """An override that does not name exactly one method: refused, never guessed."""


def _is_override_header(name: str) -> bool:
    # X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, X-Original-Method,
    # X-Forwarded-Method...: any header naming a method is taken as one a server might honour.
    return "method" in name.lower()


def overrides(request: http.Request) -> list[str]:
    """Every method override the request carries: headers, query and (for forms) body fields."""
    found = [value for name, value in request.headers.items(multi=True)
             if _is_override_header(name)]
    if "method" in request.path.lower():  # the cheap test first: every read passes here
        found += [value for name, value in request.query.items(multi=True)
                  if name.lower() in OVERRIDE_PARAMETERS]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = request.raw_content
    if (content_type == "application/x-www-form-urlencoded" and raw and b"method" in raw.lower()
            and "content-encoding" not in request.headers):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        found += [value for name, value in parse_qsl(text, keep_blank_values=True)
                  if name.lower() in OVERRIDE_PARAMETERS]
    return found


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
