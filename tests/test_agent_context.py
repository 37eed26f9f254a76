"""The X-HITL-* headers: taken off the request, kept as the approval's context."""

from __future__ import annotations

from mitmproxy import http

from proxy_addon.agent_context import take_context


def test_the_trigger_is_taken_off_cut_and_a_link_s_secret_masked() -> None:
    headers = http.Headers([
        (b"X-HITL-Trigger", b"https://u:pw@desk.acme.test/t/9?access_token=s3cret#frag"),
        (b"x-hitl-reason", b"asked by the customer"), (b"X-HITL-Unknown", b"dropped"),
        (b"Accept", b"application/json")])
    context = take_context(headers)
    assert context.trigger == "https://***@desk.acme.test/t/9?access_token=***#***"
    assert context.reason == "asked by the customer"
    assert list(headers.keys()) == ["Accept"]  # every X-HITL-* header goes, known or not
    text = take_context(http.Headers([(b"X-HITL-Trigger", b"weekly churn review " * 200)]))
    assert text.trigger is not None and len(text.trigger) == 2000
    assert take_context(http.Headers([])).trigger is None
