"""Masks secrets before anything about a request is stored, shown or logged."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Headers that carry credentials whatever their name says.
_SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "apikey", "x-auth-token", "x-access-token", "x-csrf-token", "x-amz-security-token",
    "private-token", "x-shopify-access-token",
})
_SECRET_NAME = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|apikey|auth|credential|private[-_]?key|signature"
    r"|^sig$|^key$|session|jwt)",
    re.IGNORECASE,
)
# Names that look secret-ish but are not, and that reviewers need to see.
_NOT_SECRET = frozenset({"idempotency-key", "author", "author_id", "authored_at", "synctoken",
                         "sync_token", "next_page_token", "nextpagetoken", "tokens_used"})


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _NOT_SECRET and (
        lowered in _SECRET_HEADERS or bool(_SECRET_NAME.search(lowered))
    )


def mask_header_value(name: str, value: str) -> str:
    if not is_secret_name(name):
        return value
    scheme, _, rest = value.partition(" ")
    # Keep "Basic"/"Bearer" so a reviewer can tell how the agent authenticated.
    return f"{scheme} {MASK}" if rest and scheme.isalpha() else MASK


def mask_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    masked: dict[str, str] = {}
    for name, value in headers:
        value = mask_header_value(name, value)
        masked[name] = f"{masked[name]}, {value}" if name in masked else value
    return masked


def mask_url(url: str) -> str:
    """The URL (or path) as sent, unless it carries credentials or a secret-named parameter."""
    parts = urlsplit(url)
    # Some servers split on ";" as well as "&": a name hidden after one is masked too.
    pairs = parse_qsl(parts.query.replace(";", "&"), keep_blank_values=True)
    secret = [is_secret_name(name) for name, _ in pairs]
    if "@" not in parts.netloc and not any(secret):
        return url  # nothing to mask: not re-encoded either (every read's path comes here)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = urlencode([(name, MASK if hidden else value)
                       for (name, value), hidden in zip(pairs, secret, strict=True)],
                      safe="*[]") if pairs else parts.query
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
