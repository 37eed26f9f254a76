"""Reads that carry a write: a GraphQL mutation in a GET's URL, a body a server may act on."""

from __future__ import annotations

from mitmproxy import http

from connectors_schemas import Matcher, graphql_in_body, graphql_in_query
from proxy_addon.decoding import DecodingError, decoded
from proxy_addon.methods import body_may_override, query_pairs
from proxy_addon.resolve import Resolve


def write_in_read(flow: http.HTTPFlow, resolve: Resolve, matcher: Matcher,
                  max_body: int) -> str | None:
    """Why a GET/HEAD/OPTIONS carries a write (a GraphQL mutation in its URL), if it does."""
    query, body = "?" in flow.request.path, bool(flow.request.raw_content)
    if not query and not body:
        return None  # the cheap test first: every read passes here
    host, _ = resolve.requested_url(flow)
    path = flow.request.path.split("?", 1)[0]
    endpoint = matcher.is_graphql_endpoint(host, path)
    if body and endpoint:
        return "a GraphQL endpoint read with a body (a server may run the document in it)"
    if body and body_may_override(flow.request):
        return "a read whose body carries a method override (a `_method` field)"
    if body:
        try:
            content = decoded(flow.request.raw_content or b"",
                              flow.request.headers.get("content-encoding"), max_body)
        except DecodingError as exc:
            return f"a read whose body cannot be checked: {exc}"
        if (why := graphql_in_body(content, flow.request.headers.get("content-type"))):
            return why
    if not query:
        return None
    # Split on & only and on ; as well: a document holding ";" must be read both ways.
    pairs = flow.request.query.items(multi=True)
    return graphql_in_query([*pairs, *query_pairs(flow.request)], endpoint)
